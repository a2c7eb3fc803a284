"""The ``parametric_opt`` branch of ``runners.train``: LISCO and its baselines (spec lisco.md).

``method=lisco`` trains the predictor (``method.predictor=true``) and the solver, or loads both
from ``method.checkpoint`` (``method.train=false``), then evaluates on the test split;
``method=ipopt`` / ``method=osqp`` / ``method=jaxopt_osqp`` (jaxopt's BoxOSQP, all points in one
vmapped, jitted call; its ``batch.*`` fields: compile and batch seconds) solve the same
points. Every method writes the same files:

    metrics.json     status, the summary metrics of Tables 1–4 (gap, violations, ½‖F‖²
                     percentiles, success, iterations, batch-1 time per instance, batch
                     throughput, fraction converged after k iterations), training times,
                     the predictor's own metrics under ``pred.`` (lisco with predictor)
    samples.csv      one row per test point: objective, gap, violations, ½‖F‖², iterations,
                     seconds
    convergence.csv  (lisco) fraction of test points with ½‖F‖² ≤ 1e-6 / 1e-8 after k iterations
    convergence.png  the same as a figure
    predictor.msgpack, solver.msgpack, networks.json   (lisco) Flax serialization: data only
    history.csv      (lisco) one row per logged training chunk

The optimality gap is against IPOPT at tol 1e-10 (exact Hessian) from y0 = A⁺x, computed
once per instance and cached as ``<results_dir>/cache/lisco_ref_*.npz``. Metrics are computed
in float64 (the runner enables x64 for this family) whatever precision trained the networks.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from runners.io import draw, save_figure, status_text, write_atomic, write_json

THRESHOLDS = (1e-6, 1e-8)  # Table 4 / the convergence figure
TABLE4_ITERS = (10, 20, 50, 100)


def _bar(enabled: bool, total: int, desc: str):
    from runners.plumbing import Bar

    return Bar(total, desc, enabled=enabled)


def reference(problem, x: np.ndarray, cache_dir: Path, progress: bool) -> dict:
    """IPOPT tol 1e-10 (exact Hessian) solutions of the test points, cached once per
    instance and point count (``problems.stochastic.base.cached_arrays``: keyed npz, no pickle)."""
    from methods.parametric.lisco_baselines import ipopt_solve
    from problems.common.cache import cached_arrays

    def solve():
        bar = _bar(progress, len(x), "IPOPT reference (tol 1e-10)")
        r = ipopt_solve(
            problem.kind, problem.inst, x, tol=1e-10, on_instance=lambda i: bar.update()
        )
        bar.close()
        z = np.hstack([r.y, r.nu, r.lam])
        return {
            "y": r.y,
            "nu": r.nu,
            "lam": r.lam,
            "success": r.success,
            "objective": problem.sample_metrics(z, x, None)["objective"],
        }

    c = problem.cfg
    key = {
        "seed": problem.seed,
        "n": c.n,
        "n_eq": c.n_eq,
        "n_ineq": c.n_ineq,
        "n_examples": c.n_examples,
        "n_points": len(x),
        "tol": 1e-10,
    }
    if c.test_set != "dc3":  # DC3's split keeps the key (and the cache) it always had
        key["test_set"] = c.test_set
    return cached_arrays(cache_dir, f"lisco_ref_{problem.kind}", key, solve)


def summarize(sm: dict, iterations=None, seconds=None, hits=None, tol: float = 1e-8) -> dict:
    """Table 1–4 figures from per-sample metrics (``sm``: arrays per test point)."""
    t = sm["merit"]
    rec = {
        "objective_mean": float(np.mean(sm["objective"])),
        "eq_max": float(np.max(sm["eq_max"])),
        "eq_mean": float(np.mean(sm["eq_mean"])),
        "ineq_max": float(np.max(sm["ineq_max"])),
        "ineq_mean": float(np.mean(sm["ineq_mean"])),
        # DC3's "Max. Eq." / "Max. Ineq.": the mean over test points of each point's max
        # (locuslab/DC3 stores the per-point max and reports np.mean of it); the keys
        # above are the worst point's (the max over test points)
        "eq_max_avg": float(np.mean(sm["eq_max"])),
        "ineq_max_avg": float(np.mean(sm["ineq_max"])),
        "T_max": float(np.max(t)),
        "T_p99": float(np.percentile(t, 99)),
        "T_p50": float(np.median(t)),
        "T_min": float(np.min(t)),
        "success": float(np.mean(t <= tol)),
    }
    if "gap_pct" in sm:
        rec.update(
            gap_mean=float(np.mean(sm["gap_pct"])),
            gap_max=float(np.max(sm["gap_pct"])),
            gap_abs_max=float(np.max(np.abs(sm["gap_pct"]))),
        )
    if iterations is not None:
        rec.update(it_median=float(np.median(iterations)), it_max=int(np.max(iterations)))
    if seconds is not None:
        rec.update(time_median_s=float(np.median(seconds)), time_max_s=float(np.max(seconds)))
    if hits is not None:
        for j, thr in enumerate(THRESHOLDS):
            for k in TABLE4_ITERS:
                rec[f"frac{int(round(-np.log10(thr)))}_it{k}"] = float(np.mean(hits[:, j] <= k))
    return rec


def _samples_csv(out: Path, sm: dict, **extra):
    import pandas as pd

    df = pd.DataFrame(
        {
            **{k: np.asarray(v) for k, v in sm.items()},
            **{k: np.asarray(v) for k, v in extra.items() if v is not None},
        }
    )
    write_atomic(out / "samples.csv", df.to_csv(index_label="test_index"))


def convergence_figure(curves: dict, path: Path, title: str):
    """Fraction of test points with ½‖F‖² below each threshold vs iteration."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), constrained_layout=True)
    for label, (k, fr) in curves.items():
        ax.plot(k, fr, label=label)
    ax.set(
        xscale="symlog",
        xlabel="iteration",
        ylabel="fraction of test points",
        ylim=(-0.02, 1.02),
        title=title,
    )
    ax.grid(alpha=0.3)
    ax.legend()
    save_figure(fig, path, dpi=110)


def _convergence(hits: np.ndarray, n_max: int):
    k = np.arange(n_max + 1)
    return k, {thr: (hits[:, j][None, :] <= k[:, None]).mean(1) for j, thr in enumerate(THRESHOLDS)}


# --- lisco ---------------------------------------------------------------------------------


def time_lisco(
    problem,
    mc,
    dtype,
    pred_params,
    sol_params,
    x: np.ndarray,
    key,
    batch1: bool = True,
    batch_repeats: int = 5,
) -> dict:
    """LISCO as a user calls it (z₀ from the predictor or N(0, 1), then the loop): the whole
    test batch at once (throughput; ``methods.parametric.lisco_inference.compacted_runner``:
    rows of stopped samples refilled with waiting ones, then the last samples in shrinking
    batches) and every point alone (batch-1 latency per instance,
    one compiled program). Compile time is reported apart (``eval_compile_s``: the first,
    compiling pass over the batch). The batch is timed ``batch_repeats`` times after that
    and ``batch_s`` is the median (one pass of a few tenths of a second varied by ±25%
    between runs on the 2-core CI machine; ``batch_s_all`` keeps every time)."""
    import jax
    import jax.numpy as jnp

    from methods.parametric.lisco import make_batch_inference, make_inference, start_points

    run = make_inference(problem, mc, dtype, THRESHOLDS)
    solve = jax.jit(
        lambda xb, kb: run(sol_params, start_points(problem, mc, dtype, pred_params, xb, kb), xb)
    )
    batch_run = make_batch_inference(problem, mc, dtype, THRESHOLDS)
    start = jax.jit(lambda xb, kb: start_points(problem, mc, dtype, pred_params, xb, kb))

    def solve_batch(xb, kb):  # stopped samples cost no further work
        return batch_run(sol_params, start(xb, kb), xb)

    xj = jnp.asarray(x, dtype)
    t0 = time.perf_counter()
    jax.block_until_ready(solve_batch(xj, key))  # compiles every bucket size it meets
    out = {"eval_compile_s": time.perf_counter() - t0}  # (includes one run of the batch)
    times = []
    for _ in range(max(1, batch_repeats)):
        t0 = time.perf_counter()
        result = jax.block_until_ready(solve_batch(xj, key))
        times.append(time.perf_counter() - t0)
    batch_s = float(np.median(times))
    out.update(
        batch_size=len(x),
        batch_s=batch_s,
        batch_s_all=times,
        throughput=len(x) / batch_s,
        batch_iterations=int(np.max(np.asarray(result.iterations))),
    )
    secs = np.full(len(x), np.nan)
    if batch1:
        keys = jax.random.split(key, len(x))
        jax.block_until_ready(solve(xj[:1], keys[0]))  # compile batch 1
        for i in range(len(x)):
            t0 = time.perf_counter()
            jax.block_until_ready(solve(xj[i : i + 1], keys[i]))
            secs[i] = time.perf_counter() - t0
    out.update(result=result, seconds=secs)
    return out


def _save_networks(out: Path, pred_params, sol_params, cfg, problem, dtype):
    from flax import serialization

    if pred_params is not None:
        write_atomic(out / "predictor.msgpack", serialization.to_bytes(pred_params))
    if sol_params is not None:
        write_atomic(out / "solver.msgpack", serialization.to_bytes(sol_params))
    write_json(
        out / "networks.json",
        {
            "hidden": list(cfg.hidden),
            "activation": cfg.activation,
            "dtype": str(np.dtype(dtype)),
            "n_x": problem.n_x,
            "n_z": problem.n_z,
            "problem": problem.name,
            "instance": problem.cfg.instance,
            "predictor": pred_params is not None,
            "input_log": cfg.input_log,
        },
    )


def trained_input_log(meta) -> str:
    """The log a saved solver's input used (``networks.json``): log10 before the key existed."""
    return meta.get("input_log", "log10") if isinstance(meta, dict) else "log10"


def networks_meta(ckpt, cfg, problem, precision: str) -> dict:
    """``networks.json`` of the trained lisco run in folder ``ckpt``, checked against this
    run's config (problem and instance, widths, activation, sizes, dtype) and the files it
    needs; raises :class:`ConfigError` in one line. Reads JSON only: the runner calls it
    while validating the config, before any folder is made."""
    from runners.setup import ConfigError

    where = str(ckpt)
    ckpt = Path(str(ckpt)).expanduser()
    if not ckpt.is_dir():
        raise ConfigError(
            f"method.checkpoint: no such folder {where!r}: give the run folder "
            "of a trained lisco run"
        )
    meta_path = ckpt / "networks.json"
    if not meta_path.is_file():
        raise ConfigError(
            f"method.checkpoint: no networks.json in {where!r}: give the run "
            "folder of a trained lisco run"
        )
    try:
        meta = json.loads(meta_path.read_text())
        if not isinstance(meta, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as e:
        raise ConfigError(
            f"method.checkpoint: {str(meta_path)!r} is not a readable networks.json ({str(e)[:80]})"
        ) from None
    want = {
        "problem": problem.name,  # networks learn one instance's solution map
        "instance": problem.cfg.instance,
        "hidden": list(cfg.hidden),
        "activation": cfg.activation,
        "n_x": problem.n_x,
        "n_z": problem.n_z,
        "dtype": str(np.dtype(precision)),
    }
    for k, v in want.items():
        if meta.get(k) != v:
            raise ConfigError(
                f"method.checkpoint: networks in {where!r} have {k}="
                f"{meta.get(k)!r}, this run has {v!r}"
            )
    trained = trained_input_log(meta)
    if trained != cfg.input_log:
        raise ConfigError(
            f"method.input_log: the solver in {where!r} was trained with "
            f"input_log={trained}, this run has {cfg.input_log} (set method.input_log={trained})"
        )
    needed = ["solver.msgpack"] + (["predictor.msgpack"] if cfg.predictor else [])
    for f in needed:
        if not (ckpt / f).is_file():
            raise ConfigError(
                f"method.checkpoint: no {f} in {where!r}"
                + (" (trained with method.predictor=false?)" if f.startswith("predictor") else "")
            )
    return meta


def _restore(path: Path, template, what: str):
    """Flax msgpack at ``path`` restored into ``template``; every array must have the
    template's shape and dtype (Flax does not check), else a one-line ConfigError."""
    import jax
    from flax import serialization

    from runners.setup import ConfigError

    try:
        params = serialization.from_bytes(template, path.read_bytes())
    except Exception as e:  # truncated or foreign msgpack: msgpack's own exception types
        raise ConfigError(
            f"method.checkpoint: {str(path)!r} is not a readable {what} network "
            f"({type(e).__name__})"
        ) from None
    got, ref = jax.tree.leaves(params), jax.tree.leaves(template)
    if len(got) != len(ref) or any(
        np.shape(a) != np.shape(b) or np.asarray(a).dtype != np.asarray(b).dtype
        for a, b in zip(got, ref)
    ):
        raise ConfigError(
            f"method.checkpoint: the {what} network in {str(path)!r} has other "
            "shapes or dtypes than networks.json and this run's config say"
        )
    return params


def _load_networks(ckpt, cfg, problem, dtype, templates):
    """(predictor or None, solver) of a trained lisco run, validated (ConfigError)."""
    networks_meta(ckpt, cfg, problem, str(np.dtype(dtype)))
    ckpt = Path(str(ckpt)).expanduser()
    pred_t, sol_t = templates
    pred = _restore(ckpt / "predictor.msgpack", pred_t, "predictor") if cfg.predictor else None
    return pred, _restore(ckpt / "solver.msgpack", sol_t, "solver")


def _train(cfg, setup, problem, dtype, out, history, key):
    """Predictor then solver, each through the chunked driver with a progress bar, as
    resumable phases: checkpoints every ``checkpoint_every`` chunks and on SIGTERM/SIGUSR;
    the same command continues an interrupted training (the predictor of a run stopped in
    its solver phase is kept in the checkpoint folder)."""
    import jax
    from flax import serialization

    from methods.driver import Interrupted
    from methods.parametric.lisco import init_networks, predictor_method, solver_method
    from runners.checkpoint import CheckpointMismatch, Phases, StopSignals
    from runners.plumbing import Progress, config_hash, interrupted, open_checkpoint
    from runners.setup import ConfigError

    mc = setup.method_cfg
    k_init, k_pred, k_sol = jax.random.split(key, 3)
    pred_params, sol_params = init_networks(problem, mc, dtype, k_init)
    data = {"valid_x": jax.numpy.asarray(problem.valid_x, dtype)}
    progress = Progress(cfg, problem, data, history, out)
    ckpt = open_checkpoint(cfg, out, config_hash(cfg))
    meta = ckpt.meta()
    if (
        mc.predictor
        and meta is not None
        and meta["phase"] == "solver"
        and not (ckpt.source / "predictor.msgpack").is_file()
    ):
        ckpt.reject("a solver-phase checkpoint without its predictor.msgpack")
    with StopSignals() as stop:
        phases = Phases(
            ckpt,
            history,
            progress,
            log_every=cfg.log_every,
            every=cfg.get("checkpoint_every", 0),
            stop=stop,
            names=("predictor", "solver"),
        )
        try:
            if mc.predictor and phases.current in (None, "predictor"):
                m = predictor_method(problem, mc, dtype, k_pred)
                r = phases.run(
                    "predictor",
                    m,
                    m.init(pred_params, data),
                    data,
                    max_steps=mc.predictor_steps,
                    budget=setup.time_s,
                    desc=f"predictor {problem.name}",
                )
                pred_params = m.params(r.state)
                phases.extra["info"] = {
                    "predictor_status": r.status,
                    "predictor_steps_done": int(r.state.step),
                    "predictor_train_s": r.wall_s,
                    "predictor_compile_s": r.compile_s,
                    "predictor_final_lr": float(r.history[-1]["lr"]),
                }
                write_atomic(ckpt.dir / "predictor.msgpack", serialization.to_bytes(pred_params))
                if r.status == "diverged":
                    return pred_params, sol_params, "diverged", phases.extra["info"]
            elif mc.predictor:  # resumed in the solver phase: the trained predictor
                blob = (ckpt.source / "predictor.msgpack").read_bytes()
                write_atomic(ckpt.dir / "predictor.msgpack", blob)
                pred_params = serialization.from_bytes(pred_params, blob)
            else:
                pred_params = None
            info = dict(phases.extra.get("info", {}))
            m = solver_method(problem, mc, dtype, k_sol, pred_params)
            r = phases.run(
                "solver",
                m,
                m.init(sol_params, data),
                data,
                max_steps=mc.solver_steps,
                budget=max(setup.time_s - phases.timing["train_s"], 1e-9),
                desc=f"solver {problem.name}",
            )
        except CheckpointMismatch as e:
            raise ConfigError(f"checkpoint: {e}") from None
        except Interrupted as e:
            interrupted(progress, stop, ckpt, e)
    progress.flush()
    ckpt.finish()
    info.update(
        {
            "solver_status": r.status,
            "solver_steps_done": int(r.state.step),
            "solver_train_s": r.wall_s,
            "solver_compile_s": r.compile_s,
        }
    )
    return pred_params, m.params(r.state), r.status, info


def trained_networks(cfg: DictConfig, setup):
    """``method.train=false``: the networks of ``method.checkpoint``, validated (ConfigError)
    before anything is computed or written."""
    import jax
    import jax.numpy as jnp

    from methods.parametric.lisco import init_networks

    mc, dtype = setup.method_cfg, jnp.dtype(setup.precision)
    templates = init_networks(setup.problem, mc, dtype, jax.random.PRNGKey(mc.init_seed + cfg.seed))
    return _load_networks(mc.checkpoint, mc, setup.problem, dtype, templates)


def run_lisco(
    cfg: DictConfig, setup, out: Path, x: np.ndarray, ref: dict, networks=None
) -> tuple[dict, str, list]:
    """``networks``: (predictor, solver) loaded by :func:`trained_networks` (train=false).
    Returns (record, status, figures to draw once metrics.json is written)."""
    import jax
    import jax.numpy as jnp

    from methods.parametric.lisco import start_points

    problem, mc = setup.problem, setup.method_cfg
    dtype = jnp.dtype(setup.precision)
    key = jax.random.PRNGKey(mc.init_seed + cfg.seed)
    history: list = []
    if mc.train:
        pred_params, sol_params, status, info = _train(
            cfg, setup, problem, dtype, out, history, key
        )
        _save_networks(out, pred_params, sol_params, mc, problem, dtype)
    else:
        pred_params, sol_params = networks if networks is not None else trained_networks(cfg, setup)
        _save_networks(out, pred_params, sol_params, mc, problem, dtype)
        status, info = "evaluated", {"checkpoint": str(mc.checkpoint)}
    rec: dict = {**info}
    xj = jnp.asarray(x, dtype)
    k_start = jax.random.PRNGKey(10_000 + cfg.seed)  # z₀ ~ N(0, 1) draws without a predictor

    if pred_params is not None:  # Table 1 "Pred.": the predictor alone
        z0 = np.asarray(start_points(problem, mc, dtype, pred_params, xj, k_start))
        sm0 = problem.sample_metrics(z0, x, ref["objective"])
        rec.update({f"pred.{k}": v for k, v in summarize(sm0).items()})

    timing = time_lisco(problem, mc, dtype, pred_params, sol_params, x, k_start)
    result, secs = timing.pop("result"), timing.pop("seconds")
    timing.pop("batch_s_all")  # a record holds scalars (batch_s is their median)
    rec.update(timing)
    z = np.asarray(result.z)
    sm = problem.sample_metrics(z, x, ref["objective"])
    its, hits = np.asarray(result.iterations), np.asarray(result.hits)
    # Table 2 counts converged runs only (the paper's rule); all runs if none converged
    ok = np.asarray(result.merit) <= mc.tol  # = result.converged unless method.stop_tol
    sel = ok if ok.any() else np.ones_like(ok)
    rec.update(summarize(sm, its[sel], secs[sel], hits, mc.tol))
    rec["timing_over"] = "converged" if ok.any() else "all"
    rec["success_loop"] = float(np.mean(ok))  # T in the run's dtype ≤ tol
    rec["resets_mean"] = float(np.mean(np.asarray(result.resets)))
    _samples_csv(out, sm, iterations=its, seconds=secs, resets=np.asarray(result.resets))
    k, fr = _convergence(hits, mc.n_max)
    import pandas as pd

    write_atomic(
        out / "convergence.csv",
        pd.DataFrame({"iteration": k, **{f"frac_T_le_{thr:g}": f for thr, f in fr.items()}}).to_csv(
            index=False
        ),
    )
    if history:
        write_atomic(out / "history.csv", pd.DataFrame(history).to_csv(index=False))
    variant = "with Pred." if pred_params is not None else "w/o Pred."
    figures = [
        (
            convergence_figure,
            out / "convergence.png",
            ({f"½‖F‖² ≤ {thr:g}": (k, f) for thr, f in fr.items()},),
            {"title": f"LISCO {variant}, {problem.name}"},
        )
    ]
    return rec, status, figures


# --- baselines -----------------------------------------------------------------------------


def run_baseline(cfg: DictConfig, setup, out: Path, x: np.ndarray, ref: dict):
    """A host solver of the family (its ``MethodSpec.solve``) on the test points."""
    from methods import METHODS

    problem, mc = setup.problem, setup.method_cfg
    bar = _bar(cfg.progress, len(x), f"{setup.method_name} {problem.name}")
    r, extra = METHODS[setup.method_name].solve(problem, mc, x, on_instance=lambda i: bar.update())
    bar.close()
    z = np.hstack([r.y, r.nu, r.lam])
    sm = problem.sample_metrics(z, x, ref["objective"])
    secs = r.total_s  # per instance: setup + solve (IPOPT is built once: its solve alone)
    rec = summarize(sm, r.iterations, secs)
    batched = "batch.batch_s" in extra  # one call for all points (its figures in extra)
    rec.update(
        solve_only_median_s=float(np.median(r.solve_s)),
        solver_success=float(np.mean(r.success)),
        throughput=len(x) / float(np.sum(secs)),
        batch_size=len(x) if batched else 1,
        **extra,
    )
    _samples_csv(out, sm, iterations=r.iterations, seconds=secs, status=np.asarray(r.status))
    from methods.driver import Status

    failed = int(np.sum(~np.asarray(r.success)))
    if failed == 0:
        status = Status.CONVERGED
    elif failed < len(x):  # a result: the unsolved instances are in success / solver_success
        status = Status.PARTIAL
        rec["status_message"] = f"{failed}/{len(x)} instances unsolved"
    else:  # nothing solved: not a result (runners.io.status_failed)
        status = Status.SOLVER_FAILED
        rec["status_message"] = f"{r.status[0]} on all {len(x)} instances"
    return rec, status


def run_parametric_opt(cfg: DictConfig, setup, out: Path, base: dict) -> tuple[dict, str]:
    """One run of the family; returns (metrics record, one-line summary)."""
    import jax

    from methods import METHODS

    jax.config.update("jax_enable_x64", True)  # metrics in float64; networks in method dtype
    problem = setup.problem
    x = problem.test_x
    learned = METHODS[setup.method_name].solve is None  # LISCO; the baselines have solve()
    networks = None
    if learned and not setup.method_cfg.train:  # evaluate saved networks: fail before the work
        networks = trained_networks(cfg, setup)
    t0 = time.perf_counter()
    ref = reference(problem, x, Path(cfg.results_dir) / "cache", cfg.progress)
    ref_s = time.perf_counter() - t0
    if learned:
        rec, status, figures = run_lisco(cfg, setup, out, x, ref, networks)
    else:
        (rec, status), figures = run_baseline(cfg, setup, out, x, ref), []
    record = {
        **{k: v for k, v in base.items() if k not in ("finished_at", "run_dir")},
        "status": status,
        "n_test": len(x),
        "reference_s": ref_s,
        **rec,
        "finished_at": base["finished_at"],
        "run_dir": str(out),
    }
    write_json(out / "metrics.json", record)
    if cfg.figures:  # after metrics.json: a failing figure loses nothing
        for fn, path, args, kwargs in figures:
            draw(fn, path, *args, **kwargs)
    summary = (
        f"{problem.name} / {setup.method_name} (seed {cfg.seed}, {status_text(record)}): "
        f"success {record['success']:.3f}, median ½‖F‖² {record['T_p50']:.2e}, "
        f"gap {record.get('gap_mean', float('nan')):+.2e}%, median it "
        f"{record.get('it_median', float('nan')):.0f}, median time "
        f"{record['time_median_s'] * 1e3:.2f} ms -> {out}"
    )
    return record, summary


def sweep_convergence_figure(results: Path, path: Path) -> int:
    """One panel per problem: the convergence curves of every lisco run under ``results``
    (with / w/o predictor, ½‖F‖² ≤ 1e-6 dashed, ≤ 1e-8 solid). Returns the runs drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    from runners.tables import collect, failed_flags, warn

    runs = []
    df = collect(results)
    df = df[~failed_flags(df)] if len(df) else df
    for rec in (r for _, r in df.iterrows() if r["method"] == "lisco"):
        csv = Path(rec["path"]) / "convergence.csv"
        if not csv.is_file():
            continue
        try:
            runs.append(
                (
                    rec.to_dict(),
                    pd.read_csv(csv)[["iteration", "frac_T_le_1e-06", "frac_T_le_1e-08"]],
                )
            )
        except (OSError, ValueError, KeyError) as e:
            warn(f"skipping {csv}: {type(e).__name__}")
    problems = sorted({r["problem"] for r, _ in runs})
    if not problems:
        return 0
    fig, axes = plt.subplots(
        1, len(problems), figsize=(4.6 * len(problems), 3.8), squeeze=False, constrained_layout=True
    )
    for ax, prob in zip(axes[0], problems):
        for with_pred, color, label in ((True, "C0", "with Pred."), (False, "C1", "w/o Pred.")):
            mine = [
                df
                for rec, df in runs
                if rec["problem"] == prob and bool(rec.get("method.predictor")) == with_pred
            ]
            if not mine:
                continue
            n = f" (mean of {len(mine)} instances)" if len(mine) > 1 else ""
            for thr, ls in ((1e-6, "--"), (1e-8, "-")):
                col = f"frac_T_le_{thr:g}"
                if len(mine) > 1:  # each instance thin, their mean bold
                    for df in mine:
                        ax.plot(df["iteration"], df[col], ls, color=color, lw=0.6, alpha=0.35)
                mean = pd.concat([df.set_index("iteration")[col] for df in mine], axis=1)
                ax.plot(
                    mean.index,
                    mean.mean(axis=1),
                    ls,
                    color=color,
                    lw=1.6,
                    label=f"{label}, ≤ {thr:g}{n}",
                )
        ax.set(xscale="symlog", xlabel="iteration", title=prob, ylim=(-0.02, 1.02))
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("fraction of test points with ½‖F‖² ≤ τ")
    axes[0][-1].legend(fontsize=8)
    save_figure(fig, path, dpi=110)
    return len(runs)


def main(argv=None):
    import argparse

    ap = argparse.ArgumentParser(
        prog="python -m runners.parametric",
        description="LISCO convergence figure of a sweep folder",
    )
    ap.add_argument("--results", required=True, help="folder searched for lisco runs")
    ap.add_argument("--out", required=True, help="figure path (.png)")
    args = ap.parse_args(argv)
    if not Path(args.results).is_dir():
        print(f"error: --results: no such folder {args.results!r}", file=sys.stderr)
        sys.exit(2)
    n = sweep_convergence_figure(Path(args.results), Path(args.out))
    print(f"wrote {args.out} ({n} lisco runs)")


__all__ = ["run_parametric_opt", "summarize", "reference", "THRESHOLDS", "sweep_convergence_figure"]

if __name__ == "__main__":
    main()

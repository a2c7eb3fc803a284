"""Train one problem with one method: ``python -m runners.train [overrides]``.

Hydra composes ``conf/train.yaml`` with a problem, a method and a scale; this module
validates the config (one-line errors, exit code 2, nothing written), runs the optional
pretraining step and the method in compiled chunks with a progress bar, and writes
the run's artifacts atomically into Hydra's output directory:

    metrics.json   one flat record (final metrics, status, timings, config, versions)
    history.csv    one row per logged chunk (phase, iteration, objective, ‖c‖, μ, ...)
    params.msgpack final network parameters (Flax msgpack: data, not pickle)
    solution.png   exact / predicted / |error| heatmaps
    .hydra/        the resolved config (Hydra)

A sweep (``-m``) re-run skips runs whose metrics.json says they finished with the same
config (``resume=true``).
"""

from __future__ import annotations

if __name__ == "__main__":  # before the imports below (seconds): a stop signal from now on
    from runners import signals  # is handled (runners.signals), not a silent death

    signals.install()

import hashlib
import logging
import math
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NamedTuple

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from problems.common.base import CONSTRAINED_LEARNING, STOCHASTIC_CONSTRAINED
from problems.dae.base import NEURAL_DAE
from problems.parametric.base import PARAMETRIC_OPT
from runners.io import (
    draw,
    flatten,
    git_commit,
    read_json,
    save_figure,
    status_name,
    write_atomic,
    write_json,
)
from runners.plumbing import (
    Progress,
    _multirun,
    config_hash,
    fail,
    interrupted,
    open_checkpoint,
    seeds_hash,
    usable_cpus,
    versions,
)
from runners.setup import ConfigError, Setup, load_plugins, resolve

log = logging.getLogger("runners.train")
CONF_DIR = Path(__file__).resolve().parent.parent / "conf"
# top-level config recorded in metrics.json besides problem.* and method.* (what tables can
# show as columns; the group hash covers the whole config whatever is recorded)
RECORDED_NODES = ("budget", "pretraining")
RECORDED_KEYS = ("log_every", "eval_every")


def solution_figure(problem, params, data, path: Path, title: str):
    """Exact / predicted / |error| heatmaps over (x, t) on a strided evaluation grid."""
    import jax
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    nt, nx = data.u_ref.shape
    sx, st = max(1, nx // 512), max(1, nt // 256)
    sub = data._replace(
        eval_x=data.eval_x[::sx], eval_t=data.eval_t[::st], u_ref=data.u_ref[::st, ::sx]
    )
    pred = np.asarray(jax.jit(problem.predict_grid)(params, sub))
    exact = np.asarray(sub.u_ref)
    extent = (0.0, 2 * np.pi, 0.0, 1.0)
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6), constrained_layout=True)
    vmin, vmax = exact.min(), exact.max()
    for ax, img, name, kw in (
        (axes[0], exact, "reference u*", {"vmin": vmin, "vmax": vmax}),
        (axes[1], pred, "predicted u_θ", {"vmin": vmin, "vmax": vmax}),
        (axes[2], np.abs(pred - exact), "|u_θ − u*|", {"cmap": "magma"}),
    ):
        im = ax.imshow(img, origin="lower", aspect="auto", extent=extent, **kw)
        ax.set(title=name, xlabel="x", ylabel="t")
        fig.colorbar(im, ax=ax)
    fig.suptitle(title)
    save_figure(fig, path, dpi=110)


def seed_config(cfg: DictConfig, seed: int) -> DictConfig:
    """The config of the separate run with this seed (``seeds=N`` writes one record per
    seed with this config's hash, so its records compare with separate runs')."""
    from omegaconf import open_dict

    c = cfg.copy()
    with open_dict(c):
        c.seed, c.seeds = seed, 1
    return c


def _finished(out: Path, chash: str) -> dict | None:
    old = read_json(out / "metrics.json")
    if old and status_name(old.get("status")) and old.get("config_hash") == chash:
        return old
    return None


def run(cfg: DictConfig, out: Path) -> dict | list | None:
    """One run of ``cfg`` writing into ``out``; returns the metrics record.

    ``seeds=N`` (N > 1) runs seeds ``seed .. seed+N-1`` and writes each one's folder
    ``out/seed=<s>/``; it returns the list of records. The run holds ``out/run.lock`` while
    it works: a second launch of the same run (the same sweep job folder, or for a single
    run a live run of the same config beside it) is skipped with a one-line notice and
    returns None. A stop signal outside a checkpointable phase ends the process with code
    143 and one line.
    """
    from runners.lock import RunLock, describe, running_sibling
    from runners.signals import EXIT_INTERRUPTED, StopRequested

    try:
        setup: Setup = resolve(cfg)
    except ConfigError as e:
        _remove_if_empty(out)
        fail(str(e))
    try:
        chash = seeds_hash(config_hash(cfg), cfg.get("seeds", 1))
        lock = RunLock(out, chash)
        owner, where = lock.acquire(), out
        if owner is None and not _multirun():
            sibling = running_sibling(out.parent, chash, exclude=out)
            if sibling is not None:
                lock.release()
                where, owner = sibling
                _remove_if_empty(out)  # this invocation's own, fresh folder
        if owner is not None:
            print(
                f"skipping {where}: the same run is in progress ({describe(owner)}; see "
                f"its {lock.path.name})",
                file=sys.stderr,
                flush=True,
            )
            return None
        if lock.taken_over:
            print(
                f"note: {lock.path} was left by {describe(lock.taken_over)}, which is gone; "
                "taking it over",
                file=sys.stderr,
                flush=True,
            )
        try:
            return _run_locked(cfg, setup, out)
        finally:
            lock.release()
    except StopRequested as e:
        kept = any(out.glob("**/checkpoint/checkpoint.json"))
        _remove_if_empty(out)
        print(
            f"interrupted by {e.signal} outside a checkpointable phase: "
            + (
                f"the earlier checkpoint in {out} is kept; run the same command again to continue"
                if kept
                else "nothing was saved; run the same command again to start over"
            ),
            file=sys.stderr,
            flush=True,
        )
        sys.exit(EXIT_INTERRUPTED)


def _run_locked(cfg: DictConfig, setup: Setup, out: Path) -> dict | list:
    seeds = list(range(cfg.seed, cfg.seed + cfg.get("seeds", 1)))
    vec = len(seeds) > 1
    outs = [out / f"seed={s}" for s in seeds] if vec else [out]
    hashes = [config_hash(seed_config(cfg, s) if vec else cfg) for s in seeds]
    old = [_finished(o, h) for o, h in zip(outs, hashes)]
    if cfg.resume and all(old):
        log.info(
            "skipping finished run%s (%s) in %s",
            "s" if vec else "",
            ", ".join(r["status"] for r in old),
            out,
        )
        return old if vec else old[0]

    import jax

    jax.config.update("jax_enable_x64", setup.precision == "float64")
    if cfg.jax_cache_dir:  # persistent compilation cache: repeated runs skip XLA compiles
        jax.config.update("jax_compilation_cache_dir", str(Path(cfg.jax_cache_dir).expanduser()))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)

    dev = jax.devices()[0]
    log.info(
        "JAX %s on %s (%s); precision %s",
        jax.__version__,
        dev.platform.upper(),
        dev.device_kind,
        setup.precision,
    )
    if setup.problem.family in FAMILY_RUNNERS:  # CasADi / IPOPT / LISCO: their own runner
        if vec:
            print(
                f"note: seeds={len(seeds)}: {setup.method_name} on {setup.problem.name} is not "
                "a vectorizable JAX stepper; running the seeds one after another",
                flush=True,
            )
        records = []
        for s, o, h, done in zip(seeds, outs, hashes, old):
            if done and cfg.resume:
                records.append(done)
                continue
            _retire_record(o)
            records.append(_run_branch(seed_config(cfg, s) if vec else cfg, setup, o, h, dev))
        return records if vec else records[0]
    for o in outs:  # the vmapped program reruns every seed
        _retire_record(o)
    try:
        records = _run_jax(cfg, setup, seeds, outs, hashes, dev)
    except ConfigError as e:  # a checkpoint that does not fit this run
        fail(str(e))
    return records if vec else records[0]


def _retire_record(out: Path) -> None:
    """A run is about to (re)write ``out``: an earlier record there (another configuration,
    or resume=false) is moved aside as ``metrics.replaced-<time>.json``, so the folder never
    pairs one run's record with another run's history or parameters."""
    old = out / "metrics.json"
    if old.exists():
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
        dst = out / f"metrics.replaced-{stamp}.json"
        old.rename(dst)
        print(
            f"note: {old} is of an earlier run; moved aside to {dst.name}",
            file=sys.stderr,
            flush=True,
        )


def _record_base(cfg, setup, chash, dev, out) -> dict:
    """The fields every record has: names, config (flattened), versions, provenance; and
    the problem's ``metric_labels`` when it has any (how tables name its metrics)."""
    choices = HydraConfig.get().runtime.choices if HydraConfig.initialized() else {}
    labels = getattr(setup.problem, "metric_labels", None)
    return {
        **({"metric_labels": dict(labels)} if labels else {}),
        "problem": setup.problem.name,
        "method": setup.method_name,
        "family": setup.problem.family,
        "seed": cfg.seed,
        "scale": choices.get("scale", cfg.scale.get("name")),
        "tag": cfg.get("tag"),
        **flatten(OmegaConf.to_container(cfg.problem, resolve=True), "problem."),
        **flatten(OmegaConf.to_container(cfg.method, resolve=True), "method."),
        **flatten(
            {k: OmegaConf.to_container(cfg[k], resolve=True) for k in RECORDED_NODES if k in cfg}
        ),
        **{k: cfg.get(k) for k in RECORDED_KEYS},
        "precision": setup.precision,
        "overrides": list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else [],
        "config_hash": chash,
        "group_hash": config_hash(cfg, seed=False),
        "device": f"{dev.platform}:{dev.device_kind}",
        "cpus": usable_cpus(),  # XLA:CPU's reductions round by it (runners.plumbing)
        **{f"version.{k}": v for k, v in versions().items()},
        "commit": git_commit(),
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "run_dir": str(out),
    }


# families whose runs are not the chunked, vmappable JAX steppers of ``_run_jax``: the module
# and function that run one seed, ``(cfg, setup, out, base_record) -> (record, summary)``
FAMILY_RUNNERS = {
    NEURAL_DAE: ("runners.dae", "run_neural_dae"),
    PARAMETRIC_OPT: ("runners.parametric", "run_parametric_opt"),
}


def _run_branch(cfg, setup, out: Path, chash: str, dev) -> dict:
    """One seed of a family in :data:`FAMILY_RUNNERS` (neural DAE: collocation / sequential;
    parametric optimization: LISCO and its baselines)."""
    import importlib

    base = _record_base(cfg, setup, chash, dev, out)
    module, name = FAMILY_RUNNERS[setup.problem.family]
    branch = getattr(importlib.import_module(module), name)
    try:
        record, summary = branch(cfg, setup, out, base)
    except ConfigError as e:  # found only once the run looks at files (a checkpoint)
        _remove_if_empty(out)
        fail(str(e))
    print(summary, flush=True)
    return record


def _stack(trees):
    import jax
    import jax.numpy as jnp

    return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def _stack_data(trees):
    """(stacked data, vmap in_axes): leaves equal across seeds stay one copy (axis None)."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    flat = [jax.tree.flatten(t) for t in trees]
    treedef = flat[0][1]
    leaves, axes = [], []
    for xs in zip(*(f[0] for f in flat)):
        same = all(np.array_equal(np.asarray(xs[0]), np.asarray(x)) for x in xs[1:])
        leaves.append(xs[0] if same else jnp.stack(xs))
        axes.append(None if same else 0)
    return jax.tree.unflatten(treedef, leaves), jax.tree.unflatten(treedef, axes)


def _take(tree, i, axes=None):
    """Seed ``i`` of a stacked tree (``axes``: the in_axes of ``_stack_data``; None: all 0)."""
    import jax

    if axes is None:
        return jax.tree.map(lambda x: x[i], tree)
    flat, treedef = jax.tree.flatten(tree)
    ax = jax.tree.flatten(axes, is_leaf=lambda x: x is None)[0]
    return jax.tree.unflatten(treedef, [x if a is None else x[i] for x, a in zip(flat, ax)])


def _run_jax(cfg, setup, seeds, outs, hashes, dev) -> list[dict]:
    """The chunked JAX steppers (constrained learning, stochastic constrained): one program,
    vmapped over the seeds when there are several; checkpoints and stop signals."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from methods import pretrain_method
    from methods.driver import Interrupted
    from runners.checkpoint import CheckpointMismatch, Phases, StopSignals

    problem, dtype = setup.problem, jnp.dtype(setup.precision)
    vec = len(seeds) > 1
    n = len(seeds) if vec else None
    out = outs[0].parent if vec else outs[0]
    t_start = time.perf_counter()
    datas, inits = _initial(cfg, problem, seeds)
    if vec:
        data, data_axes = _stack_data(datas)
        params = _stack(inits)
    else:
        data, data_axes, params = datas[0], None, inits[0]
    data_s = time.perf_counter() - t_start
    history: list = []
    progress = Progress(cfg, problem, data, history, out, data_axes, vec)
    ckpt = open_checkpoint(cfg, out, config_hash(cfg), len(seeds))
    vmap = (
        (lambda f, axes=(0, data_axes): jax.vmap(f, in_axes=axes))
        if vec
        else (lambda f, axes=None: f)
    )
    statuses = [None] * len(seeds)
    iterations = [0] * len(seeds)
    with StopSignals() as stop:
        phases = Phases(
            ckpt,
            history,
            progress,
            log_every=cfg.log_every,
            every=cfg.get("checkpoint_every", 0),
            stop=stop,
            seeds=n,
            data_axes=data_axes,
            names=("pretrain", "train"),
        )
        suffix = f" ×{n} seeds" if vec else ""
        try:
            pre_flags = None
            if setup.pretrain_cfg is not None and phases.current in (None, "pretrain"):
                pm = pretrain_method(problem, setup.pretrain_cfg, dtype)
                r = phases.run(
                    "pretrain",
                    pm,
                    vmap(pm.init)(params, data),
                    data,
                    max_steps=setup.pretrain_cfg.inner_maxiter,
                    budget=setup.time_s,
                    desc=f"pretrain {problem.name}{suffix}",
                )
                params = vmap(pm.params, 0)(r.state)
                st = r.status if vec else [r.status]
                its = np.atleast_1d(np.asarray(vmap(pm.iterations, 0)(r.state)))
                pre = [
                    _pretrain_record(
                        cfg,
                        problem,
                        _take(params, i) if vec else params,
                        _take(data, i, data_axes) if vec else data,
                        seeds[i],
                        st[i],
                        int(its[i]),
                        r,
                    )
                    for i in range(len(seeds))
                ]
                phases.extra["pre"] = pre
                pre_flags = (
                    jnp.asarray([x == "diverged" for x in st])
                    if vec
                    else jnp.asarray(st[0] == "diverged")
                )
            method, state = _method_and_state(setup, dtype, seeds, params, data, data_axes)
            if not vec and pre_flags is not None and bool(pre_flags):
                statuses = ["diverged"]
            else:
                r = phases.run(
                    "train",
                    method,
                    state,
                    data,
                    max_steps=setup.max_iter,
                    budget=setup.time_s - phases.timing["train_s"],
                    desc=f"{setup.method_name} {problem.name}{suffix}",
                    diverged=pre_flags,
                )
                state = r.state
                statuses = r.status if vec else [r.status]
                iterations = [
                    int(x) for x in np.atleast_1d(np.asarray(vmap(method.iterations, 0)(state)))
                ]
                params = vmap(method.params, 0)(state)
        except CheckpointMismatch as e:  # a checkpoint that does not fit this run
            raise ConfigError(f"checkpoint: {e}") from None
        except Interrupted as e:
            interrupted(progress, stop, ckpt, e)
    progress.flush()
    outcome = Outcome(
        params,
        data,
        data_axes,
        history,
        statuses,
        iterations,
        phases.timing,
        data_s,
        phases.extra.get("pre", [{} for _ in seeds]),
        jax.jit(problem.evaluate),
    )
    records = [
        _seed_record(cfg, setup, dev, outcome, i, s, o, h)
        for i, (s, o, h) in enumerate(zip(seeds, outs, hashes))
    ]
    ckpt.finish()
    return records


class Outcome(NamedTuple):
    """What the phases of :func:`_run_jax` leave for the records (stacked over seeds when
    vectorized)."""

    params: Any
    data: Any
    data_axes: Any
    history: list
    statuses: list
    iterations: list
    timing: dict
    data_s: float
    pre: list  # each seed's pretraining record
    evaluate: Callable  # the problem's evaluate, jitted once for every seed


def _seed_record(cfg, setup, dev, o_: Outcome, i: int, s: int, o: Path, h: str) -> dict:
    """Seed ``i``'s evaluation, ``params.msgpack``, ``metrics.json`` (then its figures) and
    its summary line; returns the record."""
    from flax import serialization

    n_seeds = len(o_.statuses)
    problem, vec = setup.problem, n_seeds > 1
    params, data, data_axes, history = o_.params, o_.data, o_.data_axes, o_.history
    statuses, iterations, timing, pre = o_.statuses, o_.iterations, o_.timing, o_.pre
    p_i = _take(params, i) if vec else params
    d_i = _take(data, i, data_axes) if vec else data
    t_eval = time.perf_counter()
    final = {k: float(v) for k, v in o_.evaluate(p_i, d_i).items()}
    eval_s = time.perf_counter() - t_eval
    hist_i = [
        {k: v for k, v in r.items() if k != "seed_index"}
        for r in history
        if r.get("seed_index", i) == i
    ]
    if vec:  # an ordinary run folder: its own history and config (what figures load)
        import pandas as pd

        write_atomic(o / "history.csv", pd.DataFrame(hist_i).to_csv(index=False))
        write_atomic(o / ".hydra" / "config.yaml", OmegaConf.to_yaml(seed_config(cfg, s)))
    write_atomic(o / "params.msgpack", serialization.to_bytes(p_i))
    label = f"{problem.name} / {setup.method_name}  (seed {s}, status {statuses[i]})"
    last = next((r for r in reversed(hist_i) if r.get("phase") == "train"), {})
    pre_last = next((r for r in reversed(hist_i) if r.get("phase") == "pretrain"), {})
    base = _record_base(seed_config(cfg, s) if vec else cfg, setup, h, dev, o)
    record = {
        **{k: base[k] for k in ("problem", "method", "family", "seed", "scale", "tag")},
        "pretrain": setup.pretrain_cfg is not None,
        "status": statuses[i],
        "iterations": iterations[i],
        **({"rounds": int(last["round"])} if "round" in last else {}),
        **_inner_endings(last),
        **_inner_endings(pre_last, prefix="pretrain_"),
        **final,
        "wall_s": timing["train_s"],
        "compile_s": timing["compile_s"],
        "data_s": o_.data_s,
        "eval_s": eval_s,
        **(pre[i] if i < len(pre) else {}),
        **({"vectorized_seeds": n_seeds} if vec else {}),
        **base,
    }
    write_json(o / "metrics.json", record)
    if cfg.figures:  # after metrics.json: a failing figure is a warning, never fatal
        _run_figures(problem, o, p_i, d_i, hist_i, label)
    figures = ", ".join(f"{k} {final[k]:.4g}" for k in SHOWN if k in final)
    print(
        f"{label}: iterations {iterations[i]}, {figures}, wall {timing['train_s']:.1f}s "
        f"(+ compile {timing['compile_s']:.1f}s) -> {o}",
        flush=True,
    )
    if problem.family == CONSTRAINED_LEARNING:
        _say_paper_gap(seed_config(cfg, s) if vec else cfg, problem.name, setup.method_name, final)
    return record


def _initial(cfg, problem, seeds) -> tuple[list, list]:
    """Each seed's data and initial weights. Stochastic family: both fixed by
    ``problem.data_seed`` (the seed draws the mini-batches only); otherwise from the seed."""
    import jax

    if problem.family == STOCHASTIC_CONSTRAINED:
        data = problem.make_data(cache_dir=str(Path(cfg.results_dir) / "cache"))
        params0 = problem.init_params(jax.random.PRNGKey(problem.cfg.data_seed))
        return [data] * len(seeds), [params0] * len(seeds)
    datas, inits = [], []
    for s in seeds:
        k_data, k_init = jax.random.split(jax.random.PRNGKey(s))
        datas.append(problem.sample_data(k_data))
        inits.append(problem.init_params(k_init))
    return datas, inits


def _method_and_state(setup, dtype, seeds, params, data, data_axes):
    """The method's init/step and its initial state; with several seeds (stacked params and
    data) each seed's own init (its mini-batch key), as in a separate run."""
    import jax

    from methods import build_method

    def build(seed):
        key = jax.random.PRNGKey(seed)
        return build_method(setup.method_name, setup.method_cfg, setup.problem, dtype, key=key)

    method = build(seeds[0])
    if len(seeds) == 1:
        return method, method.init(params, data)
    states = [
        build(s).init(_take(params, i), _take(data, i, data_axes)) for i, s in enumerate(seeds)
    ]
    return method, _stack(states)


def _pretrain_record(cfg, problem, params, data, seed, status, iterations, result) -> dict:
    """One seed's pretraining fields of metrics.json (how it ended, ‖c̃‖², IC residual, its
    settings), logged in one line."""
    from methods import pretrain_report

    rec = {
        "pretrain_status": status,
        "pretrain_iterations": iterations,
        "pretrain_wall_s": result.wall_s,
        "pretrain_compile_s": result.compile_s,
        **{k: float(v) for k, v in pretrain_report(problem, params, data).items()},
        **flatten(OmegaConf.to_container(cfg.pretraining, resolve=True), "pretraining."),
    }
    log.info(
        "pretraining (seed %d): %s after %d iterations, ||c~||^2 = %.3e, IC residual/||u0|| = %.3f",
        seed,
        status,
        iterations,
        rec["pretrain_c_sq"],
        rec["pretrain_ic_rel"],
    )
    return rec


def _inner_endings(last: dict, prefix: str = "") -> dict:
    """From a phase's last history row: line searches that failed (penalty / auglag / pinn
    and pretraining, optax) and how the inner solves ended ((A.1)'s g_tol, f_tol, l_max or a
    failed line search)."""
    out = {}
    if "ls_failures" in last:
        out[f"{prefix}ls_failures"] = int(last["ls_failures"])
    if "ls_increase" in last:
        out[f"{prefix}ls_increase"] = float(last["ls_increase"])
    for k, v in last.items():
        if k.startswith("inner_ends_") and v is not None and math.isfinite(v):
            out[f"{prefix}{k}"] = int(v)
    return out


# the metrics a run's last line shows, where the problem has them
SHOWN = ("abs_error", "rel_error", "max_constraint_violation", "total", "test_mse", "max_abs_c")


def _run_figures(problem, out: Path, params, data, history: list, label: str) -> None:
    """A run's figures, each drawn by ``runners.io.draw`` (a failure is a warning): the
    problem's own (``problem.figures``, docs/extending.md), else the stochastic family's
    prediction and loss curves, else the PDE problems' solution against the reference."""
    from runners.figures import loss_curves_figure, prediction_figure

    stochastic = problem.family == STOCHASTIC_CONSTRAINED
    if hasattr(problem, "figures"):
        draw(problem.figures, out, params, data, title=label)
    elif stochastic:
        draw(prediction_figure, out / "prediction.png", problem, params, data, title=label)
    elif hasattr(data, "u_ref"):  # the PDE problems' reference grid
        draw(solution_figure, out / "solution.png", problem, params, data, title=label)
    if stochastic:
        draw(loss_curves_figure, out / "losses.png", history, title=label)


def _say_paper_gap(cfg, problem: str, method: str, final: dict) -> None:
    """The run against the paper's number, and what differs from the paper's setup."""
    from runners.paper import paper_gap

    try:
        line = paper_gap(cfg, problem, method, final)
    except Exception as e:  # informational only: the record is written already
        log.warning("no comparison with the paper (%s: %s)", type(e).__name__, e)
        return
    if line:
        print(line, flush=True)


def _remove_if_empty(out: Path):
    """Undo Hydra's run folder when a run is refused or stopped before it computed anything
    (a folder with a record or a checkpoint, its own or a seed folder's, is kept)."""
    import shutil

    if (
        out.is_dir()
        and not any(out.glob("**/metrics.json"))
        and not any(out.glob("**/checkpoint/checkpoint.json"))
    ):
        shutil.rmtree(out, ignore_errors=True)
        parent = out.parent
        while parent.name and parent != Path.cwd() and not any(parent.iterdir()):
            parent.rmdir()
            parent = parent.parent


MAX_DIRNAME = 120


def short_dirname(name: str) -> str:
    """A sweep job's folder name: its overrides, shortened with a hash past 120 characters
    (file systems refuse names over 255 bytes)."""
    if len(name) <= MAX_DIRNAME:
        return name
    digest = hashlib.sha1(name.encode()).hexdigest()[:12]
    return f"{name[: MAX_DIRNAME - 14]}~{digest}"


def default_n_jobs() -> int:
    """Parallel jobs of the joblib launcher: half the usable cores, at least 2 (1 on one
    core); each JAX process already runs large operations on several threads."""
    cores = usable_cpus()
    return 1 if cores <= 1 else max(2, cores // 2)


def submitit_dir(results_dir: str, sweep_name: str) -> str:
    """submitit's job folder (its pickles) for a sweep: ``.submitit/<sweep_name>`` beside
    ``results_dir``, never inside it."""
    return str(
        Path(str(results_dir)).expanduser().absolute().parent / ".submitit" / str(sweep_name)
    )


if not OmegaConf.has_resolver("submitit_dir"):
    OmegaConf.register_new_resolver("submitit_dir", submitit_dir)
if not OmegaConf.has_resolver("short_dirname"):
    OmegaConf.register_new_resolver("short_dirname", short_dirname)
# the commit of the code this process imported, fixed now: a record written hours later
# names it, not whatever the checkout holds then (runners.io.git_commit keeps the answer)
git_commit()

if not OmegaConf.has_resolver("default_n_jobs"):
    OmegaConf.register_new_resolver("default_n_jobs", default_n_jobs)


@hydra.main(config_path=str(CONF_DIR), config_name="train", version_base="1.3")
def hydra_entry(cfg: DictConfig):
    # JAX logs its failed TPU probe at INFO on every CPU/GPU run: noise in every run log
    logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)
    return run(cfg, Path(HydraConfig.get().runtime.output_dir))


# --- validation before Hydra creates any folder --------------------------------------------

_NO_RUN_FLAGS = {
    "--help",
    "-h",
    "--hydra-help",
    "--cfg",
    "-c",
    "--info",
    "-i",
    "--shell-completion",
    "-sc",
    "--resolve",
    "--version",
    "--config-name",
    "-cn",
    "--config-path",
    "-cp",
    "--config-dir",
    "-cd",
    "--experimental-rerun",
}


def prevalidate(argv: list[str]) -> None:
    """Compose every job of the command line and validate it; raises ConfigError.

    Hydra makes the run/sweep folders before calling the task, so bad values must be
    caught here for nothing to be written. Anything Hydra itself rejects (unknown group
    option, bad override syntax) is left for Hydra to report.
    """
    if any(a.split("=")[0] in _NO_RUN_FLAGS for a in argv):
        return
    args = [
        a
        for a in argv
        if not a.startswith("-")
        and (
            not a.lstrip("+~").startswith(("hydra.", "hydra/")) or a.startswith("hydra.searchpath=")
        )
    ]  # a user's config folder
    if "-m" in argv or "--multirun" in argv:
        args += _experiment_sweep(args)
    from hydra import compose, initialize_config_dir
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parsed = OverridesParser.create().parse_overrides(args)
        batches = BasicSweeper.split_arguments(parsed, None)
        jobs = [job for batch in batches for job in batch]
    except Exception:
        return
    seen = set()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        for job in jobs:
            key = tuple(job)
            if key in seen:
                continue
            seen.add(key)
            try:
                cfg = compose("train", overrides=list(job))
            except Exception:
                return  # Hydra reports its own composition errors
            resolve(cfg)


def _experiment_sweep(args: list[str]) -> list[str]:
    """The sweep an ``experiment=<name>`` config adds (its ``hydra.sweeper.params``) for the
    keys the command line does not set, so that every job Hydra will run is validated."""
    name = next((a.split("=", 1)[1] for a in args if a.startswith("experiment=")), None)
    path = CONF_DIR / "experiment" / f"{name}.yaml"
    if not name or not path.is_file():
        return []
    params = OmegaConf.load(path).get("hydra", {}).get("sweeper", {}).get("params", {}) or {}
    given = {a.split("=", 1)[0].lstrip("+~") for a in args}
    return [f"{k}={v}" for k, v in params.items() if k.lstrip("+~") not in given]


def load_cli_plugins(argv: list[str]) -> None:
    """Import the modules that the command line's ``plugins=[...]`` names before Hydra
    composes: the defaults nodes of what they register (``method_defaults_<name>``,
    runners/defaults.py) must exist for their YAML files to include them."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    for a in argv:
        if a.split("=", 1)[0].lstrip("+~") != "plugins":
            continue
        try:
            value = OverridesParser.create().parse_overrides([a])[0].value()
        except Exception:
            return  # Hydra reports a bad override itself
        if isinstance(value, (list, tuple)):  # not a sweep over plugin lists
            load_plugins(list(value))


def main():
    from runners import signals
    from runners.signals import EXIT_INTERRUPTED, StopRequested

    try:
        signals.immediate()  # a signal received while importing acts now
        try:
            load_cli_plugins(sys.argv[1:])
            prevalidate(sys.argv[1:])
        except ConfigError as e:
            fail(str(e))
        hydra_entry()
    except StopRequested as e:  # before a run started (its own handler did not see it)
        print(
            f"interrupted by {e.signal} before a run started: nothing was computed; run the "
            "same command again",
            file=sys.stderr,
            flush=True,
        )
        sys.exit(EXIT_INTERRUPTED)


if __name__ == "__main__":
    main()

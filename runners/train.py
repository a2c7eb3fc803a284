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

import hashlib
import logging
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from methods.driver import FINISHED
from problems.base import STOCHASTIC_CONSTRAINED
from problems.dae import NEURAL_DAE
from problems.parametric_opt import PARAMETRIC_OPT
from runners.io import flatten, read_json, save_figure, write_atomic, write_json
from runners.setup import ConfigError, Setup, resolve

log = logging.getLogger("runners.train")
CONF_DIR = Path(__file__).resolve().parent.parent / "conf"
# keys that do not change what a run computes (left out of its config hash)
NOT_HASHED = ("resume", "progress", "results_dir", "sweep_name", "figures", "jax_cache_dir",
              "table")


def config_hash(cfg: DictConfig) -> str:
    c = OmegaConf.to_container(cfg, resolve=True)
    for k in NOT_HASHED:
        c.pop(k, None)
    return hashlib.sha256(OmegaConf.to_yaml(OmegaConf.create(c)).encode()).hexdigest()[:16]


def versions() -> dict:
    import casadi
    import flax
    import jax
    import jaxlib
    import numpy
    import optax

    return {"python": platform.python_version(), "jax": jax.__version__,
            "jaxlib": jaxlib.__version__, "flax": flax.__version__, "optax": optax.__version__,
            "numpy": numpy.__version__, "casadi": casadi.__version__}


def fail(message: str, code: int = 2):
    print(f"error: {message}", file=sys.stderr)
    sys.exit(code)


class Progress:
    """A tqdm bar per phase plus history rows with subsampled errors every few chunks.

    The history so far is also written to ``history.csv`` every ``FLUSH_S`` seconds, so a
    long run that is killed still leaves its curve behind.
    """

    FLUSH_S = 30.0

    def __init__(self, cfg, problem, data, history: list, out: Path):
        import jax

        self.cfg, self.data, self.history, self.out = cfg, data, history, out
        self.log_errors = jax.jit(problem.log_errors) if hasattr(problem, "log_errors") else None
        self.bar = None
        self.flushed = time.perf_counter()

    def flush(self):
        import pandas as pd

        if self.history:
            write_atomic(self.out / "history.csv", pd.DataFrame(self.history).to_csv(index=False))
        self.flushed = time.perf_counter()

    def start(self, phase, method, desc):
        from tqdm.auto import tqdm

        self.close()
        self.phase, self.method, self.chunks = phase, method, 0
        self.bar = tqdm(total=method.progress_total, desc=desc, unit=method.progress_unit,
                        disable=not self.cfg.progress, dynamic_ncols=True, mininterval=0.5,
                        file=sys.stderr)

    def __call__(self, state, row):
        if self.log_errors is not None and self.chunks % self.cfg.eval_every == 0:
            errs = self.log_errors(self.method.params(state), self.data)
            row.update({k: float(v) for k, v in errs.items()})
        self.chunks += 1
        row["phase"] = self.phase
        self.history.append(row)
        self.bar.n = min(int(self.method.progress(state)), self.bar.total)
        post = {"loss": row.get("objective", row.get("loss_total", row.get("loss"))),
                "|c|": row.get("constraint_norm", row.get("max_abs_c"))}
        if self.phase != "pretrain" and "mu" in row:
            post["mu"] = row["mu"]
        self.bar.set_postfix({k: f"{v:.3g}" for k, v in post.items() if v is not None},
                             refresh=True)
        if time.perf_counter() - self.flushed > self.FLUSH_S:
            self.flush()

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def solution_figure(problem, params, data, path: Path, title: str):
    """Exact / predicted / |error| heatmaps over (x, t) on a strided evaluation grid."""
    import jax
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    nt, nx = data.u_ref.shape
    sx, st = max(1, nx // 512), max(1, nt // 256)
    sub = data._replace(eval_x=data.eval_x[::sx], eval_t=data.eval_t[::st],
                        u_ref=data.u_ref[::st, ::sx])
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


def run(cfg: DictConfig, out: Path) -> dict | None:
    """One run of ``cfg`` writing into ``out``; returns the metrics record."""
    try:
        setup: Setup = resolve(cfg)
    except ConfigError as e:
        _remove_if_empty(out)
        fail(str(e))
    chash = config_hash(cfg)
    old = read_json(out / "metrics.json")
    finished = old and str(old.get("status")).split(":")[0] in FINISHED
    if cfg.resume and finished and old.get("config_hash") == chash:
        log.info("skipping finished run (%s) in %s", old["status"], out)
        return old

    import jax

    jax.config.update("jax_enable_x64", setup.precision == "float64")
    if cfg.jax_cache_dir:  # persistent compilation cache: repeated runs skip XLA compiles
        jax.config.update("jax_compilation_cache_dir", str(Path(cfg.jax_cache_dir).expanduser()))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    import jax.numpy as jnp
    from flax import serialization

    from methods import build_method, pretrain_method, pretrain_report, run_chunked

    dev = jax.devices()[0]
    log.info("JAX %s on %s (%s); precision %s", jax.__version__, dev.platform.upper(),
             dev.device_kind, setup.precision)
    problem, dtype = setup.problem, jnp.dtype(setup.precision)
    choices = HydraConfig.get().runtime.choices if HydraConfig.initialized() else {}
    if problem.family in (NEURAL_DAE, PARAMETRIC_OPT):  # CasADi / IPOPT / LISCO branches
        base = {
            "problem": problem.name, "method": setup.method_name, "family": problem.family,
            "seed": cfg.seed, "scale": choices.get("scale", cfg.scale.get("name")),
            "tag": cfg.get("tag"),
            **flatten(OmegaConf.to_container(cfg.problem, resolve=True), "problem."),
            **flatten(OmegaConf.to_container(cfg.method, resolve=True), "method."),
            "precision": setup.precision,
            "overrides": list(HydraConfig.get().overrides.task) if HydraConfig.initialized()
            else [],
            "config_hash": chash, "device": f"{dev.platform}:{dev.device_kind}",
            **{f"version.{k}": v for k, v in versions().items()},
            "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "run_dir": str(out)}
        if problem.family == NEURAL_DAE:  # collocation (CasADi + IPOPT) or sequential
            from runners.dae import run_neural_dae as branch
        else:  # LISCO, IPOPT, OSQP on DC3's problems
            from runners.lisco import run_parametric_opt as branch
        try:
            record, summary = branch(cfg, setup, out, base)
        except ConfigError as e:  # found only once the run looks at files (a checkpoint)
            _remove_if_empty(out)
            fail(str(e))
        print(summary, flush=True)
        return record
    t_start = time.perf_counter()
    stochastic = problem.family == STOCHASTIC_CONSTRAINED
    if stochastic:  # data and initial weights fixed by problem.data_seed; seed: batches only
        data = problem.make_data(cache_dir=str(Path(cfg.results_dir) / "cache"))
        params = problem.init_params(jax.random.PRNGKey(problem.cfg.data_seed))
    else:
        k_data, k_init = jax.random.split(jax.random.PRNGKey(cfg.seed))
        data = problem.sample_data(k_data)
        params = problem.init_params(k_init)
    data_s = time.perf_counter() - t_start
    history: list = []
    progress = Progress(cfg, problem, data, history, out)
    pre: dict = {}
    status, compile_s, train_s = None, 0.0, 0.0
    budget = setup.time_s

    if setup.pretrain_cfg is not None:
        pm = pretrain_method(problem, setup.pretrain_cfg, dtype)
        progress.start("pretrain", pm, f"pretrain {problem.name}")
        r = run_chunked(pm, pm.init(params, data), data, max_steps=setup.pretrain_cfg.inner_maxiter,
                        log_every=cfg.log_every, time_budget_s=budget, on_chunk=progress)
        progress.close()
        params = pm.params(r.state)
        compile_s += r.compile_s
        train_s += r.wall_s
        budget -= r.wall_s
        pre = {"pretrain_status": r.status, "pretrain_iterations": int(r.state.iteration),
               "pretrain_wall_s": r.wall_s, "pretrain_compile_s": r.compile_s,
               **{k: float(v) for k, v in pretrain_report(problem, params, data).items()},
               **flatten(OmegaConf.to_container(cfg.pretraining, resolve=True), "pretraining.")}
        log.info("pretraining: %s after %d iterations, ||c~||^2 = %.3e, IC residual/||u0|| = %.3f",
                 r.status, r.state.iteration, pre["pretrain_c_sq"], pre["pretrain_ic_rel"])
        if r.status == "diverged":
            status = "diverged"

    method = build_method(setup.method_name, setup.method_cfg, problem, dtype,
                          key=jax.random.PRNGKey(cfg.seed))
    state = method.init(params, data)
    iterations = 0
    if status is None:
        progress.start("train", method, f"{setup.method_name} {problem.name}")
        r = run_chunked(method, state, data, max_steps=setup.max_iter, log_every=cfg.log_every,
                        time_budget_s=budget, on_chunk=progress)
        progress.close()
        state, status = r.state, r.status
        compile_s += r.compile_s
        train_s += r.wall_s
        iterations = int(method.iterations(state))
        params = method.params(state)

    t_eval = time.perf_counter()
    final = {k: float(v) for k, v in jax.jit(problem.evaluate)(params, data).items()}
    eval_s = time.perf_counter() - t_eval

    progress.flush()
    write_atomic(out / "params.msgpack", serialization.to_bytes(params))
    label = f"{problem.name} / {setup.method_name}  (seed {cfg.seed}, status {status})"
    if cfg.figures and stochastic:
        from runners.figures import loss_curves_figure, prediction_figure

        prediction_figure(problem, params, data, out / "prediction.png", label)
        loss_curves_figure(history, out / "losses.png", label)
    elif cfg.figures:
        solution_figure(problem, params, data, out / "solution.png", label)

    last = history[-1] if history else {}
    record = {
        "problem": problem.name, "method": setup.method_name, "family": problem.family,
        "seed": cfg.seed, "scale": choices.get("scale", cfg.scale.get("name")),
        "tag": cfg.get("tag"), "pretrain": setup.pretrain_cfg is not None, "status": status,
        "iterations": iterations,
        **({"rounds": int(last["round"])} if "round" in last and last.get("phase") == "train"
           else {}),
        **final,
        "wall_s": train_s, "compile_s": compile_s, "data_s": data_s, "eval_s": eval_s,
        **pre,
        **flatten(OmegaConf.to_container(cfg.problem, resolve=True), "problem."),
        **flatten(OmegaConf.to_container(cfg.method, resolve=True), "method."),
        "precision": setup.precision,
        "overrides": list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else [],
        "config_hash": chash, "device": f"{dev.platform}:{dev.device_kind}",
        **{f"version.{k}": v for k, v in versions().items()},
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "run_dir": str(out),
    }
    write_json(out / "metrics.json", record)
    shown = ("abs_error", "rel_error", "max_constraint_violation", "total", "test_mse",
             "max_abs_c")
    figures = ", ".join(f"{k} {final[k]:.4g}" for k in shown if k in final)
    print(f"{label}: iterations {iterations}, {figures}, wall {train_s:.1f}s "
          f"(+ compile {compile_s:.1f}s) -> {out}", flush=True)
    return record


def _remove_if_empty(out: Path):
    """Undo Hydra's run folder when a run is refused before it computed anything."""
    import shutil

    if out.is_dir() and not (out / "metrics.json").exists():
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
    return f"{name[:MAX_DIRNAME - 14]}~{digest}"


if not OmegaConf.has_resolver("short_dirname"):
    OmegaConf.register_new_resolver("short_dirname", short_dirname)


@hydra.main(config_path=str(CONF_DIR), config_name="train", version_base="1.3")
def hydra_entry(cfg: DictConfig):
    return run(cfg, Path(HydraConfig.get().runtime.output_dir))


# --- validation before Hydra creates any folder --------------------------------------------

_NO_RUN_FLAGS = {"--help", "-h", "--hydra-help", "--cfg", "-c", "--info", "-i",
                 "--shell-completion", "-sc", "--resolve", "--version", "--config-name", "-cn",
                 "--config-path", "-cp", "--config-dir", "-cd", "--experimental-rerun"}


def prevalidate(argv: list[str]) -> None:
    """Compose every job of the command line and validate it; raises ConfigError.

    Hydra makes the run/sweep folders before calling the task, so bad values must be
    caught here for nothing to be written. Anything Hydra itself rejects (unknown group
    option, bad override syntax) is left for Hydra to report.
    """
    if any(a.split("=")[0] in _NO_RUN_FLAGS for a in argv):
        return
    args = [a for a in argv if not a.startswith("-")
            and not a.lstrip("+~").startswith(("hydra.", "hydra/"))]
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


def main():
    try:
        prevalidate(sys.argv[1:])
    except ConfigError as e:
        fail(str(e))
    hydra_entry()


if __name__ == "__main__":
    main()

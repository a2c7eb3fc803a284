"""Run plumbing shared by every family runner (``runners.train``, ``runners.dae``,
``runners.parametric``): the config hash, progress bars with history rows, checkpoints, the stop
on a signal, versions and the one-line error exit. Imports nothing from the runners that
use it."""

from __future__ import annotations

import hashlib
import platform
import sys
import time
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from problems import resolve_precision
from runners.io import write_atomic

# keys that do not change what a run computes (left out of its config hash)
NOT_HASHED = (
    "resume",
    "progress",
    "results_dir",
    "sweep_name",
    "figures",
    "jax_cache_dir",
    "table",
    "tables",
    "seeds",
    "checkpoint_every",
)


def config_hash(cfg: DictConfig, seed: bool = True) -> str:
    """sha256 (16 hex digits) of the resolved config without the keys of ``NOT_HASHED``;
    ``seed=False``: without ``seed`` too, the *group hash* that runners.tables uses to tell
    seeds of one configuration from different configurations."""
    c = OmegaConf.to_container(cfg, resolve=True)
    if c.get("precision") == "auto":  # hash what runs: a float64 run keeps its hash
        c["precision"] = resolve_precision("auto", (c.get("problem") or {}).get("name"))
    for k in NOT_HASHED + (() if seed else ("seed",)):
        c.pop(k, None)
    if not c.get("plugins"):  # no plugins: the hash of a config from before the key existed
        c.pop("plugins", None)
    return hashlib.sha256(OmegaConf.to_yaml(OmegaConf.create(c)).encode()).hexdigest()[:16]


def seeds_hash(chash: str, n_seeds: int) -> str:
    """What identifies a run's work (its checkpoint, its lock): the config hash, and for
    ``seeds=N`` (N > 1, one vmapped program) N too."""
    if n_seeds == 1:
        return chash
    return hashlib.sha256(f"{chash}-seeds{n_seeds}".encode()).hexdigest()[:16]


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity, e.g. under ``taskset``), not the
    machine's count. Recorded with every run: XLA:CPU splits a reduction over all elements
    (a mean loss) or along the leading axis among as many threads as there are usable CPUs,
    so the same run with a different count rounds differently in the last bits, and training
    carries that forward. Same code, configuration and count: the same numbers, bit for bit."""
    import os

    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def versions() -> dict:
    import casadi
    import flax
    import jax
    import jaxlib
    import numpy
    import optax

    return {
        "python": platform.python_version(),
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "flax": flax.__version__,
        "optax": optax.__version__,
        "numpy": numpy.__version__,
        "casadi": casadi.__version__,
    }


def fail(message: str, code: int = 2):
    print(f"error: {message}", file=sys.stderr)
    sys.exit(code)


class _Lines:
    """A stream for tqdm off a terminal: each refresh becomes one plain line (no carriage
    returns or cursor moves in a log file)."""

    def __init__(self, stream):
        self.stream = stream

    def write(self, text: str):
        text = text.replace("\r", "").replace("\x1b[A", "").strip()
        if text:
            self.stream.write(text + "\n")

    def flush(self):
        self.stream.flush()


class Bar:
    """A progress bar: tqdm on a terminal; on a log file (stderr is not a TTY) one plain line
    every ``LOG_S`` seconds and one at the end, instead of carriage-return frames."""

    LOG_S = 60.0

    def __init__(self, total: int | None, desc: str, *, enabled: bool = True, unit: str = "it"):
        from tqdm.auto import tqdm

        self.tty = sys.stderr.isatty()
        self.last = time.perf_counter()
        self.bar = tqdm(
            total=total,
            desc=desc,
            unit=unit,
            disable=not enabled,
            file=sys.stderr if self.tty else _Lines(sys.stderr),
            dynamic_ncols=self.tty,
            ncols=None if self.tty else 100,
            mininterval=0.5 if self.tty else self.LOG_S,
        )

    @property
    def total(self):
        return self.bar.total

    def show(self, n: int, postfix: dict | None = None):
        """Set the count to ``n`` (and the postfix) and redraw, at most every ``LOG_S``
        seconds off a terminal."""
        self.bar.n = min(int(n), self.bar.total) if self.bar.total else int(n)
        if postfix:
            self.bar.set_postfix(postfix, refresh=False)
        now = time.perf_counter()
        if self.tty or now - self.last >= self.LOG_S:
            self.bar.refresh()
            self.last = now

    def update(self, k: int = 1):
        self.bar.update(k)

    def close(self):
        self.bar.close()


class Progress:
    """A tqdm bar per phase plus history rows with subsampled errors every few chunks.

    The history so far is also written to ``history.csv`` every ``FLUSH_S`` seconds, so a
    long run that is killed still leaves its curve behind. With seeds vectorized the driver
    hands over one row per seed; the bar follows the slowest seed.
    """

    FLUSH_S = 30.0

    def __init__(
        self, cfg, problem, data, history: list, out: Path, data_axes=None, vectorized: bool = False
    ):
        import jax

        self.cfg, self.data, self.history, self.out = cfg, data, history, out
        self.vec = vectorized
        fn = getattr(problem, "log_errors", None)
        self.log_errors = (
            None
            if fn is None
            else jax.jit(jax.vmap(fn, in_axes=(0, data_axes)) if vectorized else fn)
        )
        self.bar = None
        self.flushed = time.perf_counter()

    def flush(self):
        import pandas as pd

        if self.history:
            write_atomic(self.out / "history.csv", pd.DataFrame(self.history).to_csv(index=False))
        self.flushed = time.perf_counter()

    def start(self, phase, method, desc):
        import jax

        self.close()
        self.phase, self.method = phase, method
        self.chunks = sum(
            1 for r in self.history if r.get("phase") == phase and r.get("seed_index", 0) == 0
        )  # a resumed phase
        self.params = jax.jit(jax.vmap(method.params) if self.vec else method.params)
        self.count = jax.jit(jax.vmap(method.progress) if self.vec else method.progress)
        self.bar = Bar(
            method.progress_total, desc, enabled=self.cfg.progress, unit=method.progress_unit
        )

    def __call__(self, state, rows):
        import numpy as np

        rows = rows if self.vec else [rows]
        if self.log_errors is not None and self.chunks % self.cfg.eval_every == 0:
            errs = self.log_errors(self.params(state), self.data)
            for i, row in enumerate(rows):
                row.update({k: float(np.asarray(v)[i] if self.vec else v) for k, v in errs.items()})
        self.chunks += 1
        for row in rows:
            row["phase"] = self.phase
        self.history.extend(rows)
        row = max(rows, key=lambda r: r.get("constraint_norm", r.get("max_abs_c", 0.0)))
        post = {
            "loss": row.get("objective", row.get("loss_total", row.get("loss"))),
            "|c|": row.get("constraint_norm", row.get("max_abs_c")),
        }
        if self.phase != "pretrain" and "mu" in row:
            post["mu"] = row["mu"]
        self.bar.show(
            int(np.min(np.asarray(self.count(state)))),
            {k: f"{v:.3g}" for k, v in post.items() if v is not None},
        )
        if time.perf_counter() - self.flushed > self.FLUSH_S:
            self.flush()

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _multirun() -> bool:
    return HydraConfig.initialized() and str(HydraConfig.get().mode) == "RunMode.MULTIRUN"


def open_checkpoint(cfg, out: Path, chash: str, n_seeds: int = 1):
    """The run's checkpoint folder; a single run (its folder is new on every invocation)
    continues the newest interrupted run of the same config under the same parent."""
    from runners.checkpoint import Checkpoint, find_interrupted

    chash = seeds_hash(chash, n_seeds)  # a seeds=5 checkpoint is not a seeds=1 one
    previous = None
    if not _multirun() and not (out / "checkpoint" / "checkpoint.json").exists():
        previous = find_interrupted(out.parent, chash, exclude=out)
    ckpt = Checkpoint(out, chash, previous)
    meta = ckpt.meta()
    if meta is not None:
        print(
            f"resuming {ckpt.source} from its {meta['phase']} checkpoint at iteration "
            f"{meta['iteration']}",
            flush=True,
        )
    return ckpt


def interrupted(progress, stop, ckpt, e):
    """A stop signal arrived: the state is checkpointed; leave with exit code 143."""
    from runners.checkpoint import EXIT_INTERRUPTED

    progress.close()
    progress.flush()
    print(
        f"interrupted by {stop.requested} at iteration {e.iteration}: checkpoint in "
        f"{ckpt.dir}; run the same command again to continue",
        file=sys.stderr,
        flush=True,
    )
    sys.exit(EXIT_INTERRUPTED)


__all__ = [
    "NOT_HASHED",
    "Bar",
    "Progress",
    "config_hash",
    "fail",
    "interrupted",
    "open_checkpoint",
    "seeds_hash",
    "versions",
]

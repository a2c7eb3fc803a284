"""Method checkpoints (data, not pickle) and the stop signals of a scheduler.

A checkpoint is a folder ``<run dir>/checkpoint/`` with

    state-<iteration>.msgpack   the driver state: every leaf of the method's state pytree,
                                the divergence flags (Flax msgpack of {index: array})
    checkpoint.json             phase, iteration, config hash, history so far, the finished
                                phases' figures, and the name of the state file

written state first, then the JSON (atomically): the JSON is the commit record, so a kill
during a write leaves the previous checkpoint readable. The state is restored into the
tree structure of a freshly initialised state (``template``), so loading runs no code
from the file, and a checkpoint whose shapes or dtypes do not match is refused.

:class:`StopSignals` turns SIGTERM, SIGUSR1 and SIGUSR2 (SLURM sends one of these before
the time limit or on pre-emption, ``#SBATCH --signal=USR1@120``) into a flag that the
driver reads between chunks: it checkpoints, and the run exits with code 143; rerunning
the same command continues from there.
"""

from __future__ import annotations

import json
import shutil
import signal
import threading
from datetime import datetime, timezone
from pathlib import Path

import jax
import numpy as np
from flax import serialization

from runners.io import read_json, write_atomic, write_json

DIRNAME = "checkpoint"
EXIT_INTERRUPTED = 143  # 128 + SIGTERM: what a scheduler expects of a terminated job


class StopSignals:
    """Context manager: SIGTERM / SIGUSR1 / SIGUSR2 set ``requested`` instead of killing.

    Outside the main thread (joblib workers) signals cannot be caught; the flag then stays
    False and the process dies as it would have.
    """

    SIGNALS = ("SIGTERM", "SIGUSR1", "SIGUSR2")

    def __init__(self):
        self.requested: str | None = None
        self._old: dict = {}

    def _handler(self, signum, frame):
        self.requested = signal.Signals(signum).name

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for name in self.SIGNALS:
                sig = getattr(signal, name, None)
                if sig is not None:
                    self._old[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old.clear()
        return False

    def __call__(self) -> bool:
        return self.requested is not None


def _leaves(tree) -> list[np.ndarray]:
    return [np.asarray(x) for x in jax.tree.leaves(jax.device_get(tree))]


class Checkpoint:
    """The checkpoint folder of one run.

    ``save`` writes ``(state, diverged)`` and ``meta`` (JSON); ``load(template)`` returns
    ``(state, diverged, meta)`` or None when there is no usable checkpoint.
    ``previous``: a checkpoint of an earlier, interrupted invocation that this run
    continues; it is deleted once this run has written its own (or finished).
    """

    def __init__(self, run_dir: str | Path, config_hash: str, previous: Path | None = None):
        self.dir = Path(run_dir) / DIRNAME
        self.config_hash = config_hash
        self.previous = previous

    @property
    def source(self) -> Path:
        return self.previous if self.previous is not None else self.dir

    def meta(self) -> dict | None:
        meta = read_json(self.source / "checkpoint.json")
        if not meta or meta.get("config_hash") != self.config_hash:
            return None
        return meta

    def save(self, state, diverged, meta: dict) -> None:
        iteration = int(meta.get("iteration", 0))
        name = f"state-{meta.get('phase', 'train')}-{iteration}.msgpack"
        leaves = _leaves((state, diverged))
        blob = serialization.msgpack_serialize({str(i): x for i, x in enumerate(leaves)})
        write_atomic(self.dir / name, blob)
        write_json(self.dir / "checkpoint.json", {
            **meta, "config_hash": self.config_hash, "state_file": name,
            "n_leaves": len(leaves),
            "saved_at": datetime.now(timezone.utc).isoformat(timespec="seconds")})
        for old in self.dir.glob("state-*.msgpack"):
            if old.name != name:
                old.unlink(missing_ok=True)
        self._drop_previous()

    def load(self, template):
        """``(state, diverged, meta)`` restored into ``template``'s structure, or None."""
        meta = self.meta()
        if meta is None:
            return None
        try:
            blob = (self.source / meta["state_file"]).read_bytes()
            stored = serialization.msgpack_restore(blob)
        except (OSError, KeyError, ValueError):
            return None
        ref = _leaves(template)
        arrays = [stored.get(str(i)) for i in range(len(ref))]
        if len(stored) != len(ref) or any(
                a is None or np.shape(a) != r.shape or np.asarray(a).dtype != r.dtype
                for a, r in zip(arrays, ref)):
            raise ValueError(f"checkpoint {self.source} does not match this run's state "
                             "(shapes or dtypes differ); delete it to start over")
        treedef = jax.tree.structure(template)
        state, diverged = jax.tree.unflatten(treedef, [jax.numpy.asarray(a) for a in arrays])
        return state, diverged, meta

    def finish(self) -> None:
        """The run completed: its checkpoints are no longer needed (params are saved)."""
        shutil.rmtree(self.dir, ignore_errors=True)
        self._drop_previous()

    def _drop_previous(self):
        if self.previous is not None and self.previous != self.dir:
            shutil.rmtree(self.previous, ignore_errors=True)
            self.previous = None


def find_interrupted(runs_dir: str | Path, config_hash: str, exclude: Path) -> Path | None:
    """The newest unfinished checkpoint with this config hash under ``runs_dir`` (single
    runs get a fresh timestamped folder per invocation; this is how a rerun finds its
    interrupted predecessor)."""
    best, best_time = None, ""
    for meta_path in Path(runs_dir).glob(f"*/{DIRNAME}/checkpoint.json"):
        ckpt = meta_path.parent
        if ckpt.parent == exclude or (ckpt.parent / "metrics.json").exists():
            continue
        meta = read_json(meta_path)
        if meta and meta.get("config_hash") == config_hash and meta.get("saved_at", "") > best_time:
            best, best_time = ckpt, meta["saved_at"]
    return best


def history_from_meta(meta: dict) -> list:
    return json.loads(json.dumps(meta.get("history", [])))


__all__ = ["Checkpoint", "StopSignals", "find_interrupted", "EXIT_INTERRUPTED", "DIRNAME"]

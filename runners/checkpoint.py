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
import sys
from datetime import datetime, timezone
from pathlib import Path

import jax
import numpy as np
from flax import serialization

from runners.io import read_json, write_atomic, write_json
from runners.lock import held
from runners.signals import EXIT_INTERRUPTED, StopSignals

DIRNAME = "checkpoint"


class CheckpointMismatch(ValueError):
    """A checkpoint whose arrays do not fit this run's state."""


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
        self._read = False
        self._meta: dict | None = None
        self._stored: dict | None = None

    @property
    def source(self) -> Path:
        return self.previous if self.previous is not None else self.dir

    def meta(self) -> dict | None:
        """The commit record of a usable checkpoint (read once, with its state file), or
        None: no checkpoint, or an unreadable one (moved aside, said in one line)."""
        if not self._read:
            self._read = True
            self._meta, self._stored = self._open()
        return self._meta

    def _open(self) -> tuple[dict | None, dict | None]:
        src = self.source
        record = src / "checkpoint.json"
        if not record.exists():
            return None, None
        try:
            meta = json.loads(record.read_text())
            if not isinstance(meta, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as e:
            return self._set_aside(record, f"unreadable record: {e}")
        if meta.get("config_hash") != self.config_hash:
            return self._set_aside(
                record, f"written by another configuration ({meta.get('config_hash')!r})"
            )
        name = meta.get("state_file")
        if not (
            isinstance(name, str)
            and name.startswith("state-")
            and "/" not in name
            and isinstance(meta.get("phase"), str)
            and isinstance(meta.get("iteration"), int)
            and isinstance(meta.get("history"), list)
            and all(isinstance(r, dict) for r in meta["history"])
            and isinstance(meta.get("extra", {}), dict)
            and isinstance(meta.get("timing", {}), dict)
        ):
            return self._set_aside(
                record, "a record without a valid phase, iteration, history or state file"
            )
        state = src / name
        try:
            stored = serialization.msgpack_restore(state.read_bytes())
            if not isinstance(stored, dict):
                raise ValueError("not a mapping of arrays")
        except FileNotFoundError:
            return self._set_aside(state, "the state file is missing")
        except Exception as e:  # msgpack raises its own types on truncated data
            return self._set_aside(state, f"{type(e).__name__}: {e}"[:200])
        for other in sorted(src.glob("*.msgpack")):  # what a phase kept beside (a predictor)
            if other.name.startswith("state-"):
                continue
            try:
                serialization.msgpack_restore(other.read_bytes())
            except Exception as e:
                return self._set_aside(other, f"{type(e).__name__}: {e}"[:200])
        return meta, stored

    def reject(self, reason: str) -> None:
        """A record that parsed but does not fit the run (an unknown phase): set aside."""
        self._meta, self._stored = self._set_aside(self.source / "checkpoint.json", reason)

    def _set_aside(self, path: Path, reason: str) -> tuple[None, None]:
        src = self.source
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
        dst = src.with_name(f"{DIRNAME}.unreadable-{stamp}")
        n = 1
        while dst.exists():
            dst = src.with_name(f"{DIRNAME}.unreadable-{stamp}-{n}")
            n += 1
        src.rename(dst)
        print(
            f"checkpoint: cannot use {path} ({reason}); moved aside to {dst}; the run starts over",
            file=sys.stderr,
            flush=True,
        )
        if self.previous is not None:
            self.previous = None  # nothing left to continue
        return None, None

    def save(self, state, diverged, meta: dict) -> None:
        iteration = int(meta.get("iteration", 0))
        name = f"state-{meta.get('phase', 'train')}-{iteration}.msgpack"
        leaves = _leaves((state, diverged))
        blob = serialization.msgpack_serialize({str(i): x for i, x in enumerate(leaves)})
        write_atomic(self.dir / name, blob)
        write_json(
            self.dir / "checkpoint.json",
            {
                **meta,
                "config_hash": self.config_hash,
                "state_file": name,
                "n_leaves": len(leaves),
                "saved_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            },
        )
        for old in self.dir.glob("state-*.msgpack"):
            if old.name != name:
                old.unlink(missing_ok=True)
        self._drop_previous()

    def load(self, template):
        """``(state, diverged, meta)`` restored into ``template``'s structure, or None."""
        meta, stored = self.meta(), self._stored
        if meta is None or stored is None:
            return None
        self._stored = None  # restored once; the arrays can be large
        ref = _leaves(template)
        arrays = [stored.get(str(i)) for i in range(len(ref))]
        if len(stored) != len(ref) or any(
            a is None or np.shape(a) != r.shape or np.asarray(a).dtype != r.dtype
            for a, r in zip(arrays, ref)
        ):
            raise CheckpointMismatch(
                f"checkpoint {self.source} does not match this run's state "
                "(shapes or dtypes differ); delete it to start over"
            )
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


class Phases:
    """The resumable phases of one run (pretrain → train; predictor → solver): each phase is
    one :func:`methods.driver.run_chunked` call whose state is checkpointed every
    ``every`` chunks and on a stop signal, with the history so far, the run's ``extra``
    figures (JSON) and the seconds spent (``timing``).

    ``current`` is the phase a checkpoint was written in (None: a fresh start); phases
    before it are done and the caller skips them, restoring what it needs from ``extra``.
    ``names``: the run's phases in order (a record naming another is set aside).
    """

    def __init__(
        self,
        ckpt: Checkpoint,
        history: list,
        progress,
        *,
        log_every: int,
        every: int,
        stop,
        seeds: int | None = None,
        data_axes=None,
        names: tuple[str, ...] = (),
    ):
        self.ckpt, self.history, self.progress = ckpt, history, progress
        self.log_every, self.every, self.stop = log_every, every, stop
        self.seeds, self.data_axes = seeds, data_axes
        meta = ckpt.meta()
        if meta is not None and names and meta["phase"] not in names:
            ckpt.reject(f"phase {meta['phase']!r} is none of {', '.join(names)}")
        self.meta = ckpt.meta()
        self.current = self.meta["phase"] if self.meta else None
        self.extra = dict(self.meta.get("extra", {})) if self.meta else {}
        self.timing = {
            "compile_s": 0.0,
            "train_s": 0.0,
            **(self.meta.get("timing", {}) if self.meta else {}),
        }
        if self.meta:
            history.extend(self.meta["history"])

    def run(
        self,
        name: str,
        method,
        state,
        data,
        *,
        max_steps: int,
        budget: float,
        desc: str,
        diverged=None,
    ):
        """Run (or continue) phase ``name``; returns the driver's result."""
        from methods.driver import run_chunked

        vec = self.seeds is not None
        if diverged is None:
            diverged = jax.numpy.zeros((self.seeds,), bool) if vec else jax.numpy.array(False)
        hist = None  # this phase's rows so far (a resumed phase)
        if self.current == name:
            loaded = self.ckpt.load((state, diverged))
            if loaded is None:  # cannot happen after meta() vetted it: a bug, not bad data
                raise RuntimeError(f"checkpoint of phase {name!r} vanished")
            state, diverged, _ = loaded
            hist = [r for r in self.history if r.get("phase") == name]
        its = jax.jit(jax.vmap(method.iterations) if vec else method.iterations)

        def save(st, div, _):
            self.ckpt.save(
                st,
                div,
                {
                    "phase": name,
                    "iteration": int(np.max(its(st))),
                    "history": self.history,
                    "extra": self.extra,
                    "timing": self.timing,
                },
            )

        self.progress.start(name, method, desc)
        r = run_chunked(
            method,
            state,
            data,
            max_steps=max_steps,
            log_every=self.log_every,
            time_budget_s=budget,
            on_chunk=self.progress,
            seeds=self.seeds,
            data_axes=self.data_axes,
            diverged=diverged,
            history=hist,
            checkpoint_every=self.every,
            on_checkpoint=save,
            should_stop=self.stop,
        )
        self.progress.close()
        self.current = None  # a later phase starts fresh
        self.timing["compile_s"] += r.compile_s
        self.timing["train_s"] += r.wall_s  # a resumed phase's wall includes its earlier part
        return r


def find_interrupted(runs_dir: str | Path, config_hash: str, exclude: Path) -> Path | None:
    """The newest unfinished checkpoint with this config hash under ``runs_dir`` (single
    runs get a fresh timestamped folder per invocation; this is how a rerun finds its
    interrupted predecessor)."""
    best, best_time = None, ""
    for meta_path in Path(runs_dir).glob(f"*/{DIRNAME}/checkpoint.json"):
        ckpt = meta_path.parent
        if (
            ckpt.parent == exclude
            or (ckpt.parent / "metrics.json").exists()
            or held(ckpt.parent) is not None
        ):  # a live run's checkpoint is not ours
            continue
        meta = read_json(meta_path)
        if meta and meta.get("config_hash") == config_hash and meta.get("saved_at", "") > best_time:
            best, best_time = ckpt, meta["saved_at"]
    return best


__all__ = [
    "Checkpoint",
    "CheckpointMismatch",
    "Phases",
    "StopSignals",
    "find_interrupted",
    "EXIT_INTERRUPTED",
    "DIRNAME",
]

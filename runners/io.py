"""Atomic file writes and the small pieces of run bookkeeping shared by the runners."""

from __future__ import annotations

import functools
import json
import math
import os
import subprocess
import tempfile
from pathlib import Path


def write_atomic(path: str | Path, data: bytes | str) -> None:
    """Write ``data`` to ``path`` via a temp file in the same folder and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    umask = os.umask(0)
    os.umask(umask)
    os.fchmod(fd, 0o666 & ~umask)  # mkstemp makes 0600; results are meant to be shared
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


@functools.cache
def git_commit() -> str:
    """The commit of the code that runs (12 hex digits, "+dirty" with uncommitted changes to
    tracked files outside ``results/``, whose committed tables and records are what was
    measured, not code: regenerating a tracked table does not make its provenance
    "dirty"), or "unknown" outside a git checkout. Asked once per process and kept:
    a process runs the code it imported, whatever the checkout holds when a long run ends
    (``runners.train`` asks on import)."""
    root = Path(__file__).resolve().parent.parent

    def git(*args):
        try:
            return subprocess.run(
                ["git", *args], cwd=root, capture_output=True, text=True, timeout=10
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    sha = git("rev-parse", "--short=12", "HEAD")
    if not sha:
        return "unknown"
    code = ("--", ".", ":(exclude)results")
    return sha + ("+dirty" if git("status", "--porcelain", "--untracked-files=no", *code) else "")


def save_figure(fig, path: str | Path, dpi: int = 100) -> Path:
    """Save a matplotlib figure atomically (temp name + rename) and close it."""
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    fig.savefig(tmp, dpi=dpi)
    plt.close(fig)
    tmp.replace(path)
    return path


def draw(fn, path: str | Path, *args, **kwargs) -> bool:
    """``fn(*args, path, **kwargs)``, a run's figure, drawn after its metrics.json is written:
    a figure that fails is a warning naming the file and the error, never a lost run.
    True when it was drawn."""
    import logging

    try:
        fn(*args, path, **kwargs)
        return True
    except Exception as e:  # noqa: BLE001 - any plotting failure: the run's data is saved
        logging.getLogger("runners").warning(
            "figure %s not drawn (%s: %s)", path, type(e).__name__, e
        )
        import matplotlib.pyplot as plt

        plt.close("all")
        return False


def _json_safe(v):
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)  # JSON has no inf/nan; keep them readable ("inf", "nan")
    if isinstance(v, dict):
        return {k: _json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_safe(x) for x in v]
    return v


def write_json(path: str | Path, record: dict) -> None:
    write_atomic(path, json.dumps(_json_safe(record), indent=2, sort_keys=False) + "\n")


def read_json(path: str | Path) -> dict | None:
    """The record at ``path``, or None if it is missing or unreadable (a partial write)."""
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


# Statuses (methods.driver.Status) whose metrics are results: tables and the report average
# them. "diverged" keeps the last finite iterate; "evaluated" is a LISCO run of trained
# networks; "partial" is a batch baseline (IPOPT / OSQP over the test points) that left some
# instances unsolved, counted in its own metrics (success, solver_success). Anything else
# ("solver_failed", a missing or foreign status) is a failed run: recorded, shown as a
# count, never averaged into a metric.
# The values of methods.driver.Status, written out: this module stays free of JAX (tables and
# the report import it); tests/test_io.py checks that they are the enum's.
SUCCEEDED = ("converged", "stalled", "max_iter", "time_budget", "diverged", "evaluated", "partial")
FINISHED = (*SUCCEEDED, "solver_failed")


def status_name(status) -> str | None:
    """The :class:`~methods.driver.Status` value of a record's ``status``, or None. Records
    written before ``status_message`` existed carry the message after a colon
    ("solver_failed: Infeasible_Problem_Detected"); the text before it is the status."""
    if not isinstance(status, str):
        return None
    name = status.split(":")[0].strip()
    return name if name in FINISHED else None


def status_failed(status) -> bool:
    """True unless ``status`` (any value) is one of :data:`SUCCEEDED`."""
    return status_name(status) not in SUCCEEDED


def status_text(rec: dict) -> str:
    """A record's status as tables show it: the status, then the solver's message if any
    ("solver_failed: Invalid_Option")."""
    status, message = rec.get("status"), rec.get("status_message")
    if not isinstance(status, str):
        return f"invalid status: {status!r}"
    return f"{status}: {message}" if message else status


def flatten(d: dict, prefix: str = "") -> dict:
    """{'a': {'b': 1}} -> {'a.b': 1}; lists become strings so every value is a scalar."""
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        elif isinstance(v, (list, tuple)):
            out[key] = str(list(v))
        else:
            out[key] = v
    return out

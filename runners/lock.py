"""One process per run folder: ``<run dir>/run.lock``.

The lock is an exclusive ``flock`` on the file, which the kernel releases when the owner
exits, however it exits (kill -9 included); the file holds the owner's pid, host, start
time and config hash as JSON, so a second launch can say who runs the job. A lock file
left by a process that is gone (its flock released) is taken over with a one-line notice.
Where the file system does not support ``flock`` the pid decides: a lock of a live pid on
this host is respected, one of a dead pid is taken over; a lock of another host is then
respected (delete the file if that host's job is gone).

Only the JSON is data: nothing in a lock file is executed.
"""

from __future__ import annotations

import errno
import json
import os
import socket
from datetime import datetime, timezone
from pathlib import Path

NAME = "run.lock"


def _read(path: Path) -> dict:
    try:
        rec = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return rec if isinstance(rec, dict) else {}


def _pid_alive(pid) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def describe(owner: dict) -> str:
    return f"pid {owner.get('pid', '?')} on {owner.get('host', '?')}" + (
        f" since {owner['started_at']}" if owner.get("started_at") else ""
    )


class RunLock:
    """``acquire()`` -> None when this process now holds the run folder, else the live
    owner's record (pid, host, ...); ``release()`` removes the file."""

    def __init__(self, run_dir: str | Path, config_hash: str = ""):
        self.path = Path(run_dir) / NAME
        self.config_hash = config_hash
        self.fd: int | None = None
        self.taken_over: dict | None = None  # the stale owner whose lock was taken over

    def acquire(self) -> dict | None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(10):  # retry when the file was replaced between open and flock
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                import fcntl

                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return _read(self.path) or {"pid": "?", "host": "?"}
            except (ImportError, OSError) as e:  # no flock here: decide by the pid
                if isinstance(e, OSError) and e.errno not in (
                    errno.ENOLCK,
                    errno.EOPNOTSUPP,
                    errno.ENOSYS,
                    errno.EINVAL,
                ):
                    os.close(fd)
                    raise
                owner = _read(self.path)
                if (
                    owner
                    and owner.get("pid") != os.getpid()
                    and (owner.get("host") != socket.gethostname() or _pid_alive(owner.get("pid")))
                ):
                    os.close(fd)
                    return owner
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if not same:  # the previous owner removed the file as we opened it
                os.close(fd)
                continue
            old = _read(self.path)
            if old and old.get("pid") != os.getpid():
                self.taken_over = old
            rec = {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "config_hash": self.config_hash,
            }
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(rec) + "\n").encode(), 0)
            os.fsync(fd)
            self.fd = fd
            return None
        raise OSError(f"could not lock {self.path}: the file keeps changing")

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)  # while still holding it: no one can reuse it
        except OSError:
            pass
        os.close(self.fd)
        self.fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()
        return False


def held(run_dir: str | Path) -> dict | None:
    """The live owner of ``run_dir``'s lock, or None (no lock file, or a stale one). Only
    looks: the file is neither written nor removed."""
    path = Path(run_dir) / NAME
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:
        return None
    try:
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return _read(path) or {"pid": "?", "host": "?"}
    except (ImportError, OSError):  # no flock here: decide by the pid
        owner = _read(path)
        live = owner and (owner.get("host") != socket.gethostname() or _pid_alive(owner.get("pid")))
        return owner if live else None
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def running_sibling(
    parent: str | Path, config_hash: str, exclude: Path
) -> tuple[Path, dict] | None:
    """A live run of ``config_hash`` in another folder under ``parent`` (single runs get a
    new timestamped folder per invocation: this is how a second launch sees the first)."""
    for path in sorted(Path(parent).glob(f"*/{NAME}")):
        if path.parent == exclude or _read(path).get("config_hash") != config_hash:
            continue
        owner = held(path.parent)
        if owner is not None:
            return path.parent, owner
    return None


__all__ = ["NAME", "RunLock", "describe", "held", "running_sibling"]

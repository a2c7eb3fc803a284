"""An on-disk cache of generated data, shared by the problem families.

:func:`cached_arrays` stores a dict of NumPy arrays as ``<cache_dir>/<problem>-<hash>.npz``,
the hash (sha256, 16 hex digits) of the generating config as canonical JSON plus
:data:`CACHE_VERSION`. The JSON is stored in the file (``_key``) beside a sha256 of the
arrays (``_checksum``), both checked on load: a file whose content was altered or damaged
is regenerated with a one-line warning. Writes are atomic (a temporary file, then
``os.replace``); never pickled (``allow_pickle=False``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

DEFAULT_CACHE_DIR = "results/cache"
# Bump when a generator changes its output for the same config: old cache files then miss.
CACHE_VERSION = 1


def cache_path(cache_dir, problem: str, key: dict) -> tuple[Path, str]:
    text = json.dumps({"problem": problem, "version": CACHE_VERSION, **key}, sort_keys=True)
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    return Path(cache_dir) / f"{problem}-{digest}.npz", text


def content_checksum(arrays: dict[str, np.ndarray]) -> str:
    """sha256 of a dict of arrays: every name, dtype, shape and the bytes, in name order."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def cached_arrays(
    cache_dir, problem: str, key: dict, generate: Callable[[], dict[str, np.ndarray]]
) -> dict[str, np.ndarray]:
    """``generate()`` once per ``key``; later calls load ``<cache_dir>/<problem>-<hash>.npz``.

    ``cache_dir=None`` disables the cache. A file that cannot be read, whose stored key
    differs (a hash collision, a hand-edited file) or whose arrays do not match their stored
    checksum (altered or damaged content) is regenerated and overwritten, with a warning.
    """
    if cache_dir is None:
        return generate()
    path, text = cache_path(cache_dir, problem, key)
    if path.exists():
        try:
            with np.load(path, allow_pickle=False) as f:
                arrays = {k: f[k] for k in f.files if k not in ("_key", "_checksum")}
                stored_key = str(f["_key"])
                stored_sum = str(f["_checksum"]) if "_checksum" in f.files else None
            if stored_key != text:
                problem_with = "its stored key differs"
            elif stored_sum is None:
                problem_with = "it has no checksum (written by an older version)"
            elif stored_sum != content_checksum(arrays):
                problem_with = "its content does not match its checksum (altered or damaged)"
            else:
                return arrays
        except (OSError, ValueError, KeyError, EOFError) as e:  # unreadable: regenerate
            problem_with = f"it cannot be read ({type(e).__name__})"
        log.warning("cache %s: %s; regenerating it", path, problem_with)
    arrays = generate()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, _key=np.array(text), _checksum=np.array(content_checksum(arrays)), **arrays)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return arrays

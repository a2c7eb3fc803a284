"""Stop signals of a scheduler: SIGTERM, SIGUSR1, SIGUSR2 (SLURM sends one of these before the
time limit or on pre-emption, ``#SBATCH --signal=USR1@120``).

This module imports nothing heavy, so ``python -m runners.train`` installs its handlers
(:func:`install`) before it imports JAX, Hydra and the problems (seconds): a signal in the
first seconds of a run is handled like any other.

Two modes:

* **deferred**, inside ``with StopSignals() as stop:`` (a checkpointable phase): the
  handler only records the signal; the driver reads ``stop()`` between compiled chunks,
  checkpoints the state and the run exits with code 143;
* **immediate**, anywhere else (set-up, data generation, an IPOPT solve, evaluation): the
  handler raises :class:`StopRequested`; the runner prints one line, removes a run folder
  that holds nothing to resume from, and exits with code 143.

Outside the main thread (joblib workers) signals cannot be caught; the process then dies as
it would have without these handlers.
"""

from __future__ import annotations

import signal
import threading

EXIT_INTERRUPTED = 143  # 128 + SIGTERM: what a scheduler expects of a terminated job
SIGNALS = ("SIGTERM", "SIGUSR1", "SIGUSR2")


class StopRequested(BaseException):
    """A stop signal arrived outside a checkpointable phase (a BaseException, like
    KeyboardInterrupt: ``except Exception`` blocks do not swallow it)."""

    def __init__(self, name: str):
        super().__init__(name)
        self.signal = name


class _State:
    requested: str | None = None  # the first stop signal received
    deferred: int = 0  # depth of StopSignals contexts
    installed: bool = False  # install() ran (process-wide handlers)


def _handler(signum, frame):
    name = signal.Signals(signum).name
    if _State.requested is None:
        _State.requested = name
    if _State.deferred == 0:
        raise StopRequested(name)


def _set_handlers() -> dict:
    old = {}
    if threading.current_thread() is threading.main_thread():
        for name in SIGNALS:
            sig = getattr(signal, name, None)
            if sig is not None:
                old[sig] = signal.signal(sig, _handler)
    return old


def install() -> None:
    """Process-wide handlers, for the life of the process (the CLI's first statement).

    They start deferred: a signal during the imports that follow is only recorded (an
    exception raised inside an import would end in a traceback), and :func:`immediate`,
    the first statement of the CLI's ``main()``, then acts on it."""
    if not _State.installed and _set_handlers():
        _State.installed = True
        _State.deferred += 1


def immediate() -> None:
    """End the deferral of :func:`install`: from now on a signal outside a checkpointable
    phase raises :class:`StopRequested`, and one received during the imports does so now."""
    if _State.installed and _State.deferred > 0:
        _State.deferred -= 1
        if _State.deferred == 0 and _State.requested is not None:
            raise StopRequested(_State.requested)


def requested() -> str | None:
    """The stop signal received so far, if any."""
    return _State.requested


class StopSignals:
    """Context manager of a checkpointable phase: stop signals are deferred to ``stop()``.

    Without :func:`install` (a run called in-process, as the tests do), the handlers are
    installed on entry and the previous ones restored on exit.
    """

    def __init__(self):
        self._old: dict = {}

    @property
    def requested(self) -> str | None:
        return _State.requested

    def __enter__(self):
        if not _State.installed and _State.deferred == 0:
            self._old = _set_handlers()
            _State.requested = None  # a fresh in-process run
        _State.deferred += 1
        return self

    def __exit__(self, *exc):
        _State.deferred -= 1
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old.clear()
        return False

    def __call__(self) -> bool:
        return _State.requested is not None


__all__ = ["EXIT_INTERRUPTED", "StopRequested", "StopSignals", "immediate", "install", "requested"]

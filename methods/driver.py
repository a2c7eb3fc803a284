"""Run a method's pure ``step`` in compiled chunks (``lax.scan``) between host callbacks.

One compile per run: ``chunk(state, data)`` runs ``log_every`` steps inside one
``jax.jit``; between chunks Python records a history row, updates the progress bar and
checks the stopping test, the iteration cap and the time budget. Inside the chunk a
step whose result is not finite is *not* taken: the chunk keeps the last finite state
and raises a flag, and the run ends with status ``diverged``.

Seeds vectorized (``seeds=N``): the same chunk under ``jax.vmap`` over a leading axis of
the state (and of the data leaves that differ between seeds, ``data_axes``): N runs as one
program, each seed with its own stopping test, divergence flag and status; the program
runs until every seed has stopped.

Checkpoints: every ``checkpoint_every`` chunks, and after the chunk during which
``should_stop()`` became true (a SIGTERM / SIGUSR from a scheduler), the driver hands
``(state, diverged, history)`` to ``on_checkpoint``; on a stop it then raises
:class:`Interrupted`. Resuming means calling ``run_chunked`` again with that state,
flags and history: the chunks are the same compiled program from the same boundary, so
the resumed run ends bit-for-bit where the uninterrupted one does (on one device).
"""

from __future__ import annotations

import enum
import math
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp


class Status(str, enum.Enum):
    """How a run ended: metrics.json's ``status`` is one of these values; a solver's own
    words (IPOPT's return status, how many instances a baseline left unsolved) go in
    ``status_message`` beside it. A ``str`` subclass: it compares equal to its value and
    is written to JSON as it."""

    CONVERGED = "converged"  # the method's convergence test passed
    STALLED = "stalled"  # the method stopped itself short of that test (no progress)
    MAX_ITER = "max_iter"  # the iteration budget ran out
    TIME_BUDGET = "time_budget"  # budget.time_s ran out first
    DIVERGED = "diverged"  # non-finite values; the last finite iterate is kept
    EVALUATED = "evaluated"  # LISCO: trained networks loaded from a checkpoint, evaluated
    PARTIAL = "partial"  # a batch baseline left some instances unsolved (counted in metrics)
    SOLVER_FAILED = "solver_failed"  # the external solver failed: not a result

    def __str__(self) -> str:
        return self.value


CONVERGED, MAX_ITER, TIME_BUDGET, DIVERGED = (
    Status.CONVERGED,
    Status.MAX_ITER,
    Status.TIME_BUDGET,
    Status.DIVERGED,
)
STALLED = Status.STALLED
# a run that ended with one of these is not run again by resume (runners.io.SUCCEEDED says
# which of them are results that tables average; solver_failed is counted apart)
FINISHED = tuple(s.value for s in Status)


class Method(NamedTuple):
    """A jitted state machine: pure functions of (state, data)."""

    name: str
    init: Callable[[Any, Any], Any]  # (params, data) -> state
    step: Callable[[Any, Any], Any]  # (state, data) -> state
    done: Callable[[Any], jax.Array]  # state -> bool, the method's own stopping test
    finite: Callable[[Any], jax.Array]  # state -> bool, is the iterate finite
    converged: Callable[[Any], jax.Array]  # state -> bool, once done: converged or out of budget
    log: Callable[[Any, Any], dict]  # (state, data) -> scalars for one history row
    params: Callable[[Any], Any]  # state -> network parameters
    iterations: Callable[[Any], jax.Array]  # state -> iterations so far
    progress: Callable[[Any], jax.Array]  # state -> progress counter (rounds, iterations)
    progress_total: int  # the counter's value at the end (for the progress bar)
    progress_unit: str = "it"
    # None: :func:`run_chunked` drives the jitted ``step`` in chunks. Otherwise a host
    # driver that run_chunked hands the run to (same arguments, same result), for a method
    # whose iterations run outside JAX (SciPy's L-BFGS-B: :mod:`methods.pde.penalty`,
    # ``solver="scipy"``).
    run: Callable[..., Any] | None = None
    # state -> bool, once done: stopped by a no-progress test, not at its convergence test
    # (``converged`` false, iterations left). None: a method that never stalls.
    stalled: Callable[[Any], jax.Array] | None = None


class RunResult(NamedTuple):
    state: Any
    status: Any  # str; a list of str (one per seed) when vectorized
    history: list
    compile_s: float
    wall_s: float


class Interrupted(Exception):
    """A stop was requested (signal); the state was checkpointed at ``iteration``."""

    def __init__(self, iteration: int):
        super().__init__(f"stopped at iteration {iteration}")
        self.iteration = iteration


def tree_all_finite(tree) -> jax.Array:
    leaves = [
        jnp.all(jnp.isfinite(x))
        for x in jax.tree.leaves(tree)
        if jnp.issubdtype(jnp.asarray(x).dtype, jnp.inexact)
    ]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.array(True)


def run_status(
    done: bool,
    converged: bool,
    diverged: bool,
    iteration: int,
    *,
    timed_out: bool,
    max_steps: int,
    stalled: bool = False,
) -> str:
    """How a run ended, from the method's state when the driver stopped it."""
    if diverged:
        return DIVERGED
    if done:
        return CONVERGED if converged else STALLED if stalled else MAX_ITER
    return TIME_BUDGET if timed_out and iteration < max_steps else MAX_ITER


def make_chunk(
    method: Method, length: int, max_steps: int, *, vectorized: bool = False, data_axes: Any = None
):
    """``chunk(state, data[, diverged]) -> (state, diverged, log_row)``: ``length`` guarded
    steps. A step is skipped once the method is done, has diverged or reached ``max_steps``.

    ``vectorized``: the chunk is vmapped over axis 0 of the state and of the ``diverged``
    flags, and over ``data_axes`` (a prefix pytree of 0 / None) of the data.
    """

    def guarded(carry, _):
        state, diverged, data = carry
        stop = method.done(state) | diverged | (method.iterations(state) >= max_steps)
        new = jax.lax.cond(stop, lambda s: s, lambda s: method.step(s, data), state)
        ok = method.finite(new)
        state = jax.lax.cond(ok, lambda: new, lambda: state)
        return (state, diverged | ~ok, data), None

    def chunk(state, data, diverged=None):
        diverged = jnp.array(False) if diverged is None else diverged
        (state, diverged, _), _ = jax.lax.scan(
            guarded, (state, diverged, data), None, length=length
        )
        return state, diverged, method.log(state, data)

    if not vectorized:
        return jax.jit(chunk)

    # Seeds: under vmap a per-seed lax.cond becomes a select that computes the step anyway,
    # so the skip test is taken outside the vmap: a scan step runs the vmapped step unless
    # every seed has stopped, and keeps the old state of the seeds that had (or whose new
    # state is not finite). A chunk past the end of every seed then costs nothing.
    v = lambda f, axes=0: jax.vmap(f, in_axes=axes)
    v_step = v(method.step, (0, data_axes))
    v_done, v_it, v_finite = v(method.done), v(method.iterations), v(method.finite)

    def guarded_v(carry, _):
        state, diverged, data = carry
        stop = v_done(state) | diverged | (v_it(state) >= max_steps)

        def advance(s):
            new = v_step(s, data)
            ok = v_finite(new)
            keep = stop | ~ok
            pick = lambda n, o: jnp.where(keep.reshape(keep.shape + (1,) * (n.ndim - 1)), o, n)
            return jax.tree.map(pick, new, s), ok | stop

        state, ok = jax.lax.cond(jnp.all(stop), lambda s: (s, jnp.ones_like(stop)), advance, state)
        return (state, diverged | ~ok, data), None

    def chunk_v(state, data, diverged):
        (state, diverged, _), _ = jax.lax.scan(
            guarded_v, (state, diverged, data), None, length=length
        )
        return state, diverged, v(method.log, (0, data_axes))(state, data)

    return jax.jit(chunk_v)


def run_chunked(
    method: Method,
    state,
    data,
    *,
    max_steps: int,
    log_every: int,
    time_budget_s: float = math.inf,
    on_chunk: Callable[[Any, Any], None] | None = None,
    seeds: int | None = None,
    data_axes: Any = None,
    diverged: Any = None,
    history: list | None = None,
    checkpoint_every: int = 0,
    on_checkpoint: Callable[[Any, Any, list], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> RunResult:
    """Drive ``method`` from ``state`` until it stops; returns the final state and status.

    ``on_chunk(state, row)`` is called after every chunk (and once for the initial
    state) with the history row so far; it may add entries to ``row``. With ``seeds=N``
    the state carries a leading axis of N seeds, ``row`` is a list of N rows (each with
    ``seed_index``) and the status is a list. ``diverged`` and ``history`` continue a
    checkpointed run (the initial row is then not recorded again).
    """
    if method.run is not None:  # a host-driven method (its iterations run outside JAX)
        return method.run(
            method,
            state,
            data,
            max_steps=max_steps,
            log_every=log_every,
            time_budget_s=time_budget_s,
            on_chunk=on_chunk,
            seeds=seeds,
            data_axes=data_axes,
            diverged=diverged,
            history=history,
            checkpoint_every=checkpoint_every,
            on_checkpoint=on_checkpoint,
            should_stop=should_stop,
        )
    vec = seeds is not None
    length = max(1, min(log_every, max_steps))
    done_fn, conv_fn, it_fn = method.done, method.converged, method.iterations
    stall_fn = method.stalled or (lambda s: jnp.array(False))
    if vec:
        done_fn, conv_fn, it_fn, stall_fn = (
            jax.vmap(f) for f in (done_fn, conv_fn, it_fn, stall_fn)
        )
    done_fn, conv_fn, it_fn = jax.jit(done_fn), jax.jit(conv_fn), jax.jit(it_fn)
    stall_fn = jax.jit(stall_fn)
    resumed = history is not None
    history = list(history) if resumed else []
    if diverged is None:
        diverged = jnp.zeros((seeds,), bool) if vec else jnp.array(False)
    t0 = time.perf_counter()
    compiled = (
        make_chunk(method, length, max_steps, vectorized=vec, data_axes=data_axes)
        .lower(state, data, diverged)
        .compile()
    )
    compile_s = time.perf_counter() - t0
    log_fn = jax.jit(jax.vmap(method.log, in_axes=(0, data_axes)) if vec else method.log)

    def record(state, row, wall):
        row = jax.device_get(row)
        its = jax.device_get(it_fn(state))
        if vec:
            rows = [
                {
                    "seed_index": i,
                    "iteration": int(its[i]),
                    "wall_s": wall,
                    **{k: float(v[i]) for k, v in row.items()},
                }
                for i in range(seeds)
            ]
        else:
            rows = {"iteration": int(its), "wall_s": wall, **{k: float(v) for k, v in row.items()}}
        if on_chunk is not None:
            on_chunk(state, rows)
        history.extend(rows if vec else [rows])

    if not resumed:
        record(state, log_fn(state, data), 0.0)
    wall0 = history[-1]["wall_s"] if history else 0.0  # seconds already spent (a resumed run)
    t0 = time.perf_counter() - wall0
    chunks = 0
    timed_out = False
    while True:
        stopped = jax.device_get(done_fn(state) | (it_fn(state) >= max_steps) | diverged)
        if bool(stopped.all()):
            break
        if time.perf_counter() - t0 > time_budget_s:
            timed_out = True
            break
        state, diverged, row = compiled(state, data, diverged)
        chunks += 1
        record(state, row, time.perf_counter() - t0)
        stop_now = should_stop is not None and should_stop()
        if on_checkpoint is not None and (
            stop_now or (checkpoint_every and chunks % checkpoint_every == 0)
        ):
            on_checkpoint(state, diverged, history)
        if stop_now:
            raise Interrupted(int(jnp.max(it_fn(state))))
        if not vec and bool(diverged):
            break
    done, conv, div, its, stall = (
        jax.device_get(x)
        for x in (done_fn(state), conv_fn(state), diverged, it_fn(state), stall_fn(state))
    )

    def status(a, b, c, d, e):
        return run_status(
            bool(a),
            bool(b),
            bool(c),
            int(d),
            timed_out=timed_out,
            max_steps=max_steps,
            stalled=bool(e),
        )

    st = (
        [status(*v) for v in zip(done, conv, div, its, stall)]
        if vec
        else status(done, conv, div, its, stall)
    )
    return RunResult(state, st, history, compile_s, time.perf_counter() - t0)

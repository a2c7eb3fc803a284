"""Run a method's pure ``step`` in compiled chunks (``lax.scan``) between host callbacks.

One compile per run: ``chunk(state, data)`` runs ``log_every`` steps inside one
``jax.jit``; between chunks Python records a history row, updates the progress bar and
checks the stopping test, the iteration cap and the time budget. Inside the chunk a
step whose result is not finite is *not* taken: the chunk keeps the last finite state
and raises a flag, and the run ends with status ``diverged``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

CONVERGED, MAX_ITER, TIME_BUDGET, DIVERGED = "converged", "max_iter", "time_budget", "diverged"
FINISHED = (CONVERGED, MAX_ITER, TIME_BUDGET, DIVERGED, "solver_failed", "evaluated")


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


class RunResult(NamedTuple):
    state: Any
    status: str
    history: list
    compile_s: float
    wall_s: float


def tree_all_finite(tree) -> jax.Array:
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)
              if jnp.issubdtype(jnp.asarray(x).dtype, jnp.inexact)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.array(True)


def make_chunk(method: Method, length: int, max_steps: int):
    """``chunk(state, data) -> (state, diverged, log_row)``: ``length`` guarded steps.

    A step is skipped once the method is done, has diverged or reached ``max_steps``.
    """

    def guarded(carry, _):
        state, diverged, data = carry
        stop = method.done(state) | diverged | (method.iterations(state) >= max_steps)
        new = jax.lax.cond(stop, lambda s: s, lambda s: method.step(s, data), state)
        ok = method.finite(new)
        state = jax.lax.cond(ok, lambda: new, lambda: state)
        return (state, diverged | ~ok, data), None

    def chunk(state, data):
        (state, diverged, _), _ = jax.lax.scan(guarded, (state, jnp.array(False), data), None,
                                               length=length)
        return state, diverged, method.log(state, data)

    return jax.jit(chunk)


def run_chunked(method: Method, state, data, *, max_steps: int, log_every: int,
                time_budget_s: float = math.inf,
                on_chunk: Callable[[Any, dict], None] | None = None) -> RunResult:
    """Drive ``method`` from ``state`` until it stops; returns the final state and status.

    ``on_chunk(state, row)`` is called after every chunk (and once for the initial
    state) with the history row so far; it may add entries to ``row``.
    """
    length = max(1, min(log_every, max_steps))
    t0 = time.perf_counter()
    compiled = make_chunk(method, length, max_steps).lower(state, data).compile()
    compile_s = time.perf_counter() - t0
    history = []

    def record(state, row, wall):
        row = {"iteration": int(method.iterations(state)), "wall_s": wall,
               **{k: float(v) for k, v in jax.device_get(row).items()}}
        if on_chunk is not None:
            on_chunk(state, row)
        history.append(row)

    record(state, jax.jit(method.log)(state, data), 0.0)
    t0 = time.perf_counter()
    status = MAX_ITER
    while True:
        if bool(method.done(state)):
            status = CONVERGED if bool(method.converged(state)) else MAX_ITER
            break
        if int(method.iterations(state)) >= max_steps:
            status = MAX_ITER
            break
        if time.perf_counter() - t0 > time_budget_s:
            status = TIME_BUDGET
            break
        state, diverged, row = compiled(state, data)
        record(state, row, time.perf_counter() - t0)
        if bool(diverged):
            status = DIVERGED
            break
    return RunResult(state, status, history, compile_s, time.perf_counter() - t0)

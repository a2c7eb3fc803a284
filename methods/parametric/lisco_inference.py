"""LISCO's batch-parallel inference loop (LISCO paper §3.3, spec lisco.md "Inference").

For a batch of parameters x and starting points z₀ (the predictor's, or N(0, 1)):

    repeat up to N_max times, for every sample not yet converged:
        z ← z + α Δz,  Δz = step(z, x)           (the learned solver; any descent here)
        keep the best iterate (smallest ‖F‖)
        if ‖F(z)‖ > ω ‖F(z_best)‖: z ← z_best, α ← 0.95 α   (the ω/β reset, ω = 10)
        converged when T = ½‖F‖² ≤ tol            (tol = 1e-8: the paper's success test)

One compiled ``lax.while_loop`` over the whole batch with per-sample masks: converged samples
stop moving and stop counting iterations; the loop ends when all have converged or after
N_max iterations. Returns the best iterate of each sample, its T, the iterations it used and
whether it converged. ``step`` is a batched function (z (B, n_z), x (B, n_x), f (B, n_F))
-> Δz, where f = F(z) is the residual the loop already holds (F is evaluated once per
iteration, at the new iterate, and carried: the step at z and the ω-test at z + αΔz share
it); the tests drive the loop with exact Newton steps, which must converge quadratically.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp


class InferenceResult(NamedTuple):
    z: jax.Array  # (B, n_z) best iterate per sample
    merit: jax.Array  # (B,) T = ½‖F‖² at z
    iterations: jax.Array  # (B,) iterations until convergence (N_max if not)
    converged: jax.Array  # (B,) T ≤ tol
    resets: jax.Array  # (B,) ω-resets taken
    hits: jax.Array  # (B, len(thresholds)) first iteration with T ≤ threshold (n_max+1: never)


class _State(NamedTuple):
    z: jax.Array
    f: jax.Array  # F(z), batched
    best_z: jax.Array
    best_f: jax.Array  # F(best_z)
    best_norm: jax.Array
    alpha: jax.Array
    done: jax.Array
    iterations: jax.Array
    resets: jax.Array
    hits: jax.Array
    k: jax.Array


def _loop(
    step: Callable,
    residual: Callable,
    *,
    tol: float,
    omega: float,
    shrink: float,
    thresholds: tuple,
):
    """(init(z0, x, alpha0) -> state, iterate(state, x, n_max) -> state, advance(state, x,
    k_end, n_max) -> state): the loop's pieces. ``iterate`` is one iteration of every sample
    still running; a sample stops when it converges or has used its ``n_max`` iterations
    (each sample counts its own, so samples that started at different times share a batch).
    ``advance`` iterates while k < k_end and some sample is still running."""
    never = jnp.iinfo(jnp.int32).max

    def residuals(z, x):
        return jax.vmap(residual)(z, x)

    def hit(nrm):
        levels = jnp.asarray(thresholds, nrm.dtype).reshape(1, -1)
        return (0.5 * nrm**2)[:, None] <= levels

    def init(z0, x, alpha0):
        f0 = residuals(z0, x)
        n0 = jnp.linalg.norm(f0, axis=1)
        b = z0.shape[0]
        return _State(
            z0,
            f0,
            z0,
            f0,
            n0,
            jnp.full((b,), alpha0, z0.dtype),
            0.5 * n0**2 <= tol,
            jnp.zeros((b,), jnp.int32),
            jnp.zeros((b,), jnp.int32),
            jnp.where(hit(n0), 0, never).astype(jnp.int32),
            jnp.int32(0),
        )

    def iterate(s: _State, x, n_max):
        active = ~s.done
        z_new = s.z + s.alpha[:, None] * step(s.z, x, s.f)
        f_new = residuals(z_new, x)
        nrm = jnp.linalg.norm(f_new, axis=1)
        nrm = jnp.where(jnp.isfinite(nrm), nrm, jnp.inf)
        better = active & (nrm < s.best_norm)
        best_z = jnp.where(better[:, None], z_new, s.best_z)
        best_f = jnp.where(better[:, None], f_new, s.best_f)
        best_norm = jnp.where(better, nrm, s.best_norm)
        reset = active & (nrm > omega * best_norm)
        z = jnp.where(reset[:, None], best_z, z_new)
        z = jnp.where(active[:, None], z, s.z)
        f = jnp.where(reset[:, None], best_f, f_new)
        f = jnp.where(active[:, None], f, s.f)
        alpha = jnp.where(reset, s.alpha * shrink, s.alpha)
        iterations = s.iterations + active
        done = s.done | (0.5 * best_norm**2 <= tol) | (iterations >= n_max)
        first = active[:, None] & hit(best_norm) & (s.hits == never)
        hits = jnp.where(first, iterations[:, None], s.hits)
        return _State(
            z,
            f,
            best_z,
            best_f,
            best_norm,
            alpha,
            done,
            iterations,
            s.resets + reset,
            hits,
            s.k + 1,
        )

    def advance(s: _State, x, k_end, n_max):
        def cond(s: _State):
            return (s.k < k_end) & ~jnp.all(s.done)

        return jax.lax.while_loop(cond, lambda s: iterate(s, x, n_max), s)

    return init, iterate, advance


def _result(s: _State, n_max, tol: float) -> InferenceResult:
    never = jnp.iinfo(jnp.int32).max
    merit = 0.5 * s.best_norm**2
    hits = jnp.where(s.hits == never, jnp.asarray(n_max, jnp.int32) + 1, s.hits)
    return InferenceResult(s.best_z, merit, s.iterations, merit <= tol, s.resets, hits)


def infer(
    step: Callable,
    residual: Callable,
    z0: jax.Array,
    x: jax.Array,
    *,
    n_max: int | jax.Array = 500,
    tol: float = 1e-8,
    omega: float = 10.0,
    alpha0: float = 1.0,
    shrink: float = 0.95,
    thresholds: tuple = (),
) -> InferenceResult:
    """Run the loop (jittable; ``n_max`` may be traced). ``residual(z, x)`` is F for one
    sample; it is vmapped here. ``thresholds``: levels of T whose first-hit iteration is
    recorded per sample (the convergence curves; 0 = already at the start)."""
    init, _, advance = _loop(
        step, residual, tol=tol, omega=omega, shrink=shrink, thresholds=thresholds
    )
    return _result(advance(init(z0, x, alpha0), x, n_max, n_max), n_max, tol)


#: iterations per compiled chunk of :func:`compacted_runner`'s drain (this project's batched
#: evaluation: converged samples leave the batch between chunks; 25 until 2026-12-06)
BATCH_CHUNK = 10
#: samples in flight at once in :func:`compacted_runner`'s streaming phase (a converged
#: sample's row is refilled with the next waiting one inside the compiled loop)
STREAM_WIDTH = 128


def _rows(state: _State, idx) -> list:
    return [a[idx] for a in state[:-1]]


def _where_rows(mask, new: list, old: list) -> list:
    return [
        jnp.where(mask.reshape(mask.shape + (1,) * (a.ndim - 1)), a, b) for a, b in zip(new, old)
    ]


def compacted_runner(
    step: Callable,
    residual: Callable,
    *,
    n_max: int = 500,
    tol: float = 1e-8,
    omega: float = 10.0,
    alpha0: float = 1.0,
    shrink: float = 0.95,
    thresholds: tuple = (),
    chunk: int = BATCH_CHUNK,
    min_bucket: int = 1,
    width: int | None = STREAM_WIDTH,
) -> Callable:
    """``run(params, z0, x) -> InferenceResult``: :func:`infer` for a large batch, without
    paying for samples that have stopped (this project's batched evaluation; ``step(params,
    z, x, f)``). Two phases:

    - **streaming** (a batch larger than ``width``): ``width`` samples are in flight in one
      compiled ``lax.while_loop``; after every iteration each row whose sample stopped
      (converged, or used its ``n_max`` iterations) is written back and refilled with the next
      waiting sample, until none waits. Every sample counts its own iterations.
    - **drain**: the samples still running are gathered into a batch padded to a power of
      two (``min_bucket`` at least: at most log2(B) shapes compile, once) and run for
      ``chunk`` iterations at a time, gathered again between chunks (a chunk in which none
      stopped is followed by one twice as long, so a few stragglers cost few calls).

    Why: a loop iteration's cost is the solver network's matrix products, which grow with
    the rows in the batch, so each iteration spent on a row that has stopped is waste
    (``make bench``'s LISCO records time the batch with and without the streaming phase,
    ``width=None``, side by side). The same per-sample iterates as
    :func:`infer` (up to floating-point reassociation in the batched products): one
    sample's arithmetic never depends on the others."""
    import numpy as np

    def loop(params):
        return _loop(
            lambda z, x, f: step(params, z, x, f),
            residual,
            tol=tol,
            omega=omega,
            shrink=shrink,
            thresholds=thresholds,
        )

    init = jax.jit(lambda params, z0, x: loop(params)[0](z0, x, alpha0))
    advance = jax.jit(lambda params, s, x, k_end: loop(params)[2](s, x, k_end, n_max))

    @jax.jit
    def stream(params, pool: _State, x):
        iterate = loop(params)[1]
        n, w = x.shape[0], width
        sid = jnp.arange(w)
        slots = _State(*_rows(pool, sid), jnp.int32(0))

        def body(c):
            slots, xs, sid, pool, waiting = c
            slots = iterate(slots, xs, n_max)
            stopped = slots.done
            tgt = jnp.where(stopped, sid, n)  # n: out of range, dropped
            pool = _State(
                *[a.at[tgt].set(b, mode="drop") for a, b in zip(pool[:-1], slots[:-1])], pool.k
            )
            new = waiting + jnp.cumsum(stopped) - 1
            take = stopped & (new < n)
            src = jnp.minimum(new, n - 1)
            slots = _State(*_where_rows(take, _rows(pool, src), list(slots[:-1])), slots.k)
            xs = jnp.where(take[:, None], x[src], xs)
            sid = jnp.where(take, new, sid)
            return slots, xs, sid, pool, waiting + jnp.sum(stopped, dtype=jnp.int32)

        slots, _, sid, pool, _ = jax.lax.while_loop(
            lambda c: c[4] < n, body, (slots, x[sid], sid, pool, jnp.int32(w))
        )
        return _State(*[a.at[sid].set(b) for a, b in zip(pool[:-1], slots[:-1])], pool.k)

    def run(params, z0, x) -> InferenceResult:
        state = init(params, z0, x)
        if width is not None and x.shape[0] > width:
            state = stream(params, state, x)
        state = _State(*[np.array(a) for a in jax.device_get(state)])
        x = np.asarray(x)
        b, last, length = x.shape[0], -1, chunk
        while True:
            idx = np.flatnonzero(~state.done)
            if idx.size == 0:
                break
            # a chunk in which no sample stopped: the next one is twice as long (stragglers
            # run in few calls); back to ``chunk`` when the batch shrinks
            length = min(2 * length, n_max) if idx.size == last else chunk
            last = idx.size
            size = min(b, max(min_bucket, 1 << int(np.ceil(np.log2(idx.size)))))
            rows = np.concatenate([idx, np.full(size - idx.size, idx[0])])
            sub = _State(*[a[rows] for a in state[:-1]], np.int32(0))
            sub = jax.device_get(advance(params, sub, x[rows], np.int32(length)))
            for a, a_sub in zip(state[:-1], sub[:-1]):
                a[idx] = a_sub[: idx.size]
        return _result(state, n_max, tol)

    return run


def infer_compacted(step: Callable, residual: Callable, z0, x, **kw) -> InferenceResult:
    """:func:`compacted_runner` for a ``step(z, x, f)`` without parameters (tests, Newton)."""
    return compacted_runner(lambda params, z, xx, f: step(z, xx, f), residual, **kw)(None, z0, x)


def newton_step(residual: Callable) -> Callable:
    """Δz = −J(z)⁻¹ F(z) per sample (batched; ``f`` = F(z) when the caller holds it): the
    exact-Newton stand-in for the network."""

    def one(z, x, f):
        return -jnp.linalg.solve(jax.jacfwd(residual)(z, x), f)

    def step(z, x, f=None):
        if f is None:
            f = jax.vmap(residual)(z, x)
        return jax.vmap(one)(z, x, f)

    return step


__all__ = [
    "BATCH_CHUNK",
    "STREAM_WIDTH",
    "InferenceResult",
    "infer",
    "infer_compacted",
    "compacted_runner",
    "newton_step",
]

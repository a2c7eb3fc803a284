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
whether it converged. ``step`` is a batched function (z (B, n_z), x (B, n_x)) -> Δz; the
tests drive the loop with exact Newton steps, which must converge quadratically.
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
    best_z: jax.Array
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
    """(init(z0, x, alpha0) -> state, advance(state, x, k_end) -> state): the loop's pieces.
    ``advance`` iterates while k < k_end and some sample is still running."""
    never = jnp.iinfo(jnp.int32).max

    def norms(z, x):
        return jnp.linalg.norm(jax.vmap(residual)(z, x), axis=1)

    def hit(nrm):
        levels = jnp.asarray(thresholds, nrm.dtype).reshape(1, -1)
        return (0.5 * nrm**2)[:, None] <= levels

    def init(z0, x, alpha0):
        n0 = norms(z0, x)
        b = z0.shape[0]
        return _State(
            z0,
            z0,
            n0,
            jnp.full((b,), alpha0, z0.dtype),
            0.5 * n0**2 <= tol,
            jnp.zeros((b,), jnp.int32),
            jnp.zeros((b,), jnp.int32),
            jnp.where(hit(n0), 0, never).astype(jnp.int32),
            jnp.int32(0),
        )

    def advance(s: _State, x, k_end):
        def cond(s: _State):
            return (s.k < k_end) & ~jnp.all(s.done)

        def body(s: _State):
            active = ~s.done
            z_new = s.z + s.alpha[:, None] * step(s.z, x)
            nrm = norms(z_new, x)
            nrm = jnp.where(jnp.isfinite(nrm), nrm, jnp.inf)
            better = active & (nrm < s.best_norm)
            best_z = jnp.where(better[:, None], z_new, s.best_z)
            best_norm = jnp.where(better, nrm, s.best_norm)
            reset = active & (nrm > omega * best_norm)
            z = jnp.where(reset[:, None], best_z, z_new)
            z = jnp.where(active[:, None], z, s.z)
            alpha = jnp.where(reset, s.alpha * shrink, s.alpha)
            done = s.done | (0.5 * best_norm**2 <= tol)
            hits = jnp.where(hit(best_norm) & (s.hits == never), s.k + 1, s.hits)
            return _State(
                z,
                best_z,
                best_norm,
                alpha,
                done,
                s.iterations + active,
                s.resets + reset,
                hits,
                s.k + 1,
            )

        return jax.lax.while_loop(cond, body, s)

    return init, advance


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
    init, advance = _loop(
        step, residual, tol=tol, omega=omega, shrink=shrink, thresholds=thresholds
    )
    return _result(advance(init(z0, x, alpha0), x, n_max), n_max, tol)


#: iterations per compiled chunk of :func:`compacted_runner` (this project's batched
#: evaluation: converged samples leave the batch between chunks; 25 until 2026-12-06)
BATCH_CHUNK = 10


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
    min_bucket: int = 8,
) -> Callable:
    """``run(params, z0, x) -> InferenceResult``: :func:`infer` for a large batch, in compiled
    chunks of ``chunk`` iterations; between chunks the samples still running are gathered
    into a smaller batch (padded to a power of two: at most log2(B) shapes compile, once), so
    converged samples stop costing work (``chunk`` = 10: on this project's 2-core CPU,
    ``make bench``'s Rosenbrock batch of 833 took 0.213 s against 0.246 s with chunks of
    25, the non-convex QP's the same, 2026-12-06). ``step(params, z, x)``. The same
    per-sample iterates as :func:`infer` (up to floating-point reassociation in the batched
    products): one sample's arithmetic never depends on the others."""
    import numpy as np

    def loop(params):
        return _loop(
            lambda z, x: step(params, z, x),
            residual,
            tol=tol,
            omega=omega,
            shrink=shrink,
            thresholds=thresholds,
        )

    init = jax.jit(lambda params, z0, x: loop(params)[0](z0, x, alpha0))
    advance = jax.jit(lambda params, s, x, k_end: loop(params)[1](s, x, k_end))

    def run(params, z0, x) -> InferenceResult:
        state = _State(*[np.array(a) for a in jax.device_get(init(params, z0, x))])
        x = np.asarray(x)
        b, k = x.shape[0], 0
        while k < n_max:
            idx = np.flatnonzero(~state.done)
            if idx.size == 0:
                break
            size = min(b, max(min_bucket, 1 << int(np.ceil(np.log2(idx.size)))))
            rows = np.concatenate([idx, np.full(size - idx.size, idx[0])])
            sub = _State(*[a[rows] for a in state[:-1]], np.int32(k))
            k = min(k + chunk, n_max)
            sub = jax.device_get(advance(params, sub, x[rows], np.int32(k)))
            for a, a_sub in zip(state[:-1], sub[:-1]):
                a[idx] = a_sub[: idx.size]
        return _result(state._replace(k=np.int32(k)), n_max, tol)

    return run


def infer_compacted(step: Callable, residual: Callable, z0, x, **kw) -> InferenceResult:
    """:func:`compacted_runner` for a ``step(z, x)`` without parameters (tests, Newton)."""
    return compacted_runner(lambda params, z, xx: step(z, xx), residual, **kw)(None, z0, x)


def newton_step(residual: Callable) -> Callable:
    """Δz = −J(z)⁻¹ F(z) per sample (batched): the exact-Newton stand-in for the network."""

    def one(z, x):
        return -jnp.linalg.solve(jax.jacfwd(residual)(z, x), residual(z, x))

    return jax.vmap(one)


__all__ = [
    "BATCH_CHUNK",
    "InferenceResult",
    "infer",
    "infer_compacted",
    "compacted_runner",
    "newton_step",
]

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


def infer(step: Callable, residual: Callable, z0: jax.Array, x: jax.Array, *,
          n_max: int | jax.Array = 500, tol: float = 1e-8, omega: float = 10.0,
          alpha0: float = 1.0, shrink: float = 0.95,
          thresholds: tuple = ()) -> InferenceResult:
    """Run the loop (jittable; ``n_max`` may be traced). ``residual(z, x)`` is F for one
    sample; it is vmapped here. ``thresholds``: levels of T whose first-hit iteration is
    recorded per sample (the convergence curves; 0 = already at the start)."""
    norms = lambda z: jnp.linalg.norm(jax.vmap(residual)(z, x), axis=1)
    n0 = norms(z0)
    b = z0.shape[0]
    levels = jnp.asarray(thresholds, z0.dtype).reshape(1, -1)
    never = jnp.iinfo(jnp.int32).max
    hit = lambda nrm: (0.5 * nrm**2)[:, None] <= levels
    init = _State(z0, z0, n0, jnp.full((b,), alpha0, z0.dtype), 0.5 * n0**2 <= tol,
                  jnp.zeros((b,), jnp.int32), jnp.zeros((b,), jnp.int32),
                  jnp.where(hit(n0), 0, never).astype(jnp.int32), jnp.int32(0))

    def cond(s: _State):
        return (s.k < n_max) & ~jnp.all(s.done)

    def body(s: _State):
        active = ~s.done
        z_new = s.z + s.alpha[:, None] * step(s.z, x)
        nrm = norms(z_new)
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
        return _State(z, best_z, best_norm, alpha, done, s.iterations + active,
                      s.resets + reset, hits, s.k + 1)

    s = jax.lax.while_loop(cond, body, init)
    merit = 0.5 * s.best_norm**2
    hits = jnp.where(s.hits == never, jnp.asarray(n_max, jnp.int32) + 1, s.hits)
    return InferenceResult(s.best_z, merit, s.iterations, merit <= tol, s.resets, hits)


def newton_step(residual: Callable) -> Callable:
    """Δz = −J(z)⁻¹ F(z) per sample (batched): the exact-Newton stand-in for the network."""
    def one(z, x):
        return -jnp.linalg.solve(jax.jacfwd(residual)(z, x), residual(z, x))
    return jax.vmap(one)


__all__ = ["InferenceResult", "infer", "newton_step"]

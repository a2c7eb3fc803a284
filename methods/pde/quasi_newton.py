"""Quasi-Newton approximations H_k of the Lagrangian Hessian for trSQP (trSQP-PINN §3).

Three updates, each in a dense (n × n, the paper's) and a compact limited-memory form
(k pairs, products in O(nk), never an n × n matrix); H₀ = σI with σ = 1 (the paper's I):

* ``sr1``: H ← H + vvᵀ / vᵀs with v = y − Hs; skipped when |vᵀs| < r‖s‖‖v‖ (r = 1e-8,
  the standard safeguard, Nocedal & Wright (6.26); the reference code has none).
* ``damped_bfgs`` (Powell damping, δ = 0.2): γ = 1 if sᵀy ≥ δ sᵀHs else
  (1 − δ) sᵀHs / (sᵀHs − sᵀy); r = γy + (1 − γ)Hs; H ← H − HssᵀH / sᵀHs + rrᵀ / sᵀr.
  Then sᵀr ≥ δ sᵀHs > 0, so H stays positive definite.
* ``identity``: H ≡ I.

The compact forms (Byrd, Nocedal & Schnabel 1994) with S, Y the stored pairs (oldest
first), D = diag(sᵢᵀyᵢ), L the strictly lower triangle of SᵀY:

    BFGS: H = σI − W M⁻¹ Wᵀ,  W = [σS  Y],  M = [[σSᵀS, L], [Lᵀ, −D]]
    SR1:  H = σI + Ψ M⁻¹ Ψᵀ,  Ψ = Y − σS,   M = D + L + Lᵀ − σSᵀS

For damped BFGS the stored y is the damped r, so both forms give the same matrix on the
same pairs (a test checks this). M⁻¹ is formed once per update (2k × 2k), not per product.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

HESSIANS = ("sr1", "damped_bfgs", "identity")
SR1_SKIP = 1e-8  # r in |vᵀs| ≥ r ‖s‖ ‖v‖
DAMPING = 0.2  # δ


class Dense(NamedTuple):
    H: jax.Array  # (n, n)


class Compact(NamedTuple):
    S: jax.Array  # (k, n) steps, oldest first
    Y: jax.Array  # (k, n) gradient differences (damped for BFGS)
    count: jax.Array  # pairs stored (≤ k)
    Minv: jax.Array  # inverse of the middle matrix (2k × 2k for BFGS, k × k for SR1)


class Identity(NamedTuple):
    pass


def init(kind: str, memory: int | None, n: int, dtype):
    """H₀ = I. ``memory=None``: dense n × n; an int k: compact with k pairs."""
    if kind == "identity":
        return Identity()
    if memory is None:
        return Dense(jnp.eye(n, dtype=dtype))
    k = memory
    m = 2 * k if kind == "damped_bfgs" else k
    return Compact(
        jnp.zeros((k, n), dtype), jnp.zeros((k, n), dtype), jnp.int32(0), jnp.eye(m, dtype=dtype)
    )


def hvp(kind: str, h, v):
    """H v."""
    if isinstance(h, Identity):
        return v
    if isinstance(h, Dense):
        return h.H @ v
    if kind == "damped_bfgs":
        w = jnp.concatenate([h.S @ v, h.Y @ v])  # Wᵀv with σ = 1
        u = h.Minv @ w
        k = h.S.shape[0]
        return v - (h.S.T @ u[:k] + h.Y.T @ u[k:])
    psi = h.Y - h.S  # Ψᵀ rows, σ = 1
    return v + psi.T @ (h.Minv @ (psi @ v))


def _middle_inverse(kind: str, S, Y, valid):
    """M⁻¹ of the compact form; unused slots get an identity block (their W columns are 0)."""
    SY = S @ Y.T  # (i, j) = sᵢᵀyⱼ
    SS = S @ S.T
    L = jnp.tril(SY, -1)
    D = jnp.diag(jnp.diag(SY))
    pad = jnp.diag(jnp.where(valid, 0.0, 1.0).astype(S.dtype))
    if kind == "damped_bfgs":
        M = jnp.block([[SS + pad, L], [L.T, -D - pad]])
    else:
        M = D + L + L.T - SS + pad
    return jnp.linalg.inv(M)


def update(kind: str, h, s, y):
    """H_{k+1} from H_k and the pair (s, y); returns (H, applied: bool)."""
    if isinstance(h, Identity):
        return h, jnp.array(False)
    Hs = hvp(kind, h, s)
    if kind == "sr1":
        v = y - Hs
        vs = v @ s
        ok = jnp.abs(vs) >= SR1_SKIP * jnp.linalg.norm(s) * jnp.linalg.norm(v)
        ok &= jnp.linalg.norm(v) > 0
        pair_y = y
        if isinstance(h, Dense):
            H = h.H + jnp.outer(v, v) / jnp.where(ok, vs, 1.0)
            return Dense(jnp.where(ok, H, h.H)), ok
    else:  # damped BFGS
        sHs = s @ Hs
        sy = s @ y
        gamma = jnp.where(
            sy >= DAMPING * sHs, 1.0, (1 - DAMPING) * sHs / jnp.where(sHs - sy != 0, sHs - sy, 1.0)
        )
        r = gamma * y + (1 - gamma) * Hs
        sr = s @ r
        ok = (sHs > 0) & (sr > 0)
        pair_y = r
        if isinstance(h, Dense):
            H = (
                h.H
                - jnp.outer(Hs, Hs) / jnp.where(ok, sHs, 1.0)
                + jnp.outer(r, r) / jnp.where(ok, sr, 1.0)
            )
            return Dense(jnp.where(ok, H, h.H)), ok
    # compact: drop the oldest pair, append (s, pair_y)
    S = jnp.concatenate([h.S[1:], s[None]])
    Y = jnp.concatenate([h.Y[1:], pair_y[None]])
    k = h.S.shape[0]
    count = jnp.minimum(h.count + 1, k)
    valid = jnp.arange(k) >= k - count
    new = Compact(S, Y, count, _middle_inverse(kind, S, Y, valid))
    return jax.tree.map(lambda a, b: jnp.where(ok, a, b), new, h), ok

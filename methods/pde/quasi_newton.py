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

Each update is a small object in the optax manner, three pure functions over a state
(``Dense``, ``Compact`` or ``Identity``): ``init(n, dtype)``, ``hvp(h, v)`` = H v and
``update(h, s, y)`` -> (H⁺, applied). ``approximation(kind, memory)`` builds one from
``method.hessian`` / ``method.memory`` (``memory=None``: dense).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

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


class Approximation(NamedTuple):
    """One quasi-Newton update: pure functions over its state (H₀ = I)."""

    name: str
    init: Callable  # (n, dtype) -> state
    hvp: Callable  # (state, v) -> H v
    update: Callable  # (state, s, y) -> (state, applied: bool array)


# --- the compact limited-memory form, shared by SR1 and damped BFGS -------------------------


def _compact_init(k: int, middle: int, n: int, dtype) -> Compact:
    return Compact(
        jnp.zeros((k, n), dtype),
        jnp.zeros((k, n), dtype),
        jnp.int32(0),
        jnp.eye(middle, dtype=dtype),
    )


def _compact_push(h: Compact, s, pair_y, ok, middle_inverse) -> tuple[Compact, jax.Array]:
    """Drop the oldest pair, append (s, pair_y), refresh M⁻¹; unchanged where not ``ok``."""
    S = jnp.concatenate([h.S[1:], s[None]])
    Y = jnp.concatenate([h.Y[1:], pair_y[None]])
    k = h.S.shape[0]
    count = jnp.minimum(h.count + 1, k)
    valid = jnp.arange(k) >= k - count
    new = Compact(S, Y, count, middle_inverse(S, Y, valid))
    return jax.tree.map(lambda a, b: jnp.where(ok, a, b), new, h), ok


def _blocks(S, Y, valid):
    """SᵀY's strictly lower triangle L, D = diag(sᵢᵀyᵢ), SᵀS, and the identity on unused
    slots (their W columns are 0)."""
    SY = S @ Y.T  # (i, j) = sᵢᵀyⱼ
    pad = jnp.diag(jnp.where(valid, 0.0, 1.0).astype(S.dtype))
    return jnp.tril(SY, -1), jnp.diag(jnp.diag(SY)), S @ S.T, pad


# --- SR1 ------------------------------------------------------------------------------------


def sr1(memory: int | None = None) -> Approximation:
    """Symmetric rank one, skipped when |vᵀs| < r‖s‖‖v‖ (v = y − Hs)."""

    def init(n, dtype):
        return (
            Dense(jnp.eye(n, dtype=dtype))
            if memory is None
            else _compact_init(memory, memory, n, dtype)
        )

    def hvp(h, v):
        if isinstance(h, Dense):
            return h.H @ v
        psi = h.Y - h.S  # Ψᵀ rows, σ = 1
        return v + psi.T @ (h.Minv @ (psi @ v))

    def middle_inverse(S, Y, valid):
        L, D, SS, pad = _blocks(S, Y, valid)
        return jnp.linalg.inv(D + L + L.T - SS + pad)

    def update(h, s, y):
        v = y - hvp(h, s)
        vs = v @ s
        ok = jnp.abs(vs) >= SR1_SKIP * jnp.linalg.norm(s) * jnp.linalg.norm(v)
        ok &= jnp.linalg.norm(v) > 0
        if isinstance(h, Dense):
            H = h.H + jnp.outer(v, v) / jnp.where(ok, vs, 1.0)
            return Dense(jnp.where(ok, H, h.H)), ok
        return _compact_push(h, s, y, ok, middle_inverse)

    return Approximation("sr1", init, hvp, update)


# --- damped BFGS ----------------------------------------------------------------------------


def damped_bfgs(memory: int | None = None) -> Approximation:
    """BFGS with Powell's damping (δ = 0.2): H stays positive definite."""

    def init(n, dtype):
        return (
            Dense(jnp.eye(n, dtype=dtype))
            if memory is None
            else _compact_init(memory, 2 * memory, n, dtype)
        )

    def hvp(h, v):
        if isinstance(h, Dense):
            return h.H @ v
        w = jnp.concatenate([h.S @ v, h.Y @ v])  # Wᵀv with σ = 1
        u = h.Minv @ w
        k = h.S.shape[0]
        return v - (h.S.T @ u[:k] + h.Y.T @ u[k:])

    def middle_inverse(S, Y, valid):
        L, D, SS, pad = _blocks(S, Y, valid)
        return jnp.linalg.inv(jnp.block([[SS + pad, L], [L.T, -D - pad]]))

    def update(h, s, y):
        Hs = hvp(h, s)
        sHs = s @ Hs
        sy = s @ y
        gamma = jnp.where(
            sy >= DAMPING * sHs, 1.0, (1 - DAMPING) * sHs / jnp.where(sHs - sy != 0, sHs - sy, 1.0)
        )
        r = gamma * y + (1 - gamma) * Hs
        sr = s @ r
        ok = (sHs > 0) & (sr > 0)
        if isinstance(h, Dense):
            H = (
                h.H
                - jnp.outer(Hs, Hs) / jnp.where(ok, sHs, 1.0)
                + jnp.outer(r, r) / jnp.where(ok, sr, 1.0)
            )
            return Dense(jnp.where(ok, H, h.H)), ok
        return _compact_push(h, s, r, ok, middle_inverse)  # the stored y is the damped r

    return Approximation("damped_bfgs", init, hvp, update)


# --- H ≡ I ----------------------------------------------------------------------------------


def identity(memory: int | None = None) -> Approximation:
    """H ≡ I (no update)."""
    return Approximation(
        "identity",
        init=lambda n, dtype: Identity(),
        hvp=lambda h, v: v,
        update=lambda h, s, y: (h, jnp.array(False)),
    )


APPROXIMATIONS: dict[str, Callable[[int | None], Approximation]] = {
    "sr1": sr1,
    "damped_bfgs": damped_bfgs,
    "identity": identity,
}
HESSIANS = tuple(APPROXIMATIONS)  # the choices of ``method.hessian``


def approximation(kind: str, memory: int | None = None) -> Approximation:
    """The update ``kind`` (one of :data:`HESSIANS`); ``memory=None``: dense n × n, an int
    k: compact with k pairs."""
    return APPROXIMATIONS[kind](memory)

"""DC3's parametric optimization instances and LISCO's optimality residual (spec lisco.md).

    y*(x) = argmin_y f(y; x)  s.t.  A y = x,  G y ≤ h,   y ∈ R^n, x ∈ [−1, 1]^{n_eq}.

Instance generation follows DC3 (Donti, Rolnick, Kolter 2021) draw for draw with the legacy
``numpy.random.RandomState(seed)``: Q = diag(U[0,1]^n), p = U[0,1]^n, A ~ N(0,1)^{n_eq×n},
X ~ U[−1,1]^{N×n_eq}, G ~ N(0,1)^{n_ineq×n}, h = Σ_j |G A⁺|_ij. Seed 17 is DC3's instance
(the tests reproduce DC3's recorded test-set mean objectives to every printed digit); the
split is train X[:8334], valid X[8334:9167], test X[9167:] (833 points).

Objectives (:data:`OBJECTIVES`, each formula written once for JAX and CasADi): ``qp``
½yᵀQy + pᵀy; ``nonconvex_qp`` ½yᵀQy + pᵀsin(y); ``rosenbrock``
Σ_{i<n} [(y_{i+1} − y_i²)² + 0.01(1 − y_i)²] + 5 pᵀy.

LISCO's residual (paper §3): z = (y, ν, λ), L = f + νᵀ(Ay − x) + λᵀ(Gy − h),

    F(z; x) = [∇_y L;  A y − x;  φ(λ, g)],  g = G y − h,
    φ(λ, g) = λ − g − sqrt(λ² + g² + ε²)   (Fischer–Burmeister, ε = 1e-6),

T(z; x) = ½‖F‖². ∇f by JAX autodiff; everything vmaps over a batch of x.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from problems.common.base import check_choice, check_positive_int


class Ops(NamedTuple):
    """The array operations an objective formula uses: ``JAX_OPS`` here, CasADi's in
    ``methods.parametric.lisco_baselines`` (IPOPT), so each formula is written once."""

    dot: Callable
    sin: Callable
    sum: Callable


JAX_OPS = Ops(jnp.dot, jnp.sin, jnp.sum)

# f(y; q, p, ops) of each objective, q = diag(Q) (DC3's Q is diagonal), p the linear term
Formula = Callable[[Any, Any, Any, Ops], Any]


def _qp(y, q, p, ops):
    return 0.5 * ops.dot(y, q * y) + ops.dot(p, y)


def _nonconvex_qp(y, q, p, ops):
    return 0.5 * ops.dot(y, q * y) + ops.dot(p, ops.sin(y))


def _rosenbrock(y, q, p, ops):
    return ops.sum((y[1:] - y[:-1] ** 2) ** 2 + 0.01 * (1 - y[:-1]) ** 2) + 5.0 * ops.dot(p, y)


#: name -> formula; a new parametric problem adds its own (:func:`register_objective`)
OBJECTIVES: dict[str, Formula] = {
    "qp": _qp,
    "nonconvex_qp": _nonconvex_qp,
    "rosenbrock": _rosenbrock,
}


def register_objective(kind: str, formula: Formula) -> Formula:
    """Add objective ``kind`` (a :class:`problems.parametric.base.ParametricOpt` subclass's
    ``kind``): ``formula(y, q, p, ops)`` with ``ops`` the array operations (JAX for LISCO's
    residual, CasADi for IPOPT); a name already taken by another formula is refused."""
    if kind in OBJECTIVES and OBJECTIVES[kind] is not formula:
        raise ValueError(f"objective {kind!r} is taken")
    OBJECTIVES[kind] = formula
    return formula


SPLIT = (8334, 9167)  # DC3: train [:8334], valid [8334:9167], test [9167:]


class Dc3Instance(NamedTuple):
    Q: np.ndarray  # (n, n) diagonal
    p: np.ndarray  # (n,)
    A: np.ndarray  # (n_eq, n)
    G: np.ndarray  # (n_ineq, n)
    h: np.ndarray  # (n_ineq,)
    X: np.ndarray  # (n_examples, n_eq) parameters x

    @property
    def train(self):
        return self.X[: SPLIT[0]]

    @property
    def valid(self):
        return self.X[SPLIT[0] : SPLIT[1]]

    @property
    def test(self):
        return self.X[SPLIT[1] :]


def dc3_instance(
    seed: int = 17, n: int = 100, n_eq: int = 50, n_ineq: int = 50, n_examples: int = 10000
) -> Dc3Instance:
    """DC3's generator, draw for draw (legacy RandomState, in DC3's order)."""
    for v, f in ((n, "n"), (n_eq, "n_eq"), (n_ineq, "n_ineq"), (n_examples, "n_examples")):
        check_positive_int(v, f"problem.{f}")
    rng = np.random.RandomState(seed)
    q = np.diag(rng.random_sample(n))
    p = rng.random_sample(n)
    a = rng.normal(size=(n_eq, n))
    x = rng.uniform(-1, 1, size=(n_examples, n_eq))
    g = rng.normal(size=(n_ineq, n))
    h = np.sum(np.abs(g @ np.linalg.pinv(a)), axis=1)
    return Dc3Instance(q, p, a, g, h, x)


def objective(kind: str, inst: Dc3Instance, dtype=None):
    """f(y) of ``kind`` (jnp; the same y ↦ f for every x), constants cast to ``dtype``."""
    check_choice(kind, "problem.objective", list(OBJECTIVES))
    formula = OBJECTIVES[kind]
    q, p = jnp.asarray(np.diag(inst.Q), dtype), jnp.asarray(inst.p, dtype)
    return lambda y: formula(y, q, p, JAX_OPS)


@dataclasses.dataclass(frozen=True)
class Residual:
    """F(z; x) and T(z; x) = ½‖F‖² for one instance and objective (jittable, vmappable)."""

    kind: str
    inst: Dc3Instance
    eps: float = 1e-6  # ε of the smoothed Fischer–Burmeister function
    dtype: Any = None  # dtype of the constants (None: JAX's default float)

    def split(self, z):
        n, m = self.inst.A.shape[1], self.inst.A.shape[0]
        return z[:n], z[n : n + m], z[n + m :]

    def __call__(self, z, x, grad_f=None):
        """F(z; x). ``grad_f(y)`` replaces ∇f (the convexified residual of training)."""
        grad_f = jax.grad(objective(self.kind, self.inst, self.dtype)) if grad_f is None else grad_f
        a, g_mat, h = (jnp.asarray(v, self.dtype) for v in (self.inst.A, self.inst.G, self.inst.h))
        y, nu, lam = self.split(z)
        g = g_mat @ y - h
        grad_l = grad_f(y) + a.T @ nu + g_mat.T @ lam  # ∇_y L
        fb = lam - g - jnp.sqrt(lam**2 + g**2 + self.eps**2)  # φ(λ, g)
        return jnp.concatenate([grad_l, a @ y - x, fb])

    def convexified(self, z, x, y_k, rho: float):
        """F with ∇f(y) replaced by ∇f(y_k) + 2ρ(y − y_k), y_k the (detached) current
        iterate: LISCO's convexification for training on non-convex problems (paper §3.2).
        Equal to F at y = y_k; ρ = 0 gives the exact F."""
        if rho == 0:
            return self(z, x)
        y_k = jax.lax.stop_gradient(y_k)
        g_k = jax.grad(objective(self.kind, self.inst, self.dtype))(y_k)
        return self(z, x, grad_f=lambda y: g_k + 2.0 * rho * (y - y_k))

    def objective(self, y):
        """f(y)."""
        return objective(self.kind, self.inst, self.dtype)(y)

    def merit(self, z, x):
        """T(z; x) = ½‖F(z; x)‖²."""
        r = self(z, x)
        return 0.5 * r @ r


__all__ = [
    "JAX_OPS",
    "OBJECTIVES",
    "SPLIT",
    "Dc3Instance",
    "Ops",
    "Residual",
    "dc3_instance",
    "objective",
    "register_objective",
]

"""Reaction (logistic growth): u_t − α u (1 − u) = 0, Gaussian IC, periodic in x.

u0(x) = exp(−ζ (x − π)²) (ζ = 2, i.e. σ = 0.5). Exact solution, pointwise in x
(trSQP-PINN §4.2):

    u*(x, t) = u0 e^{αt} / (u0 e^{αt} + 1 − u0) = u0 / (u0 + (1 − u0) e^{−αt}),

the second form being the one evaluated (no overflow for large αt).
α = 30 by default, swept over ±{1, 10, 20, 30, 40, 50}.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

from problems.common.base import check
from problems.pde.pde1d import PDEConfig, PeriodicPDEProblem


def logistic_flow(u0, alpha, t, xp=jnp):
    """Exact solution of u' = α u (1 − u) after time t from u0."""
    return u0 / (u0 + (1.0 - u0) * xp.exp(-alpha * t))


@dataclasses.dataclass(frozen=True)
class ReactionConfig(PDEConfig):
    alpha: float = 30.0  # α, the reaction rate
    zeta: float = 2.0  # ζ, IC width: u0 = exp(-ζ (x - π)^2)

    def __post_init__(self):
        super().__post_init__()
        check(
            isinstance(self.alpha, (int, float)) and math.isfinite(self.alpha),
            "problem.alpha",
            f"must be a finite number, got {self.alpha!r}",
        )
        check(
            isinstance(self.zeta, (int, float)) and self.zeta > 0,
            "problem.zeta",
            f"must be a number > 0, got {self.zeta!r}",
        )


class Reaction(PeriodicPDEProblem):
    name = "reaction"
    Config = ReactionConfig

    def initial_condition(self, x, xp=jnp):
        return xp.exp(-self.cfg.zeta * (x - math.pi) ** 2)

    def pde_residual(self, u, x, t):
        u_t = jax.grad(u, 1)(x, t)
        v = u(x, t)
        return u_t - self.cfg.alpha * v * (1.0 - v)

    def exact(self, x, t):
        return logistic_flow(self.initial_condition(x), self.cfg.alpha, t)

    def reference(self, x, t):
        u0 = self.initial_condition(x, np)[None, :]
        return logistic_flow(u0, self.cfg.alpha, t[:, None], np)

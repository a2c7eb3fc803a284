"""Transport (convection): u_t + β u_x = 0, u(x, 0) = sin x, periodic in x.

Exact solution u*(x, t) = sin(x − βt) (trSQP-PINN §4, App. C; β = 30 by default,
swept over ±{1, 10, 20, 30, 40, 50}). M^train = 12; its IC/PDE/BC split is not in the
paper: we use 4/4/4 [reconstructed].
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

from problems.common.base import check
from problems.pde.pde1d import PDEConfig, PeriodicPDEProblem


@dataclasses.dataclass(frozen=True)
class TransportConfig(PDEConfig):
    beta: float = 30.0  # β, the transport speed
    m_train: int = 12
    # IC / PDE / BC split of M^train [reconstructed]
    m_split: dict = dataclasses.field(default_factory=lambda: {"ic": 4, "pde": 4, "bc": 4})

    def __post_init__(self):
        super().__post_init__()
        check(
            isinstance(self.beta, (int, float)) and math.isfinite(self.beta),
            "problem.beta",
            f"must be a finite number, got {self.beta!r}",
        )


class Transport(PeriodicPDEProblem):
    name = "transport"
    Config = TransportConfig

    def initial_condition(self, x):
        return jnp.sin(x)

    def pde_residual(self, u, x, t):
        u_x = jax.grad(u, 0)(x, t)
        u_t = jax.grad(u, 1)(x, t)
        return u_t + self.cfg.beta * u_x

    def exact(self, x, t):
        return jnp.sin(x - self.cfg.beta * t)

    def reference(self, x, t):
        return np.sin(x[None, :] - self.cfg.beta * t[:, None])

"""Leslie–Gower predator–prey with a Lyapunov path constraint (neural DAE paper §5.2).

    dx0/dt = x0 (r1 − a1 x1 − b1 x0),   dx1/dt = x1 z,   true z = r2 − a2 x1/x0,

z the predator's per-capita growth rate, learned by the network (1 output). Equilibrium
x0* = r1 a2/(a1 r2 + a2 b1), x1* = r1 r2/(a1 r2 + a2 b1). The Lyapunov function

    V = ln(x0/x0*) + x0*/x0 + (a1 x0*/a2) (ln(x1/x1*) + x1*/x1)

decreases along the true trajectories; the optional path constraint (``lyapunov``) asks
dV/dt ≤ 0 at every collocation point after t0. [reconstructed] dV/dt is written by the chain
rule, ∇V(x) · f(x, z), at the collocation point (exact for the collocated model), rather than
collocating V as an extra algebraic variable and differentiating its polynomial: the same
constraint without the extra variables.
"""

from __future__ import annotations

import dataclasses

import casadi as ca
import numpy as np

from problems.common.base import check
from problems.dae.base import DaeConfig, DaeProblem


@dataclasses.dataclass(frozen=True)
class PopulationConfig(DaeConfig):
    r1: float = 0.2
    r2: float = 0.2
    a1: float = 0.2
    b1: float = 0.1
    a2: float = 0.01
    lyapunov: bool = False  # impose dV/dt ≤ 0 at the collocation points
    n_fe: int = 40
    K: int = 3
    truth_n_fe: int = 60
    truth_K: int = 3
    hidden: tuple = (16, 16)  # MLP 2 → 16 → 16 → 1
    activation: str = "softplus"
    smoothing_weight: float = 1.0
    l2_weight: float = 1e-3
    noise_std: float = 0.05
    test_horizon: float | None = 160.0  # test ICs (0.5, 0.5), (1.5, 0.3) over [0, 160]

    def __post_init__(self):
        super().__post_init__()
        check(
            isinstance(self.lyapunov, bool),
            "problem.lyapunov",
            f"must be true or false, got {self.lyapunov!r}",
        )


class Population(DaeProblem):
    name = "population"
    Config = PopulationConfig
    state_names = ("x0", "x1")
    closure_names = ("z",)
    tf = 80.0
    train_x0 = ((1.0, 0.1),)
    test_x0 = ((0.5, 0.5), (1.5, 0.3))
    x_lower = (1e-8, 1e-8)  # populations stay positive (V has ln x)
    z_lower = None

    @property
    def equilibrium(self) -> tuple[float, float]:
        c = self.cfg
        den = c.a1 * c.r2 + c.a2 * c.b1
        return c.r1 * c.a2 / den, c.r1 * c.r2 / den

    def rhs(self, x, y, z, p):
        c = self.cfg
        return ca.vertcat(x[0] * (c.r1 - c.a1 * x[1] - c.b1 * x[0]), x[1] * z[0])

    def true_closure(self, x, y, p):
        return self.cfg.r2 - self.cfg.a2 * x[1] / x[0]

    def ode_rhs(self, x, z, p):
        """dx/dt (JAX; the sequential method)."""
        import jax.numpy as jnp

        c = self.cfg
        return jnp.stack([x[0] * (c.r1 - c.a1 * x[1] - c.b1 * x[0]), x[1] * z[0]])

    def true_closure_jax(self, x, p):
        import jax.numpy as jnp

        return jnp.stack([self.cfg.r2 - self.cfg.a2 * x[1] / x[0]])

    def lyapunov_function(self, x):
        """V(x) (CasADi or NumPy x with rows x0, x1)."""
        e0, e1 = self.equilibrium
        log = ca.log if isinstance(x, (ca.SX, ca.MX, ca.DM)) else np.log
        k = self.cfg.a1 * e0 / self.cfg.a2
        return log(x[0] / e0) + e0 / x[0] + k * (log(x[1] / e1) + e1 / x[1])

    def path_constraints(self, x, y, z, p, dxdt):
        if not self.cfg.lyapunov:
            return super().path_constraints(x, y, z, p, dxdt)
        return self.lyapunov_rate(x, dxdt)

    def lyapunov_rate(self, x, dxdt):
        """dV/dt = ∇V(x) · dx/dt, ∂V/∂x0 = 1/x0 − x0*/x0², ∂V/∂x1 = k (1/x1 − x1*/x1²),
        k = a1 x0*/a2 (CasADi or NumPy)."""
        e0, e1 = self.equilibrium
        k = self.cfg.a1 * e0 / self.cfg.a2
        return (1 / x[0] - e0 / x[0] ** 2) * dxdt[0] + k * (1 / x[1] - e1 / x[1] ** 2) * dxdt[1]

    def test_metrics(self, grid, x) -> dict:
        """Distance to the equilibrium at the end and the largest rise of V along the test
        simulation (≤ 0 when V decreases everywhere)."""
        if not np.all(np.isfinite(x)):
            return {"final_distance_to_equilibrium": float("nan"), "max_V_increase": float("nan")}
        v = self.lyapunov_function(x)
        return {
            "final_distance_to_equilibrium": float(
                np.linalg.norm(x[:, -1] - np.asarray(self.equilibrium))
            ),
            "max_V_increase": float(np.max(np.diff(v))),
        }

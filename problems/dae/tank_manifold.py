"""Tank manifold: four tanks, an index-2 DAE (neural DAE paper §5.1, spec neural_dae.md).

States: heights x0..x3. Flows: y0 pump (tank 3 → valve), y1 valve → tank 0, y2 valve →
tank 1 (reversible), y3 drain 0 → 2, y4 drain 2 → 3:

    dx0/dt = (y1 − y3)/φ0,  dx1/dt = y2/φ1,  dx2/dt = (y3 − y4)/φ2,  dx3/dt = (y4 − y0)/φ3,
    0 = y0 − y1 − y2,   0 = x0 − x1 (tanks 0 and 1 at equal height: index 2),
    0 = y4 − a2 √x2 (known drain law).

The closure the network learns (2 outputs): z = (y0, y3), truth y0 = C_pump x0 x3,
y3 = a1 √x0. Algebraic variables y = (y1, y2, y4). The equal-height constraint is imposed
at every collocation point and, as an equation on the states, at t0 (the training ICs
satisfy it). Total volume Σ φ_i x_i is conserved (the flows only move liquid around).
Bounds: heights ≥ 0; y0, y1, y3, y4 ≥ 0 (y1 and y4 here, y0 and y3 are the closure's,
bounded in the NLPs through ``z_lower``).
"""

from __future__ import annotations

import dataclasses

import casadi as ca
import numpy as np

from problems.dae.base import DaeConfig, DaeProblem


@dataclasses.dataclass(frozen=True)
class TankManifoldConfig(DaeConfig):
    phi: tuple = (0.1, 0.5, 2.0, 10.0)  # φ_i: tank cross sections
    a1: float = 0.1  # drain 0 -> 2 coefficient (learned)
    a2: float = 0.1  # drain 2 -> 3 coefficient (known)
    c_pump: float = 0.2  # pump: y0 = C_pump x0 x3 (learned)
    n_fe: int = 20  # training grid: finite elements
    K: int = 2  # training grid: Radau points per element
    hidden: tuple = (32, 32)  # MLP 4 → 32 → 32 → 2
    activation: str = "tanh"
    smoothing_weight: float = 10.0
    l2_weight: float = 1e-2
    noise_std: float = 0.05  # Gaussian noise on all heights


class TankManifold(DaeProblem):
    name = "tank_manifold"
    Config = TankManifoldConfig
    state_names = ("x0", "x1", "x2", "x3")
    algebraic_names = ("y1", "y2", "y4")
    closure_names = ("y0", "y3")
    tf = 400.0
    train_x0 = ((0.75, 0.75, 2.50, 0.60), (3.10, 3.10, 1.50, 0.50), (0.90, 0.90, 1.80, 1.10))
    test_x0 = ((1.10, 1.10, 2.40, 0.90),)
    x_lower = (0.0, 0.0, 0.0, 0.0)
    y_lower = (0.0, -np.inf, 0.0)  # y1 ≥ 0, y2 free (reversible), y4 ≥ 0
    z_lower = (0.0, 0.0)  # y0, y3 ≥ 0
    fixed_initial_states = (1, 2, 3)  # x0(t0) follows from x0 = x1 (the authors' code)

    def rhs(self, x, y, z, p):
        phi = self.cfg.phi
        y1, y2, y4 = y[0], y[1], y[2]
        y0, y3 = z[0], z[1]
        return ca.vertcat((y1 - y3) / phi[0], y2 / phi[1], (y3 - y4) / phi[2], (y4 - y0) / phi[3])

    def algebraic(self, x, y, z, p):
        y1, y2, y4 = y[0], y[1], y[2]
        return ca.vertcat(z[0] - y1 - y2, x[0] - x[1], y4 - self.cfg.a2 * ca.sqrt(x[2]))

    def true_closure(self, x, y, p):
        return ca.vertcat(self.cfg.c_pump * x[0] * x[3], self.cfg.a1 * ca.sqrt(x[0]))

    def initial_equations(self, x0):
        return x0[0] - x0[1]

    def consistent_initial_state(self, x0):
        """x0 = x1 at t0 (JAX or NumPy)."""
        if isinstance(x0, np.ndarray):
            x0 = x0.copy()
            x0[0] = x0[1]
            return x0
        return x0.at[0].set(x0[1])

    def ode_rhs(self, x, z, p):
        """dx/dt with the algebraic variables eliminated (JAX; the sequential method).

        Index reduction: differentiating x0 = x1 gives dx0/dt = dx1/dt, i.e.
        (y1 − y3)/φ0 = y2/φ1; with y1 = y0 − y2 this is y2 = (y0 − y3)/(1 + φ0/φ1). From an
        IC with x0 = x1 the equal-height constraint then holds for all t (up to the
        integrator's drift, measured in the tests). √ sees max(x, 1e-12): a poor model that
        drains a tank keeps a finite gradient instead of NaN."""
        import jax.numpy as jnp

        phi, c = self.cfg.phi, self.cfg
        y0, y3 = z[0], z[1]
        y2 = (y0 - y3) / (1 + phi[0] / phi[1])
        y1 = y0 - y2
        y4 = c.a2 * jnp.sqrt(jnp.maximum(x[2], 1e-12))
        return jnp.stack([(y1 - y3) / phi[0], y2 / phi[1], (y3 - y4) / phi[2], (y4 - y0) / phi[3]])

    def true_closure_jax(self, x, p):
        import jax.numpy as jnp

        return jnp.stack(
            [self.cfg.c_pump * x[0] * x[3], self.cfg.a1 * jnp.sqrt(jnp.maximum(x[0], 1e-12))]
        )

    def volume(self, x: np.ndarray) -> np.ndarray:
        """Σ φ_i x_i for states x (4, ...)."""
        return np.tensordot(np.asarray(self.cfg.phi), x, axes=1)

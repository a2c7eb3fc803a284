"""Fed-batch bioreactor with S ≥ 0 (neural DAE paper §5.3, spec neural_dae.md).

    dX/dt = μ X − F X/V,   dP/dt = Y_px μ X − F P/V,
    dS/dt = F (S_f − S)/V − μ X/Y_xs,   dV/dt = F,

biomass X, product P, substrate S, volume V; the growth rate μ is learned (1 output), truth
Monod μ = μ_max S/(K_s + S). The feed concentration S_f of a batch is its initial S (a
trajectory parameter p). All states are bounded below by 0 in the NLPs: that bound is how
S(t) ≥ 0 holds at every collocation point of the simultaneous approach.
"""

from __future__ import annotations

import dataclasses

import casadi as ca
import numpy as np

from problems.dae.base import DaeConfig, DaeProblem


@dataclasses.dataclass(frozen=True)
class BioreactorConfig(DaeConfig):
    k_s: float = 1.0  # K_s (Monod truth)
    feed: float = 0.05  # F
    y_px: float = 0.2  # Y_px
    y_xs: float = 0.5  # Y_xs
    mu_max: float = 0.2  # μ_max
    n_fe: int = 20
    K: int = 3
    truth_n_fe: int = 40
    truth_K: int = 3
    hidden: tuple = (20, 20)  # MLP 4 → 20 → 20 → 1
    activation: str = "softplus"
    smoothing_weight: float = 10.0
    l2_weight: float = 1e-3
    noise_std: tuple = (0.05, 0.05, 0.5, 0.1)
    test_horizon: float | None = 60.0  # test batch [0.2, 0, 7, 0.9] over 60 h (20 h extrapolation)
    # constrained inference over 60 h at the authors' density (30 elements × 3 over 40 h)
    inference_n_fe: int | None = 45


class Bioreactor(DaeProblem):
    name = "bioreactor"
    Config = BioreactorConfig
    state_names = ("X", "P", "S", "V")
    closure_names = ("mu",)
    parameter_names = ("S_f",)
    tf = 40.0
    train_x0 = ((0.05, 0.0, 10.0, 1.0), (0.025, 0.0, 5.0, 0.8), (0.5, 0.0, 7.5, 0.95))
    test_x0 = ((0.2, 0.0, 7.0, 0.9),)
    x_lower = (0.0, 0.0, 0.0, 0.0)
    z_lower = None

    def parameters(self, x0) -> np.ndarray:
        return np.asarray([x0[2]], float)  # S_f = S(t0)

    def rhs(self, x, y, z, p):
        c = self.cfg
        bx, prod, s, v = x[0], x[1], x[2], x[3]
        mu = z[0]
        return ca.vertcat(
            mu * bx - c.feed * bx / v,
            c.y_px * mu * bx - c.feed * prod / v,
            c.feed * (p[0] - s) / v - mu * bx / c.y_xs,
            c.feed,
        )

    def true_closure(self, x, y, p):
        return self.cfg.mu_max * x[2] / (self.cfg.k_s + x[2])

    def ode_rhs(self, x, z, p):
        """dx/dt (JAX; the sequential method)."""
        import jax.numpy as jnp

        c = self.cfg
        bx, prod, s, v = x[0], x[1], x[2], x[3]
        mu = z[0]
        return jnp.stack(
            [
                mu * bx - c.feed * bx / v,
                c.y_px * mu * bx - c.feed * prod / v,
                c.feed * (p[0] - s) / v - mu * bx / c.y_xs,
                c.feed + 0.0 * v,
            ]
        )

    def true_closure_jax(self, x, p):
        import jax.numpy as jnp

        return jnp.stack([self.cfg.mu_max * x[2] / (self.cfg.k_s + x[2])])

    def test_metrics(self, grid, x) -> dict:
        """min S and the hours with S < 0 (the collocation polynomial on a 0.01 h grid)."""
        if not np.all(np.isfinite(x)):
            return {"min_S": float("nan"), "hours_S_negative": float("nan")}
        t = np.arange(grid.t0, grid.tf, 0.01)
        s = grid.interpolate(x[2:3], t)[0]
        return {
            "min_S": float(min(s.min(), x[2].min())),
            "hours_S_negative": float(np.sum(s < 0) * 0.01),
        }

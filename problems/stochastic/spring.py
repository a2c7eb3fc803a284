"""1-D damped harmonic oscillator (SQP momentum paper §5.1; ICLR-2025 predecessor §4.1).

m u'' + μ u' + k u = 0 on t ∈ [0, T], u(0) = 1, u'(0) = 0, with m = 1, μ = 4, k = 400
(under-damped: δ = μ/(2m) = 2 < ω₀ = sqrt(k/m) = 20). Exact solution (Moseley 2018):

    u(t) = e^{−δt} · 2A cos(φ + ωt),  ω = sqrt(ω₀² − δ²),  φ = arctan(−δ/ω),  A = 1/(2 cos φ).

* Network u_θ: R → R, 3 × 32 tanh (2209 parameters), PyTorch's initialisation
  (``init="torch"``, the authors' code).
* Residual points: 30 evenly spaced in [0, T] (t_i = i T/29); a mini-batch is 15 of them
  (``batch_fraction = 0.5``).
* Data points: every 20th point of a 500-point grid of [0, T], 10 of them
  (t = 0, 20/499, …, 180/499), labels u(t) exact: the authors' code's slice of the first
  40% of the grid (the predecessor's text: "10 evenly spaced points over [0, 0.4]"; the last
  is 180/499 ≈ 0.361).
* f(θ) = data MSE + 1e-4 × residual MSE. The data term has points of its own (not residual
  points): it is evaluated in full at every iteration, only the residual term is batched
  (``batch_terms="residual"``, the only choice here).
* Hard constraints (3): the ODE residual at t = 4/29, 12/29, 21/29 (residual points 4, 12, 21).
* Held-out: the exact solution on the 500-point grid (``test_mse``).

There is no randomness: ``make_data`` ignores its seed and caches nothing.
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from problems.common.base import check, check_int_at_least, check_number, check_positive_int
from problems.common.networks import MLP, validate_network
from problems.common.views import Curves, Line
from problems.stochastic.base import (
    StochasticConfig,
    StochasticProblem,
)


def oscillator(t, mass, friction, stiffness, xp=jnp):
    """Exact u(t) of m u'' + μ u' + k u = 0, u(0) = 1, u'(0) = 0 (under-damped)."""
    delta = friction / (2.0 * mass)  # δ
    omega0 = math.sqrt(stiffness / mass)  # ω₀
    omega = math.sqrt(omega0**2 - delta**2)  # ω
    phi = math.atan(-delta / omega)  # φ
    amp = 1.0 / (2.0 * math.cos(phi))  # A
    return xp.exp(-delta * t) * 2.0 * amp * xp.cos(phi + omega * t)


@dataclasses.dataclass(frozen=True)
class SpringConfig(StochasticConfig):
    mass: float = 1.0  # m
    friction: float = 4.0  # μ (δ = μ/2m = 2)
    stiffness: float = 400.0  # k (ω₀ = √(k/m) = 20)
    t_max: float = 1.0  # T: t ∈ [0, T]
    n_residual: int = 30  # residual points, evenly spaced in [0, T]
    n_grid: int = 500  # fine grid of [0, T]: data points and held-out points
    n_data: int = 10  # data points: grid points 0, stride, ..., (n_data − 1) stride
    data_stride: int = 20  # every 20th grid point
    # residual points holding the hard constraints: ODE residual at t = 4/29, 12/29, 21/29
    constraint_idx: tuple = (4, 12, 21)
    residual_weight: float = 1e-4  # weight of the residual MSE in f
    data_weight: float = 1.0  # weight of the data MSE
    batch_fraction: float = 0.5  # b: a mini-batch is 15 of the 30 residual points
    depth: int = 3  # hidden layers (3 × 32 tanh: 2209 parameters)
    width: int = 32
    activation: str = "tanh"

    def __post_init__(self):
        super().__post_init__()
        check(
            self.batch_terms == "residual",
            "problem.batch_terms",
            f"spring's data points are not residual points, so only the residual term is "
            f"batched: the only choice is residual, got {self.batch_terms!r}",
        )
        for f in ("mass", "stiffness", "t_max"):
            check_number(getattr(self, f), f"problem.{f}", positive=True)
        check_number(self.friction, "problem.friction", nonnegative=True)
        check(
            self.friction**2 < 4 * self.mass * self.stiffness,
            "problem.friction",
            f"the exact solution is the under-damped one: need μ² < 4 m k, got μ = "
            f"{self.friction}, m = {self.mass}, k = {self.stiffness}",
        )
        for f in ("n_residual", "n_grid", "n_data", "data_stride"):
            check_positive_int(getattr(self, f), f"problem.{f}")
        check(
            (self.n_data - 1) * self.data_stride < self.n_grid,
            "problem.n_data",
            f"(n_data − 1) · data_stride = {(self.n_data - 1) * self.data_stride} must be "
            f"< n_grid = {self.n_grid}",
        )
        idx = self.constraint_idx
        check(
            isinstance(idx, (list, tuple)) and len(idx) > 0,
            "problem.constraint_idx",
            f"must be a non-empty list of residual-point indices, got {idx!r}",
        )
        for i in idx:
            check_int_at_least(i, "problem.constraint_idx", 0)
            check(
                i < self.n_residual,
                "problem.constraint_idx",
                f"index {i} out of range for n_residual = {self.n_residual}",
            )
        self._set("constraint_idx", tuple(idx))
        for f in ("residual_weight", "data_weight"):
            check_number(getattr(self, f), f"problem.{f}", nonnegative=True)
        validate_network(self.depth, self.width, self.activation, "problem")


class SpringData(NamedTuple):
    t_residual: jax.Array  # (30,) residual points
    t_data: jax.Array  # (10,) data points
    u_data: jax.Array  # (10,) exact labels
    t_constraint: jax.Array  # (3,) constraint points
    t_test: jax.Array  # (500,) held-out grid
    u_test: jax.Array  # (500,) exact solution on it


class Spring(StochasticProblem):
    name = "spring"
    Config = SpringConfig
    loss_terms = ("residual", "data")
    heavy = False
    # the paper's 30000 at cpu too: ~1 min per run on one core (float32, 5 vmapped seeds)
    epochs = {"smoke": (200, 200), "cpu": (30000, 30000), "paper": (30000, 30000)}
    learning_rates = (5e-4, 1e-4)  # the predecessor's pair (its §4)

    def __init__(self, cfg: SpringConfig):
        super().__init__(cfg)
        self.net = MLP(
            cfg.depth, cfg.width, cfg.activation, param_dtype=self.dtype, initialization=cfg.init
        )

    @property
    def n_residual_points(self) -> int:
        return self.cfg.n_residual

    def exact(self, t, xp=jnp):
        c = self.cfg
        return oscillator(t, c.mass, c.friction, c.stiffness, xp)

    # --- network ---------------------------------------------------------------------------
    def init_params(self, key):
        return jax.jit(self.net.init)(key, jnp.zeros((1,), self.dtype))

    def u(self, params, t):
        """u_θ(t) at one time (scalar)."""
        return self.net.apply(params, t[None])[0]

    def predict(self, params, inputs):
        """u_θ at times ``inputs`` (N,) -> (N,)."""
        return self.net.apply(params, inputs[:, None])[:, 0]

    def prediction_view(self, params, data: SpringData) -> Curves:
        """The exact u* against u_θ on the test times, the data, the constraint times."""
        return Curves(
            (
                Line(data.t_test, data.u_test, "exact u*", "-", "k"),
                Line(data.t_test, np.asarray(self.predict(params, data.t_test)), "u_θ", "--", "C1"),
                Line(data.t_data, data.u_data, "data", "o", "C0"),
            ),
            "t",
            "u",
            vlines=tuple(float(t) for t in np.asarray(data.t_constraint)),
        )

    def ode_residual(self, u, t):
        """m u'' + μ u' + k u at one time; ``u`` a scalar function of t.

        u' and u'' by forward mode in t (a jvp of a jvp, as butene's and Burgers' input
        derivatives): the same numbers as reverse mode (``jax.grad`` of ``jax.grad``), and on
        this 3 × 32 network a compiled step with fewer operations (adam_unc's 191 → 151).
        Measured 2026-12-06 on one core of this project's 2-core CPU (``python -m
        runners.bench --only sqp_momentum_spring_iter_f32``, at commits e4b4db2 and
        296f569): adam_unc 74 → 61 µs per iteration, sqp_adam 118 → 90 µs."""
        one = jnp.ones_like(t)
        u_and_du = lambda s: jax.jvp(u, (s,), (one,))  # (u, u') at s
        (u0, du), (_, d2u) = jax.jvp(u_and_du, (t,), (one,))
        c = self.cfg
        return c.mass * d2u + c.friction * du + c.stiffness * u0

    def residual_at(self, params, t):
        return jax.vmap(lambda s: self.ode_residual(lambda r: self.u(params, r), s))(t)

    # --- data ------------------------------------------------------------------------------
    def _generate(self, rng):
        c = self.cfg
        t_res = np.linspace(0.0, c.t_max, c.n_residual)
        grid = np.linspace(0.0, c.t_max, c.n_grid)
        t_data = grid[: c.n_data * c.data_stride : c.data_stride]
        return {
            "t_residual": t_res,
            "t_data": t_data,
            "u_data": self.exact(t_data, np),
            "t_constraint": t_res[list(c.constraint_idx)],
            "t_test": grid,
            "u_test": self.exact(grid, np),
        }

    def _to_data(self, arrays) -> SpringData:
        return SpringData(**{k: self._float(arrays[k]) for k in SpringData._fields})

    # --- objective, constraints -----------------------------------------------------------
    def _terms(self, params, data: SpringData, batch_idx):
        r = self.residual_at(params, data.t_residual[batch_idx])
        e = self.predict(params, data.t_data) - data.u_data
        return {"residual": jnp.mean(r**2), "data": jnp.mean(e**2)}

    def n_constraints_of(self, data: SpringData) -> int:
        return data.t_constraint.shape[0]

    def constraint_at(self, params, data: SpringData, i):
        """The ODE residual at constraint point i."""
        return self.ode_residual(lambda r: self.u(params, r), data.t_constraint[i])

    def _test_errors(self, params, data: SpringData):
        return self.predict(params, data.t_test) - data.u_test, data.u_test

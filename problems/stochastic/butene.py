"""1-butene isomerization: a linear ODE with a mass balance (SQP momentum paper §5.2).

The reaction network of Gupta et al. (2016), rescaled to a linear ODE du/dt = A u with rate
constants c = (4.283, 1.191, 5.743, 10.219, 1.535) (ICLR-2025 predecessor §4.2):

    du1/dt = −(c1 + c2 + c4) u1 + c3 u3 + c5 u4
    du2/dt = 2 c1 u1
    du3/dt = c2 u1 − c3 u3
    du4/dt = c4 u1 − c5 u4

The mass balance du1/dt + ½ du2/dt + du3/dt + du4/dt = 0 holds exactly (wᵀA = 0,
w = (1, ½, 1, 1)) for any rates.

* Training ICs u0 + ξ, ξ_i ~ U[−1, 1] (1000), nominal u0 = (14.5467204, 16.3351668,
  25.9473091, 23.5250934); times t_k = k T/64, k = 0..63, T = 10 (the predecessor: "64 evenly
  spaced times in [0, 10]"; the authors' code takes np.arange(0, 10, 10/n), which leaves
  t = 10 out, and so do we). Reference: the matrix
  exponential u(t_k) = expm(A t_k)(u0 + ξ) (exact for a linear ODE; the paper used odeint).
  The residual points are the 64000 (IC, t) pairs, point p = (IC p // 64, time p % 64).
* Network u_θ: (IC ∈ R⁴, t) → R⁴, 3 × 64 tanh (8964 parameters), fed the raw (IC, t) and
  giving the raw concentrations, as the authors' code does (PyTorch's initialisation,
  ``init="torch"``). Two named options of this project, off by default:
  ``normalize_inputs`` maps the inputs affinely to [−1, 1] before the first layer,
  ((IC − u0)/ξ_max, 2t/T − 1), because the raw ICs (~15–26) saturate tanh at
  initialisation; ``normalize_outputs`` maps the output back by a fixed affine map,
  u_θ = ū + σ ⊙ net, ū and σ the per-component mean and standard deviation of the
  nominal-IC reference over the 64 times (constants of the config, the same for every
  method and seed), because unscaled the last layer must grow to reach u2 ≈ 150 at
  t = 10: the data loss at initialisation is ≈ 3.7e3, and Adam at α = 1e-4 (≈ α per step
  per weight) needs ~10⁵ steps to get there. All losses stay in the physical units of u.
* f(θ) = 1e-2 × ODE-residual MSE (du_θ/dt − A u_θ, mean over points and components)
  + 1e-2 × mass-balance MSE (wᵀ du_θ/dt) + 1 × data MSE on a fixed random 20% of the
  points. A mini-batch (20% of the points) restricts the ODE-residual and mass-balance
  terms to the batch; the data term uses all its 12,800 points at every iteration (the
  authors' code; ``batch_terms="all"`` restricts it to the labeled points in the batch, a
  masked mean).
* Hard constraints (10): the mass-balance residual at 10 distinct random points.
* Held-out: ``n_test_ics`` further ICs from the same distribution on the same times.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import scipy.linalg

from problems.common.base import (
    check,
    check_fraction,
    check_number,
    check_positive_int,
    check_vector,
)
from problems.common.networks import MLP, validate_network
from problems.common.views import Curves, Line
from problems.stochastic.base import (
    StochasticConfig,
    StochasticProblem,
    masked_mean,
)

MASS_WEIGHTS = (1.0, 0.5, 1.0, 1.0)  # w: wᵀ du/dt = 0 (each u2 molecule is half a u1)


def rate_matrix(c) -> np.ndarray:
    """A(c) of du/dt = A u (predecessor §4.2)."""
    c1, c2, c3, c4, c5 = c
    return np.array(
        [
            [-(c1 + c2 + c4), 0.0, c3, c5],
            [2.0 * c1, 0.0, 0.0, 0.0],
            [c2, 0.0, -c3, 0.0],
            [c4, 0.0, 0.0, -c5],
        ]
    )


def reference_solution(a: np.ndarray, u0: np.ndarray, t: np.ndarray) -> np.ndarray:
    """u(t_k) = expm(A t_k) u0 for ICs u0 (N, 4) and times t (K,): shape (N, K, 4)."""
    propagators = np.stack([scipy.linalg.expm(a * tk) for tk in t])  # (K, 4, 4)
    return np.einsum("kij,nj->nki", propagators, u0)


@dataclasses.dataclass(frozen=True)
class ButeneConfig(StochasticConfig):
    rates: tuple = (4.283, 1.191, 5.743, 10.219, 1.535)  # c1..c5 of A(c) (predecessor §4.2)
    u0: tuple = (14.5467204, 16.3351668, 25.9473091, 23.5250934)  # nominal IC u0
    xi_max: float = 1.0  # training ICs u0 + ξ, ξ_i ~ U[−ξ_max, ξ_max]
    n_ics: int = 1000  # training ICs
    # t_k = k T / n_times, k = 0..n_times−1 (64 times × 1000 ICs: 64000 residual points)
    n_times: int = 64
    t_max: float = 10.0  # T
    n_test_ics: int = 10  # held-out ICs for test_mse
    data_fraction: float = 0.2  # labeled fraction of the residual points
    n_constraints: int = 10  # hard constraints: mass-balance residual at 10 random points
    residual_weight: float = 1e-2  # weight of the ODE-residual MSE
    mass_balance_weight: float = 1e-2  # weight of the mass-balance MSE
    data_weight: float = 1.0  # weight of the data MSE
    batch_fraction: float = 0.2  # b: mini-batch of 20% of the points
    # [this project] affine map of (IC, t) to [−1, 1] before the network
    normalize_inputs: bool = False
    # [this project] u = ū + σ ⊙ net (ū, σ: the nominal-IC reference statistics)
    normalize_outputs: bool = False
    depth: int = 3  # hidden layers (5 → 3 × 64 tanh → 4: 8964 parameters)
    width: int = 64
    activation: str = "tanh"

    def __post_init__(self):
        super().__post_init__()
        self._set("rates", check_vector(self.rates, "problem.rates", 5))
        self._set("u0", check_vector(self.u0, "problem.u0", 4))
        for f in ("xi_max", "t_max"):
            check_number(getattr(self, f), f"problem.{f}", positive=True)
        for f in ("n_ics", "n_times", "n_test_ics", "n_constraints"):
            check_positive_int(getattr(self, f), f"problem.{f}")
        check_fraction(self.data_fraction, "problem.data_fraction")
        check(
            self.n_constraints <= self.n_ics * self.n_times,
            "problem.n_constraints",
            f"at most n_ics · n_times = {self.n_ics * self.n_times}, got {self.n_constraints}",
        )
        for f in ("residual_weight", "mass_balance_weight", "data_weight"):
            check_number(getattr(self, f), f"problem.{f}", nonnegative=True)
        for f in ("normalize_inputs", "normalize_outputs"):
            check(
                isinstance(getattr(self, f), bool),
                f"problem.{f}",
                f"must be true or false, got {getattr(self, f)!r}",
            )
        validate_network(self.depth, self.width, self.activation, "problem")


class ButeneData(NamedTuple):
    u0: jax.Array  # (n_ics, 4) training ICs
    t: jax.Array  # (n_times,)
    u_ref: jax.Array  # (n_ics, n_times, 4) reference
    data_mask: jax.Array  # (n_ics · n_times,) bool: labeled points
    data_idx: jax.Array  # (n_data,) int: the labeled points, ascending
    constraint_idx: jax.Array  # (m,) int: points of the mass-balance constraints
    test_u0: jax.Array  # (n_test_ics, 4)
    test_u_ref: jax.Array  # (n_test_ics, n_times, 4)


class Butene(StochasticProblem):
    name = "butene"
    # paper 20000 / 100000; cpu 0.5% of it (0.37 s per iteration on one core, float32, 5
    # vmapped seeds: ~3 min per run)
    epochs = {"smoke": (5, 25), "cpu": (100, 500), "paper": (20000, 100000)}
    learning_rates = (5e-4, 1e-4)  # the predecessor's pair (its §4)
    Config = ButeneConfig
    loss_terms = ("residual", "mass_balance", "data")
    NOT_GENERATING = (
        "residual_weight",
        "mass_balance_weight",
        "data_weight",
        "normalize_inputs",
        "normalize_outputs",
        "depth",
        "width",
        "activation",
    )

    def __init__(self, cfg: ButeneConfig):
        super().__init__(cfg)
        self.net = MLP(
            cfg.depth,
            cfg.width,
            cfg.activation,
            out_features=4,
            param_dtype=self.dtype,
            initialization=cfg.init,
        )
        self.a = jnp.asarray(rate_matrix(cfg.rates), self.dtype)  # A
        self.w = jnp.asarray(MASS_WEIGHTS, self.dtype)  # w
        nominal = reference_solution(
            rate_matrix(cfg.rates),
            np.asarray(cfg.u0)[None],
            np.arange(cfg.n_times) * (cfg.t_max / cfg.n_times),
        )[0]
        on = cfg.normalize_outputs
        self.u_shift = jnp.asarray(nominal.mean(0) if on else np.zeros(4), self.dtype)  # ū
        self.u_scale = jnp.asarray(nominal.std(0) if on else np.ones(4), self.dtype)  # σ

    @property
    def n_residual_points(self) -> int:
        return self.cfg.n_ics * self.cfg.n_times

    # --- network ---------------------------------------------------------------------------
    def init_params(self, key):
        return jax.jit(self.net.init)(key, jnp.zeros((5,), self.dtype))

    def _encode(self, z):
        if not self.cfg.normalize_inputs:
            return z
        c = self.cfg
        u0 = jnp.asarray(c.u0, self.dtype)
        return jnp.concatenate(
            [(z[..., :4] - u0) / c.xi_max, 2.0 * z[..., 4:] / c.t_max - 1.0], axis=-1
        )

    def predict(self, params, inputs):
        """u_θ at rows (IC1..IC4, t) of ``inputs`` (N, 5) -> (N, 4)."""
        return self.u_shift + self.u_scale * self.net.apply(params, self._encode(inputs))

    def prediction_view(self, params, data: ButeneData) -> Curves:
        """The first held-out initial condition: u1..u4 of the reference and of u_θ."""
        u0, t = data.test_u0[0], data.t
        rows = jnp.concatenate([jnp.broadcast_to(u0, (t.shape[0], 4)), t[:, None]], axis=1)
        pred = np.asarray(self.predict(params, rows))
        lines = []
        for i in range(4):
            lines.append(Line(t, np.asarray(data.test_u_ref[0][:, i]), f"u{i + 1}*", "-", f"C{i}"))
            lines.append(Line(t, pred[:, i], "", "--", f"C{i}"))
        return Curves(tuple(lines), "t", "u (dashed: u_θ)", legend_columns=4)

    def u_and_dudt(self, params, u0, t):
        """u_θ(u0, t) and du_θ/dt at one point (a forward-mode derivative in t)."""
        f = lambda s: self.predict(params, jnp.concatenate([u0, s[None]]))
        return jax.jvp(f, (t,), (jnp.ones_like(t),))

    def _points(self, data: ButeneData, idx):
        ic, k = jnp.divmod(idx, self.cfg.n_times)
        return data.u0[ic], data.t[k], ic, k

    # --- data ------------------------------------------------------------------------------
    def _generate(self, rng):
        c = self.cfg
        a = rate_matrix(c.rates)
        u0 = np.asarray(c.u0) + rng.uniform(-c.xi_max, c.xi_max, (c.n_ics, 4))
        t = np.arange(c.n_times) * (c.t_max / c.n_times)
        n = c.n_ics * c.n_times
        mask = np.zeros(n, bool)
        mask[rng.choice(n, round(c.data_fraction * n), replace=False)] = True
        con = rng.choice(n, c.n_constraints, replace=False)
        test_u0 = np.asarray(c.u0) + rng.uniform(-c.xi_max, c.xi_max, (c.n_test_ics, 4))
        return {
            "u0": u0,
            "t": t,
            "u_ref": reference_solution(a, u0, t),
            "data_mask": mask,
            "constraint_idx": con.astype(np.int32),
            "test_u0": test_u0,
            "test_u_ref": reference_solution(a, test_u0, t),
        }

    def _to_data(self, arrays) -> ButeneData:
        f = self._float
        return ButeneData(
            u0=f(arrays["u0"]),
            t=f(arrays["t"]),
            u_ref=f(arrays["u_ref"]),
            data_mask=jnp.asarray(arrays["data_mask"]),
            data_idx=jnp.asarray(np.flatnonzero(arrays["data_mask"]), jnp.int32),
            constraint_idx=jnp.asarray(arrays["constraint_idx"]),
            test_u0=f(arrays["test_u0"]),
            test_u_ref=f(arrays["test_u_ref"]),
        )

    # --- objective, constraints -----------------------------------------------------------
    def _terms(self, params, data: ButeneData, batch_idx):
        u0, t, ic, k = self._points(data, batch_idx)
        u, du = jax.vmap(lambda a, b: self.u_and_dudt(params, a, b))(u0, t)
        ode = du - u @ self.a.T  # du/dt − A u
        mass = du @ self.w  # wᵀ du/dt
        if self.cfg.batch_terms == "all":  # the labeled points in the batch
            err = u - data.u_ref[ic, k]
            data_term = masked_mean(jnp.mean(err**2, axis=1), data.data_mask[batch_idx])
        else:  # every labeled point, whatever the batch
            u0d, td, icd, kd = self._points(data, data.data_idx)
            inputs = jnp.concatenate([u0d, td[:, None]], axis=1)
            data_term = jnp.mean((self.predict(params, inputs) - data.u_ref[icd, kd]) ** 2)
        return {"residual": jnp.mean(ode**2), "mass_balance": jnp.mean(mass**2), "data": data_term}

    def n_constraints_of(self, data: ButeneData) -> int:
        return data.constraint_idx.shape[0]

    def constraint_at(self, params, data: ButeneData, i):
        """The mass-balance residual wᵀ du_θ/dt at constraint point i."""
        u0, t, _, _ = self._points(data, data.constraint_idx[i])
        return self.u_and_dudt(params, u0, t)[1] @ self.w

    def _test_errors(self, params, data: ButeneData):
        n, k = data.test_u0.shape[0], data.t.shape[0]
        inputs = jnp.concatenate(
            [jnp.repeat(data.test_u0, k, axis=0), jnp.tile(data.t, n)[:, None]], axis=1
        )
        pred = self.predict(params, inputs).reshape(n, k, 4)
        return pred - data.test_u_ref, data.test_u_ref

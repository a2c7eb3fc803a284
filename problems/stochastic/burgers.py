"""1-D viscous Burgers equation, an operator-style network (SQP momentum paper §5.3).

u_t + u u_x = ν u_xx on x ∈ (0, 1) periodic, t ∈ [0, 1], ν = 0.01, u(x, 0) = u0(x) =
sin(2πx + ξπ), ξ ~ U[0, 0.2]: 100 training ICs and 3 held-out ones.

* Grid (``x_grid="linspace"``, the authors'): x_j = j/31 (j = 0..31, ``linspace(0, 1, 32)``,
  so x = 1, the same point as x = 0 by periodicity, is on the grid too), t_k = k/31
  (k = 0..31): 32 × 32 points per IC, 102400 residual points; point p = (IC, t_k, x_j) with
  IC = p // 1024, k = (p // 32) % 32, j = p % 32. ``x_grid="periodic"`` [this project's
  earlier grid] uses x_j = j/32 instead (x = 1 left out as the copy of x = 0).
* Reference: pseudo-spectral in x (Fourier collocation on n_spectral points j/n_spectral,
  no dealiasing) + BDF in t (scipy ``solve_ivp``, analytic Jacobian, rtol 1e-10), then the
  Fourier series evaluated at the grid's x_j (exact resampling for the periodic grid, whose
  points are every (n_spectral/32)-th solver point).
  [deviation] The authors' code solves with 32 Fourier points (the paper says only "using
  the odeint solver" and "solution values were obtained over 32 evenly spaced points").
  With ν = 0.01 the profile steepens
  into a front ~2ν/|u| ≈ 0.02 wide, which 32 points (Δx = 0.031) cannot resolve: that solve
  is off by ~0.1 at the grid points (vs 512 points), 64 points by 5e-4, 128 by 3e-7,
  256 by 2e-12. We solve with ``n_spectral = 128`` points. The authors' code also builds its
  wavenumbers from the spacing 1/31 of linspace(0, 1, 32), i.e. a period of 32/31 rather
  than 1; we solve the periodic problem of the paper's text. Without dealiasing the
  aliasing error is below the truncation error once the spectrum is resolved.
* Network u_θ: (x, t, u0(x_0..x_31)) ∈ R³⁴ → R, 3 × 64 tanh (10625 parameters), PyTorch's
  initialisation (``init="torch"``, the authors' code).
* f(θ) = 1e-3 × PDE-residual MSE + 1e-3 × boundary + 1 × data MSE, where boundary =
  MSE of the periodicity residual u_θ(0, t_k) − u_θ(1, t_k) + MSE of the IC residual
  u_θ(x_j, 0) − u0(x_j) (the sum of the two means, as the authors' code), and the data term
  is on 200 random grid points per IC. A mini-batch (20% of the points) restricts the PDE
  residual to the batch; the periodicity (all ICs × 32 times), IC (all ICs × 32 x) and
  data (20,000 points) terms use all their points at every iteration, as the authors'
  code does. ``batch_terms="all"`` [this project's earlier default] keeps the periodicity
  residual at batch points with x = 0, the IC residual at batch points with t = 0 and the
  data misfit at labeled batch points (masked means).
* Hard constraints (10): the PDE residual at 10 distinct random grid points of all ICs.
* Held-out: the 3 test ICs on the full grid.
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from scipy.integrate import solve_ivp

from problems.common.base import (
    check,
    check_choice,
    check_int_at_least,
    check_number,
    check_positive_int,
)
from problems.common.networks import MLP, validate_network
from problems.common.views import Images
from problems.stochastic.base import (
    StochasticConfig,
    StochasticProblem,
    masked_mean,
)

X_GRIDS = ("linspace", "periodic")


def grid_x(n_x: int, x_grid: str) -> np.ndarray:
    """The grid's x: linspace(0, 1, n_x) (the authors', x = 1 included) or j/n_x."""
    return np.linspace(0.0, 1.0, n_x) if x_grid == "linspace" else np.arange(n_x) / n_x


def fourier_resample(u: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The trigonometric interpolant of periodic samples u[..., j] at j/N, evaluated at x.

    u(x) = Σ_k c_k Re(û_k e^{2πikx}) / N over k = 0..N/2 (rfft), c_0 = 1, c_k = 2 for
    0 < k < N/2, and the Nyquist mode of an even N counted once with its cosine only, so
    the interpolant is real and reproduces u at the samples.
    """
    n = u.shape[-1]
    coef = np.fft.rfft(u, axis=-1) / n
    k = np.arange(coef.shape[-1])
    weight = np.where((k == 0) | ((n % 2 == 0) & (k == n // 2)), 1.0, 2.0)
    phase = np.exp(2j * math.pi * k[:, None] * np.asarray(x)[None, :])  # (K, M)
    return np.real((coef * weight) @ phase)


def initial_condition(x, xi, xp=np):
    """u0(x) = sin(2πx + ξπ)."""
    return xp.sin(2.0 * math.pi * x + xi * math.pi)


def burgers_spectral(
    u0: np.ndarray, nu: float, t: np.ndarray, rtol: float = 1e-10, atol: float = 1e-12
) -> np.ndarray:
    """Periodic Burgers on [0, 1) from u0 at x_j = j/N: Fourier collocation + BDF.

    u_t = −u D u + ν D² u with D the spectral differentiation matrix; returns u at the
    times ``t`` (t[0] = 0), shape (len(t), N). Raises RuntimeError if BDF fails.
    """
    n = u0.shape[0]
    k = 2.0 * math.pi * np.fft.rfftfreq(n, 1.0 / n)  # wavenumbers 2π·(0..N/2)
    if n % 2 == 0:  # the Nyquist mode has no derivative on a real grid
        k_odd = np.where(np.arange(k.size) == n // 2, 0.0, k)
    else:
        k_odd = k
    eye = np.eye(n)
    d1 = np.fft.irfft(1j * k_odd[:, None] * np.fft.rfft(eye, axis=0), n, axis=0)  # D
    d2 = np.fft.irfft(-(k**2)[:, None] * np.fft.rfft(eye, axis=0), n, axis=0)  # D²

    def rhs(_, u):
        return -u * (d1 @ u) + nu * (d2 @ u)

    def jac(_, u):
        return -(u[:, None] * d1) - np.diag(d1 @ u) + nu * d2

    sol = solve_ivp(
        rhs, (float(t[0]), float(t[-1])), u0, method="BDF", t_eval=t, jac=jac, rtol=rtol, atol=atol
    )
    if not sol.success:
        raise RuntimeError(f"burgers reference: BDF failed: {sol.message}")
    return sol.y.T


@dataclasses.dataclass(frozen=True)
class BurgersConfig(StochasticConfig):
    nu: float = 0.01  # ν, viscosity
    xi_max: float = 0.2  # ξ ~ U[0, ξ_max], u0 = sin(2πx + ξπ)
    n_x: int = 32  # grid points in x (also the u0 samples fed to the network)
    # linspace: x_j = j/(n_x − 1), linspace(0, 1, 32) (the authors') | periodic: x_j = j/n_x
    # (this project)
    x_grid: str = "linspace"
    n_t: int = 32  # t_k = k T / (n_t − 1)
    t_max: float = 1.0  # T
    n_ics: int = 100  # training ICs (× 32 × 32 grid: 102400 residual points)
    n_test_ics: int = 3  # held-out ICs for test_mse
    n_data_per_ic: int = 200  # data term on this many random (labeled) grid points per IC
    n_constraints: int = 10  # PDE-residual constraints at random grid points
    n_spectral: int = 128  # Fourier points of the reference solve (authors' code: 32, unresolved)
    rtol: float = 1e-10  # BDF tolerances of the reference
    atol: float = 1e-12
    residual_weight: float = 1e-3  # weight of the PDE-residual MSE
    boundary_weight: float = 1e-3  # weight of periodicity MSE + IC MSE
    data_weight: float = 1.0  # weight of the data MSE
    batch_fraction: float = 0.2  # b: mini-batch of 20% of the points
    depth: int = 3  # hidden layers (34 → 3 × 64 tanh → 1: 10625 parameters)
    width: int = 64
    activation: str = "tanh"

    def __post_init__(self):
        super().__post_init__()
        for f in ("nu", "t_max", "rtol", "atol"):
            check_number(getattr(self, f), f"problem.{f}", positive=True)
        check_number(self.xi_max, "problem.xi_max", nonnegative=True)
        for f in ("n_ics", "n_test_ics", "n_constraints", "n_spectral"):
            check_positive_int(getattr(self, f), f"problem.{f}")
        check_int_at_least(self.n_x, "problem.n_x", 2)
        check_int_at_least(self.n_t, "problem.n_t", 2)
        check_int_at_least(self.n_data_per_ic, "problem.n_data_per_ic", 0)
        check(
            self.n_data_per_ic <= self.n_x * self.n_t,
            "problem.n_data_per_ic",
            f"at most n_x · n_t = {self.n_x * self.n_t}, got {self.n_data_per_ic}",
        )
        check_choice(self.x_grid, "problem.x_grid", list(X_GRIDS))
        check_int_at_least(self.n_spectral, "problem.n_spectral", 2)
        check(
            self.n_constraints <= self.n_ics * self.n_x * self.n_t,
            "problem.n_constraints",
            f"at most n_ics · n_x · n_t, got {self.n_constraints}",
        )
        for f in ("residual_weight", "boundary_weight", "data_weight"):
            check_number(getattr(self, f), f"problem.{f}", nonnegative=True)
        validate_network(self.depth, self.width, self.activation, "problem")


class BurgersData(NamedTuple):
    x: jax.Array  # (n_x,) the grid's x (:func:`grid_x`)
    t: jax.Array  # (n_t,)
    u0: jax.Array  # (n_ics, n_x) u0 on the grid (network input)
    u_ref: jax.Array  # (n_ics, n_t, n_x) reference
    data_mask: jax.Array  # (n_ics · n_t · n_x,) bool: labeled points
    data_idx: jax.Array  # (n_ics · n_data_per_ic,) int: the labeled points, ascending
    constraint_idx: jax.Array  # (m,) int: points of the PDE-residual constraints
    test_u0: jax.Array  # (n_test_ics, n_x)
    test_u_ref: jax.Array  # (n_test_ics, n_t, n_x)


class Burgers(StochasticProblem):
    name = "burgers"
    # paper 10000 / 10000; cpu 0.3% of it (1.1 s per iteration on one core, float32, 5
    # vmapped seeds: ~3 min per run)
    epochs = {"smoke": (5, 25), "cpu": (30, 30), "paper": (10000, 10000)}
    learning_rates = (1e-3, 5e-4)  # the predecessor's pair (its §4)
    Config = BurgersConfig
    loss_terms = ("residual", "boundary", "data")
    NOT_GENERATING = (
        "residual_weight",
        "boundary_weight",
        "data_weight",
        "depth",
        "width",
        "activation",
    )

    def __init__(self, cfg: BurgersConfig):
        super().__init__(cfg)
        self.net = MLP(
            cfg.depth, cfg.width, cfg.activation, param_dtype=self.dtype, initialization=cfg.init
        )

    @property
    def n_residual_points(self) -> int:
        return self.cfg.n_ics * self.cfg.n_t * self.cfg.n_x

    # --- network ---------------------------------------------------------------------------
    def init_params(self, key):
        return jax.jit(self.net.init)(key, jnp.zeros((2 + self.cfg.n_x,), self.dtype))

    def predict(self, params, inputs):
        """u_θ at rows (x, t, u0(x_0), …, u0(x_{n_x−1})) of ``inputs`` (N, 2 + n_x) -> (N,)."""
        return self.net.apply(params, inputs)[:, 0]

    def prediction_view(self, params, data: BurgersData) -> Images:
        """The first held-out initial condition: u* and u_θ over (x, t), and their gap."""
        x, t, u0 = data.x, data.t, data.test_u0[0]
        X, T = jnp.meshgrid(x, t)
        rows = jnp.concatenate(
            [X.reshape(-1, 1), T.reshape(-1, 1), jnp.broadcast_to(u0, (X.size, u0.shape[0]))],
            axis=1,
        )
        pred = np.asarray(self.predict(params, rows)).reshape(X.shape)
        ref = np.asarray(data.test_u_ref[0])
        return Images(
            (ref, pred, np.abs(pred - ref)), ("reference u*", "u_θ", "|u_θ − u*|"), "x", "t"
        )

    def u(self, params, x, t, u0):
        """u_θ(x, t; u0) at one point (scalar)."""
        return self.net.apply(params, jnp.concatenate([jnp.stack([x, t]), u0]))[0]

    def pde_residual(self, params, x, t, u0):
        """(u_t + u u_x − ν u_xx, u) at one point (forward-mode derivatives in x and t)."""
        f = lambda s, r: self.u(params, s, r, u0)
        one = jnp.ones_like(x)
        u, u_t = jax.jvp(lambda r: f(x, r), (t,), (one,))
        u_x_fn = lambda s: jax.jvp(lambda q: f(q, t), (s,), (one,))[1]
        u_x, u_xx = jax.jvp(u_x_fn, (x,), (one,))
        return u_t + u * u_x - self.cfg.nu * u_xx, u

    def _points(self, data: BurgersData, idx):
        ic, rest = jnp.divmod(idx, self.cfg.n_t * self.cfg.n_x)
        k, j = jnp.divmod(rest, self.cfg.n_x)
        return ic, k, j

    # --- data ------------------------------------------------------------------------------
    def reference(self, xi: np.ndarray) -> np.ndarray:
        """Reference on the grid for phases ξ (N,): shape (N, n_t, n_x)."""
        c = self.cfg
        xf = np.arange(c.n_spectral) / c.n_spectral
        t = np.linspace(0.0, c.t_max, c.n_t)
        x = grid_x(c.n_x, c.x_grid)
        return np.stack(
            [
                fourier_resample(
                    burgers_spectral(initial_condition(xf, s), c.nu, t, c.rtol, c.atol), x
                )
                for s in xi
            ]
        )

    def _generate(self, rng):
        c = self.cfg
        x = grid_x(c.n_x, c.x_grid)
        xi = rng.uniform(0.0, c.xi_max, c.n_ics)
        test_xi = rng.uniform(0.0, c.xi_max, c.n_test_ics)
        per_ic = c.n_t * c.n_x
        mask = np.zeros((c.n_ics, per_ic), bool)
        for row in mask:  # 200 distinct labeled points per IC
            row[rng.choice(per_ic, c.n_data_per_ic, replace=False)] = True
        con = rng.choice(c.n_ics * per_ic, c.n_constraints, replace=False)
        return {
            "x": x,
            "t": np.linspace(0.0, c.t_max, c.n_t),
            "u0": initial_condition(x[None, :], xi[:, None]),
            "u_ref": self.reference(xi),
            "data_mask": mask.ravel(),
            "constraint_idx": con.astype(np.int32),
            "test_u0": initial_condition(x[None, :], test_xi[:, None]),
            "test_u_ref": self.reference(test_xi),
            "xi": xi,
            "test_xi": test_xi,
        }

    def _to_data(self, arrays) -> BurgersData:
        f = self._float
        return BurgersData(
            x=f(arrays["x"]),
            t=f(arrays["t"]),
            u0=f(arrays["u0"]),
            u_ref=f(arrays["u_ref"]),
            data_mask=jnp.asarray(arrays["data_mask"]),
            data_idx=jnp.asarray(np.flatnonzero(arrays["data_mask"]), jnp.int32),
            constraint_idx=jnp.asarray(arrays["constraint_idx"]),
            test_u0=f(arrays["test_u0"]),
            test_u_ref=f(arrays["test_u_ref"]),
        )

    def grid_inputs(self, data: BurgersData, u0):
        """Network inputs for one IC on the whole grid, (n_t · n_x, 2 + n_x), t-major."""
        xx = jnp.tile(data.x, data.t.shape[0])
        tt = jnp.repeat(data.t, data.x.shape[0])
        return jnp.concatenate(
            [xx[:, None], tt[:, None], jnp.broadcast_to(u0, (xx.shape[0], u0.shape[0]))], axis=1
        )

    # --- objective, constraints -----------------------------------------------------------
    def _every_ic(self, params, data: BurgersData, x, t):
        """u_θ(x[i, p], t[i, p]; u0 of training IC i) for (n_ics, P) arrays -> (n_ics, P)."""
        n_ics, n_p = x.shape
        u0 = jnp.broadcast_to(data.u0[:, None, :], (n_ics, n_p, data.u0.shape[1]))
        inputs = jnp.concatenate([x[..., None], t[..., None], u0], axis=-1)
        return self.predict(params, inputs.reshape(n_ics * n_p, -1)).reshape(n_ics, n_p)

    def _terms(self, params, data: BurgersData, batch_idx):
        ic, k, j = self._points(data, batch_idx)
        x, t, u0 = data.x[j], data.t[k], data.u0[ic]
        res, u = jax.vmap(lambda a, b, c: self.pde_residual(params, a, b, c))(x, t, u0)
        if self.cfg.batch_terms == "all":  # each term at its points in the batch
            u_right = jax.vmap(lambda b, c: self.u(params, jnp.ones_like(b), b, c))(t, u0)
            periodic = masked_mean((u - u_right) ** 2, j == 0)  # at x = 0: u(0, t) − u(1, t)
            initial = masked_mean((u - data.u0[ic, j]) ** 2, k == 0)  # at t = 0: u − u0
            data_term = masked_mean((u - data.u_ref[ic, k, j]) ** 2, data.data_mask[batch_idx])
        else:  # every periodicity, IC and labeled point, whatever the batch
            tt = jnp.broadcast_to(data.t, data.u_ref.shape[:2])  # (n_ics, n_t)
            periodic = jnp.mean(
                (
                    self._every_ic(params, data, jnp.zeros_like(tt), tt)
                    - self._every_ic(params, data, jnp.ones_like(tt), tt)
                )
                ** 2
            )
            xx = jnp.broadcast_to(data.x, data.u0.shape)  # (n_ics, n_x)
            initial = jnp.mean(
                (self._every_ic(params, data, xx, jnp.zeros_like(xx)) - data.u0) ** 2
            )
            icd, kd, jd = self._points(data, data.data_idx)
            inputs = jnp.concatenate(
                [data.x[jd][:, None], data.t[kd][:, None], data.u0[icd]], axis=1
            )
            data_term = jnp.mean((self.predict(params, inputs) - data.u_ref[icd, kd, jd]) ** 2)
        return {"residual": jnp.mean(res**2), "boundary": periodic + initial, "data": data_term}

    def n_constraints_of(self, data: BurgersData) -> int:
        return data.constraint_idx.shape[0]

    def constraint_at(self, params, data: BurgersData, i):
        """The PDE residual at constraint point i."""
        ic, k, j = self._points(data, data.constraint_idx[i])
        return self.pde_residual(params, data.x[j], data.t[k], data.u0[ic])[0]

    def _test_errors(self, params, data: BurgersData):
        pred = jax.vmap(lambda u0: self.predict(params, self.grid_inputs(data, u0)))(data.test_u0)
        ref = data.test_u_ref.reshape(pred.shape)
        return pred - ref, ref

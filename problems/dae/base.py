"""Shared machinery of the ``neural_dae`` problems (neural DAE paper §2, spec neural_dae.md).

A problem is a semi-explicit DAE with a closure learned by a network,

    dx/dt = f(x, y, z; p),   0 = g(x, y, z; p),   z = NN(x; θ)  (truth: z = z*(x, y; p)),

x the differential states, y the algebraic variables, z the closure outputs and p constant
parameters of a trajectory (the bioreactor's feed concentration S_f). Problems write f, g,
z* and optional state equations at t0 as CasADi expressions of column vectors, so the same
model serves the collocation NLPs (methods/dae/collocation.py) and, through
:meth:`DaeProblem.casadi_functions`, the simulations here.

Data (spec "Data"): the true model is solved by collocation on a fine Radau grid,
every ``subsample``-th grid point kept, Gaussian noise added (``data_seed``). Held-out: the
true model from test initial conditions over a test horizon, against which a learned model
is simulated (:meth:`DaeProblem.evaluate`).

Simulation marches element by element: each element's collocation, algebraic and closure
equations form a square system solved by CasADi's Newton rootfinder, warm-started from the
previous element. A failed solve (a learned closure with no solution, a state leaving the
domain) ends the simulation with NaN from there on and ``ok = False``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import casadi as ca
import numpy as np

from problems.common.base import check, check_choice, check_positive_int
from problems.common.networks import ACTIVATIONS
from problems.dae.radau import RadauGrid

NEURAL_DAE = "neural_dae"

# What training knows of x(t0) (``problem.initial_state``, both methods alike):
#   free   x(t0) is a decision variable fitted to the data like every other state (the
#          authors' code: each trajectory's states are fixed at t0 when it is built, then
#          every network input, the states at t0 included, is unfixed again by its default
#          ``unfix_io=True``); the sequential method fits x(t0) as a parameter, started
#          at the first observation.
#   fixed  x(t0) is the trajectory's true initial state: no decision variable (the states of
#          ``DaeProblem.fixed_initial_states``; the others follow from the initial
#          equations, the tank's x0 = x1); the sequential method integrates from it.
INITIAL_STATES = ("free", "fixed")

# CasADi forms of the activations the neural DAE problems use (problems.common.networks names)
CASADI_ACTIVATIONS = {
    "tanh": ca.tanh,
    "softplus": lambda v: ca.log1p(ca.exp(-ca.fabs(v))) + ca.fmax(v, 0),  # stable log(1+eᵛ)
    "sigmoid": lambda v: 1 / (1 + ca.exp(-v)),
}


def casadi_mlp(weights, v, activation: str):
    """The MLP of ``problems.common.networks.MLP`` on a CasADi column (or matrix of columns) v.

    ``weights``: [(W_1, b_1), …, (W_L, b_L)] in Flax's layout (W (in, out), b (out,)), as
    NumPy arrays or CasADi symbols; hidden layers apply ``activation``, the last is linear.
    Matrix v (inputs × N) evaluates N points at once.
    """
    act = CASADI_ACTIVATIONS[activation]
    h = v
    for k, (w, b) in enumerate(weights):
        h = (
            w.T @ h + ca.repmat(b, 1, h.shape[1])
            if isinstance(h, (ca.MX, ca.SX))
            else w.T @ h + b[:, None]
        )
        if k < len(weights) - 1:
            h = act(h)
    return h


def flax_to_layers(params) -> list[tuple[np.ndarray, np.ndarray]]:
    """Flax MLP params -> [(W, b)] in layer order (Dense_0, Dense_1, …), float64 NumPy."""
    p = params["params"]
    names = sorted(p, key=lambda n: int(n.split("_")[-1]))
    return [
        (np.asarray(p[n]["kernel"], np.float64), np.asarray(p[n]["bias"], np.float64))
        for n in names
    ]


def layers_to_flax(layers) -> dict:
    return {
        "params": {
            f"Dense_{k}": {"kernel": np.asarray(w), "bias": np.asarray(b)}
            for k, (w, b) in enumerate(layers)
        }
    }


def pack_layers(layers) -> np.ndarray:
    """[(W, b)] -> θ: each layer's W row by row, then b."""
    return np.concatenate([np.concatenate([np.ravel(w), np.ravel(b)]) for w, b in layers])


def unpack_layers(theta: np.ndarray, like) -> list:
    """θ -> [(W, b)] shaped like ``like`` (the inverse of :func:`pack_layers`)."""
    out, k = [], 0
    for w, b in like:
        out.append(
            (theta[k : k + w.size].reshape(w.shape), theta[k + w.size : k + w.size + b.size])
        )
        k += w.size + b.size
    return out


def layer_shapes(n_in: int, hidden: tuple, n_out: int) -> list[tuple[int, int]]:
    sizes = (n_in, *hidden, n_out)
    return list(zip(sizes[:-1], sizes[1:]))


@dataclasses.dataclass(frozen=True)
class DaeConfig:
    """Fields every neural DAE problem has (values per problem in conf/problem/*.yaml)."""

    n_fe: int = 20  # training grid: finite elements
    K: int = 2  # training grid: Radau points per element
    truth_n_fe: int = 40  # the true model's fine grid
    truth_K: int = 3
    subsample: int = 4  # keep every subsample-th point of the fine grid
    noise_std: Any = 0.05  # Gaussian noise on the observed states (scalar or per state)
    data_seed: int = 0
    hidden: tuple = (32, 32)  # MLP hidden widths
    activation: str = "tanh"
    smoothing_weight: float = 10.0  # λ_s of the smoothing problem (step 1)
    l2_weight: float = 1e-2  # α_r: weight of ‖W‖² + ‖b‖²
    # null: the training horizon (tank_manifold: the test IC over the training horizon [0, 400])
    test_horizon: float | None = None
    # constrained inference grid: test-horizon elements (null: elements as long as the
    # training grid's)
    inference_n_fe: int | None = None
    # x(t0) in training: free (the authors' code frees it) | fixed (the true initial state;
    # the sequential method alike)
    initial_state: str = "free"

    def __post_init__(self):
        for f in ("n_fe", "K", "truth_n_fe", "truth_K", "subsample"):
            check_positive_int(getattr(self, f), f"problem.{f}")
        object.__setattr__(self, "hidden", tuple(self.hidden))
        check(
            len(self.hidden) > 0 and all(isinstance(w, int) and w > 0 for w in self.hidden),
            "problem.hidden",
            f"must be a list of positive layer widths, got {self.hidden!r}",
        )
        check(
            self.activation in CASADI_ACTIVATIONS and self.activation in ACTIVATIONS,
            "problem.activation",
            f"got {self.activation!r}; valid choices: {', '.join(CASADI_ACTIVATIONS)}",
        )
        for f in ("smoothing_weight", "l2_weight"):
            v = getattr(self, f)
            check(
                isinstance(v, (int, float)) and v >= 0,
                f"problem.{f}",
                f"must be a number >= 0, got {v!r}",
            )
        std = np.atleast_1d(np.asarray(self.noise_std, float))
        check(bool(np.all(std >= 0)), "problem.noise_std", f"must be >= 0, got {self.noise_std!r}")
        check_choice(self.initial_state, "problem.initial_state", INITIAL_STATES)
        if self.inference_n_fe is not None:
            check_positive_int(self.inference_n_fe, "problem.inference_n_fe")
        check(
            self.test_horizon is None or self.test_horizon > 0,
            "problem.test_horizon",
            f"must be null or > 0, got {self.test_horizon!r}",
        )


@dataclasses.dataclass
class Trajectories:
    """Observed (noisy) and true states of several trajectories on a common time grid."""

    t: np.ndarray  # (T,) observation times
    x_obs: np.ndarray  # (n_traj, n_x, T) noisy observations
    x_true: np.ndarray  # (n_traj, n_x, T) the true model at t
    x0: np.ndarray  # (n_traj, n_x) initial conditions
    p: np.ndarray  # (n_traj, n_p) trajectory parameters


class DaeProblem:
    """Base class: subclasses set the class attributes and write the model."""

    family = NEURAL_DAE
    name: str
    Config = DaeConfig
    state_names: tuple[str, ...]
    algebraic_names: tuple[str, ...] = ()
    closure_names: tuple[str, ...]
    parameter_names: tuple[str, ...] = ()
    t0: float = 0.0
    tf: float
    train_x0: tuple  # initial conditions of the training trajectories
    test_x0: tuple

    def __init__(self, cfg: DaeConfig):
        self.cfg = cfg

    # --- sizes ----------------------------------------------------------------------------
    @property
    def n_x(self):
        return len(self.state_names)

    @property
    def n_y(self):
        return len(self.algebraic_names)

    @property
    def n_z(self):
        return len(self.closure_names)

    @property
    def n_p(self):
        return len(self.parameter_names)

    @property
    def network_inputs(self) -> int:
        return self.n_x  # v = x in all three problems

    # --- the model (subclasses) -----------------------------------------------------------
    def rhs(self, x, y, z, p):
        """f(x, y, z; p): dx/dt, a CasADi column of n_x."""
        raise NotImplementedError

    def algebraic(self, x, y, z, p):
        """g(x, y, z; p) = 0: n_y residuals (an empty column for an ODE)."""
        return ca.MX(0, 1) if isinstance(x, ca.MX) else ca.SX(0, 1)

    def true_closure(self, x, y, p):
        """z*(x, y; p): the closure the network replaces."""
        raise NotImplementedError

    def initial_equations(self, x0):
        """Equations on the states at t0 (index-2 models: the tank manifold's x0 = x1)."""
        return ca.SX(0, 1) if isinstance(x0, ca.SX) else ca.MX(0, 1)

    def parameters(self, x0) -> np.ndarray:
        """p of a trajectory from its initial condition (bioreactor: S_f = S(t0))."""
        return np.zeros(0)

    # the states fixed at t0 under ``initial_state=fixed`` (None: all); the others follow
    # from :meth:`initial_equations`
    fixed_initial_states: tuple | None = None

    def fixed_states(self) -> tuple[int, ...]:
        return (
            tuple(range(self.n_x))
            if self.fixed_initial_states is None
            else tuple(self.fixed_initial_states)
        )

    def consistent_initial_state(self, x0):
        """x(t0) from free values (JAX or NumPy): the states that :meth:`initial_equations`
        determine set from the others (tank: x0 = x1). Default: unchanged."""
        return x0

    # bounds on states and algebraic variables (physical: heights, flows, concentrations)
    x_lower: tuple | None = None
    y_lower: tuple | None = None

    def path_constraints(self, x, y, z, p, dxdt):
        """Inequalities ≤ 0 at the collocation points (population: dV/dt)."""
        return ca.SX(0, 1) if isinstance(x, ca.SX) else ca.MX(0, 1)

    # --- CasADi functions ------------------------------------------------------------------
    def casadi_functions(self):
        """f, g and z* as CasADi Functions of (x, y, z, p) columns (map them over points)."""
        x, y, z, p = (
            ca.SX.sym(n, k)
            for n, k in (("x", self.n_x), ("y", self.n_y), ("z", self.n_z), ("p", self.n_p))
        )
        f = ca.Function("f", [x, y, z, p], [self.rhs(x, y, z, p)])
        g = ca.Function("g", [x, y, z, p], [self.algebraic(x, y, z, p)])
        zs = ca.Function("z_true", [x, y, p], [self.true_closure(x, y, p)])
        return f, g, zs

    def network_function(self, like, x_mean, x_std, z_mean, z_std) -> ca.Function:
        """z = z̄ + σ_z ⊙ NN((x − x̄)/σ_x; θ) at one point: an SX Function of (x, θ), θ the
        flat weights of :func:`pack_layers` for layers shaped like ``like``."""
        x = ca.SX.sym("x", self.network_inputs)
        theta = ca.SX.sym("theta", int(sum(w.size + b.size for w, b in like)))
        layers, k = [], 0
        for w, b in like:
            wk = ca.reshape(theta[k : k + w.size], w.shape[1], w.shape[0]).T  # row-major W
            layers.append((wk, theta[k + w.size : k + w.size + b.size]))
            k += w.size + b.size
        v = (x - ca.DM(x_mean)) / ca.DM(x_std)
        z = ca.DM(z_mean) + ca.DM(z_std) * casadi_mlp(layers, v, self.cfg.activation)
        return ca.Function("nn", [x, theta], [z])

    def network_closure(self, layers, x_mean, x_std, z_mean, z_std):
        """The trained network as a closure z(x, y, p) (a CasADi Function, for simulate)."""
        x, y, p = ca.SX.sym("x", self.n_x), ca.SX.sym("y", self.n_y), ca.SX.sym("p", self.n_p)
        nn = self.network_function(layers, x_mean, x_std, z_mean, z_std)
        return ca.Function("z_nn", [x, y, p], [nn(x, ca.DM(pack_layers(layers)))])

    # --- simulation -----------------------------------------------------------------------
    def simulate(self, closure, x0, grid: RadauGrid, p=None):
        """March the DAE with closure z = closure(x, y, p) from x0 over ``grid``.

        Returns (X (n_x, N+1), Y (n_y, N), Z (n_z, N), ok). One Newton rootfinder per
        element, warm-started from the previous element's end state.
        """
        p = self.parameters(np.asarray(x0, float)) if p is None else np.asarray(p, float)
        f, g, _ = self.casadi_functions()
        K, nx, ny, nz = grid.K, self.n_x, self.n_y, self.n_z
        c = ca.DM(np.asarray(grid.derivative_matrix[: K + 1, :K]))  # one element's block
        xs = ca.SX.sym("xs", nx)
        w = ca.SX.sym("w", (nx + ny + nz) * K)
        pp = ca.SX.sym("p", self.n_p)
        xe = ca.reshape(w[: nx * K], nx, K)
        ye = ca.reshape(w[nx * K : (nx + ny) * K], ny, K)
        ze = ca.reshape(w[(nx + ny) * K :], nz, K)
        ps = ca.repmat(pp, 1, K)
        res = ca.vertcat(
            ca.vec(ca.horzcat(xs, xe) @ c - f.map(K)(xe, ye, ze, ps)),
            ca.vec(g.map(K)(xe, ye, ze, ps)),
            ca.vec(ze - closure.map(K)(xe, ye, ps)),
        )
        residual = ca.Function("r", [w, xs, pp], [res])
        newton = ca.rootfinder(
            "element", "newton", residual, {"error_on_fail": False, "abstol": 1e-12, "max_iter": 50}
        )
        n = grid.n_points
        X = np.full((nx, n + 1), np.nan)
        Y = np.full((ny, n), np.nan)
        Z = np.full((nz, n), np.nan)
        X[:, 0] = x0
        x_start = np.asarray(x0, float)
        y_guess = np.zeros(ny)
        z0 = np.asarray(closure(x_start, y_guess, p)).ravel()
        guess = np.concatenate(
            [
                np.repeat(x_start[:, None], K, 1).ravel("F"),
                np.repeat(y_guess[:, None], K, 1).ravel("F"),
                np.repeat(z0[:, None], K, 1).ravel("F"),
            ]
        )
        for i in range(grid.n_fe):
            sol = np.asarray(newton(guess, x_start, p)).ravel()
            r = np.asarray(residual(sol, x_start, p)).ravel()
            if not np.all(np.isfinite(sol)) or np.max(np.abs(r), initial=0.0) > 1e-6:
                return X, Y, Z, False
            cols = slice(i * K, (i + 1) * K)
            X[:, 1 + i * K : 1 + (i + 1) * K] = sol[: nx * K].reshape(K, nx).T
            Y[:, cols] = sol[nx * K : (nx + ny) * K].reshape(K, ny).T
            Z[:, cols] = sol[(nx + ny) * K :].reshape(K, nz).T
            x_start = X[:, (i + 1) * K]
            guess = np.concatenate(
                [
                    np.repeat(X[:, [(i + 1) * K]], K, 1).ravel("F"),
                    np.repeat(Y[:, [(i + 1) * K - 1]], K, 1).ravel("F"),
                    np.repeat(Z[:, [(i + 1) * K - 1]], K, 1).ravel("F"),
                ]
            )
        return X, Y, Z, True

    def simulate_truth(self, x0, grid: RadauGrid):
        _, _, zs = self.casadi_functions()
        return self.simulate(zs, x0, grid)

    # --- data -----------------------------------------------------------------------------
    def truth_grid(self, tf: float | None = None) -> RadauGrid:
        return RadauGrid(
            self.cfg.truth_n_fe, self.cfg.truth_K, self.t0, self.tf if tf is None else tf
        )

    def train_grid(self, n_fe: int | None = None, K: int | None = None) -> RadauGrid:
        return RadauGrid(n_fe or self.cfg.n_fe, K or self.cfg.K, self.t0, self.tf)

    def test_grid(self) -> RadauGrid:
        """The fine grid over the test horizon (elements as long as the truth grid's)."""
        tf = self.cfg.test_horizon or self.tf
        n_fe = max(1, round(self.cfg.truth_n_fe * (tf - self.t0) / (self.tf - self.t0)))
        return RadauGrid(n_fe, self.cfg.truth_K, self.t0, tf)

    def inference_grid(self, K: int | None = None) -> RadauGrid:
        """The grid of constrained inference over the test horizon: ``inference_n_fe``
        elements, or elements as long as the training grid's (null), of the training grid's
        K Radau points."""
        tf = self.cfg.test_horizon or self.tf
        n_fe = self.cfg.inference_n_fe or max(
            1, round(self.cfg.n_fe * (tf - self.t0) / (self.tf - self.t0))
        )
        return RadauGrid(n_fe, K or self.cfg.K, self.t0, tf)

    def evaluate_test(self, predict, prefix: str = "test") -> tuple[dict, list]:
        """Score a learned model's predictions from every test IC against the true model.

        ``predict(k, x0)`` -> (grid, X (n_x, N + 1) on ``grid.times``, ok). The error is
        taken on :meth:`test_grid` (the truth's fine grid), the prediction's collocation
        polynomial evaluated there: ``<prefix>_mse`` over all states and points (NaN when a
        prediction failed), ``<prefix>_ok``, ``<prefix>_mse_<k>`` with several test ICs,
        ``<prefix>_bound_violation`` the largest amount by which a state of any prediction
        falls below its lower bound at the prediction's grid points (0: none),
        and the problem's :meth:`test_metrics` on the prediction's own grid, named
        ``<name>`` for ``prefix="test"`` and ``<prefix>_<name>`` otherwise (``_<k>`` with
        several test ICs). Returns (metrics, [(t, X_learned, X_true, ok)]) on the test grid
        for the figures."""
        tgrid = self.test_grid()
        sims, errs, extras, below = [], [], {}, []
        several = len(self.test_x0) > 1
        for k, x0 in enumerate(self.test_x0):
            x0 = np.asarray(x0, float)
            xt, *_ = self.simulate_truth(x0, tgrid)
            grid, xl, ok = predict(k, x0)
            on_test = grid.interpolate(xl, tgrid.times) if ok else np.full_like(xt, np.nan)
            sims.append((tgrid.times, on_test, xt, ok))
            errs.append((on_test - xt) ** 2)
            if several:
                extras[f"{prefix}_mse_{k}"] = float(np.mean(errs[-1]))
            for key, v in self.test_metrics(grid, xl).items():
                name = key if prefix == "test" else f"{prefix}_{key}"
                extras[f"{name}_{k}" if several else name] = v
            below.append(self.bound_violation(xl))
        ok_all = all(s[3] for s in sims)
        err = np.concatenate([e.ravel() for e in errs])
        return {
            f"{prefix}_mse": float(np.mean(err)) if ok_all else float("nan"),
            f"{prefix}_ok": ok_all,
            f"{prefix}_bound_violation": float(max(below)),
            **extras,
        }, sims

    def bound_violation(self, x: np.ndarray) -> float:
        """max over states and points of (lower bound − x)⁺ (NaN where x is not finite)."""
        if self.x_lower is None:
            return 0.0
        if not np.all(np.isfinite(x)):
            return float("nan")
        lb = np.asarray(self.x_lower, float)[:, None]
        gap = np.where(np.isfinite(lb), lb - x, -np.inf)
        return float(max(0.0, gap.max()))

    def evaluate_closure(self, closure, prefix: str = "test") -> tuple[dict, list]:
        """:meth:`evaluate_test` of the unconstrained march (:meth:`simulate`) with
        ``closure`` on :meth:`test_grid`."""
        grid = self.test_grid()

        def predict(k, x0):
            x, _, _, ok = self.simulate(closure, x0, grid)
            return grid, x, ok

        return self.evaluate_test(predict, prefix)

    def test_metrics(self, grid: RadauGrid, x: np.ndarray) -> dict:
        """Extra metrics of a learned model's test simulation (bioreactor: S < 0)."""
        return {}

    def make_data(self) -> Trajectories:
        """The true model on the fine grid from each training IC, every ``subsample``-th
        point kept, N(0, σ²) noise added (numpy default_rng(data_seed), state by state)."""
        grid = self.truth_grid()
        keep = np.arange(0, grid.n_points + 1, self.cfg.subsample)
        rng = np.random.default_rng(self.cfg.data_seed)
        std = np.broadcast_to(np.asarray(self.cfg.noise_std, float), (self.n_x,))
        x_true, x_obs, ps = [], [], []
        for x0 in self.train_x0:
            X, _, _, ok = self.simulate_truth(np.asarray(x0, float), grid)
            check(ok, "problem", f"{self.name}: the true model failed from x0 = {x0}")
            x_true.append(X[:, keep])
            x_obs.append(X[:, keep] + std[:, None] * rng.standard_normal((self.n_x, len(keep))))
            ps.append(self.parameters(np.asarray(x0, float)))
        return Trajectories(
            t=grid.times[keep],
            x_obs=np.stack(x_obs),
            x_true=np.stack(x_true),
            x0=np.asarray(self.train_x0, float),
            p=np.stack(ps),
        )


__all__ = [
    "CASADI_ACTIVATIONS",
    "DaeConfig",
    "DaeProblem",
    "INITIAL_STATES",
    "NEURAL_DAE",
    "Trajectories",
    "casadi_mlp",
    "flax_to_layers",
    "layer_shapes",
    "layers_to_flax",
    "pack_layers",
    "unpack_layers",
]

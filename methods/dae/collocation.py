"""Simultaneous training of a neural DAE by collocation + IPOPT (neural DAE paper §2–4).

The pipeline (spec neural_dae.md, "Method collocation"):

1. **Smoothing** (auxiliary problem, paper §4.2): the discretized DAE of every training
   trajectory with the closure z(t) free (collocated like a state, so dz/dt = Z M), objective
   data fit + λ_s · T · mean over the collocation points of (dz/dt)²; exact Hessian.
   Gives smooth x, y, z and the network's input/output standardisation (mean/std of the
   smoothed x and z over all collocation points).
2. **Pretraining**: the MLP fitted to the smoother's (x, z) pairs in standardized coordinates,
   optax Adam (lr 1e-3, 200 epochs, batch 32) on MSE + α_r Σ_layers (mean(W²) + mean(b²))
   (the authors' code; ``pretrain_regularizer=sum`` gives ‖W‖² + ‖b‖²).
3. **Main NLP**: z = NN(x; θ) as equations at every collocation point, θ (shared by all
   trajectories) a decision variable; warm start from steps 1–2; IPOPT with
   ``hessian_approximation=limited-memory`` (L-BFGS) at tol ε1, or the exact Hessian.
4. **Refinement** (optional): exact Hessian at tol ε2 = 1e-6, warm-started primal and dual.

x(t0) is a decision variable of steps 1 and 3 unless ``problem.initial_state=fixed``
(problems/dae/base.py, ``INITIAL_STATES``: the authors' code frees it).

**Prediction** on new conditions (:func:`constrained_inference`, ``inference=constrained``,
the authors' code): the trained network fixed inside a collocation NLP over the new
horizon, x(t0) the new initial state, the problem's bounds and path constraints, and the
network equation relaxed by an l1 slack, (z − z̄)/σ_z − NN((x − x̄)/σ_x) = s⁺ − s⁻,
s± ≥ 0, minimising w · mean(s⁺ + s⁻) (w = ``inference_slack_weight`` = 1e-5). The l1
penalty is exact: where the network keeps the states in their bounds the slack is 0 and the
NLP's solution is the simulation; where it would leave them, the bounds hold and s⁺ − s⁻
measures by how much the network was overruled. At the authors' small w the objective is
~1e-7 per unit of slack, so IPOPT's barrier leaves s⁺ and s⁻ near 1e-2 each and pins the
states less tightly than a larger w would (tests/test_neural_dae.py shows both).

Objective of steps 1 and 3 (paper eq. 10): Σ over trajectories of the mean over its
observations of the squared standardized error ((x̂(t_m) − x_m)/σ_x)², σ_x the std of the
observations of each state, + α_r (‖W‖² + ‖b‖²) in step 3. [reconstructed] x̂(t_m) is the
collocation polynomial evaluated at the measurement times (a fixed linear map of the
collocated states, :meth:`RadauGrid.interpolation_matrix`), not the data interpolated onto
the collocation times: no interpolation error enters the data.

Without smoothing (ablation B, C) the states start from the observations interpolated
linearly onto the collocation times, y and z from zero; without pretraining θ starts
from Flax's initialisation (``init_seed``) in the standardisation of the smoother (B: of the
observations for x and unit scale for z).

Built with ``casadi.Opti`` (MX; the problem's f, g are SX functions mapped over the points).
IPOPT's own printing is off; progress goes to ``on_iteration(step, iteration, objective,
infeasibility)``. Statuses: ``converged`` (Solve_Succeeded / Solved_To_Acceptable_Level),
``max_iter``, ``solver_failed`` (IPOPT's return status kept apart); a failed step keeps its
last iterate.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable

import casadi as ca
import jax
import jax.numpy as jnp
import numpy as np
import optax

from methods.driver import Status
from problems.common.base import check, check_choice, check_positive_int
from problems.common.networks import MLP
from problems.dae.base import (
    DaeProblem,
    Trajectories,
    flax_to_layers,
    layer_shapes,
    layers_to_flax,
    pack_layers,
    unpack_layers,
)
from problems.dae.radau import RadauGrid

HESSIANS = ("lbfgs", "exact")
EXACT_HESSIANS = ("assembled", "casadi")
# step 2's weight penalty: "mean" Σ_layers (mean(W²) + mean(b²)) (the authors' code);
# "sum" ‖W‖² + ‖b‖² as in the main NLP (this project's earlier default, ~10³× stronger on
# the tank's network)
PRETRAIN_REGULARIZERS = ("mean", "sum")
# how test predictions are made: "constrained" a collocation NLP over the test horizon with
# the trained network fixed, the problem's bounds and path constraints, and an l1 slack on
# the network equation (the authors' code); "simulate" the unconstrained element-by-element
# Newton march of DaeProblem.simulate
INFERENCES = ("constrained", "simulate")
LINEAR_SOLVERS = ("mumps", "ma27", "ma57", "ma86", "ma97")


_PROBE = """
import casadi as ca
x = ca.SX.sym("x")
s = ca.nlpsol("probe", "ipopt", {"x": x, "f": (x - 1) ** 2}, {"print_time": False,
              "ipopt.print_level": 0, "ipopt.sb": "yes", "ipopt.linear_solver": %r})
s(x0=0.0)
print("status", s.stats().get("return_status"), flush=True)
"""


@functools.cache
def available_linear_solvers() -> tuple[str, ...]:
    """The IPOPT linear solvers of ``LINEAR_SOLVERS`` that load on this machine: MUMPS ships
    with CasADi's IPOPT; HSL's ma27/ma57/ma86/ma97 need the HSL library (libhsl), which the
    CasADi wheel does not include. Each is probed by solving min (x − 1)² in a subprocess of
    its own (about 0.1 s, all at once): IPOPT answers ``Invalid_Option`` for a solver it
    cannot load, and without HSL the ma97 probe segfaults after answering, which must not
    take this process with it."""
    import subprocess
    import sys

    procs = {
        name: subprocess.Popen(
            [sys.executable, "-c", _PROBE % name],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        for name in LINEAR_SOLVERS
        if name != "mumps"
    }
    ok = ["mumps"]
    for name, p in procs.items():
        try:
            out, _ = p.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()
            continue
        status = next(
            (line.split(maxsplit=1)[1] for line in out.splitlines() if line.startswith("status ")),
            "Invalid_Option",
        )
        if status.strip() != "Invalid_Option":
            ok.append(name)
    return tuple(ok)


def check_linear_solver(value, field: str = "method.linear_solver") -> None:
    """One of ``LINEAR_SOLVERS`` that IPOPT can load here (checked before any work)."""
    check_choice(value, field, LINEAR_SOLVERS)
    if value != "mumps":
        here = available_linear_solvers()
        check(
            value in here,
            field,
            f"{value!r} is not available here (IPOPT cannot load it: "
            f"HSL solvers need the HSL library); available: {', '.join(here)}",
        )


IPOPT_HESSIAN = {"lbfgs": "limited-memory", "exact": "exact"}
EXPAND = {"lbfgs": False, "exact": False}  # SX Hessian of the network: 750 s to build


@dataclasses.dataclass(frozen=True)
class CollocationConfig:
    n_fe: int | None = None  # finite elements (null: the problem's training grid)
    K: int | None = None  # Radau points per element (null: the problem's)
    hessian: str = "lbfgs"  # step 3: lbfgs (IPOPT limited-memory) | exact (ablation D)
    smoothing: bool = True  # step 1: auxiliary smoothing problem (λ_s = problem.smoothing_weight)
    pretrain: bool = True  # step 2: Adam on the smoother's (x, z) pairs
    refine: bool = False  # step 4: exact Hessian at refine_tol, warm-started primal and dual
    tol: float = 1e-3  # ε1 of step 3: the paper's (the authors' examples: 1e-6)
    refine_tol: float = 1e-6  # ε2
    smoothing_tol: float = 1e-6
    max_iter: int = 1000  # IPOPT iterations per step (the authors' limit; the paper is silent)
    linear_solver: str = "mumps"  # mumps | ma27 | ma57 | ma86 | ma97 (the ma* need the HSL library)
    # how the exact Hessian (hessian=exact, refine) is computed; the same matrix either way:
    # "assembled" CasADi for the sparse terms + JAX for the network's (methods/
    # network_hessian.py; 0.3 s per evaluation on the tank manifold), "casadi" CasADi's AD
    # of the whole Lagrangian (1.3 s per evaluation after ~7 min building it)
    exact_hessian: str = "assembled"
    pretrain_epochs: int = 200
    pretrain_lr: float = 1e-3
    pretrain_batch: int = 32
    # step 2's penalty: mean = Σ_layers (mean(W²) + mean(b²)) (the authors' code) |
    # sum = ‖W‖² + ‖b‖² (this project's earlier default)
    pretrain_regularizer: str = "mean"
    # test predictions: constrained (collocation NLP, bounds, l1 slack on the network; the
    # authors' code) | simulate (unconstrained march)
    inference: str = "constrained"
    inference_slack_weight: float = 1e-5  # the authors' slack_coef of the inference NLP
    init_seed: int = 0  # the network's initial weights (Flax initialisation)
    # extra IPOPT options, e.g. '+method.ipopt_options={print_timing_statistics: "yes"}'
    ipopt_options: dict | None = None

    def __post_init__(self):
        for f in ("n_fe", "K"):
            v = getattr(self, f)
            if v is not None:
                check_positive_int(v, f"method.{f}")
        check_choice(self.hessian, "method.hessian", HESSIANS)
        check_choice(
            self.pretrain_regularizer, "method.pretrain_regularizer", PRETRAIN_REGULARIZERS
        )
        check_choice(self.inference, "method.inference", INFERENCES)
        check(
            isinstance(self.inference_slack_weight, (int, float))
            and self.inference_slack_weight > 0,
            "method.inference_slack_weight",
            f"must be a number > 0, got {self.inference_slack_weight!r}",
        )
        check_linear_solver(self.linear_solver)
        check_choice(self.exact_hessian, "method.exact_hessian", EXACT_HESSIANS)
        for f in ("smoothing", "pretrain", "refine"):
            check(
                isinstance(getattr(self, f), bool),
                f"method.{f}",
                f"must be true or false, got {getattr(self, f)!r}",
            )
        for f in ("tol", "refine_tol", "smoothing_tol", "pretrain_lr"):
            v = getattr(self, f)
            check(
                isinstance(v, (int, float)) and 0 < v < 1,
                f"method.{f}",
                f"must be a number in (0, 1), got {v!r}",
            )
        for f in ("max_iter", "pretrain_epochs", "pretrain_batch"):
            check_positive_int(getattr(self, f), f"method.{f}")
        check(
            isinstance(self.init_seed, int) and self.init_seed >= 0,
            "method.init_seed",
            f"must be an integer >= 0, got {self.init_seed!r}",
        )
        check(
            self.ipopt_options is None or isinstance(self.ipopt_options, dict),
            "method.ipopt_options",
            f"must be a mapping, got {self.ipopt_options!r}",
        )


@dataclasses.dataclass
class Standardization:
    x_mean: np.ndarray
    x_std: np.ndarray
    z_mean: np.ndarray
    z_std: np.ndarray

    def to_dict(self) -> dict:
        return {k: np.asarray(v).tolist() for k, v in dataclasses.asdict(self).items()}


@dataclasses.dataclass
class StepReport:
    name: str
    status: str
    iterations: int
    wall_s: float
    objective: float
    max_violation: float
    return_status: str = ""
    hessian_calls: int = 0  # IPOPT's evaluations of the exact Hessian
    hessian_s: float = 0.0  # their wall time

    @property
    def hessian_ms_per_call(self) -> float:
        return 1e3 * self.hessian_s / self.hessian_calls if self.hessian_calls else float("nan")


@dataclasses.dataclass
class CollocationResult:
    layers: list  # [(W, b)] of the trained network (standardized coordinates)
    scaling: Standardization
    X: list  # per trajectory (n_x, N+1) collocated states
    Y: list
    Z: list
    steps: list[StepReport]
    grid: RadauGrid

    @property
    def status(self) -> str:
        return self.steps[-1].status if self.steps else "not_run"


def ipopt_status(return_status: str, success: bool) -> Status:
    """IPOPT's return status as a run status (the return status itself is kept apart, in
    the step's ``return_status``)."""
    if success or return_status in ("Solve_Succeeded", "Solved_To_Acceptable_Level"):
        return Status.CONVERGED
    if return_status == "Maximum_Iterations_Exceeded":
        return Status.MAX_ITER
    return Status.SOLVER_FAILED


def _bounds(values, n):
    return None if values is None else np.asarray(values, float).reshape(n, 1)


class _Builder:
    """The discretized DAE of one or more trajectories in one casadi.Opti (steps 1 and 3,
    and constrained inference).

    ``ps``: each trajectory's parameters p. ``x0s``: None leaves x(t0) a decision variable
    (``problem.initial_state=free``); otherwise each trajectory's states
    ``problem.fixed_states()`` are these constants at t0 (no variable) and the others
    variables tied by the problem's initial equations. ``X`` is then the (n_x, N + 1)
    expression [x(t0), X at the collocation points]."""

    def __init__(self, problem: DaeProblem, grid: RadauGrid, ps, free_closure: bool, x0s=None):
        self.opti = ca.Opti()
        self.problem, self.grid = problem, grid
        f, g, _ = problem.casadi_functions()
        n = grid.n_points
        self.f, self.g = f.map(n), g.map(n)
        opti = self.opti
        self.X, self.Y, self.Z, self.Xc, self.X0 = [], [], [], [], []
        path = self._path_function(n)
        fixed = () if x0s is None else problem.fixed_states()
        free0 = [i for i in range(problem.n_x) if i not in fixed]
        for k, p in enumerate(ps):
            Xc = opti.variable(problem.n_x, n)  # the collocation columns
            X0 = opti.variable(len(free0)) if free0 else None
            rows = []
            for i in range(problem.n_x):
                rows.append(X0[free0.index(i)] if i in free0 else ca.MX(float(x0s[k][i])))
            X = ca.horzcat(ca.vertcat(*rows), Xc)
            Y = opti.variable(problem.n_y, n) if problem.n_y else ca.MX(0, n)
            Z = opti.variable(problem.n_z, n + 1 if free_closure else n)
            Zc = Z[:, 1:] if free_closure else Z
            P = ca.repmat(ca.DM(p), 1, n) if problem.n_p else ca.DM(0, n)
            dxdt = self.f(Xc, Y, Zc, P)
            opti.subject_to(ca.vec(grid.collocation_residual(X, dxdt)) == 0)
            if problem.n_y:
                opti.subject_to(ca.vec(self.g(Xc, Y, Zc, P)) == 0)
            init = problem.initial_equations(X[:, 0])
            if init.numel() and free0:
                opti.subject_to(init == 0)
            self._lower(Xc, problem.x_lower, problem.n_x)
            if X0 is not None:
                lb = _bounds(problem.x_lower, problem.n_x)
                for j, i in enumerate(free0):
                    if lb is not None and np.isfinite(lb[i, 0]):
                        opti.subject_to(X0[j] >= lb[i, 0])
            if problem.n_y:
                self._lower(Y, problem.y_lower, problem.n_y)
            self._lower(Zc, getattr(problem, "z_lower", None), problem.n_z)
            if path is not None:
                opti.subject_to(ca.vec(path(Xc, Y, Zc, P, dxdt)) <= 0)
            self.X.append(X)
            self.Xc.append(Xc)
            self.X0.append((X0, free0))
            self.Y.append(Y)
            self.Z.append(Z)

    def _path_function(self, n):
        """The problem's path constraints (≤ 0) at one point as an SX Function of
        (x, y, z, p, dx/dt), mapped over the n collocation points; None without any."""
        pr = self.problem
        syms = [
            ca.SX.sym(name, k)
            for name, k in (
                ("x", pr.n_x),
                ("y", pr.n_y),
                ("z", pr.n_z),
                ("p", pr.n_p),
                ("dxdt", pr.n_x),
            )
        ]
        expr = pr.path_constraints(*syms)
        return ca.Function("path", syms, [expr]).map(n) if expr.numel() else None

    def _lower(self, var, lower, n):
        lb = _bounds(lower, n)
        if lb is None:
            return
        rows = [i for i in range(n) if np.isfinite(lb[i, 0])]
        for i in rows:
            self.opti.subject_to(var[i, :] >= lb[i, 0])

    def data_fit(self, data: Trajectories):
        """Σ_traj mean_m Σ_states ((x̂(t_m) − x_m)/σ_x)² / n_x (eq. 10), σ_x the std of the
        observations of each state, x̂ = X B the collocation polynomial at the observation
        times."""
        total = 0
        w = ca.DM(1.0 / np.maximum(data.x_obs.std(axis=(0, 2)), 1e-12))
        B = ca.DM(self.grid.interpolation_matrix(data.t))  # (N+1, T)
        for X, obs in zip(self.X, data.x_obs):
            err = (X @ B - ca.DM(obs)) * ca.repmat(w, 1, obs.shape[1])
            total += ca.sumsqr(err) / obs.size
        return total

    def solve(
        self,
        name,
        objective,
        hessian,
        tol,
        cfg: CollocationConfig,
        on_iteration,
        warm_dual=None,
        expand=True,
        hess_lag=None,
    ):
        """IPOPT on the Opti problem. ``expand``: turn the MX graph into SX first (fast for
        the scalar DAE equations; the network equations stay MX over a mapped SX point
        function, whose dense θ-Jacobian would otherwise be built symbolically)."""
        opti = self.opti
        opti.minimize(objective)
        opts = {
            "expand": expand and hess_lag is None,
            "print_time": False,
            "ipopt.print_level": 0,
            "ipopt.sb": "yes",
            "ipopt.tol": tol,
            "ipopt.max_iter": cfg.max_iter,
            "ipopt.hessian_approximation": IPOPT_HESSIAN[hessian],
            "ipopt.linear_solver": cfg.linear_solver,
            **{f"ipopt.{k}": v for k, v in (cfg.ipopt_options or {}).items()},
        }
        if hess_lag is not None:  # (Function, the callback it calls: kept alive here)
            opts["hess_lag"] = hess_lag[0]
            self._hessian = hess_lag
        if warm_dual is not None:
            opts.update(
                {
                    "ipopt.warm_start_init_point": "yes",
                    "ipopt.warm_start_bound_push": 1e-9,
                    "ipopt.warm_start_mult_bound_push": 1e-9,
                    "ipopt.mu_init": 1e-6,
                }
            )
            opti.set_initial(opti.lam_g, warm_dual)
        opti.solver("ipopt", opts)
        if on_iteration is not None:

            def cb(k):
                g = np.asarray(opti.debug.value(opti.g)).ravel()
                lbg = np.asarray(opti.debug.value(opti.lbg)).ravel()
                ubg = np.asarray(opti.debug.value(opti.ubg)).ravel()
                inf = float(np.max(np.maximum(lbg - g, g - ubg), initial=0.0))
                on_iteration(name, int(k), float(opti.debug.value(opti.f)), inf)

            opti.callback(cb)
        t = time.perf_counter()
        try:
            sol = opti.solve()
            ok, view = True, sol
        except RuntimeError:
            ok, view = False, opti.debug
        wall = time.perf_counter() - t
        stats = opti.stats()
        ret = str(stats.get("return_status", "unknown"))
        g = np.asarray(view.value(opti.g)).ravel()
        lbg = np.asarray(view.value(opti.lbg)).ravel()
        ubg = np.asarray(view.value(opti.ubg)).ravel()
        report = StepReport(
            name=name,
            status=ipopt_status(ret, ok and stats.get("success", ok)),
            iterations=int(stats.get("iter_count", 0)),
            wall_s=wall,
            objective=float(view.value(opti.f)),
            max_violation=float(np.max(np.maximum(lbg - g, g - ubg), initial=0)),
            return_status=ret,
            hessian_calls=int(stats.get("n_call_nlp_hess_l", 0) or 0),
            hessian_s=float(stats.get("t_wall_nlp_hess_l", 0.0) or 0.0),
        )
        return view, report


def _known_x0(problem, data):
    """The true initial states under ``problem.initial_state=fixed``, else None (free)."""
    return data.x0 if problem.cfg.initial_state == "fixed" else None


def _linear_initial(problem, grid, data):
    """States from the observations interpolated linearly onto the collocation times."""
    return [
        np.stack([np.interp(grid.times, data.t, obs[i]) for i in range(problem.n_x)])
        for obs in data.x_obs
    ]


def _set_initial(b: _Builder, xs, ys, zs):
    for Xc, (X0, free0), Y, Z, x, y, z in zip(b.Xc, b.X0, b.Y, b.Z, xs, ys, zs):
        b.opti.set_initial(Xc, x[:, 1:])
        if X0 is not None:
            b.opti.set_initial(X0, np.asarray(x)[free0, 0])
        if b.problem.n_y:
            b.opti.set_initial(Y, y)
        b.opti.set_initial(Z, z)


def smoothing_step(problem, grid, data, cfg, on_iteration=None):
    """Step 1: (X, Y, Z with a t0 column, report)."""
    b = _Builder(problem, grid, data.p, free_closure=True, x0s=_known_x0(problem, data))
    x_init = _linear_initial(problem, grid, data)
    n = grid.n_points
    _set_initial(
        b,
        x_init,
        [np.zeros((problem.n_y, n))] * len(x_init),
        [np.zeros((problem.n_z, n + 1))] * len(x_init),
    )
    m = ca.DM(grid.derivative_matrix)
    span = grid.tf - grid.t0
    smooth = sum(span * ca.sumsqr(Z @ m) / (n * problem.n_z) for Z in b.Z)
    view, report = b.solve(
        "smoothing",
        b.data_fit(data) + problem.cfg.smoothing_weight * smooth,
        "exact",
        cfg.smoothing_tol,
        cfg,
        on_iteration,
    )
    xs = [np.asarray(view.value(X)).reshape(problem.n_x, -1) for X in b.X]
    ys = [
        np.asarray(view.value(Y)).reshape(problem.n_y, -1) if problem.n_y else np.zeros((0, n))
        for Y in b.Y
    ]
    zs = [np.asarray(view.value(Z)).reshape(problem.n_z, -1) for Z in b.Z]
    return xs, ys, zs, report


def weight_penalty(arrays, kind: str = "mean"):
    """Step 2's R(θ) over the weight and bias arrays: Σ mean(a²) (``mean``, the authors'
    code) or Σ sum(a²) = ‖W‖² + ‖b‖² (``sum``)."""
    reduce = jnp.mean if kind == "mean" else jnp.sum
    return sum(reduce(jnp.asarray(a) ** 2) for a in arrays)


def pretrain_network(layers, v, z, activation: str, cfg: CollocationConfig, l2: float, key):
    """Step 2: Adam on mean((NN(v) − z)²) + α_r R(θ) over the (v, z) rows, in minibatches
    of ``pretrain_batch`` (a fresh permutation per epoch; the last batch wraps around).
    R = Σ_layers (mean(W²) + mean(b²)) (``pretrain_regularizer=mean``, the authors' code)
    or ‖W‖² + ‖b‖² (``sum``). Returns the layers and the loss after each epoch."""
    net = MLP(len(layers) - 1, layers[0][0].shape[1], activation, out_features=z.shape[1])
    params = jax.tree.map(jnp.asarray, layers_to_flax(layers))
    v, z = jnp.asarray(v), jnp.asarray(z)

    def loss(params, v, z):
        reg = weight_penalty(jax.tree.leaves(params), cfg.pretrain_regularizer)
        return jnp.mean((net.apply(params, v) - z) ** 2) + l2 * reg

    opt = optax.adam(cfg.pretrain_lr)
    n, bs = v.shape[0], cfg.pretrain_batch
    batches = max(1, -(-n // bs))

    def epoch(carry, key):
        perm = jax.random.permutation(key, n)
        idx = jnp.concatenate([perm, perm[: batches * bs - n]]).reshape(batches, bs)

        def step(c, i):
            p, s = c
            u, s = opt.update(jax.grad(loss)(p, v[i], z[i]), s, p)
            return (optax.apply_updates(p, u), s), None

        carry, _ = jax.lax.scan(step, carry, idx)
        return carry, loss(carry[0], v, z)

    run = jax.jit(lambda p, keys: jax.lax.scan(epoch, (p, opt.init(p)), keys))
    (params, _), losses = run(params, jax.random.split(key, cfg.pretrain_epochs))
    return flax_to_layers(params), np.asarray(losses)


def init_layers(problem: DaeProblem, seed: int):
    """Flax's initialisation of the problem's MLP (float64), as [(W, b)]."""
    c = problem.cfg
    widths = set(c.hidden)
    check(len(widths) == 1, "problem.hidden", f"hidden layers of one width, got {c.hidden}")
    net = MLP(len(c.hidden), c.hidden[0], c.activation, out_features=problem.n_z)
    with jax.enable_x64(True):
        params = net.init(jax.random.PRNGKey(seed), jnp.zeros(problem.network_inputs))
    layers = flax_to_layers(params)
    assert [w.shape for w, _ in layers] == layer_shapes(
        problem.network_inputs, c.hidden, problem.n_z
    )
    return layers


def _stack_columns(mats, drop_first=False):
    return np.concatenate([m[:, 1:] if drop_first else m for m in mats], axis=1).T


@dataclasses.dataclass
class MainNlp:
    """Step 3's NLP: the builder (its Opti holds the DAE, the network equations and the
    objective), θ, and the network pieces the assembled Hessian needs: per trajectory
    (first row of its network equations in g, its network inputs Xc, n_z) and the MX
    outputs NN(Xc; θ) inside those equations."""

    builder: _Builder
    theta: ca.MX
    objective: ca.MX
    network: list
    outputs: list


def main_nlp(
    problem: DaeProblem, grid: RadauGrid, data: Trajectories, layers, scaling: Standardization
) -> MainNlp:
    """Step 3: the discretized DAE of every trajectory, z = NN(x; θ) at every collocation
    point (one SX point function, mapped), θ a decision variable started at ``layers``,
    objective data fit + α_r ‖θ‖² (eq. 10), minimised."""
    b = _Builder(problem, grid, data.p, free_closure=False, x0s=_known_x0(problem, data))
    opti = b.opti
    theta = opti.variable(sum(w.size + bias.size for w, bias in layers))  # θ, flat
    opti.set_initial(theta, pack_layers(layers))
    nn = problem.network_function(
        layers, scaling.x_mean, scaling.x_std, scaling.z_mean, scaling.z_std
    ).map(grid.n_points)
    network, outputs = [], []
    for Xc, Z in zip(b.Xc, b.Z):
        out = nn(Xc, theta)
        network.append((opti.ng, Xc, problem.n_z))
        outputs.append(out)
        opti.subject_to(ca.vec(Z - out) == 0)
    objective = b.data_fit(data) + problem.cfg.l2_weight * ca.sumsqr(theta)
    opti.minimize(objective)
    return MainNlp(b, theta, objective, network, outputs)


def assembled_hessian(problem: DaeProblem, nlp: MainNlp, scaling: Standardization):
    """``hess_lag`` for ``nlp`` (methods/dae/network_hessian.py): (Function, callback)."""
    from methods.dae.network_hessian import fast_hessian, jax_network

    jnn = jax_network(
        layer_shapes(problem.network_inputs, problem.cfg.hidden, problem.n_z),
        problem.cfg.activation,
        scaling.x_mean,
        scaling.x_std,
        scaling.z_mean,
        scaling.z_std,
    )
    return fast_hessian(nlp.builder.opti, nlp.objective, nlp.network, nlp.theta, nlp.outputs, jnn)


def train_collocation(
    problem: DaeProblem,
    cfg: CollocationConfig,
    data: Trajectories,
    on_iteration: Callable | None = None,
    on_step: Callable | None = None,
) -> CollocationResult:
    """Steps 1–4 of the pipeline on ``data``; ``on_step(report)`` after each step."""
    grid = problem.train_grid(cfg.n_fe, cfg.K)
    n, steps = grid.n_points, []
    note = on_step or (lambda r: None)
    layers = init_layers(problem, cfg.init_seed)
    if cfg.smoothing:
        xs, ys, zs, rep = smoothing_step(problem, grid, data, cfg, on_iteration)
        steps.append(rep)
        note(rep)
        zs = [z[:, 1:] for z in zs]  # the closure at the collocation points
        xc, zc = _stack_columns(xs, drop_first=True), _stack_columns(zs)
        scaling = Standardization(
            xc.mean(0), np.maximum(xc.std(0), 1e-8), zc.mean(0), np.maximum(zc.std(0), 1e-8)
        )
    else:
        xs = _linear_initial(problem, grid, data)
        ys = [np.zeros((problem.n_y, n)) for _ in xs]
        zs = [np.zeros((problem.n_z, n)) for _ in xs]
        obs = np.concatenate(list(data.x_obs), axis=1).T
        scaling = Standardization(
            obs.mean(0), np.maximum(obs.std(0), 1e-8), np.zeros(problem.n_z), np.ones(problem.n_z)
        )
    if cfg.pretrain and cfg.smoothing:
        t = time.perf_counter()
        v = (xc - scaling.x_mean) / scaling.x_std
        zt = (zc - scaling.z_mean) / scaling.z_std
        with jax.enable_x64(True):
            layers, losses = pretrain_network(
                layers,
                v,
                zt,
                problem.cfg.activation,
                cfg,
                problem.cfg.l2_weight,
                jax.random.PRNGKey(cfg.init_seed),
            )
        rep = StepReport(
            "pretraining",
            "converged",
            cfg.pretrain_epochs,
            time.perf_counter() - t,
            float(losses[-1]),
            0.0,
        )
        steps.append(rep)
        note(rep)
    # --- step 3: the main NLP ------------------------------------------------------------
    nlp = main_nlp(problem, grid, data, layers, scaling)
    b, opti, theta, objective = nlp.builder, nlp.builder.opti, nlp.theta, nlp.objective
    _set_initial(b, xs, ys, zs)
    hess_lag, hess_build_s = None, 0.0
    if (cfg.hessian == "exact" or cfg.refine) and cfg.exact_hessian == "assembled":
        t = time.perf_counter()
        hess_lag = assembled_hessian(problem, nlp, scaling)
        hess_build_s = time.perf_counter() - t
    view, rep = b.solve(
        "main",
        objective,
        cfg.hessian,
        cfg.tol,
        cfg,
        on_iteration,
        expand=EXPAND[cfg.hessian],
        hess_lag=hess_lag if cfg.hessian == "exact" else None,
    )
    rep.wall_s += hess_build_s  # building the assembled Hessian counts towards step 3
    steps.append(rep)
    note(rep)
    if cfg.refine:
        x0 = view.value(opti.x)
        lam = view.value(opti.lam_g)
        opti.set_initial(opti.x, x0)
        view, rep = b.solve(
            "refinement",
            objective,
            "exact",
            cfg.refine_tol,
            cfg,
            on_iteration,
            warm_dual=lam,
            expand=EXPAND["exact"],
            hess_lag=hess_lag,
        )
        steps.append(rep)
        note(rep)
    layers = unpack_layers(np.asarray(view.value(theta)).ravel(), layers)
    value = lambda m, k: np.asarray(view.value(m)).reshape(k, -1)
    return CollocationResult(
        layers=layers,
        scaling=scaling,
        X=[value(X, problem.n_x) for X in b.X],
        Y=[value(Y, problem.n_y) if problem.n_y else np.zeros((0, n)) for Y in b.Y],
        Z=[value(Z, problem.n_z) for Z in b.Z],
        steps=steps,
        grid=grid,
    )


@dataclasses.dataclass
class Inference:
    """A constrained prediction from one initial state (:func:`constrained_inference`)."""

    grid: RadauGrid
    X: np.ndarray  # (n_x, N + 1)
    Y: np.ndarray  # (n_y, N)
    Z: np.ndarray  # (n_z, N)
    slack_pos: np.ndarray  # (n_z, N) s⁺
    slack_neg: np.ndarray  # (n_z, N) s⁻
    report: StepReport

    @property
    def ok(self) -> bool:
        return self.report.status == "converged"


def constrained_inference(
    problem: DaeProblem,
    layers,
    scaling: Standardization,
    x0,
    grid: RadauGrid,
    slack_weight: float = 1e-5,
    guess: np.ndarray | None = None,
    ipopt_options: dict | None = None,
) -> Inference:
    """Predict from ``x0`` over ``grid`` with the trained network fixed (module docstring,
    "Prediction"): the problem's DAE collocated on ``grid`` from the fixed initial state,
    bounds, path constraints, the network equation with an l1 slack in standardized output
    units, objective ``slack_weight`` · mean(s⁺ + s⁻). IPOPT with the exact Hessian (the
    network's weights are constants here, so the NLP is small and sparse) at IPOPT's own
    defaults (tol 1e-8, max_iter 3000: the authors pass no options). ``guess``: states on
    ``grid.times`` to start from (the simulation, clipped into the bounds, where finite);
    by default x0 held constant."""
    x0 = np.asarray(x0, float)
    p = problem.parameters(x0)
    n = grid.n_points
    b = _Builder(problem, grid, [p], free_closure=False, x0s=[x0])
    opti = b.opti
    nn = problem.network_function(
        layers, scaling.x_mean, scaling.x_std, scaling.z_mean, scaling.z_std
    ).map(n)
    Xc, Z = b.Xc[0], b.Z[0]
    sp, sn = opti.variable(problem.n_z, n), opti.variable(problem.n_z, n)
    opti.subject_to(ca.vec(sp) >= 0)
    opti.subject_to(ca.vec(sn) >= 0)
    z_std = ca.repmat(ca.DM(np.asarray(scaling.z_std, float)), 1, n)
    opti.subject_to(ca.vec((Z - nn(Xc, ca.DM(pack_layers(layers)))) / z_std) == ca.vec(sp - sn))
    objective = slack_weight * ca.sum1(ca.vec(sp + sn)) / (problem.n_z * n)
    x = np.repeat(x0[:, None], n + 1, axis=1)
    if guess is not None:
        g = np.asarray(guess, float)
        x = np.where(np.isfinite(g), g, x)
        lb = _bounds(problem.x_lower, problem.n_x)
        if lb is not None:
            x = np.maximum(x, np.where(np.isfinite(lb), lb, -np.inf))
    closure = problem.network_closure(
        layers, scaling.x_mean, scaling.x_std, scaling.z_mean, scaling.z_std
    )
    z = np.asarray(
        closure.map(n)(
            x[:, 1:],
            np.zeros((problem.n_y, n)),
            np.repeat(p[:, None], n, 1) if problem.n_p else np.zeros((0, n)),
        ),
        float,
    ).reshape(problem.n_z, n)
    _set_initial(b, [x], [np.zeros((problem.n_y, n))], [z])
    opti.set_initial(sp, np.zeros((problem.n_z, n)))
    opti.set_initial(sn, np.zeros((problem.n_z, n)))
    cfg = CollocationConfig(max_iter=3000, ipopt_options=ipopt_options)
    view, rep = b.solve("inference", objective, "exact", 1e-8, cfg, None, expand=True)
    value = lambda m, k: np.asarray(view.value(m), float).reshape(k, -1)
    return Inference(
        grid=grid,
        X=value(b.X[0], problem.n_x),
        Y=value(b.Y[0], problem.n_y) if problem.n_y else np.zeros((0, n)),
        Z=value(Z, problem.n_z),
        slack_pos=value(sp, problem.n_z),
        slack_neg=value(sn, problem.n_z),
        report=rep,
    )


def learned_closure(problem: DaeProblem, result: CollocationResult):
    s = result.scaling
    return problem.network_closure(result.layers, s.x_mean, s.x_std, s.z_mean, s.z_std)


__all__ = [
    "CollocationConfig",
    "CollocationResult",
    "HESSIANS",
    "INFERENCES",
    "Inference",
    "LINEAR_SOLVERS",
    "PRETRAIN_REGULARIZERS",
    "Standardization",
    "StepReport",
    "MainNlp",
    "assembled_hessian",
    "available_linear_solvers",
    "check_linear_solver",
    "constrained_inference",
    "init_layers",
    "main_nlp",
    "weight_penalty",
    "ipopt_status",
    "learned_closure",
    "pack_layers",
    "pretrain_network",
    "smoothing_step",
    "train_collocation",
    "unpack_layers",
]

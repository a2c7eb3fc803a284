"""Sequential training of a neural ODE/DAE: integrate, compare, back-propagate (the neural DAE
paper's baseline; spec neural_dae.md, "Method sequential").

The same MLP as the collocation method sits inside the model, z = NN((x − x̄)/σ_x; θ), with
x̄, σ_x the mean and std of the observations (no smoother here) and the output unscaled.
Each step integrates every training trajectory with diffrax (Tsit5, adaptive PID step
control, rtol/atol from the config; Kvaerno5 as the stiff option) from its initial state,
evaluates the standardized data misfit at the observation times
(the collocation objective, eq. 10, with the same α_r‖θ‖²) and takes one optax Adam step
on its gradient (diffrax's default RecursiveCheckpointAdjoint: reverse mode through the
solver). Full batch: the three (or one) training trajectories every step.

The initial state is what the collocation method knows of it (``problem.initial_state``,
problems/dae/base.py): ``free`` fits x(t0) of each trajectory as a parameter of the same Adam
step, started at the first observation and projected after every step onto the states'
lower bounds, which the collocation NLP imposes on its x(t0) too (made consistent by the
problem: the tank's x0 = x1); ``fixed`` integrates from the true initial state.
Predictions on the test ICs are the integrated model (``inference=simulate``, the
sequential approach's own), or the collocation method's constrained NLP with this network
(``inference=constrained``).

DAEs: the algebraic variables are eliminated in closed form by each problem's ``ode_rhs``
(the tank manifold after index reduction, see problems/dae/tank_manifold.py). Nothing keeps
the states in their bounds: that is the point of the comparison (the bioreactor's S).
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import optax

from methods.dae.collocation import INFERENCES, init_layers
from methods.driver import Method, tree_all_finite
from problems.common.base import check, check_choice, check_positive_int
from problems.common.networks import MLP
from problems.dae.base import DaeProblem, Trajectories, layers_to_flax

SOLVERS = {"tsit5": diffrax.Tsit5, "kvaerno5": diffrax.Kvaerno5}


@dataclasses.dataclass(frozen=True)
class SequentialConfig:
    epochs: int = 2000  # Adam steps (full batch: one per epoch)
    lr: float = 1e-3
    solver: str = "tsit5"  # tsit5 | kvaerno5 (stiff)
    rtol: float = 1e-6
    atol: float = 1e-8
    max_steps: int = 10000  # integrator steps per trajectory
    init_seed: int = 0
    # test predictions: simulate (integrate the learned model) | constrained (the collocation
    # method's inference NLP with this network)
    inference: str = "simulate"
    inference_slack_weight: float = 1e-5  # of inference=constrained

    def __post_init__(self):
        for f in ("epochs", "max_steps"):
            check_positive_int(getattr(self, f), f"method.{f}")
        check_choice(self.solver, "method.solver", list(SOLVERS))
        check_choice(self.inference, "method.inference", INFERENCES)
        check(
            isinstance(self.inference_slack_weight, (int, float))
            and self.inference_slack_weight > 0,
            "method.inference_slack_weight",
            f"must be a number > 0, got {self.inference_slack_weight!r}",
        )
        for f in ("lr", "rtol", "atol"):
            v = getattr(self, f)
            check(
                isinstance(v, (int, float)) and 0 < v < 1,
                f"method.{f}",
                f"must be a number in (0, 1), got {v!r}",
            )
        check(
            isinstance(self.init_seed, int) and self.init_seed >= 0,
            "method.init_seed",
            f"must be an integer >= 0, got {self.init_seed!r}",
        )


class SequentialState(NamedTuple):
    params: dict  # {"net": Flax params, "x0": (n_traj, n_x) fitted initial states}
    opt_state: optax.OptState
    count: jax.Array
    loss: jax.Array


class SequentialData(NamedTuple):
    t: jax.Array  # (T,)
    x_obs: jax.Array  # (n_traj, n_x, T)
    x0: jax.Array  # (n_traj, n_x)
    p: jax.Array  # (n_traj, n_p)


def to_sequential_data(data: Trajectories) -> SequentialData:
    return SequentialData(
        *(jnp.asarray(a, jnp.float64) for a in (data.t, data.x_obs, data.x0, data.p))
    )


def make_model(problem: DaeProblem, data: Trajectories):
    """(net, x_mean, x_std): the closure network and its input standardisation."""
    c = problem.cfg
    net = MLP(len(c.hidden), c.hidden[0], c.activation, out_features=problem.n_z)
    obs = np.concatenate(list(data.x_obs), axis=1)
    return net, jnp.asarray(obs.mean(1)), jnp.asarray(np.maximum(obs.std(1), 1e-8))


def simulate_jax(problem, net, x_mean, x_std, params, x0, p, t, cfg: SequentialConfig):
    """The learned ODE from x0 saved at times t ((n_x, T)); NaN after a failed solve."""

    def field(_, x, args):
        z = net.apply(params, (x - x_mean) / x_std)
        return problem.ode_rhs(x, z, p)

    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(field),
        SOLVERS[cfg.solver](),
        t[0],
        t[-1],
        None,
        x0,
        saveat=diffrax.SaveAt(ts=t),
        stepsize_controller=diffrax.PIDController(rtol=cfg.rtol, atol=cfg.atol, dtmin=None),
        max_steps=cfg.max_steps,
        throw=False,
    )
    bad = sol.result != diffrax.RESULTS.successful
    return jnp.where(bad, jnp.nan, sol.ys.T)


def sequential_method(problem: DaeProblem, cfg: SequentialConfig, data: Trajectories):
    """A :class:`methods.driver.Method` (params: Flax params of the closure network)."""
    net, x_mean, x_std = make_model(problem, data)
    sigma = jnp.asarray(np.maximum(data.x_obs.std(axis=(0, 2)), 1e-12))  # σ_x, as eq. 10
    l2 = problem.cfg.l2_weight
    opt = optax.adam(cfg.lr)
    free = problem.cfg.initial_state == "free"
    lower = jnp.asarray(
        np.full(problem.n_x, -np.inf)
        if problem.x_lower is None
        else np.asarray(problem.x_lower, float)
    )

    def loss(params, d: SequentialData):
        x0s = jax.vmap(problem.consistent_initial_state)(params["x0"]) if free else d.x0

        def one(x0, p, obs):
            xs = simulate_jax(problem, net, x_mean, x_std, params["net"], x0, p, d.t, cfg)
            return jnp.sum(((xs - obs) / sigma[:, None]) ** 2) / obs.size

        fit = jnp.sum(jax.vmap(one)(x0s, d.p, d.x_obs))
        return fit + l2 * sum(jnp.sum(w**2) for w in jax.tree.leaves(params["net"]))

    def init(net_params, d):
        params = {"net": net_params, "x0": jnp.maximum(d.x_obs[:, :, 0], lower)}
        return SequentialState(params, opt.init(params), jnp.int32(0), loss(params, d))

    def step(s: SequentialState, d):
        value, g = jax.value_and_grad(loss)(s.params, d)
        u, o = opt.update(g, s.opt_state, s.params)
        params = optax.apply_updates(s.params, u)
        params = {**params, "x0": jnp.maximum(params["x0"], lower)}  # x(t0) in its bounds
        return SequentialState(params, o, s.count + 1, value)

    return Method(
        name="sequential",
        init=init,
        step=step,
        done=lambda s: s.count >= cfg.epochs,
        finite=lambda s: tree_all_finite(s.params) & jnp.isfinite(s.loss),
        converged=lambda s: jnp.array(False),
        log=lambda s, d: {"objective": s.loss},
        params=lambda s: s.params["net"],
        iterations=lambda s: s.count,
        progress=lambda s: s.count,
        progress_total=cfg.epochs,
        progress_unit="epoch",
    )


def initial_params(problem: DaeProblem, cfg: SequentialConfig):
    """Flax's initialisation of the closure MLP (the collocation method's, same seed)."""
    return jax.tree.map(jnp.asarray, layers_to_flax(init_layers(problem, cfg.init_seed)))


__all__ = [
    "SOLVERS",
    "SequentialConfig",
    "SequentialData",
    "initial_params",
    "make_model",
    "sequential_method",
    "simulate_jax",
    "to_sequential_data",
]

"""The worked example of docs/extending.md: a problem and a method defined outside this
project's packages, registered when the command line's ``plugins=[toy_plugin]`` imports
this module (with this folder on PYTHONPATH and ``hydra.searchpath=[file://<this folder>/conf]``
for their two config files).

* ``toy_line`` (family ``constrained_learning``): min_θ ½‖θ − a·1‖² s.t. Σθ = b, whose
  solution θ* = (b/n)·1 is known in closed form, so a run's error is exact.
* ``toy_gd`` (for the same family): the primal–dual gradient iteration on the Lagrangian
  L = ℓ + λᵀc (Arrow–Hurwicz): θ ← θ − η∇_θL(θ, λ), λ ← λ + η c(θ), written as a pure
  init/step pair the runner drives in jitted chunks.
* ``toy_fit`` (family ``stochastic_constrained``, for the SQP-momentum methods): fit the
  quadratic p_w(x) = w₀ + w₁x + w₂x² to y = ½ + x − 2x² on points of [−1, 1] under the
  hard constraints p_w(−1) = −5/2 and p_w(1) = −1/2, which the true curve meets, so
  w* = (½, 1, −2) and the test error at the solution is 0.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from methods import MethodSpec, register_method
from methods.driver import Method, tree_all_finite
from problems import CONSTRAINED_LEARNING, register_problem
from problems.common.base import check, check_positive_int
from problems.stochastic.base import StochasticConfig, StochasticProblem

# --- the problem --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ToyLineConfig:
    n: int = 4  # θ ∈ R^n
    target: float = 2.0  # a in ℓ(θ) = ½‖θ − a·1‖²
    total: float = 1.0  # b in c(θ) = Σθ − b

    def __post_init__(self):
        check_positive_int(self.n, "problem.n")


@register_problem
class ToyLine:
    """min ½‖θ − a·1‖² s.t. Σθ = b; θ* = (b/n)·1."""

    name = "toy_line"
    family = CONSTRAINED_LEARNING
    Config = ToyLineConfig

    def __init__(self, cfg: ToyLineConfig):
        self.cfg = cfg

    def init_params(self, key):
        return {"theta": jax.random.normal(key, (self.cfg.n,))}

    def sample_data(self, key):
        return jnp.full((self.cfg.n,), self.cfg.target)

    def loss(self, params, data):
        return 0.5 * jnp.sum((params["theta"] - data) ** 2)

    def constraints(self, params, data):
        return jnp.atleast_1d(jnp.sum(params["theta"]) - self.cfg.total)

    def evaluate(self, params, data):
        star = jnp.full((self.cfg.n,), self.cfg.total / self.cfg.n)
        err = params["theta"] - star
        return {
            "abs_error": jnp.max(jnp.abs(err)),
            "rel_error": jnp.linalg.norm(err) / jnp.linalg.norm(star),
            "max_constraint_violation": jnp.max(jnp.abs(self.constraints(params, data))),
        }


# --- a problem of the stochastic family -------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ToyFitConfig(StochasticConfig):
    n_points: int = 40  # fitting points, evenly spaced in [−1, 1] (the mini-batched ones)
    fit_weight: float = 1.0  # the weight of the single loss term "fit"
    batch_fraction: float = 0.25

    def __post_init__(self):
        super().__post_init__()
        check_positive_int(self.n_points, "problem.n_points")


class ToyFitData(NamedTuple):
    x: jax.Array  # (n_points,)
    y: jax.Array  # (n_points,) = y(x)
    x_c: jax.Array  # (2,) the constraint points −1 and 1
    y_c: jax.Array  # (2,) their values
    x_test: jax.Array  # (101,) held-out grid
    y_test: jax.Array


@register_problem
class ToyFit(StochasticProblem):
    """min_w mean_i (p_w(x_i) − y_i)² s.t. p_w(±1) = y(±1); w* = (½, 1, −2)."""

    name = "toy_fit"
    Config = ToyFitConfig
    loss_terms = ("fit",)
    heavy = False  # closed form: nothing to cache on disk

    @staticmethod
    def truth(x):
        return 0.5 + x - 2.0 * x**2

    @property
    def n_residual_points(self) -> int:
        return self.cfg.n_points

    def init_params(self, key):
        return {"w": jax.random.normal(key, (3,), self.dtype)}

    def predict(self, params, x):
        w = params["w"]
        return w[0] + w[1] * x + w[2] * x**2

    def _generate(self, rng):
        x, x_c = np.linspace(-1, 1, self.cfg.n_points), np.array([-1.0, 1.0])
        x_test = np.linspace(-1, 1, 101)
        arrays = {"x": x, "x_c": x_c, "x_test": x_test}
        return {**arrays, "y": self.truth(x), "y_c": self.truth(x_c), "y_test": self.truth(x_test)}

    def _to_data(self, arrays) -> ToyFitData:
        return ToyFitData(**{k: self._float(arrays[k]) for k in ToyFitData._fields})

    def _terms(self, params, data: ToyFitData, batch_idx):
        e = self.predict(params, data.x[batch_idx]) - data.y[batch_idx]
        return {"fit": jnp.mean(e**2)}

    def n_constraints_of(self, data: ToyFitData) -> int:
        return 2

    def constraint_at(self, params, data: ToyFitData, i):
        return self.predict(params, data.x_c[i]) - data.y_c[i]

    def _test_errors(self, params, data: ToyFitData):
        return self.predict(params, data.x_test) - data.y_test, data.y_test


# --- the method ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ToyGdConfig:
    lr: float = 0.2  # η
    tol: float = 1e-10  # stop when ‖∇_θL‖∞ ≤ tol and ‖c‖∞ ≤ tol
    max_iter: int = 10000

    def __post_init__(self):
        check(
            isinstance(self.lr, (int, float)) and self.lr > 0,
            "method.lr",
            f"must be a number > 0, got {self.lr!r}",
        )
        check_positive_int(self.max_iter, "method.max_iter")


class ToyGdState(NamedTuple):
    theta: jax.Array  # flattened parameters
    lam: jax.Array  # multipliers
    grad_norm: jax.Array  # ‖∇_θL‖∞ at (θ, λ)
    c_norm: jax.Array  # ‖c(θ)‖∞
    k: jax.Array


def toy_gd_method(problem, cfg: ToyGdConfig, dtype) -> Method:
    """Primal–dual gradient steps on any constrained-learning problem."""
    theta0, unravel = ravel_pytree(problem.init_params(jax.random.PRNGKey(0)))

    def lagrangian(th, lam, data):
        p = unravel(th)
        return problem.loss(p, data) + lam @ problem.constraints(p, data)

    def measure(th, lam, data):
        g = jax.grad(lagrangian)(th, lam, data)
        return jnp.max(jnp.abs(g)), jnp.max(jnp.abs(problem.constraints(unravel(th), data)))

    def init(params, data):
        th = ravel_pytree(params)[0].astype(dtype)
        lam = jnp.zeros_like(problem.constraints(params, data), dtype)
        return ToyGdState(th, lam, *measure(th, lam, data), jnp.int32(0))

    def step(s: ToyGdState, data):
        th = s.theta - cfg.lr * jax.grad(lagrangian)(s.theta, s.lam, data)
        lam = s.lam + cfg.lr * problem.constraints(unravel(th), data)
        return ToyGdState(th, lam, *measure(th, lam, data), s.k + 1)

    def converged(s):
        return (s.grad_norm <= cfg.tol) & (s.c_norm <= cfg.tol)

    return Method(
        name="toy_gd",
        init=init,
        step=step,
        done=lambda s: converged(s) | (s.k >= cfg.max_iter),
        finite=lambda s: tree_all_finite((s.theta, s.lam)),
        converged=converged,
        log=lambda s, data: {
            "objective": problem.loss(unravel(s.theta), data),
            "constraint_norm": s.c_norm,
            "grad_norm": s.grad_norm,
        },
        params=lambda s: unravel(s.theta),
        iterations=lambda s: s.k,
        progress=lambda s: s.k,
        progress_total=cfg.max_iter,
    )


register_method("toy_gd", MethodSpec(CONSTRAINED_LEARNING, ToyGdConfig, toy_gd_method))

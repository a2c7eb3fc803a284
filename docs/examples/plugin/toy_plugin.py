"""The worked example of docs/extending.md: a problem and a method defined outside this
project's packages, registered when the command line's ``plugins=[toy_plugin]`` imports
this module (with this folder on PYTHONPATH and ``hydra.searchpath=[file://<this folder>/conf]``
for their two config files).

* ``toy_line`` (family ``constrained_learning``): min_θ ½‖θ − a·1‖² s.t. Σθ = b, whose
  solution θ* = (b/n)·1 is known in closed form, so a run's error is exact.
* ``toy_gd`` (for the same family): the primal–dual gradient iteration on the Lagrangian
  L = ℓ + λᵀc (Arrow–Hurwicz): θ ← θ − η∇_θL(θ, λ), λ ← λ + η c(θ), written as a pure
  init/step pair the runner drives in jitted chunks.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from methods import MethodSpec, register_method
from methods.driver import Method, tree_all_finite
from problems import CONSTRAINED_LEARNING, register_problem
from problems.common.base import check, check_positive_int

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

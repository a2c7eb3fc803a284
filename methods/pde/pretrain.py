"""Pretraining, Step 0 of trSQP-PINN (§3, eq. (9)): θ_init = argmin_θ ‖c̃(θ)‖².

c̃ are the constraint residuals (IC, PDE, BC) at the M^pretrain points, evenly split;
the minimiser is L-BFGS with the inner stopping test (A.1) (max 2·10⁴ iterations,
g_tol = 10⁻⁹), from the network's initialisation. It is :func:`lbfgs_rounds` with
ℓ ≡ 0, one round at μ = 1.

The trivial solution: u ≡ 0 satisfies the reaction PDE and the periodic BC, so only
the IC residuals pull the network away from it. ``ic_weight`` scales the IC residuals
inside c̃ (1 = the paper); the runner reports the IC residual after pretraining
relative to ‖u0‖ at the IC points (``pretrain_ic_rel``: 1 means u ≈ 0 at t = 0).
"""

from __future__ import annotations

import dataclasses
import math

import jax.numpy as jnp

from methods.driver import Method
from methods.pde.penalty import InnerConfig, lbfgs_rounds
from problems.common.base import check


@dataclasses.dataclass(frozen=True)
class PretrainConfig(InnerConfig):
    ic_weight: float = 1.0  # weight of the IC residuals in c̃

    _prefix = "pretraining"

    def __post_init__(self):
        super().__post_init__()
        check(
            isinstance(self.ic_weight, (int, float))
            and self.ic_weight > 0
            and math.isfinite(self.ic_weight),
            "pretraining.ic_weight",
            f"must be a finite number > 0, got {self.ic_weight!r}",
        )


def weighted_pretrain_constraints(problem, ic_weight: float):
    """c̃_w(θ) = [w · c̃_IC; c̃_PDE; c̃_BC]."""
    n_ic = problem.n_ic("pretrain")

    def c(params, data):
        r = problem.pretrain_constraints(params, data)
        return r.at[:n_ic].multiply(ic_weight)

    return c


def pretrain_method(problem, cfg: PretrainConfig, dtype) -> Method:
    zero = lambda params, data: jnp.zeros((), dtype)
    return lbfgs_rounds(
        "pretrain",
        zero,
        weighted_pretrain_constraints(problem, cfg.ic_weight),
        cfg,
        mu0=1.0,
        rho=1.0,
        mu_max=math.inf,
        max_rounds=1,
        multiplier_update=None,
        dtype=dtype,
    )


def pretrain_report(problem, params, data) -> dict:
    """‖c̃‖², the IC residual and its size relative to ‖u0‖ at the IC points."""
    r = problem.pretrain_constraints(params, data)
    n_ic = problem.n_ic("pretrain")
    ic = r[:n_ic]
    u0 = data.pretrain.ic_u
    return {
        "pretrain_c_sq": jnp.sum(r**2),
        "pretrain_ic_residual": jnp.linalg.norm(ic),
        "pretrain_ic_rel": jnp.linalg.norm(ic) / jnp.maximum(jnp.linalg.norm(u0), 1e-300),
    }

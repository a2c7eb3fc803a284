"""Solvers: pure init/step functions over a problem (no file IO, no Hydra)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

from methods.dae.collocation import CollocationConfig, train_collocation
from methods.dae.sequential import SequentialConfig, sequential_method
from methods.driver import FINISHED, Method, RunResult, run_chunked
from methods.parametric.lisco import IpoptConfig, JaxoptOsqpConfig, LiscoConfig, OsqpConfig
from methods.parametric.lisco_baselines import (
    box_osqp_method,
    convex_only,
    ipopt_method,
    osqp_method,
)
from methods.pde.penalty import (
    AuglagConfig,
    PenaltyConfig,
    PinnConfig,
    auglag_method,
    penalty_method,
    pinn_method,
)
from methods.pde.pretrain import PretrainConfig, pretrain_method, pretrain_report
from methods.pde.trsqp import TrsqpConfig, trsqp_method
from methods.stochastic.sqp_momentum import KINDS as SQP_MOMENTUM
from methods.stochastic.sqp_momentum import SqpMomentumConfig, sqp_momentum_method
from problems.common.base import (
    CONSTRAINED_LEARNING,
    STOCHASTIC_CONSTRAINED,
    ConfigError,
    config_from_dict,
)
from problems.dae.base import NEURAL_DAE
from problems.parametric.base import PARAMETRIC_OPT


class MethodSpec(NamedTuple):
    family: str
    Config: type
    build: Callable | None  # (problem, config, dtype[, key]) -> Method (the JAX steppers)
    stochastic: bool = False  # build takes a PRNG key (the run's seed: mini-batch stream)
    # a host solver instead of a stepper: (problem, config, X, on_instance) -> (result, extra)
    solve: Callable | None = None
    # problem -> None, or why this method cannot take it (one line, checked before a run)
    refuses: Callable | None = None


METHODS: dict[str, MethodSpec] = {
    "penalty": MethodSpec(CONSTRAINED_LEARNING, PenaltyConfig, penalty_method),
    "auglag": MethodSpec(CONSTRAINED_LEARNING, AuglagConfig, auglag_method),
    "pinn": MethodSpec(CONSTRAINED_LEARNING, PinnConfig, pinn_method),
    "trsqp": MethodSpec(CONSTRAINED_LEARNING, TrsqpConfig, trsqp_method),
    **{
        k: MethodSpec(
            STOCHASTIC_CONSTRAINED,
            SqpMomentumConfig,
            functools.partial(sqp_momentum_method, k),
            stochastic=True,
        )
        for k in SQP_MOMENTUM
    },
    # neural DAE: not chunked JAX steppers; runners/dae.py calls these directly
    "collocation": MethodSpec(NEURAL_DAE, CollocationConfig, train_collocation),
    "sequential": MethodSpec(NEURAL_DAE, SequentialConfig, sequential_method),
    # parametric optimization (LISCO paper): runners/parametric.py drives these
    "lisco": MethodSpec(PARAMETRIC_OPT, LiscoConfig, None),
    "ipopt": MethodSpec(PARAMETRIC_OPT, IpoptConfig, None, solve=ipopt_method),
    "osqp": MethodSpec(PARAMETRIC_OPT, OsqpConfig, None, solve=osqp_method, refuses=convex_only),
    "jaxopt_osqp": MethodSpec(
        PARAMETRIC_OPT, JaxoptOsqpConfig, None, solve=box_osqp_method, refuses=convex_only
    ),
}


def register_method(name: str, spec: MethodSpec) -> MethodSpec:
    """Add method ``name`` to ``METHODS``: the extension point for a method defined outside
    this package (``plugins=[module]``; docs/extending.md). ``spec.build(problem, config,
    dtype)`` returns a :class:`methods.driver.Method` for the JAX families; a name already
    taken is refused."""
    if name in METHODS and METHODS[name] is not spec:
        raise ConfigError(f"method: {name!r} is taken")
    METHODS[name] = spec
    return spec


def method_refusal(name: str, problem) -> str | None:
    """None, or the one-line reason method ``name`` cannot take ``problem`` (its family
    fits): the method's own ``refuses`` test, with the methods that can."""
    spec = METHODS[name]
    why = spec.refuses(problem) if spec.refuses is not None else None
    if why is None:
        return None
    valid = [
        m
        for m, s in METHODS.items()
        if s.family == problem.family and (s.refuses is None or s.refuses(problem) is None)
    ]
    return f"{name!r} {why}; valid methods: {', '.join(valid)}"


def method_config(name: str, values: dict, problem_name: str, problem_family: str):
    """Validate method ``name`` against the problem's family and build its config."""
    if name not in METHODS:
        raise ConfigError(f"method: unknown method {name!r}; valid choices: {', '.join(METHODS)}")
    spec = METHODS[name]
    if spec.family != problem_family:
        valid = [m for m, s in METHODS.items() if s.family == problem_family]
        raise ConfigError(
            f"method: {name!r} does not fit problem {problem_name!r} "
            f"(family {problem_family}); valid methods: {', '.join(valid)}"
        )
    return config_from_dict(spec.Config, values, "method")


def build_method(name: str, cfg, problem, dtype, key=None) -> Method:
    """The method's init/step over ``problem``; ``key`` seeds stochastic methods."""
    spec = METHODS[name]
    return (
        spec.build(problem, cfg, dtype, key) if spec.stochastic else spec.build(problem, cfg, dtype)
    )


__all__ = [
    "METHODS",
    "FINISHED",
    "Method",
    "MethodSpec",
    "RunResult",
    "run_chunked",
    "method_config",
    "method_refusal",
    "register_method",
    "build_method",
    "PretrainConfig",
    "pretrain_method",
    "pretrain_report",
]

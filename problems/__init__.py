"""Problem definitions: physics, data generation, networks, metrics (no Hydra)."""

import dataclasses

from problems.common.base import (
    CONSTRAINED_LEARNING,
    STOCHASTIC_CONSTRAINED,
    ConfigError,
    check_choice,
    config_from_dict,
)
from problems.dae.base import NEURAL_DAE
from problems.dae.bioreactor import Bioreactor
from problems.dae.population import Population
from problems.dae.tank_manifold import TankManifold
from problems.parametric.base import PARAMETRIC_OPT, NonconvexQp, Qp, Rosenbrock
from problems.pde.reaction import Reaction
from problems.pde.reaction_diffusion import ReactionDiffusion
from problems.pde.transport import Transport
from problems.stochastic.burgers import Burgers
from problems.stochastic.butene import Butene
from problems.stochastic.darcy import Darcy
from problems.stochastic.spring import Spring

PROBLEMS = {
    cls.name: cls
    for cls in (
        Transport,
        Reaction,
        ReactionDiffusion,
        Spring,
        Butene,
        Burgers,
        Darcy,
        TankManifold,
        Population,
        Bioreactor,
        Qp,
        NonconvexQp,
        Rosenbrock,
    )
}


def register_problem(cls):
    """Add a problem class to ``PROBLEMS`` (usable as a decorator): the extension point for a
    problem defined outside this package (``plugins=[module]`` on the command line imports
    the module; docs/extending.md). ``cls`` needs ``name``, ``family`` and ``Config`` (a
    dataclass built from ``problem.*``); a name already taken is refused."""
    for attr in ("name", "family", "Config"):
        if not getattr(cls, attr, None):
            raise ConfigError(
                f"problem: {cls.__name__} has no {attr!r}; a problem class "
                "needs name, family and Config"
            )
    if cls.name in PROBLEMS and PROBLEMS[cls.name] is not cls:
        raise ConfigError(f"problem: {cls.name!r} is taken by {PROBLEMS[cls.name].__name__}")
    PROBLEMS[cls.name] = cls
    return cls


PRECISIONS = ("auto", "float64", "float32")


def resolve_precision(value: str, name: str) -> str:
    """``precision=auto`` -> the problem's ``default_precision`` (float32 for the SQP-momentum
    family, whose authors ran PyTorch's float32, and for trSQP-PINN's PDE problems, whose
    authors ran JAX's float32; float64 elsewhere); an explicit float64 / float32 is kept.
    Raises ConfigError naming the field and the choices."""
    check_choice(value, "precision", PRECISIONS)
    if value != "auto":
        return value
    return getattr(PROBLEMS.get(name), "default_precision", "float64")


def build_problem(name: str, values: dict, dtype: str | None = None):
    """Instantiate problem ``name`` from plain config values (raises ConfigError)."""
    if name not in PROBLEMS:
        raise ConfigError(
            f"problem: unknown problem {name!r}; valid choices: {', '.join(PROBLEMS)}"
        )
    cls = PROBLEMS[name]
    values = dict(values)
    has_dtype = any(f.name == "dtype" for f in dataclasses.fields(cls.Config))
    if dtype is not None and has_dtype:  # the neural DAE problems are float64 CasADi models
        values.setdefault("dtype", dtype)
    return cls(config_from_dict(cls.Config, values, "problem"))


__all__ = [
    "PRECISIONS",
    "PROBLEMS",
    "build_problem",
    "register_problem",
    "resolve_precision",
    "ConfigError",
    "CONSTRAINED_LEARNING",
    "NEURAL_DAE",
    "PARAMETRIC_OPT",
    "STOCHASTIC_CONSTRAINED",
]

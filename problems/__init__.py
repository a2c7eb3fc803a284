"""Problem definitions: physics, data generation, networks, metrics (no Hydra)."""

from problems.base import (
    CONSTRAINED_LEARNING,
    STOCHASTIC_CONSTRAINED,
    ConfigError,
    config_from_dict,
)
from problems.burgers import Burgers
from problems.butene import Butene
from problems.darcy import Darcy
from problems.reaction import Reaction
from problems.reaction_diffusion import ReactionDiffusion
from problems.spring import Spring
from problems.transport import Transport

PROBLEMS = {cls.name: cls for cls in (Transport, Reaction, ReactionDiffusion,
                                      Spring, Butene, Burgers, Darcy)}


def build_problem(name: str, values: dict, dtype: str | None = None):
    """Instantiate problem ``name`` from plain config values (raises ConfigError)."""
    if name not in PROBLEMS:
        raise ConfigError(f"problem: unknown problem {name!r}; valid choices: "
                          f"{', '.join(PROBLEMS)}")
    cls = PROBLEMS[name]
    values = dict(values)
    if dtype is not None:
        values.setdefault("dtype", dtype)
    return cls(config_from_dict(cls.Config, values, "problem"))


__all__ = ["PROBLEMS", "build_problem", "ConfigError", "CONSTRAINED_LEARNING",
           "STOCHASTIC_CONSTRAINED"]

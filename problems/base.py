"""Problem protocols shared by every family, and the one error type for bad input.

Families (see ``shared/spec/ARCHITECTURE.md``):

* ``constrained_learning``: min_θ ℓ(θ) s.t. c(θ) = 0, θ the weights of a network.

A problem is a small object of pure functions over arrays; data are pytrees, so
every function can be jitted, differentiated and vmapped. Nothing here imports
Hydra: a problem is built from a plain dataclass and is usable from a notebook.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol

import jax

Params = Any  # a pytree of arrays (Flax params)
Data = Any  # a pytree of arrays (NamedTuple)

CONSTRAINED_LEARNING = "constrained_learning"


class ConfigError(ValueError):
    """Bad user input. The message is one line naming the field and what is allowed."""


def check(cond: bool, field: str, message: str) -> None:
    """Raise ``ConfigError('<field>: <message>')`` unless ``cond``."""
    if not cond:
        raise ConfigError(f"{field}: {message}")


def check_positive_int(value: Any, field: str) -> None:
    check(
        isinstance(value, int) and not isinstance(value, bool) and value > 0,
        field,
        f"must be a positive integer, got {value!r}",
    )


def check_choice(value: Any, field: str, choices) -> None:
    check(value in choices, field, f"got {value!r}; valid choices: {', '.join(map(str, choices))}")


def config_from_dict(cls, values: dict, prefix: str):
    """Build dataclass ``cls`` from a plain dict, naming unknown keys with ``prefix``."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    check(not unknown, f"{prefix}.{unknown[0] if unknown else ''}",
          f"unknown field; valid fields: {', '.join(sorted(names))}")
    return cls(**values)


class ConstrainedLearningProblem(Protocol):
    """min_θ ℓ(θ) s.t. c(θ) = 0 (family ``constrained_learning``)."""

    name: str
    family: str

    def init_params(self, key: jax.Array) -> Params: ...

    def sample_data(self, key: jax.Array) -> Data: ...

    def loss(self, params: Params, data: Data) -> jax.Array:
        """ℓ(θ): the data-fitting objective."""

    def constraints(self, params: Params, data: Data) -> jax.Array:
        """c(θ), shape (M,): the hard constraints at the M training points."""

    def pretrain_constraints(self, params: Params, data: Data) -> jax.Array:
        """c̃(θ): the constraints at the M_pretrain points of the pretraining step."""

    def evaluate(self, params: Params, data: Data) -> dict[str, float]:
        """Final metrics: abs/rel error vs the reference, max |c|, ..."""

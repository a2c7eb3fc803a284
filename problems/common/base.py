"""Problem protocols shared by every family, and the one error type for bad input.

Families:

* ``constrained_learning``: min_θ ℓ(θ) s.t. c(θ) = 0, θ the weights of a network
  (trSQP-PINN: deterministic objective, many constraints, a pretraining step).
* ``stochastic_constrained``: min_θ f(θ) = E[F(θ, ω)] s.t. c(θ) = 0 with a *few* hard
  constraints and a mini-batched objective (the projected stochastic momentum SQP paper).
  A separate family because its interface differs:
  weighted objective *terms* over a mini-batch of residual points instead of one ℓ(θ).

A problem is a small object of pure functions over arrays; data are pytrees, so
every function can be jitted, differentiated and vmapped. Nothing here imports
Hydra: a problem is built from a plain dataclass and is usable from a notebook.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Protocol

import jax

Params = Any  # a pytree of arrays (Flax params)
Data = Any  # a pytree of arrays (NamedTuple)

CONSTRAINED_LEARNING = "constrained_learning"
STOCHASTIC_CONSTRAINED = "stochastic_constrained"


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
    check(
        not unknown,
        f"{prefix}.{unknown[0] if unknown else ''}",
        f"unknown field; valid fields: {', '.join(sorted(names))}",
    )
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


class StochasticConstrainedProblem(Protocol):
    """min_θ f(θ) = E[F(θ, ω)] s.t. c(θ) = 0 (family ``stochastic_constrained``).

    Problems: spring, butene, burgers, darcy (SQP momentum paper §5). The objective is a
    weighted sum of mean-squared terms over a finite set of *residual points*; a method
    draws a mini-batch of their indices (``batch_idx``), an int array of shape (B,). Every
    term whose points are residual points (or a subset of them, as labeled points that
    lie on the residual grid) is restricted to the batch; a term on points of its own
    (spring's data points) is evaluated in full. ``batch_idx = full_batch()`` gives the
    exact f(θ). A few (3–50) hard constraints c(θ) sit at fixed points.

    The data are generated once from the config (``data_seed``): the same data,
    constraint points (and, by the runner's choice of key, initial weights) for every
    method and seed; heavy references are cached as ``.npz`` under ``cache_dir``.
    """

    name: str
    family: str  # STOCHASTIC_CONSTRAINED
    cfg: Any  # the frozen dataclass config
    loss_terms: tuple[str, ...]  # keys of objective_terms besides "total", in order
    weights: dict[str, float]  # term -> weight in f (e.g. {"residual": 1e-4, "data": 1})

    @property
    def n_residual_points(self) -> int:
        """Size of the set mini-batches are drawn from (darcy: samples, not pixels)."""

    @property
    def batch_size(self) -> int:
        """round(batch_fraction · n_residual_points): the paper's mini-batch size."""

    def full_batch(self) -> jax.Array:
        """arange(n_residual_points): ``objective_terms`` then gives the exact f(θ)."""

    def sample_batch(self, key: jax.Array) -> jax.Array:
        """``batch_size`` distinct indices drawn uniformly (jittable)."""

    def init_params(self, key: jax.Array) -> Params: ...

    def make_data(
        self, seed: int | jax.Array | None = None, cache_dir: str | None = "results/cache"
    ) -> Data:
        """Data, constraint points, reference on held-out inputs (a NamedTuple of arrays).

        ``seed``: an int or a PRNG key, None for ``cfg.data_seed``. Generated data are
        cached as ``<cache_dir>/<name>-<hash of the generating config>.npz``; None: no cache.
        """

    def objective_terms(
        self, params: Params, data: Data, batch_idx: jax.Array
    ) -> dict[str, jax.Array]:
        """{term: mean-squared term for term in loss_terms} and "total" = Σ w_term · term."""

    def constraints(self, params: Params, data: Data) -> jax.Array:
        """c(θ), shape (m,): the hard constraints at the fixed constraint points."""

    def constraint_jacobian(self, params: Params, data: Data) -> Params:
        """∇c(θ)ᵀ in ``jax.jacrev(constraints)`` layout (leaves with a leading axis m)."""

    def evaluate(self, params: Params, data: Data) -> dict[str, jax.Array]:
        """Jittable; 0-d arrays: full-batch terms and total, max_abs_c, l1_c, test_mse, ..."""

    def predict(self, params: Params, inputs: jax.Array) -> jax.Array:
        """The model on raw inputs (for figures)."""


def check_number(value, field: str, *, positive=False, nonnegative=False) -> None:
    """A finite real number (bool excluded), optionally > 0 or >= 0."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if positive:
        check(ok and value > 0, field, f"must be a finite number > 0, got {value!r}")
    elif nonnegative:
        check(ok and value >= 0, field, f"must be a finite number >= 0, got {value!r}")
    else:
        check(ok, field, f"must be a finite number, got {value!r}")


def check_fraction(value, field: str) -> None:
    """A number in (0, 1]."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value <= 1
    check(ok, field, f"must be a number in (0, 1], got {value!r}")


def check_int_at_least(value, field: str, low: int) -> None:
    check(
        isinstance(value, int) and not isinstance(value, bool) and value >= low,
        field,
        f"must be an integer >= {low}, got {value!r}",
    )


def check_vector(value, field: str, length: int) -> tuple:
    """A list/tuple of ``length`` finite numbers; returned as a tuple of floats."""
    check(
        isinstance(value, (list, tuple)) and len(value) == length,
        field,
        f"must be a list of {length} numbers, got {value!r}",
    )
    for v in value:
        check_number(v, field)
    return tuple(float(v) for v in value)

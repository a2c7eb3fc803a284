"""Shared machinery of the ``stochastic_constrained`` problems (SQP momentum paper §5).

spring, butene, burgers and darcy subclass :class:`StochasticProblem` (the protocol is
:class:`problems.common.base.StochasticConstrainedProblem`). What they share:

* a config base (:class:`StochasticConfig`): ``data_seed`` (the data and constraint points
  are the same for every method and run seed), ``batch_fraction`` b (the paper's
  mini-batch fraction, a property of each problem) and ``dtype``;
* mini-batches of residual-point indices: :meth:`StochasticProblem.sample_batch` draws
  ``batch_size = round(b · n_residual_points)`` distinct indices, :meth:`full_batch` all;
* ``batch_terms``: what a mini-batch restricts. ``"residual"`` (the default on spring,
  butene and Burgers, as the authors' code does it) evaluates the residual terms (ODE/PDE
  residual, butene's mass balance) on the batch and every other term (data fit, Burgers'
  periodicity and initial condition) on all its points at every iteration. ``"all"`` [this
  project's earlier default; the authors' Darcy code] restricts every term to the batch;
* masked means (``batch_terms="all"``): a term whose points are a subset of the residual
  points (labeled points on the residual grid, boundary points of the grid) is the mean
  over those of its points that are in the batch, Σ mask·e² / max(Σ mask, 1); with the full
  batch it is the exact mean over all its points;
* ``init``: ``"torch"`` (default) draws the initial weights as PyTorch's defaults, which
  the authors' code keeps; ``"flax"`` [this project's earlier default] Flax's
  (:mod:`problems.common.networks`);
* the on-disk cache of generated data (:mod:`problems.common.cache`): :func:`cached_arrays`
  stores a dict of NumPy arrays as ``<cache_dir>/<problem>-<hash>.npz``, keyed by the
  generating config minus the fields that do not change the data, plus the seed (checksummed,
  atomic, never pickled: see that module).

All randomness of data generation uses ``numpy.random.default_rng(seed)``, which does not
depend on JAX's precision flag or device.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from problems.common.base import (
    STOCHASTIC_CONSTRAINED,
    check,
    check_choice,
    check_fraction,
    check_int_at_least,
)
from problems.common.cache import DEFAULT_CACHE_DIR, cached_arrays
from problems.common.networks import INITS

log = logging.getLogger(__name__)

BATCH_TERMS = ("residual", "all")


@dataclasses.dataclass(frozen=True)
class StochasticConfig:
    """Fields every stochastic-constrained problem has."""

    data_seed: int = 0  # data and constraint points: the same for every method and seed
    batch_fraction: float = 0.2  # b: a mini-batch is round(b · n_residual_points) points
    dtype: str = "float64"
    # which terms a mini-batch restricts: "residual" (the authors' code: the residual terms
    # on the batch, every other term on all its points at every iteration) or "all"
    batch_terms: str = "residual"
    init: str = "torch"  # initial weights: PyTorch's nn.Linear defaults (the authors') | flax

    def __post_init__(self):
        check_int_at_least(self.data_seed, "problem.data_seed", 0)
        check_fraction(self.batch_fraction, "problem.batch_fraction")
        check_choice(self.dtype, "problem.dtype", ["float32", "float64"])
        check_choice(self.batch_terms, "problem.batch_terms", list(BATCH_TERMS))
        check_choice(self.init, "problem.init", list(INITS))

    def _set(self, name, value):
        """Normalise a field in ``__post_init__`` (lists from YAML -> tuples)."""
        object.__setattr__(self, name, value)


def seed_material(seed) -> list[int]:
    """An int seed or a JAX PRNG key (typed or raw uint32) -> entropy for NumPy / the hash."""
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
        check(seed >= 0, "seed", f"must be >= 0, got {seed!r}")
        return [int(seed)]
    key = seed
    dt = getattr(key, "dtype", None)
    if dt is not None and jnp.issubdtype(dt, jax.dtypes.prng_key):
        key = jax.random.key_data(key)
    arr = np.asarray(key)
    check(
        arr.dtype == np.uint32 and arr.ndim == 1,
        "seed",
        f"must be an int or a PRNG key, got {seed!r}",
    )
    return [int(v) for v in arr]


def masked_mean(sq: jax.Array, mask: jax.Array) -> jax.Array:
    """Mean of ``sq`` over the points where ``mask`` (0 if there are none)."""
    mask = mask.astype(sq.dtype)
    return jnp.sum(mask * sq) / jnp.maximum(jnp.sum(mask), 1.0)


def random_subset(key: jax.Array, n: int, k: int) -> jax.Array:
    """k distinct indices of range(n), every k-subset equally likely (jittable).

    The indices of the k largest of n iid uniform 32-bit keys (``lax.top_k``, a partial
    sort). Same distribution as ``jax.random.choice(key, n, (k,), replace=False)``, whose
    full permutation of n = 64000 points cost 34 ms on 2 CPU cores, against 6 ms here (the
    chance of a tie among the keys, broken by index, is about n²/2³³: 0.5 for n = 64000).
    """
    return jax.lax.top_k(jax.random.bits(key, (n,), jnp.uint32), k)[1]


DEFAULT_EPOCHS = 200  # a problem's budget at a scale its ``epochs`` does not name


class StochasticProblem:
    """Base class of spring, butene, burgers and darcy.

    A subclass sets ``name``, ``Config``, ``loss_terms``, ``NOT_GENERATING`` (config
    fields that do not change the data, left out of the cache key) and implements
    ``_generate(rng) -> dict of NumPy arrays``, ``_to_data(arrays) -> Data``,
    ``n_residual_points``, ``init_params``, ``predict``, ``_terms(params, data, idx)``
    (the unweighted terms), ``constraint_at(params, data, i)`` with ``n_constraints_of(data)``
    (``constraints`` and its Jacobian follow) and ``_test_errors(params, data)``;
    ``prediction_view(params, data)`` is optional (the run's prediction figure).
    """

    name = "stochastic"
    family = STOCHASTIC_CONSTRAINED
    loss_terms: tuple[str, ...] = ()
    NOT_GENERATING: tuple[str, ...] = ()
    heavy = True  # cache the generated data on disk (spring: closed form, nothing to cache)
    # ``precision=auto`` runs this family in float32: the authors' code is PyTorch in its
    # default float32 (nothing in it calls .double()); float64 is this project's option
    default_precision = "float32"
    # The run's budget in epochs, (mini-batch, full batch), by scale name (``scale=smoke |
    # cpu | paper``): ``method.epochs`` / ``method.epochs_full_batch`` default to it
    # (conf/sqp_momentum_method.yaml; a scale this table does not name: DEFAULT_EPOCHS).
    epochs: ClassVar[dict[str, tuple[int, int]]] = {}
    # The paper's two fixed learning rates α (the ICLR-2025 predecessor's text, per problem;
    # the 2026 text lost them). The experiment sweeps (conf/experiment/sqp_momentum_*.yaml)
    # run both; a single run's ``method.lr`` defaults to the lower one
    # (conf/sqp_momentum_method.yaml), so it is one the paper ran on that problem.
    learning_rates: ClassVar[tuple[float, ...]] = ()

    def __init__(self, cfg):
        self.cfg = cfg
        self.dtype = jnp.dtype(cfg.dtype)

    # --- objective weights and mini-batches ---------------------------------------------
    @property
    def weights(self) -> dict[str, float]:
        return {t: float(getattr(self.cfg, f"{t}_weight")) for t in self.loss_terms}

    @property
    def n_residual_points(self) -> int:
        raise NotImplementedError

    @property
    def metric_labels(self) -> dict[str, str]:
        """How tables name this problem's metrics (recorded in metrics.json, so that
        ``runners.tables`` shows them): each loss term as ``"<term> loss"``."""
        return {t: f"{t.replace('_', ' ')} loss" for t in self.loss_terms}

    @property
    def batch_size(self) -> int:
        return max(1, round(self.cfg.batch_fraction * self.n_residual_points))

    def full_batch(self) -> jax.Array:
        return jnp.arange(self.n_residual_points)

    def sample_batch(self, key) -> jax.Array:
        return random_subset(key, self.n_residual_points, self.batch_size)

    # --- data ----------------------------------------------------------------------------
    def cache_key(self, seed) -> dict:
        fields = {f.name: getattr(self.cfg, f.name) for f in dataclasses.fields(self.cfg)}
        for f in (
            *self.NOT_GENERATING,
            "data_seed",
            "batch_fraction",
            "dtype",
            "batch_terms",
            "init",
        ):
            fields.pop(f, None)
        return {"seed": seed_material(seed), "config": fields}

    def make_data(self, seed=None, cache_dir=DEFAULT_CACHE_DIR):
        """The problem's data from ``seed`` (an int or a PRNG key; None: cfg.data_seed)."""
        seed = self.cfg.data_seed if seed is None else seed
        rng = lambda: np.random.default_rng(seed_material(seed))
        if self.heavy:
            arrays = cached_arrays(
                cache_dir, self.name, self.cache_key(seed), lambda: self._generate(rng())
            )
        else:
            arrays = self._generate(rng())
        return self._to_data(arrays)

    def _generate(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def _to_data(self, arrays: dict[str, np.ndarray]):
        raise NotImplementedError

    def _float(self, x):
        return jnp.asarray(x, self.dtype)

    # --- objective, constraints, metrics -------------------------------------------------
    def _terms(self, params, data, batch_idx) -> dict:
        raise NotImplementedError

    def objective_terms(self, params, data, batch_idx) -> dict:
        """The unweighted mean-squared terms on the batch and their weighted sum "total"."""
        terms = self._terms(params, data, batch_idx)
        terms["total"] = sum(w * terms[t] for t, w in self.weights.items())
        return terms

    def n_constraints_of(self, data) -> int:
        raise NotImplementedError

    def constraint_at(self, params, data, i) -> jax.Array:
        """c_i(θ), the i-th hard constraint (scalar; ``i`` may be traced)."""
        raise NotImplementedError

    def constraints(self, params, data) -> jax.Array:
        """c(θ) = (c_i(θ))_i, each constraint at its own point(s)."""
        return jax.vmap(self.constraint_at, (None, None, 0))(
            params, data, jnp.arange(self.n_constraints_of(data))
        )

    def constraints_and_jacobian(self, params, data):
        """(c(θ), ∇c(θ)ᵀ) in one pass: per-constraint value and gradient, batched.

        Each constraint depends on one point (one sample on darcy), so its gradient is one
        backward pass of that point: m point-sized passes, where reverse mode over the
        batched c (``jax.jacrev``) would cost m passes over all m points, plus a separate
        forward for c. The Jacobian is a pytree like ``params`` with a leading axis m.
        """
        return jax.vmap(jax.value_and_grad(self.constraint_at), (None, None, 0))(
            params, data, jnp.arange(self.n_constraints_of(data))
        )

    def constraint_jacobian(self, params, data):
        """∇c(θ)ᵀ: a pytree like ``params`` with a leading axis m, as ``jax.jacrev`` gives it
        (per-constraint gradients, :meth:`constraints_and_jacobian`)."""
        return self.constraints_and_jacobian(params, data)[1]

    def prediction_view(self, params, data):
        """What the run's ``prediction.png`` shows of the trained network: a
        :class:`problems.common.views.Curves` or ``Images`` (plain arrays), or ``None``
        for no figure (the default: a new problem trains and is recorded without one)."""
        return None

    def _test_errors(self, params, data) -> tuple[jax.Array, jax.Array]:
        """(prediction − reference, reference) on the held-out inputs."""
        raise NotImplementedError

    def evaluate(self, params, data) -> dict:
        """Full-batch terms and total, ‖c‖∞, ‖c‖₁, MSE and relative L2 error on held-out data."""
        out = self.objective_terms(params, data, self.full_batch())
        c = self.constraints(params, data)
        err, ref = self._test_errors(params, data)
        out.update(
            max_abs_c=jnp.max(jnp.abs(c)),
            l1_c=jnp.sum(jnp.abs(c)),
            test_mse=jnp.mean(err**2),
            test_rel_l2=jnp.linalg.norm(err.ravel()) / jnp.linalg.norm(ref.ravel()),
        )
        return out

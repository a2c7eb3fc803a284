"""Projected stochastic momentum SQP and its baselines (Wang, Piermarini, Zhu & Curtis;
ICLR-2025 predecessor, Algorithm 1 and §3).

min_θ f(θ) = E[F(θ, ω)] s.t. c(θ) = 0 with a few (m ≪ d) hard constraints. Every
constrained method takes one step of the same shape (the ``step`` of :func:`make_solver`):

1. a stochastic gradient g = ∇F(θ, batch) of the weighted objective on a mini-batch;
2. J = ∇c(θ) (m × d, reverse mode over the m constraints) and the projector
   P = I − Jᵀ(JJᵀ)⁻¹J onto Null(J) (never formed: one m × m solve per product);
3. a "gradient-like" vector p and a diagonal H = diag(h) ≻ 0, which is all that differs
   between the methods:

   ================  =====================================  =====================
   method            p                                      h
   ================  =====================================  =====================
   ``sqp_sgd``       g                                      1
   ``sqp_heavyball`` m = β m + (1 − β) P g                  1
   ``adam_con``      p̂ (Adam's bias-corrected mean of g)    sqrt(q̂ + μ), q̂ of g∘g
   ``sqp_adam``      m = β₁m + Pg (``defossez``; α = α_k)    sqrt(μ + r), r = β₂r + (Pg)²
   ``sqp_adam``      p̂ of P g  (``variant=iclr``)            sqrt(q̂ + μ), of (Pg)∘(Pg)
   ================  =====================================  =====================

4. the KKT system [H Jᵀ; J 0][s; λ] = −[p; c] solved at O(m²d + m³) cost
   (:func:`kkt_solve`), and θ ← θ + α s (``normal_step_size=unit``: RHS [α p; c], θ ← θ + s).

``adam_unc`` drops the hard constraints and takes Adam's step θ ← θ − α m̂/sqrt(v̂ + μ) on
the same weighted objective (``optax.scale_by_adam`` with ``eps_root = μ``, ``eps = 0``).

``sqp_adam`` runs by default (``variant=defossez``) the paper's Algorithm 3, SQP-Adam with
the modified bias correction of Défossez et al. (2022) that the paper adopts (its §3:
"Algorithm 3 involves a modified bias correction term"). The paper's text lost its
formulas, and we found no public code of the 2026 paper (the authors' public code,
github.com/chripiermarini/Physics_informed_machine_learning, is the ICLR-2025
predecessor's; "the authors' code" below means it), so the form is [reconstructed] from
Défossez et al.'s Adam:
m = β₁m + Pg, r = β₂r + (Pg)² (no (1 − β) factors), α_k = α(1 − β₁) sqrt((1 − β₂ᵏ)/(1 − β₂)),
H = diag(sqrt(μ + r)), RHS [m; c] and θ ← θ + α_k s. ``variant=iclr`` is the
predecessor's form as the authors' code implements it: Adam's bias-corrected moments of Pg,
RHS [p̂; c] and θ ← θ + α s.

How the step size enters the normal component −J⁺c of s: the surviving text of the 2026
paper does not say. Its Algorithm 1 is "a simplified version" of Berahas et al.'s (2021)
stochastic SQP, which the predecessor states in full as w ← w + α_k s with RHS [g; c], and
the authors' code (``stochasticsqp.py``) takes θ ← θ + α(u + v) for each of its methods
(Adam(con) and the projected Adam): the step size scales the normal component too, so c
shrinks to (1 − α)c per step on a linear constraint ((1 − α_k)c in Algorithm 3). That is
the default of every method here (``normal_step_size=scaled``). ``unit`` takes RHS
[α p; c] and θ ← θ + s: −J⁺c in full, c = 0 after one step on a linear constraint. Until
2026-12-06 this project read Algorithm 3 that way (RHS [α_k m; c], θ ← θ + s), as our
reading of the paper wrote it, marked there as reconstructed: no source says it; tables
label such runs "unit normal step (this project)". On butene (seed 0, lr 5e-4) the unit
step keeps Algorithm 3 on a plateau of the data loss that the scaled one leaves after
about 2,000 epochs (docs/papers/sqp_momentum.md).

Singular m × m systems: as the reference code does, i·I is added (i = 1, 2, …) until
the Cholesky factor is finite; the number of such regularisations is kept in the state
and logged.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax.flatten_util import ravel_pytree

from methods.driver import Method, tree_all_finite
from problems.common.base import check, check_choice, check_positive_int
from problems.stochastic.base import random_subset

KINDS = ("sqp_adam", "sqp_heavyball", "adam_con", "adam_unc", "sqp_sgd")
MAX_REGULARIZATION = 64  # give up adding i·I after this many tries (the step is then NaN)


# --- m × m linear algebra ------------------------------------------------------------------

UNROLLED_CHOLESKY_MAX = 16  # m up to this: Cholesky as plain array ops (see cholesky)


def cholesky(A):
    """Lower Cholesky factor L of an SPD A (m × m), NaN where A is not positive definite.

    For m ≤ :data:`UNROLLED_CHOLESKY_MAX` (spring's 3, butene's and Burgers' 10
    constraints) the column-by-column algorithm L[:, j] = (A[:, j] − L Lⱼᵀ)/L[j, j],
    L[j, j] = sqrt(A[j, j] − ‖Lⱼ‖²), unrolled into array ops that XLA fuses with the rest of
    the step. XLA:CPU's LAPACK call (``jnp.linalg.cholesky``) costs ~15 µs per call at
    m = 3, more than the whole rest of spring's m × m algebra; larger m (Darcy's 50) use it.
    """
    m = A.shape[0]
    if m > UNROLLED_CHOLESKY_MAX:
        return jnp.linalg.cholesky(A)
    rows = jnp.arange(m)
    L = jnp.zeros_like(A)
    for j in range(m):
        col = A[:, j] - L @ L[j]  # L[j] holds L[j, :j] (zeros beyond)
        d = jnp.sqrt(col[j])
        L = L.at[:, j].set(jnp.where(rows > j, col / d, jnp.where(rows == j, d, 0.0)))
    return L


def spd_factor(A):
    """Cholesky factor of a small SPD A; a singular A gets A + i·I, i = 1, 2, … (as the
    reference code does). Returns (factor, i), i = 0 when A itself was factorised."""
    eye = jnp.eye(A.shape[0], dtype=A.dtype)
    factor = lambda i: cholesky(A + i * eye)  # lower triangular L
    failed = lambda L: ~(jnp.all(jnp.isfinite(L)) & jnp.all(jnp.diagonal(L) > 0))

    def regularise(_):
        i = jax.lax.while_loop(
            lambda i: failed(factor(i)) & (i < MAX_REGULARIZATION),
            lambda i: i + 1,
            jnp.ones((), A.dtype),
        )
        return factor(i), i

    first = factor(jnp.zeros((), A.dtype))
    return jax.lax.cond(failed(first), regularise, lambda _: (first, jnp.zeros((), A.dtype)), None)


def solve_spd(A, b):
    """x = A⁻¹b by :func:`spd_factor`; returns (x, regularisations)."""
    L, reg = spd_factor(A)
    return jax.scipy.linalg.cho_solve((L, True), b), reg


def normal_step(J, c, gram=None):
    """v = −Jᵀ(JJᵀ)⁻¹c: the least-norm solution of Jv = −c. Returns (v, regularisations).
    ``gram``: ``spd_factor(J @ J.T)`` when the caller has it already."""
    L, reg = spd_factor(J @ J.T) if gram is None else gram
    return -J.T @ jax.scipy.linalg.cho_solve((L, True), c), reg


def project(J, g, gram=None):
    """P g = g − Jᵀ(JJᵀ)⁻¹J g: the component of g in Null(J)."""
    L, _ = spd_factor(J @ J.T) if gram is None else gram
    return g - J.T @ jax.scipy.linalg.cho_solve((L, True), J @ g)


def gram_and_projection(J, g):
    """(spd_factor(JJᵀ), P g): the factor is the projection's, reusable as J̃Jᵀ's when
    H = I."""
    gram = spd_factor(J @ J.T)
    return gram, project(J, g, gram)


def kkt_solve(J, h, p, c, gram=None):
    """Solve [H Jᵀ; J 0][s; λ] = −[p; c] for H = diag(h) ≻ 0 at O(m²d + m³) cost.

    With p̃ = H⁻¹p and J̃ = J H⁻¹: (J̃ Jᵀ) r = J p̃ − c, s = −p̃ + J̃ᵀ r, λ = −r. Then
    J s = −c and H s + Jᵀλ = −p. (The split of the spec, s = u + v with the normal step
    v = −Jᵀ(JJᵀ)⁻¹c, gives the same s: v cancels, since J v = −c; so JJᵀ is factorised
    only where a projection needs it.) ``gram``: ``spd_factor(J @ J.T)``, used as J̃Jᵀ's
    factor when h ≡ 1 (the caller says so by passing it). The m × m matrices are formed as
    products of J with its own transpose, so they are exactly symmetric and an exactly
    repeated constraint makes the Cholesky factor fail (and regularise) as it should.
    Returns (s, λ, regularisations).
    """
    h_inv = 1.0 / h
    Jt = J * h_inv  # J̃ = J H⁻¹
    L, reg = spd_factor(Jt @ J.T) if gram is None else gram
    r = jax.scipy.linalg.cho_solve((L, True), Jt @ p - c)
    return -p * h_inv + Jt.T @ r, -r, reg


# --- configuration -------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SqpMomentumConfig:
    """Constants of the stochastic methods (spec sqp_momentum.md; [confirmed] unless noted)."""

    # α, fixed learning rate (the predecessor's pairs per problem, which the 2026 paper's text
    # lost: experiment sqp_momentum_<problem>); a Hydra run's default is the lower of its
    # problem's pair (``learning_rates``, conf/sqp_momentum_method.yaml), this one otherwise
    lr: float = 1e-4
    batch_fraction: Any = None  # b: fraction of residual points per iteration (None: problem's)
    full_batch: bool = False  # True: every iteration uses all residual points (1 iteration/epoch)
    beta1: float = 0.9  # β₁ (Adam first moment)
    beta2: float = 0.999  # β₂ (Adam second moment)
    eps_root: float = 1e-7  # μ, inside the square root: H = diag(sqrt(q̂ + μ))
    momentum: float = 0.9  # β of sqp_heavyball [reconstructed]
    # sqp_adam: defossez (the paper's Algorithm 3, reconstructed) | iclr (the ICLR-2025
    # predecessor's)
    variant: str = "defossez"
    # how the step size enters the normal component −J⁺c of s: scaled (θ ← θ + α s with
    # RHS [p; c], α_k in the defossez form: Algorithm 1's step, the authors' code) | unit
    # (RHS [α p; c], θ ← θ + s: a unit Newton step on the linearised constraints; this
    # project's reading of Algorithm 3 until 2026-12-06)
    normal_step_size: str = "scaled"
    epochs: int = 1000  # budget in epochs (1 epoch = int(1/b) iterations) ...
    epochs_full_batch: int = 1000  # ... and with full_batch (1 epoch = 1 iteration)

    def __post_init__(self):
        check(
            isinstance(self.lr, (int, float)) and 0 < self.lr < math.inf,
            "method.lr",
            f"must be a finite number > 0, got {self.lr!r}",
        )
        b = self.batch_fraction
        check(
            b is None or (isinstance(b, (int, float)) and 0 < b <= 1),
            "method.batch_fraction",
            f"must be null or in (0, 1], got {b!r}",
        )
        check(
            isinstance(self.full_batch, bool),
            "method.full_batch",
            f"must be true or false, got {self.full_batch!r}",
        )
        for f in ("beta1", "beta2", "momentum"):
            v = getattr(self, f)
            check(
                isinstance(v, (int, float)) and 0 <= v < 1,
                f"method.{f}",
                f"must be in [0, 1), got {v!r}",
            )
        check(
            isinstance(self.eps_root, (int, float)) and self.eps_root > 0,
            "method.eps_root",
            f"must be a number > 0, got {self.eps_root!r}",
        )
        check_choice(self.variant, "method.variant", ["defossez", "iclr"])
        check_choice(self.normal_step_size, "method.normal_step_size", ["scaled", "unit"])
        check_positive_int(self.epochs, "method.epochs")
        check_positive_int(self.epochs_full_batch, "method.epochs_full_batch")


def iterations_per_epoch(cfg: SqpMomentumConfig, batch_fraction: float) -> int:
    """1 (full batch) or int(1/b) iterations per epoch, as the papers count."""
    return 1 if cfg.full_batch else max(1, int(1.0 / batch_fraction))


# --- the step --------------------------------------------------------------------------------


class SqpMomentumState(NamedTuple):
    theta: jax.Array  # θ_k (flat)
    m: jax.Array  # first moment / momentum buffer (zeros for sqp_sgd)
    v: jax.Array  # second moment (zeros where unused)
    count: jax.Array  # k: iterations taken
    key: jax.Array  # PRNG key of the mini-batch stream
    step_norm: jax.Array  # ‖θ_{k+1} − θ_k‖
    regularizations: jax.Array  # i·I added in the last step's m × m solves
    total_regularizations: jax.Array  # ... over the whole run


def make_solver(
    kind: str,
    f: Callable,
    c: Callable,
    cfg: SqpMomentumConfig,
    n_points: int,
    batch_size: int,
    c_and_jac: Callable | None = None,
):
    """init/step for flat f(θ, data, idx) (the weighted objective on residual points idx)
    and c(θ, data) -> (m,); ``c_and_jac(θ, data) -> (c, J)``, J (m, d), defaults to c and
    reverse mode over c. ``batch_size == n_points`` means full batch."""
    check_choice(kind, "method.name", KINDS)
    if c_and_jac is None:
        c_and_jac = lambda th, data: (c(th, data), jax.jacrev(c)(th, data))
    full = batch_size >= n_points
    b1, b2, mu = cfg.beta1, cfg.beta2, cfg.eps_root
    defossez = kind == "sqp_adam" and cfg.variant == "defossez"
    unit_normal = cfg.normal_step_size == "unit"

    def batch(key, count):
        if full:
            return jnp.arange(n_points)
        k = jax.random.fold_in(key, count)
        return random_subset(k, n_points, batch_size)

    def init(theta, key) -> SqpMomentumState:
        z = jnp.zeros_like(theta)
        zero = jnp.zeros((), theta.dtype)
        return SqpMomentumState(theta, z, z, jnp.int32(0), key, zero, zero, zero)

    def step(s: SqpMomentumState, data) -> SqpMomentumState:
        idx = batch(s.key, s.count)
        g = jax.grad(f)(s.theta, data, idx)
        count = s.count + 1
        if kind == "adam_unc":
            m = optax.tree.update_moment(g, s.m, b1, 1)
            v = optax.tree.update_moment_per_elem_norm(g, s.v, b2, 2)
            m_hat = optax.tree.bias_correction(m, b1, count)
            v_hat = optax.tree.bias_correction(v, b2, count)
            d = -cfg.lr * m_hat / jnp.sqrt(v_hat + mu)
            return s._replace(
                theta=s.theta + d,
                m=m,
                v=v,
                count=count,
                step_norm=jnp.linalg.norm(d),
                regularizations=jnp.zeros_like(mu),
            )
        cv, J = c_and_jac(s.theta, data)
        m, v, lr = s.m, s.v, cfg.lr
        reg_p = jnp.zeros((), g.dtype)  # regularisations of a projection's JJᵀ (not reused)
        if kind == "sqp_sgd":  # H = I: J̃Jᵀ = JJᵀ
            p, h, gram = g, jnp.ones_like(g), spd_factor(J @ J.T)
        elif kind == "sqp_heavyball":
            gram, gp = gram_and_projection(J, g)
            m = cfg.momentum * s.m + (1 - cfg.momentum) * gp
            p, h = m, jnp.ones_like(g)
        elif defossez:
            (_, reg_p), gp = gram_and_projection(J, g)
            m = b1 * s.m + gp
            v = b2 * s.v + gp * gp
            alpha_k = cfg.lr * (1 - b1) * jnp.sqrt((1 - b2**count) / (1 - b2))
            p, h, lr, gram = m, jnp.sqrt(mu + v), alpha_k, None
        else:  # adam_con (raw g) or sqp_adam iclr (projected g): Adam moments, H = diag(sqrt(q̂+μ))
            gg = g
            if kind == "sqp_adam":
                (_, reg_p), gg = gram_and_projection(J, g)
            m = optax.tree.update_moment(gg, s.m, b1, 1)
            v = optax.tree.update_moment_per_elem_norm(gg, s.v, b2, 2)
            p = optax.tree.bias_correction(m, b1, count)
            h, gram = jnp.sqrt(optax.tree.bias_correction(v, b2, count) + mu), None
        if unit_normal:  # RHS [α p; c], θ ← θ + s
            d, _, reg = kkt_solve(J, h, lr * p, cv, gram)
        else:  # RHS [p; c], θ ← θ + α s
            step_dir, _, reg = kkt_solve(J, h, p, cv, gram)
            d = lr * step_dir
        reg = reg + reg_p
        return SqpMomentumState(
            s.theta + d, m, v, count, s.key, jnp.linalg.norm(d), reg, s.total_regularizations + reg
        )

    return init, step


def sqp_momentum_method(kind: str, problem, cfg: SqpMomentumConfig, dtype, key) -> Method:
    """One of :data:`KINDS` on a ``stochastic_constrained`` problem (θ: flat weights).

    ``key`` (from the run's seed) drives only the mini-batch stream: the data, constraint
    points and initial weights come from the problem's ``data_seed`` and are the same for
    every method and seed, as in the papers.
    """
    params0 = problem.init_params(jax.random.PRNGKey(problem.cfg.data_seed))
    _, unravel = ravel_pytree(params0)
    n_points = problem.n_residual_points
    b = problem.cfg.batch_fraction if cfg.batch_fraction is None else cfg.batch_fraction
    batch_size = (
        n_points
        if cfg.full_batch
        else problem.batch_size
        if cfg.batch_fraction is None
        else max(1, round(b * n_points))
    )
    per_epoch = iterations_per_epoch(cfg, b)
    epochs = cfg.epochs_full_batch if cfg.full_batch else cfg.epochs
    total_steps = min(epochs * per_epoch, 2**31 - 1)  # the step counter is int32 without x64
    f = lambda th, data, idx: problem.objective_terms(unravel(th), data, idx)["total"]
    c = lambda th, data: problem.constraints(unravel(th), data)

    def c_and_jac(th, data):  # c and ∇c in one pass (per constraint), J flattened like θ
        cv, jac = problem.constraints_and_jacobian(unravel(th), data)
        return cv, jax.vmap(lambda row: ravel_pytree(row)[0])(jac)

    init, step = make_solver(kind, f, c, cfg, n_points, batch_size, c_and_jac)
    full = problem.full_batch()

    def log(s: SqpMomentumState, data) -> dict:
        params = unravel(s.theta)
        terms = problem.objective_terms(params, data, full)
        cv = problem.constraints(params, data)
        return {
            **{f"loss_{k}": v for k, v in terms.items()},
            "max_abs_c": jnp.max(jnp.abs(cv)),
            "l1_c": jnp.sum(jnp.abs(cv)),
            "epoch": s.count / per_epoch,
            "step_norm": s.step_norm,
            "regularizations": s.regularizations,
            "total_regularizations": s.total_regularizations,
        }

    return Method(
        name=kind,
        init=lambda params, data: init(ravel_pytree(params)[0], key),
        step=step,
        done=lambda s: s.count >= total_steps,
        finite=lambda s: tree_all_finite((s.theta, s.m, s.v)),
        converged=lambda s: jnp.array(False),
        log=log,
        params=lambda s: unravel(s.theta),
        iterations=lambda s: s.count,
        progress=lambda s: s.count // per_epoch,
        progress_total=epochs,
        progress_unit="epoch",
    )


__all__ = [
    "KINDS",
    "cholesky",
    "SqpMomentumConfig",
    "SqpMomentumState",
    "gram_and_projection",
    "iterations_per_epoch",
    "kkt_solve",
    "make_solver",
    "normal_step",
    "project",
    "solve_spd",
    "spd_factor",
    "sqp_momentum_method",
]

"""2-D Darcy flow with a Fourier neural operator (SQP momentum paper §5.4).

−∇·(a(x)∇u(x)) = f(x) on (0, 1)², u = 0 on the boundary, f ≡ 1. The model maps the
coefficient field a to the solution u on an s × s grid (s = 16).

* Grid: nodes x_i = i h, i = 0..s−1, h = 1/(s − 1), boundary nodes included (as the
  authors' neuraloperator loader, grid_boundaries [0, s/(s−1)]). Arrays are indexed
  [i, j] ↔ (x_i, y_j).
* Coefficients [reconstructed; the paper used neuraloperator's bundled 16 × 16 set]:
  a = ψ(g), g ~ N(0, (−Δ + τ²I)^{−α}) with Neumann BCs, α = 2, τ = 3, ψ(g) = 12 if g ≥ 0
  else 3 (Li et al.'s FNO Darcy data). g is drawn as a cosine series
  Σ_{k1,k2<K} ξ_k (π²|k|² + τ²)^{−α/2} cos(πk1x) cos(πk2y), ξ_k ~ N(0, 1), the constant
  mode removed, K = 32 modes per axis evaluated at the nodes, so the same ξ gives the same
  field at any resolution (the overall scale is irrelevant to the threshold at 0).
* Reference: the second-order finite-volume/finite-difference 5-point scheme
  −[a_{i+½,j}(u_{i+1,j} − u_{ij}) − a_{i−½,j}(u_{ij} − u_{i−1,j})
     + a_{i,j+½}(u_{i,j+1} − u_{ij}) − a_{i,j−½}(u_{ij} − u_{i,j−1})] / h² = f_{ij}
  at interior nodes, face coefficients the harmonic mean of the two nodal values (flux
  continuity across the 12/3 jumps; second order for smooth a), solved with scipy.sparse.
* "100 similar samples" [reconstructed rule]: draw a pool of 1000 fields; take the medoid
  (the pool field with the least total Hamming distance, i.e. number of pixels where the
  12/3 pattern differs, to all others), then the ``n_samples + n_test`` pool fields nearest
  to it (medoid included), and split them at random into ``n_samples`` training and
  ``n_test`` held-out samples. Only these are solved.
* Inputs: three channels (a encoded as (a − 7.5)/4.5 ∈ {−1, 1}, x_i, y_j) → FNO
  (:mod:`problems.stochastic.fno`: 16 × 16 modes, 4 hidden channels, 4 Fourier layers) → u, its
  pointwise layers initialised as PyTorch does (``init="torch"``, the authors' code).
  The lifting is pointwise and a pixel's input is one of two, so it is computed once for
  a ≡ a_low and a ≡ a_high and every field takes its pixels from that table: the same
  numbers as lifting each field, at a fraction of the cost (the lifting's 256-channel GELU
  layer was most of a forward pass; a step of sqp_adam on this CPU went from 72 to 36 ms).
* f(θ) = 1e-2 × PDE-residual MSE + 1e-2 × boundary MSE + 1 × data MSE. The PDE residual
  is the same 5-point operator applied to the *predicted* field at the interior nodes (an
  honest spatial derivative; the reference satisfies it to round-off), the boundary term
  the mean of u_θ² over the 4(s − 1) boundary nodes, the data term the MSE over all nodes
  of the labeled samples. Mini-batches are 20% of the *samples* (``n_residual_points`` =
  n_samples). Unlike the other three problems, the authors' Darcy code restricts every
  term to the batch (``batch_terms="all"``, the default here).
* Which samples carry data (``data_samples``). The paper: "the data-fitting term involved
  only 20% of the points chosen at random with equal probability" (it does not say
  whether the 20% are drawn once or at every iteration). The authors' Darcy code fits the
  first ``int(0.2·B)`` samples of each batch of B (its batches are random permutations):
  ``data_samples="batch"``, the default. So a mini-batch of 20 fits 4 samples, drawn
  afresh at every iteration from all the training samples, and the full batch fits a
  fixed 20 (here the first 20 of the randomly ordered training samples).
  ``data_samples="fixed"`` [this project's earlier default] labels a fixed random 20% of
  the samples once; the data term is the masked mean over the labeled samples in the
  batch (between 0 and 20 of them in a batch of 20; their mean is 4), so a mini-batch run
  only ever fits those 20 samples. ``batch_terms="residual"`` [this project] keeps the
  boundary and data terms on all samples at every iteration, so it needs
  ``data_samples="fixed"``.
* Hard constraints (50): the PDE residual at one random interior node of each of 50
  distinct random samples, drawn once. The paper: "chosen uniformly at random over all
  initial conditions and spatial points"; the authors' code draws 50 distinct samples and
  50 distinct interior nodes (the first 50 of a random permutation of each) and pairs them:
  ``constraint_nodes="distinct"``, the default. ``constraint_nodes="independent"`` [this
  project's earlier default] draws each sample's node on its own, so two samples can share
  a node position.
* Held-out: the ``n_test`` similar samples not trained on.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse
import scipy.sparse.linalg

from problems.common.base import (
    check,
    check_choice,
    check_fraction,
    check_int_at_least,
    check_number,
    check_positive_int,
)
from problems.common.views import Images
from problems.stochastic.base import (
    StochasticConfig,
    StochasticProblem,
    masked_mean,
)
from problems.stochastic.fno import FNO, lifting_pullbacks, take_levels

# which samples the data term fits (module docstring): the authors' code | this project's earlier
DATA_SAMPLES = ("batch", "fixed")
# the constraints' interior nodes: the authors' code (no repeats) | this project's earlier
CONSTRAINT_NODES = ("distinct", "independent")


def labeled_in_batch(batch_size: int, data_fraction: float) -> int:
    """How many samples of a batch carry data with ``data_samples="batch"``: the authors'
    ``int(B · fraction)``, at least 1."""
    return max(1, int(batch_size * data_fraction))


def harmonic(p, q):
    """Harmonic mean 2pq/(p + q) of two positive coefficients (face value)."""
    return 2.0 * p * q / (p + q)


def darcy_residual(u, a, f, h):
    """−∇_h·(a∇_h u) − f at the interior nodes: (..., s, s) -> (..., s − 2, s − 2).

    The 5-point flux form of the module docstring; ``f`` broadcasts against the interior.
    """
    ax = harmonic(a[..., 1:, :], a[..., :-1, :])  # a_{i+½, j}, (s−1, s)
    ay = harmonic(a[..., :, 1:], a[..., :, :-1])  # a_{i, j+½}, (s, s−1)
    flux_x = ax * (u[..., 1:, :] - u[..., :-1, :])
    flux_y = ay * (u[..., :, 1:] - u[..., :, :-1])
    div = (
        flux_x[..., 1:, 1:-1]
        - flux_x[..., :-1, 1:-1]
        + flux_y[..., 1:-1, 1:]
        - flux_y[..., 1:-1, :-1]
    )
    return -div / h**2 - f


def solve_darcy(a: np.ndarray, f: np.ndarray) -> np.ndarray:
    """u with u = 0 on the boundary and ``darcy_residual(u, a, f) = 0`` inside.

    a: (s, s) nodal coefficients, f: (s − 2, s − 2) interior right-hand side; h = 1/(s−1).
    Assembles the (s−2)² × (s−2)² sparse matrix and solves it directly (SuperLU).
    """
    s = a.shape[0]
    n, h2 = s - 2, (1.0 / (s - 1)) ** 2
    ax = harmonic(a[1:, :], a[:-1, :])  # face (i+½, j) at ax[i, j]
    ay = harmonic(a[:, 1:], a[:, :-1])
    i, j = np.meshgrid(np.arange(1, s - 1), np.arange(1, s - 1), indexing="ij")
    k = (i - 1) * n + (j - 1)  # unknown index of interior node (i, j)
    east, west = ax[i, j], ax[i - 1, j]  # faces (i+½, j), (i−½, j)
    north, south = ay[i, j], ay[i, j - 1]
    rows, cols, vals = [k.ravel()], [k.ravel()], [((east + west + north + south) / h2).ravel()]
    for coef, di, dj in ((east, 1, 0), (west, -1, 0), (north, 0, 1), (south, 0, -1)):
        inside = (i + di >= 1) & (i + di <= s - 2) & (j + dj >= 1) & (j + dj <= s - 2)
        rows.append(k[inside])
        cols.append((k + di * n + dj)[inside])
        vals.append(-coef[inside] / h2)
    mat = scipy.sparse.csc_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), (n * n,) * 2
    )
    u = np.zeros_like(a, dtype=float)
    u[1:-1, 1:-1] = scipy.sparse.linalg.spsolve(mat, np.broadcast_to(f, (n, n)).ravel()).reshape(
        n, n
    )
    return u


def grf_fields(rng, n: int, s: int, modes: int, alpha: float, tau: float) -> np.ndarray:
    """n Gaussian random fields N(0, (−Δ + τ²)^{−α}) (Neumann, up to scale) at s × s nodes."""
    k = np.arange(modes)
    sqrt_eig = (np.pi**2 * (k[:, None] ** 2 + k[None, :] ** 2) + tau**2) ** (-alpha / 2)
    sqrt_eig[0, 0] = 0.0  # zero mean (Li et al.)
    xi = rng.standard_normal((n, modes, modes)) * sqrt_eig
    basis = np.cos(np.pi * np.linspace(0.0, 1.0, s)[:, None] * k[None, :])  # (s, K)
    return np.einsum("ik,nkl,jl->nij", basis, xi, basis)


def similar_subset(binary: np.ndarray, count: int) -> np.ndarray:
    """Indices of the ``count`` fields nearest (Hamming) to the medoid, medoid first."""
    b = binary.reshape(binary.shape[0], -1).astype(np.float64)
    dist = b @ (1.0 - b).T + (1.0 - b) @ b.T  # pixels where fields p and q differ
    medoid = int(np.argmin(dist.sum(axis=1)))
    return np.argsort(dist[medoid], kind="stable")[:count]


@dataclasses.dataclass(frozen=True)
class DarcyConfig(StochasticConfig):
    n_grid: int = 16  # s: nodes per side, boundary included (h = 1/(s − 1))
    a_high: float = 12.0  # a = ψ(g) where the GRF g ≥ 0
    a_low: float = 3.0  # ψ(g) for g < 0
    grf_alpha: float = 2.0  # α of g ~ N(0, (−Δ + τ²)^{−α}) [reconstructed: Li et al.'s generator]
    grf_tau: float = 3.0  # τ
    grf_modes: int = 32  # K cosine modes per axis
    forcing: float = 1.0  # f
    n_pool: int = 1000  # fields drawn before choosing the similar ones
    n_samples: int = 100  # training samples: nearest to the pool medoid [reconstructed rule]
    n_test: int = 10  # held-out samples (also similar)
    data_fraction: float = 0.2  # labeled fraction of the training samples
    # hard constraints: PDE residual at one interior node of this many samples
    n_constraints: int = 50
    # their nodes: distinct (the authors' code) | independent (this project's earlier
    # default: each drawn on its own, repeats possible)
    constraint_nodes: str = "distinct"
    residual_weight: float = 1e-2  # weight of the PDE-residual MSE (interior nodes)
    boundary_weight: float = 1e-2  # weight of the boundary MSE
    data_weight: float = 1.0  # weight of the data MSE
    batch_fraction: float = 0.2  # b: mini-batch of 20% of the samples
    # all: the authors' Darcy code batches every term | residual: boundary and data on all
    # samples
    batch_terms: str = "all"
    # which samples carry data: batch (the authors' code: the first 20% of each batch) |
    # fixed (this project's earlier default: a fixed random 20% of the samples)
    data_samples: str = "batch"
    modes: tuple = (16, 16)  # FNO Fourier modes kept (clipped to the grid)
    hidden_channels: int = 4
    n_layers: int = 4  # Fourier layers
    lifting_channels: int = 256  # neuraloperator 0.3 default
    projection_channels: int = 256  # neuraloperator 0.3 default

    def __post_init__(self):
        super().__post_init__()
        check_int_at_least(self.n_grid, "problem.n_grid", 3)
        check_number(self.a_high, "problem.a_high", positive=True)
        check_number(self.a_low, "problem.a_low", positive=True)
        check(
            self.a_high != self.a_low,
            "problem.a_low",
            f"must differ from problem.a_high = {self.a_high}",
        )
        check_number(self.grf_alpha, "problem.grf_alpha", positive=True)
        check_number(self.grf_tau, "problem.grf_tau", positive=True)
        check_int_at_least(self.grf_modes, "problem.grf_modes", 2)
        check_number(self.forcing, "problem.forcing")
        for f in ("n_pool", "n_samples", "n_test", "n_constraints", "hidden_channels", "n_layers"):
            check_positive_int(getattr(self, f), f"problem.{f}")
        check(
            self.n_samples + self.n_test <= self.n_pool,
            "problem.n_pool",
            f"must be >= n_samples + n_test = {self.n_samples + self.n_test}, got {self.n_pool}",
        )
        check(
            self.n_constraints <= self.n_samples,
            "problem.n_constraints",
            f"one constraint per sample: at most n_samples = {self.n_samples}, "
            f"got {self.n_constraints}",
        )
        check_choice(self.constraint_nodes, "problem.constraint_nodes", list(CONSTRAINT_NODES))
        check(
            self.constraint_nodes == "independent" or self.n_constraints <= (self.n_grid - 2) ** 2,
            "problem.n_constraints",
            f"distinct constraint nodes: at most (n_grid − 2)² = {(self.n_grid - 2) ** 2} "
            f"interior nodes, got {self.n_constraints} (or set "
            "problem.constraint_nodes=independent)",
        )
        check_fraction(self.data_fraction, "problem.data_fraction")
        check_choice(self.data_samples, "problem.data_samples", list(DATA_SAMPLES))
        check(
            self.data_samples == "fixed" or self.batch_terms == "all",
            "problem.data_samples",
            "batch draws the labeled samples from each mini-batch, which needs "
            "problem.batch_terms=all; with batch_terms=residual (data on every labeled sample "
            "at every iteration) set problem.data_samples=fixed",
        )
        for f in ("residual_weight", "boundary_weight", "data_weight"):
            check_number(getattr(self, f), f"problem.{f}", nonnegative=True)
        m = self.modes
        check(
            isinstance(m, (list, tuple)) and len(m) == 2,
            "problem.modes",
            f"must be a pair of positive integers, got {m!r}",
        )
        for v in m:
            check_positive_int(v, "problem.modes")
        self._set("modes", tuple(m))
        check_int_at_least(self.lifting_channels, "problem.lifting_channels", 0)
        check_int_at_least(self.projection_channels, "problem.projection_channels", 0)


class DarcyData(NamedTuple):
    a: jax.Array  # (n_samples, s, s) coefficient fields
    u_ref: jax.Array  # (n_samples, s, s) reference solutions
    data_mask: jax.Array  # (n_samples,) bool: labeled samples
    constraint_sample: jax.Array  # (m,) int, distinct samples
    constraint_node: jax.Array  # (m, 2) int, interior node (i, j) of each (distinct by default)
    test_a: jax.Array  # (n_test, s, s)
    test_u_ref: jax.Array  # (n_test, s, s)


class Darcy(StochasticProblem):
    name = "darcy"
    # paper 1000 / 4000; cpu 5% of it (0.48 s per iteration on one core, float32, 5 vmapped
    # seeds: ~2 min per run)
    epochs = {"smoke": (5, 25), "cpu": (50, 200), "paper": (1000, 4000)}
    learning_rates = (5e-3, 5e-4)  # the predecessor's pair (its §4)
    Config = DarcyConfig
    loss_terms = ("residual", "boundary", "data")
    NOT_GENERATING = (
        "residual_weight",
        "boundary_weight",
        "data_weight",
        "modes",
        "hidden_channels",
        "n_layers",
        "lifting_channels",
        "projection_channels",
        "data_samples",
    )

    def __init__(self, cfg: DarcyConfig):
        super().__init__(cfg)
        self.net = FNO(
            cfg.modes,
            cfg.hidden_channels,
            cfg.n_layers,
            cfg.lifting_channels,
            cfg.projection_channels,
            1,
            self.dtype,
            cfg.init,
        )
        s = cfg.n_grid
        self.h = 1.0 / (s - 1)
        ring = np.ones((s, s), bool)
        ring[1:-1, 1:-1] = False
        self.boundary = jnp.asarray(ring)  # (s, s): the 4(s − 1) boundary nodes

    @property
    def n_residual_points(self) -> int:
        return self.cfg.n_samples

    # --- network ---------------------------------------------------------------------------
    def init_params(self, key):
        s = self.cfg.n_grid
        return jax.jit(self.net.init)(key, jnp.zeros((1, s, s, 3), self.dtype))

    def _channels(self, a):
        """(..., s, s) coefficients -> (..., s, s, 3) inputs: encoded a, x_i, y_j."""
        c = self.cfg
        mid, half = 0.5 * (c.a_high + c.a_low), 0.5 * (c.a_high - c.a_low)
        s = a.shape[-1]
        grid = jnp.linspace(0.0, 1.0, s, dtype=self.dtype)
        xx, yy = jnp.meshgrid(grid, grid, indexing="ij")
        pos = jnp.broadcast_to(jnp.stack([xx, yy], -1), (*a.shape, 2))
        return jnp.concatenate([((a - mid) / half)[..., None], pos], axis=-1)

    def _lifted_levels(self, params, s):
        """The FNO's lifting of a ≡ a_low and a ≡ a_high, (2, s, s, hidden): every pixel of
        a coefficient field is one of the two (checked when the data are built), so this
        table lifts any batch (``FNO(stage=...)``, :func:`problems.stochastic.fno.take_levels`; the
        same numbers as lifting each field)."""
        return self.net.apply(params, self._level_inputs(s), stage="lift")

    def _body(self, params, lifted_levels, a, at=None):
        """The FNO after its lifting, on fields a (..., s, s) lifted from the table."""
        v = take_levels(lifted_levels, (a == self.cfg.a_high).astype(jnp.int32))
        return self.net.apply(params, v, at=at, stage="body")

    def predict(self, params, inputs):
        """u_θ for coefficient fields ``inputs`` (..., s, s) -> (..., s, s), each pixel
        a_low or a_high (the problem's fields; ``net.apply(params, _channels(a))`` takes
        any field)."""
        return self._body(params, self._lifted_levels(params, inputs.shape[-1]), inputs)[..., 0]

    def prediction_view(self, params, data: DarcyData) -> Images:
        """The first held-out coefficient field a, u* on it, u_θ and their gap."""
        a = data.test_a[:1]
        pred = np.asarray(self.predict(params, a))[0]
        ref = np.asarray(data.test_u_ref[0])
        return Images(
            (np.asarray(a[0]), ref, pred, np.abs(pred - ref)),
            ("coefficient a", "reference u*", "u_θ", "|u_θ − u*|"),
            "x",
            "y",
        )

    def residual(self, u, a):
        """PDE residual of fields u on their coefficients a: (..., s−2, s−2)."""
        return darcy_residual(u, a, self.cfg.forcing, 1.0 / (a.shape[-1] - 1))

    # --- data ------------------------------------------------------------------------------
    def _generate(self, rng):
        c = self.cfg
        g = grf_fields(rng, c.n_pool, c.n_grid, c.grf_modes, c.grf_alpha, c.grf_tau)
        chosen = similar_subset(g >= 0, c.n_samples + c.n_test)
        chosen = chosen[rng.permutation(chosen.size)]
        a = np.where(g[chosen] >= 0, c.a_high, c.a_low)
        f = np.full((c.n_grid - 2,) * 2, float(c.forcing))
        u = np.stack([solve_darcy(ai, f) for ai in a])
        mask = np.zeros(c.n_samples, bool)
        mask[
            rng.choice(c.n_samples, max(1, round(c.data_fraction * c.n_samples)), replace=False)
        ] = True
        con = rng.choice(c.n_samples, c.n_constraints, replace=False)
        if c.constraint_nodes == "distinct":
            flat = rng.choice((c.n_grid - 2) ** 2, c.n_constraints, replace=False)
            node = np.stack(np.divmod(flat, c.n_grid - 2), axis=1) + 1
        else:
            node = rng.integers(1, c.n_grid - 1, (c.n_constraints, 2))
        return {
            "a": a[: c.n_samples],
            "u_ref": u[: c.n_samples],
            "data_mask": mask,
            "constraint_sample": con.astype(np.int32),
            "constraint_node": node.astype(np.int32),
            "test_a": a[c.n_samples :],
            "test_u_ref": u[c.n_samples :],
            "pool_index": chosen.astype(np.int32),
        }

    def _to_data(self, arrays) -> DarcyData:
        c = self.cfg
        for k in ("a", "test_a"):  # the lifting table (``_lifted_levels``) has two levels
            check(
                bool(np.isin(arrays[k], [c.a_low, c.a_high]).all()),
                "problem.a_low",
                f"the coefficient fields must take the values a_low = {c.a_low} and "
                f"a_high = {c.a_high} only; {k} has others (a stale cache file?)",
            )
        f = self._float
        return DarcyData(
            a=f(arrays["a"]),
            u_ref=f(arrays["u_ref"]),
            data_mask=jnp.asarray(arrays["data_mask"]),
            constraint_sample=jnp.asarray(arrays["constraint_sample"]),
            constraint_node=jnp.asarray(arrays["constraint_node"]),
            test_a=f(arrays["test_a"]),
            test_u_ref=f(arrays["test_u_ref"]),
        )

    # --- objective, constraints -----------------------------------------------------------
    def _terms(self, params, data: DarcyData, batch_idx):
        a = data.a[batch_idx]
        if self.cfg.batch_terms == "residual":  # boundary and data on every sample
            whole_idx = jnp.arange(data.a.shape[0])
            whole = self.predict(params, data.a)  # one pass; the batch is a subset of it
            u = whole[batch_idx]
        else:  # every term on the batch
            whole_idx, u = batch_idx, self.predict(params, a)  # (B, s, s)
            whole = u
        res = self.residual(u, a)
        boundary = jnp.sum(jnp.where(self.boundary, whole**2, 0.0), axis=(-2, -1)) / jnp.sum(
            self.boundary
        )
        misfit = jnp.mean((whole - data.u_ref[whole_idx]) ** 2, axis=(-2, -1))
        if self.cfg.data_samples == "batch":  # the first int(0.2·B) of the (random) batch
            fit = misfit[: labeled_in_batch(batch_idx.shape[0], self.cfg.data_fraction)]
            data_term = jnp.mean(fit)
        else:
            data_term = masked_mean(misfit, data.data_mask[whole_idx])
        return {
            "residual": jnp.mean(res**2),
            "boundary": jnp.mean(boundary),
            "data": data_term,
        }

    def _constraint(self, params, lifted_levels, a, node):
        """PDE residual of u_θ(a) at interior node (i, j) of one sample (scalar): the
        5-point flux form of :func:`darcy_residual` on u_θ at the node and its four
        neighbours, the only pixels the FNO's (pointwise) projection is evaluated at."""
        i, j = node[0], node[1]
        rows, cols = jnp.stack([i, i + 1, i - 1, i, i]), jnp.stack([j, j, j, j + 1, j - 1])
        u_c, u_e, u_w, u_n, u_s = self._body(params, lifted_levels, a, at=(rows, cols))[:, 0]
        a_c = a[i, j]
        flux = (
            harmonic(a[i + 1, j], a_c) * (u_e - u_c)
            - harmonic(a_c, a[i - 1, j]) * (u_c - u_w)
            + harmonic(a[i, j + 1], a_c) * (u_n - u_c)
            - harmonic(a_c, a[i, j - 1]) * (u_c - u_s)
        )
        h = 1.0 / (a.shape[-1] - 1)
        return -flux / h**2 - self.cfg.forcing

    def n_constraints_of(self, data: DarcyData) -> int:
        return data.constraint_sample.shape[0]

    def constraint_at(self, params, data: DarcyData, k):
        """Constraint k: the PDE residual at its interior node of its sample."""
        return self._constraint(
            params,
            self._lifted_levels(params, data.a.shape[-1]),
            data.a[data.constraint_sample[k]],
            data.constraint_node[k],
        )

    def _level_inputs(self, s):
        """The FNO's inputs for a ≡ a_low and a ≡ a_high, (2, s, s, 3)."""
        c = self.cfg
        levels = jnp.asarray([c.a_low, c.a_high], self.dtype)[:, None, None]
        return self._channels(jnp.broadcast_to(levels, (2, s, s)))

    def constraints_and_jacobian(self, params, data: DarcyData):
        """(c(θ), ∇c(θ)ᵀ) with one lifted table for all m samples: per sample, the value and
        gradient of the FNO after its lifting (w.r.t. θ and the lifted table), then the
        table's m cotangents taken back through the lifting together
        (:func:`problems.stochastic.fno.lifting_pullbacks`). The same Jacobian as per-sample
        gradients of :meth:`constraint_at` (a test checks it); the lifting's GELU layer
        runs once, not once per sample."""
        inputs = self._level_inputs(data.a.shape[-1])
        table = self.net.apply(params, inputs, stage="lift")
        one = lambda p, t, k: self._constraint(
            p, t, data.a[data.constraint_sample[k]], data.constraint_node[k]
        )
        c, (grad, grad_table) = jax.vmap(jax.value_and_grad(one, (0, 1)), (None, None, 0))(
            params, table, jnp.arange(self.n_constraints_of(data))
        )
        # the body's gradient is zero in the lifting's weights; those come from the table's
        lifting = lifting_pullbacks(params, inputs, grad_table, self.cfg.lifting_channels)
        return c, {**grad, "params": {**grad["params"], **lifting}}

    def _test_errors(self, params, data: DarcyData):
        return self.predict(params, data.test_a) - data.test_u_ref, data.test_u_ref

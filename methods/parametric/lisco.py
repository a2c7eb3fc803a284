"""LISCO: a learned predictor and a learned iterative solver for parametric optimization
(Lüken & Lucia, arXiv 2409.08066 v1; spec lisco.md). Pure JAX/Flax/optax, no IO.

Both networks are trained without solutions, on the optimality residual F(z; x) of
``problems.parametric.dc3.Residual`` (z = (y, ν, λ), T = ½‖F‖²):

* **Predictor** Π_pred: x ↦ z₀ (one hidden layer of ``hidden`` LeakyReLU units, paper §3.1).
  Loss mean_x T̃(Π_pred(x), x)/n_z over a batch of fresh x ~ U[−1, 1]^{n_eq} every step,
  T̃ convexified as eq. 14 at the detached prediction on the non-convex problems (equal to
  T in value; ``predictor_convexification``, the paper's "point predicted by the solver or
  predictor"; false: the exact T);
  AdamW (lr 1e-3, weight decay 1e-3) with reduce-on-plateau (factor 0.1, patience 1000,
  cooldown 100: optax.contrib.reduce_on_plateau on the loss); stops when the learning rate
  reaches ``min_lr`` (1e-8) or after ``predictor_steps``.
* **Solver** Π_sol: [x, F/‖F‖, log‖F‖] ↦ direction, step Δz = ‖F‖·Π_sol (paper §3.2, eq.
  10; the natural log, ``input_log``).
  Loss mean log10(T̃(z + Δz; x)/n_z): one-step look-ahead on the residual, where T̃ uses the
  convexified gradient ∇f(y_k) + 2ρ(y − y_k) for the non-convex problems (ρ = 1; exact F on
  the QP), y_k the pre-step iterate (``convexification=iterate``) or the trial point
  (``trial``; see CONVEXIFICATIONS). AdamW lr 1e-4, weight decay 1e-3. A persistent batch
  of (x, z) iterates: after the first ``warmup`` steps each sample moves to z + Δz
  (detached) unless its T would exceed ``reject_factor``·T₀ (T₀ its starting merit); a
  sample is resampled (fresh x, z₀ from the predictor or N(0, 1)) once T ≤ ``resample_tol``
  or after ``max_age`` steps.

Inference (``methods.parametric.lisco_inference.infer``) iterates z ← z + αΔz with the exact F.

The log in the solver's input: eq. (10) writes log‖F_k‖₂ where eq. (13) writes log10, and
the authors' code takes ``torch.log`` (natural): ``input_log="ln"``, the default since
2026-12-05. ``input_log="log10"`` [this project's earlier default] read it as the loss's
log10; it scales that input by 1/ln 10.

Choices where the paper is silent (reconstructed): the solver keeps its learning rate fixed
(the paper names the plateau schedule for the predictor only); fresh x for training come
from DC3's distribution U[−1, 1]^{n_eq} rather than the fixed 8334-point training split (the
split's validation part is used for logging). Initialisation (the paper is silent):
``init="torch"``, the authors' code's, which builds both networks from ``torch.nn.Linear`` and never
re-initialises them: kernel and bias U(±1/√fan_in). ``init="flax"`` (Flax's lecun-normal
kernel, zero bias) and ``solver_zero_init`` (Π_sol's output layer starts at zero, so the
untrained solver proposes Δz = 0) are this project's earlier defaults, kept as options.
The zero output layer was meant to keep the first training steps from raising the iterates'
T up to the rejection bound, where they sit until resampled after ``max_age`` steps; with
the predictor on the non-convex QP and Rosenbrock (2026-12-05, ``scale=cpu``) the iterates
reached the bound by training step 200 with and without it, from either initialisation,
and the three variants measured there ended at success 0.986–0.999. On the convex QP the
zero output layer gave the lower median iteration count under both initialisations
(results/tables/lisco_init-cpu/, one seed). v2's step scale
0.01·min(‖F‖, 1) is ``step_scale="v2"``; its cap alone, min(‖F‖, 1), is
``step_scale="clamped"`` (this project's).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from jax import lax
from optax.contrib import reduce_on_plateau

from methods.driver import Method
from methods.parametric.lisco_inference import (
    BATCH_CHUNK,
    STREAM_WIDTH,
    compacted_runner,
    infer,
)
from problems.common.base import check, check_choice, check_positive_int
from problems.common.networks import INITS, dense

ACTIVATIONS = {"leaky_relu": nn.leaky_relu, "gelu": nn.gelu, "relu": nn.relu}


@dataclasses.dataclass(frozen=True)
class LiscoConfig:
    predictor: bool = True  # solver starts from Π_pred(x) ("with Pred.") or N(0, 1) ("w/o")
    train: bool = True  # false: load the networks of ``checkpoint`` and only evaluate
    checkpoint: str | None = None  # a run folder with predictor.msgpack / solver.msgpack
    hidden: tuple = (2048,)  # hidden layer widths of both networks (v1: one of 2048)
    activation: str = "leaky_relu"  # v1 LeakyReLU (slope 0.01); v2 gelu
    weight_decay: float = 1e-3
    predictor_steps: int = 150000
    predictor_batch: int = 4096
    predictor_lr: float = 1e-3
    plateau_factor: float = 0.1
    plateau_patience: int = 1000
    plateau_cooldown: int = 100
    min_lr: float = 1e-8
    solver_steps: int = 100000
    solver_batch: int = 4096
    solver_lr: float = 1e-4
    # Δz = s·Π: v1 s = ‖F‖ (the paper, eq. 10) | v2 s = 0.01·min(‖F‖, 1) (the authors' later
    # code) | clamped s = min(‖F‖, 1) (this project's: v2's cap at ‖F‖ = 1 without its 0.01)
    step_scale: str = "v1"
    # the log of ‖F‖ in the solver's input: ln (eq. 10, the authors' code) | log10 (this
    # project's earlier default)
    input_log: str = "ln"
    # w/o predictor, the random start z₀ (training and inference): normal: z₀ ~ N(0, 1), the
    # paper's (v1 §5) | v2: the authors' later code, y ~ U[0, 1], ν ~ N(0, 1), λ ~ U[0, 1]
    start: str = "normal"
    # both networks' initialisation: torch: torch.nn.Linear's defaults, kernel and bias
    # U(±1/√fan_in) (the authors' code) | flax: lecun-normal kernel, zero bias (this
    # project's earlier default)
    init: str = "torch"
    # True: Π_sol's output layer starts at 0, Δz = 0 (this project's earlier default)
    solver_zero_init: bool = False
    warmup: int = 100  # steps before the training iterates start moving
    reject_factor: float = 1000.0  # reject an update when T > reject_factor · T₀
    resample_tol: float = 1e-8  # resample a sample once T ≤ this ...
    max_age: int = 2000  # ... or after this many steps
    rho: float = 1.0  # convexification of non-convex problems (0: exact F)
    # where eq. 14's linearisation is taken in the solver loss (CONVEXIFICATIONS): trial: at the
    # detached trial point (T̃ = T in value; Rosenbrock solves) | iterate: at the pre-step
    # iterate (this project's earlier reading)
    convexification: str = "trial"
    # True: the predictor's loss uses eq. 14 too, linearised at its own detached prediction
    # (T̃ = T in value, 2ρI in place of ∇²f in the gradient): the paper's "y ∈ z describes
    # the point predicted by the solver or predictor", ρ chosen "for the predictor training"
    # (§5, App.). False: the exact T (this project's earlier default)
    predictor_convexification: bool = True
    n_max: int = 500  # inference iterations
    tol: float = 1e-8  # success: ½‖F‖² ≤ tol
    # the inference loop stops a test point once ½‖F‖² ≤ stop_tol; None: tol, Algorithm 1's
    # τ. 0 runs every point all n_max iterations: the other reading of Table 3's caption
    # ("LISCO is evaluated for 500 steps"), whose medians ½‖F‖² ~1e-11 sit far below τ.
    stop_tol: Any = None
    # the solver network's matrix products at inference: float32 (the paper's) | bfloat16
    # (this project's: inputs and weights rounded to bfloat16, products accumulated in
    # float32; F, the step's scale and the loop stay float32. On CPUs with AVX512-BF16 the
    # products run ~1.6× faster, and the batch is the network's products: see
    # INFERENCE_PRECISIONS). Training is float32 either way.
    inference_precision: str = "float32"
    omega: float = 10.0  # reset to the best iterate when ‖F‖ > ω‖F_best‖ ...
    shrink: float = 0.95  # ... and α ← shrink·α
    init_seed: int = 0  # network initialisation and training samples (the run's seed is added)

    def __post_init__(self):
        object.__setattr__(self, "hidden", tuple(self.hidden))
        for f in (
            "predictor_steps",
            "predictor_batch",
            "plateau_patience",
            "solver_steps",
            "solver_batch",
            "max_age",
            "n_max",
        ):
            check_positive_int(getattr(self, f), f"method.{f}")
        check(
            len(self.hidden) > 0 and all(isinstance(w, int) and w > 0 for w in self.hidden),
            "method.hidden",
            f"must be a list of positive integers, got {list(self.hidden)}",
        )
        check_choice(self.activation, "method.activation", list(ACTIVATIONS))
        check_choice(self.step_scale, "method.step_scale", list(STEP_SCALES))
        check_choice(self.input_log, "method.input_log", list(INPUT_LOGS))
        check_choice(
            self.inference_precision, "method.inference_precision", list(INFERENCE_PRECISIONS)
        )
        check_choice(self.start, "method.start", list(STARTS))
        check_choice(self.init, "method.init", list(INITS))
        check(
            isinstance(self.solver_zero_init, bool),
            "method.solver_zero_init",
            f"must be true or false, got {self.solver_zero_init!r}",
        )
        check_choice(self.convexification, "method.convexification", CONVEXIFICATIONS)
        check(
            isinstance(self.predictor_convexification, bool),
            "method.predictor_convexification",
            f"must be true or false, got {self.predictor_convexification!r}",
        )
        for f in (
            "predictor_lr",
            "solver_lr",
            "reject_factor",
            "tol",
            "resample_tol",
            "min_lr",
            "omega",
        ):
            v = getattr(self, f)
            check(
                isinstance(v, (int, float)) and v > 0,
                f"method.{f}",
                f"must be a number > 0, got {v!r}",
            )
        for f in ("weight_decay", "rho"):
            v = getattr(self, f)
            check(
                isinstance(v, (int, float)) and v >= 0,
                f"method.{f}",
                f"must be a number >= 0, got {v!r}",
            )
        check(
            self.stop_tol is None
            or (
                isinstance(self.stop_tol, (int, float))
                and not isinstance(self.stop_tol, bool)
                and self.stop_tol >= 0
            ),
            "method.stop_tol",
            f"must be null (= method.tol) or a number >= 0, got {self.stop_tol!r}",
        )
        check(
            0 < self.plateau_factor < 1,
            "method.plateau_factor",
            f"must be in (0, 1), got {self.plateau_factor!r}",
        )
        check(0 < self.shrink <= 1, "method.shrink", f"must be in (0, 1], got {self.shrink!r}")
        check(
            self.train or bool(self.checkpoint),
            "method.checkpoint",
            "method.train=false needs method.checkpoint=<run folder of a trained lisco run>",
        )


# Where the solver loss's T̃ (eq. 14) linearises the objective, f̃(y) = f(y_k) +
# ∇f(y_k)ᵀ(y − y_k) + ρ‖y − y_k‖², y_k detached:
#   iterate  y_k the pre-step iterate (the spec's first reading): the best step the network
#            can learn is a proximal-gradient step of length 1/(2ρ), which diverges on
#            Rosenbrock at ρ = 1 where the reduced Hessian's eigenvalues reach ~12
#   trial    y_k the trial point y(z + Δz) itself: T̃(z + Δz) = T(z + Δz) in value, while its
#            gradient sees 2ρI in place of the indefinite ∇²f (how the authors' later code
#            treats the non-convex term: the exact value, a detached curvature)
# The default is ``trial``, from the evidence (scale=cpu, instance 0, with predictor, ρ = 1):
# Rosenbrock success 0.995 in a median 15 iterations against 0.000 (500) with ``iterate``,
# the non-convex QP 0.996 in 44 against 0.998 in 71 (the paper: 1.000 in 4.8 and 0.977 in
# 18). ``iterate`` is this project's earlier reading.
CONVEXIFICATIONS = ("iterate", "trial")

#: random starts without the predictor: the paper's z₀ ~ N(0, 1) ("normal", v1 §5 and App.)
#: or the authors' later code's draw ("v2": y ~ U[0, 1], ν ~ N(0, 1), λ ~ U[0, 1] >= 0)
STARTS = ("normal", "v2")


def random_start(key, n: int, problem, kind: str, dtype) -> jax.Array:
    """(n, n_z) random starting points z₀ = (y, ν, λ) of ``kind`` (:data:`STARTS`)."""
    if kind == "normal":
        return jax.random.normal(key, (n, problem.n_z), dtype)
    ky, kn, kl = jax.random.split(key, 3)
    n_ineq = problem.n_z - problem.n_y - problem.n_x  # z = (y, ν, λ), dim ν = dim x
    return jnp.concatenate(
        [
            jax.random.uniform(ky, (n, problem.n_y), dtype),
            jax.random.normal(kn, (n, problem.n_x), dtype),
            jax.random.uniform(kl, (n, n_ineq), dtype),
        ],
        axis=1,
    )


@dataclasses.dataclass(frozen=True)
class IpoptConfig:
    """Baseline ``ipopt``: CasADi IPOPT from y0 = A⁺x (spec "Baselines")."""

    tol: float = 1e-10
    hessian: str = "exact"  # exact | lbfgs (DC3's setting, with tol 1e-4)
    max_iter: int = 3000
    linear_solver: str = "mumps"

    def __post_init__(self):
        check(
            isinstance(self.tol, (int, float)) and self.tol > 0,
            "method.tol",
            f"must be a number > 0, got {self.tol!r}",
        )
        check_choice(self.hessian, "method.hessian", ["exact", "lbfgs"])
        check_positive_int(self.max_iter, "method.max_iter")
        from methods.dae.collocation import check_linear_solver

        check_linear_solver(self.linear_solver)


@dataclasses.dataclass(frozen=True)
class OsqpConfig:
    """Baseline ``osqp`` (convex QP only). The paper (App. A): "The default options of OSQP,
    called from within CVXPY, are used": ``settings="cvxpy"``, the options CVXPY's OSQP
    interface sets (eps_abs = eps_rel = 1e-5, max_iter 10000, polishing on).
    ``settings="dc3"`` [this project's earlier default]: DC3's call, OSQP's own defaults
    (eps 1e-3, 4000 iterations, no polishing) with eps_prim_inf 1e-4. ``tight`` (this
    project's): eps 1e-10 with polishing, whatever ``settings`` says."""

    settings: str = "cvxpy"  # cvxpy (the paper) | dc3 (this project's earlier default)
    tight: bool = False  # True: eps 1e-10 with polishing (this project's)

    def __post_init__(self):
        check_choice(self.settings, "method.settings", ["cvxpy", "dc3"])
        check(
            isinstance(self.tight, bool),
            "method.tight",
            f"must be true or false, got {self.tight!r}",
        )


@dataclasses.dataclass(frozen=True)
class JaxoptOsqpConfig:
    """Baseline ``jaxopt_osqp`` (convex QP only): jaxopt's BoxOSQP vmapped over the test
    points in one jitted call, in float64. ``tight: false``: OSQP's defaults (tol 1e-3,
    4000 iterations); ``true``: tol 1e-9, 100000 iterations (jaxopt has no polishing).
    ``eq_qp_solve``: BoxOSQP's linear solver (``lu``: dense, the problems here are small)."""

    tight: bool = False  # False: OSQP's defaults (tol 1e-3, 4000 it); True: tol 1e-9, 100000 it
    eq_qp_solve: str = "lu"  # lu | cg | cg+jacobi (BoxOSQP's linear solver)

    def __post_init__(self):
        check(
            isinstance(self.tight, bool),
            "method.tight",
            f"must be true or false, got {self.tight!r}",
        )
        check_choice(self.eq_qp_solve, "method.eq_qp_solve", ["lu", "cg", "cg+jacobi"])


#: the solver network's matrix products at inference (``method.inference_precision``):
#: None: in the network's dtype; bfloat16: operands rounded to bfloat16, products
#: accumulated and returned in float32 (measured 2026-12-06 on this project's 2-core CPU
#: (AMD EPYC, AVX512-BF16), one core, a batch of 833 through 251 → 2048 → 200: 9.1 ms
#: against 14.9 ms in float32; Flax's own bfloat16 dtype, which returns bfloat16, ran no
#: faster than float32 there)
INFERENCE_PRECISIONS = {"float32": None, "bfloat16": jnp.bfloat16}


class Net(nn.Module):
    """Hidden layers of ``hidden`` units with ``activation``, linear output (paper §3).
    ``matmul``: :data:`INFERENCE_PRECISIONS` (the same parameters either way)."""

    hidden: tuple
    out: int
    activation: str = "leaky_relu"
    dtype: Any = jnp.float32
    zero_output: bool = False  # output layer initialised to 0 (the solver: Δz = 0 at start)
    initialization: str = "torch"  # INITS: torch.nn.Linear's defaults | Flax's
    matmul: str = "float32"

    @nn.compact
    def __call__(self, v):
        act = ACTIVATIONS[self.activation]
        kw = {"dtype": self.dtype, "param_dtype": self.dtype}
        low = INFERENCE_PRECISIONS[self.matmul]
        if low is not None:  # bfloat16 operands, products accumulated in the network's dtype
            out = jnp.dtype(self.dtype)
            kw |= {
                "dtype": low,
                "dot_general": functools.partial(lax.dot_general, preferred_element_type=out),
            }
        for w in self.hidden:
            v = act(dense(w, v.shape[-1], self.initialization, **kw)(v))
        if self.zero_output:
            kw |= {"kernel_init": nn.initializers.zeros, "bias_init": nn.initializers.zeros}
        return dense(self.out, v.shape[-1], self.initialization, **kw)(v).astype(self.dtype)


def networks(problem, cfg: LiscoConfig, dtype) -> tuple[Net, Net]:
    """(Π_pred: n_x → n_z, Π_sol: n_x + n_z + 1 → n_z)."""
    return (
        Net(cfg.hidden, problem.n_z, cfg.activation, dtype, initialization=cfg.init),
        Net(cfg.hidden, problem.n_z, cfg.activation, dtype, cfg.solver_zero_init, cfg.init),
    )


def inference_solver(problem, cfg: LiscoConfig, dtype) -> Net:
    """Π_sol as inference applies it (``cfg.inference_precision``; the trained parameters)."""
    return networks(problem, cfg, dtype)[1].clone(matmul=cfg.inference_precision)


def init_networks(problem, cfg: LiscoConfig, dtype, key) -> tuple[Any, Any]:
    pred, sol = networks(problem, cfg, dtype)
    k1, k2 = jax.random.split(key)
    return (
        pred.init(k1, jnp.zeros((1, problem.n_x), dtype)),
        sol.init(k2, jnp.zeros((1, problem.n_x + problem.n_z + 1), dtype)),
    )


#: the log of ‖F‖ in Π_sol's input: ln (eq. 10 and the authors' code) | log10 (this
#: project's earlier default)
INPUT_LOGS = {"ln": jnp.log, "log10": jnp.log10}


def solver_features(x, f, input_log: str = "ln"):
    """Π_sol's input [x, F/‖F‖, log‖F‖] and ‖F‖ (batched)."""
    nrm = jnp.linalg.norm(f, axis=-1, keepdims=True)
    nrm_safe = jnp.maximum(nrm, jnp.finfo(f.dtype).tiny)
    return jnp.concatenate([x, f / nrm_safe, INPUT_LOGS[input_log](nrm_safe)], axis=-1), nrm


#: the factor s(‖F‖) of Π_sol in Δz = s·Π_sol. v1: ‖F‖, the paper's eq. (10) ("the predicted
#: step scales with the magnitude of the error"). v2: 0.01·min(‖F‖, 1), the authors' later
#: code (its ``gamma`` 0.01 and clamp). clamped: min(‖F‖, 1), this project's, to tell v2's
#: two changes apart: far from a solution (‖F‖ ~ 150 at z₀ ~ N(0, 1) on Rosenbrock) v1's
#: steps are ‖F‖ times the network's output, near one (‖F‖ < 1) all three scale with ‖F‖.
STEP_SCALES = {
    "v1": lambda nrm: nrm,
    "v2": lambda nrm: 0.01 * jnp.minimum(nrm, 1.0),
    "clamped": lambda nrm: jnp.minimum(nrm, 1.0),
}


def step_size(nrm, kind: str):
    """The factor of Π_sol in Δz (:data:`STEP_SCALES`)."""
    return STEP_SCALES[kind](nrm)


def solver_step(sol: Net, sol_params, residual, kind: str = "v1", input_log: str = "ln"):
    """Δz(z, x) = s(‖F‖)·Π_sol([x, F/‖F‖, log‖F‖]) with the exact F (batched; ``f`` = F(z)
    when the caller already holds it, as the inference loop does)."""

    def step(z, x, f=None):
        if f is None:
            f = jax.vmap(residual)(z, x)
        feats, nrm = solver_features(x, f, input_log)
        return step_size(nrm, kind) * sol.apply(sol_params, feats)

    return step


# --- predictor training -------------------------------------------------------------------


class PredictorState(NamedTuple):
    params: Any
    opt_state: Any
    key: jax.Array
    step: jax.Array
    loss: jax.Array


def _plateau_scale(opt_state) -> jax.Array:
    return opt_state[1].scale


def predictor_method(problem, cfg: LiscoConfig, dtype, key) -> Method:
    """Π_pred training as a driver Method (params: the predictor's initial parameters)."""
    pred, _ = networks(problem, cfg, dtype)
    res = problem.residual(dtype)
    opt = optax.chain(
        optax.adamw(cfg.predictor_lr, weight_decay=cfg.weight_decay),
        reduce_on_plateau(cfg.plateau_factor, cfg.plateau_patience, cooldown=cfg.plateau_cooldown),
    )
    n_z, n_y = problem.n_z, problem.n_y
    rho = 0.0 if problem.convex or not cfg.predictor_convexification else cfg.rho

    def loss_fn(params, x):
        z = pred.apply(params, x)
        merit = lambda zz, xx: predicted_merit(res, zz, xx, rho, n_y)
        return jnp.mean(jax.vmap(merit)(z, x)) / n_z

    def init(params, data):
        return PredictorState(
            params, opt.init(params), key, jnp.int32(0), jnp.asarray(jnp.inf, dtype)
        )

    def step(s: PredictorState, data):
        k, sub = jax.random.split(s.key)
        x = problem.sample_x(sub, cfg.predictor_batch, dtype)
        loss, grads = jax.value_and_grad(loss_fn)(s.params, x)
        updates, opt_state = opt.update(grads, s.opt_state, s.params, value=loss)
        return PredictorState(
            optax.apply_updates(s.params, updates), opt_state, k, s.step + 1, loss
        )

    def lr(s):
        return cfg.predictor_lr * _plateau_scale(s.opt_state)

    def done(s):
        return lr(s) <= cfg.min_lr * (1 + 1e-6)

    def log(s, data):
        xv = data["valid_x"]
        merit = jax.vmap(res.merit)(pred.apply(s.params, xv), xv)
        return {
            "loss": s.loss,
            "lr": lr(s),
            "valid_loss": jnp.mean(merit) / n_z,
            "valid_T_median": jnp.median(merit),
        }

    return Method(
        "lisco_predictor",
        init,
        step,
        done,
        lambda s: jnp.all(jnp.isfinite(s.loss)) | (s.step == 0),
        lambda s: jnp.array(True),
        log,
        lambda s: s.params,
        lambda s: s.step,
        lambda s: s.step,
        cfg.predictor_steps,
    )


# --- solver training ----------------------------------------------------------------------


class SolverState(NamedTuple):
    params: Any
    opt_state: Any
    key: jax.Array
    step: jax.Array
    x: jax.Array  # (B, n_x) the persistent training batch ...
    z: jax.Array  # (B, n_z) ... its iterates
    merit: jax.Array  # (B,) T at z
    merit0: jax.Array  # (B,) T at each sample's start
    age: jax.Array  # (B,) steps since each sample's start
    loss: jax.Array
    resampled: jax.Array  # samples resampled so far (all steps)
    solved: jax.Array  # of these, resampled because T ≤ resample_tol


def predicted_merit(res, z, x, rho: float, n_y: int):
    """T̃(z; x) of the predictor's loss: eq. 14 linearised at the detached prediction y
    itself, so T̃ = T in value and only its derivative changes (2ρI in place of ∇²f in the
    stationarity rows); ρ = 0: the exact T."""
    f = res.convexified(z, x, z[:n_y], rho)
    return 0.5 * f @ f


def lookahead_residual(res, z, dz, x, rho: float, convexification: str, n_y: int):
    """F̃(z + Δz; x), the residual the solver loss looks ahead with (eq. 14): ∇f replaced by
    ∇f(y_k) + 2ρ(y − y_k), y_k detached and taken at the pre-step iterate z
    (``iterate``) or at the trial point z + Δz (``trial``, where F̃ = F in value and only
    its derivative changes: 2ρI in place of ∇²f in the stationarity rows)."""
    y_k = (z + dz if convexification == "trial" else z)[:n_y]
    return res.convexified(z + dz, x, y_k, rho)


def solver_method(problem, cfg: LiscoConfig, dtype, key, pred_params=None) -> Method:
    """Π_sol training as a driver Method; starts from Π_pred(x) when ``pred_params`` is
    given ("with Pred."), else from z₀ ~ N(0, 1) ("w/o Pred.")."""
    pred, sol = networks(problem, cfg, dtype)
    res = problem.residual(dtype)
    rho = 0.0 if problem.convex else cfg.rho
    opt = optax.adamw(cfg.solver_lr, weight_decay=cfg.weight_decay)
    n_z, b = problem.n_z, cfg.solver_batch
    merits = jax.vmap(res.merit)

    def starts(k, n):
        kx, kz = jax.random.split(k)
        x = problem.sample_x(kx, n, dtype)
        z = (
            pred.apply(pred_params, x)
            if pred_params is not None
            else random_start(kz, n, problem, cfg.start, dtype)
        )
        return x, z

    def loss_fn(params, x, z):
        f = jax.vmap(res)(z, x)
        feats, nrm = solver_features(x, f, cfg.input_log)
        dz = step_size(nrm, cfg.step_scale) * sol.apply(params, feats)
        fc = jax.vmap(
            lambda zz, d, xx: lookahead_residual(
                res, zz, d, xx, rho, cfg.convexification, problem.n_y
            )
        )(z, dz, x)
        t = 0.5 * jnp.sum(fc**2, axis=1) / n_z
        t = jnp.maximum(t, jnp.finfo(dtype).tiny)
        return jnp.mean(jnp.log10(t)), dz

    def init(params, data):
        k, sub = jax.random.split(key)
        x, z = starts(sub, b)
        t = merits(z, x)
        return SolverState(
            params,
            opt.init(params),
            k,
            jnp.int32(0),
            x,
            z,
            t,
            t,
            jnp.zeros((b,), jnp.int32),
            jnp.asarray(jnp.inf, dtype),
            jnp.int32(0),
            jnp.int32(0),
        )

    def step(s: SolverState, data):
        (loss, dz), grads = jax.value_and_grad(loss_fn, has_aux=True)(s.params, s.x, s.z)
        updates, opt_state = opt.update(grads, s.opt_state, s.params)
        params = optax.apply_updates(s.params, updates)
        z_new = s.z + jax.lax.stop_gradient(dz)
        t_new = merits(z_new, s.x)
        accept = (
            (s.step >= cfg.warmup) & jnp.isfinite(t_new) & (t_new <= cfg.reject_factor * s.merit0)
        )
        z = jnp.where(accept[:, None], z_new, s.z)
        t = jnp.where(accept, t_new, s.merit)
        age = s.age + 1
        solved = t <= cfg.resample_tol
        again = solved | (age >= cfg.max_age)
        k, sub = jax.random.split(s.key)
        x0, z0 = starts(sub, b)
        x = jnp.where(again[:, None], x0, s.x)
        z = jnp.where(again[:, None], z0, z)
        t0 = merits(z0, x0)
        t = jnp.where(again, t0, t)
        merit0 = jnp.where(again, t0, s.merit0)
        return SolverState(
            params,
            opt_state,
            k,
            s.step + 1,
            x,
            z,
            t,
            merit0,
            jnp.where(again, 0, age),
            loss,
            s.resampled + jnp.sum(again, dtype=jnp.int32),
            s.solved + jnp.sum(solved, dtype=jnp.int32),
        )

    def log(s, data):
        return {
            "loss": s.loss,
            "batch_T_median": jnp.median(s.merit),
            "resampled": s.resampled,
            "solved": s.solved,
        }

    return Method(
        "lisco_solver",
        init,
        step,
        lambda s: jnp.array(False),
        lambda s: jnp.isfinite(s.loss) | (s.step == 0),
        lambda s: jnp.array(True),
        log,
        lambda s: s.params,
        lambda s: s.step,
        lambda s: s.step,
        cfg.solver_steps,
    )


# --- evaluation ---------------------------------------------------------------------------


def start_points(problem, cfg: LiscoConfig, dtype, pred_params, x, key):
    """z₀ for inference: Π_pred(x), or random draws (``cfg.start``) without a predictor."""
    pred, _ = networks(problem, cfg, dtype)
    if pred_params is not None:
        return pred.apply(pred_params, x)
    return random_start(key, x.shape[0], problem, cfg.start, dtype)


def stop_tol(cfg: LiscoConfig) -> float:
    """The level of ½‖F‖² at which inference stops a test point (``method.stop_tol``)."""
    return cfg.tol if cfg.stop_tol is None else float(cfg.stop_tol)


def make_inference(problem, cfg: LiscoConfig, dtype, thresholds=(1e-6, 1e-8)):
    """``run(sol_params, z0, x) -> InferenceResult`` (jitted; one compile per batch size)."""
    sol = inference_solver(problem, cfg, dtype)
    res = problem.residual(dtype)

    @jax.jit
    def run(sol_params, z0, x):
        return infer(
            solver_step(sol, sol_params, res, cfg.step_scale, cfg.input_log),
            res,
            z0,
            x,
            n_max=cfg.n_max,
            tol=stop_tol(cfg),
            omega=cfg.omega,
            shrink=cfg.shrink,
            thresholds=thresholds,
        )

    return run


def make_batch_inference(
    problem,
    cfg: LiscoConfig,
    dtype,
    thresholds=(1e-6, 1e-8),
    chunk: int = BATCH_CHUNK,
    width: int | None = STREAM_WIDTH,
):
    """``run(sol_params, z0, x)`` for a large batch: the same loop, stopped samples costing
    no further work (``compacted_runner``: their rows refilled with waiting samples, then
    the last ones in shrinking batches)."""
    sol = inference_solver(problem, cfg, dtype)
    res = problem.residual(dtype)
    return compacted_runner(
        lambda sol_params, z, x, f: solver_step(
            sol, sol_params, res, cfg.step_scale, cfg.input_log
        )(z, x, f),
        res,
        n_max=cfg.n_max,
        tol=stop_tol(cfg),
        omega=cfg.omega,
        shrink=cfg.shrink,
        thresholds=thresholds,
        chunk=chunk,
        width=width,
    )


__all__ = [
    "CONVEXIFICATIONS",
    "INFERENCE_PRECISIONS",
    "LiscoConfig",
    "IpoptConfig",
    "OsqpConfig",
    "JaxoptOsqpConfig",
    "Net",
    "networks",
    "inference_solver",
    "init_networks",
    "lookahead_residual",
    "predictor_method",
    "solver_method",
    "solver_step",
    "solver_features",
    "start_points",
    "make_inference",
    "make_batch_inference",
]

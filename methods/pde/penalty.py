"""Penalty, augmented Lagrangian and plain PINN (trSQP-PINN App. A, Algorithms 1–2).

All three minimise, round by round, the soft-constrained loss

    φ_k(θ) = ℓ(θ) + λ_kᵀ c(θ) + μ_k ‖c(θ)‖²                      (App. A)

from the previous round's θ, by L-BFGS with a line search (optax), until the inner
stopping test (A.1) holds:

    ‖∇φ_k(θ^l)‖_∞ ≤ g_tol  or  ‖θ^{l+1} − θ^l‖ ≤ f_tol  or  l ≥ l_max.

Then the round ends:

* ``penalty``:  λ ≡ 0, μ_{k+1} = ρ μ_k; stop when μ ≥ μ_max (μ₀ = 1, ρ = 1.1,
  μ_max = ρ¹⁰⁰, i.e. 100 rounds).
* ``auglag``:   λ_{k+1} = λ_k + μ_k c(θ_k), μ_{k+1} = ρ μ_k, same stop (λ₀ = 0). θ_k is
  the round's starting point: Algorithm 2 line 5 and §2 write c_k = c(θ_k), and the
  authors' code does the same. ``multiplier_update="textbook"`` (this project's option)
  uses c(θ_{k+1}), the round's end, as the usual method of multipliers does.
  ``multiplier_update="authors_code"`` takes the authors' constants: their code (repository
  HEAD, ``optim_aug_lag.py`` / ``main.py``) minimises ℓ + λᵀc + ½μ'‖c‖² from μ'₀ = 2 and
  steps λ += μ' c(θ_k). With μ' = 2μ that is the paper's φ_k with the step
  λ_{k+1} = λ_k + 2μ_k c(θ_k), twice the paper's (the first-order multiplier estimate of
  φ_k). For ``penalty`` the same constants change nothing (½μ' = μ).
* ``pinn``:     one round at a fixed μ (paper Table 2: μ ∈ {1, 10, 100, 1000}).

The pretraining step (Step 0) is the same machine with ℓ ≡ 0 and the constraints at
the M^pretrain points (:mod:`methods.pde.pretrain`).

One ``step`` is one inner L-BFGS iteration; a round transition (multiplier update,
μ update, L-BFGS memory reset, since φ changed) happens inside the same jitted step
under ``lax.cond``. The paper's line search is backtracking (Armijo); optax's zoom
(strong Wolfe) line search is offered as ``linesearch: zoom``.

The paper says "backtracking" and gives no number of reductions. optax's backtracking
shrinks the step by 0.8 up to ``max_linesearch_steps`` times from the unit step.
optax's default, 30 (0.8³⁰ ≈ 1.2e-3), was this project's until 2026-11-30. It is too few
after a round's memory reset at large μ: the first L-BFGS direction is −∇φ_k, and the unit
step along it is ~2μ times too long. On the toy of ``tests/test_methods.py`` (μ up to 2¹²)
30 reductions fail at the start of rounds and 60 do not. On reaction-diffusion at α = −30
(paper scale) the penalty method with 30 reductions and ``stop`` ended its 100 rounds in
151 iterations. The default is 100 (0.8¹⁰⁰ ≈ 2e-10), where a failed search means
roundoff at a minimiser (RD α = −30: auglag 5 failures, each raising φ_k by at most 1e-11).
SciPy's line search in the authors' code interpolates from a first step of 1/‖∇φ‖ and has
no such limit in practice.

When no trial step gives sufficient decrease, optax takes its last trial step all the
same, which may raise φ_k. The paper does not say what its L-BFGS does then; SciPy's
L-BFGS-B, in the authors' code, keeps θ and ends the solve
(``ABNORMAL_TERMINATION_IN_LNSRCH``). ``on_linesearch_failure: stop`` (the default: the
paper is silent, so the authors' code decides) does the same; ``step`` is optax's
behaviour, this project's default until 2026-11-30 (runs recorded before the option
existed took it). Every run records ``ls_failures`` (failed line searches; roundoff at a
minimiser counts too, as optax's test has no tolerance) and ``ls_increase`` (the largest
rise of φ_k over one step taken). On reaction-diffusion at α = −30 a step taken after a
failed search is where penalty and auglag blew up with the earlier default (README,
Figure 1).

``solver: scipy`` runs each inner solve as the authors' code does (repository HEAD,
``main.py`` and ``pre_train.py``, through ``jaxopt.ScipyMinimize``): SciPy's L-BFGS-B on the
host, in float64, on φ_k and ∇φ_k computed by a jitted function in the run's precision
(float32 in their code) and cast to float64; their options (``maxiter`` l_max, ``gtol``,
``ftol: 0``, SciPy's defaults for the rest: ``maxcor`` 10, ``maxls`` 20, ``maxfun`` 15000)
and their callback's stop on ‖θ^{l+1} − θ^l‖ ≤ f_tol. It is how one tests whether the
authors' solver, rather than the algorithm, produces the paper's baseline errors. Its
iterations cross to the host (SciPy drives them), so it is slower than the jitted default
and runs one seed per process; rounds are checkpointed at their boundaries.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from methods.driver import Interrupted, Method, RunResult, run_status, tree_all_finite
from problems.common.base import check, check_choice, check_positive_int

LINESEARCHES = ("backtracking", "zoom")
# Why the inner solves ended, counted per run (``inner_ends``, recorded as ``inner_ends_<why>``):
# (A.1)'s three tests, in the order checked, and a failed line search under ``stop``
# (for solver=scipy: SciPy's ABNORMAL_TERMINATION_IN_LNSRCH)
INNER_ENDS = ("gtol", "ftol", "lmax", "linesearch")
# What a failed line search does (no trial step met its test within max_linesearch_steps):
# stop: keep θ and end this inner solve, as SciPy's L-BFGS-B does (the authors' code; default)
# step: take optax's last trial step anyway (optax's behaviour; this project's earlier default)
LINESEARCH_FAILURES = ("stop", "step")
# optax: jitted L-BFGS (this project's default) | scipy: SciPy's L-BFGS-B on the host (the
# authors' code)
SOLVERS = ("optax", "scipy")


@dataclasses.dataclass(frozen=True)
class InnerConfig:
    """The L-BFGS subproblem solver and its stopping test (A.1)."""

    inner_maxiter: int = 20000  # l_max
    gtol: float = 1e-9  # g_tol on ‖∇φ‖_∞
    ftol: float = 1e-9  # f_tol on ‖θ^{l+1} − θ^l‖ (the paper's name)
    memory: int = 10  # L-BFGS history pairs
    linesearch: str = "backtracking"  # optax only; scipy uses SciPy's own (maxls 20)
    # optax only: step factor 0.8, so down to 0.8¹⁰⁰ ≈ 2e-10 (module doc: why not optax's
    # default 30, this project's earlier one); scipy: SciPy's maxls 20
    max_linesearch_steps: int = 100
    # optax only (LINESEARCH_FAILURES): stop: keep θ, end the inner solve (SciPy, the authors'
    # code) | step: take optax's last trial step (this project's earlier default)
    on_linesearch_failure: str = "stop"
    # optax: jitted L-BFGS, backtracking (the paper) | scipy: SciPy L-BFGS-B (the authors'
    # code; module doc)
    solver: str = "optax"

    _prefix = "method"  # config node named in error messages (not a field)

    def __post_init__(self):
        p = self._prefix
        check_positive_int(self.inner_maxiter, f"{p}.inner_maxiter")
        check_positive_int(self.memory, f"{p}.memory")
        check_positive_int(self.max_linesearch_steps, f"{p}.max_linesearch_steps")
        for f in ("gtol", "ftol"):
            v = getattr(self, f)
            check(
                isinstance(v, (int, float)) and v >= 0,
                f"{p}.{f}",
                f"must be a number >= 0, got {v!r}",
            )
        check_choice(self.linesearch, f"{p}.linesearch", LINESEARCHES)
        check_choice(self.on_linesearch_failure, f"{p}.on_linesearch_failure", LINESEARCH_FAILURES)
        check_choice(self.solver, f"{p}.solver", SOLVERS)

    def optimizer(self) -> optax.GradientTransformationExtraArgs:
        if self.linesearch == "backtracking":
            ls = optax.scale_by_backtracking_linesearch(
                max_backtracking_steps=self.max_linesearch_steps, store_grad=True
            )
        else:
            ls = optax.scale_by_zoom_linesearch(
                max_linesearch_steps=self.max_linesearch_steps, initial_guess_strategy="one"
            )
        return optax.lbfgs(memory_size=self.memory, linesearch=ls)


def _positive(v, field):
    check(
        isinstance(v, (int, float)) and v > 0 and math.isfinite(v),
        field,
        f"must be a finite number > 0, got {v!r}",
    )


@dataclasses.dataclass(frozen=True)
class PenaltyConfig(InnerConfig):
    """Algorithm 1 (penalty) and, with ``multiplier_update``, Algorithm 2 (auglag)."""

    mu0: float = 1.0  # μ₀ (the authors' code: μ'₀ = 2 on ½μ'‖c‖², the same as μ₀ = 1)
    rho: float = 1.1  # ρ, μ_{k+1} = ρ μ_k
    mu_max: float | None = None  # μ_max; None means ρ¹⁰⁰ (100 rounds from μ₀ = 1)

    def __post_init__(self):
        super().__post_init__()
        _positive(self.mu0, "method.mu0")
        check(
            isinstance(self.rho, (int, float)) and self.rho > 1 and math.isfinite(self.rho),
            "method.rho",
            f"must be a finite number > 1 (μ must grow), got {self.rho!r}",
        )
        if self.mu_max is not None:
            _positive(self.mu_max, "method.mu_max")

    @property
    def mu_limit(self) -> float:
        return self.rho**100 if self.mu_max is None else float(self.mu_max)

    @property
    def n_rounds(self) -> int:
        """Rounds until μ_k = μ₀ ρ^k ≥ μ_max."""
        return max(0, math.ceil(math.log(self.mu_limit / self.mu0) / math.log(self.rho) - 1e-9))


MULTIPLIER_UPDATES = ("paper", "textbook", "authors_code")


@dataclasses.dataclass(frozen=True)
class AuglagConfig(PenaltyConfig):
    """Algorithm 2: the penalty rounds plus the multiplier step (see the module doc)."""

    # paper: μ_k c(θ_k), the round's start | textbook: μ_k c(θ_{k+1}) (this project's option) |
    # authors_code: 2μ_k c(θ_k) (their ½μ'‖c‖², μ'₀ = 2)
    multiplier_update: str = "paper"

    def __post_init__(self):
        super().__post_init__()
        check_choice(self.multiplier_update, "method.multiplier_update", MULTIPLIER_UPDATES)


@dataclasses.dataclass(frozen=True)
class PinnConfig(InnerConfig):
    """Plain PINN: min ℓ + μ‖c‖² at a fixed μ, one L-BFGS solve (paper Table 2)."""

    mu: float = 1.0  # μ (Table 2: 1, 10, 100, 1000)

    def __post_init__(self):
        super().__post_init__()
        _positive(self.mu, "method.mu")


class PenaltyState(NamedTuple):
    params: Any  # θ
    opt_state: Any  # L-BFGS memory and line-search state
    mu: jax.Array  # μ_k
    lam: jax.Array  # λ_k (zero for penalty and pinn)
    c_start: jax.Array  # c(θ_k) at the start of round k (the paper's multiplier step)
    round: jax.Array  # k
    inner_iter: jax.Array  # l, iterations in this round
    iteration: jax.Array  # iterations in all rounds
    value: jax.Array  # φ_k(θ) before the last step
    grad_inf: jax.Array  # ‖∇φ_k(θ)‖_∞ before the last step
    step_norm: jax.Array  # ‖θ^{l+1} − θ^l‖ of the last step
    inner_converged: jax.Array  # the last inner step met g_tol or f_tol (not l_max)
    done: jax.Array  # the method's stopping test holds
    ls_failures: jax.Array  # line searches that failed so far (all rounds; roundoff at a
    # minimiser counts too: optax's sufficient-decrease test has no tolerance)
    ls_increase: jax.Array  # the largest rise of φ_k over one accepted step so far (0: none)
    inner_ends: jax.Array  # int32[4]: inner solves ended so far by INNER_ENDS' reasons


def soft_constrained(loss_fn, constraint_fn):
    """φ(θ; μ, λ) = ℓ(θ) + λᵀc(θ) + μ‖c(θ)‖²."""

    def phi(params, data, mu, lam):
        c = constraint_fn(params, data)
        return loss_fn(params, data) + jnp.dot(lam, c) + mu * jnp.sum(c**2)

    return phi


def lbfgs_rounds(
    name: str,
    loss_fn: Callable,
    constraint_fn: Callable,
    inner: InnerConfig,
    *,
    mu0: float,
    rho: float,
    mu_max: float,
    max_rounds: int,
    multiplier_update: str | None,
    dtype,
) -> Method:
    """Rounds of L-BFGS on φ_k with the μ/λ schedule above, as a :class:`Method`.

    ``multiplier_update``: None (penalty, pinn: λ ≡ 0), ``"paper"`` (λ += μ_k c(θ_k)),
    ``"textbook"`` (λ += μ_k c(θ_{k+1})) or ``"authors_code"`` (λ += 2μ_k c(θ_k))."""
    opt = inner.optimizer()
    phi = soft_constrained(loss_fn, constraint_fn)
    dtype = jnp.dtype(dtype)

    def init(params, data):
        m = jax.eval_shape(constraint_fn, params, data).shape[0]
        scalar = lambda v: jnp.asarray(v, dtype)
        return PenaltyState(
            params=params,
            opt_state=opt.init(params),
            mu=scalar(mu0),
            lam=jnp.zeros((m,), dtype),
            c_start=constraint_fn(params, data).astype(dtype),
            round=jnp.int32(0),
            inner_iter=jnp.int32(0),
            iteration=jnp.int32(0),
            value=scalar(jnp.inf),
            grad_inf=scalar(jnp.inf),
            step_norm=scalar(jnp.inf),
            inner_converged=jnp.array(False),
            done=jnp.array(max_rounds <= 0 or mu0 >= mu_max),
            ls_failures=jnp.int32(0),
            ls_increase=scalar(0.0),
            inner_ends=jnp.zeros(len(INNER_ENDS), jnp.int32),
        )

    def end_round(state: PenaltyState, data) -> PenaltyState:
        """λ_{k+1} = λ_k + μ_k c(θ_k) (auglag, paper; textbook: c(θ_{k+1}); authors' code:
        2μ_k c(θ_k)),
        μ_{k+1} = ρ μ_k, fresh L-BFGS memory; θ_{k+1} starts the next round."""
        c_end = constraint_fn(state.params, data)
        lam = state.lam
        if multiplier_update == "paper":
            lam = lam + state.mu * state.c_start
        elif multiplier_update == "textbook":
            lam = lam + state.mu * c_end
        elif multiplier_update == "authors_code":
            lam = lam + 2 * state.mu * state.c_start
        mu = state.mu * rho
        k = state.round + 1
        return state._replace(
            opt_state=opt.init(state.params),
            mu=mu,
            lam=lam,
            round=k,
            c_start=c_end,
            inner_iter=jnp.int32(0),
            done=(mu >= mu_max) | (k >= max_rounds),
        )

    def step(state: PenaltyState, data) -> PenaltyState:
        fn = lambda p: phi(p, data, state.mu, state.lam)
        value, grad = optax.value_and_grad_from_state(fn)(state.params, state=state.opt_state)
        updates, opt_state = opt.update(
            grad, state.opt_state, state.params, value=value, grad=grad, value_fn=fn
        )
        # optax's line search reports a positive decrease error when no trial step met its
        # test; it then returns its last trial step all the same
        failed = optax.tree_utils.tree_get(opt_state, "info").decrease_error > 0
        if inner.on_linesearch_failure == "stop":
            updates = jax.tree.map(lambda u: jnp.where(failed, jnp.zeros_like(u), u), updates)
            rise = jnp.zeros_like(value)
        else:  # φ at the step taken (the line search's last value) minus φ before it
            rise = jnp.maximum(optax.tree_utils.tree_get(opt_state, "value") - value, 0.0)
        params = optax.apply_updates(state.params, updates)
        grad_inf = optax.tree_utils.tree_max(jax.tree.map(jnp.abs, grad))
        step_norm = optax.tree_utils.tree_norm(updates)
        l = state.inner_iter + 1
        tol_met = (grad_inf <= inner.gtol) | (step_norm <= inner.ftol)
        stopped = failed if inner.on_linesearch_failure == "stop" else jnp.array(False)
        end = tol_met | (l >= inner.inner_maxiter) | stopped
        why = jnp.where(
            stopped,
            3,
            jnp.where(grad_inf <= inner.gtol, 0, jnp.where(step_norm <= inner.ftol, 1, 2)),
        )
        ended = jnp.where(end, jax.nn.one_hot(why, len(INNER_ENDS), dtype=jnp.int32), 0)
        new = state._replace(
            inner_ends=state.inner_ends + ended,
            params=params,
            opt_state=opt_state,
            inner_iter=l,
            iteration=state.iteration + 1,
            value=value,
            grad_inf=grad_inf,
            step_norm=step_norm,
            inner_converged=tol_met,
            ls_failures=state.ls_failures + failed.astype(jnp.int32),
            ls_increase=jnp.maximum(state.ls_increase, jnp.where(jnp.isfinite(rise), rise, 0.0)),
        )
        return jax.lax.cond(end, end_round, lambda s, d: s, new, data)

    def log(state: PenaltyState, data) -> dict:
        c = constraint_fn(state.params, data)
        return {
            "round": state.round,
            "inner_iter": state.inner_iter,
            "mu": state.mu,
            "objective": loss_fn(state.params, data),
            "constraint_norm": jnp.linalg.norm(c),
            "max_abs_c": jnp.max(jnp.abs(c)),
            "merit": phi(state.params, data, state.mu, state.lam),
            "grad_inf": state.grad_inf,
            "step_norm": state.step_norm,
            "ls_failures": state.ls_failures,
            "ls_increase": state.ls_increase,
            **{f"inner_ends_{w}": state.inner_ends[i] for i, w in enumerate(INNER_ENDS)},
        }

    finite = lambda s: tree_all_finite(s.params) & jnp.isfinite(s.value)
    per_round = max_rounds > 1
    host = None
    if inner.solver == "scipy":
        host = scipy_rounds(phi, end_round, log, finite, inner, dtype)
    return Method(
        name=name,
        init=init,
        step=step,
        done=lambda s: s.done,
        finite=finite,
        log=log,
        # a schedule of rounds has converged when it completes; a single solve only when
        # its tolerance (not l_max) stopped it
        converged=(lambda s: jnp.array(True)) if per_round else (lambda s: s.inner_converged),
        params=lambda s: s.params,
        iterations=lambda s: s.iteration,
        progress=(lambda s: s.round)
        if per_round
        else (lambda s: s.inner_iter + s.round * inner.inner_maxiter),
        progress_total=max_rounds if per_round else inner.inner_maxiter,
        progress_unit="round" if per_round else "it",
        run=host,
    )


# Why a SciPy inner solve stopped, per round in the history (``inner_stop``): SciPy's
# L-BFGS-B status (0: ‖projected ∇‖∞ ≤ gtol; 1: maxiter or maxfun; 2: its line search
# failed, ABNORMAL_TERMINATION_IN_LNSRCH) or the callback's stop (3: ‖θ^{l+1} − θ^l‖ ≤ f_tol,
# the authors'; 4: the time budget or the iteration cap).
INNER_STOPS = {"ftol": 3, "time": 4, "cap": 4}


def scipy_rounds(phi, end_round, log, finite, inner: InnerConfig, dtype):
    """The rounds of :func:`lbfgs_rounds` with each inner solve by SciPy's L-BFGS-B, as the
    authors' code runs them (module doc): a host driver for :func:`methods.driver.run_chunked`
    (same arguments, same :class:`RunResult`). One history row per round; the time budget,
    the iteration cap and a stop request are checked at every inner iteration (SciPy's
    callback), checkpoints are taken at round boundaries."""
    from jax.flatten_util import ravel_pytree
    from scipy.optimize import minimize

    def run(
        method,
        state,
        data,
        *,
        max_steps,
        log_every,
        time_budget_s,
        on_chunk,
        seeds,
        data_axes,
        diverged,
        history,
        checkpoint_every,
        on_checkpoint,
        should_stop,
    ):
        del log_every, data_axes  # one history row per round
        if seeds is not None:
            raise ValueError("solver=scipy runs one seed per process: use seeds=1")
        theta, unravel = ravel_pytree(state.params)
        value_and_grad = jax.jit(
            lambda x, mu, lam: jax.value_and_grad(lambda y: phi(unravel(y), data, mu, lam))(x)
        )
        t0 = time.perf_counter()
        value_and_grad = value_and_grad.lower(theta, state.mu, state.lam).compile()
        end, log_fn, finite_fn = jax.jit(end_round), jax.jit(log), jax.jit(finite)
        compile_s = time.perf_counter() - t0
        resumed = history is not None
        history = list(history) if resumed else []
        diverged = bool(diverged) if diverged is not None else False

        def record(st, wall, stop=None):
            row = {
                "iteration": int(st.iteration),
                "wall_s": wall,
                **{k: float(v) for k, v in jax.device_get(log_fn(st, data)).items()},
                **({"inner_stop": stop} if stop is not None else {}),
            }
            if on_chunk is not None:
                on_chunk(st, row)
            history.append(row)

        if not resumed:
            record(state, 0.0)
        t0 = time.perf_counter() - (history[-1]["wall_s"] if history else 0.0)
        timed_out, rounds = False, 0

        def inner_solve(x0, mu, lam, left):
            """One round's SciPy L-BFGS-B from x0: (x, iterations, last step, why, success),
            ``why`` None or the callback's stop: ftol (the authors'), time, cap, stop."""
            track = {"x": x0, "n": 0, "step": np.inf, "why": None}

            def fun(x):  # φ_k and ∇φ_k in the run's precision, handed to SciPy in float64
                v, g = value_and_grad(jnp.asarray(x, dtype), mu, lam)
                return float(v), np.asarray(g, np.float64)

            def callback(intermediate_result):
                x = intermediate_result.x
                track["step"] = float(np.linalg.norm(x - track["x"]))
                track["x"], track["n"] = x.copy(), track["n"] + 1
                if track["step"] <= inner.ftol:
                    track["why"] = "ftol"
                elif time.perf_counter() - t0 > time_budget_s:
                    track["why"] = "time"
                elif track["n"] >= left:
                    track["why"] = "cap"
                elif should_stop is not None and should_stop():
                    track["why"] = "stop"
                if track["why"]:
                    raise StopIteration

            res = minimize(
                fun,
                x0,
                jac=True,
                method="L-BFGS-B",
                callback=callback,
                options={
                    "maxiter": min(inner.inner_maxiter, left),
                    "gtol": inner.gtol,
                    "ftol": 0.0,
                    "maxcor": inner.memory,
                },
            )
            stop = INNER_STOPS.get(track["why"], res.status)
            return track["x"], track["n"], track["step"], track["why"], bool(res.success), stop

        while not (bool(state.done) or int(state.iteration) >= max_steps or diverged):
            if time.perf_counter() - t0 > time_budget_s:
                timed_out = True
                break
            left = max_steps - int(state.iteration)
            x0 = np.asarray(ravel_pytree(state.params)[0], np.float64)
            x, n, step, why, success, stop = inner_solve(x0, state.mu, state.lam, left)
            stop_now = why == "stop"
            if not stop_now:  # a stop request drops the unfinished round: resume redoes it
                value, grad = value_and_grad(jnp.asarray(x, dtype), state.mu, state.lam)
                real = state.value.dtype
                new = state._replace(
                    params=unravel(jnp.asarray(x, dtype)),
                    inner_iter=jnp.int32(n),
                    iteration=state.iteration + n,
                    value=value.astype(real),
                    grad_inf=jnp.max(jnp.abs(grad)).astype(real),
                    step_norm=jnp.asarray(step, real),
                    inner_converged=jnp.array(success or why == "ftol"),
                    ls_failures=state.ls_failures + int(stop == 2),
                    inner_ends=state.inner_ends.at[{0: 0, 3: 1, 1: 2, 2: 3}.get(stop, 0)].add(
                        int(stop in (0, 1, 2, 3))
                    ),
                )
                if not bool(finite_fn(new)):
                    diverged = True  # keep the last finite iterate
                    break
                if why in ("time", "cap"):  # the round was cut: no multiplier / μ step
                    state, timed_out = new, why == "time"
                    record(state, time.perf_counter() - t0, stop)
                    break
                state = end(new, data)
                rounds += 1
                record(state, time.perf_counter() - t0, stop)
            if on_checkpoint is not None and (
                stop_now or (checkpoint_every and rounds % checkpoint_every == 0)
            ):
                on_checkpoint(state, jnp.array(diverged), history)
            if stop_now:
                raise Interrupted(int(state.iteration))
        status = run_status(
            bool(state.done),
            bool(method.converged(state)),
            diverged,
            int(state.iteration),
            timed_out=timed_out,
            max_steps=max_steps,
        )
        return RunResult(state, status, history, compile_s, time.perf_counter() - t0)

    return run


def penalty_method(
    problem, cfg: PenaltyConfig, dtype, *, multiplier_update=None, name="penalty"
) -> Method:
    return lbfgs_rounds(
        name,
        problem.loss,
        problem.constraints,
        cfg,
        mu0=cfg.mu0,
        rho=cfg.rho,
        mu_max=cfg.mu_limit,
        max_rounds=cfg.n_rounds,
        multiplier_update=multiplier_update,
        dtype=dtype,
    )


def auglag_method(problem, cfg: AuglagConfig, dtype) -> Method:
    update = getattr(cfg, "multiplier_update", "paper")
    return penalty_method(problem, cfg, dtype, multiplier_update=update, name="auglag")


def pinn_method(problem, cfg: PinnConfig, dtype) -> Method:
    return lbfgs_rounds(
        "pinn",
        problem.loss,
        problem.constraints,
        cfg,
        mu0=cfg.mu,
        rho=1.0,
        mu_max=math.inf,
        max_rounds=1,
        multiplier_update=None,
        dtype=dtype,
    )

"""Trust-region SQP for min f(θ) s.t. c(θ) = 0 (trSQP-PINN §3, Algorithm 3).

Byrd–Omojokun step with radius Δ_k, as a *descent* (normal + tangential step) and a
*search* (merit ratio test and radius update), every piece a pure jittable function:

1. Normal step ñ = argmin ‖c + Jñ‖² s.t. ‖ñ‖ ≤ νΔ by the dogleg between the Cauchy point
   and the least-norm Newton point −J⁺c, as the authors' code does it (SciPy's modified
   dogleg, :func:`normal_step`).
2. Tangential step t = argmin (∇f + Hñ)ᵀt + ½tᵀHt s.t. Jt = 0, ‖ñ + t‖ ≤ Δ by projected
   CG (Steihaug: stops at negative curvature or the boundary; as the authors' code, at
   ‖Pg̃‖² < min(0.01‖Pg̃₀‖, 0.1‖Pg̃₀‖²) or after n − m iterations) (:func:`projected_cg`).
   d = ñ + t.
3. Merit φ_μ = f + μ‖c‖₂. μ is raised so that μ ≥ (∇fᵀd + ½dᵀHd) / ((1 − 0.3)(‖c‖ − ‖c + Jd‖))
   (Alg. 3 line 6), which gives Pred ≥ 0.3 μ (‖c‖ − ‖c + Jd‖); η = Ared / Pred.
4. Paper radius rule: η ≥ η_upp → accept, Δ ← ρΔ; η_low ≤ η < η_upp → accept; η < η_low →
   reject, Δ ← Δ/ρ. After an accepted step λ is recomputed by least squares,
   λ_{k+1} = argmin ‖∇f_{k+1} + J_{k+1}ᵀλ‖, and H is updated with the paper's secant pair
   s_k = θ_{k+1} − θ_k, y_k = ∇L(θ_{k+1}, λ_{k+1}) − ∇L(θ_k, λ_k) (§3, ∇L_k := ∇L(θ_k, λ_k)).
5. Stop when a step is rejected and (‖d‖ ≤ xtol or ‖∇L‖∞ ≤ gtol), or after K_max
   iterations. Algorithm 3 (line 14) stops when η_k < η_low and (‖θ_{k+1} − θ_k‖ ≤ f_tol or
   ‖∇L_{k+1}‖∞ ≤ g_tol); read literally θ_{k+1} = θ_k after a rejection, which would stop at
   the first rejected step, so we read θ_{k+1} − θ_k there as the rejected trial step d
   [our reading]. A run that stops before K_max is ``converged`` when it ends at a KKT point
   (‖∇L‖∞ ≤ gtol and ‖c‖∞ ≤ ctol), else ``stalled``: the status names where it ended, it
   does not change when it stops.

The defaults are Algorithm 3 as the paper writes it, with the stop rule read as in 5.
Options that differ from it, all off by default, and labelled as this project's (or the
reference code's) wherever they appear:

* ``radius_rule="scipy"``: the authors' reference code's radius update (SciPy's
  ``trust-constr`` rule), for comparison with their released numbers.
* ``objective_reduction="sum"``: the reference code's objective Σ instead of the mean.
* ``secant_multiplier="current"`` (the authors' code's): y_k with λ_{k+1} at both ends,
  y = ∇L(θ_{k+1}, λ_{k+1}) − ∇L(θ_k, λ_{k+1}), the textbook choice (Nocedal & Wright
  §18.3), and what the authors' ``SR1`` and ``dBFGS`` compute (``mulk1`` at both points):
  it approximates ∇²_θθ L at one multiplier, where the paper's y also carries the change
  of λ, (J_kᵀ(λ_{k+1} − λ_k)), which is not curvature.
* ``normal_step="dogleg"``, ``cg_test="norm"``, ``cg_maxiter=500`` (this project's earlier
  defaults, until 2026-12-06): the paper names "the dogleg method and projected conjugate
  gradient method" (§3) without their details; the authors' code solves the two
  subproblems with SciPy's ``modified_dogleg`` (which also tries the Newton point scaled
  to the boundary) and ``projected_cg`` (‖Pr‖² against the tolerance, at most n − m
  iterations), which are the defaults.
* ``tiny_pred_exact=True`` (this project's option): η_k = 1 (accept) when Pred is at the
  roundoff level of φ, |Pred| ≤ 1e-14 (1 + |φ|). Algorithm 3 and the authors' code take
  η_k = Ared/Pred as it comes, so such a step is accepted or rejected by roundoff. Why offer
  it: near a solution in float64 Ared and Pred are both roundoff and η is noise. It was
  always on before 2026-12-05 (this project's earlier default); read with Algorithm 3's
  stop, which waits for a rejected step, it can keep a run accepting roundoff steps.
* ``kkt_stop=True`` (this project's option): also stop as soon as an iterate is a KKT
  point (‖∇L‖∞ ≤ gtol and ‖c‖∞ ≤ ctol), without waiting for the rejected step that
  Algorithm 3 stops on. Algorithm 3 has no such test. Why offer it: on small NLPs an exact
  solution can keep accepting steps of round-off size, and a run there only wastes
  iterations. It was on by default before 2026-12-05 (this project's earlier default).
* ``second_order_correction=True`` (this project's option): when a step is rejected and
  is mostly tangential (‖ñ‖ ≤ 0.1‖t‖), the point θ + d − J⁺c(θ + d) is tried with the
  same Pred and accepted if its ratio passes η_low (Byrd, Hribar & Nocedal 1999, p. 892;
  Nocedal & Wright §15.4). Algorithm 3 has no such step, and the authors' code defines an
  SOC threshold but never applies it. Why offer it: the non-smooth merit rejects good
  steps near feasibility (the Maratos effect) and the radius collapses.

Projections use the SVD of the M × n Jacobian (M small) with a rank cut-off, which is the
QR-with-rank-check of the spec done with singular values. A rejected step reuses f, c,
∇f, J and the factorisation at the current point: only f and c are evaluated at the trial
point, and ∇f, J only once the step is accepted.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from methods.driver import Method, tree_all_finite
from methods.pde import quasi_newton as qn
from problems.common.base import check, check_choice, check_positive_int

SECANT_MULTIPLIERS = ("paper", "current")
RCOND = 1e-10  # singular values below RCOND · s_max are treated as zero (rank check)
CG_CONVERGED, CG_NEGATIVE_CURVATURE, CG_BOUNDARY, CG_MAXITER = 0, 1, 2, 3


# --- the constraint Jacobian: projections and least squares ------------------------------


class Basis(NamedTuple):
    """J = U diag(s) Vᵀ with the small singular values cut (rank check)."""

    U: jax.Array  # (M, M)
    s_inv: jax.Array  # (M,), 0 where cut
    V: jax.Array  # (n, M), columns zeroed where cut


def basis(J) -> Basis:
    U, s, Vt = jnp.linalg.svd(J, full_matrices=False)
    keep = s > RCOND * s[0]
    return Basis(U, jnp.where(keep, 1.0 / jnp.where(keep, s, 1.0), 0.0), Vt.T * keep)


def project(b: Basis, v):
    """P v: the component of v in the null space of J."""
    return v - b.V @ (b.V.T @ v)


def least_norm_newton(b: Basis, c):
    """−J⁺c: the least-norm solution of J n = −c."""
    return -(b.V @ (b.s_inv * (b.U.T @ c)))


def multipliers(b: Basis, g):
    """λ = argmin ‖g + Jᵀλ‖₂ (least-squares Lagrange multipliers)."""
    return -(b.U @ (b.s_inv * (b.V.T @ g)))


def to_boundary(p, d, radius):
    """τ ≥ 0 with ‖p + τd‖ = radius (p inside the ball)."""
    a = d @ d
    b = 2 * (p @ d)
    cc = p @ p - radius**2
    disc = jnp.sqrt(jnp.maximum(b * b - 4 * a * cc, 0.0))
    return jnp.where(a > 0, (-b + disc) / (2 * jnp.where(a > 0, a, 1.0)), 0.0)


# --- the descent: normal and tangential steps --------------------------------------------


NORMAL_STEPS = ("modified_dogleg", "dogleg")


def segment_exit(z, p, radius):
    """(τ, meets): τ ∈ [0, 1] where the segment z + τp leaves the ball ‖·‖ ≤ radius, and
    whether the segment meets the ball at all (SciPy's ``sphere_intersections``: the
    larger root, clipped to the segment, with its numerically stable quadratic formula)."""
    a = p @ p
    b = 2 * (z @ p)
    cc = z @ z - radius**2
    disc = b * b - 4 * a * cc
    sq = jnp.sqrt(jnp.maximum(disc, 0.0))
    aux = b + jnp.where(b >= 0, sq, -sq)
    safe = jnp.where(aux != 0, aux, 1.0)
    r1, r2 = -aux / (2 * jnp.where(a > 0, a, 1.0)), -2 * cc / safe
    ta, tb = jnp.minimum(r1, r2), jnp.maximum(r1, r2)
    meets = (a > 0) & (disc >= 0) & (aux != 0) & (tb >= 0) & (ta <= 1)
    return jnp.clip(tb, 0.0, 1.0), meets


def normal_step(J, b: Basis, c, radius, rule: str = "modified_dogleg"):
    """Dogleg for min ‖c + Jn‖² s.t. ‖n‖ ≤ radius (= νΔ). The least-norm Newton point −J⁺c
    if it lies inside; otherwise:

    ``modified_dogleg`` (the default: the authors' code, SciPy's ``modified_dogleg`` of
    ``trust-constr``; the paper names "the dogleg method" without its details): x₁ =
    where the segment from the Cauchy point to the Newton point leaves the ball (the Cauchy
    point scaled to the boundary if the segment misses it), x₂ = the Newton point scaled to
    the boundary, and whichever of the two leaves the smaller ‖c + Jn‖.
    ``dogleg`` (this project's earlier default, the textbook dogleg): the Cauchy point scaled
    to the boundary if it lies outside, else where the segment to the Newton point leaves.
    """
    newton = least_norm_newton(b, c)
    grad = J.T @ c  # ∇ ½‖c + Jn‖² at n = 0
    Jg = J @ grad
    alpha = (grad @ grad) / jnp.maximum(Jg @ Jg, jnp.finfo(c.dtype).tiny)
    cauchy = -alpha * grad
    n_newton, n_cauchy = jnp.linalg.norm(newton), jnp.linalg.norm(cauchy)
    scaled = cauchy * (radius / jnp.where(n_cauchy > 0, n_cauchy, 1.0))
    if rule == "dogleg":
        dogleg = cauchy + to_boundary(cauchy, newton - cauchy, radius) * (newton - cauchy)
        return jnp.where(n_newton <= radius, newton, jnp.where(n_cauchy >= radius, scaled, dogleg))
    tau, meets = segment_exit(cauchy, newton - cauchy, radius)
    x1 = jnp.where(
        meets, cauchy + tau * (newton - cauchy), jnp.where(n_cauchy > radius, scaled, cauchy)
    )
    x2 = newton * jnp.minimum(1.0, radius / jnp.where(n_newton > 0, n_newton, 1.0))
    best = jnp.where(jnp.linalg.norm(c + J @ x1) < jnp.linalg.norm(c + J @ x2), x1, x2)
    return jnp.where(n_newton <= radius, newton, best)


class CGResult(NamedTuple):
    t: jax.Array
    iterations: jax.Array
    reason: jax.Array  # CG_CONVERGED / CG_NEGATIVE_CURVATURE / CG_BOUNDARY / CG_MAXITER


CG_TESTS = ("squared", "norm")


def projected_cg(
    hvp: Callable, b: Basis, g, n_step, radius, maxiter: int, test: str = "squared"
) -> CGResult:
    """Steihaug projected CG for min gᵀt + ½tᵀHt s.t. Jt = 0, ‖n_step + t‖ ≤ radius.

    The residual is replaced by its projection at every iteration (Gould, Hribar & Nocedal
    2001, "residual update"): rᵀPr is then computed as ‖Pr‖², which stays accurate when the
    projected gradient is many orders smaller than the gradient (near a KKT point).

    Converged when, with tol = min(0.01‖Pr₀‖, 0.1‖Pr₀‖²): ``squared`` (the default: the
    authors' code, SciPy's ``projected_cg``, compares ‖Pr‖² with tol, and tol ≥ 1e-25)
    ‖Pr‖² < tol; ``norm`` (this project's earlier default) ‖Pr‖ ≤ tol.
    """
    z = project(b, g)
    r = z
    rz = z @ z
    gnorm = jnp.sqrt(jnp.maximum(rz, 0.0))
    tol = jnp.minimum(0.01 * gnorm, 0.1 * gnorm**2)
    if test == "squared":
        tol = jnp.maximum(tol, 1e-25)
        met = lambda rz: rz < tol  # noqa: E731
    else:
        met = lambda rz: jnp.sqrt(jnp.maximum(rz, 0.0)) <= tol  # noqa: E731
    reason0 = jnp.where(met(rz), CG_CONVERGED, -1).astype(jnp.int32)

    def cond(st):
        return st[-1] < 0

    def body(st):
        t, r, z, d, rz, k, _ = st
        Hd = hvp(d)
        dHd = d @ Hd
        alpha = rz / jnp.where(dHd > 0, dHd, 1.0)
        t_new = t + alpha * d
        t_edge = t + to_boundary(n_step + t, d, radius) * d
        negative = dHd <= 0
        outside = jnp.linalg.norm(n_step + t_new) >= radius
        z_new = project(b, r + alpha * Hd)
        r_new = z_new
        rz_new = z_new @ z_new
        converged = met(rz_new)
        k = k + 1
        reason = jnp.where(
            negative,
            CG_NEGATIVE_CURVATURE,
            jnp.where(
                outside,
                CG_BOUNDARY,
                jnp.where(converged, CG_CONVERGED, jnp.where(k >= maxiter, CG_MAXITER, -1)),
            ),
        )
        reason = reason.astype(jnp.int32)
        d_new = -z_new + (rz_new / jnp.where(rz != 0, rz, 1.0)) * d
        t = jnp.where(negative | outside, t_edge, t_new)
        return t, r_new, z_new, d_new, rz_new, k, reason

    init = (jnp.zeros_like(g), r, z, -z, rz, jnp.int32(0), reason0)
    t, *_, k, reason = jax.lax.while_loop(cond, body, init)
    return CGResult(t, k, reason)


# --- the search: merit parameter ---------------------------------------------------------


def merit_update(quad, vpred, mu, factor=0.3):
    """μ⁺ ≥ quad / ((1 − factor) vpred) (Alg. 3 line 6) and Pred = −quad + μ⁺ vpred.

    ``quad`` = ∇fᵀd + ½dᵀHd, ``vpred`` = ‖c‖ − ‖c + Jd‖ ≥ 0; the result satisfies
    Pred ≥ factor · μ⁺ · vpred.
    """
    mu_req = quad / ((1 - factor) * jnp.where(vpred > 0, vpred, 1.0))
    mu = jnp.where(vpred > 0, jnp.maximum(mu, mu_req), mu)
    return mu, -quad + mu * vpred


def secant_y(g, J, lam, g_new, J_new, lam_new, multiplier: str = "paper"):
    """y_k of the quasi-Newton update after an accepted step θ_k → θ_{k+1}.

    ``paper`` (§3, y_k := ∇L_{k+1} − ∇L_k with ∇L_k = ∇L(θ_k, λ_k)):
        y = (∇f_{k+1} + J_{k+1}ᵀλ_{k+1}) − (∇f_k + J_kᵀλ_k);
    ``current`` (textbook; the authors' code's SR1 and damped BFGS take this one):
        y = (∇f_{k+1} + J_{k+1}ᵀλ_{k+1}) − (∇f_k + J_kᵀλ_{k+1}).
    """
    lam_old = lam if multiplier == "paper" else lam_new
    return (g_new + J_new.T @ lam_new) - (g + J.T @ lam_old)


# --- the descent: d_k = n_k + t_k ----------------------------------------------------------


def descent(s, H: Callable, cfg) -> tuple:
    """d_k = n_k + t_k: the normal step n_k (:func:`normal_step`, a dogleg on ‖c + Jn‖²
    inside νΔ_k) and the tangential step t_k (:func:`projected_cg` on the quadratic model in
    the null space of J_k, ‖n_k + t_k‖ ≤ Δ_k). Returns (n_k, the CG result, d_k)."""
    n_step = normal_step(s.J, s.basis, s.c, cfg.nu * s.radius, cfg.normal_step)
    maxiter = cfg.cg_maxiter
    if maxiter is None:  # the authors' code (SciPy's projected_cg): n − m
        maxiter = max(s.J.shape[1] - s.J.shape[0], 1)
    cg = projected_cg(H, s.basis, s.g + H(n_step), n_step, s.radius, maxiter, cfg.cg_test)
    return n_step, cg, n_step + cg.t


# --- the search: ratio test and radius -----------------------------------------------------


def ratio(merit, merit_new, pred, tiny_is_exact: bool = False):
    """η_k = Ared / Pred with Ared = φ(θ_k) − φ(θ_k + d_k), φ = f + μ‖c‖ (Algorithm 3, as
    the authors' code computes it; NaN, e.g. 0/0, is a rejection: −∞).

    ``tiny_is_exact`` (this project's option, its earlier default): when Pred is at the
    roundoff level of φ, take model and function to agree (η = 1, accept); non-finite η is
    then a rejection too.
    """
    eta = jnp.divide(merit - merit_new, pred)
    if tiny_is_exact:
        tiny = jnp.abs(pred) <= 1e-14 * (1 + jnp.abs(merit))
        eta = jnp.where(tiny, 1.0, eta)
        return jnp.where(jnp.isfinite(eta), eta, -jnp.inf)
    return jnp.where(jnp.isnan(eta), -jnp.inf, eta)


def new_radius(eta, radius, dn, cfg):
    """Δ_{k+1}. ``radius_rule=paper`` (Algorithm 3): ρΔ_k if η ≥ η_upp, Δ_k if accepted
    (η ≥ η_low), Δ_k/ρ otherwise. ``scipy``: the authors' reference code's rule (SciPy's
    equality-constrained trust-constr), which also uses ‖d_k‖."""
    accept = eta >= cfg.eta_low
    if cfg.radius_rule == "paper":
        return jnp.where(
            eta >= cfg.eta_upp, cfg.rho * radius, jnp.where(accept, radius, radius / cfg.rho)
        )
    shrink = jnp.clip((1 - cfg.eta_low) / (1 - eta) * dn, 0.1 * radius, 0.5 * radius)
    return jnp.where(
        eta >= 0.9,
        jnp.maximum(7 * dn, radius),
        jnp.where(
            eta >= cfg.eta_upp, jnp.maximum(2 * dn, radius), jnp.where(accept, radius, shrink)
        ),
    )


# --- configuration -------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class TrsqpConfig:
    """Constants of Algorithm 3 (trSQP-PINN App. A) and the implementation options."""

    hessian: str = "sr1"  # sr1 | damped_bfgs | identity
    memory: Any = "dense"  # dense (n × n, the paper) or k pairs (compact limited memory)
    radius_rule: str = "paper"  # paper | scipy (the authors' reference code's radius update)
    objective_reduction: str = "mean"  # mean | sum (the reference code's trSQP objective)
    radius0: float = 1.0  # Δ₀
    mu0: float = 1.0  # μ₋₁
    nu: float = 0.8  # ν, normal step within νΔ
    eta_low: float = 1e-8  # η_low: reject below
    eta_upp: float = 0.3  # η_upp: enlarge the radius above
    rho: float = 2.0  # ρ, radius factor
    merit_factor: float = 0.3  # Pred ≥ merit_factor · μ (‖c‖ − ‖c + Jd‖) (Alg. 3 line 6)
    xtol: float = 1e-9  # stop: a rejected step with ‖d‖ ≤ xtol ...
    gtol: float = 1e-9  # ... or ‖∇L‖∞ ≤ gtol
    ctol: float = 1e-10  # status converged: ends with ‖∇L‖∞ ≤ gtol and ‖c‖∞ ≤ ctol
    # True: also stop at the first KKT point (this project's option; not in Alg. 3)
    kkt_stop: bool = False
    # True: η = 1 when |Pred| ≤ 1e-14 (1 + |φ|) (this project's option; Alg. 3 and the
    # authors' code take Ared / Pred as it comes)
    tiny_pred_exact: bool = False
    max_iter: int = 20000  # K_max
    # projected CG iterations per step: null = n − m (the authors' code, SciPy's projected_cg;
    # the paper does not say); 500 was this project's earlier default
    cg_maxiter: int | None = None
    # CG's convergence test (projected_cg): squared (the authors' code: ‖Pr‖² < tol) | norm
    # (this project's earlier default: ‖Pr‖ ≤ tol)
    cg_test: str = "squared"
    # the normal step (normal_step): modified_dogleg (the authors' code, SciPy's) | dogleg
    # (this project's earlier default, the textbook dogleg)
    normal_step: str = "modified_dogleg"
    # paper: y_k = ∇L(θ_{k+1}, λ_{k+1}) − ∇L(θ_k, λ_k) (paper §3) | current: λ_{k+1} at both
    # ends (the textbook choice, and what the authors' code's SR1 / damped BFGS compute)
    secant_multiplier: str = "paper"
    # True: SOC retry of a rejected tangential step (this project's option, see the module doc;
    # not in Alg. 3 nor applied by the authors' code)
    second_order_correction: bool = False

    def __post_init__(self):
        check_choice(self.hessian, "method.hessian", qn.HESSIANS)
        check(
            self.memory == "dense"
            or (
                isinstance(self.memory, int)
                and not isinstance(self.memory, bool)
                and self.memory > 0
            ),
            "method.memory",
            f"must be 'dense' or a positive number of pairs, got {self.memory!r}",
        )
        check_choice(self.radius_rule, "method.radius_rule", ["paper", "scipy"])
        check_choice(self.objective_reduction, "method.objective_reduction", ["mean", "sum"])
        check_choice(self.secant_multiplier, "method.secant_multiplier", SECANT_MULTIPLIERS)
        for f in ("radius0", "mu0", "rho"):
            v = getattr(self, f)
            check(
                isinstance(v, (int, float)) and v > 0 and math.isfinite(v),
                f"method.{f}",
                f"must be a finite number > 0, got {v!r}",
            )
        check(self.rho > 1, "method.rho", f"must be > 1, got {self.rho!r}")
        for f in ("nu", "eta_upp", "merit_factor"):
            v = getattr(self, f)
            check(
                isinstance(v, (int, float)) and 0 < v < 1,
                f"method.{f}",
                f"must be in (0, 1), got {v!r}",
            )
        check(
            isinstance(self.eta_low, (int, float)) and 0 <= self.eta_low < self.eta_upp,
            "method.eta_low",
            f"must be in [0, eta_upp), got {self.eta_low!r}",
        )
        for f in ("xtol", "gtol", "ctol"):
            v = getattr(self, f)
            check(
                isinstance(v, (int, float)) and v >= 0,
                f"method.{f}",
                f"must be a number >= 0, got {v!r}",
            )
        check_positive_int(self.max_iter, "method.max_iter")
        if self.cg_maxiter is not None:
            check_positive_int(self.cg_maxiter, "method.cg_maxiter")
        check_choice(self.cg_test, "method.cg_test", CG_TESTS)
        check_choice(self.normal_step, "method.normal_step", NORMAL_STEPS)
        check(
            isinstance(self.tiny_pred_exact, bool),
            "method.tiny_pred_exact",
            f"must be true or false, got {self.tiny_pred_exact!r}",
        )
        check(
            isinstance(self.kkt_stop, bool),
            "method.kkt_stop",
            f"must be true or false, got {self.kkt_stop!r}",
        )
        check(
            isinstance(self.second_order_correction, bool),
            "method.second_order_correction",
            f"must be true or false, got {self.second_order_correction!r}",
        )


class TrsqpState(NamedTuple):
    theta: jax.Array  # θ_k (flat)
    lam: jax.Array  # λ_k
    f: jax.Array  # f(θ_k)
    c: jax.Array  # c(θ_k)
    g: jax.Array  # ∇f(θ_k)
    J: jax.Array  # ∇c(θ_k), (M, n)
    basis: Basis  # SVD of J
    hess: Any  # H_k
    radius: jax.Array  # Δ_k
    mu: jax.Array  # μ_k
    iteration: jax.Array
    eta: jax.Array  # ratio of the last step
    accepted: jax.Array
    step_norm: jax.Array  # ‖d‖ of the last trial step
    cg_iterations: jax.Array
    cg_reason: jax.Array
    qn_updated: jax.Array  # the last accepted step updated H (SR1 skip / damping guard)
    soc: jax.Array  # the last step was saved by a second-order correction
    done: jax.Array


def kkt_residual(s: TrsqpState):
    """‖∇f + Jᵀλ‖∞ at the current iterate."""
    return jnp.max(jnp.abs(s.g + s.J.T @ s.lam))


def trsqp_solver(f: Callable, c: Callable, n: int, cfg: TrsqpConfig, dtype):
    """init/step of trSQP for flat f(θ, data), c(θ, data) -> (M,)."""
    memory = None if cfg.memory == "dense" else int(cfg.memory)
    hessian = qn.approximation(cfg.hessian, memory)  # H_k: its init / hvp / update
    hvp = hessian.hvp

    def first_order(theta, data):
        fv, g = jax.value_and_grad(f)(theta, data)
        cv = c(theta, data)
        J = jax.jacrev(c)(theta, data)
        return fv, g, cv, J

    def init(theta, data) -> TrsqpState:
        fv, g, cv, J = first_order(theta, data)
        b = basis(J)
        z = lambda v: jnp.asarray(v, dtype)
        return TrsqpState(
            theta=theta,
            lam=multipliers(b, g),
            f=fv,
            c=cv,
            g=g,
            J=J,
            basis=b,
            hess=hessian.init(n, dtype),
            radius=z(cfg.radius0),
            mu=z(cfg.mu0),
            iteration=jnp.int32(0),
            eta=z(jnp.nan),
            accepted=jnp.array(False),
            step_norm=z(jnp.inf),
            cg_iterations=jnp.int32(0),
            cg_reason=jnp.int32(-1),
            qn_updated=jnp.array(False),
            soc=jnp.array(False),
            done=jnp.array(False),
        )

    def step(s: TrsqpState, data) -> TrsqpState:
        H = lambda v: hvp(s.hess, v)
        n_step, cg, d = descent(s, H, cfg)
        quad = s.g @ d + 0.5 * d @ H(d)
        c_norm = jnp.linalg.norm(s.c)
        vpred = c_norm - jnp.linalg.norm(s.c + s.J @ d)
        mu, pred = merit_update(quad, vpred, s.mu, cfg.merit_factor)
        merit = s.f + mu * c_norm
        theta_new = s.theta + d
        f_new, c_new = f(theta_new, data), c(theta_new, data)
        eta = ratio(merit, f_new + mu * jnp.linalg.norm(c_new), pred, cfg.tiny_pred_exact)
        soc = jnp.array(False)
        if cfg.second_order_correction:
            # Byrd, Hribar & Nocedal (1999) p. 892, as in SciPy's trust-constr: a rejected
            # step that is mostly tangential (‖ñ‖ ≤ 0.1‖t‖) is retried from θ + d − J⁺c(θ + d),
            # the least-norm correction of the constraint curvature (the Maratos effect).
            try_soc = (eta < cfg.eta_low) & (jnp.linalg.norm(n_step) <= 0.1 * jnp.linalg.norm(cg.t))

            def correct(_):
                theta_c = theta_new + least_norm_newton(s.basis, c_new)
                f_c, c_c = f(theta_c, data), c(theta_c, data)
                eta_c = ratio(merit, f_c + mu * jnp.linalg.norm(c_c), pred, tiny_is_exact=False)
                ok = jnp.isfinite(eta_c) & (eta_c >= cfg.eta_low)
                pick = lambda a, b: jnp.where(ok, a, b)
                return (
                    pick(theta_c, theta_new),
                    pick(f_c, f_new),
                    pick(c_c, c_new),
                    pick(eta_c, eta),
                    ok,
                )

            theta_new, f_new, c_new, eta, soc = jax.lax.cond(
                try_soc, correct, lambda _: (theta_new, f_new, c_new, eta, soc), None
            )
        accept = eta >= cfg.eta_low
        dn = jnp.linalg.norm(d)
        radius = new_radius(eta, s.radius, dn, cfg)

        def accepted(_):
            g_new = jax.grad(f)(theta_new, data)
            J_new = jax.jacrev(c)(theta_new, data)
            b_new = basis(J_new)
            lam = multipliers(b_new, g_new)
            y = secant_y(s.g, s.J, s.lam, g_new, J_new, lam, cfg.secant_multiplier)
            hess, updated = hessian.update(s.hess, theta_new - s.theta, y)
            return s._replace(
                theta=theta_new,
                lam=lam,
                f=f_new,
                c=c_new,
                g=g_new,
                J=J_new,
                basis=b_new,
                hess=hess,
                qn_updated=updated,
            )

        new = jax.lax.cond(
            accept, accepted, lambda _: s._replace(qn_updated=jnp.array(False)), None
        )
        new = new._replace(
            radius=radius,
            mu=mu,
            iteration=s.iteration + 1,
            eta=eta,
            accepted=accept,
            step_norm=dn,
            cg_iterations=cg.iterations,
            cg_reason=cg.reason,
            soc=soc,
        )
        stalled = (~accept) & ((dn <= cfg.xtol) | (kkt_residual(new) <= cfg.gtol))
        kkt = at_kkt_point(new, cfg) & cfg.kkt_stop
        return new._replace(done=stalled | kkt | (new.iteration >= cfg.max_iter))

    return init, step


def at_kkt_point(s: TrsqpState, cfg: TrsqpConfig) -> jax.Array:
    """The convergence test: ‖∇L‖∞ ≤ gtol and ‖c‖∞ ≤ ctol. A run that stops before K_max
    elsewhere (a rejected step with ‖d‖ ≤ xtol, or ‖∇L‖∞ ≤ gtol with c not met) is
    ``stalled``, not ``converged``; with ``kkt_stop`` it is also a stop."""
    return (kkt_residual(s) <= cfg.gtol) & (jnp.max(jnp.abs(s.c)) <= cfg.ctol)


def trsqp_method(problem, cfg: TrsqpConfig, dtype) -> Method:
    """trSQP on a constrained-learning problem: θ is the flattened network parameters."""
    params0 = problem.init_params(jax.random.PRNGKey(0))
    flat0, unravel = ravel_pytree(params0)
    scale = float(problem.cfg.n_data) if cfg.objective_reduction == "sum" else 1.0
    f = lambda th, data: scale * problem.loss(unravel(th), data)
    c = lambda th, data: problem.constraints(unravel(th), data)
    init, step = trsqp_solver(f, c, flat0.shape[0], cfg, dtype)

    def log(s: TrsqpState, data) -> dict:
        return {
            "objective": s.f / scale,
            "constraint_norm": jnp.linalg.norm(s.c),
            "max_abs_c": jnp.max(jnp.abs(s.c)),
            "merit": s.f + s.mu * jnp.linalg.norm(s.c),
            "mu": s.mu,
            "radius": s.radius,
            "eta": s.eta,
            "accepted": s.accepted,
            "step_norm": s.step_norm,
            "cg_iterations": s.cg_iterations,
            "cg_reason": s.cg_reason,
            "kkt_residual": kkt_residual(s),
            "soc": s.soc,
        }

    return Method(
        name="trsqp",
        init=lambda params, data: init(ravel_pytree(params)[0], data),
        step=step,
        done=lambda s: s.done,
        finite=lambda s: tree_all_finite((s.theta, s.f, s.c, s.g)),
        converged=lambda s: at_kkt_point(s, cfg),
        log=log,
        stalled=lambda s: (s.iteration < cfg.max_iter) & ~at_kkt_point(s, cfg),
        params=lambda s: unravel(s.theta),
        iterations=lambda s: s.iteration,
        progress=lambda s: s.iteration,
        progress_total=cfg.max_iter,
    )

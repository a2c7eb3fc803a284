"""trSQP: its pieces, and convergence on small equality-constrained NLPs."""

import math

import jax.numpy as jnp
import numpy as np
import pytest

from methods.driver import run_chunked
from methods.pde import quasi_newton as qn
from methods.pde.trsqp import (
    TrsqpConfig,
    at_kkt_point,
    basis,
    merit_update,
    new_radius,
    normal_step,
    projected_cg,
    ratio,
    trsqp_solver,
)
from problems import ConfigError


def rng(seed=0):
    return np.random.default_rng(seed)


def solve(f, c, x0, **kw):
    cfg = TrsqpConfig(**{"max_iter": 3000, "gtol": 1e-10, "ctol": 1e-11, **kw})
    init, step = trsqp_solver(f, c, x0.shape[0], cfg, jnp.float64)
    from methods.driver import Method

    m = Method(
        "trsqp",
        init,
        step,
        lambda s: s.done,
        lambda s: jnp.isfinite(s.f),
        lambda s: at_kkt_point(s, cfg),
        lambda s, d: {"f": s.f},
        lambda s: s.theta,
        lambda s: s.iteration,
        lambda s: s.iteration,
        cfg.max_iter,
        stalled=lambda s: (s.iteration < cfg.max_iter) & ~at_kkt_point(s, cfg),
    )
    r = run_chunked(m, init(x0, None), None, max_steps=cfg.max_iter, log_every=100)
    s = r.state
    kkt = float(jnp.max(jnp.abs(s.g + s.J.T @ s.lam)))
    return np.asarray(s.theta), kkt, float(jnp.max(jnp.abs(s.c))), r


# --- small NLPs with known solutions --------------------------------------------------------


def circle():
    f = lambda x, d: x[0] + x[1]
    c = lambda x, d: jnp.array([x[0] ** 2 + x[1] ** 2 - 2.0])
    return f, c, jnp.array([2.0, 0.5]), np.array([-1.0, -1.0])


def hs7():
    """Hock–Schittkowski 7: min log(1 + x₁²) − x₂ s.t. (1 + x₁²)² + x₂² = 4 → (0, √3)."""
    f = lambda x, d: jnp.log1p(x[0] ** 2) - x[1]
    c = lambda x, d: jnp.array([(1 + x[0] ** 2) ** 2 + x[1] ** 2 - 4.0])
    return f, c, jnp.array([2.0, 2.0]), np.array([0.0, math.sqrt(3.0)])


def hs6():
    """Hock–Schittkowski 6: min (1 − x₁)² s.t. 10(x₂ − x₁²) = 0 → (1, 1)."""
    f = lambda x, d: (1 - x[0]) ** 2
    c = lambda x, d: jnp.array([10 * (x[1] - x[0] ** 2)])
    return f, c, jnp.array([-1.2, 1.0]), np.array([1.0, 1.0])


def convex_qp(n=8, m=3, seed=0):
    """min ½xᵀQx + pᵀx s.t. Ax = b, solution from the KKT system."""
    r = rng(seed)
    U, _ = np.linalg.qr(r.standard_normal((n, n)))
    Q = U @ np.diag(r.uniform(0.6, 1.4, n)) @ U.T
    p, A, b = r.standard_normal(n), r.standard_normal((m, n)), r.standard_normal(m)
    K = np.block([[Q, A.T], [A, np.zeros((m, m))]])
    x_star = np.linalg.solve(K, np.concatenate([-p, b]))[:n]
    Qj, pj, Aj, bj = map(jnp.asarray, (Q, p, A, b))
    f = lambda x, d: 0.5 * x @ Qj @ x + pj @ x
    c = lambda x, d: Aj @ x - bj
    return f, c, jnp.zeros(n), x_star


VARIANTS = [
    (h, mem, False)
    for h in qn.HESSIANS
    for mem in ("dense", 5)
    if not (h == "identity" and mem == 5)
] + [("sr1", "dense", True), ("sr1", 5, True)]


@pytest.mark.parametrize("problem", [circle, hs6, hs7, convex_qp])
@pytest.mark.parametrize("hessian,memory,soc", VARIANTS)
def test_trsqp_solves_small_nlps(problem, hessian, memory, soc):
    """Algorithm 3 (its stop: a rejected step with ‖d‖ ≤ xtol or ‖∇L‖∞ ≤ gtol) ends every
    small NLP at its solution, well before K_max; ``converged`` when it also passes the
    stricter KKT test (gtol 1e-10, ctol 1e-11 here), else ``stalled``."""
    f, c, x0, x_star = problem()
    x, kkt, cmax, r = solve(f, c, x0, hessian=hessian, memory=memory, second_order_correction=soc)
    assert kkt <= 1e-7 and cmax <= 1e-10, (kkt, cmax, r.status, int(r.state.iteration))
    np.testing.assert_allclose(x, x_star, atol=1e-7)
    assert int(r.state.iteration) < 3000 and r.status in ("converged", "stalled")


def test_roundoff_pred_taken_as_exact_keeps_accepting_at_the_solution():
    """``tiny_pred_exact`` (this project's earlier default) takes η = 1 once Pred is at
    roundoff: at the solution every step is then accepted, Algorithm 3's stop (a rejected
    step) never comes, and the run goes to K_max; Algorithm 3's η = Ared/Pred rejects a
    roundoff step and stops there, at the same solution."""
    f, c, x0, x_star = convex_qp()
    x, _, _, paper = solve(f, c, x0, hessian="damped_bfgs", memory=5)
    y, _, _, tiny = solve(f, c, x0, hessian="damped_bfgs", memory=5, tiny_pred_exact=True)
    assert int(paper.state.iteration) < 100 and not bool(paper.state.accepted)
    assert int(tiny.state.iteration) > 1000
    np.testing.assert_allclose(x, x_star, atol=1e-8)
    np.testing.assert_allclose(y, x_star, atol=1e-8)
    with pytest.raises(ConfigError, match="method.tiny_pred_exact"):
        TrsqpConfig(tiny_pred_exact=1)


def test_a_stop_short_of_the_convergence_test_is_a_stall():
    """With ctol below what float64 can reach, trSQP stops on a rejected step at ‖∇L‖∞ ≤
    gtol, at the solution but with ‖c‖∞ > ctol: status ``stalled``, not ``converged``; with
    an attainable ctol the same run is ``converged``."""
    f, c, x0, x_star = hs6()  # on the circle, c reaches exactly 0.0
    x, kkt, cmax, r = solve(f, c, x0, gtol=1e-8, ctol=1e-300)
    assert r.status == "stalled" and int(r.state.iteration) < 3000 and cmax > 1e-300
    np.testing.assert_allclose(x, x_star, atol=1e-7)
    assert solve(f, c, x0, gtol=1e-8, ctol=1e-12)[3].status == "converged"


def test_algorithm_3_stops_on_a_rejected_step_and_kkt_stop_is_an_option():
    """By default (Algorithm 3, line 14) a run ends only on a rejected step (or K_max), even
    after its iterates pass the KKT test; ``kkt_stop=True`` (this project's option) ends it
    at the first KKT point, on an accepted step and in fewer iterations. Both are at the
    solution and ``converged``."""
    f, c, x0, x_star = circle()
    _, _, _, paper = solve(f, c, x0)
    x, kkt, cmax, early = solve(f, c, x0, kkt_stop=True)
    assert not bool(paper.state.accepted) and int(paper.state.iteration) < 3000
    assert bool(early.state.accepted) and kkt <= 1e-10 and cmax <= 1e-11
    assert int(early.state.iteration) < int(paper.state.iteration)
    assert paper.status == early.status == "converged"
    np.testing.assert_allclose(x, x_star, atol=1e-7)
    np.testing.assert_allclose(np.asarray(paper.state.theta), x_star, atol=1e-7)
    with pytest.raises(ConfigError, match="method.kkt_stop"):
        TrsqpConfig(kkt_stop="yes")


# --- the pieces -----------------------------------------------------------------------------


@pytest.mark.parametrize("rule", ["modified_dogleg", "dogleg"])
def test_normal_step_is_newton_inside_and_dogleg_on_the_boundary(rule):
    r = rng(1)
    J, cvec = jnp.asarray(r.standard_normal((3, 10))), jnp.asarray(r.standard_normal(3))
    b = basis(J)
    newton = -J.T @ jnp.linalg.solve(J @ J.T, cvec)
    big = normal_step(J, b, cvec, 1e3, rule)
    np.testing.assert_allclose(big, newton, atol=1e-12)
    for radius in (1e-3, 0.1, 0.5 * float(jnp.linalg.norm(newton))):
        n = normal_step(J, b, cvec, radius, rule)
        np.testing.assert_allclose(float(jnp.linalg.norm(n)), radius, rtol=1e-12)
        # it decreases the linearised infeasibility
        assert float(jnp.linalg.norm(cvec + J @ n)) < float(jnp.linalg.norm(cvec))


def _scipy_modified_dogleg(J, c, radius):
    """SciPy's ``modified_dogleg`` (what the authors' code calls), with infinite bounds, on
    the data of ``normal_step``: A = J, b = c, Y the least-norm projection."""
    from scipy.optimize._trustregion_constr.projections import projections
    from scipy.optimize._trustregion_constr.qp_subproblem import modified_dogleg

    J = np.asarray(J)
    _, _, Y = projections(J)
    inf = np.full(J.shape[1], np.inf)
    return modified_dogleg(J, Y, np.asarray(c), radius, -inf, inf)


def test_modified_dogleg_is_scipys_and_beats_the_textbook_dogleg_where_they_differ():
    """The default normal step is SciPy's modified dogleg (the authors' code) to roundoff,
    at radii where the Newton point, the Cauchy-to-Newton segment or the Cauchy point
    decides. Where it differs from the textbook dogleg, it leaves the smaller ‖c + Jn‖."""
    differs = 0
    for seed in range(25):
        r = rng(seed)
        for m, n, cond in ((3, 8, 1e-2), (5, 6, 1e-3), (2, 3, 1e-1)):
            # ill-conditioned J: the Cauchy point can lie far from the Newton direction
            J = r.standard_normal((m, n)) * np.logspace(0, np.log10(cond), m)[:, None]
            cvec = r.standard_normal(m)
            Jj, cj = jnp.asarray(J), jnp.asarray(cvec)
            b = basis(Jj)
            newton = np.linalg.norm(np.linalg.lstsq(J, -cvec, rcond=None)[0])
            g = J.T @ cvec
            cauchy = np.linalg.norm((g @ g) / np.linalg.norm(J @ g) ** 2 * g)
            for radius in (0.05 * newton, 0.9 * newton, 2 * newton, 0.5 * cauchy, 1.5 * cauchy):
                ours = np.asarray(normal_step(Jj, b, cj, radius))
                ref = _scipy_modified_dogleg(J, cvec, radius)
                np.testing.assert_allclose(ours, ref, atol=1e-10 * max(1.0, np.abs(ref).max()))
                text = np.asarray(normal_step(Jj, b, cj, radius, "dogleg"))
                if np.abs(text - ours).max() > 1e-8:
                    differs += 1
                    infeas = [np.linalg.norm(cvec + J @ v) for v in (ours, text)]
                    assert infeas[0] < infeas[1]
    assert differs > 0  # the two rules part somewhere on these problems


@pytest.mark.parametrize("definite", [True, False])
def test_projected_cg_stays_in_the_null_space_and_the_region(definite):
    r = rng(2)
    n, m = 30, 4
    J = jnp.asarray(r.standard_normal((m, n)))
    A = r.standard_normal((n, n))
    Hm = jnp.asarray(A @ A.T / n + (0.1 if definite else -0.5) * np.eye(n))
    b = basis(J)
    nstep = normal_step(J, b, jnp.asarray(r.standard_normal(m)), 0.4)
    g = jnp.asarray(r.standard_normal(n))
    for radius in (0.5, 5.0, 1e3):
        res = projected_cg(lambda v: Hm @ v, b, g + Hm @ nstep, nstep, radius, 200)
        assert float(jnp.max(jnp.abs(J @ res.t))) <= 1e-10
        assert float(jnp.linalg.norm(nstep + res.t)) <= radius * (1 + 1e-10)
        if definite and radius == 1e3:  # interior: CG's relative tolerance 0.01 is met
            assert int(res.reason) == 0
            proj = lambda v: v - J.T @ jnp.linalg.lstsq(J.T, v)[0]
            g0 = float(jnp.linalg.norm(proj(g + Hm @ nstep)))
            g1 = float(jnp.linalg.norm(proj(g + Hm @ (nstep + res.t))))
            assert g1**2 <= min(0.01 * g0, 0.1 * g0**2) * (1 + 1e-6)  # the authors' test
        if not definite:
            assert int(res.reason) in (1, 2)  # negative curvature or boundary


def test_projected_cg_stops_as_the_authors_code_does():
    """The default test compares ‖Pr‖² with min(0.01‖Pr₀‖, 0.1‖Pr₀‖²), as SciPy's
    projected_cg in the authors' code, with at most n − m iterations; ``norm`` (this
    project's earlier default) compares ‖Pr‖. Interior solves, H positive definite:
    each stops at the first iterate its own test accepts."""
    r = rng(5)
    n, m = 40, 5
    J = jnp.asarray(r.standard_normal((m, n)))
    A = r.standard_normal((n, n))
    Hm = jnp.asarray(A @ A.T / n + 0.05 * np.eye(n))
    b = basis(J)
    proj = lambda v: v - J.T @ jnp.linalg.solve(J @ J.T, J @ v)  # noqa: E731
    zero = jnp.zeros(n)
    for scale in (1e-3, 1.0, 1e3):  # 0.1‖g‖² binds below ‖g‖ = 0.1, 0.01‖g‖ above
        g = jnp.asarray(scale * r.standard_normal(n))
        g0 = float(jnp.linalg.norm(proj(g)))
        tol = min(0.01 * g0, 0.1 * g0**2)
        for test, met in (
            ("squared", lambda x, tol=tol: x**2 < tol),
            ("norm", lambda x, tol=tol: x <= tol),
        ):
            res = projected_cg(lambda v: Hm @ v, b, g, zero, 1e12, n - m, test)
            assert int(res.reason) == 0  # converged
            k = int(res.iterations)
            assert met(float(jnp.linalg.norm(proj(g + Hm @ res.t))))
            if k > 1:  # one iteration fewer does not pass the test
                prev = projected_cg(lambda v: Hm @ v, b, g, zero, 1e12, k - 1, test)
                assert int(prev.reason) == 3
                assert not met(float(jnp.linalg.norm(proj(g + Hm @ prev.t))))
    # the cap: n − m by default
    cfg = TrsqpConfig()
    assert cfg.cg_maxiter is None and cfg.cg_test == "squared"
    assert cfg.normal_step == "modified_dogleg"
    with pytest.raises(ConfigError, match="method.cg_test"):
        TrsqpConfig(cg_test="l2")
    with pytest.raises(ConfigError, match="method.normal_step"):
        TrsqpConfig(normal_step="cauchy")


def pairs(n=6, k=4, seed=3):
    r = rng(seed)
    return [
        (jnp.asarray(r.standard_normal(n)), jnp.asarray(r.standard_normal(n))) for _ in range(k)
    ]


# hvp/update dispatch on the state's form (dense or compact), so one object serves both
QN = {k: qn.approximation(k, 1) for k in qn.HESSIANS}


def test_sr1_secant_condition_and_compact_form():
    n = 6
    dense, compact = (
        qn.approximation("sr1", None).init(n, jnp.float64),
        qn.approximation("sr1", 6).init(n, jnp.float64),
    )
    for s, y in pairs(n):
        dense, ok = QN["sr1"].update(dense, s, y)
        compact, ok2 = QN["sr1"].update(compact, s, y)
        assert bool(ok) and bool(ok2)
        np.testing.assert_allclose(dense.H @ s, y, atol=1e-10)  # H⁺s = y
    v = jnp.asarray(rng(9).standard_normal(n))
    np.testing.assert_allclose(QN["sr1"].hvp(compact, v), dense.H @ v, atol=1e-9)


def test_sr1_skips_a_near_orthogonal_update():
    h = qn.approximation("sr1", None).init(3, jnp.float64)
    s = jnp.array([1.0, 0.0, 0.0])
    y = s + jnp.array([0.0, 1.0, 0.0])  # v = y − s ⟂ s
    h2, ok = QN["sr1"].update(h, s, y)
    assert not bool(ok) and float(jnp.max(jnp.abs(h2.H - h.H))) == 0.0


def test_damped_bfgs_secant_damping_and_compact_form():
    n = 6
    dense = qn.approximation("damped_bfgs", None).init(n, jnp.float64)
    compact = qn.approximation("damped_bfgs", 6).init(n, jnp.float64)
    damped = 0
    for s, y in pairs(n, k=5, seed=4):
        Hs = dense.H @ s
        sHs, sy = float(s @ Hs), float(s @ y)
        dense, ok = QN["damped_bfgs"].update(dense, s, y)
        compact, _ = QN["damped_bfgs"].update(compact, s, y)
        r = dense.H @ s  # the secant condition holds for the damped r: H⁺s = r
        assert float(s @ r) >= 0.2 * sHs * (1 - 1e-12)
        if sy < 0.2 * sHs:
            damped += 1
        else:
            np.testing.assert_allclose(r, y, atol=1e-10)  # undamped: H⁺s = y
        assert float(jnp.min(jnp.linalg.eigvalsh(dense.H))) > 0  # stays positive definite
    assert damped >= 1
    v = jnp.asarray(rng(8).standard_normal(n))
    np.testing.assert_allclose(QN["damped_bfgs"].hvp(compact, v), dense.H @ v, atol=1e-9)


def test_compact_memory_keeps_the_latest_pairs():
    n, k = 5, 2
    compact = qn.approximation("sr1", k).init(n, jnp.float64)
    ps = pairs(n, k=4, seed=5)
    for s, y in ps:
        compact, _ = QN["sr1"].update(compact, s, y)
    dense = qn.approximation("sr1", None).init(n, jnp.float64)
    for s, y in ps[-k:]:
        dense, _ = QN["sr1"].update(dense, s, y)
    v = jnp.asarray(rng(6).standard_normal(n))
    np.testing.assert_allclose(QN["sr1"].hvp(compact, v), dense.H @ v, atol=1e-9)


def test_merit_update_guarantees_the_predicted_reduction():
    r = rng(7)
    for _ in range(200):
        quad, vpred, mu = r.standard_normal() * 10, abs(r.standard_normal()), r.uniform(0.1, 5)
        mu_new, pred = merit_update(quad, vpred, mu, 0.3)
        assert float(mu_new) >= mu
        assert float(pred) >= 0.3 * float(mu_new) * vpred - 1e-12


def test_second_order_correction_overcomes_the_maratos_effect():
    """Nocedal & Wright Example 15.4: f = 2(x₁² + x₂² − 1) − x₁, c = x₁² + x₂² − 1, x* = (1, 0),
    ∇²L(x*) = I. From x on the circle the SQP step with H = I is the exact Newton step, yet it
    raises both f and ‖c‖ (rejected by the merit test); the SOC point is accepted."""
    f = lambda x, d: 2 * (x @ x - 1) - x[0]
    c = lambda x, d: jnp.array([x @ x - 1])
    x0 = jnp.array([math.cos(0.3), math.sin(0.3)])
    for soc in (False, True):
        cfg = TrsqpConfig(hessian="identity", second_order_correction=soc)
        init, step = trsqp_solver(f, c, 2, cfg, jnp.float64)
        s0 = init(x0, None)
        s1 = step(s0, None)
        assert bool(s1.accepted) == soc and bool(s1.soc) == soc
        if soc:
            merit = lambda s: float(s.f + s.mu * jnp.linalg.norm(s.c))
            assert merit(s1) < merit(s0)
            err0 = np.linalg.norm(np.asarray(s0.theta) - [1, 0])
            err1 = np.linalg.norm(np.asarray(s1.theta) - [1, 0])
            assert err1 < 0.1 * err0  # Newton-like contraction
        else:
            np.testing.assert_array_equal(np.asarray(s1.theta), np.asarray(x0))


@pytest.mark.parametrize("multiplier", ["paper", "current"])
def test_the_hessian_update_takes_the_documented_secant_pair(multiplier):
    """SR1 satisfies its secant equation H_{k+1} s_k = y_k exactly, so H s shows which y the
    update used: the paper's ∇L(θ_{k+1}, λ_{k+1}) − ∇L(θ_k, λ_k) (§3), or with λ_{k+1} at
    both ends (``current``). On HS7 λ changes from step to step, so the two differ."""
    import jax

    f, c, x0, _ = hs7()
    cfg = TrsqpConfig(hessian="sr1", secant_multiplier=multiplier)
    init, step = trsqp_solver(f, c, 2, cfg, jnp.float64)
    step = jax.jit(step)
    s0 = init(x0, None)
    for _ in range(20):  # the first accepted step that updated H
        s1 = step(s0, None)
        if bool(s1.accepted) and bool(s1.qn_updated):
            break
        s0 = s1
    assert bool(s1.accepted) and bool(s1.qn_updated)
    grad_l = lambda th, lam: jax.grad(f)(th, None) + jax.jacrev(c)(th, None).T @ lam
    y_paper = grad_l(s1.theta, s1.lam) - grad_l(s0.theta, s0.lam)
    y_current = grad_l(s1.theta, s1.lam) - grad_l(s0.theta, s1.lam)
    assert float(jnp.linalg.norm(y_paper - y_current)) > 1e-3 * float(jnp.linalg.norm(y_paper))
    y = y_paper if multiplier == "paper" else y_current
    np.testing.assert_allclose(
        np.asarray(s1.hess.H @ (s1.theta - s0.theta)), np.asarray(y), rtol=1e-10, atol=1e-12
    )


def test_bad_trsqp_config_names_the_field():
    with pytest.raises(ConfigError, match=r"^method\.hessian"):
        TrsqpConfig(hessian="bfgs")
    with pytest.raises(ConfigError, match=r"^method\.memory"):
        TrsqpConfig(memory=0)
    with pytest.raises(ConfigError, match=r"^method\.nu"):
        TrsqpConfig(nu=1.5)
    with pytest.raises(ConfigError, match=r"^method\.secant_multiplier"):
        TrsqpConfig(secant_multiplier="textbook")


def test_the_search_ratio_test_and_radius_rule():
    """η = Ared / Pred on the merit φ = f + μ‖c‖ as it comes (Algorithm 3; NaN, a trial
    point that is not finite or 0/0, is −∞); with this project's ``tiny_is_exact``, 1 at
    roundoff-level Pred. Algorithm 3's radius: ×ρ when η ≥ η_upp, kept when accepted, ÷ρ
    when rejected."""
    cfg = TrsqpConfig()  # η_low 1e-8, η_upp 0.3, ρ 2
    assert not cfg.tiny_pred_exact
    assert float(ratio(10.0, 9.0, 2.0)) == pytest.approx(0.5)
    assert float(ratio(10.0, 11.0, 2.0)) == pytest.approx(-0.5)
    assert float(ratio(10.0, 10.0 - 1e-20, 1e-20)) == 0.0  # Ared lost in roundoff: reject
    assert float(ratio(10.0, 10.0 - 1e-20, 1e-20, tiny_is_exact=True)) == 1.0
    assert float(ratio(10.0, 10.0, 0.0)) == -math.inf  # 0/0
    assert float(ratio(10.0, 9.0, 0.0)) == math.inf  # a decrease the model did not predict
    for tiny in (False, True):
        assert float(ratio(10.0, jnp.nan, 2.0, tiny_is_exact=tiny)) == -math.inf
    radii = [float(new_radius(jnp.asarray(e), 1.5, 0.7, cfg)) for e in (0.5, 0.1, -1.0)]
    assert radii == [3.0, 1.5, 0.75]
    scipy = TrsqpConfig(radius_rule="scipy")
    # SciPy's rule: η ≥ 0.9 -> max(7‖d‖, Δ); rejected -> clip((1-η_low)/(1-η)‖d‖, 0.1Δ, 0.5Δ)
    assert float(new_radius(jnp.asarray(0.95), 1.5, 0.7, scipy)) == pytest.approx(4.9)
    assert float(new_radius(jnp.asarray(-1.0), 1.5, 0.7, scipy)) == pytest.approx(0.35, rel=1e-6)

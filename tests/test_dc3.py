"""LISCO's test problems: DC3's instance generator and the optimality residual F."""

import jax
import jax.numpy as jnp
import numpy as np
import osqp
import pytest
import scipy.sparse as sp

from problems.parametric.dc3 import Residual, dc3_instance


@pytest.fixture(scope="module")
def inst():
    return dc3_instance(17)


def osqp_solve(inst, x, tight: bool):
    s = osqp.OSQP()
    settings = (
        dict(eps_abs=1e-10, eps_rel=1e-10, polishing=True, max_iter=100000)
        if tight
        else dict(eps_prim_inf=1e-4)
    )  # DC3's call: defaults + eps_prim_inf
    s.setup(
        P=sp.csc_matrix(inst.Q),
        q=inst.p,
        A=sp.csc_matrix(np.vstack([inst.A, inst.G])),
        l=np.hstack([x, -np.inf * np.ones(len(inst.h))]),
        u=np.hstack([x, inst.h]),
        verbose=False,
        **settings,
    )
    return s.solve(raise_error=False)


def test_seed_17_is_dc3s_instance(inst):
    """DC3's recorded test-set mean objectives of the QP: tight −15.0468585935, and OSQP's
    defaults (DC3's own call) −15.04695075496364 to every printed digit."""
    assert inst.test.shape == (833, 50) and inst.train.shape == (8334, 50)
    f = lambda y: 0.5 * y @ inst.Q @ y + inst.p @ y
    tight = [f(osqp_solve(inst, x, True).x) for x in inst.test]
    assert np.mean(tight) == pytest.approx(-15.0468585935, abs=1e-9)
    loose = [f(osqp_solve(inst, x, False).x) for x in inst.test[:833]]
    assert np.mean(loose) == pytest.approx(-15.04695075496364, abs=1e-12)


def test_residual_vanishes_at_a_tight_solution(inst):
    """½‖F‖² ≤ 1e-10 at OSQP's tight solution with its multipliers (ν, λ) = y_osqp."""
    res = Residual("qp", inst)
    merit = jax.jit(res.merit)
    for x in inst.test[:5]:
        r = osqp_solve(inst, x, True)
        z = jnp.concatenate([jnp.asarray(r.x), jnp.asarray(r.y)])
        assert float(merit(z, jnp.asarray(x))) <= 1e-10
        assert np.min(r.y[50:]) > -1e-8  # λ ≥ 0 in OSQP's sign convention too


@pytest.mark.parametrize("kind", ["qp", "nonconvex_qp", "rosenbrock"])
def test_residual_jacobian_matches_finite_differences(inst, kind):
    res = Residual(kind, inst)
    rng = np.random.default_rng(0)
    z, x = jnp.asarray(rng.normal(size=200)), jnp.asarray(inst.test[0])
    jac = jax.jacfwd(res)(z, x)
    d = jnp.asarray(rng.normal(size=200))
    h = 1e-6
    fd = (res(z + h * d, x) - res(z - h * d, x)) / (2 * h)
    np.testing.assert_allclose(jac @ d, fd, rtol=1e-6, atol=1e-7)


@pytest.mark.slow
def test_nonconvex_reference_objective_with_dc3s_ipopt_setting(inst):
    """DC3's recorded nonconvex QP test mean, IPOPT L-BFGS tol 1e-4 from y0 = A⁺x:
    −11.5922510290 (833 solves)."""
    import casadi as ca

    y = ca.MX.sym("y", 100)
    xp = ca.MX.sym("x", 50)
    f = 0.5 * ca.dot(y, ca.DM(inst.Q) @ y) + ca.dot(ca.DM(inst.p), ca.sin(y))
    g = ca.vertcat(ca.DM(inst.A) @ y - xp, ca.DM(inst.G) @ y)
    solver = ca.nlpsol(
        "s",
        "ipopt",
        {"x": y, "p": xp, "f": f, "g": g},
        {
            "print_time": False,
            "ipopt.print_level": 0,
            "ipopt.sb": "yes",
            "ipopt.tol": 1e-4,
            "ipopt.hessian_approximation": "limited-memory",
        },
    )
    pinv = np.linalg.pinv(inst.A)
    lbg = np.hstack([np.zeros(50), -np.inf * np.ones(50)])
    ubg = np.hstack([np.zeros(50), inst.h])
    objs = [float(solver(x0=pinv @ x, p=x, lbg=lbg, ubg=ubg)["f"]) for x in inst.test]
    assert np.mean(objs) == pytest.approx(-11.5922510290, abs=1e-8)


def test_inference_loop_with_newton_steps_converges_quadratically(inst):
    """The batched loop driven by exact Newton steps: from z₀ = 0 every sample reaches
    ½‖F‖² ≤ 1e-8 (with ω-resets on the way), and near a solution the contraction
    factor shrinks every step (Newton's superlinear convergence)."""
    from methods.parametric.lisco_inference import infer, newton_step

    res = Residual("qp", inst)
    step = newton_step(res)
    x = jnp.asarray(inst.test[:8])
    z0 = jnp.zeros((8, 200))
    run = jax.jit(lambda n: infer(step, res, z0, x, n_max=n))
    out = run(100)
    assert bool(jnp.all(out.converged)) and int(out.iterations.max()) < 60
    np.testing.assert_array_less(np.asarray(out.merit), 1e-8)
    # near a solution (α = 1, no resets) the contraction speeds up step by step: the first step
    # shrinks ‖F‖ by ~30×, four steps by > 1e8, which no fixed linear rate can do (Newton on the
    # ε-smoothed FB system: superlinear, quadratic until the smoothing's conditioning shows)
    r = osqp_solve(inst, inst.test[0], True)
    z_star = np.concatenate([r.x, r.y])
    near = jnp.asarray(z_star + 1e-3 * np.random.default_rng(1).normal(size=200))[None]
    tail = jax.jit(lambda n: infer(step, res, near, x[:1], n_max=n, tol=1e-30))
    hist = [float(np.sqrt(2 * tail(k).merit[0])) for k in range(5)]
    assert int(tail(4).resets[0]) == 0
    assert hist[1] / hist[0] > 1e-2 and hist[4] / hist[0] < 1e-8, hist
    rates = [b / a for a, b in zip(hist, hist[1:])]
    assert all(q < p for p, q in zip(rates, rates[1:])), rates
    # converged samples stop: more iterations change nothing
    again = run(200)
    np.testing.assert_array_equal(np.asarray(again.iterations), np.asarray(out.iterations))


def test_inference_resets_to_the_best_iterate_on_blow_up(inst):
    """A step that overshoots by 100× is rejected (ω = 10): the loop returns to the best
    iterate, shrinks α by 0.95 and never reports an iterate worse than the start."""
    from methods.parametric.lisco_inference import infer, newton_step

    res = Residual("qp", inst)
    newton = newton_step(res)
    x = jnp.asarray(inst.test[:4])
    z0 = jnp.zeros((4, 200))
    out = jax.jit(lambda: infer(lambda z, xx, f: 100.0 * newton(z, xx, f), res, z0, x, n_max=5))()
    start = 0.5 * np.linalg.norm(np.asarray(jax.vmap(res)(z0, x)), axis=1) ** 2
    assert np.all(np.asarray(out.resets) >= 1)
    np.testing.assert_array_less(np.asarray(out.merit), start * (1 + 1e-12))


def test_osqp_baseline_uses_cvxpys_options_by_default(inst):
    """The paper ran OSQP "called from within CVXPY" with its default options: CVXPY sets
    eps 1e-5, 10000 iterations and polishing, whose solutions match the tight solve's
    objective to roundoff; DC3's call (OSQP's own defaults, this project's earlier default)
    stops at eps 1e-3, about 1e-5 off in relative objective, in fewer iterations."""
    from methods.parametric.lisco_baselines import osqp_solve as baseline

    X = inst.test[:20]
    f = lambda y: 0.5 * y @ inst.Q @ y + inst.p @ y
    tight = baseline(inst, X, tight=True)
    paper, dc3 = baseline(inst, X), baseline(inst, X, settings="dc3")
    rel = lambda r: max(abs(f(a) - f(b)) / abs(f(b)) for a, b in zip(r.y, tight.y))
    assert paper.success.all() and dc3.success.all()
    assert rel(paper) < 1e-9 < 1e-6 < rel(dc3) < 1e-3
    assert np.median(paper.iterations) > np.median(dc3.iterations)
    from methods.parametric.lisco import OsqpConfig
    from problems import ConfigError

    with pytest.raises(ConfigError, match="^method.settings"):
        OsqpConfig(settings="osqp")

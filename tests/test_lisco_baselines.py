"""LISCO's baselines (spec lisco.md, "Baselines"): IPOPT via CasADi and OSQP on DC3's
problems, checked against LISCO's own optimality residual ½‖F‖²
(problems.parametric.dc3.Residual)."""

import jax
import numpy as np
import pytest

from methods.parametric.lisco_baselines import casadi_objective, ipopt_solve, osqp_solve
from problems.parametric.dc3 import OBJECTIVES, Residual, dc3_instance, objective


@pytest.fixture(scope="module")
def inst():
    return dc3_instance(17)


@pytest.fixture(scope="module")
def xs(inst):
    return inst.test[:5]


@pytest.fixture(scope="module")
def osqp_tight(inst, xs):
    return osqp_solve(inst, xs, tight=True)


def merits(kind, inst, r, xs):
    """½‖F‖² per instance at z = (y, ν, λ) returned by a baseline."""
    z = np.concatenate([r.y, r.nu, r.lam], axis=1)
    return np.asarray(jax.vmap(Residual(kind, inst).merit)(z, xs))


def f_values(kind, inst, ys):
    return np.asarray(jax.vmap(objective(kind, inst))(ys))


@pytest.mark.parametrize("kind", OBJECTIVES)
def test_ipopt_exact_reaches_a_kkt_point(inst, xs, kind):
    """tol 1e-10, exact Hessian: CasADi's lam_g is (ν, λ), so ½‖F‖² ≤ 1e-10."""
    calls = []
    r = ipopt_solve(kind, inst, xs, on_instance=calls.append)
    assert calls == list(range(len(xs)))
    assert r.y.shape == (5, 100) and r.nu.shape == (5, 50) and r.lam.shape == (5, 50)
    assert r.success.all() and r.status == ["Solve_Succeeded"] * 5
    assert (r.iterations > 0).all() and (r.solve_s > 0).all()
    np.testing.assert_array_equal(r.total_s, r.solve_s)
    np.testing.assert_array_less(merits(kind, inst, r, xs), 1e-10)
    assert r.lam.min() >= -1e-9
    np.testing.assert_allclose(r.y @ inst.A.T, xs, atol=1e-8)


def test_casadi_objective_matches_the_jax_objective(inst):
    import casadi as ca

    y = ca.SX.sym("y", 100)
    ys = np.random.default_rng(0).normal(size=(3, 100))
    for kind in OBJECTIVES:
        fn = ca.Function("f", [y], [casadi_objective(kind, inst, y)])
        got = [float(fn(v)) for v in ys]
        np.testing.assert_allclose(got, f_values(kind, inst, ys), rtol=1e-13)


def test_ipopt_and_tight_osqp_agree_on_the_qp(inst, xs, osqp_tight):
    r = ipopt_solve("qp", inst, xs)
    np.testing.assert_allclose(
        f_values("qp", inst, r.y), f_values("qp", inst, osqp_tight.y), rtol=1e-8
    )


def test_ipopt_lbfgs_option_runs(inst, xs):
    """DC3's setting: limited-memory Hessian, tol 1e-4 (objective near the exact solution)."""
    r = ipopt_solve("nonconvex_qp", inst, xs[:2], tol=1e-4, hessian="lbfgs")
    exact = ipopt_solve("nonconvex_qp", inst, xs[:2])
    assert r.success.all()
    np.testing.assert_allclose(
        f_values("nonconvex_qp", inst, r.y), f_values("nonconvex_qp", inst, exact.y), rtol=1e-3
    )


def test_osqp_tight_and_default(inst, xs, osqp_tight):
    """Tight OSQP is a KKT point to ½‖F‖² ≤ 1e-10; DC3's default call is ~1e-3 accurate."""
    assert osqp_tight.success.all() and osqp_tight.status == ["solved"] * 5
    np.testing.assert_array_less(merits("qp", inst, osqp_tight, xs), 1e-10)
    assert osqp_tight.lam.min() >= -1e-8
    d = osqp_solve(inst, xs)
    assert d.success.all() and (d.iterations > 0).all()
    assert (d.total_s >= d.solve_s).all() and (d.solve_s > 0).all()
    np.testing.assert_allclose(
        f_values("qp", inst, d.y), f_values("qp", inst, osqp_tight.y), rtol=1e-3
    )


@pytest.mark.parametrize(
    "call",
    [
        lambda inst: ipopt_solve("lp", inst, inst.test[:1]),
        lambda inst: ipopt_solve("qp", inst, inst.test[:1], hessian="bfgs"),
        lambda inst: casadi_objective("lp", inst, None),
    ],
)
def test_bad_choice_raises_one_line_value_error(inst, call):
    with pytest.raises(ValueError) as e:
        call(inst)
    msg = str(e.value)
    assert "\n" not in msg and "valid choices" in msg
    assert "qp, nonconvex_qp, rosenbrock" in msg or "exact, lbfgs" in msg


def test_batched_box_osqp_matches_osqp_on_twenty_points():
    """jaxopt's BoxOSQP, vmapped over 20 test points of DC3's QP: at OSQP's default tolerance
    its objective is OSQP's (defaults, the CPU package) to 1e-4 relative; tight, its (ν, λ)
    put into the same ½‖F‖² mapping as every baseline give ½‖F‖² ≤ 1e-12 and the objective
    of tight OSQP to 1e-8."""
    from methods.parametric.lisco_baselines import box_osqp_solve
    from problems import build_problem

    pr = build_problem("qp", {})
    x = pr.test_x[:20]

    def objective(y):
        return 0.5 * np.einsum("ij,jk,ik->i", y, pr.inst.Q, y) + y @ pr.inst.p

    ref, tight_ref = osqp_solve(pr.inst, x), osqp_solve(pr.inst, x, tight=True)
    box, info = box_osqp_solve(pr.inst, x)
    assert box.success.all() and info["tol"] == 1e-3 and box.y.shape == (20, 100)
    np.testing.assert_allclose(objective(box.y), objective(ref.y), rtol=1e-4)
    tight, _ = box_osqp_solve(pr.inst, x, tight=True)
    f_ref = objective(tight_ref.y)
    np.testing.assert_allclose(objective(tight.y), f_ref, rtol=1e-8)
    sm = pr.sample_metrics(np.hstack([tight.y, tight.nu, tight.lam]), x, f_ref)
    assert sm["merit"].max() <= 1e-12 and (tight.lam >= -1e-9).all()
    # the default tolerance leaves ½‖F‖² far above the tight solve's: the mapping sees it
    loose = pr.sample_metrics(np.hstack([box.y, box.nu, box.lam]), x, f_ref)["merit"]
    assert np.median(loose) > 1e3 * sm["merit"].max()

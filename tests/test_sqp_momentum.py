"""Projected stochastic momentum SQP: the KKT solve, one-step states, convergence."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy.optimize import minimize

from methods.stochastic.sqp_momentum import (
    SqpMomentumConfig,
    cholesky,
    kkt_solve,
    make_solver,
    normal_step,
    project,
)
from problems import ConfigError


def dense_kkt(J, h, p, c):
    m, d = J.shape
    K = np.block([[np.diag(h), J.T], [J, np.zeros((m, m))]])
    sol = np.linalg.solve(K, -np.concatenate([p, c]))
    return sol[:d], sol[d:]


@pytest.mark.parametrize("diag", [False, True])
@pytest.mark.parametrize("seed", range(3))
def test_kkt_solve_matches_a_dense_solve(diag, seed):
    r = np.random.default_rng(seed)
    m, d = 4, 30
    J, p, c = r.standard_normal((m, d)), r.standard_normal(d), r.standard_normal(m)
    h = r.uniform(0.1, 5.0, d) if diag else np.ones(d)
    s, lam, reg = kkt_solve(*map(jnp.asarray, (J, h, p, c)))
    s_ref, lam_ref = dense_kkt(J, h, p, c)
    np.testing.assert_allclose(s, s_ref, atol=1e-10)
    np.testing.assert_allclose(lam, lam_ref, atol=1e-10)
    np.testing.assert_allclose(J @ np.asarray(s), -c, atol=1e-10)  # Js = −c
    assert float(reg) == 0


@pytest.mark.parametrize("m", [1, 3, 10, 16, 17, 30])
def test_cholesky_matches_numpy_both_ways(m):
    """m ≤ 16 runs the unrolled factorisation, m > 16 LAPACK's: both give NumPy's factor,
    and NaN where A is not positive definite (what spd_factor's regularisation tests)."""
    r = np.random.default_rng(m)
    B = r.standard_normal((m, m + 2))
    A = B @ B.T
    np.testing.assert_allclose(
        cholesky(jnp.asarray(A)), np.linalg.cholesky(A), rtol=1e-10, atol=1e-12
    )
    A[0, 0] = -1.0
    assert not np.all(np.isfinite(np.asarray(cholesky(jnp.asarray(A)))))


def test_singular_systems_are_regularised_and_counted():
    r = np.random.default_rng(0)
    J = r.standard_normal((3, 10))
    J = jnp.asarray(np.vstack([J, J[:1]]))  # a repeated constraint: JJᵀ is singular
    c = J @ jnp.asarray(r.standard_normal(10))  # consistent right-hand side
    v, reg = normal_step(J, -c)
    assert float(reg) >= 1 and bool(jnp.all(jnp.isfinite(v)))
    s, _, reg = kkt_solve(J, jnp.ones(10), jnp.asarray(r.standard_normal(10)), c)
    assert float(reg) >= 1 and bool(jnp.all(jnp.isfinite(s)))


# min ½‖x − a‖² on the intersection of the unit sphere and a hyperplane
A = jnp.array([2.0, -1.0, 0.5, 1.5, -0.3])
F = lambda x, d, idx: 0.5 * jnp.sum((x - A) ** 2)
C = lambda x, d: jnp.array([x @ x - 1.0, x[0] + x[1] - 0.2])
X0 = jnp.full(5, 0.3)


def reference_solution():
    cons = [
        {"type": "eq", "fun": lambda x, i=i: np.asarray(C(jnp.asarray(x), None))[i]}
        for i in range(2)
    ]
    res = minimize(
        lambda x: float(F(jnp.asarray(x), None, None)),
        np.asarray(X0),
        constraints=cons,
        method="SLSQP",
        options={"ftol": 1e-14, "maxiter": 500},
    )
    return res.x


@pytest.mark.parametrize(
    "kind,lr,variant",
    [
        ("sqp_sgd", 1e-2, "defossez"),
        ("sqp_heavyball", 1e-2, "defossez"),
        ("sqp_adam", 1e-3, "defossez"),
        ("sqp_adam", 1e-3, "iclr"),
        ("adam_con", 1e-3, "defossez"),
    ],
)
def test_full_batch_methods_reach_the_constrained_minimum(kind, lr, variant):
    cfg = SqpMomentumConfig(lr=lr, full_batch=True, variant=variant)
    init, step = make_solver(kind, F, C, cfg, 1, 1)
    run = jax.jit(lambda s: jax.lax.fori_loop(0, 20000, lambda i, s: step(s, None), s))
    s = run(init(X0, jax.random.PRNGKey(0)))
    J = jax.jacrev(C)(s.theta, None)
    # a fixed step α with Adam-type scaling hovers about the minimiser: the Défossez form
    # (μ = 1e-7 against r ≈ g²/(1 − β₂)) stays at |c| ≈ 3e-6 at lr 1e-3, the others ≤ 1e-6
    assert float(jnp.max(jnp.abs(C(s.theta, None)))) <= 1e-5
    assert float(jnp.linalg.norm(project(J, jax.grad(F)(s.theta, None, None)))) <= 1e-4
    np.testing.assert_allclose(s.theta, reference_solution(), atol=1e-5)


def test_adam_con_averages_raw_and_sqp_adam_projected_gradients():
    g = jax.grad(F)(X0, None, None)
    Pg = project(jax.jacrev(C)(X0, None), g)
    assert float(jnp.linalg.norm(g - Pg)) > 0.1  # the two differ here
    for kind, gg in (("adam_con", g), ("sqp_adam", Pg)):  # the ICLR form's Adam moments
        cfg = SqpMomentumConfig(lr=1e-3, full_batch=True, variant="iclr")
        init, step = make_solver(kind, F, C, cfg, 1, 1)
        s = step(init(X0, jax.random.PRNGKey(0)), None)
        np.testing.assert_allclose(s.m, 0.1 * gg, atol=1e-14)  # (1 − β₁) g
        np.testing.assert_allclose(s.v, 0.001 * gg * gg, atol=1e-14)  # (1 − β₂) g∘g


def test_adam_unc_is_optax_adam_with_eps_inside_the_root():
    cfg = SqpMomentumConfig(lr=1e-2, full_batch=True)
    init, step = make_solver("adam_unc", F, C, cfg, 1, 1)
    s = init(X0, jax.random.PRNGKey(0))
    opt = optax.adam(1e-2, b1=0.9, b2=0.999, eps=0.0, eps_root=1e-7)
    x, o = X0, opt.init(X0)
    for _ in range(5):
        s = step(s, None)
        u, o = opt.update(jax.grad(F)(x, None, None), o)
        x = optax.apply_updates(x, u)
    np.testing.assert_allclose(s.theta, x, rtol=1e-12)


def test_mini_batches_are_independent_fractions_drawn_from_the_seed():
    seen = []
    f = lambda x, d, idx: jnp.sum(x[idx] ** 2)  # the gradient marks the batch
    init, step = make_solver("sqp_sgd", f, C, SqpMomentumConfig(lr=1e-3), 5, 2)
    s = init(X0, jax.random.PRNGKey(3))
    for _ in range(4):
        g = jax.grad(f)(
            s.theta,
            None,
            jax.random.choice(jax.random.fold_in(s.key, s.count), 5, (2,), replace=False),
        )
        seen.append(tuple(np.flatnonzero(np.asarray(g))))
        s = step(s, None)
    assert all(len(b) == 2 for b in seen) and len(set(seen)) > 1


def test_bad_config_names_the_field():
    with pytest.raises(ConfigError, match=r"^method\.lr"):
        SqpMomentumConfig(lr=-1.0)
    with pytest.raises(ConfigError, match=r"^method\.variant"):
        SqpMomentumConfig(variant="adamw")
    with pytest.raises(ConfigError, match=r"^method\.batch_fraction"):
        SqpMomentumConfig(batch_fraction=1.5)
    with pytest.raises(ConfigError, match=r"^method\.normal_step_size"):
        SqpMomentumConfig(normal_step_size="half")


def test_sqp_adam_defaults_to_the_papers_algorithm_3():
    """The Défossez form, its step size scaling the whole step (Algorithm 1's w + α_k s)."""
    assert SqpMomentumConfig().variant == "defossez"
    assert SqpMomentumConfig().normal_step_size == "scaled"


def test_defossez_step_is_the_formula_for_two_iterations():
    """Quadratic f(x) = ½xᵀQx + bᵀx, one linear constraint aᵀx = β, from a feasible x₀:
    m_k = β₁m + Pg, r_k = β₂r + (Pg)², α_k = α(1 − β₁)√((1 − β₂ᵏ)/(1 − β₂)),
    H = diag(√(μ + r)), s = −H⁻¹(m + aλ) with aᵀs = 0 (c stays 0), θ ← θ + α_k s."""
    r = np.random.default_rng(0)
    n = 6
    M = r.standard_normal((n, n))
    Q, b, a = M @ M.T + np.eye(n), r.standard_normal(n), r.standard_normal(n)
    beta = 0.7
    x0 = r.standard_normal(n)
    x0 += (beta - a @ x0) / (a @ a) * a  # feasible
    f = lambda x, d, idx: 0.5 * x @ jnp.asarray(Q) @ x + jnp.asarray(b) @ x
    c = lambda x, d: jnp.array([jnp.asarray(a) @ x - beta])
    cfg = SqpMomentumConfig(lr=0.05, full_batch=True)
    b1, b2, mu, lr = cfg.beta1, cfg.beta2, cfg.eps_root, cfg.lr
    x, m, v = x0.copy(), np.zeros(n), np.zeros(n)
    hand = []
    for k in (1, 2):
        g = Q @ x + b
        pg = g - a * (a @ g) / (a @ a)
        m, v = b1 * m + pg, b2 * v + pg**2
        alpha_k = lr * (1 - b1) * np.sqrt((1 - b2**k) / (1 - b2))
        h = np.sqrt(mu + v)
        lam = -(a @ (m / h)) / (a @ (a / h))  # aᵀs = 0
        x = x - alpha_k * (m + a * lam) / h
        hand.append(x.copy())
    init, step = make_solver("sqp_adam", f, c, cfg, 1, 1)
    s = init(jnp.asarray(x0), jax.random.PRNGKey(0))
    for want in hand:
        s = step(s, None)
        np.testing.assert_allclose(s.theta, want, rtol=1e-12, atol=1e-14)
        assert abs(float(a @ np.asarray(s.theta)) - beta) < 1e-12  # c = 0 kept
    assert np.linalg.norm(hand[1] - hand[0]) > 1e-3  # it moved


@pytest.mark.parametrize(
    "kind,variant,normal_step_size,factor",
    [
        ("sqp_adam", "defossez", "scaled", "alpha_k"),  # the default: θ ← θ + α_k s
        ("sqp_adam", "defossez", "unit", "zero"),  # the earlier reading: a unit normal step
        ("sqp_adam", "iclr", "scaled", "alpha"),  # the authors' code: θ ← θ + α s
        ("sqp_adam", "iclr", "unit", "zero"),
        ("sqp_heavyball", "defossez", "scaled", "alpha"),
        ("adam_con", "defossez", "unit", "zero"),
    ],
)
def test_normal_step_size_sets_how_far_a_linear_constraint_is_corrected(
    kind, variant, normal_step_size, factor
):
    """One linear constraint aᵀx = β from an infeasible x₀: J s = −c, so after θ ← θ + s
    c = 0, and after θ ← θ + α s c shrinks to (1 − α)c (α_k = α(1 − β₁) in the Défossez
    form's first step)."""
    r = np.random.default_rng(1)
    n = 5
    a, x0, beta = r.standard_normal(n), r.standard_normal(n), 0.3
    f = lambda x, d, idx: jnp.sum(jnp.sin(x)) + 0.5 * x @ x
    c = lambda x, d: jnp.array([jnp.asarray(a) @ x - beta])
    cfg = SqpMomentumConfig(
        lr=0.05, full_batch=True, variant=variant, normal_step_size=normal_step_size
    )
    init, step = make_solver(kind, f, c, cfg, 1, 1)
    s = step(init(jnp.asarray(x0), jax.random.PRNGKey(0)), None)
    c0, c1 = a @ x0 - beta, float(c(s.theta, None)[0])
    want = {"zero": 0.0, "alpha": 1 - cfg.lr, "alpha_k": 1 - cfg.lr * (1 - cfg.beta1)}[factor]
    assert abs(c0) > 0.1
    np.testing.assert_allclose(c1, want * c0, atol=1e-12)
    assert float(jnp.linalg.norm(s.theta - x0)) > 1e-3


def test_dispatched_ops_counts_kernels_not_fused_instructions():
    """make bench's ``hlo_ops``: an elementwise chain is one fused kernel; a loop adds its
    body's kernels and the loop itself; a constrained step runs more kernels than
    adam_unc's on spring (what its time per step is made of there)."""
    from methods import build_method, method_config
    from problems import build_problem
    from runners.bench import dispatched_ops

    def ops(fn, *args):
        return dispatched_ops(jax.jit(fn).lower(*args).compile())

    x = jnp.ones((4, 4))
    assert ops(lambda a: jnp.sin(a) * 2.0 + 1.0, x) == 1
    body = lambda i, a: jnp.tanh(a @ a)  # a dot and an elementwise op per iteration
    assert ops(lambda a: jax.lax.fori_loop(0, 3, body, a), x) >= 3

    p = build_problem("spring", {}, dtype="float64")
    data, params = p.make_data(), p.init_params(jax.random.PRNGKey(0))
    counts = {}
    for name in ("adam_unc", "sqp_adam"):
        cfg = method_config(name, {"epochs": 1}, "spring", p.family)
        method = build_method(name, cfg, p, jnp.float64, key=jax.random.PRNGKey(0))
        counts[name] = ops(method.step, method.init(params, data), data)
    assert counts["sqp_adam"] > counts["adam_unc"] > 10


def test_bench_puts_the_predecessors_gpu_timings_on_the_methods_it_timed(tmp_path):
    """The only published timings are the ICLR-2025 predecessor's (Adam(unc), Adam(con),
    P-Adam(con)); the rendered table shows them on adam_unc, adam_con and the predecessor's
    form of sqp_adam, and on no other row (Algorithm 3 was never timed), also for records
    written before the column moved."""
    import json

    from runners.bench import SQP_MOMENTUM_METHODS, render

    record = {"name": "sqp_momentum_darcy_iter_f32", "timestamp": "2026-12-02T14:19:52"}
    record |= {f"{m}.s_per_iter": 1.0 for m in SQP_MOMENTUM_METHODS}
    record["sqp_adam.paper_gpu_s_per_iter"] = 2.533  # an old record's key: not shown
    (tmp_path / "r.json").write_text(json.dumps(record))
    text = render(tmp_path, tmp_path / "bench.md")
    rows = {
        line.split("|")[3].strip(): line.split("|")[-2].strip()
        for line in text.splitlines()
        if line.startswith("| darcy")
    }
    assert rows == {
        "adam_unc": "0.852",
        "adam_con": "2.568",
        "sqp_adam_iclr": "2.533",
        **{m: "nan" for m in ("sqp_adam", "sqp_heavyball", "sqp_sgd")},
    }

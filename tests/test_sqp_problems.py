"""The four problems of the SQP momentum paper: physics, references, FNO, objective, cache."""

import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
from omegaconf import OmegaConf
from scipy.integrate import solve_ivp

from problems import STOCHASTIC_CONSTRAINED, ConfigError, build_problem
from problems.common.cache import cache_path
from problems.stochastic.burgers import burgers_spectral, fourier_resample, initial_condition
from problems.stochastic.butene import MASS_WEIGHTS, rate_matrix, reference_solution
from problems.stochastic.darcy import darcy_residual, grf_fields, solve_darcy
from problems.stochastic.fno import FNO, SpectralConv2d

CONF = Path(__file__).resolve().parents[1] / "conf" / "problem"
NAMES = ("spring", "butene", "burgers", "darcy")
# small sizes: every make_data below takes well under a second
SMALL = {
    "spring": {},
    "butene": {"n_ics": 12, "n_times": 16, "n_test_ics": 2, "n_constraints": 4},
    "burgers": {
        "n_ics": 3,
        "n_test_ics": 1,
        "n_x": 16,
        "n_t": 8,
        "n_data_per_ic": 20,
        "n_constraints": 4,
        "n_spectral": 64,
    },
    "darcy": {
        "n_pool": 40,
        "n_samples": 12,
        "n_test": 3,
        "n_constraints": 5,
        "lifting_channels": 8,
        "projection_channels": 8,
    },
}
TINY_NET = {"depth": 1, "width": 3}


def small(name, **kw):
    return build_problem(name, {**SMALL[name], **kw})


def small_data(name, tmp_path, **kw):
    p = small(name, **kw)
    return p, p.make_data(cache_dir=tmp_path)


def n_params(params):
    return sum(x.size for x in jax.tree.leaves(params))


def random_params(init, *args, seed=0, scale=0.5):
    """Parameters shaped as ``init(*args)`` gives them, N(0, scale²) entries.

    Filling them from NumPy avoids compiling Flax's initialisers (seconds per network on
    CPU); the real ``init_params`` is exercised by the MLP problems.
    """
    rng = np.random.default_rng(seed)
    return jax.tree.map(
        lambda s: jnp.asarray(scale * rng.standard_normal(s.shape), s.dtype),
        jax.eval_shape(init, *args),
    )


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """(problem, data, params) per name, small networks: built once (compiles are slow)."""
    cache, memo = tmp_path_factory.mktemp("cache"), {}

    def get(name):
        if name not in memo:
            p = small(name, **({"n_layers": 1} if name == "darcy" else TINY_NET))
            params = (
                random_params(p.init_params, jax.random.PRNGKey(3))
                if name == "darcy"
                else p.init_params(jax.random.PRNGKey(3))
            )
            memo[name] = (p, p.make_data(cache_dir=cache), params)
        return memo[name]

    return get


# --- configs -------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_yaml_is_the_dataclass_default(name):
    """conf/problem/<name>.yaml takes the paper's constants from the Config defaults (its
    defaults list) and writes none of them out (tests/test_defaults.py)."""
    values = OmegaConf.to_container(OmegaConf.load(CONF / f"{name}.yaml"))
    assert values.pop("defaults") == [f"/problem_defaults_{name}@_here_", "_self_"]
    assert values.pop("name") == name
    p = build_problem(name, values)
    assert p.cfg == type(p.cfg)() and p.family == STOCHASTIC_CONSTRAINED


@pytest.mark.parametrize(
    "name,n",
    [
        ("spring", 2209),
        ("butene", 8964),
        ("burgers", 10625),
        # FNO: lifting 3·256+256 + 256·4+4, 4 Fourier layers of
        # 16·9 complex 4×4 modes + bias 4 + skip 16, projection
        ("darcy", 2052 + 4 * (2 * 16 * 9 * 16 + 20) + 1537),
    ],
)
def test_paper_network_sizes(name, n):
    p = build_problem(name, {})
    assert n_params(jax.eval_shape(p.init_params, jax.random.PRNGKey(0))) == n


@pytest.mark.parametrize(
    "name,values,field",
    [
        ("spring", {"friction": 40.0}, "problem.friction"),  # over-damped: no exact solution here
        ("spring", {"constraint_idx": [4, 30]}, "problem.constraint_idx"),
        ("spring", {"batch_fraction": 0.0}, "problem.batch_fraction"),
        ("spring", {"n_data": 30}, "problem.n_data"),
        ("butene", {"rates": [1.0, 2.0]}, "problem.rates"),
        ("butene", {"xi_max": 0.0}, "problem.xi_max"),
        ("butene", {"data_fraction": 1.5}, "problem.data_fraction"),
        ("burgers", {"n_spectral": 1}, "problem.n_spectral"),
        ("burgers", {"x_grid": "uniform"}, "problem.x_grid"),
        ("spring", {"batch_terms": "all"}, "problem.batch_terms"),
        ("butene", {"batch_terms": "data"}, "problem.batch_terms"),
        ("butene", {"init": "xavier"}, "problem.init"),
        ("burgers", {"nu": -0.01}, "problem.nu"),
        ("darcy", {"n_constraints": 200}, "problem.n_constraints"),
        ("darcy", {"modes": [16]}, "problem.modes"),
        ("darcy", {"n_pool": 50}, "problem.n_pool"),
        ("darcy", {"bogus": 1}, "problem.bogus"),
        ("darcy", {"data_samples": "all"}, "problem.data_samples"),
        ("darcy", {"batch_terms": "residual"}, "problem.data_samples"),
        ("darcy", {"constraint_nodes": "unique"}, "problem.constraint_nodes"),
        ("darcy", {"n_grid": 6, "n_constraints": 17}, "problem.n_constraints"),
    ],
)
def test_bad_config_names_the_field(name, values, field):
    with pytest.raises(ConfigError) as e:
        build_problem(name, values)
    assert str(e.value).startswith(field) and "\n" not in str(e.value)


# --- spring --------------------------------------------------------------------------------
def test_spring_exact_solution_satisfies_ode_and_ics():
    p = build_problem("spring", {})
    t = jnp.linspace(0.0, 1.0, 101)
    wrong = build_problem("spring", {"stiffness": 410.0})
    r, r_wrong, u0, du0 = jax.jit(
        lambda t: (
            jax.vmap(lambda s: p.ode_residual(p.exact, s))(t),
            jax.vmap(lambda s: wrong.ode_residual(p.exact, s))(t),
            p.exact(t[0]),
            jax.grad(p.exact)(t[0]),
        )
    )(t)
    assert float(jnp.max(jnp.abs(r))) < 1e-10 * 400  # k u ~ 400: relative 1e-10
    assert abs(float(u0) - 1.0) < 1e-14 and abs(float(du0)) < 1e-13
    assert float(jnp.max(jnp.abs(r_wrong))) > 1.0  # the residual sees a wrong k


def test_spring_forward_mode_residual_matches_reverse_mode_on_the_network():
    """u', u'' by jvp-of-jvp equal jax.grad of jax.grad on the initial network (float64)."""
    p = build_problem("spring", {}, dtype="float64")
    params = p.init_params(jax.random.PRNGKey(3))
    u = lambda r: p.u(params, r)
    c = p.cfg
    rev = lambda t: (
        c.mass * jax.grad(jax.grad(u))(t) + c.friction * jax.grad(u)(t) + c.stiffness * u(t)
    )
    t = jnp.linspace(0.0, 1.0, 17, dtype=jnp.float64)
    fwd_r, rev_r = jax.vmap(lambda s: p.ode_residual(u, s))(t), jax.vmap(rev)(t)
    assert float(jnp.max(jnp.abs(rev_r))) > 1.0  # a non-trivial residual
    np.testing.assert_allclose(fwd_r, rev_r, rtol=1e-12, atol=1e-12)


def test_spring_points_are_the_papers(tmp_path):
    p, d = small_data("spring", tmp_path)
    np.testing.assert_allclose(d.t_data, np.arange(0, 200, 20) / 499, atol=1e-15)
    np.testing.assert_allclose(d.t_constraint, [4 / 29, 12 / 29, 21 / 29], atol=1e-15)
    assert d.t_residual.shape == (30,) and p.batch_size == 15
    assert not list(tmp_path.iterdir())  # closed form: nothing cached


# --- butene --------------------------------------------------------------------------------
def test_butene_rate_matrix_is_the_specs():
    a = rate_matrix((4.283, 1.191, 5.743, 10.219, 1.535))
    np.testing.assert_allclose(
        a,
        [
            [-15.693, 0, 5.743, 1.535],
            [8.566, 0, 0, 0],
            [1.191, 0, -5.743, 0],
            [10.219, 0, 0, -1.535],
        ],
        atol=1e-12,
    )
    np.testing.assert_allclose(np.asarray(MASS_WEIGHTS) @ a, 0.0, atol=1e-14)


def test_butene_reference_conserves_mass_and_matches_rk():
    c = build_problem("butene", {}).cfg
    a = rate_matrix(c.rates)
    rng = np.random.default_rng(0)
    u0 = np.asarray(c.u0) + rng.uniform(-1, 1, (5, 4))
    t = np.arange(64) * 10 / 64
    u = reference_solution(a, u0, t)
    mass = u @ np.asarray(MASS_WEIGHTS)
    assert np.max(np.abs(mass - mass[:, :1])) < 1e-10
    for n in range(2):
        # short steps: DOP853's dense output between steps is only ~1e-7 accurate here
        rk = solve_ivp(
            lambda _, v: a @ v,
            (0, t[-1]),
            u0[n],
            method="DOP853",
            t_eval=t,
            rtol=1e-13,
            atol=1e-12,
            max_step=0.02,
        ).y.T
        np.testing.assert_allclose(u[n], rk, rtol=1e-9, atol=1e-9)


# --- burgers -------------------------------------------------------------------------------
def test_burgers_reference_converges_under_refinement():
    """Spectral convergence on the 32-point grid; the paper's 32-point solve is off by ~0.1."""
    t = np.linspace(0, 1, 32)

    def solve(n):
        return burgers_spectral(initial_condition(np.arange(n) / n, 0.1), 0.01, t)[:, :: n // 32]

    fine = solve(128)
    err = {n: np.max(np.abs(solve(n) - fine)) for n in (32, 64, 96)}
    assert err[32] > 0.05  # under-resolved front
    assert err[64] < err[32] / 100 and err[96] < err[64] / 30 and err[96] < 2e-5, err


def test_burgers_reference_is_translation_equivariant():
    """ξ shifts u0 by ξ/2: ξ = 2/32 is one 32-grid cell, so the solutions are rolled copies."""
    t = np.linspace(0, 1, 8)
    x = np.arange(64) / 64
    a = burgers_spectral(initial_condition(x, 0.0), 0.01, t)
    b = burgers_spectral(initial_condition(x, 2 / 32), 0.01, t)
    np.testing.assert_allclose(np.roll(a, -2, axis=1), b, atol=1e-9)
    assert np.max(np.abs(a[-1] - a[0])) > 0.3  # it did evolve


# --- darcy ---------------------------------------------------------------------------------
def manufactured(s):
    """u = sin(πx) sin(πy), smooth a = 1 + x² + ½ sin(πy), f = −∇·(a∇u) = −(a Δu + ∇a·∇u)."""
    g = np.linspace(0.0, 1.0, s)
    x, y = np.meshgrid(g, g, indexing="ij")
    pi = np.pi
    u = np.sin(pi * x) * np.sin(pi * y)
    a = 1.0 + x**2 + 0.5 * np.sin(pi * y)
    grad_a_grad_u = 2 * x * pi * np.cos(pi * x) * np.sin(pi * y) + 0.5 * pi * np.cos(
        pi * y
    ) * pi * np.sin(pi * x) * np.cos(pi * y)
    return u, a, -(a * (-2 * pi**2 * u) + grad_a_grad_u)


def test_darcy_solver_is_second_order_on_a_manufactured_solution():
    errs = []
    for s in (9, 17, 33, 65):  # h = 1/8 ... 1/64
        u, a, f = manufactured(s)
        errs.append(np.max(np.abs(solve_darcy(a, f[1:-1, 1:-1]) - u)))
    ratios = [e0 / e1 for e0, e1 in zip(errs, errs[1:])]
    assert all(3.6 < r < 4.4 for r in ratios), ratios
    assert errs[-1] < 1e-3


def test_darcy_reference_satisfies_the_discrete_pde(tmp_path):
    p, d = small_data("darcy", tmp_path)
    res = darcy_residual(np.asarray(d.u_ref), np.asarray(d.a), 1.0, 1 / 15)
    assert np.max(np.abs(res)) < 1e-10  # the residual of the model uses the same operator
    assert np.all(np.asarray(d.u_ref)[:, [0, -1], :] == 0)
    assert np.all(np.asarray(d.u_ref)[:, :, [0, -1]] == 0)
    assert set(np.unique(np.asarray(d.a))) == {3.0, 12.0}
    assert 0.002 < float(jnp.max(d.u_ref)) < 0.03  # between the a = 12 and a = 3 solutions


def test_darcy_similar_samples_are_nearer_each_other_than_the_pool(tmp_path):
    p, d = small_data("darcy", tmp_path)
    g = grf_fields(np.random.default_rng(0), 40, 16, 32, 2.0, 3.0)
    pool = (g >= 0).reshape(40, -1)
    chosen = (np.asarray(d.a) == 12.0).reshape(12, -1)
    spread = lambda b: np.mean(b[:, None, :] != b[None, :, :])
    assert spread(chosen) < 0.8 * spread(pool)


def test_darcy_constraint_nodes_are_distinct_interior_nodes_by_default(tmp_path):
    """constraint_nodes=distinct (the authors' code): no two constraints share a node, so
    with as many constraints as interior nodes every interior node is used once;
    independent (this project's earlier default) draws the same samples, data and fields,
    only the nodes differ."""
    kw = {"n_grid": 5, "n_constraints": 9}  # 3 × 3 interior nodes
    p, d = small_data("darcy", tmp_path, **kw)
    assert p.cfg.constraint_nodes == "distinct"
    nodes = sorted(map(tuple, np.asarray(d.constraint_node).tolist()))
    assert nodes == [(i, j) for i in range(1, 4) for j in range(1, 4)]
    q, e = small_data("darcy", tmp_path, constraint_nodes="independent", **kw)
    for f in ("a", "u_ref", "data_mask", "constraint_sample", "test_a"):
        np.testing.assert_array_equal(getattr(d, f), getattr(e, f))
    other = np.asarray(e.constraint_node)
    assert other.min() >= 1 and other.max() <= 3
    assert len(set(map(tuple, other.tolist()))) < 9  # 9 draws of 9 nodes repeat (p ≈ 0.999)


def test_grf_is_the_same_field_at_any_resolution():
    g16 = grf_fields(np.random.default_rng(1), 2, 16, 32, 2.0, 3.0)
    g31 = grf_fields(np.random.default_rng(1), 2, 31, 32, 2.0, 3.0)
    np.testing.assert_allclose(g31[:, ::2, ::2], g16, atol=1e-12)


# --- FNO -----------------------------------------------------------------------------------
def test_fno_output_shape():
    net = FNO(modes=(16, 16), hidden_channels=4)
    params = jax.eval_shape(net.init, jax.random.PRNGKey(0), jnp.zeros((1, 16, 16, 3)))
    for shape in ((5, 16, 16, 3), (2, 32, 32, 3), (8, 8, 3)):
        out = jax.eval_shape(net.apply, params, jnp.zeros(shape))
        assert out.shape == (*shape[:-1], 1)
    p = build_problem("darcy", {})
    params = jax.eval_shape(p.init_params, jax.random.PRNGKey(0))
    assert jax.eval_shape(p.predict, params, jnp.zeros((3, 16, 16))).shape == (3, 16, 16)


@pytest.mark.parametrize("lift", [8, 0])
def test_darcy_lifted_table_and_batched_lifting_pullbacks_are_exact(lift, tmp_path):
    """Darcy lifts a ≡ a_low and a ≡ a_high once and takes each field's pixels from that
    table: u equals the FNO applied to each field's own channels; the lifting's gradients
    for K cotangents at once (three matrix products) equal vmap of its jax.vjp; and the
    Jacobian assembled from them equals reverse mode over the batched c."""
    from problems.stochastic.fno import lifting_pullbacks

    p = small("darcy", n_layers=1, lifting_channels=lift)
    d = p.make_data(cache_dir=tmp_path)
    params = random_params(p.init_params, jax.random.PRNGKey(1))
    whole = p.net.apply(params, p._channels(d.a))[..., 0]
    np.testing.assert_allclose(
        jax.jit(p.predict)(params, d.a),
        whole,
        rtol=1e-13,
        atol=1e-13 * float(jnp.max(jnp.abs(whole))),
    )
    inputs = p._level_inputs(p.cfg.n_grid)
    table, pullback = jax.vjp(lambda q: p.net.apply(q, inputs, stage="lift"), params)
    cot = jax.random.normal(jax.random.PRNGKey(2), (3, *table.shape))
    ref = jax.vmap(pullback)(cot)[0]["params"]
    fast = lifting_pullbacks(params, inputs, cot, lift)
    assert sorted(fast) == (["Dense_0", "Dense_1"] if lift else ["Dense_0"])
    for layer, leaves in fast.items():
        for name, value in leaves.items():
            np.testing.assert_allclose(
                value,
                ref[layer][name],
                rtol=1e-11,
                atol=1e-11 * float(jnp.max(jnp.abs(ref[layer][name]))),
            )
    c, fast_jac = jax.jit(p.constraints_and_jacobian)(params, d)
    slow_jac = jax.jit(jax.jacrev(p.constraints))(params, d)
    for a, b in zip(jax.tree.leaves(fast_jac), jax.tree.leaves(slow_jac)):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9 * float(jnp.max(jnp.abs(b))))


def test_darcy_refuses_fields_off_its_two_levels(tmp_path):
    p = small("darcy", n_layers=1)
    arrays = p._generate(np.random.default_rng(0))
    arrays["a"][0, 0, 0] = 5.0
    with pytest.raises(ConfigError, match="a_low"):
        p._to_data(arrays)


def band_limited(n, key):
    """Two channels of a random trigonometric polynomial with |k1|, |k2| <= 5 on an n-grid."""
    k = jnp.arange(-5, 6)
    coef = jax.random.normal(key, (2, 11, 11, 2))
    x = jnp.arange(n) / n
    ph = (
        2
        * jnp.pi
        * (
            k[:, None, None, None] * x[None, None, :, None]
            + k[None, :, None, None] * x[None, None, None, :]
        )
    )  # (11, 11, n, n)
    return jnp.einsum("ckl,klij->ijc", coef[..., 0], jnp.cos(ph)) + jnp.einsum(
        "ckl,klij->ijc", coef[..., 1], jnp.sin(ph)
    )


def test_spectral_conv_is_resolution_invariant():
    conv = SpectralConv2d(features=3, modes=(16, 16))
    v16, v32 = band_limited(16, jax.random.PRNGKey(0)), band_limited(32, jax.random.PRNGKey(0))
    np.testing.assert_allclose(v32[::2, ::2], v16, atol=1e-12)  # the same field, sampled twice
    params = random_params(conv.init, jax.random.PRNGKey(1), v16)  # nonzero bias too
    apply = jax.jit(conv.apply)
    y16, y32 = apply(params, v16), apply(params, v32)
    assert y16.shape == (16, 16, 3) and float(jnp.std(y16)) > 0.1
    np.testing.assert_allclose(y32[::2, ::2], y16, atol=1e-10)
    # and the same weights on an 8-grid: modes are clipped to what it holds
    assert jax.eval_shape(conv.apply, params, v16[::2, ::2]).shape == (8, 8, 3)


def test_fno_gradient_matches_finite_differences():
    net = FNO(
        modes=(6, 6), hidden_channels=3, n_layers=2, lifting_channels=5, projection_channels=5
    )
    v = jax.random.normal(jax.random.PRNGKey(0), (2, 8, 8, 3))
    params = random_params(net.init, jax.random.PRNGKey(1), v, seed=1)
    d = random_params(net.init, jax.random.PRNGKey(1), v, seed=2, scale=1.0)  # a direction
    value_and_grad = jax.jit(jax.value_and_grad(lambda q: jnp.sum(jnp.sin(net.apply(q, v)))))
    _, g = value_and_grad(params)
    eps = 1e-6
    shift = lambda s: jax.tree.map(lambda w, dw: w + s * dw, params, d)
    fd = (value_and_grad(shift(eps))[0] - value_and_grad(shift(-eps))[0]) / (2 * eps)
    an = sum(jnp.vdot(a, b) for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(d)))
    assert abs(float(fd - an)) < 1e-7 * max(1.0, abs(float(an)))


# --- objective terms and constraints against hand computations ------------------------------
def mlp1(params):
    """Weights of a 1-hidden-layer network (Dense_0, Dense_1)."""
    q = params["params"]
    return (
        np.asarray(q["Dense_0"]["kernel"]),
        np.asarray(q["Dense_0"]["bias"]),
        np.asarray(q["Dense_1"]["kernel"]),
        np.asarray(q["Dense_1"]["bias"]),
    )


def test_spring_residual_matches_hand_computation(built):
    p, d, params = built("spring")
    w1, b1, w2, b2 = mlp1(params)

    def residual(t):  # u = W2ᵀ tanh(W1 t + b1) + b2
        h = np.tanh(w1[0] * t + b1)
        s = 1 - h**2
        u = h @ w2[:, 0] + b2[0]
        du = (s * w1[0]) @ w2[:, 0]
        ddu = (-2 * h * s * w1[0] ** 2) @ w2[:, 0]
        return ddu + 4.0 * du + 400.0 * u

    i = 7
    terms = jax.jit(p.objective_terms)(params, d, jnp.array([i]))
    assert abs(float(terms["residual"]) - residual(float(d.t_residual[i])) ** 2) < 1e-9 * max(
        1.0, residual(float(d.t_residual[i])) ** 2
    )
    u_data = np.tanh(np.asarray(d.t_data)[:, None] * w1[0] + b1) @ w2[:, 0] + b2[0]
    data = np.mean((u_data - np.asarray(d.u_data)) ** 2)
    assert abs(float(terms["data"]) - data) < 1e-13
    assert abs(float(terms["total"]) - (1e-4 * float(terms["residual"]) + data)) < 1e-12
    c = jax.jit(p.constraints)(params, d)
    np.testing.assert_allclose(c, [residual(t) for t in (4 / 29, 12 / 29, 21 / 29)], rtol=1e-10)


@pytest.mark.parametrize(
    "options",
    [
        {},  # the authors' setup: raw inputs and outputs, only the residual terms batched
        {"normalize_inputs": True, "normalize_outputs": True, "batch_terms": "all"},
    ],
)
def test_butene_terms_match_hand_computation(options, built, tmp_path):
    if options:
        p = small("butene", **TINY_NET, **options)
        d, params = p.make_data(cache_dir=tmp_path), p.init_params(jax.random.PRNGKey(3))
    else:
        p, d, params = built("butene")
    w1, b1, w2, b2 = mlp1(params)
    c, a = p.cfg, rate_matrix(p.cfg.rates)

    # output map u = ū + σ ⊙ net: mean / std over the nominal-IC trajectory at the 64 times
    nominal = np.stack(
        [
            scipy.linalg.expm(a * tk) @ np.asarray(c.u0)
            for tk in np.arange(c.n_times) * c.t_max / c.n_times
        ]
    )
    shift, scale = (nominal.mean(0), nominal.std(0)) if c.normalize_outputs else (0.0, 1.0)
    if c.normalize_outputs:
        assert scale[1] > 10 and shift[1] > 100  # u2 grows to ~150: the map matters
    dz_dt = 2 / c.t_max if c.normalize_inputs else 1.0

    def u_du(u0, t):
        z = (
            np.concatenate([(u0 - np.asarray(c.u0)) / c.xi_max, [2 * t / c.t_max - 1]])
            if c.normalize_inputs
            else np.concatenate([u0, [t]])
        )
        h = np.tanh(z @ w1 + b1)
        return shift + scale * (h @ w2 + b2), scale * (((1 - h**2) * w1[4] * dz_dt) @ w2)

    # every point's prediction, and the data term over exactly the labeled 20%
    mask = np.asarray(d.data_mask)
    assert mask.sum() == round(0.2 * mask.size)
    pred = np.stack(
        [
            u_du(np.asarray(d.u0[q // c.n_times]), float(d.t[q % c.n_times]))[0]
            for q in range(mask.size)
        ]
    )
    full_data = np.mean((pred - np.asarray(d.u_ref).reshape(-1, 4))[mask] ** 2)

    pt = 37
    ic, k = divmod(pt, c.n_times)
    u, du = u_du(np.asarray(d.u0[ic]), float(d.t[k]))
    terms = jax.jit(p.objective_terms)(params, d, jnp.array([pt]))
    np.testing.assert_allclose(float(terms["residual"]), np.mean((du - a @ u) ** 2), rtol=1e-10)
    np.testing.assert_allclose(float(terms["mass_balance"]), (du @ MASS_WEIGHTS) ** 2, rtol=1e-10)
    if c.batch_terms == "all":  # the labeled points in the batch: here the one point, or none
        expected = np.mean((u - np.asarray(d.u_ref[ic, k])) ** 2) if mask[pt] else 0.0
    else:  # every labeled point, whatever the batch
        expected = full_data
    np.testing.assert_allclose(float(terms["data"]), expected, rtol=1e-10)
    # constraints: the mass-balance residual at the constraint points
    cons = jax.jit(p.constraints)(params, d)
    hand = [
        u_du(np.asarray(d.u0[q // c.n_times]), float(d.t[q % c.n_times]))[1] @ MASS_WEIGHTS
        for q in np.asarray(d.constraint_idx)
    ]
    np.testing.assert_allclose(cons, hand, rtol=1e-9, atol=1e-13)
    full = jax.jit(p.objective_terms)(params, d, p.full_batch())
    np.testing.assert_allclose(float(full["data"]), full_data, rtol=1e-10)


@pytest.mark.parametrize("batch_terms", ["residual", "all"])
def test_burgers_terms_match_hand_computation(batch_terms, built, tmp_path):
    if batch_terms == "all":
        p = small("burgers", **TINY_NET, batch_terms="all", x_grid="periodic")
        d, params = p.make_data(cache_dir=tmp_path), p.init_params(jax.random.PRNGKey(3))
    else:
        p, d, params = built("burgers")
    w1, b1, w2, b2 = mlp1(params)
    c = p.cfg
    x_grid = np.linspace(0, 1, c.n_x) if c.x_grid == "linspace" else np.arange(c.n_x) / c.n_x
    np.testing.assert_allclose(d.x, x_grid, rtol=1e-15)

    def hand(x, t, u0):
        h = np.tanh(np.concatenate([[x, t], u0]) @ w1 + b1)
        s = 1 - h**2
        u = h @ w2[:, 0] + b2[0]
        ut, ux = (s * w1[1]) @ w2[:, 0], (s * w1[0]) @ w2[:, 0]
        uxx = (-2 * h * s * w1[0] ** 2) @ w2[:, 0]
        return ut + u * ux - 0.01 * uxx, u

    per_ic = c.n_t * c.n_x
    pt = per_ic + 3 * c.n_x + 5  # IC 1, t_3, x_5
    x, t, u0 = float(d.x[5]), float(d.t[3]), np.asarray(d.u0[1])
    terms = jax.jit(p.objective_terms)(params, d, jnp.array([pt]))
    r, u = hand(x, t, u0)
    np.testing.assert_allclose(float(terms["residual"]), r**2, rtol=1e-10)
    corner = jax.jit(p.objective_terms)(params, d, jnp.array([per_ic]))  # IC 1, x = 0, t = 0
    if batch_terms == "all":
        assert float(terms["boundary"]) == 0.0  # neither x = 0 nor t = 0
        assert float(terms["data"]) == (
            0.0
            if not d.data_mask[pt]
            else pytest.approx((u - float(d.u_ref[1, 3, 5])) ** 2, rel=1e-10)
        )
        # a point at x = 0, t = 0: periodicity and IC residuals both count
        u00, u10 = hand(0.0, 0.0, u0)[1], hand(1.0, 0.0, u0)[1]
        np.testing.assert_allclose(
            float(corner["boundary"]), (u00 - u10) ** 2 + (u00 - u0[0]) ** 2, rtol=1e-10
        )
    else:  # periodicity at every (IC, t_k), the IC at every (IC, x_j), every labeled point
        u0s, ts, xs = np.asarray(d.u0), np.asarray(d.t), np.asarray(d.x)
        periodic = np.mean(
            [(hand(0.0, tk, q)[1] - hand(1.0, tk, q)[1]) ** 2 for q in u0s for tk in ts]
        )
        initial = np.mean(
            [(hand(xj, 0.0, q)[1] - q[j]) ** 2 for q in u0s for j, xj in enumerate(xs)]
        )
        for b in (terms, corner):
            np.testing.assert_allclose(float(b["boundary"]), periodic + initial, rtol=1e-10)
        labeled = [divmod(int(q), per_ic) for q in np.flatnonzero(np.asarray(d.data_mask))]
        data = np.mean(
            [
                (
                    hand(xs[rest % c.n_x], ts[rest // c.n_x], u0s[i])[1]
                    - float(d.u_ref[i, rest // c.n_x, rest % c.n_x])
                )
                ** 2
                for i, rest in labeled
            ]
        )
        np.testing.assert_allclose(float(terms["data"]), data, rtol=1e-10)
    cons = jax.jit(p.constraints)(params, d)
    pts = [divmod(q, per_ic) for q in np.asarray(d.constraint_idx)]
    expected = [
        hand(float(d.x[rest % c.n_x]), float(d.t[rest // c.n_x]), np.asarray(d.u0[ic]))[0]
        for ic, rest in pts
    ]
    np.testing.assert_allclose(cons, expected, rtol=1e-9, atol=1e-13)
    assert int(np.asarray(d.data_mask).reshape(c.n_ics, -1).sum(1).min()) == 20


def test_darcy_terms_match_hand_computation(built):
    p, d, params = built("darcy")
    u = np.asarray(jax.jit(p.predict)(params, d.a))  # (n, 16, 16)
    a, h = np.asarray(d.a), 1 / 15
    hm = lambda p_, q: 2 * p_ * q / (p_ + q)

    def residual(n, i, j):  # the 5-point flux form, one node at a time
        flux = (
            hm(a[n, i + 1, j], a[n, i, j]) * (u[n, i + 1, j] - u[n, i, j])
            - hm(a[n, i, j], a[n, i - 1, j]) * (u[n, i, j] - u[n, i - 1, j])
            + hm(a[n, i, j + 1], a[n, i, j]) * (u[n, i, j + 1] - u[n, i, j])
            - hm(a[n, i, j], a[n, i, j - 1]) * (u[n, i, j] - u[n, i, j - 1])
        )
        return -flux / h**2 - 1.0

    cons = jax.jit(p.constraints)(params, d)
    hand = [
        residual(n, i, j)
        for n, (i, j) in zip(np.asarray(d.constraint_sample), np.asarray(d.constraint_node))
    ]
    np.testing.assert_allclose(cons, hand, rtol=1e-9)
    terms = jax.jit(p.objective_terms)(params, d, jnp.array([2]))
    res = [residual(2, i, j) ** 2 for i in range(1, 15) for j in range(1, 15)]
    np.testing.assert_allclose(float(terms["residual"]), np.mean(res), rtol=1e-9)
    ring = np.concatenate([u[2, 0], u[2, -1], u[2, 1:-1, 0], u[2, 1:-1, -1]])
    assert ring.size == 60
    np.testing.assert_allclose(float(terms["boundary"]), np.mean(ring**2), rtol=1e-10)
    # data_samples=batch (the default): a batch of one fits its one sample
    assert p.cfg.data_samples == "batch"
    misfit = lambda n: np.mean((u[n] - np.asarray(d.u_ref[n])) ** 2)
    np.testing.assert_allclose(float(terms["data"]), misfit(2), rtol=1e-10)


def test_darcy_data_term_fits_the_first_fifth_of_each_batch(built, tmp_path):
    """data_samples=batch (the authors' Darcy code): the data term is the misfit over the
    first int(0.2·B) samples of the batch, whatever the batch; data_samples=fixed (this
    project's earlier default): over the batch's samples in the fixed labeled 20%."""
    p, d, params = built("darcy")
    u = np.asarray(jax.jit(p.predict)(params, d.a))
    misfit = np.mean((u - np.asarray(d.u_ref)) ** 2, axis=(1, 2))  # per sample
    idx = np.array([7, 3, 11, 0, 5, 9, 1, 4, 10, 2])  # B = 10: the first 2 carry data
    terms = jax.jit(p.objective_terms)(params, d, jnp.asarray(idx))
    np.testing.assert_allclose(float(terms["data"]), misfit[[7, 3]].mean(), rtol=1e-10)
    full = jax.jit(p.objective_terms)(params, d, p.full_batch())  # 12 samples: the first 2
    np.testing.assert_allclose(float(full["data"]), misfit[[0, 1]].mean(), rtol=1e-10)
    # fixed: the same data (data_samples does not enter the data), the labeled samples in the batch
    q = small("darcy", n_layers=1, data_samples="fixed")
    dq = q.make_data(cache_dir=tmp_path)
    np.testing.assert_array_equal(np.asarray(dq.a), np.asarray(d.a))
    mask = np.asarray(dq.data_mask)
    assert mask.sum() == 2  # round(0.2 · 12)
    fixed = jax.jit(q.objective_terms)(params, dq, jnp.asarray(idx))
    in_batch = [i for i in idx if mask[i]]
    expected = misfit[in_batch].mean() if in_batch else 0.0
    np.testing.assert_allclose(float(fixed["data"]), expected, rtol=1e-10)


# --- batches, evaluation ------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_batches_and_evaluate(name, built):
    p, d, params = built(name)
    idx = np.asarray(jax.jit(p.sample_batch)(jax.random.PRNGKey(5)))
    assert idx.shape == (p.batch_size,) and len(set(idx.tolist())) == p.batch_size
    assert idx.min() >= 0 and idx.max() < p.n_residual_points
    assert p.batch_size == round(p.cfg.batch_fraction * p.n_residual_points)
    terms = jax.jit(p.objective_terms)(params, d, jnp.asarray(idx))
    assert set(terms) == {*p.loss_terms, "total"}
    assert float(terms["total"]) == pytest.approx(
        sum(w * float(terms[t]) for t, w in p.weights.items()), rel=1e-12
    )
    evaluate = jax.jit(p.evaluate)
    m = evaluate(params, d)
    assert {*p.loss_terms, "total", "max_abs_c", "l1_c", "test_mse"} <= set(m)
    assert float(m["l1_c"]) >= float(m["max_abs_c"]) > 0
    # the zero network predicts u = 0 (butene: its output shift ū): relative error 1 (butene:
    # ‖ū − u_ref‖/‖u_ref‖ on the held-out ICs), MSE = mean square of the reference
    mz = evaluate(jax.tree.map(jnp.zeros_like, params), d)
    expected = 1.0
    if name == "butene":
        ref = np.asarray(d.test_u_ref)
        expected = np.linalg.norm(np.asarray(p.u_shift) - ref) / np.linalg.norm(ref)
    assert float(mz["test_rel_l2"]) == pytest.approx(expected, abs=1e-12)
    assert float(mz["test_mse"]) > 1e-6


# --- cache --------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["butene", "burgers", "darcy"])
def test_cache_round_trip(name, tmp_path, monkeypatch):
    p = small(name)
    first = p.make_data(cache_dir=tmp_path)
    files = list(tmp_path.glob(f"{name}-*.npz"))
    assert len(files) == 1 and not list(tmp_path.glob(".*"))  # no temp file left
    monkeypatch.setattr(type(p), "_generate", lambda *a: pytest.fail("regenerated"))
    second = p.make_data(cache_dir=tmp_path)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    # the network and the weights are not part of the key; data_seed and the sizes are
    same = small(name, residual_weight=0.5).make_data(cache_dir=tmp_path)
    for a, b in zip(first, same):
        np.testing.assert_array_equal(a, b)
    key = lambda q, seed=0: cache_path(tmp_path, name, q.cache_key(seed))[0]
    assert key(small(name, data_seed=3), 3) != key(p)
    assert key(small(name, residual_weight=0.5)) == key(p)
    monkeypatch.undo()
    other = small(name).make_data(seed=1, cache_dir=tmp_path)
    assert any(not np.array_equal(a, b) for a, b in zip(first, other))
    assert len(list(tmp_path.glob(f"{name}-*.npz"))) == 2


def test_cache_accepts_a_prng_key_and_survives_a_corrupt_file(tmp_path):
    p = small("butene")
    a = p.make_data(seed=jax.random.PRNGKey(7), cache_dir=tmp_path)
    (path,) = tmp_path.glob("butene-*.npz")
    path.write_bytes(b"not a zip file")
    b = p.make_data(seed=jax.random.PRNGKey(7), cache_dir=tmp_path)
    np.testing.assert_array_equal(a.u0, b.u0)
    c = p.make_data(seed=jax.random.PRNGKey(7), cache_dir=None)  # no cache at all
    np.testing.assert_array_equal(a.u_ref, c.u_ref)


def test_a_tampered_cache_is_regenerated_with_a_warning(tmp_path, caplog):
    """Same key, altered content: the checksum beside the key catches it."""
    p = small("butene")
    a = p.make_data(cache_dir=tmp_path)
    (path,) = tmp_path.glob("butene-*.npz")
    with np.load(path, allow_pickle=False) as f:
        stored = {k: f[k] for k in f.files}
    name = next(k for k in stored if not k.startswith("_") and stored[k].dtype.kind == "f")
    stored[name] = stored[name] * 0.5  # keep _key and _checksum as they were
    with open(path, "wb") as f:
        np.savez(f, **stored)
    caplog.clear()
    with caplog.at_level("WARNING", logger="problems.common.cache"):
        b = p.make_data(cache_dir=tmp_path)
    (rec,) = caplog.records
    err = rec.getMessage()
    assert rec.levelname == "WARNING"
    assert err.startswith(f"cache {path}") and "does not match its checksum" in err
    for x, y in zip(a, b):  # the data as generated, not the altered file
        np.testing.assert_array_equal(x, y)
    with np.load(path, allow_pickle=False) as f:  # and the file is whole again
        np.testing.assert_array_equal(f[name], stored[name] * 2)
    caplog.clear()
    with caplog.at_level("WARNING", logger="problems.common.cache"):
        p.make_data(cache_dir=tmp_path)
    assert caplog.records == []  # a good cache loads silently


def test_data_are_float32_when_asked(tmp_path):
    p = small("burgers", dtype="float32", **TINY_NET)
    d = p.make_data(cache_dir=tmp_path)
    assert d.u_ref.dtype == jnp.float32 and d.constraint_idx.dtype == jnp.int32
    params = random_params(p.init_params, jax.random.PRNGKey(0))
    assert jax.tree.leaves(params)[0].dtype == jnp.float32
    terms = jax.jit(p.objective_terms)(params, d, jnp.arange(8))
    assert terms["total"].dtype == jnp.float32 and math.isfinite(float(terms["total"]))


@pytest.mark.parametrize("name", NAMES)
def test_per_constraint_values_and_gradients_are_c_and_its_jacrev(name, built):
    """constraints_and_jacobian (one value-and-gradient pass per constraint, what the methods
    use) = (c, reverse mode over the batched c); darcy's evaluates the FNO's projection at
    the 5 stencil pixels only, c is also checked against the full field's residual."""
    p, d, params = built(name)
    c, fast = jax.jit(p.constraints_and_jacobian)(params, d)
    slow = jax.jit(jax.jacrev(p.constraints))(params, d)
    np.testing.assert_allclose(c, jax.jit(p.constraints)(params, d), rtol=1e-12, atol=1e-12)
    if name == "darcy":
        field = p.residual(p.predict(params, d.a[d.constraint_sample]), d.a[d.constraint_sample])
        node = np.asarray(d.constraint_node) - 1
        np.testing.assert_allclose(
            c, np.asarray(field)[np.arange(len(node)), node[:, 0], node[:, 1]], rtol=1e-10
        )
    m = len(p.cfg.constraint_idx) if name == "spring" else p.cfg.n_constraints
    for a, b in zip(jax.tree.leaves(fast), jax.tree.leaves(slow)):
        assert a.shape[0] == c.shape[0] == m
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9 * float(jnp.max(jnp.abs(b))))


@pytest.mark.slow
def test_burgers_paper_reference_is_converged():
    """The default 128-point reference vs a 512-point solve, at the paper's grid."""
    p = build_problem("burgers", {})
    fine = build_problem("burgers", {"n_spectral": 512})
    xi = np.array([0.0, 0.2])
    assert np.max(np.abs(p.reference(xi) - fine.reference(xi))) < 1e-6


def test_random_subset_is_uniform_without_replacement():
    """Mini-batches: distinct indices, each index in a batch with probability k/n and each
    pair with probability k(k−1)/(n(n−1)) (what uniform sampling without replacement gives)."""
    from problems.stochastic.base import random_subset

    n, k, draws = 8, 3, 40000
    keys = jax.random.split(jax.random.PRNGKey(0), draws)
    idx = np.asarray(jax.jit(jax.vmap(lambda key: random_subset(key, n, k)))(keys))
    assert all(len(set(row)) == k for row in idx[:1000])
    hits = np.zeros((draws, n))
    np.put_along_axis(hits, idx, 1.0, axis=1)
    p1 = k / n
    assert np.abs(hits.mean(0) - p1).max() < 4.5 * np.sqrt(p1 * (1 - p1) / draws)
    pairs = (hits.T @ hits / draws)[np.triu_indices(n, 1)]
    p2 = k * (k - 1) / (n * (n - 1))
    assert np.abs(pairs - p2).max() < 4.5 * np.sqrt(p2 * (1 - p2) / draws)


# --- the authors' setup: grid, initialisation, residual-only mini-batches -------------------
def test_burgers_reference_on_the_authors_grid():
    """linspace(0, 1, 32): x = 1 is on the grid and, the problem being periodic, its column
    equals x = 0's; resampling the Fourier series at j/32 gives back the solver's points."""
    t = np.linspace(0, 1, 8)
    n = 128
    u = burgers_spectral(initial_condition(np.arange(n) / n, 0.1), 0.01, t)
    np.testing.assert_allclose(fourier_resample(u, np.arange(32) / 32), u[:, ::4], atol=1e-12)
    on_grid = fourier_resample(u, np.linspace(0, 1, 32))
    np.testing.assert_allclose(on_grid[:, -1], on_grid[:, 0], atol=1e-12)
    # off the solver's points too: the interpolant of a resolved solve is the solution
    fine = burgers_spectral(initial_condition(np.arange(4 * 31) / (4 * 31), 0.1), 0.01, t)
    np.testing.assert_allclose(on_grid[:, :31], fine[:, ::4], atol=1e-5)


@pytest.mark.parametrize("init", ["torch", "flax"])
def test_network_initialisation_moments(init):
    """init=torch: PyTorch's nn.Linear defaults, kernel and bias U(±1/√fan_in) (variance
    1/(3 fan_in)); init=flax: lecun-normal kernel (variance 1/fan_in), zero bias."""
    from problems.common.networks import MLP

    fan_in, width = 64, 4096
    net = MLP(1, width, initialization=init)
    params = net.init(jax.random.PRNGKey(0), jnp.zeros((fan_in,)))["params"]
    for layer, n_in in (("Dense_0", fan_in), ("Dense_1", width)):
        w, b = np.asarray(params[layer]["kernel"]), np.asarray(params[layer]["bias"])
        bound = 1 / np.sqrt(n_in)
        if init == "torch":
            for x in (w, b):
                assert np.abs(x).max() <= bound
                assert abs(x.mean()) < 4 * bound / np.sqrt(3 * x.size)
                assert x.size < 100 or np.abs(x).max() > 0.95 * bound  # U fills its bounds
            assert np.var(w) == pytest.approx(bound**2 / 3, rel=0.05)
            if b.size > 100:
                assert np.var(b) == pytest.approx(bound**2 / 3, rel=0.15)
        else:
            assert np.var(w) == pytest.approx(1 / n_in, rel=0.05) and not b.any()


@pytest.mark.parametrize(
    "name,batched",
    [
        ("butene", ("residual", "mass_balance")),
        ("burgers", ("residual",)),
        ("darcy", ("residual",)),
    ],
)
def test_residual_only_batches_keep_the_other_terms_whole(name, batched, built, tmp_path):
    """batch_terms=residual (the authors' on butene and Burgers; an option on Darcy): the
    data (and boundary) term's gradient on a mini-batch is the full-data gradient; a
    residual term's is the gradient over the drawn points alone (the same term on a batch
    of exactly those points, hand-summed)."""
    if name == "darcy":
        p = small("darcy", n_layers=1, batch_terms="residual", data_samples="fixed")
        d, params = (
            p.make_data(cache_dir=tmp_path),
            random_params(p.init_params, jax.random.PRNGKey(3)),
        )
    else:
        p, d, params = built(name)
    assert p.cfg.batch_terms == "residual"
    idx = jax.jit(p.sample_batch)(jax.random.PRNGKey(7))
    assert idx.shape[0] < p.n_residual_points
    grads = {
        t: jax.jit(jax.grad(lambda q, i, t=t: p.objective_terms(q, d, i)[t])) for t in p.loss_terms
    }
    term_grad = lambda t, i: grads[t](params, i)
    flat = lambda g: np.concatenate([np.ravel(x) for x in jax.tree.leaves(g)])
    for t in set(p.loss_terms) - set(batched):
        full = flat(term_grad(t, p.full_batch()))
        np.testing.assert_allclose(
            flat(term_grad(t, idx)), full, rtol=1e-10, atol=1e-12 * np.abs(full).max()
        )
    for t in batched:  # the mean over the batch = the average of the one-point terms
        one = np.mean(
            [flat(term_grad(t, idx[k : k + 1])) for k in range(0, idx.shape[0], 7)], axis=0
        )
        sub = idx[::7]
        np.testing.assert_allclose(
            flat(term_grad(t, sub)), one, rtol=1e-9, atol=1e-12 * np.abs(one).max()
        )
        assert np.abs(flat(term_grad(t, sub)) - flat(term_grad(t, p.full_batch()))).max() > 0

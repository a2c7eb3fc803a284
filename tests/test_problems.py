"""Physics of the three PDE problems: exact solutions, reference, residuals, sampling."""

import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from problems import PROBLEMS, ConfigError, build_problem
from problems.pde.reaction_diffusion import strang_splitting

SMALL = {"eval_nx": 64, "eval_nt": 11, "n_data": 200}


def random_points(n=200, seed=0):
    kx, kt = jax.random.split(jax.random.PRNGKey(seed))
    return (
        jax.random.uniform(kx, (n,), jnp.float64, 0, 2 * math.pi),
        jax.random.uniform(kt, (n,), jnp.float64, 0, 1),
    )


@pytest.mark.parametrize(
    "name,coef",
    [
        ("transport", {"beta": 30.0}),
        ("transport", {"beta": -10.0}),
        ("reaction", {"alpha": 30.0}),
        ("reaction", {"alpha": -20.0}),
        ("reaction", {"alpha": 50.0}),
    ],
)
def test_exact_solution_satisfies_pde_ic_bc(name, coef):
    p = build_problem(name, {**SMALL, **coef})
    x, t = random_points()
    pde = jax.vmap(lambda a, b: p.pde_residual(p.exact, a, b))(x, t)
    scale = 1.0 + max(abs(v) for v in coef.values())
    assert float(jnp.max(jnp.abs(pde))) < 1e-6 * scale
    ic = p.exact(x, jnp.zeros_like(x)) - p.initial_condition(x)
    assert float(jnp.max(jnp.abs(ic))) < 1e-12
    bc = p.exact(jnp.zeros_like(t), t) - p.exact(jnp.full_like(t, 2 * math.pi), t)
    assert float(jnp.max(jnp.abs(bc))) < 1e-6


def test_exact_solution_residual_detects_wrong_coefficient():
    p = build_problem("reaction", {**SMALL, "alpha": 30.0})
    q = build_problem("reaction", {**SMALL, "alpha": 31.0})
    x, t = random_points()
    r = jax.vmap(lambda a, b: q.pde_residual(p.exact, a, b))(x, t)
    assert float(jnp.max(jnp.abs(r))) > 1e-2


def test_rd_reference_without_diffusion_is_the_logistic_solution():
    rd = build_problem("reaction_diffusion", {**SMALL, "tau": 0.0, "alpha": 20.0})
    re = build_problem("reaction", {**SMALL, "alpha": 20.0})
    x, t = np.arange(64) * 2 * np.pi / 64, np.linspace(0, 1, 11)
    np.testing.assert_allclose(rd.reference(x, t), re.reference(x, t), atol=1e-12)


def test_rd_reference_without_reaction_is_the_periodic_heat_kernel():
    """α = 0: u0 = exp(-ζ(x-π)²) diffuses as a Gaussian (method of images)."""
    zeta, tau = 2.0, 2.0
    rd = build_problem("reaction_diffusion", {**SMALL, "tau": tau, "alpha": 0.0})
    x, t = np.arange(128) * 2 * np.pi / 128, np.linspace(0, 1, 6)
    s = 1 + 4 * zeta * tau * t[:, None]
    exact = sum(
        np.exp(-zeta * (x[None, :] - np.pi - 2 * np.pi * n) ** 2 / s) / np.sqrt(s)
        for n in range(-3, 4)
    )
    np.testing.assert_allclose(rd.reference(x, t), exact, atol=1e-7)


def test_rd_reference_converges_second_order_in_dt():
    x = np.arange(128) * 2 * np.pi / 128
    u0 = np.exp(-2.0 * (x - np.pi) ** 2)
    t = np.linspace(0, 1, 11)
    sols = [strang_splitting(u0, 20.0, 2.0, t, s)[-1] for s in (2, 4, 8, 16)]
    diffs = [np.linalg.norm(a - b) for a, b in zip(sols, sols[1:])]
    ratios = [d0 / d1 for d0, d1 in zip(diffs, diffs[1:])]
    assert all(3.5 < r < 4.6 for r in ratios), ratios  # Strang: error ∝ dt²


def test_rd_reference_converges_in_dx():
    t = np.linspace(0, 0.2, 11)  # before the logistic growth saturates at u = 1
    fine = 512

    def solve(nx):
        x = np.arange(nx) * 2 * np.pi / nx
        return strang_splitting(np.exp(-2.0 * (x - np.pi) ** 2), 20.0, 2.0, t, 8)

    ref = solve(fine)
    errs = [np.max(np.abs(solve(nx) - ref[:, :: fine // nx])) for nx in (16, 32, 64)]
    # spectral in dx: 16 -> 32 points gains > 3 digits, then the splitting error (the same
    # dt on every grid) is the floor
    assert errs[0] > 1e3 * errs[1] and errs[2] <= errs[1] < 1e-8, errs


def tiny(name, **kw):
    return build_problem(name, {**SMALL, "depth": 1, "width": 3, **kw})


def hand_network(params):
    """u, u_x, u_t, u_xx of a 1-hidden-layer tanh network, by hand."""
    W1 = params["params"]["Dense_0"]["kernel"]
    b1 = params["params"]["Dense_0"]["bias"]
    W2 = params["params"]["Dense_1"]["kernel"][:, 0]
    b2 = params["params"]["Dense_1"]["bias"][0]

    def f(x, t):
        h = jnp.tanh(x * W1[0] + t * W1[1] + b1)
        d = 1 - h**2
        return (h @ W2 + b2, (d * W1[0]) @ W2, (d * W1[1]) @ W2, (-2 * h * d * W1[0] ** 2) @ W2)

    return f


@pytest.mark.parametrize("name", ["transport", "reaction", "reaction_diffusion"])
def test_constraint_residuals_match_hand_computation(name):
    p = tiny(name)
    params = p.init_params(jax.random.PRNGKey(3))
    data = p.sample_data(jax.random.PRNGKey(4))
    f = hand_network(params)
    pts = data.train
    ic = [
        f(x, 0.0)[0] - math.exp(-2 * (x - math.pi) ** 2)
        if name != "transport"
        else f(x, 0.0)[0] - math.sin(x)
        for x in np.asarray(pts.ic_x)
    ]
    pde = []
    for x, t in np.asarray(pts.pde_xt):
        u, ux, ut, uxx = f(x, t)
        if name == "transport":
            pde.append(ut + 30.0 * ux)
        elif name == "reaction":
            pde.append(ut - 30.0 * u * (1 - u))
        else:
            pde.append(ut - 2.0 * uxx - 20.0 * u * (1 - u))
    bc = [f(0.0, t)[0] - f(2 * math.pi, t)[0] for t in np.asarray(pts.bc_t)]
    expected = np.array([float(v) for v in ic + pde + bc])
    got = np.asarray(p.constraints(params, data))
    assert got.shape == (p.cfg.m_train,)
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)


def test_paper_network_size():
    p = build_problem("reaction", SMALL)
    n = sum(x.size for x in jax.tree.leaves(p.init_params(jax.random.PRNGKey(0))))
    assert n == 7851


def test_sampling_splits_and_independent_noise():
    p = build_problem("reaction", {**SMALL, "n_data": 1000, "noise": 0.01})
    data = p.sample_data(jax.random.PRNGKey(0))
    assert data.train.ic_x.shape == (2,) and data.train.pde_xt.shape == (3, 2)
    assert data.train.bc_t.shape == (2,) and data.pretrain.pde_xt.shape == (50, 2)
    noise = np.asarray(data.u_data - p.exact(data.x_data[:, 0], data.x_data[:, 1]))
    assert np.max(np.abs(noise)) <= 0.01 and np.std(noise) > 0.004  # U(-0.01, 0.01)
    for col in (0, 1):  # the reference code's shared key made noise a function of x
        assert abs(np.corrcoef(noise, np.asarray(data.x_data[:, col]))[0, 1]) < 0.15


def test_rd_labels_lie_on_the_evaluation_grid():
    p = build_problem("reaction_diffusion", {**SMALL, "n_data": 100})
    data = p.sample_data(jax.random.PRNGKey(1))
    x, t = np.asarray(data.x_data).T
    ix = np.rint(x / (2 * np.pi / 64)).astype(int)
    it = np.rint(t * 10).astype(int)
    np.testing.assert_allclose(x, ix * 2 * np.pi / 64, atol=1e-12)
    np.testing.assert_allclose(t, it / 10, atol=1e-12)
    assert np.max(np.abs(np.asarray(data.u_data) - np.asarray(data.u_ref)[it, ix])) <= 0.01


def test_errors_of_the_zero_network():
    p = build_problem("reaction", SMALL)
    data = p.sample_data(jax.random.PRNGKey(0))
    params = p.init_params(jax.random.PRNGKey(0))
    zero = jax.tree.map(jnp.zeros_like, params)  # u_θ ≡ 0
    m = jax.jit(p.evaluate)(zero, data)
    assert abs(float(m["rel_error"]) - 1.0) < 1e-12
    assert abs(float(m["abs_error"]) - float(jnp.mean(jnp.abs(data.u_ref)))) < 1e-12


@pytest.mark.parametrize(
    "values,field",
    [
        ({"n_data": -5}, "problem.n_data"),
        ({"n_data": 0}, "problem.n_data"),
        ({"m_split": {"ic": 2, "pde": 3, "bc": 3}}, "problem.m_split"),
        ({"m_pretrain_split": {"ic": 50, "pde": 50}}, "problem.m_pretrain_split"),
        ({"activation": "relu6"}, "problem.activation"),
        ({"width": 0}, "problem.width"),
        ({"noise": -1.0}, "problem.noise"),
        ({"alpha": float("nan")}, "problem.alpha"),
        ({"bogus": 1}, "problem.bogus"),
    ],
)
def test_bad_problem_config_names_the_field(values, field):
    with pytest.raises(ConfigError) as e:
        build_problem("reaction", {**SMALL, **values})
    assert str(e.value).startswith(field) and "\n" not in str(e.value)


@pytest.mark.slow
def test_rd_reference_on_the_paper_grid_is_converged():
    """The paper grid (2560 × 1000, 4 Strang steps per interval) vs twice the steps."""
    x, t = np.arange(2560) * 2 * np.pi / 2560, np.linspace(0, 1, 1000)
    u0 = np.exp(-2.0 * (x - np.pi) ** 2)
    coarse = strang_splitting(u0, 20.0, 2.0, t, 4)
    fine = strang_splitting(u0, 20.0, 2.0, t, 8)
    assert np.max(np.abs(coarse - fine)) < 1e-6


@pytest.mark.parametrize("name", list(PROBLEMS))
def test_a_problems_yaml_is_its_dataclass_default(name):
    """conf/problem/<name>.yaml, composed as a run composes it (scale=paper, interpolations
    resolved), gives the problem's dataclass defaults: the two do not drift apart."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    import runners.setup  # noqa: F401 (config resolvers; the dataclasses' default nodes)

    method = {
        "constrained_learning": "trsqp",
        "stochastic_constrained": "sqp_adam",
        "neural_dae": "collocation",
        "parametric_opt": "lisco",
    }[PROBLEMS[name].family]
    conf = Path(__file__).resolve().parent.parent / "conf"
    with initialize_config_dir(config_dir=str(conf), version_base=None):
        cfg = compose("train", overrides=[f"problem={name}", f"method={method}", "scale=paper"])
    values = OmegaConf.to_container(cfg.problem, resolve=True)
    assert values.pop("name") == name

    def plain(v):
        if isinstance(v, (list, tuple)):
            return tuple(plain(x) for x in v)
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    default = PROBLEMS[name].Config()
    for k, v in values.items():
        assert plain(v) == plain(getattr(default, k)), f"problem.{k}: yaml {v!r}"

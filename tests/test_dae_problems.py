"""Neural DAE problems: Radau collocation, the three true models, CasADi vs Flax MLP."""

import casadi as ca
import jax
import numpy as np
import pytest

from problems.common.networks import MLP
from problems.dae.base import casadi_mlp, flax_to_layers, layers_to_flax
from problems.dae.bioreactor import Bioreactor, BioreactorConfig
from problems.dae.population import Population, PopulationConfig
from problems.dae.radau import RadauGrid, lagrange_derivatives, radau_points
from problems.dae.tank_manifold import TankManifold, TankManifoldConfig


def solve_linear(grid: RadauGrid, lam: float, x0: float = 1.0) -> np.ndarray:
    """Collocation of x' = λ x: X M = λ X[1:] with X[0] = x0, a linear solve."""
    m = grid.derivative_matrix
    a = m[1:].T - lam * np.eye(grid.n_points)  # unknowns X[1:]
    return np.linalg.solve(a, -m[0] * x0)


def test_radau_points_and_derivatives():
    tau = radau_points(3)
    assert tau[0] == 0 and tau[-1] == pytest.approx(1.0, abs=1e-15)
    np.testing.assert_allclose(tau[1:], [0.155051025721682, 0.644948974278318, 1.0], atol=1e-12)
    c = lagrange_derivatives(tau)
    # differentiates any polynomial of degree ≤ K exactly: p(τ) = τ³ − 2τ + 1
    np.testing.assert_allclose(c.T @ (tau**3 - 2 * tau + 1), 3 * tau**2 - 2, atol=1e-12)


@pytest.mark.parametrize("K", [1, 2, 3])
def test_collocation_converges_at_radau_order(K):
    """Radau IIA with K points: error at t = 1 of x' = −2x falls as h^(2K−1)."""
    errors = [
        abs(solve_linear(RadauGrid(n, K, 0.0, 1.0), -2.0)[-1] - np.exp(-2.0)) for n in (4, 8, 16)
    ]
    orders = np.log2(np.asarray(errors[:-1]) / np.asarray(errors[1:]))
    np.testing.assert_allclose(orders, 2 * K - 1, atol=0.15)


def test_interpolate_reproduces_the_collocation_polynomial():
    grid = RadauGrid(5, 3, 0.0, 2.0)
    poly = lambda t: 1 - t + 0.5 * t**2 - 0.2 * t**3
    t = np.linspace(0, 2, 37)
    np.testing.assert_allclose(grid.interpolate(poly(grid.times)[None], t)[0], poly(t), atol=1e-12)


def test_tank_manifold_truth():
    """Volume Σφx conserved (11.45 for IC 1); end state of the spec; y2 changes sign."""
    p = TankManifold(TankManifoldConfig())
    x, y, _, ok = p.simulate_truth(np.asarray(p.train_x0[0]), p.truth_grid())
    assert ok
    np.testing.assert_allclose(p.volume(x), 11.45, atol=1e-9)
    np.testing.assert_allclose(x[:, -1], [3.36, 3.36, 3.35, 0.27], atol=0.01)
    np.testing.assert_allclose(x[0], x[1], atol=1e-10)  # the index-2 constraint
    assert y[1].min() < 0 < y[1].max()


def test_population_truth_lyapunov_decreases():
    p = Population(PopulationConfig())
    x, _, _, ok = p.simulate_truth(np.asarray(p.train_x0[0]), p.truth_grid())
    v = p.lyapunov_function(x)
    assert ok and v[0] == pytest.approx(10.37, abs=0.01)
    assert np.all(np.diff(v) < 1e-7)
    e0, _ = p.equilibrium
    assert v[-1] == pytest.approx(1 + p.cfg.a1 * e0 / p.cfg.a2, abs=1e-4)  # V(x*) = 1.9756


def test_population_lyapunov_rate_is_the_derivative_of_v():
    p = Population(PopulationConfig(lyapunov=True))
    x, d, h = np.array([0.7, 0.4]), np.array([0.3, -0.2]), 1e-6
    fd = (p.lyapunov_function(x + h * d) - p.lyapunov_function(x - h * d)) / (2 * h)
    assert float(p.lyapunov_rate(x, d)) == pytest.approx(fd, rel=1e-7)
    xs = ca.SX.sym("x", 2)
    f = ca.Function("r", [xs], [p.path_constraints(xs, None, None, None, ca.DM(d))])
    assert float(f(x)) == pytest.approx(fd, rel=1e-7)


def test_bioreactor_truth_end_states():
    p = Bioreactor(BioreactorConfig())
    x, _, _, ok = p.simulate_truth(np.asarray(p.train_x0[0]), p.truth_grid())
    assert ok
    np.testing.assert_allclose(x[:, -1], [4.97, 0.99, 0.092, 3.0], atol=0.01)
    assert x[2, -1] == pytest.approx(0.092, abs=1e-3)
    assert x[2].min() > 0  # S stays positive in the truth


@pytest.mark.parametrize("activation", ["tanh", "softplus"])
def test_casadi_mlp_matches_flax(activation):
    net = MLP(depth=2, width=16, activation=activation, out_features=2)
    params = net.init(jax.random.PRNGKey(0), np.zeros(4))  # float64 (conftest)
    v = np.random.default_rng(0).normal(size=(7, 4)) * 3
    ref = np.asarray(net.apply(params, v))
    assert ref.dtype == np.float64
    layers = flax_to_layers(params)
    np.testing.assert_allclose(casadi_mlp(layers, v.T, activation).T, ref, rtol=0, atol=1e-12)
    x = ca.SX.sym("x", 4, 7)
    f = ca.Function(
        "nn", [x], [casadi_mlp([(ca.DM(w), ca.DM(b)) for w, b in layers], x, activation)]
    )
    np.testing.assert_allclose(np.asarray(f(v.T)).T, ref, rtol=0, atol=1e-12)
    back = flax_to_layers(layers_to_flax(layers))
    assert all(np.array_equal(a, b) for (a, _), (b, _) in zip(layers, back))


def test_make_data_is_deterministic_and_noisy():
    p = TankManifold(TankManifoldConfig())
    d1, d2 = p.make_data(), p.make_data()
    assert d1.x_obs.shape == (3, 4, 31) and np.array_equal(d1.x_obs, d2.x_obs)
    noise = (d1.x_obs - d1.x_true).ravel()
    assert abs(noise.std() - 0.05) < 0.01 and abs(noise.mean()) < 0.01

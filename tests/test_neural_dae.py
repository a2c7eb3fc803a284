"""Neural DAE methods: collocation (CasADi + IPOPT) and sequential (diffrax + Adam)."""

import dataclasses
import json
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from methods.dae.collocation import (
    CollocationConfig,
    Standardization,
    _Builder,
    constrained_inference,
    ipopt_status,
    learned_closure,
    pack_layers,
    train_collocation,
    unpack_layers,
    weight_penalty,
)
from methods.dae.sequential import (
    SequentialConfig,
    initial_params,
    make_model,
    sequential_method,
    to_sequential_data,
)
from methods.driver import run_chunked
from problems.dae.base import DaeConfig, DaeProblem
from problems.dae.tank_manifold import TankManifold, TankManifoldConfig

K_TRUE = 0.7


@dataclasses.dataclass(frozen=True)
class DecayConfig(DaeConfig):
    n_fe: int = 10
    K: int = 3
    truth_n_fe: int = 20
    truth_K: int = 3
    subsample: int = 3
    noise_std: float = 0.0
    hidden: tuple = (1,)
    activation: str = "tanh"
    smoothing_weight: float = 1e-3
    l2_weight: float = 0.0


class Decay(DaeProblem):
    """dx/dt = −z x with the closure z = k (constant): identify k = 0.7 from clean data."""

    name = "decay"
    Config = DecayConfig
    state_names = ("x",)
    closure_names = ("k",)
    tf = 2.0
    train_x0 = ((2.0,), (1.0,))
    test_x0 = ((1.5,),)
    x_lower = (0.0,)

    def rhs(self, x, y, z, p):
        return -z[0] * x[0]

    def true_closure(self, x, y, p):
        return K_TRUE + 0 * x[0]

    def ode_rhs(self, x, z, p):
        return -z[0] * x

    def true_closure_jax(self, x, p):
        return jnp.full((1,), K_TRUE)


def test_collocation_identifies_a_decay_rate():
    p = Decay(DecayConfig())
    data = p.make_data()
    res = train_collocation(
        p, CollocationConfig(tol=1e-4, refine=True, refine_tol=1e-10, max_iter=500), data
    )
    assert [s.name for s in res.steps] == ["smoothing", "pretraining", "main", "refinement"]
    assert res.status == "converged" and res.steps[-1].max_violation < 1e-9
    closure = learned_closure(p, res)
    learned = [float(closure(np.array([x]), np.zeros(0), np.zeros(0))) for x in (0.3, 1.0, 2.0)]
    np.testing.assert_allclose(learned, K_TRUE, atol=1e-5)
    metrics, _ = p.evaluate_closure(closure)
    assert metrics["test_mse"] < 1e-10


def test_sequential_identifies_a_decay_rate():
    p = Decay(DecayConfig())
    data = p.make_data()
    cfg = SequentialConfig(epochs=600, lr=2e-2, rtol=1e-8, atol=1e-10)
    m = sequential_method(p, cfg, data)
    d = to_sequential_data(data)
    r = run_chunked(m, m.init(initial_params(p, cfg), d), d, max_steps=cfg.epochs, log_every=200)
    net, xm, xs = make_model(p, data)
    z = net.apply(m.params(r.state), (jnp.linspace(0.3, 2.0, 5)[:, None] - xm) / xs)
    np.testing.assert_allclose(np.asarray(z).ravel(), K_TRUE, atol=2e-3)


def test_sequential_index_reduction_matches_the_collocated_dae():
    """The tank manifold's explicit ODE (algebraic variables eliminated) integrated with the
    true closure by diffrax agrees with the collocated index-2 DAE."""
    from problems.dae.radau import RadauGrid

    p = TankManifold(TankManifoldConfig())
    grid = RadauGrid(400, 3, 0.0, p.tf)  # fine: the collocation error well under 1e-5
    x0 = np.asarray(p.train_x0[1])
    ref, *_ = p.simulate_truth(x0, grid)

    def field(t, x, args):
        return p.ode_rhs(x, p.true_closure_jax(x, None), None)

    import diffrax

    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(field),
        diffrax.Tsit5(),
        0.0,
        p.tf,
        None,
        jnp.asarray(x0),
        saveat=diffrax.SaveAt(ts=jnp.asarray(grid.times)),
        stepsize_controller=diffrax.PIDController(rtol=1e-9, atol=1e-11),
        max_steps=100000,
    )
    np.testing.assert_allclose(np.asarray(sol.ys).T, ref, atol=1e-5)
    np.testing.assert_allclose(ref[0], ref[1], atol=1e-10)


def _constant_growth_model(mu: float):
    """A bioreactor network whose output is μ ≡ ``mu`` whatever the state (zero weights,
    last bias ``mu``, unit output scaling): it keeps growing on an empty substrate."""
    from problems.dae.bioreactor import Bioreactor, BioreactorConfig

    p = Bioreactor(BioreactorConfig(hidden=(2,)))
    layers = [(np.zeros((4, 2)), np.zeros(2)), (np.zeros((2, 1)), np.array([mu]))]
    return p, layers, Standardization(np.zeros(4), np.ones(4), np.zeros(1), np.ones(1))


def test_constrained_inference_keeps_the_substrate_nonnegative():
    """A model whose unconstrained simulation drives S below zero: the inference NLP keeps
    S ≥ 0 at every point of its grid, its slacks are ≥ 0, they carry exactly the network's
    violation, and the objective is the configured weight times their mean."""
    p, layers, sc = _constant_growth_model(0.3)
    closure = p.network_closure(layers, sc.x_mean, sc.x_std, sc.z_mean, sc.z_std)
    grid = p.inference_grid()
    assert (grid.n_fe, grid.K) == (45, 3)  # 60 h at the authors' density
    x0 = np.asarray(p.test_x0[0])
    sim, *_ = p.simulate(closure, x0, grid)
    assert np.nanmin(sim[2]) < -1.0  # the simulation goes far below zero
    w = 3e-5
    inf = constrained_inference(p, layers, sc, x0, grid, slack_weight=w, guess=sim)
    assert inf.ok, inf.report
    assert inf.X.shape == (4, grid.n_points + 1)
    np.testing.assert_array_equal(inf.X[:, 0], x0)  # the new initial state, fixed
    assert inf.X.min() >= -1e-8  # S (and every state) ≥ 0 on the whole grid
    assert inf.slack_pos.min() >= -1e-9 and inf.slack_neg.min() >= -1e-9
    np.testing.assert_allclose(inf.Z - 0.3, inf.slack_pos - inf.slack_neg, atol=1e-7)
    assert np.mean(np.abs(inf.slack_pos - inf.slack_neg)) > 1e-2  # the network overruled
    np.testing.assert_allclose(
        inf.report.objective, w * np.mean(inf.slack_pos + inf.slack_neg), rtol=1e-9
    )


def test_constrained_inference_of_a_feasible_model_is_its_simulation():
    """Where the network keeps the states in their bounds, the l1 slack is exact: the slack
    vanishes and the inference NLP's solution is the simulation (the same collocation
    equations). Checked at a weight of 1: at the authors' 1e-5 the objective is so small
    (≈ 1e-7 per unit of slack) that IPOPT's barrier leaves the slacks near 1e-2 each and the
    trajectory only loosely pinned."""
    from problems.dae.bioreactor import Bioreactor, BioreactorConfig

    p = Bioreactor(BioreactorConfig())
    _, _, zs = p.casadi_functions()
    grid = p.inference_grid()
    x0 = np.asarray(p.test_x0[0])
    sim, *_ = p.simulate(zs, x0, grid)
    assert sim[2].min() > 0
    # a network for μ* = μ_max S/(K_s + S) is not at hand; μ ≡ 0 (no growth) is exact and
    # keeps every state positive
    p0, layers, sc = _constant_growth_model(0.0)
    closure = p0.network_closure(layers, sc.x_mean, sc.x_std, sc.z_mean, sc.z_std)
    sim0, *_ = p0.simulate(closure, x0, grid)
    inf = constrained_inference(p0, layers, sc, x0, grid, slack_weight=1.0, guess=sim0)
    assert inf.ok
    np.testing.assert_allclose(inf.X, sim0, atol=1e-5)  # IPOPT's barrier residue ~2e-6
    assert np.abs(inf.slack_pos - inf.slack_neg).max() < 1e-5


def test_fixed_initial_state_has_no_variables_at_t0():
    """``problem.initial_state=fixed``: the NLP loses the t0 variables (all states of the
    bioreactor; x1..x3 of the tank, whose x0 follows from x0 = x1), and the solution starts
    at the data's initial state."""
    from problems.dae.bioreactor import Bioreactor, BioreactorConfig

    for problem, n_fixed in (
        (Bioreactor(BioreactorConfig(n_fe=3)), 4),
        (TankManifold(TankManifoldConfig(n_fe=3)), 3),
    ):
        data = problem.make_data()
        grid = problem.train_grid()
        free = _Builder(problem, grid, data.p, free_closure=False)
        fixed = _Builder(problem, grid, data.p, free_closure=False, x0s=data.x0)
        assert free.opti.nx - fixed.opti.nx == n_fixed * len(data.x0)
    p = Decay(dataclasses.replace(DecayConfig(), initial_state="fixed", noise_std=0.05))
    data = p.make_data()
    assert np.all(data.x_obs[:, :, 0] != data.x0)  # the first observation is noisy
    res = train_collocation(p, CollocationConfig(tol=1e-6, max_iter=300), data)
    assert res.status == "converged"
    for X, x0 in zip(res.X, data.x0):
        assert X[0, 0] == x0[0]
    p = Decay(dataclasses.replace(DecayConfig(), noise_std=0.05))  # free: fitted
    res = train_collocation(p, CollocationConfig(tol=1e-6, max_iter=300), data)
    assert all(abs(X[0, 0] - x0[0]) > 1e-6 for X, x0 in zip(res.X, data.x0))


def test_sequential_fits_the_initial_state_when_it_is_free():
    """``initial_state=free``: x(t0) is a parameter started at the first observation and
    pulled by the whole trajectory towards the truth; ``fixed`` never uses it."""
    p = Decay(dataclasses.replace(DecayConfig(), noise_std=0.0))
    data = p.make_data()
    data.x_obs[:, :, 0] += 0.3  # a first observation off by 0.3
    cfg = SequentialConfig(epochs=400, lr=2e-2, rtol=1e-8, atol=1e-10)
    m = sequential_method(p, cfg, data)
    d = to_sequential_data(data)
    r = run_chunked(m, m.init(initial_params(p, cfg), d), d, max_steps=cfg.epochs, log_every=400)
    fitted = np.asarray(r.state.params["x0"])
    np.testing.assert_array_equal(
        np.asarray(m.init(initial_params(p, cfg), d).params["x0"]), data.x_obs[:, :, 0]
    )
    assert np.all(np.abs(fitted - data.x0) < 0.2)  # from 0.3 off (400 Adam steps: 0.14, 0.06)
    pf = Decay(dataclasses.replace(DecayConfig(), noise_std=0.0, initial_state="fixed"))
    mf = sequential_method(pf, cfg, data)
    s0 = mf.init(initial_params(pf, cfg), d)
    g = jax.grad(lambda x0: mf.step(s0._replace(params={**s0.params, "x0": x0}), d).loss)(
        s0.params["x0"]
    )
    assert float(jnp.abs(g).max()) == 0.0  # the true x0 is used, the parameter is idle


def test_assembled_hessian_equals_casadis():
    """The exact Hessian assembled from CasADi's sparse terms and JAX's network blocks is
    CasADi's plain AD Hessian of the same Lagrangian (step 3's NLP, tank manifold, small
    grid, non-trivial standardisation), at a random point. A 16 x 16 network: CasADi takes
    5 s to build the plain Hessian's graph there, 140 s at the default 32 x 32."""
    import casadi as ca

    from methods.dae.collocation import assembled_hessian, init_layers, main_nlp

    p = TankManifold(TankManifoldConfig(n_fe=2, hidden=(16, 16)))
    data = p.make_data()
    layers = init_layers(p, 0)
    sc = Standardization(
        np.linspace(1, 2, 4), np.linspace(0.5, 1.5, 4), np.array([0.1, -0.2]), np.array([1.5, 0.7])
    )
    nlp = main_nlp(p, p.train_grid(), data, layers, sc)
    hess, _cb = assembled_hessian(p, nlp, sc)
    opti, objective, theta = nlp.builder.opti, nlp.objective, nlp.theta
    x, g = opti.x, opti.g
    lam_f, lam_g = ca.MX.sym("lam_f"), ca.MX.sym("lam_g", g.shape[0])
    plain = ca.Function(
        "plain",
        [x, lam_f, lam_g],
        [ca.triu(ca.hessian(lam_f * objective + ca.dot(lam_g, g), x)[0])],
    )
    rng = np.random.default_rng(1)
    xv = 1.0 + 0.3 * rng.normal(size=x.shape[0])
    t_index = np.asarray(ca.Function("t", [x], [theta])(np.arange(x.shape[0])), int).ravel()
    xv[t_index] = pack_layers(layers) + 0.05 * rng.normal(size=t_index.size)  # unsaturated
    lg = rng.normal(size=g.shape[0])
    ours = np.asarray(ca.DM(hess(xv, [], 1.3, lg)).full())
    ref = np.asarray(ca.DM(plain(xv, 1.3, lg)).full())
    assert np.abs(ref).max() > 1.0 and np.count_nonzero(ref) > 10_000
    assert np.abs(ours - ref).max() <= 1e-9 * np.abs(ref).max()


def test_assembled_hessian_leaves_the_ipopt_iterates_unchanged():
    """Ablation D on a small tank grid: the same IPOPT iterates (objective and
    infeasibility at every iteration) with either way of computing the exact Hessian."""
    p = TankManifold(TankManifoldConfig(n_fe=4, truth_n_fe=8, hidden=(4, 4)))
    data = p.make_data()
    runs = {}
    for how in ("assembled", "casadi"):
        trace = []
        cfg = CollocationConfig(hessian="exact", exact_hessian=how, max_iter=15)
        train_collocation(
            p, cfg, data, on_iteration=lambda s, k, f, inf, t=trace: t.append((s, k, f, inf))
        )
        runs[how] = [t for t in trace if t[0] == "main"]
    a, c = runs["assembled"], runs["casadi"]
    assert len(a) == len(c) > 5
    np.testing.assert_allclose([t[2:] for t in a], [t[2:] for t in c], rtol=1e-6, atol=1e-10)


def test_weight_penalty_forms():
    w, b = np.arange(6.0).reshape(2, 3), np.array([1.0, 2.0])
    assert float(weight_penalty([w, b], "sum")) == pytest.approx(55.0 + 5.0)
    assert float(weight_penalty([w, b], "mean")) == pytest.approx(55.0 / 6 + 5.0 / 2)


def test_pack_unpack_layers_roundtrip():
    rng = np.random.default_rng(0)
    layers = [
        (rng.normal(size=(4, 3)), rng.normal(size=3)),
        (rng.normal(size=(3, 2)), rng.normal(size=2)),
    ]
    back = unpack_layers(pack_layers(layers), layers)
    assert all(
        np.array_equal(a, c) and np.array_equal(b, d) for (a, b), (c, d) in zip(layers, back)
    )


def test_ipopt_status_mapping():
    """IPOPT's return status maps onto the run statuses; its own words stay apart (the
    step's return_status, the record's status_message)."""
    assert ipopt_status("Solve_Succeeded", True) == "converged"
    assert ipopt_status("Maximum_Iterations_Exceeded", False) == "max_iter"
    assert ipopt_status("Infeasible_Problem_Detected", False) == "solver_failed"


SMALL = [
    "problem=tank_manifold",
    "problem.n_fe=4",
    "problem.truth_n_fe=8",
    "problem.hidden=[4,4]",
    "progress=false",
]


def _train(tmp_path, *args):
    return subprocess.run(
        [sys.executable, "-m", "runners.train", *args, f"results_dir={tmp_path}"],
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_cli_collocation_writes_artifacts_even_at_max_iter(tmp_path):
    r = _train(tmp_path, "method=collocation", *SMALL, "method.max_iter=3")
    assert r.returncode == 0, r.stderr[-2000:]
    runs = list(tmp_path.glob("runs/tank_manifold/collocation/*/metrics.json"))
    assert len(runs) == 1
    m = json.loads(runs[0].read_text())
    assert m["status"] == "max_iter" and m["main.iterations"] == 3
    assert m["smoothing.status"] == "max_iter" and m["family"] == "neural_dae"
    folder = runs[0].parent
    for f in ("history.csv", "network.npz", "trajectories.png"):
        assert (folder / f).exists(), f
    with np.load(folder / "network.npz", allow_pickle=False) as z:
        assert z["W0"].shape == (4, 4) and z["W2"].shape == (4, 2)
    # the test IC predicted both ways: constrained inference (test_*) and the march
    assert m["inference"] == "constrained" and m["inference.grid"] == "4x2"
    assert {"test_mse", "test_ok", "simulate_mse", "simulate_ok"} <= set(m)
    assert m["inference.status"] == "converged" and m["test_ok"] is True
    assert "IPOPT" not in r.stdout  # IPOPT's banner is off


def test_cli_bad_neural_dae_input(tmp_path):
    r = _train(tmp_path, "method=collocation", *SMALL, "method.hessian=newton")
    assert r.returncode == 2 and "method.hessian" in r.stderr and "lbfgs" in r.stderr
    r = _train(tmp_path, "method=sqp_adam", "problem=bioreactor")
    assert r.returncode == 2 and "collocation" in r.stderr
    r = _train(tmp_path, "method=collocation", "problem=bioreactor", "problem.hidden=[0]")
    assert r.returncode == 2 and "problem.hidden" in r.stderr
    assert not list(tmp_path.glob("runs/*/*/*/metrics.json"))

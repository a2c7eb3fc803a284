"""Neural DAE methods: collocation (CasADi + IPOPT) and sequential (diffrax + Adam)."""

import dataclasses
import json
import subprocess
import sys

import jax.numpy as jnp
import numpy as np

from methods.collocation import (
    CollocationConfig,
    ipopt_status,
    learned_closure,
    pack_layers,
    train_collocation,
    unpack_layers,
)
from methods.driver import run_chunked
from methods.sequential import (
    SequentialConfig,
    initial_params,
    make_model,
    sequential_method,
    to_sequential_data,
)
from problems.dae import DaeConfig, DaeProblem
from problems.tank_manifold import TankManifold, TankManifoldConfig

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
    res = train_collocation(p, CollocationConfig(tol=1e-4, refine=True, refine_tol=1e-10,
                                                 max_iter=500), data)
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
    from problems.collocation import RadauGrid

    p = TankManifold(TankManifoldConfig())
    grid = RadauGrid(400, 3, 0.0, p.tf)  # fine: the collocation error well under 1e-5
    x0 = np.asarray(p.train_x0[1])
    ref, *_ = p.simulate_truth(x0, grid)

    def field(t, x, args):
        return p.ode_rhs(x, p.true_closure_jax(x, None), None)

    import diffrax

    sol = diffrax.diffeqsolve(diffrax.ODETerm(field), diffrax.Tsit5(), 0.0, p.tf, None,
                              jnp.asarray(x0), saveat=diffrax.SaveAt(ts=jnp.asarray(grid.times)),
                              stepsize_controller=diffrax.PIDController(rtol=1e-9, atol=1e-11),
                              max_steps=100000)
    np.testing.assert_allclose(np.asarray(sol.ys).T, ref, atol=1e-5)
    np.testing.assert_allclose(ref[0], ref[1], atol=1e-10)


def test_pack_unpack_layers_roundtrip():
    rng = np.random.default_rng(0)
    layers = [(rng.normal(size=(4, 3)), rng.normal(size=3)), (rng.normal(size=(3, 2)),
                                                              rng.normal(size=2))]
    back = unpack_layers(pack_layers(layers), layers)
    assert all(np.array_equal(a, c) and np.array_equal(b, d) for (a, b), (c, d) in
               zip(layers, back))


def test_ipopt_status_mapping():
    assert ipopt_status("Solve_Succeeded", True) == "converged"
    assert ipopt_status("Maximum_Iterations_Exceeded", False) == "max_iter"
    assert ipopt_status("Infeasible_Problem_Detected", False) == \
        "solver_failed: Infeasible_Problem_Detected"


SMALL = ["problem=tank_manifold", "problem.n_fe=4", "problem.truth_n_fe=8", "problem.hidden=[4,4]",
         "progress=false"]


def _train(tmp_path, *args):
    return subprocess.run([sys.executable, "-m", "runners.train", *args,
                           f"results_dir={tmp_path}"], capture_output=True, text=True,
                          timeout=600)


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
    assert "IPOPT" not in r.stdout  # IPOPT's banner is off


def test_cli_bad_neural_dae_input(tmp_path):
    r = _train(tmp_path, "method=collocation", *SMALL, "method.hessian=newton")
    assert r.returncode == 2 and "method.hessian" in r.stderr and "lbfgs" in r.stderr
    r = _train(tmp_path, "method=sqp_adam", "problem=bioreactor")
    assert r.returncode == 2 and "collocation" in r.stderr
    r = _train(tmp_path, "method=collocation", "problem=bioreactor", "problem.hidden=[0]")
    assert r.returncode == 2 and "problem.hidden" in r.stderr
    assert not list(tmp_path.glob("runs/*/*/*/metrics.json"))

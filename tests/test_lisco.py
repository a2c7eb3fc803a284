"""LISCO: convexified residual, predictor training, inference bookkeeping, CLI runs."""

import json
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from methods.driver import run_chunked
from methods.parametric.lisco import LiscoConfig, init_networks, predictor_method
from methods.parametric.lisco_inference import infer, newton_step
from problems import ConfigError, build_problem
from problems.parametric.dc3 import Residual, dc3_instance


@pytest.fixture(scope="module")
def ncqp():
    return build_problem("nonconvex_qp", {})


def test_convexified_residual(ncqp):
    """F̃ equals F at y = y_k, and its y-Jacobian of the stationarity block is 2ρI (the
    curvature of ∇f(y_k) + 2ρ(y − y_k)), where F's is ∇²f."""
    res = ncqp.residual(jnp.float64)
    rng = np.random.default_rng(0)
    z, x = jnp.asarray(rng.normal(size=200)), jnp.asarray(ncqp.test_x[0])
    y_k = z[:100]
    np.testing.assert_allclose(res.convexified(z, x, y_k, 1.0), res(z, x), atol=1e-14)
    jac = jax.jacfwd(lambda zz: res.convexified(zz, x, y_k, 1.0))(z)[:100, :100]
    np.testing.assert_allclose(jac, 2.0 * np.eye(100), atol=1e-12)
    exact = jax.jacfwd(res)(z, x)[:100, :100]
    hess = np.diag(np.diag(ncqp.inst.Q) - ncqp.inst.p * np.sin(np.asarray(y_k)))
    np.testing.assert_allclose(exact, hess, atol=1e-12)
    np.testing.assert_allclose(res.convexified(z, x, y_k, 0.0), res(z, x), atol=0)


def test_lookahead_residual_readings(ncqp):
    """The solver loss's F̃(z + Δz): linearised at the trial point it equals F(z + Δz) in
    value, and its Δz-Jacobian differs from F's by 2ρI − ∇²f(y + Δy) in the stationarity
    rows' y columns only; linearised at the pre-step iterate its value differs."""
    from methods.parametric.lisco import lookahead_residual

    res = ncqp.residual(jnp.float64)
    rng = np.random.default_rng(1)
    z, dz = jnp.asarray(rng.normal(size=200)), jnp.asarray(0.3 * rng.normal(size=200))
    x, rho = jnp.asarray(ncqp.test_x[0]), 1.0
    trial = lambda d: lookahead_residual(res, z, d, x, rho, "trial", 100)
    exact = lambda d: res(z + d, x)
    np.testing.assert_allclose(trial(dz), exact(dz), atol=1e-13)
    j_trial, j_exact = jax.jacfwd(trial)(dz), jax.jacfwd(exact)(dz)
    y = np.asarray((z + dz)[:100])
    term = 2 * rho * np.eye(100) - np.diag(np.diag(ncqp.inst.Q) - ncqp.inst.p * np.sin(y))
    diff = np.asarray(j_trial - j_exact)
    np.testing.assert_allclose(diff[:100, :100], term, atol=1e-12)
    np.testing.assert_allclose(np.delete(diff, np.s_[:100], axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(diff[:100, 100:], 0, atol=1e-12)
    at_iterate = lookahead_residual(res, z, dz, x, rho, "iterate", 100)
    assert float(jnp.max(jnp.abs(at_iterate - exact(dz)))) > 1e-2


def test_predictor_merit_is_t_in_value_with_the_convexified_gradient(ncqp):
    """The predictor's loss term (eq. 14 at its own detached prediction): T̃(z) = T(z) in
    value; its z-gradient is F̃ᵀ∂F̃/∂z, whose stationarity rows see 2ρI where T's see
    ∇²f(y); ρ = 0 gives T's gradient."""
    from methods.parametric.lisco import predicted_merit

    res = ncqp.residual(jnp.float64)
    rng = np.random.default_rng(2)
    z, x, rho = jnp.asarray(rng.normal(size=200)), jnp.asarray(ncqp.test_x[0]), 1.0
    np.testing.assert_allclose(predicted_merit(res, z, x, rho, 100), res.merit(z, x), rtol=1e-14)
    g = jax.grad(lambda zz: predicted_merit(res, zz, x, rho, 100))(z)
    g_exact = jax.grad(lambda zz: res.merit(zz, x))(z)
    f, y = np.asarray(res(z, x)), np.asarray(z[:100])
    hess = np.diag(np.diag(ncqp.inst.Q) - ncqp.inst.p * np.sin(y))
    # the two Jacobians differ by (2ρI − ∇²f) in the stationarity rows' y columns only
    np.testing.assert_allclose(
        np.asarray(g - g_exact)[:100], (2 * rho * np.eye(100) - hess) @ f[:100], atol=1e-11
    )
    np.testing.assert_allclose(np.asarray(g - g_exact)[100:], 0, atol=1e-11)
    g0 = jax.grad(lambda zz: predicted_merit(res, zz, x, 0.0, 100))(z)
    np.testing.assert_allclose(g0, g_exact, atol=1e-12)


def test_predictor_training_lowers_the_loss_by_orders_of_magnitude():
    """500 AdamW steps of a 256-unit predictor on the QP: mean T/n_z on the validation split
    falls by more than 100× (self-supervised: no solutions used)."""
    qp = build_problem("qp", {})
    cfg = LiscoConfig(hidden=(256,), predictor_batch=256, predictor_steps=500)
    dt = jnp.float32
    pred, _ = init_networks(qp, cfg, dt, jax.random.PRNGKey(0))
    data = {"valid_x": jnp.asarray(qp.valid_x, dt)}
    m = predictor_method(qp, cfg, dt, jax.random.PRNGKey(1))
    r = run_chunked(m, m.init(pred, data), data, max_steps=500, log_every=250)
    first, last = r.history[0]["valid_loss"], r.history[-1]["valid_loss"]
    assert r.status == "max_iter" and last < first / 100, (first, last)


def test_predictor_plateau_schedule_stops_at_min_lr():
    """reduce-on-plateau with patience 1 and no cooldown: the learning rate falls by 10×
    per non-improving step, and the run stops (converged) once it reaches min_lr."""
    qp = build_problem("qp", {})
    cfg = LiscoConfig(
        hidden=(8,),
        predictor_batch=4,
        predictor_steps=10000,
        plateau_patience=1,
        plateau_cooldown=0,
        min_lr=1e-6,
        predictor_lr=10.0,
    )  # a diverging rate: no step improves for long
    dt = jnp.float32
    pred, _ = init_networks(qp, cfg, dt, jax.random.PRNGKey(0))
    data = {"valid_x": jnp.asarray(qp.valid_x[:8], dt)}
    m = predictor_method(qp, cfg, dt, jax.random.PRNGKey(1))
    r = run_chunked(m, m.init(pred, data), data, max_steps=10000, log_every=50)
    assert r.status == "converged" and int(r.state.step) < 10000
    assert r.history[-1]["lr"] <= 1e-6 * (1 + 1e-5)


def test_inference_first_hit_iterations(ncqp):
    """The per-sample first iteration below 1e-6 and 1e-8 (Table 4 / the convergence figure):
    ordered, equal to the iteration count at convergence, and exact against a replay."""
    res = ncqp.residual(jnp.float64)
    step = newton_step(res)
    x = jnp.asarray(ncqp.test_x[:6])
    ref = ncqp.start_y(np.asarray(x))
    z0 = jnp.concatenate([jnp.asarray(ref), jnp.zeros((6, 100))], axis=1)
    out = jax.jit(lambda: infer(step, res, z0, x, n_max=100, thresholds=(1e-6, 1e-8)))()
    hits = np.asarray(out.hits)
    assert bool(jnp.all(out.converged))
    assert np.all(hits[:, 0] <= hits[:, 1])
    np.testing.assert_array_equal(hits[:, 1], np.asarray(out.iterations))
    replay = jax.jit(lambda k: infer(step, res, z0, x, n_max=k, tol=0.0).merit)
    for k in range(int(hits[:, 0].max()) + 1):  # replay: best T after k iterations
        best = np.asarray(replay(k))
        np.testing.assert_array_equal(best <= 1e-6, hits[:, 0] <= k)


def test_stop_tol_zero_runs_every_point_all_n_max_steps(ncqp):
    """method.stop_tol: null stops a point at ½‖F‖² ≤ tol (Algorithm 1's τ); 0 runs every
    point all n_max iterations (Table 3's "evaluated for 500 steps" reading)."""
    from methods.parametric.lisco import make_inference

    x = jnp.asarray(ncqp.test_x[:4], jnp.float32)
    z0 = jnp.zeros((4, ncqp.n_z), jnp.float32)
    for stop, iterations in ((None, 0), (0.0, 7)):
        cfg = LiscoConfig(hidden=(8,), n_max=7, tol=1e30, stop_tol=stop)  # every T ≤ tol
        _, sol = init_networks(ncqp, cfg, jnp.float32, jax.random.PRNGKey(0))
        out = make_inference(ncqp, cfg, jnp.float32)(sol, z0, x)
        np.testing.assert_array_equal(np.asarray(out.iterations), iterations)
    with pytest.raises(ConfigError, match="method.stop_tol"):
        LiscoConfig(stop_tol=-1.0)


def _train(tmp_path, *args):
    cmd = [
        sys.executable,
        "-m",
        "runners.train",
        f"results_dir={tmp_path}",
        "progress=false",
        "figures=false",
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


def _metrics(tmp_path, problem, method):
    (path,) = (tmp_path / "runs" / problem / method).glob("*/metrics.json")
    return json.loads(path.read_text()), path.parent


def test_cli_lisco_train_then_evaluate_checkpoint(tmp_path):
    """A smoke lisco run writes networks and metrics; method.train=false with its folder as
    checkpoint evaluates the same networks to the same metrics without training."""
    r = _train(
        tmp_path / "a",
        "method=lisco",
        "problem=qp",
        "problem.n_test=20",
        "method.hidden=[32]",
        "method.predictor_steps=200",
        "method.solver_steps=150",
        "method.predictor_batch=64",
        "method.solver_batch=64",
    )
    assert r.returncode == 0, r.stderr[-2000:]
    rec, run_dir = _metrics(tmp_path / "a", "qp", "lisco")
    for f in (
        "predictor.msgpack",
        "solver.msgpack",
        "networks.json",
        "samples.csv",
        "convergence.csv",
        "history.csv",
    ):
        assert (run_dir / f).is_file(), f
    assert rec["n_test"] == 20 and rec["solver_steps_done"] == 150
    assert rec["pred.T_p50"] < 1e3 and np.isfinite(rec["T_p50"])
    # the loop keeps the best iterate: never worse than the predictor's start
    assert rec["T_max"] <= rec["pred.T_max"] * (1 + 1e-5)
    r = _train(
        tmp_path / "b",
        "method=lisco",
        "problem=qp",
        "problem.n_test=20",
        "method.hidden=[32]",
        "method.train=false",
        f"method.checkpoint={run_dir}",
    )
    assert r.returncode == 0, r.stderr[-2000:]
    rec2, _ = _metrics(tmp_path / "b", "qp", "lisco")
    assert rec2["status"] == "evaluated"
    for k in ("T_p50", "T_max", "pred.T_p50", "success", "it_median", "gap_mean"):
        assert rec2[k] == pytest.approx(rec[k], rel=1e-6), k
    # a checkpoint of another width is refused in one line
    r = _train(
        tmp_path / "c",
        "method=lisco",
        "problem=qp",
        "method.hidden=[64]",
        "method.train=false",
        f"method.checkpoint={run_dir}",
    )
    assert r.returncode == 2 and "method.checkpoint" in r.stderr and "hidden" in r.stderr
    assert "Traceback" not in r.stderr


def test_cli_ipopt_baseline_is_the_reference(tmp_path):
    """method=ipopt (tol 1e-10) on Rosenbrock: every point converges with ½‖F‖² ≤ 1e-10 and
    a zero gap against the cached reference (the same solver)."""
    r = _train(tmp_path, "method=ipopt", "problem=rosenbrock", "problem.n_test=10")
    assert r.returncode == 0, r.stderr[-2000:]
    rec, run_dir = _metrics(tmp_path, "rosenbrock", "ipopt")
    assert rec["status"] == "converged" and rec["success"] == 1.0
    assert rec["T_max"] <= 1e-10 and abs(rec["gap_max"]) < 1e-9
    assert rec["eq_max"] < 1e-8 and rec["it_median"] > 3
    assert (tmp_path / "cache").is_dir() and (run_dir / "samples.csv").is_file()


@pytest.mark.parametrize(
    "args, field",
    [
        (["method=osqp", "problem=nonconvex_qp"], "method"),
        (["method=lisco", "problem=qp", "method.train=false"], "method.checkpoint"),
        (["method=lisco", "problem=qp", "problem.instance=7"], "problem.instance"),
        (["method=ipopt", "problem=qp", "method.hessian=bfgs"], "method.hessian"),
        (["method=lisco", "problem=reaction"], "method"),
        (["method=lisco", "problem=rosenbrock", "method.start=uniform"], "method.start"),
        (["method=lisco", "problem=qp", "method.init=kaiming"], "method.init"),
        (
            ["method=lisco", "problem=qp", "method.inference_precision=fp16"],
            "method.inference_precision",
        ),
    ],
)
def test_cli_bad_input_is_one_line(tmp_path, args, field):
    r = _train(tmp_path, *args)
    assert r.returncode == 2, r.stderr[-1000:]
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and lines[0].startswith(f"error: {field}:"), r.stderr[-1000:]
    assert "Traceback" not in r.stderr and not (tmp_path / "runs").exists()


def test_solver_zero_init_starts_with_zero_steps(ncqp):
    """``solver_zero_init`` (this project's earlier default): Π_sol's output layer starts at
    zero, kernel and bias, under either initialisation, so the untrained solver leaves every
    iterate where it is (T unchanged)."""
    from methods.parametric.lisco import networks, solver_step

    res = ncqp.residual(jnp.float64)
    z = jnp.asarray(np.random.default_rng(0).normal(size=(4, 200)))
    x = jnp.asarray(ncqp.test_x[:4])
    for init in ("torch", "flax"):
        cfg = LiscoConfig(hidden=(16,), init=init, solver_zero_init=True)
        _, sol_params = init_networks(ncqp, cfg, jnp.float64, jax.random.PRNGKey(0))
        _, sol = networks(ncqp, cfg, jnp.float64)
        for kind in ("v1", "v2"):
            np.testing.assert_array_equal(solver_step(sol, sol_params, res, kind)(z, x), 0.0)


def test_default_initialisation_is_torch_linears(ncqp):
    """The default is the authors' code's: ``torch.nn.Linear``'s defaults in both networks,
    kernel and bias U(±1/√fan_in) (checked by bounds and moments on the 2048-wide layers:
    variance 1/(3·fan_in)), the solver's output layer included. ``init=flax``: lecun-normal
    kernel (variance 1/fan_in), zero bias."""
    cfg = LiscoConfig()
    assert cfg.init == "torch" and cfg.solver_zero_init is False
    pred, sol = init_networks(ncqp, cfg, jnp.float32, jax.random.PRNGKey(0))
    for params, n_in in ((pred, ncqp.n_x), (sol, ncqp.n_x + ncqp.n_z + 1)):
        layers = params["params"]
        for name, fan_in in (("Dense_0", n_in), ("Dense_1", 2048)):
            bound = 1 / np.sqrt(fan_in)
            for leaf in ("kernel", "bias"):
                w = np.asarray(layers[name][leaf])
                assert np.abs(w).max() <= bound and np.abs(w).max() > 0.95 * bound, (name, leaf)
            w = np.asarray(layers[name]["kernel"])
            assert abs(w.mean()) < 0.02 * bound
            np.testing.assert_allclose(w.var(), bound**2 / 3, rtol=0.02)
    flax_pred, _ = init_networks(ncqp, LiscoConfig(init="flax"), jnp.float32, jax.random.PRNGKey(0))
    layer = flax_pred["params"]["Dense_1"]
    np.testing.assert_array_equal(layer["bias"], 0.0)
    np.testing.assert_allclose(np.asarray(layer["kernel"]).var(), 1 / 2048, rtol=0.05)


def test_step_scales():
    """Δz = s(‖F‖)·Π: the paper's s = ‖F‖; the authors' later code 0.01·min(‖F‖, 1); its cap
    alone min(‖F‖, 1). Near a solution all three are proportional to ‖F‖."""
    from methods.parametric.lisco import step_size

    nrm = jnp.array([[1e-4], [0.5], [150.0]])
    np.testing.assert_allclose(step_size(nrm, "v1"), nrm)
    np.testing.assert_allclose(step_size(nrm, "v2")[:, 0], [1e-6, 5e-3, 1e-2])
    np.testing.assert_allclose(step_size(nrm, "clamped")[:, 0], [1e-4, 0.5, 1.0])


def test_random_starts_paper_and_authors_code(ncqp):
    """w/o predictor: the paper's z₀ ~ N(0, 1) in every block; the authors' later code draws
    y ~ U[0, 1], ν ~ N(0, 1), λ ~ U[0, 1] (moments over 4000 draws)."""
    from methods.parametric.lisco import random_start

    key = jax.random.PRNGKey(1)
    n_y, n_x = ncqp.n_y, ncqp.n_x
    z = np.asarray(random_start(key, 4000, ncqp, "normal", jnp.float64))
    assert z.shape == (4000, ncqp.n_z)
    assert abs(z.mean()) < 0.01 and abs(z.std() - 1) < 0.01 and z.min() < -3
    z = np.asarray(random_start(key, 4000, ncqp, "v2", jnp.float64))
    y, nu, lam = z[:, :n_y], z[:, n_y : n_y + n_x], z[:, n_y + n_x :]
    assert lam.shape[1] == ncqp.n_z - n_y - n_x == 50
    for u in (y, lam):  # U[0, 1]: mean 1/2, variance 1/12, inside [0, 1]
        assert u.min() >= 0 and u.max() <= 1
        assert abs(u.mean() - 0.5) < 0.01 and abs(u.var() - 1 / 12) < 0.005
    assert abs(nu.mean()) < 0.01 and abs(nu.std() - 1) < 0.01 and nu.min() < -3


def test_experiment_tables_derive_the_predictor_row():
    """Table 1's "Pred." row reads a lisco run's ``pred.*`` metrics; baselines without a
    ``method.predictor`` field get the row label <method>/None/None; the paper's value sits
    beside."""
    import pandas as pd

    from runners.tables import experiment_specs, experiment_table

    specs = experiment_specs("lisco")
    assert set(specs) == {f"lisco_table{i}" for i in range(1, 6)}
    df = pd.DataFrame(
        [
            {
                "problem": "qp",
                "method": "lisco",
                "method.predictor": True,
                "T_max": 1e-9,
                "pred.T_max": 2e-4,
                "T_p99": 1,
                "T_p50": 1,
                "T_min": 1,
            },
            {
                "problem": "qp",
                "method": "ipopt",
                "T_max": 3e-12,
                "T_p99": 1,
                "T_p50": 1,
                "T_min": 1,
            },
        ]
    )
    long, shown = experiment_table(df, specs["lisco_table3"])
    cell = long[(long.metric == "T_max") & (long.col == "qp")].set_index("row")
    assert cell.loc["Pred.", "mean"] == 2e-4 and cell.loc["Pred.", "paper"] == 9.05e-4
    assert cell.loc["lisco/true/None", "mean"] == 1e-9
    assert cell.loc["ipopt/None/None", "mean"] == 3e-12
    assert "LISCO with Pred." in set(shown.iloc[:, 0]) and "IPOPT" in set(shown.iloc[:, 0])


def test_tables_average_over_instances():
    """With ``over: [problem.instance]`` a cell is the mean ± std of the instances' runs (two
    instances here), not the newest instance alone; the footnote names the instances."""
    import pandas as pd

    from runners.tables import averaged_over, experiment_specs, experiment_table

    spec = experiment_specs("lisco")["lisco_table2"]
    df = pd.DataFrame(
        [
            {
                "problem": "rosenbrock",
                "method": "lisco",
                "method.predictor": True,
                "problem.instance": i,
                "success": s,
                "it_median": it,
                "seed": 0,
                "finished_at": f"2026-12-01T0{i}:00:00+00:00",
            }
            for i, s, it in ((0, 0.9, 10.0), (1, 1.0, 20.0))
        ]
    )
    long, shown = experiment_table(df, spec)
    cell = long[(long.row == "lisco/true/None") & (long.col == "rosenbrock")].set_index("metric")
    assert cell.loc["success", "seeds"] == 2
    assert cell.loc["success", "mean"] == pytest.approx(0.95)
    assert cell.loc["success", "std"] == pytest.approx(np.std([0.9, 1.0], ddof=1))
    assert cell.loc["it_median", "mean"] == pytest.approx(15.0)
    row = shown[shown.iloc[:, 0] == "LISCO with Pred."].iloc[0]
    assert row["rosenbrock success"].startswith("0.95 ± 0.07")
    note = averaged_over(df, long, spec)
    assert "problem.instance ∈ {0, 1}" in note and "2 runs per filled cell" in note
    # without ``over`` the two instances are two configurations: the newest alone is shown
    long1, _ = experiment_table(df, {k: v for k, v in spec.items() if k != "over"})
    one = long1[
        (long1.row == "lisco/true/None") & (long1.col == "rosenbrock") & (long1.metric == "success")
    ].iloc[0]
    assert one["seeds"] == 1 and one["mean"] == 1.0


def test_evaluations_of_one_sweeps_networks_average_over_instances():
    """``table-lisco-eval`` evaluates each instance's saved networks: the records'
    ``method.checkpoint`` paths differ by the instance the sweep folder names, and still make
    one configuration averaged over instances; a network from another sweep's configuration
    stays apart (the newest configuration is shown, as for any two configurations)."""
    import pandas as pd

    from runners.tables import experiment_specs, experiment_table

    spec = experiment_specs("lisco")["lisco_table2"]
    sweep = (
        "results/sweeps/lisco-cpu/"
        "experiment=lisco,method.predictor=True,problem.instance={},problem=qp,scale=cpu"
    )
    rows = [
        {
            "problem": "qp",
            "method": "lisco",
            "method.predictor": True,
            "method.train": False,
            "method.checkpoint": sweep.format(i),
            "problem.instance": i,
            "success": s,
            "seed": 0,
            "finished_at": f"2026-12-06T0{i}:00:00+00:00",
        }
        for i, s in ((0, 0.9), (1, 1.0))
    ]

    def success(records):
        long, _ = experiment_table(pd.DataFrame(records), spec)
        return long[
            (long.row == "lisco/true/None") & (long.col == "qp") & (long.metric == "success")
        ].iloc[0]

    cell = success(rows)
    assert cell["seeds"] == 2 and cell["mean"] == pytest.approx(0.95)
    other = dict(rows[1], finished_at="2026-12-06T05:00:00+00:00", success=0.5)
    other["method.checkpoint"] = sweep.format(1).replace(
        "scale=cpu", "method.solver_steps=60000,scale=cpu"
    )
    cell = success([*rows, other])
    assert cell["seeds"] == 1 and cell["mean"] == 0.5


def test_max_violation_in_dc3s_convention():
    """``eq_max_avg`` is DC3's "Max. Eq.": the mean over test points of each point's max
    |Ay − x|; ``eq_max`` the worst point's; likewise for the inequalities."""
    from runners.parametric import summarize

    sm = {
        "objective": np.zeros(3),
        "merit": np.zeros(3),
        "eq_max": np.array([1e-3, 2e-3, 6e-3]),
        "eq_mean": np.array([1e-4, 1e-4, 1e-4]),
        "ineq_max": np.array([0.0, 0.0, 3e-2]),
        "ineq_mean": np.zeros(3),
    }
    rec = summarize(sm)
    assert rec["eq_max_avg"] == pytest.approx(3e-3) and rec["eq_max"] == pytest.approx(6e-3)
    assert rec["ineq_max_avg"] == pytest.approx(1e-2) and rec["ineq_max"] == pytest.approx(3e-2)


@pytest.mark.parametrize("method", ["osqp", "jaxopt_osqp"])
def test_cli_convex_qp_baselines_refuse_non_convex_problems(tmp_path, method):
    """The QP solvers on the non-convex QP: one line naming the field and the valid methods,
    exit 2, nothing written."""
    r = _train(tmp_path, f"method={method}", "problem=nonconvex_qp")
    assert r.returncode == 2 and "convex QPs only" in r.stderr and "ipopt" in r.stderr
    assert not (tmp_path / "runs").exists()


def test_cli_osqp_tight_baseline(tmp_path):
    """method=osqp method.tight=true on the QP: ½‖F‖² ≤ 1e-10 with OSQP's multipliers and a
    gap to IPOPT's tol-1e-10 reference below 1e-6 %."""
    r = _train(tmp_path, "method=osqp", "problem=qp", "problem.n_test=10", "method.tight=true")
    assert r.returncode == 0, r.stderr[-2000:]
    rec, _ = _metrics(tmp_path, "qp", "osqp")
    assert rec["success"] == 1.0 and rec["T_max"] <= 1e-10 and abs(rec["gap_max"]) < 1e-6


def test_cli_batched_box_osqp_baseline(tmp_path):
    """method=jaxopt_osqp method.tight=true on the QP: one batched call; ½‖F‖² ≤ 1e-12 with
    its multipliers, the gap to the reference below 1e-6 %, the batch's figures recorded."""
    r = _train(
        tmp_path, "method=jaxopt_osqp", "problem=qp", "problem.n_test=10", "method.tight=true"
    )
    assert r.returncode == 0, r.stderr[-2000:]
    rec, _ = _metrics(tmp_path, "qp", "jaxopt_osqp")
    assert rec["success"] == 1.0 and rec["T_max"] <= 1e-12 and abs(rec["gap_max"]) < 1e-6
    assert rec["batch_size"] == 10 and rec["batch.tol"] == 1e-9 and rec["batch.batch_s"] > 0


def test_compacted_inference_matches_the_single_loop(ncqp):
    """The batched evaluation gives the same per-sample iterates, merits, iteration counts,
    resets and first hits as one while_loop: chunks of 5 iterations with stopped samples
    dropped between chunks, and the streaming phase (3 rows in flight, each refilled with
    the next waiting sample when its own stops) before them."""
    from methods.parametric.lisco_inference import infer_compacted

    res = Residual("qp", dc3_instance(17))
    step = newton_step(res)  # from z0 = 0 it converges in 15-44 iterations, with resets
    x = jnp.asarray(ncqp.test_x[:8])
    z0 = jnp.zeros((8, 200))
    for n_max in (60, 25):  # 25: some samples stop on the budget, unconverged
        kw = dict(n_max=n_max, thresholds=(1e-6, 1e-8))
        a = jax.jit(lambda kw=kw: infer(step, res, z0, x, **kw))()
        for width in (None, 3):
            b = infer_compacted(step, res, z0, x, chunk=5, min_bucket=2, width=width, **kw)
            for f in ("iterations", "resets", "hits", "converged"):
                got, want = np.asarray(getattr(b, f)), np.asarray(getattr(a, f))
                np.testing.assert_array_equal(got, want, f"{f}, width {width}, n_max {n_max}")
            np.testing.assert_allclose(np.asarray(b.z), np.asarray(a.z), rtol=1e-9, atol=1e-12)
            np.testing.assert_array_equal(np.asarray(b.merit), np.asarray(a.merit))
        its = np.asarray(a.iterations)
        assert its.min() < its.max() and int(np.max(np.asarray(a.resets))) > 0
        ok = np.asarray(a.converged)
        assert ok.all() if n_max == 60 else (ok.any() and not ok.all() and its.max() == n_max)


def test_sweep_convergence_figure_averages_instances(tmp_path):
    """Two instances of one problem with predictor: one panel, their curves and their mean,
    written to the figure path asked for (a run's convergence.csv must not replace it)."""
    import pandas as pd

    from runners.parametric import sweep_convergence_figure

    for i in (0, 1):
        run = tmp_path / f"inst{i}"
        run.mkdir()
        (run / "metrics.json").write_text(
            json.dumps(
                {
                    "problem": "rosenbrock",
                    "method": "lisco",
                    "method.predictor": True,
                    "problem.instance": i,
                    "status": "max_iter",
                }
            )
        )
        k = np.arange(0, 501)
        pd.DataFrame(
            {
                "iteration": k,
                "frac_T_le_1e-06": np.minimum(1.0, k / (10 + 10 * i)),
                "frac_T_le_1e-08": np.minimum(1.0, k / (20 + 10 * i)),
            }
        ).to_csv(run / "convergence.csv", index=False)
    out = tmp_path / "figs" / "convergence.png"
    assert sweep_convergence_figure(tmp_path, out) == 2
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_paper_values_printed_to_three_decimals_compare_at_that_precision():
    """The paper's 0.000 is anything below 0.0005: ours at 1e-5 is equal to it, ours at 0.01
    is 20× worse than its upper end (not infinitely worse); a nonzero printed value is an
    interval too."""
    from runners.tables import verdict, worse_by

    assert worse_by("eq_max_avg", 1e-5, 0.0, 0.001) == 1.0
    assert verdict(worse_by("eq_max_avg", 1e-5, 0.0, 0.001)) == "within 2×"
    assert worse_by("eq_max_avg", 0.01, 0.0, 0.001) == pytest.approx(20.0)
    assert worse_by("gap_max", 1e-5, 0.021, 0.001) == pytest.approx(1e-5 / 0.0205)
    assert worse_by("gap_max", 0.0212, 0.021, 0.001) == 1.0
    assert worse_by("eq_max_avg", 1e-5, 0.0) == pytest.approx(1e7)  # no rounding: 1e-12 floor


def test_bench_lisco_run_that_holds_no_networks_is_one_line_exit_2(tmp_path, capsys):
    """``python -m runners.bench --lisco-run DIR`` on a folder without trained networks for
    the problem: one line naming the option, exit 2, no bench record written."""
    from runners import bench

    before = set(bench.BENCH_DIR.glob("lisco_qp-*.json")) if bench.BENCH_DIR.exists() else set()
    with pytest.raises(SystemExit) as e:
        bench.main(["--only", "lisco_qp", "--lisco-run", str(tmp_path)])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --lisco-run:") and "'qp'" in err[0]
    after = set(bench.BENCH_DIR.glob("lisco_qp-*.json")) if bench.BENCH_DIR.exists() else set()
    assert after == before
    bench.LISCO_RUN = None


def test_bench_table_keeps_the_latest_lisco_record_of_each_set_of_networks(tmp_path):
    """bench.md's LISCO section: one row per (benchmark, networks benched), the newest of
    each; an older record of the same networks is left out (also when one record names
    them by an absolute path, ``--lisco-run /abs/...``), other networks stay."""
    from runners import bench

    def record(ts, ckpt, ratio, root=""):
        return {
            "name": "lisco_rosenbrock",
            "timestamp": ts,
            "checkpoint": f"{root}results/sweeps/{ckpt}/experiment=lisco,problem=rosenbrock",
            "throughput_ratio": ratio,
            "baseline": "ipopt",
        }

    for i, r in enumerate(
        [
            record("2026-12-01T00:00:00+00:00", "lisco-cpu", 11.0),
            record("2026-12-01T12:00:00+00:00", "lisco-cpu", 44.0, root="/home/u/repo/"),
            record("2026-12-02T00:00:00+00:00", "lisco-cpu", 22.0),
            record("2026-12-03T00:00:00+00:00", "lisco_long-cpu", 33.0, root="/home/u/repo/"),
        ]
    ):
        (tmp_path / f"r{i}.json").write_text(json.dumps(r))
    text = bench.render(tmp_path, tmp_path / "bench.md")
    rows = [ln for ln in text.splitlines() if ln.startswith("| rosenbrock")]
    assert len(rows) == 2
    assert any("lisco-cpu" in ln and "22" in ln for ln in rows)
    assert any("lisco_long-cpu" in ln and "33" in ln for ln in rows)
    assert not any("| 11 " in ln or "| 44 " in ln for ln in rows)
    # records without any lisco benchmark (no checkpoint field at all) still render
    other = tmp_path / "other"
    other.mkdir()
    rec = {"name": "sqp_momentum_spring_parts", "timestamp": "2026-12-03T00:00:00+00:00"}
    (other / "r.json").write_text(json.dumps({**rec, "s_per_iter_median": 1e-4}))
    assert "sqp_momentum_spring_parts" in bench.render(other, other / "bench.md")


def test_bench_iteration_budget_is_the_one_that_gives_the_target_at_the_floor():
    """bench.md's ``mean_iterations_for_target_at_floor``: networks that use exactly that
    many iterations per point have a floor (iterations summed × a row's cost) at which the
    throughput is the target multiple of the baseline's; records without the floor fields
    give NaN."""
    from runners import bench

    points, row_s, base_tp = 833, 1.2e-5, 47.0
    budget = bench._lisco_iteration_budget(
        {
            "lisco_sum_iterations": 1.0,
            "lisco_s_per_row_iter_full_batch": row_s,
            "baseline_throughput": base_tp,
            "lisco_throughput": points / 0.5,
            "lisco_batch_s": 0.5,
        }
    )
    k = budget["mean_iterations_for_target_at_floor"]
    floor_s = k * points * row_s
    assert points / floor_s / base_tp == pytest.approx(bench.LISCO_THROUGHPUT_TARGET)
    assert budget["lisco_mean_iterations"] == pytest.approx(1.0 / points)
    empty = bench._lisco_iteration_budget({"baseline_throughput": base_tp})
    assert all(np.isnan(v) for v in empty.values())


def test_interleaved_ratio_cancels_a_machine_that_slows_down_for_both_sides():
    """bench's ``_interleaved_ratio``: each round's ratio is (points / median LISCO batch) /
    (points / the baseline's slices summed), with both sides timed in the same round. A
    machine that runs 3× slower in the second round (for both sides) leaves every round's
    ratio at the true one (baseline 20 ms per point, warm batch 0.1 s: 0.02 · 50 / 0.1 =
    10), where timing the baseline in the slow round and LISCO in a fast one would give 30.
    The first batch after each slice of the baseline (0.2 s here) makes the cold ratio, 5."""
    from runners import bench

    n, now, state = 50, [0.0], {"factor": 1.0, "after_base": False, "batches": 0}
    calls = []

    def baseline(j, k):
        calls.append(("base", j, k))
        state["after_base"] = True
        return 0.02 * len(range(j, n, k)) * state["factor"]

    def lisco():
        calls.append(("lisco",))
        now[0] += (0.2 if state["after_base"] else 0.1) * state["factor"]
        state["after_base"] = False
        state["batches"] += 1
        state["factor"] = 3.0 if state["batches"] // 8 == 1 else 1.0  # 8 batches a round

    out = bench._interleaved_ratio(baseline, lisco, n, rounds=3, slices=4, clock=lambda: now[0])
    assert out["throughput_ratio_rounds"] == pytest.approx([10.0, 10.0, 10.0])
    assert out["throughput_ratio_interleaved"] == pytest.approx(10.0)
    assert out["throughput_ratio_rounds_cold"] == pytest.approx([5.0, 5.0, 5.0])
    assert out["throughput_ratio_interleaved_cold"] == pytest.approx(5.0)
    assert out["lisco_batch_s_rounds"] == pytest.approx([0.1, 0.3, 0.1])
    assert out["lisco_batch_s_rounds_cold"] == pytest.approx([0.2, 0.6, 0.2])
    assert out["baseline_throughput_rounds"] == pytest.approx([50.0, 50.0 / 3, 50.0])
    # each round: every slice of the points once (j = 0..3 of 4), two batches after each
    assert [c for c in calls if c[0] == "base"] == [("base", j, 4) for j in range(4)] * 3
    assert [c[0] for c in calls[:6]] == ["base", "lisco", "lisco"] * 2


def test_bfloat16_inference_products_round_the_operands_only(ncqp):
    """``method.inference_precision=bfloat16``: Π_sol with the trained (float32) parameters
    as they are, its products from bfloat16 operands accumulated in float32: the output is
    float32, equal to the float32 network applied to bfloat16-rounded inputs and weights (to
    float32 rounding), and within bfloat16's ~3 significant digits of the float32 output."""
    from methods.parametric.lisco import LiscoConfig, inference_solver, init_networks, networks

    cfg = LiscoConfig(hidden=(256,), inference_precision="bfloat16")
    _, params = init_networks(ncqp, cfg, jnp.float32, jax.random.PRNGKey(0))
    sol32 = networks(ncqp, cfg, jnp.float32)[1]
    low = inference_solver(ncqp, cfg, jnp.float32)
    v = jax.random.normal(jax.random.PRNGKey(1), (16, ncqp.n_x + ncqp.n_z + 1), jnp.float32)
    out, ref = low.apply(params, v), sol32.apply(params, v)
    assert out.dtype == jnp.float32 and out.shape == ref.shape
    rnd = lambda a: a.astype(jnp.bfloat16).astype(jnp.float32)
    p = params["params"]
    h = jax.nn.leaky_relu(rnd(v) @ rnd(p["Dense_0"]["kernel"]) + rnd(p["Dense_0"]["bias"]))
    by_hand = rnd(h) @ rnd(p["Dense_1"]["kernel"]) + rnd(p["Dense_1"]["bias"])
    np.testing.assert_allclose(np.asarray(out), np.asarray(by_hand), rtol=1e-4, atol=1e-5)
    err = float(jnp.max(jnp.abs(out - ref)) / jnp.max(jnp.abs(ref)))
    assert 1e-5 < err < 2e-2, err

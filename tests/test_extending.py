"""The documented extension points (docs/extending.md): a problem and a method defined
outside the project's packages, registered by a plugin module and configured from a config
folder of their own, run through the CLI with no edit to any runner."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from test_cli import TINY

EXAMPLE = Path(__file__).resolve().parent.parent / "docs" / "examples" / "plugin"


@pytest.fixture(scope="module")
def plugin(tmp_path_factory):
    """docs/examples/plugin copied to a folder outside the repository."""
    where = tmp_path_factory.mktemp("outside")
    shutil.copytree(EXAMPLE, where / "plugin")
    return where / "plugin"


def _train(plugin, results, *args, module: str = "toy_plugin"):
    """``python -m runners.train`` with the plugin folder's module and configs."""
    env = {**os.environ, "PYTHONPATH": f"{plugin}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    cmd = [
        sys.executable,
        "-m",
        "runners.train",
        f"hydra.searchpath=[file://{plugin}/conf]",
        f"plugins=[{module}]",
        f"results_dir={results}",
        "progress=false",
        *args,
    ]
    return subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=Path(__file__).resolve().parent.parent,
    )


def _record(results: Path) -> dict:
    (m,) = list(results.rglob("metrics.json"))
    return json.loads(m.read_text())


def test_a_new_problem_with_a_new_method(plugin, tmp_path):
    """toy_gd on toy_line: the primal-dual iteration reaches the closed-form θ*."""
    r = _train(plugin, tmp_path, "problem=toy_line", "method=toy_gd", "budget.max_iter=5000")
    assert r.returncode == 0, r.stderr[-2000:]
    rec = _record(tmp_path)
    assert rec["problem"] == "toy_line" and rec["method"] == "toy_gd"
    assert rec["status"] == "converged" and rec["abs_error"] < 1e-9
    assert rec["max_constraint_violation"] < 1e-10 and rec["method.lr"] == 0.2


def test_a_new_problem_with_a_method_of_the_project(plugin, tmp_path):
    """trsqp (the paper's Algorithm 3) on toy_line: a QP with one linear constraint, solved
    to roundoff."""
    r = _train(plugin, tmp_path, "problem=toy_line", "method=trsqp", "figures=false")
    assert r.returncode == 0, r.stderr[-2000:]
    rec = _record(tmp_path)
    assert rec["status"] == "converged" and rec["abs_error"] < 1e-10


def test_a_new_method_on_a_problem_of_the_project(plugin, tmp_path):
    """toy_gd on a tiny reaction PINN: the runner drives it for the budget and saves its
    parameters; evaluated afresh on the problem's own data (seed 0) they give the recorded
    error, and the first history row is ℓ at the run's initial weights."""
    import jax
    from flax import serialization

    from problems import build_problem

    tiny = {
        a.split("=")[0].removeprefix("problem."): a.split("=")[1]
        for a in TINY
        if a.startswith("problem.") and "split" not in a and "pretrain" not in a
    }
    args = [f"problem.{k}={v}" for k, v in tiny.items()]
    r = _train(
        plugin,
        tmp_path,
        "problem=reaction",
        "method=toy_gd",
        "method.lr=0.001",
        "precision=float64",  # re-evaluated below in float64 (reaction's default is float32)
        "pretrain=false",
        "budget.max_iter=200",
        "log_every=50",
        "figures=false",
        *args,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    rec = _record(tmp_path)
    assert rec["method"] == "toy_gd" and rec["iterations"] == 200
    jax.config.update("jax_enable_x64", True)
    problem = build_problem("reaction", {k: int(v) for k, v in tiny.items()}, dtype="float64")
    k_data, k_init = jax.random.split(jax.random.PRNGKey(0))
    data, init = problem.sample_data(k_data), problem.init_params(k_init)
    run = Path(rec["run_dir"])
    params = serialization.from_bytes(init, (run / "params.msgpack").read_bytes())
    assert float(problem.evaluate(params, data)["abs_error"]) == pytest.approx(
        rec["abs_error"], rel=1e-9
    )
    hist = pd.read_csv(run / "history.csv")
    assert hist["objective"].iloc[0] == pytest.approx(float(problem.loss(init, data)), rel=1e-9)
    assert hist["iteration"].iloc[-1] == 200


def test_bad_input_to_a_plugin_is_one_line_and_writes_nothing(plugin, tmp_path):
    r = _train(plugin, tmp_path, "problem=toy_line", "method=toy_gd", "method.lr=-1")
    assert r.returncode == 2 and "method.lr: must be a number > 0" in r.stderr
    assert not any(tmp_path.iterdir())
    r = _train(plugin, tmp_path, "plugins=[no_such_module]")
    assert r.returncode == 2 and "plugins: cannot import 'no_such_module'" in r.stderr
    assert not any(tmp_path.iterdir())


def test_a_new_stochastic_problem_with_the_papers_methods(plugin, tmp_path):
    """toy_fit (family stochastic_constrained, no prediction view, no epochs table) under
    SQP-SGD with the full batch: the projected steps reach w* = (1/2, 1, -2), where the fit
    is exact and both constraints hold; the loss figure is drawn and no prediction figure
    (the problem has no view). SQP-Adam on mini-batches of it runs to a record too."""
    import numpy as np
    from flax import serialization

    r = _train(
        plugin,
        tmp_path / "sgd",
        "problem=toy_fit",
        "method=sqp_sgd",
        "method.full_batch=true",
        "method.lr=0.5",
        "precision=float64",
    )
    assert r.returncode == 0, r.stderr[-2000:]
    rec = _record(tmp_path / "sgd")
    assert rec["family"] == "stochastic_constrained" and rec["iterations"] == 200
    assert rec["test_mse"] < 1e-20 and rec["max_abs_c"] < 1e-12
    run = Path(rec["run_dir"])
    init = {"w": np.zeros(3)}
    w = serialization.from_bytes(init, (run / "params.msgpack").read_bytes())["w"]
    assert np.allclose(w, [0.5, 1.0, -2.0], atol=1e-10)
    assert (run / "losses.png").is_file() and not (run / "prediction.png").exists()
    # its own loss term reaches the tables under the label the problem gives it
    from runners.tables import collect, summarize

    assert rec["metric_labels"] == {"fit": "fit loss"}
    shown = summarize(collect(tmp_path / "sgd"))[1]
    assert "fit loss" in shown.columns and float(shown["fit loss"].iloc[0]) < 1e-20
    # with the unit normal step its linear constraints hold after the first step (the
    # default scales the normal step by α_k: c shrinks by (1 − α_k) per step)
    r = _train(
        plugin,
        tmp_path / "adam",
        "problem=toy_fit",
        "method=sqp_adam",
        "method.normal_step_size=unit",
        "figures=false",
    )
    assert r.returncode == 0, r.stderr[-2000:]
    rec = _record(tmp_path / "adam")
    assert rec["max_abs_c"] < 1e-4 and rec["method.normal_step_size"] == "unit"


DAE_PLUGIN = '''
from methods import MethodSpec, register_method
from methods.dae.sequential import SequentialConfig
from problems import NEURAL_DAE
from runners import dae

register_method("seq_twice", MethodSpec(NEURAL_DAE, SequentialConfig, None))
register_method("no_trainer", MethodSpec(NEURAL_DAE, SequentialConfig, None))


@dae.register_trainer("seq_twice")
def seq_twice(cfg, setup, problem, data, history):
    """the sequential baseline, its record marked (a trainer may wrap the paper's)"""
    trained = dae.TRAINERS["sequential"](cfg, setup, problem, data, history)
    return trained._replace(record={**trained.record, "wrapped_by": "seq_twice"})
'''


def test_a_new_neural_dae_method_through_register_trainer(tmp_path):
    """A neural-DAE method from outside the project: registered with register_method and
    runners.dae.register_trainer, configured from its own folder, run through the CLI to the
    family's record (evaluation and artifacts included); a DAE method without a trainer is
    refused in one line that names the way to add one."""
    plugin = tmp_path / "daeplug"
    (plugin / "conf" / "method").mkdir(parents=True)
    (plugin / "dae_plugin.py").write_text(DAE_PLUGIN)
    seq = (EXAMPLE.parent.parent.parent / "conf" / "method" / "sequential.yaml").read_text()
    for name in ("seq_twice", "no_trainer"):
        text = seq.replace("name: sequential", f"name: {name}")
        (plugin / "conf" / "method" / f"{name}.yaml").write_text(text)
    run = lambda out, *a: _train(
        plugin, out, "problem=population", "figures=false", *a, module="dae_plugin"
    )
    r = run(tmp_path / "ok", "method=seq_twice", "method.epochs=20")
    assert r.returncode == 0, r.stderr[-2000:]
    rec = _record(tmp_path / "ok")
    assert rec["method"] == "seq_twice" and rec["wrapped_by"] == "seq_twice"
    assert rec["iterations"] == 20 and 0 < rec["train_mse"] < float("inf")
    assert (Path(rec["run_dir"]) / "network.npz").is_file()
    r = run(tmp_path / "bad", "method=no_trainer")
    assert r.returncode == 2
    err = r.stderr.strip().splitlines()[-1]
    assert "no_trainer" in err and "register_trainer" in err and "sequential" in err
    assert not list((tmp_path / "bad").rglob("metrics.json"))


PARAMETRIC_PLUGIN = '''
"""A parametric-optimization baseline from outside the project: IPOPT with this plugin's
own settings, through methods.parametric.lisco_baselines.ipopt_solve; convex problems only."""
import dataclasses

from methods import MethodSpec, register_method
from methods.parametric.lisco_baselines import ipopt_solve
from problems import PARAMETRIC_OPT


@dataclasses.dataclass(frozen=True)
class LooseIpoptConfig:
    tol: float = 1e-4  # IPOPT's tol


def solve(problem, cfg, X, on_instance=None):
    r = ipopt_solve(problem.kind, problem.inst, X, tol=cfg.tol, hessian="exact",
                    max_iter=3000, linear_solver="mumps", on_instance=on_instance)
    return r, {"wrapped_by": "loose_ipopt"}


def convex_only(problem):
    return None if problem.convex else f"is for convex problems, not {problem.name!r}"


register_method("loose_ipopt", MethodSpec(PARAMETRIC_OPT, LooseIpoptConfig, None,
                                          solve=solve, refuses=convex_only))
'''


def test_a_new_parametric_baseline_through_solve_and_refuses(tmp_path):
    """A parametric baseline from outside the project (``MethodSpec(solve=, refuses=)``, its
    defaults from its dataclass through its config's defaults line): its record on the QP
    equals method=ipopt's at the same settings (the same solver through the family's own
    evaluation: ½‖F‖², gap, violations), its extra field is recorded, and its refusal of
    the non-convex QP is one line, exit 2, nothing written."""
    plugin = tmp_path / "parplug"
    (plugin / "conf" / "method").mkdir(parents=True)
    (plugin / "par_plugin.py").write_text(PARAMETRIC_PLUGIN)
    (plugin / "conf" / "method" / "loose_ipopt.yaml").write_text(
        "defaults:\n  - /method_defaults_loose_ipopt@_here_\n  - _self_\nname: loose_ipopt\n"
    )
    run = lambda out, *a: _train(
        plugin, out, "figures=false", "problem.n_test=5", *a, module="par_plugin"
    )
    r = run(tmp_path / "res", "problem=qp", "method=loose_ipopt", "method.tol=1e-8")
    assert r.returncode == 0, r.stderr[-2000:]
    ours = _record(tmp_path / "res" / "runs" / "qp" / "loose_ipopt")
    r = run(tmp_path / "res", "problem=qp", "method=ipopt", "method.tol=1e-8")
    assert r.returncode == 0, r.stderr[-2000:]
    ref = _record(tmp_path / "res" / "runs" / "qp" / "ipopt")
    assert ours["wrapped_by"] == "loose_ipopt" and ours["status"] == ref["status"]
    for k in ("success", "T_max", "gap_max", "eq_max", "ineq_max", "it_median"):
        assert ours[k] == pytest.approx(ref[k], rel=1e-9, abs=1e-15), k
    r = run(tmp_path / "bad", "problem=nonconvex_qp", "method=loose_ipopt")
    assert r.returncode == 2
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and "convex problems" in err[0] and "ipopt" in err[0], r.stderr
    assert not (tmp_path / "bad").exists() or not list((tmp_path / "bad").rglob("*.json"))


PARAMETRIC_PROBLEM_PLUGIN = '''
"""A parametric problem from outside the project: DC3's instance with a new objective,
f = ½ yᵀQy + pᵀy + ¼ Σ y⁴ (convex), written once for JAX (LISCO's residual) and CasADi
(IPOPT)."""
from problems import register_problem
from problems.parametric.base import ParametricOpt
from problems.parametric.dc3 import register_objective


def quartic(y, q, p, ops):
    return 0.5 * ops.dot(y, q * y) + ops.dot(p, y) + 0.25 * ops.sum(y**4)


register_objective("quartic_qp", quartic)


@register_problem
class QuarticQp(ParametricOpt):
    name = kind = "quartic_qp"
'''


def test_a_new_parametric_problem_through_its_objective_formula(tmp_path):
    """A parametric problem from outside the project (a ParametricOpt subclass and its
    objective formula, registered; its config only a defaults line): IPOPT solves its test
    points from the CasADi form of the formula, and the family's evaluation, from the JAX
    form, finds them optimal (½‖F‖² ≤ 1e-10, Ay = x): the two forms are one objective. Its
    reference is cached under its own name."""
    plugin = tmp_path / "pprob"
    (plugin / "conf" / "problem").mkdir(parents=True)
    (plugin / "pprob_plugin.py").write_text(PARAMETRIC_PROBLEM_PLUGIN)
    (plugin / "conf" / "problem" / "quartic_qp.yaml").write_text(
        "defaults:\n  - /problem_defaults_quartic_qp@_here_\n  - _self_\nname: quartic_qp\n"
        "n_test: ${scale.lisco.n_test}\n"
    )
    r = _train(
        plugin,
        tmp_path / "res",
        "problem=quartic_qp",
        "method=ipopt",
        "problem.n_test=5",
        "figures=false",
        module="pprob_plugin",
    )
    assert r.returncode == 0, r.stderr[-2000:]
    rec = _record(tmp_path / "res" / "runs")
    assert rec["problem"] == "quartic_qp" and rec["success"] == 1.0
    assert rec["T_max"] <= 1e-10 and rec["eq_max"] < 1e-8
    assert list((tmp_path / "res" / "cache").glob("lisco_ref_quartic_qp*"))

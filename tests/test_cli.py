"""The command line end to end, in subprocesses (tiny networks and budgets)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parent.parent
TINY = [
    "problem.depth=1",
    "problem.width=8",
    "problem.n_data=64",
    "problem.eval_nx=32",
    "problem.eval_nt=16",
    "problem.n_log=64",
    "problem.m_pretrain=30",
    "problem.m_pretrain_split.ic=10",
    "problem.m_pretrain_split.pde=10",
    "problem.m_pretrain_split.bc=10",
    "pretraining.inner_maxiter=40",
    "method.inner_maxiter=10",
    "budget.max_iter=40",
    "log_every=20",
    "eval_every=1",
    "progress=false",
]
SCHEMA = {
    "problem": str,
    "method": str,
    "seed": int,
    "status": str,
    "iterations": int,
    "abs_error": float,
    "rel_error": float,
    "max_constraint_violation": float,
    "wall_s": float,
    "compile_s": float,
    "config_hash": str,
    "device": str,
    "problem.alpha": float,
    "method.mu0": float,
    "pretrain": bool,
}


def train(tmp, *args, check=True):
    env = {**os.environ, "HCSML_JAX_CACHE": str(ROOT / ".jax_cache")}
    flags = [a for a in args if a.startswith("-")]  # Hydra wants flags before overrides
    overrides = [a for a in args if not a.startswith("-")]
    p = subprocess.run(
        [sys.executable, "-m", "runners.train", *flags, f"results_dir={tmp}", *overrides],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    if check:
        assert p.returncode == 0, p.stderr[-3000:]
    return p


def metrics_files(root):
    return sorted(Path(root).rglob("metrics.json"))


@pytest.fixture(scope="module")
def single_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("results")
    p = train(tmp, *TINY, "method=auglag")
    return tmp, p


def test_single_run_writes_its_artifacts(single_run):
    tmp, p = single_run
    (m,) = metrics_files(tmp)
    run = m.parent
    assert run.parent.name == "auglag" and run.parent.parent.name == "reaction"
    for f in ("history.csv", "params.msgpack", "solution.png", ".hydra/config.yaml"):
        assert (run / f).is_file(), f
    rec = json.loads(m.read_text())
    for key, typ in SCHEMA.items():
        assert isinstance(rec[key], typ), (key, rec.get(key))
    assert rec["problem"] == "reaction" and rec["method"] == "auglag"
    assert rec["status"] in ("converged", "max_iter") and rec["iterations"] == 40
    assert 0 < rec["abs_error"] < 2 and 0 < rec["rel_error"] < 3
    hist = pd.read_csv(run / "history.csv")
    assert set(hist["phase"]) == {"pretrain", "train"}
    assert {"objective", "constraint_norm", "mu", "abs_error_sub"} <= set(hist.columns)
    train_rows = hist[hist["phase"] == "train"]
    assert train_rows["iteration"].tolist() == [0, 20, 40]
    # the last history row is the final iterate: same ‖c‖ as the final metrics
    assert abs(train_rows["constraint_norm"].iloc[-1] - rec["constraint_norm"]) < 1e-10
    # how the inner solves ended, counted: at most one end per round (the last one may be
    # cut by the iteration cap), the same counts as the last history row
    ends = [rec[f"inner_ends_{w}"] for w in ("gtol", "ftol", "lmax", "linesearch")]
    assert sum(ends) <= rec["rounds"] + 1
    assert ends == [
        int(train_rows[f"inner_ends_{w}"].iloc[-1]) for w in ("gtol", "ftol", "lmax", "linesearch")
    ]
    assert isinstance(rec["pretrain_inner_ends_lmax"], int)
    assert "abs_error" in p.stdout and "JAX" in p.stdout + p.stderr


def test_tables_render_the_runs(single_run, tmp_path):
    tmp, _ = single_run
    p = subprocess.run(
        [sys.executable, "-m", "runners.tables", "--results", str(tmp)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 0, p.stderr
    for ext in ("md", "csv", "tex"):
        assert (tmp / "tables" / f"summary.{ext}").is_file()
    df = pd.read_csv(tmp / "tables" / "summary.csv")
    rec = json.loads(metrics_files(tmp)[0].read_text())
    assert df.loc[0, "method"] == "auglag" and df.loc[0, "seeds"] == 1
    assert abs(df.loc[0, "abs_error_mean"] - rec["abs_error"]) < 1e-12
    assert f"{rec['abs_error']:.4g}" in (tmp / "tables" / "summary.md").read_text()
    # two seeds: mean ± std over seeds
    for seed, shift in ((0, 0.0), (1, 0.1)):
        f = tmp_path / f"seed{seed}" / "metrics.json"
        f.parent.mkdir()
        f.write_text(json.dumps({**rec, "seed": seed, "abs_error": rec["abs_error"] + shift}))
    p = subprocess.run(
        [sys.executable, "-m", "runners.tables", "--results", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 0, p.stderr
    df = pd.read_csv(tmp_path / "tables" / "summary.csv")
    assert df.loc[0, "seeds"] == 2
    assert abs(df.loc[0, "abs_error_mean"] - (rec["abs_error"] + 0.05)) < 1e-12
    assert abs(df.loc[0, "abs_error_std"] - 0.1 / 2**0.5) < 1e-12
    md = (tmp_path / "tables" / "summary.md").read_text()
    assert f"{rec['abs_error'] + 0.05:.4g} ± 0.071" in md


def test_sweep_then_resume_skips_finished_runs(tmp_path):
    # a key that the default method (trsqp) lacks needs Hydra's force-add "++" in a sweep
    # over the method group (Hydra composes the default method first)
    tiny = ["++" + a if a.startswith("method.") else a for a in TINY]
    args = ["-m", *tiny, "method=penalty,pinn", "seed=0", "figures=false", "pretrain=false"]
    train(tmp_path, *args)
    files = metrics_files(tmp_path)
    assert len(files) == 2 and all(len(f.parent.name) <= 120 for f in files)
    assert [json.loads(f.read_text())["method"] for f in files] == ["penalty", "pinn"]
    stamps = [f.stat().st_mtime_ns for f in files]
    # an interrupted sweep: one run lost its metrics.json; the re-run (in parallel, with
    # the joblib launcher) redoes only that one
    files[1].unlink()
    p = train(tmp_path, *args, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2")
    assert p.stdout.count("abs_error") == 1  # one run trained, one skipped
    assert files[0].stat().st_mtime_ns == stamps[0] and files[1].is_file()
    assert json.loads(files[1].read_text())["method"] == "pinn"
    p = train(tmp_path, *args)  # everything finished: nothing is trained again
    assert "abs_error" not in p.stdout
    assert (p.stdout + p.stderr).count("skipping finished run") == 2


def test_divergence_ends_the_run_with_status_diverged(tmp_path):
    # μ‖c‖² overflows to inf at the first step: the run must stop, keep the initial
    # (last finite) iterate, and still write its metrics and history
    train(tmp_path, *TINY, "method=pinn", "method.mu=1e308", "pretrain=false", "figures=false")
    (m,) = metrics_files(tmp_path)
    rec = json.loads(m.read_text())
    assert rec["status"] == "diverged" and rec["iterations"] == 0
    assert 0 < rec["abs_error"] < 10  # the finite initial network was evaluated
    hist = pd.read_csv(m.parent / "history.csv")
    assert hist["iteration"].tolist() == [0, 0] and (m.parent / "params.msgpack").is_file()


@pytest.mark.parametrize(
    "override,field",
    [
        ("problem.n_data=-5", "problem.n_data"),
        ("problem.m_split.ic=5", "problem.m_split"),
        ("problem.activation=relu6", "problem.activation"),
        ("method.rho=0.5", "method.rho"),
        ("method.hessian=bfgs", "method.hessian"),
        ("method.second_order_correction=maybe", "method.second_order_correction"),
        ("seed=-1", "seed"),
        ("pretraining.ic_weight=0", "pretraining.ic_weight"),
        ("budget.max_iter=0", "budget.max_iter"),
        ("pretraining.solver=lbfgsb", "pretraining.solver"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, override, field):
    p = train(tmp_path, override, check=False)
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {field}"), p.stderr
    assert not any(tmp_path.iterdir())


def test_scipy_solver_refuses_vectorized_seeds(tmp_path):
    p = train(tmp_path, "method=penalty", "method.solver=scipy", "seeds=2", check=False)
    assert p.returncode == 2 and p.stderr.startswith("error: seeds: must be 1 with method."), (
        p.stderr
    )
    assert not any(tmp_path.iterdir())


def test_bad_value_in_a_sweep_stops_before_any_run(tmp_path):
    p = train(tmp_path, "-m", "problem.n_data=10,0", check=False)
    assert p.returncode == 2 and p.stderr.startswith("error: problem.n_data")
    assert not any(tmp_path.iterdir())


def test_unknown_group_option_is_hydras_error(tmp_path):
    p = train(tmp_path, "method=nosuch", check=False)
    assert p.returncode != 0 and "nosuch" in p.stderr
    assert "penalty" in p.stderr  # Hydra lists the available options
    assert not any(tmp_path.iterdir())


def test_help_lists_config_groups():
    p = subprocess.run(
        [sys.executable, "-m", "runners.train", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 0
    for word in (
        "problem: bioreactor, burgers, butene, darcy, nonconvex_qp, population, qp, "
        "reaction, reaction_diffusion, rosenbrock, spring, tank_manifold, transport",
        "auglag",
        "pinn",
        "collocation",
        "sequential",
        "lisco",
        "ipopt",
        "osqp",
        "scale: cpu, paper, smoke",
    ):
        assert word in p.stdout, word


def test_trsqp_run_logs_its_trust_region_history(tmp_path):
    tiny = [a for a in TINY if not a.startswith("method.inner_maxiter")]
    train(tmp_path, *tiny, "method=trsqp", "method.memory=5", "figures=false")
    (m,) = metrics_files(tmp_path)
    rec = json.loads(m.read_text())
    assert rec["method"] == "trsqp" and rec["iterations"] == 40
    hist = pd.read_csv(m.parent / "history.csv")
    rows = hist[hist["phase"] == "train"]
    for col in (
        "radius",
        "eta",
        "accepted",
        "cg_iterations",
        "cg_reason",
        "kkt_residual",
        "merit",
        "mu",
    ):
        assert rows[col].notna().iloc[1:].all(), col
    assert (rows["radius"] > 0).all() and (rows["mu"].diff().dropna() >= 0).all()
    # the final ‖c‖ of the history is the one the metrics report
    assert abs(rows["constraint_norm"].iloc[-1] - rec["constraint_norm"]) < 1e-10


def test_experiment_table_puts_the_paper_values_beside_ours(tmp_path):
    from runners.tables import experiment_spec, experiment_table

    spec = experiment_spec("trsqp_pretrain")
    recs = [
        {
            "problem": "reaction",
            "method": "penalty",
            "pretrain": pre,
            "seed": s,
            "abs_error": a,
            "rel_error": 2 * a,
        }
        for pre, s, a in ((True, 0, 0.1), (True, 1, 0.3), (False, 0, 0.5))
    ]
    long, shown = experiment_table(pd.DataFrame(recs), spec)
    row = shown[shown["problem"] == "reaction"].iloc[0]
    assert row["penalty/true abs error"] == "0.2 ± 0.1 (0.434)"  # mean ± std over 2 seeds
    assert row["penalty/false rel error"] == "1 (1)"
    assert row["auglag/true abs error"] == "– (0.377)"  # no run yet: the paper's value alone
    cell = long[
        (long.row == "reaction") & (long.col == "penalty/true") & (long.metric == "abs_error")
    ].iloc[0]
    assert cell.seeds == 2 and abs(cell["mean"] - 0.2) < 1e-12 and cell.paper == 0.4339


def test_saved_params_reproduce_the_run_metrics(single_run):
    """params.msgpack + the config in metrics.json rebuild the run's prediction exactly."""
    import numpy as np

    from runners.figures import load_prediction
    from runners.tables import collect

    tmp, _ = single_run
    rec = collect(tmp).iloc[0].to_dict()
    x, t, ref, pred = load_prediction(rec)
    assert ref.shape == (16, 32) and pred.shape == ref.shape
    assert abs(float(np.mean(np.abs(pred - ref))) - rec["abs_error"]) < 1e-10


def test_heatmaps_lay_out_the_selected_runs(single_run, tmp_path, capsys):
    """Figures 4-6 are heatmaps over chosen fields: one panel per value of ``cols`` (plus
    the reference), one row per value of ``rows``, only the runs ``where`` selects; a failed
    or unreadable run is not drawn."""
    import shutil

    import matplotlib.image as mpimg

    from runners.figures import heatmaps

    tmp, _ = single_run
    (m,) = metrics_files(tmp)
    rec = json.loads(m.read_text())
    for mu, status in (
        (1.0, rec["status"]),
        (10.0, rec["status"]),
        (100.0, rec["status"]),
        (1000.0, "solver_failed: x"),
    ):
        d = tmp_path / "runs" / f"mu{mu:g}"
        shutil.copytree(m.parent, d)
        (d / "metrics.json").write_text(json.dumps({**rec, "method.mu0": mu, "status": status}))
    width = lambda p: mpimg.imread(p).shape[1]
    all_mu = heatmaps(tmp_path / "runs", tmp_path / "all.png", cols=("method.mu0",))
    two = heatmaps(
        tmp_path / "runs",
        tmp_path / "two.png",
        cols=("method.mu0",),
        where={"method.mu0": ["1", "10"]},
    )
    # 1 + 3 panels (the failed run at 1000 is left out) against 1 + 2, 3.2 in each at 80 dpi
    assert width(all_mu) == pytest.approx(4 * 256, abs=2)
    assert width(two) == pytest.approx(3 * 256, abs=2)
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:  # no run matches: one line naming what runs record
        heatmaps(tmp_path / "runs", tmp_path / "none.png", where={"method.mu0": ["7"]})
    err = [x for x in capsys.readouterr().err.splitlines() if x.startswith("error")]
    assert e.value.code == 2 and len(err) == 1 and "7 (recorded: 1, 10, 100)" in err[0]
    assert not (tmp_path / "none.png").exists()


def test_heatmaps_refuse_a_field_or_seed_no_run_records_in_one_line(tmp_path, capsys):
    """--rows/--cols naming a field no run records, or a --seed no run has: one line naming
    it (and the seeds recorded), exit 2, nothing drawn."""
    from runners.figures import heatmaps

    for seed in (0, 1):
        d = tmp_path / "runs" / f"s{seed}"
        d.mkdir(parents=True)
        rec = {"problem": "reaction", "method": "trsqp", "seed": seed, "status": "converged"}
        (d / "metrics.json").write_text(json.dumps(rec))
    for kwargs, named in [
        ({"cols": ("method.nosuch",)}, "--rows/--cols: no run under"),
        ({"seed": 7}, "--seed: no run has seed 7 (recorded: 0, 1)"),
    ]:
        with pytest.raises(SystemExit) as e:
            heatmaps(tmp_path / "runs", tmp_path / "out.png", **kwargs)
        err = capsys.readouterr().err.strip().splitlines()
        assert e.value.code == 2 and len(err) == 1 and named in err[0], err
    assert not (tmp_path / "out.png").exists()


SPRING_TINY = [
    "problem=spring",
    "problem.width=8",
    "problem.depth=1",
    "method.epochs=20",
    "log_every=10",
    "progress=false",
]


def test_stochastic_family_run_contracts_the_constraints(tmp_path):
    # sqp_sgd with α = 0.1: each step takes 0.1 of the normal step −J⁺c, so ‖c‖ shrinks
    # about 0.9× per iteration (40 iterations: 2 per epoch, b = 0.5)
    train(tmp_path, *SPRING_TINY, "method=sqp_sgd", "method.lr=0.1")
    (m,) = metrics_files(tmp_path)
    rec = json.loads(m.read_text())
    assert rec["family"] == "stochastic_constrained" and rec["iterations"] == 40
    assert rec["pretrain"] is False and np.isfinite(rec["test_mse"])
    hist = pd.read_csv(m.parent / "history.csv")
    assert hist["epoch"].iloc[-1] == 20
    assert rec["max_abs_c"] < 0.1 * hist["max_abs_c"].iloc[0]
    # the history's last full-batch loss is the one the metrics report
    assert abs(hist["loss_total"].iloc[-1] - rec["total"]) < 1e-10 * max(1, rec["total"])
    for f in ("losses.png", "prediction.png", "params.msgpack"):
        assert (m.parent / f).is_file(), f


@pytest.mark.parametrize(
    "pair", [("method=sqp_adam", "problem=reaction"), ("method=trsqp", "problem=spring")]
)
def test_a_method_of_another_family_is_refused(tmp_path, pair):
    p = train(tmp_path, *pair, check=False)
    assert p.returncode == 2
    line = p.stderr.strip()
    assert line.startswith("error: method:") and "valid methods" in line and "\n" not in line
    assert not any(tmp_path.iterdir())


def test_submitit_local_sweep_runs_jobs_and_resumes(tmp_path):
    """A two-job sweep through Hydra's submitit launcher (real subprocess jobs) writes both
    records; submitting it again skips both (their metrics.json are not rewritten)."""
    args = [
        "-m",
        "hydra/launcher=submitit_local",
        *SPRING_TINY,
        "method=sqp_adam",
        "method.epochs=20",
        "figures=false",
        "seed=0,1",
    ]
    results = tmp_path / "results"
    train(results, *args)
    files = metrics_files(results)
    # submitit's own pickles live beside results/, never in it
    assert not list(results.rglob("*.pkl"))
    assert list((tmp_path / ".submitit" / "default").rglob("*_result.pkl"))
    assert sorted(json.loads(f.read_text())["seed"] for f in files) == [0, 1]
    assert all(json.loads(f.read_text())["status"] in ("converged", "max_iter") for f in files)
    stamps = [f.stat().st_mtime_ns for f in files]
    train(results, *args)
    assert [f.stat().st_mtime_ns for f in metrics_files(results)] == stamps


def test_cluster_config_sets_the_slurm_launcher():
    """+cluster=example fills the submitit SLURM launcher (partition, GPUs, time, array)."""
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "runners.train",
            "hydra/launcher=submitit_slurm",
            "+cluster=example",
            "--cfg",
            "hydra",
            "-p",
            "hydra.launcher",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 0, p.stderr[-2000:]
    for line in (
        "partition: gpu",
        "gpus_per_node: 1",
        "timeout_min: 240",
        "array_parallelism: 16",
        "SlurmLauncher",
    ):
        assert line in p.stdout, line


def test_history_rows_keep_the_chosen_phase(tmp_path):
    """``figures histories --phase``: a LISCO history logs its predictor and solver phases
    in one file; the solver's rows are the ones drawn, rows that did not log the metric
    left out; a PINN history's default phase is ``train``."""
    from runners.figures import history_rows

    path = tmp_path / "history.csv"
    path.write_text(
        "iteration,valid_T_median,phase,batch_T_median\n"
        "0,581.2,predictor,\n100,12.5,predictor,\n"
        "0,,solver,0.16\n100,,solver,152.5\n200,,solver,0.01\n"
    )
    rows = history_rows(path, "batch_T_median", "solver")
    assert rows["iteration"].tolist() == [0, 100, 200]
    assert rows["batch_T_median"].tolist() == [0.16, 152.5, 0.01]
    assert history_rows(path, "batch_T_median").empty  # no "train" phase here
    assert history_rows(path, "missing", "solver") is None
    assert history_rows(tmp_path / "none.csv", "batch_T_median") is None

    # the command line: a phase no run logs is bad input, one line, exit 2, nothing written
    from runners.figures import main

    record = {"problem": "qp", "method": "lisco", "status": "max_iter"}
    (tmp_path / "metrics.json").write_text(json.dumps(record))
    out = tmp_path / "h.png"
    args = ["histories", "--results", str(tmp_path), "--metric", "batch_T_median"]
    main([*args, "--phase", "solver", "--out", str(out)])
    assert out.is_file()
    with pytest.raises(SystemExit) as e:
        main([*args, "--phase", "slover", "--out", str(tmp_path / "typo.png")])
    assert e.value.code == 2 and not (tmp_path / "typo.png").exists()

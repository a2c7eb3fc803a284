"""runners.reproduce: the paper pipelines as commands (what `make table-*` runs)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from runners import reproduce


class Recorder:
    """A stand-in for the subprocess runner: records each command, fails the chosen ones."""

    def __init__(self, fail=(), on=None):
        self.calls, self.fail, self.on = [], fail, on or {}

    def __call__(self, argv, env):
        self.calls.append((tuple(argv), dict(env)))
        line = " ".join(argv)
        for needle, action in self.on.items():
            if needle in line:
                action()
        return 1 if any(f in line for f in self.fail) else 0

    def lines(self):
        return [" ".join(a) for a, _ in self.calls]


def test_trsqp_pipeline_runs_the_papers_rows_then_this_projects_options(tmp_path):
    rec = Recorder()
    rc = reproduce.main(
        ["trsqp", "--scale", "cpu", "--results", str(tmp_path), "--set", "FIG1_VALUES=-30,30"]
        + ["--", "seed=1"],
        run=rec,
    )
    assert rc == 0
    sweeps = [x for x in rec.lines() if x.startswith("runners.train -m")]
    default = [x for x in sweeps if "experiment=trsqp_default " in x]
    # the paper's rows first, then "trsqp + SOC (this project)" as its own sweep
    assert len(default) == 2 and "second_order_correction" not in default[0]
    assert "progress=false method=trsqp method.second_order_correction=true" in default[1]
    assert all(x.endswith("seed=1") for x in sweeps)  # overrides after -- go to every run
    assert all(f"results_dir={tmp_path} " in x for x in sweeps)  # runs write where tables read
    # FIG1_VALUES goes to the β/α panels, not to τ (FIG1_TAU_VALUES, empty: the paper's 5)
    beta = next(x for x in sweeps if "trsqp_fig1_transport_beta" in x)
    tau = next(x for x in sweeps if "trsqp_fig1_reaction_diffusion_tau" in x)
    assert "problem.beta=-30,30" in beta and "problem.tau" not in tau
    # every sweep is followed (eventually) by its table, into the results root given
    assert sum(x.startswith("runners.tables") for x in rec.lines()) == 9
    assert all(str(tmp_path) in x for x in rec.lines() if x.startswith("runners.tables"))


def test_no_options_no_extra_rows_and_figure_6_waits_for_its_sweep(tmp_path):
    fig6 = tmp_path / "sweeps" / "trsqp_fig1_reaction_alpha-smoke"
    rec = Recorder(
        on={
            "experiment=trsqp_fig1_reaction_alpha ": lambda: fig6.mkdir(parents=True, exist_ok=True)
        }
    )
    args = ["trsqp", "--results", str(tmp_path), "--set", "trsqp_options="]
    assert reproduce.main(args + ["--set", "trsqp_fig1=reaction_alpha"], run=rec) == 0
    lines = rec.lines()
    assert not any("second_order_correction" in x for x in lines)
    # the Figure 6 folder did not exist when the pipeline was planned: it is checked when
    # its turn comes, after the Figure 1 sweep made it
    assert any("trsqp_fig6_reaction" in x for x in lines)
    rec2 = Recorder(fail=["trsqp_fig6"])
    args[2] = str(tmp_path / "elsewhere")
    assert reproduce.main(args + ["--set", "trsqp_fig1="], run=rec2) == 0
    assert not any("trsqp_fig6_reaction" in x for x in rec2.lines())  # skipped: no sweep


def test_a_failing_sweep_stops_its_pipeline(tmp_path, capsys):
    rec = Recorder(fail=["experiment=trsqp_hessian"])
    assert reproduce.main(["trsqp", "--results", str(tmp_path)], run=rec) == 1
    assert "experiment=trsqp_hessian" in rec.lines()[-1]  # nothing ran after it
    assert "failed (exit 1)" in capsys.readouterr().out


def test_all_times_each_paper_goes_on_after_a_failure_and_writes_the_report(tmp_path):
    rec = Recorder(fail=["experiment=neural_dae_tank"])
    rc = reproduce.main(["all", "--scale", "smoke", "--results", str(tmp_path)], run=rec)
    assert rc == 1  # one pipeline failed: non-zero, but every other pipeline ran
    lines = rec.lines()
    assert any("experiment=sqp_momentum_darcy" in x for x in lines)
    # the SQP-momentum summary adds each run's median over its last 10% of logged iterations
    assert any(
        x.startswith("runners.tables") and "sqp_momentum-smoke --tail 0.1" in x for x in lines
    )
    assert lines[-1].startswith("runners.report --scale smoke")
    times = (tmp_path / "reproduce-smoke-times.txt").read_text().split("\n")
    assert [t.split()[0] for t in times if t] == [
        "table-lisco",
        "table-neural-dae",
        "table-sqp-momentum",
        "table-trsqp",
    ]
    assert [t.split()[2] for t in times if t] == ["0", "1", "0", "0"]
    # smoke: 2 vectorized seeds, no Figure 1 sweeps, joblib for the PDE/SQP/DAE sweeps only,
    # single-threaded XLA for every run
    assert any("seeds=2" in x for x in lines) and not any("trsqp_fig1" in x for x in lines)
    lisco = next(x for x in lines if "experiment=lisco " in x)
    assert "problem.instance=0,1" in lisco and "joblib" not in lisco
    assert all(env["XLA_FLAGS"] == "--xla_cpu_multi_thread_eigen=false" for _, env in rec.calls)
    # a setting given on the command line wins over the smoke defaults
    rec2 = Recorder()
    args = ["all", "--scale", "smoke", "--results", str(tmp_path), "--set", "SQP_SEEDS=3"]
    assert reproduce.main(args, run=rec2) == 0
    assert any("seeds=3" in x for x in rec2.lines())


def test_lisco_500steps_reevaluates_each_finished_lisco_run(tmp_path):
    sweep = tmp_path / "sweeps" / "lisco-cpu"
    done = (
        "experiment=lisco,method.predictor=True,problem.instance=3,problem=nonconvex_qp,scale=cpu"
    )
    (sweep / done).mkdir(parents=True)
    (sweep / done / "metrics.json").write_text(json.dumps({"status": "converged"}))
    (sweep / done.replace("instance=3", "instance=4")).mkdir()  # unfinished: skipped
    rec = Recorder()
    assert (
        reproduce.main(["lisco-500steps", "--scale", "cpu", "--results", str(tmp_path)], rec) == 0
    )
    run, table = rec.lines()
    assert "problem=nonconvex_qp method.predictor=true problem.instance=3" in run
    assert f"method.checkpoint='{sweep / done}'" in run and "++method.stop_tol=0" in run
    assert table.endswith(f"--out {tmp_path / 'tables' / 'lisco_500steps-cpu'}")


def test_lisco_eval_reevaluates_trained_networks_once_beside_the_baselines(tmp_path):
    """lisco-eval: each finished lisco run's networks evaluated again (no training) at
    today's defaults, the baselines swept into the same folder, one table; a network
    evaluated there already is not evaluated again (the pipeline resumes)."""
    sweep = tmp_path / "sweeps" / "lisco-cpu"
    names = [
        f"experiment=lisco,method.predictor=True,problem.instance={i},problem=qp,scale=cpu"
        for i in (0, 1)
    ]
    for n in names:
        (sweep / n).mkdir(parents=True)
        (sweep / n / "metrics.json").write_text(json.dumps({"status": "converged"}))
    args = ["lisco-eval", "--scale", "cpu", "--results", str(tmp_path)]
    rec = Recorder()
    assert reproduce.main(args, rec) == 0
    lines = rec.lines()
    evals = [x for x in lines if "method.train=false" in x]
    assert len(evals) == 2 and all("stop_tol" not in x for x in evals)
    out = tmp_path / "sweeps" / "lisco_eval-cpu"
    assert all(f"results_dir={out}" in x for x in evals)
    base = [x for x in lines if "experiment=lisco_baselines" in x]
    assert len(base) == 3 and all("sweep_name=lisco_eval-cpu" in x for x in base)
    assert lines[-1].endswith(f"--out {tmp_path / 'tables' / 'lisco_eval-cpu'}")
    # instance 0 evaluated already: only instance 1 runs again
    done = out / "runs" / "qp" / "lisco" / "2026-12-06_00-00-00"
    done.mkdir(parents=True)
    (done / "metrics.json").write_text(json.dumps({"method.checkpoint": str(sweep / names[0])}))
    rec = Recorder()
    assert reproduce.main(args, rec) == 0
    evals = [x for x in rec.lines() if "method.train=false" in x]
    assert len(evals) == 1 and "problem.instance=1" in evals[0]


def test_a_bad_setting_is_one_line_exit_2_and_nothing_runs(tmp_path):
    cmd = [sys.executable, "-m", "runners.reproduce", "lisco", "--results", str(tmp_path)]
    p = subprocess.run(cmd + ["--set", "SQP_SEDS=3"], capture_output=True, text=True)
    assert p.returncode == 2
    err = p.stderr.strip().splitlines()
    assert len(err) == 1 and "SQP_SEDS" in err[0] and "sqp_seeds" in err[0]
    assert not any(tmp_path.iterdir())
    p = subprocess.run(cmd[:3] + ["lisko"], capture_output=True, text=True)
    assert p.returncode == 2 and "invalid choice: 'lisko'" in p.stderr and "lisco" in p.stderr


@pytest.mark.parametrize("name", sorted(reproduce.PIPELINES))
def test_every_pipeline_names_existing_experiments(name, tmp_path):
    """A typo in a pipeline (an experiment that has no config) fails here, not hours in."""
    rec = Recorder()
    assert reproduce.main([name, "--results", str(tmp_path), "--dry-run"], run=rec) == 0
    assert rec.calls == []  # a dry run runs nothing
    conf = Path(reproduce.__file__).resolve().parent.parent / "conf" / "experiment"
    steps = reproduce.PIPELINES[name][0](reproduce.Context("smoke", dict(reproduce.SETTINGS), ()))
    for s in steps:
        for a in s.argv:
            if a.startswith("experiment="):
                assert (conf / f"{a.split('=', 1)[1]}.yaml").is_file(), a


def test_every_baseline_gap_row_composes_before_its_sweep_starts():
    """Hydra composes a multirun's command line once before its jobs, with the default
    method (trsqp): an override of a key that only penalty and auglag have must be ``++``
    or the row fails before any run (the SciPy rows did, 2026-12-02)."""
    from hydra import compose, initialize_config_dir

    import runners.setup  # noqa: F401  (stores the dataclass defaults the configs include)

    conf = Path(reproduce.__file__).resolve().parent.parent / "conf"
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        for tag, extra in reproduce.GAP_ROWS:
            argv = ["experiment=trsqp_baseline_gap", "problem=reaction", f"tag='{tag}'", *extra]
            cfg = compose("train", overrides=argv)
            assert cfg.tag == tag

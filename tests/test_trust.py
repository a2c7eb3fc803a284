"""Results you can trust: tables never merge configurations, failed runs are counted and
never averaged, unreadable files are named and skipped, checkpoints that cannot be read are
moved aside, one process per run folder, paths and solvers checked before any work, stop
signals handled from the first instruction.

In-process runs (``runners.train.run`` on a composed config, tiny networks) where a test
needs real records; subprocesses where the command line itself is the subject.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_scale import TINY_SPRING, _stop_after, compose_cfg, run

from runners.tables import collect, experiment_table, mixed_cells, summarize

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".jax_cache"
SPRING_SHORT = [a for a in TINY_SPRING if not a.startswith("method.epochs")] + ["method.epochs=10"]


def cli(module, *args, timeout=300):
    env = {**os.environ, "HCSML_JAX_CACHE": str(CACHE)}
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


# --- 1. tables group seeds of one configuration only ------------------------------------


@pytest.fixture(scope="module")
def three_configs(tmp_path_factory):
    """Spring / sqp_adam, seed 0, three configurations that differ in one key each (one
    null vs set, one budget), plus seed 1 of the plain one."""
    tmp = tmp_path_factory.mktemp("configs")
    recs = {
        name: run(tmp, tmp / name, *SPRING_SHORT, *extra)
        for name, extra in (
            ("plain", ["seed=0"]),
            ("plain1", ["seed=1"]),
            ("batch", ["seed=0", "method.batch_fraction=0.25"]),
            ("budget", ["seed=0", "budget.max_iter=5"]),
        )
    }
    return tmp, recs


def test_tables_keep_configurations_apart(three_configs):
    tmp, recs = three_configs
    assert recs["budget"]["iterations"] == 5 and recs["plain"]["iterations"] == 20
    assert recs["plain"]["group_hash"] == recs["plain1"]["group_hash"]  # seeds of one config
    assert len({recs[k]["group_hash"] for k in ("plain", "batch", "budget")}) == 3
    num, shown = summarize(collect(tmp))
    assert len(num) == 3, shown.to_markdown()
    # the keys that differ are columns: null vs set, and the budget
    assert {"method.batch_fraction", "budget.max_iter"} <= set(num.columns)
    plain = num[(num["method.batch_fraction"] == "None") & (num["budget.max_iter"] == "3000.0")]
    assert plain["seeds"].tolist() == [2]
    mean = np.mean([recs["plain"]["test_mse"], recs["plain1"]["test_mse"]])
    assert plain["test_mse_mean"].iloc[0] == pytest.approx(mean, rel=1e-12)
    short = num[num["budget.max_iter"] == "5.0"]
    assert short["seeds"].tolist() == [1] and short["iterations_mean"].tolist() == [5]


def test_a_record_and_its_table_name_the_cpus_the_run_could_use(three_configs):
    """XLA:CPU splits a full reduction among as many threads as the process has CPUs, so the
    same run pinned to one core rounds differently from one on two: the record says how
    many it had (its affinity, not the machine's count), and the table's provenance too."""
    from runners.plumbing import usable_cpus
    from runners.tables import provenance

    tmp, recs = three_configs
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert usable_cpus() == n and all(r["cpus"] == n for r in recs.values())
    assert f"CPUs per run {n};" in provenance(collect(tmp), tmp)
    if n > 1 and shutil.which("taskset"):  # pinned to one core, a process counts one
        one = subprocess.run(
            ["taskset", "-c", str(min(os.sched_getaffinity(0))), sys.executable, "-c",
             "from runners.plumbing import usable_cpus; print(usable_cpus())"],
            cwd=ROOT, capture_output=True, text=True, check=True,
        )  # fmt: skip
        assert one.stdout.strip() == "1"


def test_a_record_names_the_commit_its_process_imported_not_the_one_at_its_end(tmp_path):
    """A paper-budget run takes hours; a commit made meanwhile must not be written into its
    record. ``runners.train`` asks for the commit on import and keeps it. A stand-in ``git``
    on PATH answers from a file, which changes after the import."""
    head = tmp_path / "head"
    fake = tmp_path / "bin" / "git"
    fake.parent.mkdir()
    fake.write_text(f'#!/bin/sh\n[ "$1" = rev-parse ] && cat {head}\nexit 0\n')
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{fake.parent}:{os.environ['PATH']}"}

    def commit(before: str) -> str:
        head.write_text("aaaaaaaaaaaa\n")
        code = f"{before}; open({str(head)!r}, 'w').write('bbbbbbbbbbbb'); " + (
            "from runners.io import git_commit; print(git_commit())"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
        )
        assert out.returncode == 0, out.stderr
        return out.stdout.strip().splitlines()[-1]

    assert commit("import runners.train") == "aaaaaaaaaaaa"  # the code it imported
    assert commit("import runners.io") == "bbbbbbbbbbbb"  # the stand-in does change


def test_a_changed_results_file_does_not_make_the_code_dirty(tmp_path):
    """Regenerating a committed table changes a tracked file under results/, which is not
    code: the commit stays clean; a changed code file makes it "+dirty". (A copy of
    runners/io.py in a throwaway repository, so the checkout is not touched.)"""
    import importlib.util

    (tmp_path / "runners").mkdir()
    shutil.copy(ROOT / "runners" / "io.py", tmp_path / "runners" / "io.py")
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "table.md").write_text("| a |\n")
    (tmp_path / "code.py").write_text("x = 1\n")

    def git(*args):
        who = ["-c", "user.name=t", "-c", "user.email=t@example.org"]
        subprocess.run(["git", *who, *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    git("add", ".")
    git("commit", "-q", "-m", "init")

    def commit() -> str:
        spec = importlib.util.spec_from_file_location("io_copy", tmp_path / "runners" / "io.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)  # a fresh module: its own cache
        return module.git_commit()

    clean = commit()
    assert len(clean) == 12 and "dirty" not in clean
    (tmp_path / "results" / "table.md").write_text("| b |\n")
    assert commit() == clean
    (tmp_path / "code.py").write_text("x = 2\n")
    assert commit() == clean + "+dirty"


def test_records_without_a_group_hash_are_grouped_by_their_config(three_configs, tmp_path):
    """Records written before the group hash existed (and without budget.*): the recorded
    config still separates them; the one with budget.* is a configuration of its own."""
    tmp, recs = three_configs
    for name in ("plain", "plain1", "batch"):
        rec = {
            k: v for k, v in recs[name].items() if k != "group_hash" and not k.startswith("budget.")
        }
        (tmp_path / name).mkdir()
        (tmp_path / name / "metrics.json").write_text(json.dumps(rec))
    num, _ = summarize(collect(tmp_path))
    assert sorted(num["seeds"]) == [1, 2]


def test_an_experiment_cell_shows_one_configuration(three_configs, capsys):
    _, recs = three_configs
    df = pd.DataFrame([recs["plain"], recs["budget"]])
    spec = {
        "rows": ["problem"],
        "cols": ["method"],
        "metrics": ["test_mse"],
        "paper": {},
        "title": "spring",
    }
    long, _ = experiment_table(df, spec)
    newest = max((recs["plain"], recs["budget"]), key=lambda r: r["finished_at"])
    cell = long.iloc[0]
    assert cell.seeds == 1 and cell["mean"] == pytest.approx(newest["test_mse"])
    err = capsys.readouterr().err
    assert "spring: " in err  # the warning names the table
    assert "2 configurations" in err and "budget.max_iter" in err and "leaving out 1" in err
    # the table's own footnote says which configuration the cell shows and what was left out
    note = mixed_cells(long)
    assert note.startswith("_Cells with runs of several configurations:")
    assert "budget.max_iter=" in note and "leaving out 1" in note
    assert mixed_cells(experiment_table(pd.DataFrame([recs["plain"]]), spec)[0]) == ""


# --- 4. failed solves are counted, never averaged -----------------------------------------


def test_a_failed_run_is_counted_and_left_out_of_the_means(three_configs, tmp_path):
    _, recs = three_configs
    good = recs["plain"]
    for name, status, mse in (
        ("ok", good["status"], good["test_mse"]),
        ("failed", "solver_failed: Invalid_Option", 1e9),
        ("odd", 7, 1e9),
    ):  # a non-string status is a failure too
        (tmp_path / name).mkdir()
        (tmp_path / name / "metrics.json").write_text(
            json.dumps({**good, "seed": len(name), "status": status, "test_mse": mse})
        )
    num, shown = summarize(collect(tmp_path))
    assert len(num) == 1
    assert num["seeds"].iloc[0] == 1 and num["failed"].iloc[0] == 2
    assert num["test_mse_mean"].iloc[0] == good["test_mse"]
    assert "solver_failed: Invalid_Option" in shown["status"].iloc[0]
    spec = {"rows": ["problem"], "cols": ["method"], "metrics": ["test_mse"], "paper": {}}
    long, table = experiment_table(collect(tmp_path), spec)
    assert long.iloc[0]["seeds"] == 1 and long.iloc[0]["failed"] == 2
    assert long.iloc[0]["mean"] == good["test_mse"]
    assert "[2 failed]" in table.iloc[0, 1]


def test_an_unavailable_linear_solver_is_refused_before_any_work(tmp_path):
    from methods.dae.collocation import available_linear_solvers
    from runners.setup import ConfigError, resolve

    if "ma57" in available_linear_solvers():
        pytest.skip("HSL is installed here: ma57 is available")
    assert available_linear_solvers()[0] == "mumps"  # MUMPS ships with CasADi's IPOPT
    with pytest.raises(
        ConfigError,
        match=r"^method.linear_solver: 'ma27' is not available "
        r"here .*; available: mumps",
    ):
        resolve(compose_cfg(tmp_path, "problem=qp", "method=ipopt", "method.linear_solver=ma27"))
    p = cli(
        "runners.train",
        "problem=tank_manifold",
        "method=collocation",
        "method.linear_solver=ma57",
        f"results_dir={tmp_path / 'r'}",
    )
    assert p.returncode == 2, p.stderr[-2000:]
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: method.linear_solver")
    assert "available: mumps" in lines[0]
    assert not (tmp_path / "r").exists()


# --- reading results never crashes ----------------------------------------------------------


def test_tables_name_and_count_unreadable_records(three_configs, tmp_path):
    _, recs = three_configs
    for name in ("good", "truncated"):
        (tmp_path / name).mkdir()
    (tmp_path / "good" / "metrics.json").write_text(json.dumps(recs["plain"]))
    text = json.dumps(recs["plain1"])
    (tmp_path / "truncated" / "metrics.json").write_text(text[: len(text) // 2])
    p = cli("runners.tables", "--results", str(tmp_path))
    assert p.returncode == 0, p.stderr
    warning = [line for line in p.stderr.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1 and str(tmp_path / "truncated" / "metrics.json") in warning[0]
    assert "1 runs averaged, 0 failed, 1 unreadable records skipped" in p.stdout
    assert pd.read_csv(tmp_path / "tables" / "summary.csv")["seeds"].tolist() == [1]


def test_a_rewritten_table_names_the_rows_and_runs_it_no_longer_has(three_configs, tmp_path):
    """Run folders deleted between writes of one table: each rewrite says which row lost
    runs, or which rows are gone, before it overwrites; a rewrite from the same runs says
    nothing."""
    from runners.tables import write_tables

    _, recs = three_configs
    for name in ("plain", "plain1", "batch"):
        (tmp_path / "runs" / name).mkdir(parents=True)
        (tmp_path / "runs" / name / "metrics.json").write_text(json.dumps(recs[name]))
    p = cli("runners.tables", "--results", str(tmp_path / "runs"), "--out", str(tmp_path))
    assert p.returncode == 0 and "warning" not in p.stderr, p.stderr
    again = cli("runners.tables", "--results", str(tmp_path / "runs"), "--out", str(tmp_path))
    assert "warning" not in again.stderr, again.stderr
    (tmp_path / "runs" / "plain1" / "metrics.json").unlink()  # one seed of a row
    p = cli("runners.tables", "--results", str(tmp_path / "runs"), "--out", str(tmp_path))
    assert p.returncode == 0, p.stderr
    warning = [line for line in p.stderr.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1 and "1 row(s)" in warning[0], p.stderr
    assert "method.batch_fraction=None" in warning[0] and "(2 runs -> 1)" in warning[0]
    assert pd.read_csv(tmp_path / "summary.csv")["seeds"].tolist() == [1, 1]
    # a whole row: the setting that told the rows apart is no longer a column
    (tmp_path / "runs" / "batch" / "metrics.json").unlink()
    p = cli("runners.tables", "--results", str(tmp_path / "runs"), "--out", str(tmp_path))
    warning = [line for line in p.stderr.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1 and "problem=spring, method=sqp_adam (2 runs -> 1)" in warning[0]
    assert pd.read_csv(tmp_path / "summary.csv")["seeds"].tolist() == [1]
    # in process too (the reproduce pipeline calls write_tables directly): nothing more lost
    assert write_tables(tmp_path / "runs", tmp_path) is not None


def test_a_rewritten_paper_table_names_its_cells_that_lost_runs(tmp_path):
    """The long experiment tables (a line per cell and metric): a cell counts its most runs
    over its metrics, and the cells that lost runs are named by row and column."""
    from runners.tables import lost_rows

    def long(cells):
        return pd.DataFrame(
            [
                {
                    "row": r,
                    "name": r,
                    "col": c,
                    "metric": m,
                    "mean": 1.0,
                    "std": None,
                    "seeds": n if m == "abs_error" else min(n, 1),
                    "failed": 0,
                }
                for (r, c), n in cells.items()
                for m in ("abs_error", "iterations")
            ]
        )

    before = {("trsqp", "reaction"): 3, ("penalty", "reaction"): 2, ("auglag", "wave"): 1}
    long(before).to_csv(tmp_path / "t.csv", index=False)
    assert lost_rows(tmp_path / "t.csv", long(before), ["row", "col"]) == []
    after = {("trsqp", "reaction"): 3, ("penalty", "reaction"): 1}
    assert lost_rows(tmp_path / "t.csv", long(after), ["row", "col"]) == [
        "row=auglag, col=wave (1 runs -> 0)",
        "row=penalty, col=reaction (2 runs -> 1)",
    ]
    assert lost_rows(tmp_path / "absent.csv", long(after), ["row", "col"]) == []


# --- 2. checkpoints that cannot be read --------------------------------------------------


@pytest.mark.parametrize("damage", ["truncated", "missing"])
def test_an_unreadable_checkpoint_is_set_aside_and_the_run_finishes(
    tmp_path, monkeypatch, capsys, damage
):
    case = (*TINY_SPRING, "seed=2", "checkpoint_every=1")
    full = run(tmp_path, tmp_path / "full", *case)
    with monkeypatch.context() as m:
        _stop_after(m, "train", 2)
        with pytest.raises(SystemExit) as stop:
            run(tmp_path, tmp_path / "job", *case)
    assert stop.value.code == 143
    ckpt = tmp_path / "job" / "checkpoint"
    state = ckpt / json.loads((ckpt / "checkpoint.json").read_text())["state_file"]
    if damage == "truncated":
        state.write_bytes(state.read_bytes()[:100])
    else:
        state.unlink()
    capsys.readouterr()
    again = run(tmp_path, tmp_path / "job", *case)
    err = capsys.readouterr().err.strip().splitlines()
    notice = [line for line in err if line.startswith("checkpoint:")]
    assert len(notice) == 1 and state.name in notice[0] and "starts over" in notice[0]
    (aside,) = (tmp_path / "job").glob("checkpoint.unreadable-*")  # kept, not deleted
    assert (aside / state.name).exists() == (damage == "truncated")
    assert not ckpt.exists()
    # started over: the same parameters, bit for bit, as the uninterrupted run
    assert again["status"] == full["status"] and again["iterations"] == full["iterations"]
    assert (tmp_path / "job" / "params.msgpack").read_bytes() == (
        tmp_path / "full" / "params.msgpack"
    ).read_bytes()


def test_a_checkpoint_record_that_does_not_parse_is_said(tmp_path, capsys):
    (tmp_path / "job" / "checkpoint").mkdir(parents=True)
    (tmp_path / "job" / "checkpoint" / "checkpoint.json").write_text('{"phase": "tr')
    rec = run(tmp_path, tmp_path / "job", *SPRING_SHORT)
    assert rec["status"] in ("converged", "max_iter")
    err = capsys.readouterr().err
    assert "checkpoint: cannot use" in err and "checkpoint.json" in err
    assert list((tmp_path / "job").glob("checkpoint.unreadable-*"))


# --- 3. one process per run folder ---------------------------------------------------------


def test_a_run_held_by_a_live_process_is_skipped(tmp_path, capsys):
    from runners.lock import RunLock

    out = tmp_path / "job"
    with RunLock(out, "x") as lock:
        assert lock.acquire() is None
        assert run(tmp_path, out, *SPRING_SHORT) is None
    err = capsys.readouterr().err
    assert f"skipping {out}: the same run is in progress (pid {os.getpid()}" in err
    assert not (out / "metrics.json").exists()


def test_a_stale_lock_is_taken_over(tmp_path, capsys):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    out = tmp_path / "job"
    out.mkdir()
    (out / "run.lock").write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname()}))
    rec = run(tmp_path, out, *SPRING_SHORT)
    assert rec["status"] in ("converged", "max_iter") and not (out / "run.lock").exists()
    assert (
        f"left by pid {dead.pid} on {socket.gethostname()}, which is gone"
        in capsys.readouterr().err
    )


def test_two_launches_of_one_sweep_train_it_once(tmp_path):
    """The first launch is paused (SIGSTOP) once it holds the job's lock, so the second one
    surely meets it in progress; resumed, the first finishes the job alone."""
    args = ["-m", *SPRING_SHORT, "seed=0", f"results_dir={tmp_path}"]
    env = {**os.environ, "HCSML_JAX_CACHE": str(CACHE)}
    first = subprocess.Popen(
        [sys.executable, "-m", "runners.train", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.time() + 120
        while not list(tmp_path.rglob("run.lock")) and time.time() < deadline:
            time.sleep(0.05)
        (lock,) = tmp_path.rglob("run.lock")
        os.kill(first.pid, signal.SIGSTOP)
        second = cli("runners.train", *args)
    finally:
        os.kill(first.pid, signal.SIGCONT)
    out, err = first.communicate(timeout=300)
    assert first.returncode == 0 and "test_mse" in out, err[-2000:]
    assert second.returncode == 0 and "test_mse" not in second.stdout
    notice = [line for line in second.stderr.splitlines() if line.startswith("skipping")]
    assert len(notice) == 1 and f"in progress (pid {first.pid} " in notice[0]
    assert str(lock.parent) in notice[0]
    (m,) = tmp_path.rglob("metrics.json")
    hist = pd.read_csv(m.parent / "history.csv")
    assert hist["iteration"].tolist() == sorted(set(hist["iteration"]))  # no gap, no repeat
    assert hist["iteration"].iloc[-1] == json.loads(m.read_text())["iterations"]
    assert not list(tmp_path.rglob("run.lock"))  # released


# --- 5. data files ----------------------------------------------------------------------------


def test_a_sweep_name_cannot_leave_the_results_folder(tmp_path):
    from runners.setup import ConfigError, check_sweep_name

    for bad in ("..", "a/../../b", "/tmp/x", "~/x", "", "a//b", None):
        with pytest.raises(ConfigError, match="^sweep_name: must be a folder name"):
            check_sweep_name(bad)
    for good in ("default", "trsqp_default-paper", "paper/trsqp"):
        check_sweep_name(good)
    p = cli("runners.train", "-m", "sweep_name=../x", f"results_dir={tmp_path / 'results'}")
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: sweep_name:"), p.stderr
    assert not any(tmp_path.iterdir())


def test_a_results_dir_that_is_a_file_is_refused(tmp_path):
    from hydra import compose, initialize_config_dir

    from runners.setup import ConfigError, resolve

    def cfg(*overrides):
        with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
            return compose("train", overrides=[*SPRING_SHORT, *overrides])

    (tmp_path / "file").write_text("")
    for path in (tmp_path / "file", tmp_path / "file" / "results"):
        with pytest.raises(ConfigError, match="^results_dir: .* is a file, not a folder"):
            resolve(cfg(f"results_dir={path}"))
    with pytest.raises(ConfigError, match="^jax_cache_dir: .* is a file"):
        resolve(cfg(f"results_dir={tmp_path}", f"jax_cache_dir={tmp_path / 'file'}"))
    resolve(cfg(f"results_dir={tmp_path / 'new' / 'r'}", "jax_cache_dir="))
    assert sorted(x.name for x in tmp_path.iterdir()) == ["file"]  # nothing made


def test_a_missing_lisco_checkpoint_is_refused_before_any_work(tmp_path):
    """The check runs while the config is validated (runners.train checks every job before
    Hydra makes a folder), not after the reference solves."""
    from runners.setup import ConfigError, resolve

    with pytest.raises(ConfigError, match="^method.checkpoint: no such folder"):
        resolve(
            compose_cfg(
                tmp_path,
                "problem=qp",
                "method=lisco",
                "method.train=false",
                f"method.checkpoint={tmp_path / 'nowhere'}",
            )
        )
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="^method.checkpoint: no networks.json"):
        resolve(
            compose_cfg(
                tmp_path,
                "problem=qp",
                "method=lisco",
                "method.train=false",
                f"method.checkpoint={tmp_path / 'empty'}",
            )
        )
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize("damage", ["truncated_solver", "shapes", "json", "instance"])
def test_damaged_lisco_networks_are_a_one_line_error(tmp_path, damage):
    import jax
    import jax.numpy as jnp

    from methods.parametric.lisco import init_networks
    from runners.parametric import _save_networks, trained_networks
    from runners.setup import ConfigError, resolve

    trained = tmp_path / "trained"
    base = ["problem=qp", "method=lisco", "method.hidden=[16]"]
    cfg = compose_cfg(tmp_path, *base)
    setup = resolve(cfg)
    mc, dtype = setup.method_cfg, jnp.dtype(setup.precision)
    pred, sol = init_networks(setup.problem, mc, dtype, jax.random.PRNGKey(0))
    if damage == "shapes":  # networks of another width under a networks.json that says 16
        other = resolve(compose_cfg(tmp_path, "problem=qp", "method=lisco", "method.hidden=[8]"))
        pred, sol = init_networks(other.problem, other.method_cfg, dtype, jax.random.PRNGKey(0))
    _save_networks(trained, pred, sol, mc, setup.problem, dtype)
    if damage == "truncated_solver":
        blob = (trained / "solver.msgpack").read_bytes()
        (trained / "solver.msgpack").write_bytes(blob[: len(blob) // 3])
    elif damage == "json":
        (trained / "networks.json").write_text("[1, 2")
    other = ["problem.instance=1"] if damage == "instance" else []  # trained on instance 0
    evaluate = compose_cfg(
        tmp_path, *base, *other, "method.train=false", f"method.checkpoint={trained}"
    )
    with pytest.raises(ConfigError) as e:
        ev_setup = resolve(evaluate)  # networks.json: read while the config is validated
        trained_networks(evaluate, ev_setup)  # the arrays: before the reference solves
    msg = str(e.value)
    assert msg.startswith("method.checkpoint:") and "\n" not in msg
    assert {
        "truncated_solver": "not a readable solver network",
        "shapes": "other shapes",
        "json": "not a readable networks.json",
        "instance": "have instance=0, this run has 1",
    }[damage] in msg


def test_lisco_solver_input_takes_the_natural_log_and_old_networks_keep_theirs(tmp_path):
    """Eq. (10)'s log‖F‖ is the natural log (the authors' code's torch.log); log10 is this
    project's earlier default, labelled in tables. Networks saved before the key existed ran
    log10: evaluating them at the default is a one-line error naming the setting to use."""
    import jax.numpy as jnp
    import numpy as np

    from methods.parametric.lisco import init_networks, solver_features
    from runners.parametric import _save_networks
    from runners.setup import ConfigError, resolve
    from runners.tables import variant

    x, f = jnp.zeros((2, 3)), jnp.array([[3.0, 4.0], [0.0, 1e-3]])
    norms = np.array([5.0, 1e-3])
    np.testing.assert_allclose(solver_features(x, f)[0][:, -1], np.log(norms), rtol=1e-6)
    old = solver_features(x, f, "log10")[0][:, -1]
    np.testing.assert_allclose(old, np.log10(norms), rtol=1e-6)
    rec = {"method": "lisco", "method.init": "torch", "method.solver_zero_init": False}
    rec |= {"method.convexification": "trial", "method.predictor_convexification": True}
    assert variant({**rec, "method.input_log": "ln"}) == "lisco"
    assert variant(rec) == (
        "lisco + log10 of ‖F‖ in the solver input (this project's earlier default)"
    )
    import jax

    trained = tmp_path / "trained"
    base = ["problem=qp", "method=lisco", "method.hidden=[16]"]
    setup = resolve(compose_cfg(tmp_path, *base))
    mc, dtype = setup.method_cfg, jnp.dtype(setup.precision)
    pred, sol = init_networks(setup.problem, mc, dtype, jax.random.PRNGKey(0))
    _save_networks(trained, pred, sol, mc, setup.problem, dtype)
    meta = json.loads((trained / "networks.json").read_text())
    assert meta["input_log"] == "ln"
    del meta["input_log"]  # as saved before the key existed
    (trained / "networks.json").write_text(json.dumps(meta))
    evaluate = [*base, "method.train=false", f"method.checkpoint={trained}"]
    with pytest.raises(ConfigError, match=r"^method.input_log: .*set method.input_log=log10\)$"):
        resolve(compose_cfg(tmp_path, *evaluate))
    resolve(compose_cfg(tmp_path, *evaluate, "method.input_log=log10"))


# --- stop signals from the first instruction ---------------------------------------------


def test_a_stop_signal_in_the_first_second_leaves_a_clean_message(tmp_path):
    env = {**os.environ, "HCSML_JAX_CACHE": str(CACHE)}
    p = subprocess.Popen(
        [sys.executable, "-m", "runners.train", *SPRING_SHORT, f"results_dir={tmp_path / 'r'}"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(1.0)  # still importing (several seconds)
    p.send_signal(signal.SIGUSR1)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 143, err
    assert err.strip().splitlines()[-1].startswith("interrupted by SIGUSR1")
    assert "Traceback" not in err
    assert not (tmp_path / "r").exists()  # no orphan run folder


def test_an_experiments_own_sweep_is_validated_before_any_run():
    """``-m experiment=<name>`` runs the jobs of the experiment's sweeper params: they are
    the jobs validated (a key only the swept methods have passes; a bad value fails)."""
    from runners.setup import ConfigError
    from runners.train import prevalidate

    prevalidate(
        ["-m", "experiment=trsqp_baseline_gap", "problem=reaction", "++method.linesearch=zoom"]
    )  # penalty and auglag have it; trsqp does not
    with pytest.raises(ConfigError, match="^method.linesearch"):
        prevalidate(
            ["-m", "experiment=trsqp_baseline_gap", "problem=reaction", "++method.linesearch=wolfe"]
        )


def test_a_rerun_moves_the_earlier_record_aside_before_it_writes(three_configs, tmp_path, capsys):
    """A folder never pairs one run's metrics.json with another run's history: a run that
    starts where an earlier record lies (another configuration, or resume=false) retires
    that record first, so an interrupted rerun leaves no record its files contradict."""
    _, recs = three_configs
    job = tmp_path / "job"
    job.mkdir()
    (job / "metrics.json").write_text(json.dumps(recs["batch"]))  # another configuration
    new = run(tmp_path, job, *SPRING_SHORT, "seed=0")
    (old,) = job.glob("metrics.replaced-*.json")
    assert json.loads(old.read_text())["config_hash"] == recs["batch"]["config_hash"]
    assert json.loads((job / "metrics.json").read_text())["config_hash"] == new["config_hash"]
    assert new["config_hash"] != recs["batch"]["config_hash"]
    assert "is of an earlier run; moved aside" in capsys.readouterr().err
    assert len(collect(tmp_path)) == 1  # the retired record is not a run of the tables


def test_numeric_rows_of_an_experiment_table_sort_by_value(three_configs, tmp_path):
    """Figure 3's N = 100, 200, 500, 1000 come out in that order, not as text (1000 < 200)."""
    _, recs = three_configs
    good = recs["plain"]
    for n in (1000, 200, 100, 500):
        (tmp_path / str(n)).mkdir()
        (tmp_path / str(n) / "metrics.json").write_text(
            json.dumps({**good, "problem.n_data": n, "test_mse": float(n)})
        )
    spec = {"rows": ["problem", "problem.n_data"], "cols": ["method"], "metrics": ["test_mse"]}
    long, table = experiment_table(collect(tmp_path), spec)
    assert [float(r.split("/")[1]) for r in table.iloc[:, 0]] == [100, 200, 500, 1000]
    assert list(long["mean"]) == [100.0, 200.0, 500.0, 1000.0]


def test_the_verdict_lines_name_whole_numbers_as_written(three_configs, tmp_path):
    """A Figure 1 row α = -50 reads "-50" in the "against the paper" line, not "-50.0"
    (ours 0.03 / paper 0.01: 3× worse); α = 2.5 keeps its decimals (0.05 / 0.5: better)."""
    from runners.tables import against_paper

    _, recs = three_configs
    for a, err in ((-50, 0.03), (2.5, 0.05)):
        (tmp_path / str(a)).mkdir()
        (tmp_path / str(a) / "metrics.json").write_text(
            json.dumps({**recs["plain"], "problem.alpha": a, "test_mse": err})
        )
    spec = {
        "rows": ["problem.alpha"],
        "cols": ["method"],
        "metrics": ["test_mse"],
        "paper": {
            "-50.0": {recs["plain"]["method"]: [0.01]},
            "2.5": {recs["plain"]["method"]: [0.5]},
        },
    }
    line = against_paper(experiment_table(collect(tmp_path), spec)[0])
    assert "worse: -50 (" in line and "3×" in line and "-50.0" not in line
    assert "better: 2.5 (" in line
    # a row the experiment names (row_names) reads by that name, as in the table above it
    named = {**spec, "row_names": {"-50.0": "α = −50 (named)"}}
    line = against_paper(experiment_table(collect(tmp_path), named)[0])
    assert "worse: α = −50 (named) (" in line and "better: 2.5 (" in line
    # reference values that are not the paper's say whose they are (``paper_source``)
    line = against_paper(experiment_table(collect(tmp_path), spec)[0], "a reproduction")
    assert "against a reproduction (ours / theirs): " in line and "the paper" not in line
    from runners.tables import shown_label

    assert shown_label("reaction/100.0") == "reaction/100"
    assert shown_label("sr1/trsqp") == "sr1/trsqp"


def test_the_papers_curves_of_a_sweep_figure_come_from_its_experiment_table():
    """Figure 1 (one problem per sweep) and Figure 3 (rows problem/N) give the paper's
    values, sorted by x, exactly as the experiment's table lists them; a table without
    method columns is refused in one line."""
    from runners.figures import paper_curves
    from runners.tables import experiment_spec

    fig1 = paper_curves("trsqp_fig1_reaction_alpha", "problem.alpha")
    paper = experiment_spec("trsqp_fig1_reaction_alpha")["paper"]
    assert list(fig1) == [None] and set(fig1[None]) == {"trsqp", "penalty", "auglag"}
    xs = [p[0] for p in fig1[None]["trsqp"]]
    assert xs == sorted(xs) and len(xs) == 12
    assert fig1[None]["auglag"][xs.index(30.0)][1:] == tuple(paper["30.0"]["auglag"])
    fig3 = paper_curves("trsqp_fig3_n", "problem.n_data")
    assert set(fig3) == {"transport", "reaction", "reaction_diffusion"}
    assert [p[0] for p in fig3["reaction"]["trsqp"]] == [100.0, 200.0, 500.0, 1000.0]
    with pytest.raises(SystemExit, match="no paper values by method.mu"):
        paper_curves("trsqp_pinn", "method.mu")


def test_a_run_recorded_before_the_line_search_option_is_labelled_with_what_it_ran():
    """on_linesearch_failure's default became the authors' ``stop``; a penalty run recorded
    before the option existed took optax's step, and its table column says so. SciPy's
    L-BFGS-B always stops, so its runs carry no such label."""
    from runners.tables import variant

    old = {"method": "penalty", "method.solver": "optax", "method.max_linesearch_steps": 30}
    assert variant(old) == (
        "penalty + step on failed search + 30 reductions (this project's earlier default)"
    )
    new = {**old, "method.on_linesearch_failure": "stop", "method.max_linesearch_steps": 100}
    assert variant(new) == "penalty"
    assert variant({**old, "method.on_linesearch_failure": "step"}) == variant(old)
    assert (
        variant({**old, "method": "auglag", "method.solver": "scipy"})
        == "auglag + SciPy L-BFGS-B (authors' code)"
    )
    # trsqp stopped at the first KKT point until 2026-12-05; Algorithm 3 has no such stop
    # before 2026-12-05 trsqp also stopped at the first KKT point and took η = 1 at
    # roundoff-level Pred; Algorithm 3 does neither
    # and until 2026-12-06 it solved its subproblems with the textbook dogleg and a CG test
    # on ‖Pr‖ with at most 500 iterations (recorded); the authors' code uses SciPy's
    assert variant({"method": "trsqp", "method.cg_maxiter": 500}) == (
        "trsqp + KKT stop + η = 1 at roundoff Pred + textbook dogleg + CG test on ‖Pr‖"
        " + CG cap 500 (this project's earlier default)"
    )
    today = {"method.kkt_stop": False, "method.tiny_pred_exact": False}
    today |= {"method.normal_step": "modified_dogleg", "method.cg_test": "squared"}
    assert variant({"method": "trsqp", **today, "method.cg_maxiter": None}) == "trsqp"
    assert variant({"method": "trsqp", **today, "method.secant_multiplier": "current"}) == (
        "trsqp + textbook secant (authors' code)"
    )


def test_float64_on_a_problem_its_authors_ran_in_float32_is_labelled_this_projects():
    """precision=auto is float32 on trSQP-PINN's and the SQP-momentum problems (the authors'
    JAX / PyTorch code); a float64 run of one is this project's option and its row says so,
    also in records from before 2026-12-06 (when trSQP-PINN's default was float64). The
    tables' list of those problems is the registry's."""
    from problems import PROBLEMS, resolve_precision
    from runners.tables import FLOAT32_PROBLEMS, variant

    assert FLOAT32_PROBLEMS == {p for p in PROBLEMS if resolve_precision("auto", p) == "float32"}
    today = {"method": "trsqp", "method.kkt_stop": False, "method.tiny_pred_exact": False}
    today |= {"method.normal_step": "modified_dogleg", "method.cg_test": "squared"}
    rec = {**today, "problem": "reaction"}
    assert variant({**rec, "precision": "float32"}) == "trsqp"
    assert variant({**rec, "precision": "float64"}) == "trsqp + float64 (this project)"
    assert variant({**rec, "method": "auglag", "precision": "float64"}).endswith(
        " + float64 (this project)"
    )
    # the neural DAEs run float64 by default: nothing to label
    dae = {"method": "collocation", "problem": "population", "precision": "float64"}
    assert "float64" not in variant(dae)


def test_lisco_rows_name_whose_step_scale_and_start_they_ran():
    """LISCO's paper defaults (v1's ‖F‖ step, z₀ ~ N(0, 1)) carry no label, also in records
    from before the options existed; the authors' later code's and this project's do."""
    from runners.tables import variant

    base = {"method": "lisco", "method.convexification": "trial"}
    base["method.predictor_convexification"] = True
    base |= {"method.init": "torch", "method.solver_zero_init": False, "method.input_log": "ln"}
    assert variant(base) == "lisco"
    assert variant({**base, "method.step_scale": "v1", "method.start": "normal"}) == "lisco"
    assert variant({**base, "method.step_scale": "v2"}) == (
        "lisco + step 0.01·min(‖F‖, 1)·Π (authors' later code)"
    )
    assert variant({**base, "method.step_scale": "clamped", "method.start": "v2"}) == (
        "lisco + step min(‖F‖, 1)·Π (this project) + start y, λ ~ U[0, 1] (authors' later code)"
    )


def test_lisco_rows_name_this_projects_earlier_initialisation():
    """The default initialisation is the authors' code's (torch.nn.Linear); Flax's and the
    zero solver output layer are labelled, also in records made before the keys existed
    (they ran both)."""
    from runners.tables import variant

    base = {"method": "lisco", "method.convexification": "trial"}
    base["method.predictor_convexification"] = True
    base["method.input_log"] = "ln"
    earlier = "this project's earlier default"
    assert variant({**base, "method.init": "torch", "method.solver_zero_init": False}) == "lisco"
    assert variant(base) == f"lisco + Flax init + solver output layer at 0 ({earlier})"
    assert variant({**base, "method.solver_zero_init": False}) == f"lisco + Flax init ({earlier})"
    assert variant({**base, "method.init": "torch", "method.solver_zero_init": True}) == (
        f"lisco + solver output layer at 0 ({earlier})"
    )


def test_darcy_rows_name_the_fixed_labeled_samples_as_the_earlier_default():
    """Darcy's data term and constraint nodes follow the authors' code (the first 20% of
    each batch; distinct nodes); a fixed 20% of the samples and independent nodes are
    labelled, also in records made before the keys existed."""
    from runners.tables import variant

    base = {"method": "sqp_adam", "method.variant": "defossez", "problem": "darcy"}
    base |= {"method.normal_step_size": "scaled"}
    base |= {"problem.batch_terms": "all", "problem.init": "torch"}
    base |= {"problem.constraint_nodes": "distinct"}
    earlier = "this project's earlier default"
    assert variant({**base, "problem.data_samples": "batch"}) == "sqp_adam"
    assert variant(base) == f"sqp_adam + fixed 20% labeled samples ({earlier})"
    assert variant({**base, "problem.data_samples": "fixed"}) == variant(base)
    # the constraints' nodes: distinct (the authors' code) since 2026-12-05, independent before
    nodes = {**base, "problem.data_samples": "batch", "problem.constraint_nodes": "independent"}
    assert variant(nodes) == f"sqp_adam + independent constraint nodes ({earlier})"
    del nodes["problem.constraint_nodes"]
    assert variant(nodes) == f"sqp_adam + independent constraint nodes ({earlier})"
    spring = {**base, "problem": "spring", "problem.batch_terms": "residual"}
    assert variant(spring) == "sqp_adam"  # no such option there


def test_algorithm_3_rows_name_the_unit_normal_step_also_on_older_records():
    """Until 2026-12-06 sqp_adam's Algorithm 3 took the normal component in full (RHS
    [α_k m; c], θ ← θ + s); since then every form scales it (θ ← θ + α s, Algorithm 1's step
    and the authors' code). A record without the key is labelled with what it ran: the
    unit step for the Défossez form only; the predecessor's form always scaled it."""
    from runners.tables import variant

    old = {"method": "sqp_adam", "method.variant": "defossez", "problem": "spring"}
    old |= {"problem.batch_terms": "residual", "problem.init": "torch"}
    assert variant(old) == "sqp_adam + unit normal step (this project)"
    assert variant({**old, "method.normal_step_size": "unit"}) == variant(old)
    assert variant({**old, "method.normal_step_size": "scaled"}) == "sqp_adam"
    iclr = {**old, "method.variant": "iclr"}
    assert variant(iclr) == "sqp_adam + ICLR-2025 Adam form (predecessor)"
    assert variant({**old, "method": "adam_con"}) == "adam_con"
    unit = {**old, "method": "adam_con", "method.normal_step_size": "unit"}
    assert variant(unit) == "adam_con + unit normal step (this project)"
    # commit ae7b6ce recorded the option as normal_step: auto | full | scaled
    assert variant({**iclr, "method.normal_step": "full"}) == (
        "sqp_adam + ICLR-2025 Adam form (predecessor) + unit normal step (this project)"
    )
    assert variant({**old, "method.normal_step": "auto"}) == variant(old)
    assert variant({**old, "method.normal_step": "scaled"}) == "sqp_adam"


def test_a_table_names_the_runs_its_time_budget_stopped():
    """A cell cut by budget.time_s reads like a finished one; the table's note names it by
    its row and column and the iterations it reached."""
    import pandas as pd

    from runners.tables import time_capped

    df = pd.DataFrame(
        [
            {
                "problem": "transport",
                "method.hessian": "sr1",
                "variant": "trsqp",
                "status": "time_budget",
                "iterations": 10300,
            },
            {
                "problem": "reaction",
                "method.hessian": "sr1",
                "variant": "trsqp",
                "status": "max_iter",
                "iterations": 20000,
            },
            {
                "problem": "reaction",
                "problem.n_data": 100.0,
                "method.hessian": "identity",
                "variant": "trsqp",
                "status": "time_budget",
                "iterations": 900,
            },
        ]
    )
    note = time_capped(df, ["method.hessian", "variant", "problem"])
    assert "sr1/trsqp/transport at 10300 iterations" in note
    assert "identity/trsqp/reaction at 900 iterations" in note
    assert "sr1/trsqp/reaction" not in note
    assert time_capped(df[df["status"] == "max_iter"], ["problem"]) == ""


def test_a_table_names_the_runs_made_with_the_earlier_line_search():
    """A trsqp run pretrained before the line-search default changed keeps its 'trsqp'
    column (the method ran as the paper's); the table's note names it. A baseline whose
    variant says 'earlier default' is named only where the table does not show variants;
    a run without pretraining, or a cell rerun with today's default, is not named."""
    import pandas as pd

    from runners.tables import earlier_line_search, variant

    old_base = {"method": "penalty", "method.max_linesearch_steps": 30, "pretrain": True}
    df = pd.DataFrame(
        [
            {"problem": "reaction", "method": "trsqp", "variant": "trsqp", "pretrain": True},
            {"problem": "transport", "method": "trsqp", "variant": "trsqp", "pretrain": False},
            {
                "problem": "reaction",
                "method": "penalty",
                "variant": variant(old_base),
                "pretrain": True,
            },
            {
                "problem": "reaction_diffusion",
                "method": "trsqp",
                "variant": "trsqp",
                "pretrain": True,
                "pretraining.on_linesearch_failure": "stop",
                "pretraining.max_linesearch_steps": 100,
            },
            {
                "problem": "reaction_diffusion",
                "method": "trsqp",
                "variant": "trsqp",
                "pretrain": True,
                "pretraining.solver": "scipy",
            },
            {
                "problem": "reaction_diffusion",
                "method": "penalty",
                "variant": "penalty",
                "pretrain": True,
                "pretraining.linesearch": "zoom",
                "pretraining.on_linesearch_failure": "stop",
                "pretraining.max_linesearch_steps": 20,
            },
        ]
    )  # SciPy: its own line search; zoom with maxls 20: the run's own setting
    note = earlier_line_search(df, ["problem", "variant"])
    assert "in pretraining: reaction/trsqp._" in note and "transport" not in note
    assert "penalty" not in note and "reaction_diffusion" not in note
    by_method = earlier_line_search(df, ["problem", "method"])
    assert "in the method and pretraining: reaction/penalty" in by_method
    # another label of the same source ("this project's earlier default") is not a line
    # search: a LISCO run on DC3's test split, a trsqp run with the KKT stop
    others = pd.DataFrame(
        [
            {"problem": p, "method": m, "variant": variant(r), "pretrain": True}
            for p, m, r in (
                ("qp", "lisco", {"method": "lisco", "problem": "qp"}),
                ("reaction", "trsqp", {"method": "trsqp"}),
            )
        ]
    )
    others["pretraining.on_linesearch_failure"] = "stop"
    others["pretraining.max_linesearch_steps"] = 100
    assert all("earlier default" in v for v in others["variant"])
    assert earlier_line_search(others, ["problem", "method"]) == ""
    rerun = pd.concat(
        [
            df,
            pd.DataFrame(
                [
                    {
                        "problem": "reaction",
                        "method": "trsqp",
                        "variant": "trsqp",
                        "pretrain": True,
                        "pretraining.on_linesearch_failure": "stop",
                        "pretraining.max_linesearch_steps": 100,
                    }
                ]
            ),
        ],
        ignore_index=True,
    )
    assert earlier_line_search(rerun, ["problem", "variant"]) == ""  # the cell shows the rerun
    # recorded with the earlier values (between the option's arrival and the new default)
    step = pd.DataFrame(
        [
            {
                "problem": "transport",
                "method": "trsqp",
                "variant": "trsqp",
                "pretrain": True,
                "pretraining.on_linesearch_failure": "step",
                "pretraining.max_linesearch_steps": 30,
            }
        ]
    )
    assert "in pretraining: transport/trsqp" in earlier_line_search(step, ["problem", "variant"])


def test_a_table_names_the_single_solves_a_failed_line_search_ended():
    """A pinn solve that a failed search ended keeps θ, so it reads 'converged' like one
    stopped at roundoff; the table's note names it from inner_ends_linesearch. Baselines
    with rounds (a failed search ends a round, not the run) and solves ended by (A.1)'s
    tests are not named."""
    import pandas as pd

    from runners.tables import failed_search_end

    df = pd.DataFrame(
        [
            {
                "problem": "transport",
                "method": "pinn",
                "method.mu": 10.0,
                "status": "converged",
                "inner_ends_linesearch": 1,
                "inner_ends_ftol": 0,
            },
            {
                "problem": "reaction",
                "method": "pinn",
                "method.mu": 10.0,
                "status": "converged",
                "inner_ends_linesearch": 0,
                "inner_ends_ftol": 1,
            },
            {
                "problem": "reaction",
                "method": "penalty",
                "method.mu": None,
                "status": "converged",
                "inner_ends_linesearch": 2,
                "inner_ends_ftol": 98,
            },
            {
                "problem": "reaction_diffusion",
                "method": "pinn",
                "method.mu": 1.0,
                "status": "converged",
            },
        ]
    )  # recorded before inner_ends existed: not named
    note = failed_search_end(df, ["problem", "method.mu"])
    assert note.startswith("_Ended by a failed line search") and "transport/10" in note
    assert "reaction" not in note
    assert failed_search_end(df.drop(columns="inner_ends_linesearch"), ["problem"]) == ""


def test_a_table_sets_each_method_against_trsqp_with_the_papers_ratio():
    """``versus: trsqp``: per row, baseline / trsqp from our runs and from the paper's
    values, judged like the paper comparison (more than 2× better / worse)."""
    import pandas as pd

    from runners.tables import against_column

    rows = []
    for row, (t, pe, au), (pt, pp, pa) in [
        ("reaction/100", (0.02, 0.2, 0.005), (0.02, 0.4, 0.4)),
        ("reaction/200", (0.01, 0.015, None), (0.01, 0.4, 0.3)),
    ]:
        for col, mean, paper in (("trsqp", t, pt), ("penalty", pe, pp), ("auglag", au, pa)):
            rows.append(
                {"row": row, "col": col, "metric": "abs_error", "mean": mean, "paper": paper}
            )
    text = against_column(pd.DataFrame(rows), "trsqp")
    penalty, auglag = text.split("\n")
    assert penalty.startswith("- **penalty** against trsqp")
    # 0.2 / 0.02 = 10x worse than trsqp (the paper's 20x); 0.015 / 0.01 within 2x (40x)
    assert "worse: reaction/100 (abs error 10× (20×))" in penalty
    assert "within 2×: reaction/200 (abs error 1.5× (40×))" in penalty
    # auglag 4x better than trsqp where the paper has it 20x worse; its missing cell is skipped
    assert "better: reaction/100 (abs error 0.25× (20×))" in auglag and "200" not in auglag
    assert against_column(pd.DataFrame(rows), "pinn") == ""


def test_lisco_test_set_is_the_papers_1000_samples_and_dc3s_split_is_labelled(monkeypatch):
    """The paper samples 1000 test x ~ U[-1, 1]^50 per instance: reproducible, different
    per instance and from DC3's X. DC3's 833-point split (this project's earlier default) is
    problem.test_set=dc3, labelled in tables, with the reference cache key it always had."""
    from problems import ConfigError, build_problem
    from runners import parametric
    from runners.tables import variant

    a, b = (build_problem("qp", {"instance": i}) for i in (0, 1))
    xa, xb = a.test_x, b.test_x
    assert xa.shape == (1000, 50) and np.abs(xa).max() <= 1.0
    np.testing.assert_array_equal(xa, build_problem("nonconvex_qp", {"instance": 0}).test_x)
    assert not np.allclose(xa, xb)
    assert abs(xa.mean()) < 0.01 and abs(xa.var() - 1 / 3) < 0.01  # U[-1, 1] moments
    dc3 = build_problem("qp", {"instance": 0, "test_set": "dc3"})
    np.testing.assert_array_equal(dc3.test_x, dc3.inst.test)
    assert dc3.test_x.shape == (833, 50) and not np.isin(xa, dc3.inst.X).any()
    assert build_problem("qp", {"instance": 0, "n_test": 7}).test_x.shape == (7, 50)
    with pytest.raises(ConfigError, match="problem.test_set"):
        build_problem("qp", {"test_set": "valid"})
    # the IPOPT reference cache: DC3's split keeps its old key, the sample set has its own
    keys = []
    monkeypatch.setattr(
        "problems.common.cache.cached_arrays", lambda d, name, key, gen: keys.append(key)
    )
    parametric.reference(dc3, dc3.test_x[:2], None, False)
    parametric.reference(a, xa[:2], None, False)
    assert "test_set" not in keys[0] and keys[1]["test_set"] == "sampled"
    earlier = "DC3's 833-point test split (this project's earlier default)"
    assert variant({"method": "ipopt", "problem": "rosenbrock"}) == f"ipopt + {earlier}"
    rec = {"method": "ipopt", "problem": "rosenbrock", "problem.test_set": "sampled"}
    assert variant(rec) == "ipopt"

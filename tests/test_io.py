"""Atomic, shareable result files."""

import json
import os
import stat

import pytest

from runners.io import flatten, read_json, write_atomic, write_json


def test_write_json_is_atomic_readable_and_finite_safe(tmp_path):
    path = tmp_path / "run" / "metrics.json"
    write_json(path, {"status": "converged", "abs_error": 0.5, "wall_s": float("inf")})
    assert read_json(path) == {"status": "converged", "abs_error": 0.5, "wall_s": "inf"}
    assert os.stat(path).st_mode & stat.S_IROTH  # others may read a shared results folder
    assert [p.name for p in path.parent.iterdir()] == ["metrics.json"]  # no temp file left


def test_a_partial_file_reads_as_missing(tmp_path):
    path = tmp_path / "metrics.json"
    write_atomic(path, '{"status": "conv')
    assert read_json(path) is None and read_json(tmp_path / "absent.json") is None


def test_flatten_names_nested_fields_with_dots():
    flat = flatten({"m_split": {"ic": 2, "pde": 3}, "alpha": 30.0, "xs": [1, 2]}, "problem.")
    assert flat == {
        "problem.m_split.ic": 2,
        "problem.m_split.pde": 3,
        "problem.alpha": 30.0,
        "problem.xs": "[1, 2]",
    }


def test_tables_compare_lists_changed_and_missing_runs(tmp_path):
    """--compare matches runs by config hash: an error that moved by 10% is a change, one
    that moved by 0.01% is not, a timing within 1.5x is not, and a run present only in A is
    reported as missing in B."""
    import json
    import subprocess
    import sys

    from runners.tables import compare

    def run(root, name, **rec):
        d = tmp_path / root / name
        d.mkdir(parents=True)
        (d / "metrics.json").write_text(
            json.dumps(
                {"problem": "reaction", "method": "trsqp", "seed": 0, "status": "converged", **rec}
            )
        )

    run("A", "r1", config_hash="h1", rel_error=0.100, abs_error=1.0, wall_s=10.0)
    run("B", "r1", config_hash="h1", rel_error=0.110, abs_error=1.0001, wall_s=13.0)
    run("A", "r2", config_hash="h2", rel_error=0.2, seed=1)
    diff = compare(tmp_path / "A", tmp_path / "B").set_index("metric")
    changed = set(diff.index[diff["changed"]])
    assert changed == {"rel_error", "(run)"}, diff
    assert diff.loc["rel_error", "B/A"] == pytest.approx(1.1)
    assert diff.loc["(run)", "B"] == "missing"
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "runners.tables",
            "--compare",
            str(tmp_path / "A"),
            str(tmp_path / "B"),
            "--out",
            str(tmp_path / "t"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 0 and "2 of" in p.stdout and (tmp_path / "t/compare.csv").is_file()


def test_progress_bar_off_a_terminal_writes_plain_lines(capsys, monkeypatch):
    """stderr is not a TTY (a log file): no carriage-return frames, one line per LOG_S
    seconds at most and one at the end, with the count and the postfix."""
    from runners.plumbing import Bar

    monkeypatch.setattr(Bar, "LOG_S", 3600.0)
    bar = Bar(100, "trsqp reaction")
    for k in range(1, 101):
        bar.show(k, {"loss": f"{1.0 / k:.3g}"})
    bar.close()
    err = capsys.readouterr().err
    assert "\r" not in err and "\x1b" not in err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert 1 <= len(lines) <= 2 and "100/100" in lines[-1] and "loss=0.01" in lines[-1]


def test_statuses_are_one_enum_and_old_records_still_read():
    """runners.io lists methods.driver.Status's values (it stays free of JAX); a record's
    status is one of them with the solver's words in status_message, and a record written
    before status_message ("solver_failed: <message>") reads the same."""
    from methods.driver import Status
    from runners.io import FINISHED, SUCCEEDED, status_failed, status_name, status_text

    assert set(FINISHED) == {s.value for s in Status}
    assert set(FINISHED) - set(SUCCEEDED) == {"solver_failed"}
    new = {"status": Status.SOLVER_FAILED, "status_message": "Invalid_Option"}
    old = {"status": "solver_failed: Invalid_Option"}
    for rec in (json.loads(json.dumps(new)), old):
        assert status_name(rec["status"]) == "solver_failed" and status_failed(rec["status"])
        assert status_text(rec) == "solver_failed: Invalid_Option"
    partial = {"status": "partial", "status_message": "3/833 instances unsolved"}
    assert not status_failed(partial["status"]) and status_text(partial).startswith("partial: 3")
    assert status_failed(7) and status_failed("bogus") and status_name("bogus") is None
    assert status_text({"status": 7}) == "invalid status: 7"

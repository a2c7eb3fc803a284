"""Atomic, shareable result files."""

import os
import stat

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
    assert flat == {"problem.m_split.ic": 2, "problem.m_split.pde": 3, "problem.alpha": 30.0,
                    "problem.xs": "[1, 2]"}

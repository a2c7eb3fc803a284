"""results/REPORT.md: every paper table, ours beside the paper's, missing runs said, not fatal."""

import json

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from runners import report
from runners.tables import experiment_specs


def _run(folder, **rec):
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps({"status": "max_iter", "seed": 0, **rec}))


def test_report_lists_every_table_and_says_what_is_missing(tmp_path):
    res = tmp_path / "results"
    sweep = res / "sweeps" / "trsqp_default-smoke"
    # transport / trsqp: abs error 0.1 against the paper's 0.00724 (13.8x worse: marked),
    # rel error 0.0321 as in the paper (not marked); every other cell has no run
    _run(
        sweep / "a",
        problem="transport",
        method="trsqp",
        abs_error=0.1,
        rel_error=0.0321,
        device="cpu:cpu",
        **{"method.kkt_stop": False, "method.tiny_pred_exact": False},  # Algorithm 3
        **{"method.normal_step": "modified_dogleg", "method.cg_test": "squared"},
    )
    times = tmp_path / "times.txt"
    times.write_text("table-trsqp 600 0\ntable-lisco 120 2\n")
    out = report.write_report("smoke", res, times)
    md = out.read_text()
    # every table of every experiment the report config names, with its title
    spec = OmegaConf.to_container(OmegaConf.load(report.CONF))
    n_tables = 0
    for paper in spec["papers"]:
        assert paper["title"] in md
        for t in paper["tables"]:
            if "experiment" in t:
                for name, tspec in experiment_specs(t["experiment"]).items():
                    assert tspec["title"] in md, name
                    n_tables += 1
    assert n_tables >= 5 + 4 + 3 + 5  # trSQP tables + Figure 1 sweeps, DAE, LISCO Tables 1-5
    # the one run: ratio and mark
    lines = [ln for ln in md.splitlines() if ln.startswith("| transport") and "trsqp" in ln]
    cells = lambda ln: [c.strip() for c in ln.strip("|").split("|")]
    abs_cells = cells(next(ln for ln in lines if "abs error" in ln))
    rel_cells = cells(next(ln for ln in lines if "rel error" in ln))
    assert abs_cells[-3:] == ["13.8", "worse", "✗"]
    assert rel_cells[-3:] == ["1", "within 2×", ""]
    # cells of the same table without runs, and sweeps never run, are named, not fatal
    assert "**missing runs** (8 cells)" in md
    assert "no sweep folder" in md and "make table-lisco SCALE=smoke" in md
    assert "missing figure" in md
    # environment and the target times
    assert "commit" in md and "jax" in md and "cpu:cpu" in md
    assert "table-trsqp" in md and "10.0" in md  # 600 s -> 10.0 min
    html = (res / "REPORT.html").read_text()
    assert html.count("<h3>") == md.count("\n### ") and "13.8" in html and "✗" in html


def test_worse_by_knows_which_way_is_better():
    assert report.worse_by("abs_error", 0.3, 0.1) == pytest.approx(3.0)  # lower is better
    assert report.worse_by("success", 0.4, 0.999) > 2  # higher is better
    from runners.tables import verdict

    assert [verdict(report.worse_by("abs_error", a, 0.1)) for a in (0.04, 0.06, 0.19, 0.21)] == [
        "better",
        "within 2×",
        "within 2×",
        "worse",
    ]
    assert report.worse_by("success", 1.0, 0.999) < 1
    assert report.worse_by("frac8_it100", 0.9, 0.987) < 2
    assert report.worse_by("solver_steps_done", 1e3, 1e5) is None  # a count: not judged
    assert report.worse_by("abs_error", None, 0.1) is None
    cells = report.report_cells(
        pd.DataFrame(
            [
                {
                    "row": "r",
                    "col": "c",
                    "metric": "abs_error",
                    "mean": 0.5,
                    "std": None,
                    "seeds": 1,
                    "paper": 0.1,
                },
                {
                    "row": "r",
                    "col": "d",
                    "metric": "abs_error",
                    "mean": None,
                    "std": None,
                    "seeds": 0,
                    "paper": 0.1,
                },
            ]
        )
    )
    assert list(cells["> 2× worse"]) == ["✗", ""] and list(cells["ours"]) == ["0.5", "missing"]
    assert cells["ours/paper"].iloc[0] == "5"
    # a run without one of the metrics (a step it does not have) is not a missing run
    cells = report.report_cells(
        pd.DataFrame(
            [
                {
                    "row": "B",
                    "col": "c",
                    "metric": "wall_s",
                    "mean": 5.0,
                    "std": None,
                    "seeds": 1,
                    "paper": None,
                },
                {
                    "row": "B",
                    "col": "c",
                    "metric": "smoothing.wall_s",
                    "mean": None,
                    "std": None,
                    "seeds": 0,
                    "paper": None,
                },
            ]
        )
    )
    assert list(cells["ours"]) == ["5", "–"]


def test_a_run_at_the_papers_coefficients_is_compared_with_the_paper():
    """The line after a trSQP-PINN run: the paper's Figure 1 errors, ours as multiples, and
    exactly the settings that differ from the paper's setup (none at scale=paper)."""
    from hydra import compose, initialize_config_dir

    from runners.paper import paper_gap
    from runners.train import CONF_DIR

    def cfg(*overrides):
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            return compose("train", overrides=list(overrides))

    final = {"abs_error": 0.0242, "rel_error": 0.02517}
    line = paper_gap(
        cfg("problem=reaction", "method=trsqp", "scale=paper"), "reaction", "trsqp", final
    )
    assert line.startswith("paper (Figure 1, trsqp on reaction): abs 0.0121 / rel 0.0252")
    assert "abs 0.0242 (2x the paper's) / rel 0.0252 (1x)" in line
    assert line.endswith("settings that differ from the paper's: none")
    line = paper_gap(
        cfg(
            "problem=reaction",
            "method=trsqp",
            "scale=paper",
            "method.memory=10",
            "method.second_order_correction=true",
        ),
        "reaction",
        "trsqp",
        final,
    )
    assert line.endswith(
        "method.memory=10 (paper dense), method.second_order_correction=True (paper False)"
    )
    smoke = paper_gap(cfg("problem=transport", "method=auglag"), "transport", "auglag", final)
    assert "problem.eval_nx=256 (paper 2560)" in smoke and "pretraining.inner_maxiter" in smoke
    # another coefficient (a Figure 1 curve) or the plain PINN: no number to compare with
    assert (
        paper_gap(
            cfg("problem=reaction", "problem.alpha=10", "method=trsqp"), "reaction", "trsqp", final
        )
        is None
    )
    assert paper_gap(cfg("problem=reaction", "method=pinn"), "reaction", "pinn", final) is None


def test_this_projects_options_get_their_own_labelled_column():
    """The paper's algorithm keeps the paper's column; a run with one of this project's
    options (or the authors' code's) is a column of its own, labelled as such."""
    from runners.tables import experiment_table, variant

    spec = experiment_specs("trsqp_default")["trsqp_default"]
    base = {
        "problem": "reaction",
        "seed": 0,
        "status": "max_iter",
        "method": "trsqp",
        "method.second_order_correction": False,
        "method.secant_multiplier": "paper",
        "method.radius_rule": "paper",
        "method.objective_reduction": "mean",
        "method.kkt_stop": False,
        "method.tiny_pred_exact": False,
        "method.normal_step": "modified_dogleg",
        "method.cg_test": "squared",
    }
    recs = [
        {**base, "abs_error": 0.0126, "rel_error": 0.024},
        {**base, "method.second_order_correction": True, "abs_error": 0.0018, "rel_error": 0.0035},
        {
            **base,
            "method.radius_rule": "scipy",
            "method.objective_reduction": "sum",
            "abs_error": 0.01,
            "rel_error": 0.02,
        },
    ]
    df = pd.DataFrame([{**r, "variant": variant(r)} for r in recs])
    long, shown = experiment_table(df, spec)
    row = shown[shown["problem"] == "reaction"].iloc[0]
    assert row["trsqp abs error"] == "0.0126 (0.0121)"  # the paper's column: the paper's run
    assert row["trsqp + SOC (this project) abs error"] == "0.0018"  # no paper value beside it
    assert row["trsqp + SciPy radius rule + sum objective (authors' code) abs error"] == "0.01"
    cell = long[(long.row == "reaction") & (long.col == "trsqp") & (long.metric == "abs_error")]
    assert cell["verdict"].iloc[0] == "within 2×"
    today = {"method.on_linesearch_failure": "stop", "method.max_linesearch_steps": 100}
    assert variant({"method": "auglag", "method.multiplier_update": "paper", **today}) == "auglag"


def test_summary_judges_each_method_against_sqp_adam_per_setting():
    """The SQP-momentum summary's comparison lines: per problem, rate and batch mode, each
    other method and form against sqp_adam in the paper's form, by the 2× rule."""
    import pandas as pd

    from runners.tables import against_method

    rows = []
    for lr, full, sqp, unc, iclr in [
        (1e-4, False, (1.0, 2.0), (3.0, 1.0), (1.5, 2.5)),
        (5e-4, True, (4.0, 4.0), (1.0, 1.0), (20.0, 1.0)),
    ]:
        for method, variant, (total, mse) in [
            ("sqp_adam", "sqp_adam", sqp),
            ("adam_unc", "adam_unc", unc),
            ("sqp_adam", "sqp_adam + ICLR form", iclr),
        ]:
            rows.append(
                {
                    "problem": "spring",
                    "method": method,
                    "variant": variant,
                    "method.lr": lr,
                    "method.full_batch": full,
                    "seeds": 5,
                    "failed": 0,
                    "total_mean": total,
                    "total_std": 0.1,
                    "test_mse_mean": mse,
                    "test_mse_std": 0.1,
                }
            )
    text = against_method(pd.DataFrame(rows), "sqp_adam", ("total", "test_mse"))
    lines = text.splitlines()
    assert len(lines) == 2
    # lr 1e-4: adam_unc's loss 3× sqp_adam's -> worse; the ICLR form 1.5× / 1.25× -> within 2×
    assert lines[0].startswith("- **spring, lr 0.0001, mini-batch**, against sqp_adam")
    assert "within 2×: sqp_adam + ICLR form (total loss 1.5×, test MSE 1.25×)" in lines[0]
    assert "worse: adam_unc (total loss 3×, test MSE 0.5×)" in lines[0]
    # lr 5e-4, full batch: adam_unc 4× lower in both -> better; the ICLR form's loss 5× -> worse
    assert lines[1].startswith("- **spring, lr 0.0005, full batch**")
    assert "better: adam_unc (total loss 0.25×, test MSE 0.25×)" in lines[1]
    assert "worse: sqp_adam + ICLR form (total loss 5×, test MSE 0.25×)" in lines[1]


def test_summary_finds_sqp_adam_when_every_run_shares_an_option_label():
    """Runs that all carry one problem option's label (records from before Darcy's
    ``data_samples``) still have their sqp_adam row as the reference; the shared label is
    said once, and a form that differs only in it is not judged against the wrong row."""
    import pandas as pd

    from runners.tables import against_method, shared_label

    tag = " + fixed 20% labeled samples (this project's earlier default)"
    rows = [
        {
            "problem": "darcy",
            "method": method,
            "variant": form + tag,
            "method.lr": 5e-3,
            "seeds": 1,
            "failed": 0,
            "total_mean": total,
            "test_mse_mean": 1.0,
        }
        for method, form, total in [
            ("sqp_adam", "sqp_adam", 1.0),
            ("adam_unc", "adam_unc", 3.0),
            ("sqp_adam", "sqp_adam + ICLR-2025 Adam form (predecessor)", 1.5),
        ]
    ]
    shared, forms = shared_label(pd.Series([r["variant"] for r in rows]))
    assert shared == tag.removeprefix(" + ")
    assert list(forms) == ["sqp_adam", "adam_unc", "sqp_adam + ICLR-2025 Adam form (predecessor)"]
    pair = ["adam_con + x (this project)", "adam_unc + x (this project)"]
    assert shared_label(pd.Series(pair))[0] == "x (this project)"
    assert shared_label(pd.Series(["sqp_adam", "adam_unc + x (this project)"]))[0] == ""
    # a label of the same source as the shared one keeps its source
    earlier = "(this project's earlier default)"
    both = pd.Series([f"adam_con + a + b {earlier}", f"sqp_adam + b {earlier}"])
    assert shared_label(both)[0] == f"b {earlier}"
    assert list(shared_label(both)[1]) == [f"adam_con + a {earlier}", "sqp_adam"]
    line = against_method(pd.DataFrame(rows), "sqp_adam", ("total", "test_mse"))
    assert line.startswith(
        "- **darcy, lr 0.005; every run: fixed 20% labeled samples (this project's earlier "
        "default)**, against sqp_adam"
    )
    assert "worse: adam_unc (total loss 3×, test MSE 1×)" in line
    assert "within 2×: sqp_adam + ICLR-2025 Adam form (predecessor) (total loss 1.5×" in line
    # a setting where one run lacks the label has no shared label: its exact sqp_adam decides
    rows[1]["variant"] = "adam_unc"
    assert "every run" not in against_method(pd.DataFrame(rows), "sqp_adam", ("total",))


def test_a_table_without_a_variant_column_names_its_labelled_rows():
    """Paper-layout tables key rows by config fields (LISCO: method, predictor, tight), so a
    row of runs at an earlier default would read like the paper's setting: a footnote names
    those rows and their labels; rows at the defaults, and rows the table leaves out, are
    not named."""
    from runners.tables import labelled_runs, variant

    earlier = "log10 of ‖F‖ in the solver input (this project's earlier default)"
    today = {"method.convexification": "trial", "method.predictor_convexification": True}
    today |= {"method.init": "torch", "method.solver_zero_init": False}
    recs = [
        {"method": "lisco", "method.predictor": True, **today},  # before input_log existed
        {"method": "lisco", "method.predictor": False, "method.input_log": "ln", **today},
        {"method": "osqp", "method.tight": True},
        {"method": "osqp", "method.tight": False, "method.settings": "dc3"},
    ]
    df = pd.DataFrame([{**r, "variant": variant(r)} for r in recs])
    spec = {
        "rows": ["method", "method.predictor", "method.tight"],
        "cols": ["problem"],
        "row_names": {"lisco/true/None": "LISCO with Pred.", "osqp/None/false": "OSQP"},
    }
    note = labelled_runs(df, spec)
    assert note == (
        f"_Rows with runs at options other than the defaults: LISCO with Pred.: {earlier}; "
        "OSQP: DC3's OSQP options (this project's earlier default)._"
    )
    assert labelled_runs(df, {**spec, "only_rows": ["lisco/false/None"]}) == ""
    assert labelled_runs(df, {**spec, "cols": ["variant"]}) == ""


def test_a_labelled_method_option_names_the_row_not_a_setting():
    """A method option the tables label (sqp_adam's ``normal_step_size=unit``) is part of
    the row's form, like ``variant``: its runs are judged against sqp_adam of the same
    rate, not split off as a setting with no sqp_adam to compare with."""
    import pandas as pd

    from runners.tables import against_method, summarize, variant

    rows = []
    for seed in (0, 1):
        for method, extra, total in [
            ("sqp_adam", {"method.normal_step_size": "scaled"}, 1.0),
            ("sqp_adam", {"method.normal_step_size": "unit"}, 4.0),
            ("adam_unc", {"method.normal_step_size": "scaled"}, 1.5),
        ]:
            rec = {"problem": "spring", "method": method, "method.lr": 1e-4, **extra}
            rec |= {"problem.batch_terms": "residual", "problem.init": "torch"}
            rec |= {"method.variant": "defossez", "seed": seed, "status": "max_iter"}
            rec |= {"total": total, "test_mse": total}
            rows.append({**rec, "variant": variant(rec)})
    num, shown = summarize(pd.DataFrame(rows))
    assert "method.normal_step_size" not in shown.columns
    text = against_method(num, "sqp_adam", ("total", "test_mse"))
    assert text.count("\n") == 0 and text.startswith("- **spring**, against sqp_adam")
    assert "worse: sqp_adam + unit normal step (this project) (total loss 4×" in text
    assert "within 2×: adam_unc (total loss 1.5×" in text


def _butene_runs(tmp_path, runs):
    """metrics.json records of butene runs, one folder each: (method, seed, total, status)."""
    for method, seed, total, status in runs:
        rec = {"problem": "butene", "method": method, "method.lr": 5e-4, "seed": seed}
        rec |= {"method.variant": "defossez", "method.normal_step_size": "scaled"}
        rec |= {"problem.batch_terms": "residual", "problem.init": "torch", "status": status}
        rec |= {"total": total, "test_mse": total}
        folder = tmp_path / "runs" / f"{method}_{seed}"
        folder.mkdir(parents=True)
        (folder / "metrics.json").write_text(json.dumps(rec))


def test_a_comparison_line_names_the_seeds_of_rows_that_average_different_runs(tmp_path):
    """sqp_adam over seeds 0 and 1 against adam_unc over seed 0 alone is not a like-for-like
    ratio: the line names both seed lists; rows over the same seeds say nothing more, and a
    failed run's seed is not one of a row's seeds."""
    from runners.tables import against_method, collect, summarize

    _butene_runs(
        tmp_path,
        [
            ("sqp_adam", 0, 1.0, "max_iter"),
            ("sqp_adam", 1, 3.0, "max_iter"),
            ("adam_con", 0, 4.0, "max_iter"),
            ("adam_con", 1, 4.0, "max_iter"),
            ("adam_unc", 0, 8.0, "max_iter"),
            ("sqp_heavyball", 0, 2.0, "max_iter"),
            ("sqp_heavyball", 1, 50.0, "solver_failed"),
        ],
    )
    num, _ = summarize(collect(tmp_path / "runs"))
    assert dict(zip(num["method"], num["seed_list"])) == {
        "adam_con": "0 1",
        "adam_unc": "0",
        "sqp_adam": "0 1",
        "sqp_heavyball": "0",
    }
    line = against_method(num, "sqp_adam", ("total",))
    # means: sqp_adam 2, adam_con 4 (2×: within), adam_unc 8 (4×), sqp_heavyball 2
    assert "adam_con (total loss 2×)" in line
    assert "adam_unc (total loss 4×; seeds 0 against sqp_adam's 0 1)" in line
    assert "sqp_heavyball (total loss 1×; seeds 0 against sqp_adam's 0 1)" in line


def test_tables_where_selects_runs_and_refuses_a_field_no_run_records(tmp_path):
    """``--where seed=1`` tables seed 1's runs alone (the row's mean is seed 1's value and
    the line pairs like with like); a field no run records, or values no run has, is one
    line naming it, exit 2, nothing written."""
    import subprocess
    import sys

    _butene_runs(
        tmp_path,
        [
            ("sqp_adam", 0, 1.0, "max_iter"),
            ("sqp_adam", 1, 3.0, "max_iter"),
            ("adam_unc", 0, 8.0, "max_iter"),
            ("adam_unc", 1, 9.0, "max_iter"),
        ],
    )

    def tables(*args):
        return subprocess.run(
            [sys.executable, "-m", "runners.tables", "--results", str(tmp_path / "runs")]
            + ["--out", str(tmp_path / "out"), *args],
            capture_output=True,
            text=True,
            timeout=300,
        )

    p = tables("--where", "seed=1", "--where", "method.lr=0.0005", "--name", "s1")
    assert p.returncode == 0, p.stderr
    csv = pd.read_csv(tmp_path / "out" / "s1.csv")
    assert dict(zip(csv["method"], csv["total_mean"])) == {"adam_unc": 9.0, "sqp_adam": 3.0}
    assert csv["seeds"].tolist() == [1, 1]
    md = (tmp_path / "out" / "s1.md").read_text()
    assert "worse: adam_unc (total loss 3×, test MSE 3×)" in md
    assert "_Runs selected by --where `seed=1` `method.lr=0.0005`._" in md
    for bad, named in [
        (["--where", "sed=1"], "no run records 'sed'"),
        (["--where", "seed=7"], "seed=7 (recorded: 0, 1)"),
        (["--where", "seed"], "expected FIELD=VALUE"),
    ]:
        p = tables(*bad, "--name", "bad")
        assert p.returncode == 2, p.stderr
        lines = p.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: --where") and named in lines[0]
        assert not (tmp_path / "out" / "bad.md").exists()
    from runners.tables import select

    # booleans in any case, numbers as numbers (the figures' --where is the same function)
    df = pd.DataFrame({"method.full_batch": [True, False], "method.lr": [5e-4, 1e-4]})
    for v in ("true", "True", True):
        assert select(df, {"method.full_batch": [v]})["method.lr"].tolist() == [5e-4]
    assert select(df, {"method.lr": ["1e-4"]})["method.full_batch"].tolist() == [False]


def test_tables_with_an_earlier_table_judge_new_runs_against_its_rows(tmp_path, capsys):
    """``--with earlier.csv``: a committed table's rows join new runs' rows (their run
    folders gone) and the comparison line judges the new form against the table's
    sqp_adam; a row named like a run's is left out with a warning; a missing table, rows
    told apart by other settings, or tail medians over another fraction are one line,
    exit 2, nothing written."""
    import shutil

    from runners.tables import main

    _butene_runs(
        tmp_path / "a", [("sqp_adam", 0, 2.0, "max_iter"), ("adam_unc", 0, 16.0, "max_iter")]
    )
    for folder, totals in (("sqp_adam_0", [4.0, 2.0]), ("adam_unc_0", [32.0, 16.0])):
        h = {"iteration": [0, 10], "loss_total": totals, "max_abs_c": [0.1, 0.1]}
        pd.DataFrame(h).to_csv(tmp_path / "a" / "runs" / folder / "history.csv", index=False)
    out = ["--out", str(tmp_path / "out")]
    main(["--results", str(tmp_path / "a" / "runs"), *out, "--name", "earlier", "--tail", "0.5"])
    shutil.rmtree(tmp_path / "a")  # the runs are gone; the table stays
    _butene_runs(tmp_path / "b", [("sqp_adam", 0, 6.0, "max_iter")])
    rec_path = tmp_path / "b" / "runs" / "sqp_adam_0" / "metrics.json"
    rec_path.write_text(json.dumps(json.loads(rec_path.read_text()) | {"method.variant": "iclr"}))
    earlier = str(tmp_path / "out" / "earlier.csv")
    new = ["--results", str(tmp_path / "b" / "runs"), *out]
    main([*new, "--name", "joined", "--with", earlier])
    csv = pd.read_csv(tmp_path / "out" / "joined.csv")
    assert csv["total_mean"].tolist() == [6.0, 16.0, 2.0]  # the runs' row first
    assert csv["rows from"].tolist() == ["runs", "earlier.csv", "earlier.csv"]
    assert csv["variant"].tolist()[1:] == ["adam_unc", "sqp_adam"]
    md = (tmp_path / "out" / "joined.md").read_text()
    assert (
        "- **butene**, against sqp_adam (its final value / sqp_adam's): worse: sqp_adam + "
        "ICLR-2025 Adam form (predecessor) (total loss 3×, test MSE 3×); adam_unc (total "
        "loss 8×, test MSE 8×)" in md
    )
    assert f"_Rows from `{earlier}` (2 rows added, 2 of its runs used;" in md
    assert "adam_unc, sqp_adam._" in md
    # an older table without seed lists: the line says the seeds are not recorded
    pd.read_csv(earlier).drop(columns="seed_list").to_csv(tmp_path / "old.csv", index=False)
    main([*new, "--name", "older", "--with", str(tmp_path / "old.csv")])
    md = (tmp_path / "out" / "older.md").read_text()
    assert "(total loss 3×, test MSE 3×; seeds 0 against sqp_adam's not recorded)" in md
    capsys.readouterr()

    # a run named like a table's row: the run's row is kept, the table's left out, said once
    _butene_runs(tmp_path / "c", [("sqp_adam", 0, 5.0, "max_iter")])
    main(["--results", str(tmp_path / "c" / "runs"), *out, "--name", "clash", "--with", earlier])
    csv = pd.read_csv(tmp_path / "out" / "clash.csv")
    assert dict(zip(csv["method"], csv["total_mean"])) == {"sqp_adam": 5.0, "adam_unc": 16.0}
    assert "butene, sqp_adam named like rows of the runs" in capsys.readouterr().err

    # the runs at two rates are told apart by method.lr, the table's rows are not
    _butene_runs(tmp_path / "d", [("sqp_adam", 0, 1.0, "max_iter")])
    rec_path = tmp_path / "d" / "runs" / "sqp_adam_0" / "metrics.json"
    rec_path.write_text(json.dumps(json.loads(rec_path.read_text()) | {"method.lr": 1e-4}))
    rec_path.parent.rename(rec_path.parent.with_name("sqp_adam_0_lr1e-4"))
    shutil.copytree(tmp_path / "c" / "runs", tmp_path / "d" / "runs", dirs_exist_ok=True)
    for results, extra, named in [
        (tmp_path / "b", ["--with", str(tmp_path / "none.csv")], "no such table"),
        (
            tmp_path / "d",
            ["--with", earlier],
            "by (problem, method), the runs' by (problem, method, method.lr)",
        ),
        (tmp_path / "b", ["--with", earlier, "--tail", "0.1"], "not over the last 10%"),
        (tmp_path / "b", ["--with", earlier, "experiment=x"], "does not apply to --compare"),
    ]:
        with pytest.raises(SystemExit) as e:
            main(["--results", str(results / "runs"), *out, "--name", "bad", *extra])
        assert e.value.code == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: --with") and named in lines[0]
        assert not (tmp_path / "out" / "bad.md").exists()


def test_tables_with_pool_give_the_mean_and_std_over_all_runs_of_a_row_run_in_parts(
    tmp_path, capsys
):
    """``--with earlier.csv --pool``: a table's row of the configuration of a runs' row, on
    other seeds, pools with it: the same seeds, failed count, status counts, means and
    sample stds (every metric) as one table of all the runs; rows of two tables pool too
    (seeds added over three sessions); a row on a seed the runs ran again is left out with
    a warning; --pool without --with is one line, exit 2."""
    import shutil

    from runners.tables import main

    spec = {  # seed: (sqp_adam's total, adam_unc's total)
        0: (1.0, 8.0),
        1: (3.0, 20.0),
        2: (5.0, 11.0),
        3: (10.0, 2.0),
    }

    def runs(folder, seeds, methods=("sqp_adam", "adam_unc")):
        rows = [(m, s, spec[s][i], "max_iter") for s in seeds for i, m in enumerate(methods)]
        _butene_runs(tmp_path / folder, rows)
        return ["--results", str(tmp_path / folder / "runs")]

    out = ["--out", str(tmp_path / "out")]
    main([*runs("all", [0, 1, 2, 3]), *out, "--name", "all"])  # every run in one table
    main([*runs("s01", [0, 1]), *out, "--name", "s01"])
    main([*runs("s2", [2]), *out, "--name", "s2"])
    for f in ("all", "s01", "s2"):
        shutil.rmtree(tmp_path / f)
    one = pd.read_csv(tmp_path / "out" / "all.csv").set_index("method")
    with_ = [
        "--with",
        str(tmp_path / "out" / "s01.csv"),
        "--with",
        str(tmp_path / "out" / "s2.csv"),
    ]
    main([*runs("s3", [3]), *out, "--name", "pooled", *with_, "--pool"])
    pooled = pd.read_csv(tmp_path / "out" / "pooled.csv").set_index("method")
    assert list(pooled.index) == ["adam_unc", "sqp_adam"]  # one row per configuration
    for m in ("adam_unc", "sqp_adam"):
        assert pooled.at[m, "seeds"] == 4 and pooled.at[m, "failed"] == 0
        assert pooled.at[m, "seed_list"] == "0 1 2 3" and pooled.at[m, "status"] == "max_iter×4"
        assert pooled.at[m, "rows from"] == "runs + s01.csv + s2.csv"
        for c in ("total_mean", "total_std", "test_mse_mean", "test_mse_std"):
            assert pooled.at[m, c] == pytest.approx(one.at[m, c], rel=1e-12)
    assert pooled.at["sqp_adam", "total_std"] == pytest.approx(np.std([1, 3, 5, 10], ddof=1))
    md = (tmp_path / "out" / "pooled.md").read_text()
    assert "(0 rows added, 2 of its runs used;" in md and "pooled with the rows" in md
    assert "worse: adam_unc (total loss 2.16×" in md  # 41/4 against 19/4

    # seed 2 run again: its table row is not pooled twice (left out, said), the rest pools
    capsys.readouterr()
    main([*runs("s2b", [2]), *out, "--name", "twice", *with_, "--pool"])
    twice = pd.read_csv(tmp_path / "out" / "twice.csv").set_index("method")
    assert twice.at["sqp_adam", "seed_list"] == "0 1 2" and twice.at["sqp_adam", "seeds"] == 3
    assert "seeds overlap or are not recorded" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main([*runs("s4", [3]), *out, "--name", "bad", "--pool"])
    assert e.value.code == 2 and "--pool pools the rows of --with" in capsys.readouterr().err
    assert not (tmp_path / "out" / "bad.md").exists()


def test_tail_medians_take_each_runs_last_logged_iterations_of_its_last_phase(tmp_path):
    """``--tail 0.2``: a run's median of the logged total loss at iterations ≥ 80% of its
    last one, from the rows of its history's last phase, a row logged twice (a resume)
    counted once; the comparison line is on those medians, and a run without a history
    has none. A fraction outside (0, 1] is one line, exit 2, nothing written."""
    from runners.tables import main, write_tables

    _butene_runs(
        tmp_path,
        [("sqp_adam", 0, 1.0, "max_iter"), ("adam_unc", 0, 100.0, "max_iter")],
    )
    _butene_runs(tmp_path / "more", [("adam_con", 0, 2.0, "max_iter")])
    (tmp_path / "more" / "runs" / "adam_con_0").rename(tmp_path / "runs" / "adam_con_0")

    def history(folder, totals):
        it = list(range(0, 1100, 100))  # 0 ... 1000: the last 20% are 800, 900, 1000
        # a pretraining phase logs its own iterations (950 would be in the tail)
        rows = [{"iteration": 950, "phase": "pretrain", "loss_total": 1e9, "max_abs_c": 1e9}]
        for i, t in zip(it, totals):
            if i == 900:  # logged before a stop, and again after the resume: the last counts
                rows.append({"iteration": i, "phase": "train", "loss_total": 50.0})
            rows.append({"iteration": i, "phase": "train", "loss_total": t, "max_abs_c": t / 10})
        pd.DataFrame(rows).to_csv(tmp_path / "runs" / folder / "history.csv", index=False)

    history("sqp_adam_0", [9.0] * 8 + [1.0, 2.0, 3.0])  # tail median 2, final 3
    # adam_unc ends on a spike: final 100, tail (800, 900, 1000) = 4, 6, 100 -> median 6
    history("adam_unc_0", [9.0] * 8 + [4.0, 6.0, 100.0])
    shown = write_tables(tmp_path / "runs", tmp_path / "out", "t", tail=0.2)
    csv = pd.read_csv(tmp_path / "out" / "t.csv").set_index("method")
    assert csv.loc["sqp_adam", "tail.total_mean"] == 2.0
    assert csv.loc["adam_unc", "tail.total_mean"] == 6.0
    assert csv.loc["adam_unc", "tail.max_abs_c_mean"] == pytest.approx(0.6)
    assert pd.isna(csv.loc["adam_con", "tail.total_mean"])  # no history.csv
    assert "total loss (median, last 20%)" in shown.columns
    md = (tmp_path / "out" / "t.md").read_text()
    # final values: adam_unc 100× sqp_adam's 1; tail medians: 6 / 2
    final = next(t for t in md.splitlines() if "(its final value / sqp_adam's)" in t)
    assert "worse: adam_unc (total loss 100×" in final
    assert (
        "against sqp_adam (the median of its last 20% of logged values / sqp_adam's): "
        "worse: adam_unc (total loss 3×)" in md
    )
    for bad in ("0", "1.5"):
        with pytest.raises(SystemExit) as e:
            main(
                ["--results", str(tmp_path / "runs"), "--out", str(tmp_path / "o2")]
                + ["--name", "bad", "--tail", bad]
            )
        assert e.value.code == 2
    assert not (tmp_path / "o2").exists()


def test_loss_curves_average_the_log_of_each_runs_history_over_the_runs_where_selects(
    tmp_path,
):
    """The loss curves' lines are the mean (and std) over a method's runs of log10 of each
    logged value, cut to the shortest history; ``--where seed=1`` keeps one seed's runs,
    and drops a method that has none."""
    from runners.figures import curve_lines, main

    _butene_runs(
        tmp_path,
        [("sqp_adam", 0, 1.0, "max_iter"), ("sqp_adam", 1, 1.0, "max_iter")]
        + [("adam_con", 0, 1.0, "max_iter")],
    )
    totals = {"sqp_adam_0": [1e2, 1e0, 1e-2], "sqp_adam_1": [1e4, 1e2], "adam_con_0": [10.0]}
    for folder, t in totals.items():
        run = tmp_path / "runs" / folder
        rec = json.loads((run / "metrics.json").read_text())
        (run / "metrics.json").write_text(json.dumps(rec | {"family": "stochastic_constrained"}))
        h = {"epoch": range(len(t)), "loss_total": t, "max_abs_c": [1e-3] * len(t)}
        pd.DataFrame(h).to_csv(run / "history.csv", index=False)

    both = curve_lines(tmp_path / "runs")[("butene", 5e-4, False)]
    epoch, stats, n = both["sqp_adam"][:3]
    assert n == 2 and list(epoch) == [0, 1]  # cut to the shorter history
    assert both["sqp_adam"].seeds == "0 1" and both["sqp_adam"].source == "runs"
    np.testing.assert_allclose(stats["loss_total"][0], [3.0, 1.0])  # log10: (2+4)/2, (0+2)/2
    np.testing.assert_allclose(stats["loss_total"][1], [1.0, 1.0])
    np.testing.assert_allclose(stats["max_abs_c"][0], [-3.0, -3.0])
    assert both["adam_con"].runs == 1

    one = curve_lines(tmp_path / "runs", {"seed": ["1"]})[("butene", 5e-4, False)]
    assert set(one) == {"sqp_adam"} and one["sqp_adam"].runs == 1
    np.testing.assert_allclose(one["sqp_adam"][1]["loss_total"][0], [4.0, 2.0])
    np.testing.assert_allclose(one["sqp_adam"][1]["loss_total"][1], [0.0, 0.0])

    out = tmp_path / "fig"
    main(
        ["curves", "--results", str(tmp_path / "runs"), "--out-dir", str(out), "--where", "seed=1"]
    )
    assert sorted(p.name for p in out.iterdir()) == [
        "sqp_momentum_butene_lr0.0005_mini.csv",  # what the figure draws, as data
        "sqp_momentum_butene_lr0.0005_mini.png",
    ]
    with pytest.raises(SystemExit) as e:  # a field no run records: one line, exit 2
        main(
            ["curves", "--results", str(tmp_path / "runs"), "--out-dir", str(tmp_path / "f2")]
            + ["--where", "nosuch=1"]
        )
    assert e.value.code == 2 and not (tmp_path / "f2").exists()


def test_a_curves_figure_s_csv_is_what_it_draws_and_with_joins_its_lines_to_new_runs(
    tmp_path, capsys
):
    """Beside each loss-curves figure, a CSV holds its lines (log10 mean and std per logged
    epoch, thinned to at most CURVE_POINTS, the last epoch kept); ``curves --with`` that CSV
    draws its lines beside new runs after the first runs' folders are gone, labels where each
    came from, leaves out a line named like one of the runs' (a warning), draws from the CSV
    alone, and refuses a missing or foreign file in one line, exit 2, nothing written."""
    import shutil

    from runners.figures import CURVE_POINTS, curve_lines, main, read_curves, thinned

    n_logged = 2 * CURVE_POINTS + 5  # a long run: every 3rd row kept
    idx = thinned(n_logged)
    assert idx[0] == 0 and idx[-1] == n_logged - 1 and len(idx) <= CURVE_POINTS + 1
    assert set(np.diff(idx[:-1])) == {3}

    _butene_runs(tmp_path, [("sqp_adam", 2, 1.0, "max_iter"), ("adam_con", 2, 1.0, "max_iter")])
    epochs = np.arange(n_logged) * 20
    for folder, scale in (("sqp_adam_2", 1.0), ("adam_con_2", 10.0)):
        run = tmp_path / "runs" / folder
        rec = json.loads((run / "metrics.json").read_text())
        rec |= {"family": "stochastic_constrained", "commit": "abc123"}
        (run / "metrics.json").write_text(json.dumps(rec))
        total = scale * 10.0 ** (-epochs / 4000.0)
        h = {"epoch": epochs, "loss_total": total, "max_abs_c": np.full(n_logged, 1e-3)}
        pd.DataFrame(h).to_csv(run / "history.csv", index=False)
    first = tmp_path / "figs" / "seed2-paper"
    main(["curves", "--results", str(tmp_path / "runs"), "--out-dir", str(first)])
    data = first / "sqp_momentum_butene_lr0.0005_mini.csv"
    frame = pd.read_csv(data)
    sqp = frame[frame["line"] == "sqp_adam"]
    assert list(sqp["epoch"]) == list(epochs[idx])
    np.testing.assert_allclose(sqp["loss_total.log10_mean"], -epochs[idx] / 4000.0, atol=1e-4)
    assert (sqp["loss_total.log10_std"] == 0).all() and set(sqp["seeds"].astype(str)) == {"2"}
    assert set(sqp["commits"]) == {"abc123"} and set(sqp["from"]) == {"runs"}
    drawn = curve_lines(tmp_path / "runs")
    again = read_curves(data)  # the CSV reads back as the lines that were drawn
    key = ("butene", 5e-4, False)
    assert set(again[key]) == set(drawn[key]) == {"sqp_adam", "adam_con"}
    for m in ("sqp_adam", "adam_con"):
        np.testing.assert_array_equal(again[key][m].epoch, drawn[key][m].epoch)
        np.testing.assert_allclose(
            again[key][m].stats["loss_total"][0], drawn[key][m].stats["loss_total"][0], atol=1e-4
        )
        assert again[key][m].source == "seed2-paper" and again[key][m].runs == 1

    # the runs' folders are gone; a later checkout runs adam_unc and sqp_adam again
    shutil.rmtree(tmp_path / "runs")
    _butene_runs(tmp_path, [("adam_unc", 2, 1.0, "max_iter"), ("sqp_adam", 2, 1.0, "max_iter")])
    for folder in ("adam_unc_2", "sqp_adam_2"):
        run = tmp_path / "runs" / folder
        rec = json.loads((run / "metrics.json").read_text()) | {"family": "stochastic_constrained"}
        (run / "metrics.json").write_text(json.dumps(rec))
        h = {"epoch": epochs[:10], "loss_total": np.full(10, 5.0), "max_abs_c": np.ones(10)}
        pd.DataFrame(h).to_csv(run / "history.csv", index=False)
    out = tmp_path / "figs" / "joined"
    capsys.readouterr()
    main(
        ["curves", "--results", str(tmp_path / "runs"), "--out-dir", str(out), "--with", str(data)]
    )
    assert "line 'sqp_adam' (butene, lr 0.0005) is named like a line already drawn" in (
        capsys.readouterr().err
    )
    joined = pd.read_csv(out / "sqp_momentum_butene_lr0.0005_mini.csv")
    assert dict(joined.groupby("line")["from"].first()) == {
        "adam_con": "seed2-paper",  # from the earlier figure
        "adam_unc": "runs",
        "sqp_adam": "runs",  # the runs' line kept, the CSV's left out
    }
    con = joined[joined["line"] == "adam_con"]
    np.testing.assert_allclose(con["loss_total.log10_mean"], 1.0 - epochs[idx] / 4000.0, atol=1e-4)
    assert joined[joined["line"] == "sqp_adam"]["loss_total.log10_mean"].round(4).eq(0.699).all()

    # a joined line keeps its first source when joined again; the CSV alone draws a figure
    alone = tmp_path / "figs" / "alone"
    main(["curves", "--out-dir", str(alone), "--with", str(out / data.name)])
    assert dict(pd.read_csv(alone / data.name).groupby("line")["from"].first()) == {
        "adam_con": "seed2-paper",
        "adam_unc": "joined",
        "sqp_adam": "joined",
    }
    assert (alone / "sqp_momentum_butene_lr0.0005_mini.png").is_file()

    (tmp_path / "foreign.csv").write_text("a,b\n1,2\n")
    for bad, says in (
        ([], "curves needs --results (runs) or --with"),
        (["--with", str(tmp_path / "nosuch.csv")], "no such curves CSV"),
        (["--with", str(tmp_path / "foreign.csv")], "is not the data of a loss-curves figure"),
    ):
        with pytest.raises(SystemExit) as e:
            main(["curves", "--out-dir", str(tmp_path / "f3")] + bad)
        assert e.value.code == 2 and says in capsys.readouterr().err
    assert not (tmp_path / "f3").exists()

"""Collect every ``metrics.json`` under ``results/`` into one table.

``python -m runners.tables --compare results/A results/B`` lists what changed between two
result sets, run by run (regression checks after a code change).

``python -m runners.tables [--results results] [--out results/tables] [--name summary]``
writes ``<out>/<name>.{md,csv,tex}``: one row per configuration, with mean ± std over
seeds of abs/rel error, max |c|, iterations and wall time. ``--where seed=0,1`` (any
recorded field, repeatable) tables only the runs whose field has one of the values: a
comparison on the seeds every method ran. Where the rows a comparison line sets side by
side average over different seeds, the line names both seed lists. ``--tail 0.1`` adds each
run's median over the last 10% of its logged iterations (``history.csv``) of the total loss
and max |c|, and a comparison line on them: a mini-batch curve that spikes by an order of
magnitude from one logged point to the next makes a run's final value one draw of that
noise. ``--with results/tables/X.csv`` adds an earlier table's rows to the runs' rows before
the comparison lines (:func:`join_table`): new runs judged against committed results whose
run folders are gone; with ``--pool``, a table row of a runs' row's configuration on other
seeds pools with it into one mean ± std over all the runs (:func:`pooled_row`), so seeds
run in separate sessions add up.

Runs are seeds of one row only when their whole resolved configuration except ``seed`` is
the same: every record carries ``group_hash``, the hash of that configuration (records
written before it existed get one from their recorded config fields). The config fields
(``problem.*``, ``method.*``, ``budget.*``, ``pretraining.*``, ``pretrain``, ``scale``,
``tag``...) whose values differ between runs of one problem and method, a value set in one
run and null or absent in another included, are the table's columns; if two
configurations still look alike, a ``config`` column shows their group hash.

A run whose status is not a result (:data:`runners.io.SUCCEEDED`; e.g. ``solver_failed``,
shown with its ``status_message`` as ``solver_failed: Invalid_Option``) is counted in
``failed`` and never averaged into a metric. A
``metrics.json`` that cannot be read is skipped with a one-line warning naming it, and
the skipped files are counted. Rewriting a table whose earlier version had rows, or runs in
a row, that the results no longer hold (a run folder deleted or moved) says which, in one
warning, before it overwrites (:func:`lost_rows`).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from runners.io import status_failed, status_text, write_atomic

METRICS = {
    "abs_error": "abs error",
    "rel_error": "rel error",
    "max_constraint_violation": "max |c|",
    # the stochastic_constrained family (SQP momentum): full-batch loss terms at the end
    "total": "total loss",
    "residual": "residual loss",
    "data": "data loss",
    "boundary": "boundary loss",
    "mass_balance": "mass-balance loss",
    "max_abs_c": "‖c‖∞",
    "test_mse": "test MSE",
    "iterations": "iterations",
    "wall_s": "wall s",
    "pretrain_c_sq": "pretrain ‖c̃‖²",
    "pretrain_ic_rel": "IC resid/‖u0‖",
    "pretrain_iterations": "pretrain it",
    # the neural_dae family (collocation / sequential)
    "smoothing.iterations": "step 1 it",
    "main.iterations": "step 3 it",
    "smoothing.wall_s": "step 1 s",
    "pretraining.wall_s": "step 2 s",
    "main.wall_s": "step 3 s",
    "objective": "objective",
    "train_mse": "train MSE",
    "max_violation": "max violation",
    "min_S": "min S (test)",
    "hours_S_negative": "h with S < 0",
    "refinement.iterations": "step 4 it",
    "refinement.wall_s": "step 4 s",
    "simulate_mse": "test MSE (simulated)",
    "simulate_min_S": "min S (simulated)",
    "simulate_hours_S_negative": "h with S < 0 (simulated)",
    "test_bound_violation": "below bounds (test)",
    "simulate_bound_violation": "below bounds (simulated)",
    "inference.network_violation": "network overruled",
    **{
        f"{a}{k}": f"{b} {k} {c}".strip()
        for k in (0, 1)
        for a, b, c in (
            ("test_mse_", "test MSE", ""),
            ("simulate_mse_", "test MSE", "(simulated)"),
            ("final_distance_to_equilibrium_", "end distance", ""),
            ("simulate_final_distance_to_equilibrium_", "end distance", "(simulated)"),
            ("max_V_increase_", "max V rise", ""),
            ("simulate_max_V_increase_", "max V rise", "(simulated)"),
        )
    },
    # the parametric_opt family (LISCO, IPOPT, OSQP): over the test split
    "gap_max": "max gap %",
    "gap_mean": "gap %",
    "eq_max_avg": "Max. Eq. (DC3: mean of each point's max)",
    "ineq_max_avg": "Max. Ineq. (DC3: mean of each point's max)",
    "eq_max": "max |Ay−x| (worst point)",
    "ineq_max": "max relu(Gy−h) (worst point)",
    "eq_mean": "mean |Ay−x|",
    "ineq_mean": "mean relu(Gy−h)",
    "time_median_s": "median s",
    "time_max_s": "max s",
    "success": "success",
    "it_median": "median it",
    "it_max": "max it",
    "throughput": "inst/s",
    "T_max": "max ½‖F‖²",
    "T_p99": "99th ½‖F‖²",
    "T_p50": "median ½‖F‖²",
    "pred.T_p50": "predictor median ½‖F‖²",  # the predictor alone (Table 1's "Pred.")
    "T_min": "min ½‖F‖²",
    **{f"frac{e}_it{k}": f"≤1e-{e} @{k}" for e in (6, 8) for k in (10, 20, 50, 100)},
    "predictor_train_s": "pred. train s",
    "predictor_steps_done": "pred. steps",
    "solver_train_s": "solver train s",
    "solver_steps_done": "solver steps",
}
# how a value compares with the paper's: lower is better except for these
HIGHER_IS_BETTER = {
    "success",
    "throughput",
    *(f"frac{e}_it{k}" for e in (6, 8) for k in (10, 20, 50, 100)),
}
NOT_JUDGED = {"predictor_steps_done", "solver_steps_done", "status"}
WORSE_FACTOR = 2.0


def worse_by(
    metric: str, ours: float | None, paper: float | None, rounding: float | None = None
) -> float | None:
    """How many times worse ours is than the paper's (≤ 1: as good or better); None when the
    metric is not judged or a value is missing. Zeros compare through a 1e-12 floor.

    ``rounding``: the paper printed its values to this step (0.001 for "0.000"), so a printed
    value stands for anything within half a step of it. Ours within half a step of the
    paper's value is equal at the paper's precision (factor 1); otherwise the comparison is
    with the nearest end of that interval (a printed 0.000 as 0.0005, never as 0)."""
    if metric in NOT_JUDGED or ours is None or paper is None:
        return None
    if rounding:
        half = rounding / 2
        if abs(abs(ours) - abs(paper)) <= half:
            return 1.0
        lo, hi = max(abs(paper) - half, 0.0), abs(paper) + half
        paper = hi if abs(ours) > hi else lo
    a, b = max(abs(ours), 1e-12), max(abs(paper), 1e-12)
    return b / a if metric in HIGHER_IS_BETTER else a / b


def verdict(factor: float | None) -> str:
    """``better`` (more than 2× better than the paper's), ``within 2×`` or ``worse`` (more
    than 2× worse), from :func:`worse_by`; '' when not judged."""
    if factor is None:
        return ""
    if factor > WORSE_FACTOR:
        return "worse"
    if factor < 1 / WORSE_FACTOR:
        return "better"
    return "within 2×"


def _normal_step_size_before(rec) -> str:
    """What an SQP-momentum record without ``normal_step_size`` ran: commit ae7b6ce recorded
    it as ``normal_step`` (auto | full | scaled; auto was the unit step for Algorithm 3);
    before that Algorithm 3 took the unit step and every other form the scaled one."""
    old = rec.get("method.normal_step")
    if old in ("full", "scaled"):
        return {"full": "unit", "scaled": "scaled"}[old]
    defossez = rec.get("method") == "sqp_adam" and rec.get("method.variant") == "defossez"
    return "unit" if defossez else "scaled"


# Options that differ from the paper's algorithm, by method: config key -> {value: label}.
# A run's ``variant`` is its method name plus the labels of the options it turned on, e.g.
# "trsqp + SOC (this project)"; with the paper's settings it is the method name alone.
OPTAX_LS = "this project's earlier default"  # optax's behaviour and optax's 30 reductions
STEP_ON_FAILURE = {"step": ("step on failed search", OPTAX_LS)}
SHORT_LS = {30: ("30 reductions", OPTAX_LS)}
_EARLIER = "this project's earlier default"
# SQP momentum: how the step size enters the normal component. The default scales it for
# every method (Algorithm 1's step, the authors' code); sqp_adam's Algorithm 3 took it in
# full until 2026-12-06
_UNIT_NORMAL = {"unit": ("unit normal step", "this project")}
VARIANTS = {
    "trsqp": {
        "second_order_correction": {True: ("SOC", "this project")},
        "secant_multiplier": {"current": ("textbook secant", "authors' code")},
        "radius_rule": {"scipy": ("SciPy radius rule", "authors' code")},
        "objective_reduction": {"sum": ("sum objective", "authors' code")},
        "kkt_stop": {True: ("KKT stop", _EARLIER)},
        "tiny_pred_exact": {True: ("η = 1 at roundoff Pred", _EARLIER)},
        # the two subproblems as the authors' code solves them (SciPy's) since 2026-12-06
        "normal_step": {"dogleg": ("textbook dogleg", _EARLIER)},
        "cg_test": {"norm": ("CG test on ‖Pr‖", _EARLIER)},
        "cg_maxiter": {500: ("CG cap 500", _EARLIER)},
    },
    "auglag": {
        "multiplier_update": {
            "textbook": ("textbook multiplier step", "this project"),
            "authors_code": ("2μ multiplier step", "authors' code"),
        },
        "solver": {"scipy": ("SciPy L-BFGS-B", "authors' code")},
        "on_linesearch_failure": STEP_ON_FAILURE,
        "max_linesearch_steps": SHORT_LS,
    },
    "penalty": {
        "solver": {"scipy": ("SciPy L-BFGS-B", "authors' code")},
        "on_linesearch_failure": STEP_ON_FAILURE,
        "max_linesearch_steps": SHORT_LS,
    },
    "pinn": {
        "solver": {"scipy": ("SciPy L-BFGS-B", "authors' code")},
        "on_linesearch_failure": STEP_ON_FAILURE,
        "max_linesearch_steps": SHORT_LS,
    },
    "sqp_adam": {
        "variant": {"iclr": ("ICLR-2025 Adam form", "predecessor")},
        "normal_step_size": _UNIT_NORMAL,
    },
    "sqp_heavyball": {"normal_step_size": _UNIT_NORMAL},
    "adam_con": {"normal_step_size": _UNIT_NORMAL},
}
# Problem options that differ from the authors' setup (SQP-momentum problems), labelled the
# same way on every method's row: problem -> config key -> {value: label}.
_SHARED = {
    "batch_terms": {"all": ("every term batched", _EARLIER)},
    "init": {"flax": ("Flax init", _EARLIER)},
}
PROBLEM_VARIANTS = {
    "spring": _SHARED,
    "butene": {
        **_SHARED,
        "normalize_inputs": {True: ("scaled inputs", "this project")},
        "normalize_outputs": {True: ("scaled outputs", "this project")},
    },
    "burgers": {**_SHARED, "x_grid": {"periodic": ("x_j = j/32", _EARLIER)}},
    # the authors' Darcy code batches every term, so "residual" is the departure there; it
    # fits the first 20% of each batch, where this project's earlier default fixed them
    "darcy": {
        **_SHARED,
        "batch_terms": {"residual": ("boundary and data unbatched", "this project")},
        "data_samples": {"fixed": ("fixed 20% labeled samples", _EARLIER)},
        "constraint_nodes": {"independent": ("independent constraint nodes", _EARLIER)},
    },
    # LISCO's problems: the paper samples 1000 test points per instance (since 2026-12-06)
    **{
        p: {"test_set": {"dc3": ("DC3's 833-point test split", _EARLIER)}}
        for p in ("qp", "nonconvex_qp", "rosenbrock")
    },
    # neural DAE problems: x(t0) fixed to the true initial state (the authors' code frees it)
    **{
        p: {"initial_state": {"fixed": ("fixed x(t0)", "this project")}}
        for p in ("tank_manifold", "population", "bioreactor")
    },
}
# neural DAE methods: the pretraining penalty of this project's earlier default, and test
# predictions other than each method's own (collocation: constrained inference; sequential:
# the integrated model)
VARIANTS["collocation"] = {
    "pretrain_regularizer": {"sum": ("‖θ‖² pretraining penalty", _EARLIER)},
    "inference": {"simulate": ("simulated test predictions", "this project")},
}
VARIANTS["lisco"] = {
    "convexification": {"iterate": ("eq. 14 at the pre-step iterate", _EARLIER)},
    "predictor_convexification": {False: ("exact predictor loss", _EARLIER)},
    "step_scale": {
        "v2": ("step 0.01·min(‖F‖, 1)·Π", "authors' later code"),
        "clamped": ("step min(‖F‖, 1)·Π", "this project"),
    },
    "start": {"v2": ("start y, λ ~ U[0, 1]", "authors' later code")},
    # the default is the authors' code's torch.nn.Linear initialisation (since 2026-12-02)
    "init": {"flax": ("Flax init", _EARLIER)},
    "solver_zero_init": {True: ("solver output layer at 0", _EARLIER)},
    "input_log": {"log10": ("log10 of ‖F‖ in the solver input", _EARLIER)},
}
VARIANTS["sequential"] = {"inference": {"constrained": ("constrained inference", "this project")}}
# OSQP's options: the paper's (CVXPY's) unless DC3's call (tight runs override both)
VARIANTS["osqp"] = {"settings": {"dc3": ("DC3's OSQP options", _EARLIER)}}
# every source a label can name (what :func:`shared_label` reads back)
SOURCES = {
    src
    for options in [*VARIANTS.values(), *PROBLEM_VARIANTS.values()]
    for labels in options.values()
    for _, src in labels.values()
}
# What a run recorded before an option existed did: it ran this value (the option's
# default then). on_linesearch_failure (added 2026-11-30, default ``step`` until the
# default became the authors' ``stop``) applies to the jitted optax solver only; the
# SQP-momentum problems' batch_terms, init and x_grid were added on 2026-11-30 too, Darcy's
# data_samples and constraint_nodes on 2026-12-05. trsqp stopped at the first KKT point
# until 2026-12-05, and solved its subproblems with the textbook dogleg and a CG test on
# ‖Pr‖ until 2026-12-06.
BEFORE_OPTION = {
    "kkt_stop": True,
    "tiny_pred_exact": True,  # trsqp until 2026-12-05
    "normal_step": "dogleg",  # trsqp until 2026-12-06 (cg_maxiter was always recorded)
    "cg_test": "norm",  # trsqp until 2026-12-06
    "settings": "dc3",  # osqp until 2026-12-05
    "input_log": "log10",  # lisco until 2026-12-05
    "on_linesearch_failure": "step",
    "pretrain_regularizer": "sum",
    "inference": "simulate",
    "convexification": "iterate",
    "predictor_convexification": False,  # until 2026-12-02
    # LISCO until 2026-12-02: Flax's initialisation, the solver's output layer at zero (the
    # records of 2026-12-01 without a solver_zero_init key ran it too)
    "init": "flax",
    "solver_zero_init": True,
    # SQP momentum until 2026-12-06: Algorithm 3 (sqp_adam's defossez form) took the normal
    # component in full; every other form scaled it (records before variant: the ICLR form)
    "normal_step_size": _normal_step_size_before,
}


BEFORE_PROBLEM_OPTION = {
    "batch_terms": "all",
    "init": "flax",
    "x_grid": "periodic",
    "data_samples": "fixed",
    "constraint_nodes": "independent",
    "test_set": "dc3",  # LISCO's problems until 2026-12-06
}


# Problems whose ``precision=auto`` is float32, as their authors' code ran them
# (``default_precision``; a test keeps this set equal to the registry's): a float64 run of
# one is this project's option, labelled. Named here so the tables need not import JAX.
FLOAT32_PROBLEMS = frozenset(
    {"transport", "reaction", "reaction_diffusion", "spring", "butene", "burgers", "darcy"}
)


def variant(rec) -> str:
    """``method`` + the labelled options of :data:`VARIANTS` and :data:`PROBLEM_VARIANTS`
    that the run turned on (a run recorded before an option existed ran
    :data:`BEFORE_OPTION`'s / :data:`BEFORE_PROBLEM_OPTION`'s value), and "float64 (this
    project)" for a float64 run of a problem of :data:`FLOAT32_PROBLEMS`."""
    method = rec.get("method")
    parts: dict[str, list[str]] = {}

    def label(options, prefix, before):
        for key, labels in options.items():
            if (
                key in ("on_linesearch_failure", "max_linesearch_steps")
                and rec.get("method.solver") == "scipy"
            ):
                continue  # SciPy's L-BFGS-B has its own line search; these are optax's
            if key == "settings" and _label(rec.get("method.tight")) == _label(True):
                continue  # a tight OSQP run sets its own tolerances
            value = before.get(key)
            value = rec.get(f"{prefix}{key}", value(rec) if callable(value) else value)
            for v, (text, source) in labels.items():
                if value is not None and _label(value) == _label(v):
                    parts.setdefault(source, []).append(text)

    label(VARIANTS.get(method, {}), "method.", BEFORE_OPTION)
    problem = rec.get("problem")
    if problem in PROBLEM_VARIANTS:
        label(PROBLEM_VARIANTS[problem], "problem.", BEFORE_PROBLEM_OPTION)
    if problem in FLOAT32_PROBLEMS and _label(rec.get("precision")) == "float64":
        parts.setdefault("this project", []).append("float64")
    return _form(str(method), [(text, src) for src, ls in parts.items() for text in ls])


CONFIG_PREFIXES = ("problem.", "method.", "pretraining.", "budget.")
CONFIG_KEYS = ("pretrain", "scale", "precision", "tag", "log_every", "eval_every")
IGNORED = {"problem.name", "method.name"}


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)


def collect(results: str | Path = "results", quiet: bool = False) -> pd.DataFrame:
    """Every run record under ``results`` (benchmarks excluded), one row each, with its
    folder (``path``) and ``failed`` (its status is not a result). The labels a record
    brings for its problem's metrics (``metric_labels``) are added to :data:`METRICS`
    (the project's own labels win), so a new problem's metrics are tabulated. A
    ``metrics.json`` that cannot be read or is not a run record is skipped with a one-line
    warning (unless ``quiet``); the skipped paths are in ``df.attrs["skipped"]``."""
    rows, skipped = [], []
    results = Path(results)
    for path in sorted(results.rglob("metrics.json")):
        if "bench" in path.relative_to(results).parts[:1]:
            continue
        try:
            rec = json.loads(path.read_text())
        except (OSError, ValueError) as e:  # writes are atomic: a damaged file
            skipped.append((str(path), f"not readable JSON ({type(e).__name__})"))
            continue
        if not (
            isinstance(rec, dict)
            and isinstance(rec.get("problem"), str)
            and isinstance(rec.get("method"), str)
        ):
            skipped.append((str(path), "not a run record (no problem and method names)"))
            continue
        for k, v in (rec.pop("metric_labels", None) or {}).items():
            METRICS.setdefault(str(k), str(v))  # a problem's own metrics join the tables
        status = rec.get("status")
        rec["failed"] = status_failed(status)
        rec["status"] = status_text(rec)  # with the solver's message, if any
        rec["variant"] = variant(rec)
        rec["path"] = str(path.parent)
        rows.append(rec)
    if not quiet:
        for path, why in skipped:
            warn(f"skipping {path}: {why}")
    df = pd.DataFrame(rows)
    df.attrs["skipped"] = skipped
    return df


def config_columns(df: pd.DataFrame) -> list[str]:
    return [
        c
        for c in df.columns
        if (c.startswith(CONFIG_PREFIXES) or c in CONFIG_KEYS) and c not in IGNORED
    ]


def group_ids(df: pd.DataFrame, over: tuple[str, ...] = ()) -> pd.Series:
    """Each run's configuration without its seed: the record's ``group_hash``, or for a
    record without one, a hash of its recorded config fields (seed excluded). ``over``:
    config fields a table averages over as it does over seeds (e.g. ``problem.instance``);
    with any, the hash of the recorded fields without them is used for every record."""
    cols = sorted(c for c in config_columns(df) if c not in over)

    def fallback(row) -> str:
        text = "|".join(
            f"{c}={_without_over(_label(row[c]), over)}" for c in ["problem", "method", *cols]
        )
        return "r" + hashlib.sha256(text.encode()).hexdigest()[:15]

    stored = (
        df["group_hash"]
        if "group_hash" in df.columns and not over
        else pd.Series(None, index=df.index)
    )
    return pd.Series(
        [
            g if isinstance(g, str) and g else fallback(row)
            for g, (_, row) in zip(stored, df.iterrows())
        ],
        index=df.index,
        dtype=str,
    )


def _without_over(text: str, over: tuple[str, ...]) -> str:
    """``text`` without the ``field=value`` items of the ``over`` fields that a Hydra sweep's
    folder name holds: a path such as LISCO's ``method.checkpoint``
    (``…/experiment=lisco,…,problem.instance=3,…``) names the instance it was trained on, so
    the evaluations of one training configuration's networks on instances 0–4 stay one
    configuration, while networks from another configuration's sweep stay apart."""
    for field in over:
        text = re.sub(rf"(^|[,/]){re.escape(field)}=[^,/']*,?", r"\1", text)
    return text


def failed_flags(df: pd.DataFrame) -> pd.Series:
    """Per run: its status is not a result (``collect``'s ``failed``; a frame built by hand
    without statuses has no failures)."""
    if "failed" in df.columns:
        return df["failed"].fillna(False).astype(bool)
    if "status" in df.columns:
        return df["status"].map(status_failed).astype(bool)
    return pd.Series(False, index=df.index, dtype=bool)


def swept_columns(df: pd.DataFrame) -> list[str]:
    """Config columns whose value differs between runs of one (problem, method); a value
    set in one run and null (or absent) in another counts as different."""
    swept = []
    for c in config_columns(df):
        as_text = df[c].map(_label)
        if (as_text.groupby([df["problem"], df["method"]]).nunique() > 1).any():
            swept.append(c)
    return swept


def summarize(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(numeric table with <metric>_mean/_std columns, display table with 'mean ± std').

    One row per configuration (:func:`group_ids`); ``seeds`` counts the runs averaged,
    ``failed`` the runs whose status is not a result (left out of every mean)."""
    swept = swept_columns(df)
    keys = ["problem", "method", *swept]
    if "variant" in df.columns and (df["variant"] != df["method"]).any():
        # the labelled forms and options (e.g. "sqp_adam + ICLR-2025 Adam form
        # (predecessor)") name the row; their raw config columns would only repeat it
        shown_by_variant = {f"method.{k}" for opts in VARIANTS.values() for k in opts}
        shown_by_variant |= {"method.variant"}
        shown_by_variant |= {f"problem.{k}" for opts in PROBLEM_VARIANTS.values() for k in opts}
        keys = ["problem", "method", "variant", *[c for c in swept if c not in shown_by_variant]]
    df = df.copy()
    df["_group"] = group_ids(df)
    for c in swept:
        df[c] = df[c].map(_label)
    if (df.groupby(keys)["_group"].transform("nunique") > 1).any():
        df["config"] = df["_group"].str[:8]  # alike in every recorded field, yet different
        keys.append("config")
    df["failed"] = failed = failed_flags(df)
    metrics = [m for m in METRICS if m in df.columns and df[m].notna().any()]
    for m in metrics:
        df[m] = pd.to_numeric(df[m], errors="coerce")
        df.loc[failed, m] = float("nan")  # a failed run's numbers are not results
    g = df.groupby(keys, dropna=False, sort=True)
    num = g[metrics].agg(["mean", "std"])
    num.columns = [f"{m}_{s}" for m, s in num.columns]
    num.insert(0, "seeds", g["failed"].agg(lambda f: int((~f.astype(bool)).sum())))
    num.insert(1, "failed", g["failed"].agg(lambda f: int(f.astype(bool).sum())))
    if "seed" in df.columns:  # which runs a mean is over: comparisons name unequal sets
        num.insert(2, "seed_list", g[["seed", "failed"]].apply(_seed_list))
    if "status" in df.columns:
        num["status"] = g["status"].agg(
            lambda s: ", ".join(f"{k}×{v}" if v > 1 else k for k, v in s.value_counts().items())
        )
    num = num.reset_index()
    return num, shown_table(num)


def summary_keys(num: pd.DataFrame) -> list[str]:
    """The columns that name a summary's rows: those before ``seeds``."""
    return list(num.columns[: list(num.columns).index("seeds")])


def shown_table(num: pd.DataFrame) -> pd.DataFrame:
    """The display table of a numeric summary (:func:`summarize`): its row keys, ``seeds``
    and ``failed``, each metric as ``mean ± std`` under its label, and what follows
    ``status`` (the status counts; ``rows from`` where :func:`join_table` added rows)."""
    keys = summary_keys(num)
    metrics = [m for m in METRICS if f"{m}_mean" in num.columns]
    shown = num[keys + ["seeds", "failed"]].copy()
    for m in metrics:
        mean, std = num[f"{m}_mean"], num[f"{m}_std"].fillna(0.0)
        fmt = (
            (lambda a, b: f"{a:.0f} ± {b:.0f}")
            if m == "iterations"
            else (lambda a, b: f"{a:.1f} ± {b:.1f}")
            if m == "wall_s"
            else (lambda a, b: f"{a:.4g} ± {b:.2g}")
        )
        raw = num[f"{m}_std"]  # NaN for a single seed: show the value alone
        shown[METRICS[m]] = [
            "–" if pd.isna(a) else fmt(a, b) if pd.notna(r) else fmt(a, 0.0).split(" ± ")[0]
            for a, b, r in zip(mean, std, raw)
        ]
    for c in ("status", "rows from"):
        if c in num.columns:
            shown[c] = num[c]
    return shown


def _seed_list(runs: pd.DataFrame) -> str:
    """The seeds of a row's runs that are results (failed runs left out), e.g. ``"0 1"``."""
    seeds = pd.to_numeric(runs.loc[~runs["failed"].astype(bool), "seed"], errors="coerce")
    return " ".join(f"{s:g}" for s in sorted(seeds.dropna().unique()))


# the summary's comparison lines: the paper's method, and the final values judged against it
REFERENCE_METHODS = {"sqp_adam": ("total", "test_mse")}


def against_method(
    num: pd.DataFrame,
    ref: str,
    metrics: tuple[str, ...],
    what: str = "its final value",
    names: dict[str, str] | None = None,
) -> str:
    """Markdown lines, one per setting of a summary (problem and every swept key but the
    method and its form: a learning rate and batch mode, say) that has a run of ``ref`` in
    the paper's form: each other method and form, better than ``ref`` (every metric more than
    2× lower), within 2× or worse (some metric more than 2× higher), with its mean / ref's
    mean per metric. ``what`` names the per-run value the means are of, ``names`` a
    metric's name in the line where it is not its table label. '' without such settings."""
    if num.empty or ref not in set(num["method"]):
        return ""
    form = num["variant"] if "variant" in num.columns else num["method"]
    context = [c for c in num.columns if c in ("problem", *swept_setting_columns(num))]
    metrics = tuple(m for m in metrics if f"{m}_mean" in num.columns)
    lines = []
    for key, rows in num.groupby(context, sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        # e.g. a problem option of every run, said once
        shared, forms = shared_label(form.loc[rows.index])
        base = rows[(rows["method"] == ref) & (forms == ref)]
        if len(base) != 1 or not metrics:
            continue
        judged = []
        for i, r in rows.drop(index=base.index).iterrows():
            kinds, ratios = set(), []
            for m in metrics:
                a, b = r[f"{m}_mean"], base.iloc[0][f"{m}_mean"]
                if pd.isna(a) or pd.isna(b):
                    continue
                kinds.add(verdict(worse_by(m, a, b)))
                name = (names or {}).get(m) or METRICS.get(m, m)
                ratios.append(f"{name} {max(abs(a), 1e-12) / max(abs(b), 1e-12):.3g}×")
            if kinds:
                text = ", ".join(ratios)
                theirs, ours = _seeds_of(r), _seeds_of(base.iloc[0])
                if theirs != ours:  # means over different runs: say so beside the ratio
                    text += f"; seeds {_seeds_text(theirs)} against {ref}'s {_seeds_text(ours)}"
                judged.append((str(forms.loc[i]), kinds, text))
        if judged:
            where = ", ".join(setting_label(c, k) for c, k in zip(context, key))
            if shared:
                where += "; every run: " + shared
            lines.append(f"- **{where}**, against {ref} ({what} / {ref}'s): " + _judged(judged))
    return "\n".join(lines)


def _seeds_of(row: pd.Series) -> str | None:
    """A summary row's ``seed_list`` (None for a frame without one: a hand-built table)."""
    v = row.get("seed_list")
    return None if v is None or (isinstance(v, float) and pd.isna(v)) else str(v)


def _seeds_text(seeds: str | None) -> str:
    """A row's seeds in a comparison line: ``"0 1"``, ``"none"`` (every run failed) or
    ``"not recorded"`` (a row without a seed list: an older table joined by ``--with``)."""
    return "not recorded" if seeds is None else seeds or "none"


# the metrics --tail takes from a run's history.csv: record field -> history column
TAIL_METRICS = {"total": "loss_total", "max_abs_c": "max_abs_c"}


class TailError(ValueError):
    """A --tail fraction outside (0, 1]."""


def check_tail(fraction: float) -> None:
    """Raise :class:`TailError` unless 0 < ``fraction`` ≤ 1 (NaN included)."""
    if not 0.0 < fraction <= 1.0:
        raise TailError(f"--tail: expected a fraction in (0, 1], got {fraction:g}")


def tail_label(metric: str, fraction: float) -> str:
    return f"{METRICS.get(metric, metric)} (median, last {fraction:.0%})"


def tail_medians(df: pd.DataFrame, fraction: float) -> pd.DataFrame:
    """``df`` with ``tail.<metric>`` columns (:data:`TAIL_METRICS`): each run's median of its
    logged values at iterations ≥ (1 − ``fraction``) × its last logged iteration, from the
    ``history.csv`` beside its record (rows of the history's last phase where it has
    phases; a row logged twice, after a resume, counts once). NaN for a run without that
    history or column. Their labels join :data:`METRICS`."""
    check_tail(fraction)
    df = df.copy()
    values = {m: [] for m in TAIL_METRICS}
    for path in df["path"] if "path" in df.columns else [None] * len(df):
        h = None
        if path is not None and (Path(path) / "history.csv").is_file():
            try:
                h = pd.read_csv(Path(path) / "history.csv")
            except (OSError, ValueError):
                h = None
        if h is not None and "iteration" in h.columns and len(h):
            if "phase" in h.columns:
                h = h[h["phase"] == h["phase"].iloc[-1]]
            h = h.drop_duplicates("iteration", keep="last")
            h = h[h["iteration"] >= (1.0 - fraction) * h["iteration"].max()]
        for m, column in TAIL_METRICS.items():
            ok = h is not None and column in h.columns
            values[m].append(pd.to_numeric(h[column], errors="coerce").median() if ok else None)
    for m in TAIL_METRICS:
        df[f"tail.{m}"] = pd.to_numeric(pd.Series(values[m], index=df.index), errors="coerce")
        METRICS[f"tail.{m}"] = tail_label(m, fraction)
    return df


def _labels(form: str) -> tuple[str, list[tuple[str, str]]] | None:
    """A form as :func:`variant` writes it, "method + a + b (source) + c (other)", split
    into the method and its (label, source) pairs; None when it does not read that way."""
    method, *segments = str(form).split(" + ")
    labels, pending = [], []
    for seg in segments:
        text, sep, source = seg.rpartition(" (")
        if sep and source.endswith(")") and source[:-1] in SOURCES:
            labels += [(t, source[:-1]) for t in [*pending, text]]
            pending = []
        else:
            pending.append(seg)
    return None if pending else (method, labels)


def _form(method: str, labels: list[tuple[str, str]]) -> str:
    """The inverse of :func:`_labels`: labels of one source joined before it (as
    :func:`variant` writes them)."""
    by: dict[str, list[str]] = {}
    for text, source in labels:
        by.setdefault(source, []).append(text)
    return " + ".join([method] + [f"{' + '.join(ts)} ({src})" for src, ts in by.items()])


def shared_label(forms: pd.Series) -> tuple[str, pd.Series]:
    """The labels every form of a setting carries (e.g. a problem option all its runs share,
    "independent constraint nodes (this project's earlier default)"), and each form without
    them, so that the reference method's row is found by its own form and a form keeps the
    source of its other labels; ('', forms) when they share none."""
    parsed = [_labels(f) for f in forms]
    if len(parsed) < 2 or any(p is None for p in parsed):
        return "", forms
    shared = [lab for lab in parsed[0][1] if all(lab in p[1] for p in parsed[1:])]
    if not shared:
        return "", forms
    rest = [_form(m, [lab for lab in labs if lab not in shared]) for m, labs in parsed]
    return _form("", shared).removeprefix(" + "), pd.Series(rest, index=forms.index)


SETTING_LABELS = {
    "method.full_batch": {"false": "mini-batch", "true": "full batch"},
    "method.lr": "lr",
}


def setting_label(column: str, value) -> str:
    """How a setting reads in a comparison line: 'spring', 'lr 0.0001', 'mini-batch'."""
    text = shown_label(_label(value))
    named = SETTING_LABELS.get(column)
    if column == "problem":
        return text
    if isinstance(named, dict):
        return named.get(text, f"{column} {text}")
    return f"{named or column} {text}"


def swept_setting_columns(num: pd.DataFrame) -> list[str]:
    """The summary's key columns that describe a setting, not a method or its form."""
    stats = {"seeds", "failed", "seed_list", "status", "config", "method", "variant", "problem"}
    stats.add("rows from")  # where a row's numbers come from (join_table), not a setting
    return [c for c in num.columns if not c.endswith(("_mean", "_std")) and c not in stats]


class WhereError(ValueError):
    """A ``--where`` filter names no recorded field, or keeps no run."""


def parse_where(items: list[str]) -> dict[str, list[str]]:
    """``["seed=0,1", "method=sqp_adam"]`` -> ``{"seed": ["0", "1"], "method": [...]}``."""
    where: dict[str, list[str]] = {}
    for item in items:
        field, eq, values = item.partition("=")
        if not eq or not field or not values:
            raise WhereError(f"--where: expected FIELD=VALUE[,VALUE...], got {item!r}")
        where.setdefault(field, []).extend(v for v in values.split(",") if v)
    return where


def _is(value, wanted) -> bool:
    """A recorded value equals a ``--where`` value: as numbers where both are (``5e-4``
    is ``0.0005``, ``1`` is ``1.0``), booleans in any case (``true``, ``True``), else as
    the text a row label shows. ``wanted`` may also be a Python value (``True``, ``30``)."""
    if not isinstance(wanted, str):
        wanted = _label(wanted)
    if isinstance(value, (bool, np.bool_)):
        return wanted.lower() == str(bool(value)).lower()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            return float(value) == float(wanted)
        except ValueError:
            return False
    return _label(value) == wanted


def select(df: pd.DataFrame, where: dict[str, list[str]]) -> pd.DataFrame:
    """The runs of ``df`` whose every ``where`` field has one of its values. Raises
    :class:`WhereError` (one line: the field and what the runs record) for a field no run
    records, or when no run is left."""
    keep = pd.Series(True, index=df.index)
    for field, values in where.items():
        if field not in df.columns:
            named = ", ".join(c for c in ("seed", "method", "problem") if c in df.columns)
            raise WhereError(
                f"--where: no run records {field!r}; fields include {named} and the "
                "config fields (e.g. method.lr)"
            )
        keep &= df[field].map(lambda v, vs=values: any(_is(v, w) for w in vs))
    if not keep.any():
        present = {f: ", ".join(sorted({shown_label(_label(v)) for v in df[f]})) for f in where}
        raise WhereError(
            "--where: no run matches "
            + "; ".join(f"{f}={','.join(v)} (recorded: {present[f]})" for f, v in where.items())
        )
    out = df[keep].copy()
    out.attrs = dict(df.attrs)
    return out


class WithError(ValueError):
    """A ``--with`` table that cannot join the runs' rows."""


def _status_counts(text: str) -> dict[str, int]:
    """{status: runs} of a summary's status cell ("max_iter×2, diverged")."""
    counts = {}
    for part in filter(None, (p.strip() for p in str(text).split(","))):
        name, _, n = part.partition("×")
        counts[name] = counts.get(name, 0) + (int(n) if n.isdigit() else 1)
    return counts


def pooled_row(a: pd.Series, b: pd.Series) -> pd.Series:
    """One summary row over the runs of two rows of the same configuration with disjoint
    seeds (``a``'s keys and order of columns): ``seeds``, ``failed`` and the status counts
    added, the seed lists merged, and each ``<metric>_mean`` / ``_std`` the mean and the
    sample standard deviation (ddof 1, as :func:`summarize`) over all the runs, exactly,
    from each row's mean, std and run count: with n = n_a + n_b, mean = (n_a m_a + n_b m_b)
    / n and std² = ((n_a − 1) s_a² + (n_b − 1) s_b² + n_a (m_a − mean)² + n_b (m_b − mean)²)
    / (n − 1). A row's metric that is empty counts no runs (its mean is taken to be over
    all its ``seeds``)."""
    out = a.copy()
    for col in a.index:
        if not col.endswith("_mean") or col.removesuffix("_mean") + "_std" not in a.index:
            continue
        std_col = col.removesuffix("_mean") + "_std"
        parts = []
        for r in (a, b):
            n, m = int(r["seeds"]), pd.to_numeric(r.get(col), errors="coerce")
            if n and pd.notna(m):
                s = pd.to_numeric(r.get(std_col), errors="coerce")
                parts.append((n, float(m), 0.0 if n == 1 or pd.isna(s) else float(s)))
        total = sum(n for n, _, _ in parts)
        if not total:
            out[col] = out[std_col] = np.nan
            continue
        mean = sum(n * m for n, m, _ in parts) / total
        ss = sum((n - 1) * s**2 + n * (m - mean) ** 2 for n, m, s in parts)
        out[col] = mean
        out[std_col] = np.sqrt(ss / (total - 1)) if total > 1 else np.nan
    for c in ("seeds", "failed"):
        out[c] = int(a[c]) + int(b[c])
    seeds = {float(x) for r in (a, b) for x in str(r["seed_list"]).split()}
    out["seed_list"] = " ".join(f"{x:g}" for x in sorted(seeds))
    if "status" in a.index:
        counts = _status_counts(a["status"])
        for k, v in _status_counts(b["status"]).items():
            counts[k] = counts.get(k, 0) + v
        ranked = sorted(counts.items(), key=lambda kv: -kv[1])
        out["status"] = ", ".join(f"{k}×{v}" if v > 1 else k for k, v in ranked)
    out["rows from"] = f"{a['rows from']} + {b['rows from']}"
    return out


def join_table(
    num: pd.DataFrame, path: str | Path, tail: float | None = None, pool: bool = False
) -> pd.DataFrame:
    """``num`` (a :func:`summarize` table of runs) with the rows of an earlier summary
    table's CSV at ``path`` added, for a comparison with runs whose folders are gone (a
    committed table of hours of compute, say) without re-running them. The runs' rows
    come first; an earlier row named like one of them (same keys: problem, method, form and
    swept settings) is left out, with a warning. A column ``rows from`` says which rows are
    the table's (its file name) and which the runs'.

    With ``pool``, such a row is instead pooled with the runs' row (:func:`pooled_row`:
    one row over both sets of runs, ``rows from`` "runs + X.csv"), so seeds run in separate
    sessions add up to one mean ± std; a row whose seeds overlap the runs' (or has no seed
    list) is left out as without ``pool``, with a warning.

    The earlier rows keep their means, spreads and seed lists, so the comparison lines
    (:func:`against_method`) judge them as they judge runs. Raises :class:`WithError` (one
    line) for a file that is no summary CSV, for rows told apart by other settings than the
    runs' (select runs with ``--where`` so both vary in the same ones), and, with ``tail``,
    for a table whose tail medians are not over that fraction (read from its ``.md``)."""
    path = Path(path)
    if not path.is_file():
        raise WithError(f"--with: no such table {str(path)!r}")
    try:
        old = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError) as e:
        raise WithError(f"--with: {path} is not a readable CSV ({e})") from None
    if not {"problem", "method", "seeds"} <= set(old.columns) or old.empty:
        raise WithError(
            f"--with: {path} is not a table python -m runners.tables wrote (it needs rows and "
            "the columns problem, method and seeds)"
        )
    num = num.copy()
    for df, other in ((num, old), (old, num)):
        if "variant" in summary_keys(other) and "variant" not in df.columns:
            df.insert(2, "variant", df["method"])  # rows without forms are the paper's
    ours, theirs = summary_keys(num), summary_keys(old)
    if set(ours) != set(theirs):
        raise WithError(
            f"--with: {path}'s rows are told apart by ({', '.join(theirs)}), the runs' by "
            f"({', '.join(ours)}); select runs (--where) that vary in the same settings"
        )
    if tail is not None and "tail.total_mean" in old.columns:
        md, label = path.with_suffix(".md"), tail_label("total", tail)
        if not md.is_file() or label not in md.read_text(encoding="utf-8"):
            raise WithError(
                f"--with: {path}'s tail medians are not over the last {tail:.0%} of each run "
                f"(its .md has no column {label!r}); drop --tail or use --tail that fraction"
            )
    for c in old.columns:
        if c in ours:
            old[c] = old[c].replace("", np.nan)
        elif c not in ("seed_list", "status", "rows from"):
            old[c] = pd.to_numeric(old[c].replace("", np.nan), errors="coerce")
    kept = [c for c in num.columns if c in old.columns and c != "rows from"]
    # a row an earlier --with brought in keeps the name of the table it came from
    came = old["rows from"].replace({"runs": path.name}) if "rows from" in old else path.name
    old = old[kept].assign(**{"rows from": came})
    if "rows from" not in num.columns:
        num["rows from"] = "runs"

    def names(df: pd.DataFrame) -> pd.Series:
        return df[ours].astype(str).agg(", ".join, axis=1)

    joined_before = dict(num.attrs.get("joined", {}))
    num_names, old_names = names(num), names(old)
    clash = old_names.isin(set(num_names))
    pooled = pd.Series(False, index=old.index)
    if pool and clash.any():
        for i in old.index[clash]:
            j = num.index[num_names == old_names[i]][0]
            mine = set(str(num.at[j, "seed_list"]).split()) if "seed_list" in num else set()
            theirs = set(str(old.at[i, "seed_list"]).split()) if "seed_list" in old else set()
            if not mine or not theirs or mine & theirs:
                continue  # seeds unknown or run twice: not pooled (warned below)
            for c in ("seeds", "failed"):
                v = pd.to_numeric(old.at[i, c], errors="coerce")
                old.at[i, c] = 0 if pd.isna(v) else int(v)
            num.loc[j] = pooled_row(num.loc[j], old.loc[i])
            pooled[i] = True
    left_out = clash & ~pooled
    if left_out.any():
        why = "seeds overlap or are not recorded" if pool else "named like rows of the runs"
        warn(
            f"--with: {path}'s row(s) {'; '.join(old_names[left_out])} {why}: the runs' rows "
            "are kept, the table's left out"
        )
    out = pd.concat([num, old[~clash]], ignore_index=True)
    for c in ("seeds", "failed"):
        out[c] = pd.to_numeric(out[c], errors="coerce").fillna(0).astype(int)
    joined_before[path.name] = {
        "rows": int((~clash).sum()),
        "runs": int(pd.to_numeric(old.loc[~clash | pooled, "seeds"], errors="coerce").sum()),
        "added": list(old.loc[~clash, "method"].astype(str)),
        "pooled": list(old_names[pooled]),
    }
    out.attrs["joined"] = joined_before
    return out


def write_tables(
    results: str | Path = "results",
    out: str | Path | None = None,
    name: str = "summary",
    where: dict[str, list[str]] | None = None,
    tail: float | None = None,
    with_tables: list[str | Path] = (),
    pool: bool = False,
) -> pd.DataFrame | None:
    """Write ``<out>/<name>.{md,csv,tex}`` from the runs under ``results`` (those ``where``
    selects, :func:`select`; with ``tail``, each run's medians over the last ``tail`` of
    its logged iterations too, :func:`tail_medians`) and the rows of the earlier tables
    ``with_tables`` (:func:`join_table`; with ``pool``, pooled with the runs' rows of the
    same configuration); None when there are no runs."""
    if tail is not None:
        check_tail(tail)  # before anything is read or written
    df = collect(results)
    out = Path(out) if out is not None else Path(results) / "tables"
    if df.empty:
        return None
    if where:
        df = select(df, where)
    if tail is not None:
        df = tail_medians(df, tail)
    num, shown = summarize(df)
    for path in with_tables:
        num = join_table(num, path, tail, pool)
    if with_tables:
        shown = shown_table(num)
    shown.attrs["skipped"] = df.attrs.get("skipped", [])
    say_lost(out / f"{name}.csv", lost_rows(out / f"{name}.csv", num), results)
    lines = [against_method(num, ref, ms) for ref, ms in REFERENCE_METHODS.items()]
    if tail is not None:
        what = f"the median of its last {tail:.0%} of logged values"
        names = {f"tail.{m}": METRICS.get(m, m) for m in TAIL_METRICS}
        lines += [
            against_method(num, ref, ("tail.total",), what, names) for ref in REFERENCE_METHODS
        ]
    judged = "\n\n".join(t for t in lines if t)
    write_atomic(out / f"{name}.csv", num.to_csv(index=False))
    write_atomic(
        out / f"{name}.md",
        shown.to_markdown(index=False)
        + "\n\n"
        + (judged + "\n\n" if judged else "")
        + (f"_Runs selected by --where {_where_text(where)}._\n\n" if where else "")
        + provenance(df, results)
        + "".join(f"\n\n{joined(num, p)}" for p in with_tables)
        + "\n",
    )
    write_atomic(out / f"{name}.tex", shown.to_latex(index=False, escape=True))
    return shown


def joined(num: pd.DataFrame, path: str | Path) -> str:
    """The provenance line of the rows :func:`join_table` took from the table ``path``."""
    info = num.attrs.get("joined", {}).get(Path(path).name)
    if info is None:  # rows joined without join_table's record: count what is labelled
        rows = num[num["rows from"] == Path(path).name]
        info = {"rows": len(rows), "runs": int(rows["seeds"].sum())}
        info |= {"added": list(rows["method"].astype(str)), "pooled": []}
    pooled = (
        "; pooled with the rows of the same configuration (one mean ± std over all their "
        f"seeds; `rows from` names this table after `runs`): {'; '.join(info['pooled'])}"
        if info["pooled"]
        else ""
    )
    return (
        f"_Rows from `{path}` ({info['rows']} rows added, {info['runs']} of its runs used; an "
        f"earlier table, `--with`: where and when its runs ran is in its .md): "
        f"{', '.join(info['added']) or 'none added'}{pooled}._"
    )


def _where_text(where: dict[str, list[str]]) -> str:
    return " ".join(f"`{f}={','.join(v)}`" for f, v in where.items())


def lost_rows(old_csv: str | Path, new: pd.DataFrame, keys: list[str] | None = None) -> list[str]:
    """Rows of the table ``old_csv`` (an earlier version of the one about to be written)
    that ``new`` drops, or averages over fewer runs (``seeds``), as ``"k=v, ... (n runs ->
    m)"``. A table keeps no copy of its runs' records, so a run folder deleted or moved
    since would otherwise vanish from a rewritten table without a word.

    ``keys`` name a row in both tables (the long experiment table's ``row`` and ``col``;
    its lines per metric count their most runs); by default a table's columns before
    ``seeds`` name its rows. Rows are matched on the keys both tables have, compared as the
    CSV writes them; where the earlier table had more key columns (a setting that no longer
    differs between the runs left), its rows are summed over the missing ones. An unreadable
    or absent earlier table loses nothing."""
    old_csv = Path(old_csv)
    if not old_csv.is_file() or "seeds" not in new.columns:
        return []
    try:
        old = pd.read_csv(old_csv, dtype=str, keep_default_na=False)
    except (OSError, ValueError):
        return []
    new = pd.read_csv(io.StringIO(new.to_csv(index=False)), dtype=str, keep_default_na=False)
    if "seeds" not in old.columns:
        return []

    def row_keys(df: pd.DataFrame) -> list[str]:
        own = list(df.columns[: list(df.columns).index("seeds")])
        return own if keys is None else [k for k in keys if k in df.columns]

    shared = [k for k in row_keys(new) if k in row_keys(old)]
    if not shared:
        return []

    def runs(df: pd.DataFrame) -> dict:
        n = pd.to_numeric(df["seeds"], errors="coerce").fillna(0).astype(int)
        per_row = n.groupby([df[k] for k in row_keys(df)]).max().reset_index()
        return per_row.groupby(shared)["seeds"].sum().to_dict()

    before, after = runs(old), runs(new)
    lost = []
    for key, n in before.items():
        m = after.get(key, 0)
        if n > m:
            key = key if isinstance(key, tuple) else (key,)
            what = ", ".join(f"{k}={v}" for k, v in zip(shared, key) if v != "")
            lost.append(f"{what} ({n} runs -> {m})")
    return lost


def say_lost(path: Path, lost: list[str], results) -> None:
    """One warning naming what :func:`lost_rows` found, before ``path`` is overwritten."""
    if lost:
        warn(
            f"{path} had {len(lost)} row(s) that the table rewritten from {results} lacks "
            f"or averages over fewer runs (a run folder deleted or moved, or a row whose "
            f"label changed; restore the run folders, or the old table from git): "
            + "; ".join(lost)
        )


def provenance(df: pd.DataFrame, results) -> str:
    """Where a table's numbers come from, as one markdown line: the runs (count, scale,
    device, the CPUs each could use (XLA:CPU's reductions round by that count:
    :func:`runners.plumbing.usable_cpus`), the code's commit, when they finished) and the
    table (when, on what machine)."""
    import os
    import platform
    from datetime import datetime, timezone

    from runners.io import git_commit

    def values(col):
        present = df[col].dropna() if col in df.columns else pd.Series([], dtype=str)
        v = sorted({f"{x:g}" if isinstance(x, float) else str(x) for x in present})
        missing = len(df) - len(present)
        return ", ".join(v + ([f"not recorded ({missing} runs)"] if missing else []))

    done = sorted(str(x) for x in df.get("finished_at", pd.Series([], dtype=str)).dropna())
    when = f"{done[0]} – {done[-1]}" if done else "not recorded"
    now = datetime.now(timezone.utc).isoformat(timespec="minutes")
    return (
        f"_Runs: {len(df)} under `{results}`; scale {values('scale')}; device "
        f"{values('device')}; CPUs per run {values('cpus')}; code commit {values('commit')}; "
        f"finished {when}. Table: "
        f"`python -m runners.tables`, commit {git_commit()}, {platform.platform()} with "
        f"{os.cpu_count()} CPUs, {now}._"
    )


CONF_DIR = Path(__file__).resolve().parent.parent / "conf"


def _label(value) -> str:
    """How a config value names a row/column (and keys the paper's values)."""
    if value is None or (isinstance(value, float) and value != value):  # missing: None / NaN
        return "None"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(float(value))
    return str(value)


def shown_label(label) -> str:
    """How a row/column label reads in prose: whole numbers without a trailing '.0'
    ("-50", not "-50.0"; "reaction/100", not "reaction/100.0"); other parts unchanged."""

    def part(text: str) -> str:
        try:
            x = float(text)
        except ValueError:
            return text
        return str(int(x)) if x.is_integer() and abs(x) < 1e15 else text

    return "/".join(part(p) for p in str(label).split("/"))


def numeric_first(label: str) -> tuple:
    """Sort key of one label: numbers by value (−50 < −20 < 1 < 10 < 100), then text."""
    try:
        return (0, float(label), "")
    except ValueError:
        return (1, 0.0, label)


def _natural(key: str) -> tuple:
    """Sort key for a row label "a/b/...": :func:`numeric_first` part by part (N = 100 before
    1000)."""
    return tuple(numeric_first(p) for p in key.split("/"))


def experiment_specs(name: str) -> dict[str, dict]:
    """The experiment's table specs by output name: ``table`` -> {name: spec}, or
    ``tables: {key: spec}`` (several tables from one sweep) -> {name_key: spec}."""
    from omegaconf import OmegaConf

    path = CONF_DIR / "experiment" / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml"))
        raise SystemExit(
            f"error: experiment: unknown experiment {name!r}; valid choices: {', '.join(known)}"
        )
    node = OmegaConf.load(path)
    if node.get("tables"):
        specs = OmegaConf.to_container(node.get("tables"), resolve=False)
        return {f"{name}_{k}": v for k, v in specs.items()}
    spec = OmegaConf.to_container(node.get("table"), resolve=False) if node.get("table") else None
    if not spec:
        raise SystemExit(f"error: experiment: {name!r} has no table section")
    return {name: spec}


def experiment_spec(name: str) -> dict:
    """The single table of an experiment (the first, for a multi-table one)."""
    return next(iter(experiment_specs(name).values()))


def one_configuration(
    runs: pd.DataFrame,
    where: str,
    notes: list | None = None,
    context: str = "",
    over: tuple[str, ...] = (),
) -> pd.DataFrame:
    """The runs of one table cell that share one configuration: with several, the newest
    configuration (latest ``finished_at``), and a one-line warning naming the fields that
    differ and the runs left out (also appended to ``notes``, for the table's footnote;
    the warning starts with ``context``, e.g. the table's name). ``runs`` needs ``_group``
    (:func:`group_ids`); ``over``: the fields a cell averages over, not named as
    differences."""
    if runs.empty or runs["_group"].nunique() <= 1:
        return runs
    stamp = (
        runs["finished_at"].map(lambda v: v if isinstance(v, str) else "")
        if "finished_at" in runs.columns
        else pd.Series("", index=runs.index)
    )
    newest = runs.loc[stamp.idxmax(), "_group"]
    keep = runs[runs["_group"] == newest]
    differ = [
        c for c in config_columns(runs) if c not in over and runs[c].map(_label).nunique() > 1
    ]
    shown = ", ".join(f"{c}={_label(keep[c].iloc[0])}" for c in differ if c in keep.columns)
    message = (
        f"{where}: runs of {runs['_group'].nunique()} configurations (differing in "
        f"{', '.join(differ) or 'fields not in the records'}); showing the newest "
        f"({len(keep)} run{'s' if len(keep) != 1 else ''}"
        + (f": {shown}" if shown else "")
        + f"), leaving out {len(runs) - len(keep)}"
    )
    warn(context + message)
    if notes is not None:
        notes.append(message)
    return keep


def experiment_table(df: pd.DataFrame, spec: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The paper's layout: rows × columns of 'ours (paper)' cells, and a long numeric table.

    ``spec`` is the ``table`` node of ``conf/experiment/<name>.yaml``: ``rows`` and ``cols``
    (lists of metrics.json fields), ``metrics`` and ``paper`` (row label -> column label ->
    one value per metric). A cell averages the runs of one configuration
    (:func:`one_configuration`); failed runs are counted (``failed``), never averaged.
    ``over`` (optional): config fields a cell averages over besides the seed, e.g.
    ``[problem.instance]`` for LISCO's mean (std) over problem instances; the long table's
    ``seeds`` then counts runs.
    """
    rows, cols, metrics = spec["rows"], spec["cols"], spec["metrics"]
    paper = {str(r): {str(c): v for c, v in cs.items()} for r, cs in spec.get("paper", {}).items()}
    over = tuple(spec.get("over", ()))
    df = df.copy()
    for f in rows + cols:
        if f not in df.columns:
            df[f] = None
    df["_group"] = group_ids(df, over) if len(df) else pd.Series([], dtype=str)
    df["_failed"] = failed_flags(df)
    df["_row"] = ["/".join(_label(v) for v in vals) for vals in df[rows].itertuples(index=False)]
    # derived rows: metrics a run stores under a prefix (LISCO's predictor alone: "pred.")
    for d in spec.get("derived", []):
        mask = pd.Series(True, index=df.index)
        for f, v in d.get("where", {}).items():
            mask &= df[f].map(_label) == _label(v) if f in df.columns else False
        extra = df[mask & (df["_row"] != d["label"])].copy()
        for m in metrics:
            extra[m] = extra[d["prefix"] + m] if d["prefix"] + m in extra.columns else None
        extra["_row"] = d["label"]
        df = pd.concat([df, extra], ignore_index=True)
    names = {str(k): v for k, v in spec.get("row_names", {}).items()}
    if spec.get("only_rows"):  # keep the rows the paper's table has (others in other tables)
        keep = {str(r) for r in spec["only_rows"]}
        df = df[df["_row"].isin(keep)]
    df["_col"] = ["/".join(_label(v) for v in vals) for vals in df[cols].itertuples(index=False)]
    row_keys = list(paper) + sorted(set(df["_row"]) - set(paper), key=_natural)
    col_keys = list(dict.fromkeys([c for r in paper.values() for c in r] + sorted(set(df["_col"]))))
    title = spec.get("title", "table")
    long, shown, mixed = [], [], []
    for r in row_keys:
        line = {"/".join(rows): names.get(r, r)}
        for c in col_keys:
            runs = one_configuration(
                df[(df["_row"] == r) & (df["_col"] == c)],
                f"{names.get(r, r)} × {c}",
                mixed,
                f"{title.split(':')[0]}: ",
                over,
            )
            n_failed = int(runs["_failed"].sum())
            ok = runs[~runs["_failed"]]
            note = f" [{n_failed} failed]" if n_failed else ""
            ref = paper.get(r, {}).get(c)
            for i, m in enumerate(metrics):
                p = ref[i] if ref is not None and i < len(ref) else None
                if m == "status":  # text: the statuses of the runs
                    st = runs[m].dropna().astype(str) if m in runs else pd.Series([], dtype=str)
                    line[f"{c} status"] = ", ".join(st.unique()) or "–"
                    continue
                vals = pd.to_numeric(ok[m], errors="coerce").dropna() if m in ok else []
                mean = float(vals.mean()) if len(vals) else None
                std = float(vals.std()) if len(vals) > 1 else None
                factor = worse_by(m, mean, p, spec.get("paper_rounding"))
                long.append(
                    {
                        "row": r,
                        "name": names.get(r, r),  # the row as the table shows it
                        "col": c,
                        "metric": m,
                        "mean": mean,
                        "std": std,
                        "seeds": len(vals),
                        "failed": n_failed,
                        "paper": p,
                        "ours/paper": None
                        if mean is None or p is None
                        else mean / p
                        if p
                        else 1.0
                        if mean == 0
                        else float("inf"),
                        "factor": factor,
                        "rounding": spec.get("paper_rounding"),
                        "verdict": verdict(factor),
                    }
                )
                ours = "–" if mean is None else f"{mean:.3g}" + (f" ± {std:.1g}" if std else "")
                line[f"{c} {METRICS.get(m, m)}"] = (
                    ours + note + (f" ({p:.3g})" if p is not None else "")
                )
        shown.append(line)
    long = pd.DataFrame(long)
    long.attrs["mixed_cells"] = mixed  # cells whose runs had several configurations
    return long, pd.DataFrame(shown)


def mixed_cells(long: pd.DataFrame) -> str:
    """The footnote of a table with cells whose runs had several configurations: which
    configuration each such cell shows (the newest) and what was left out; '' when none."""
    notes = long.attrs.get("mixed_cells", [])
    if not notes:
        return ""
    return "_Cells with runs of several configurations: " + "; ".join(notes) + "._"


def _judged(rows: list[tuple[str, set, str]]) -> str:
    """'better: …; … · within 2×: … · worse: …' from (row label, verdicts, ratios) per row:
    a row is worse if some metric is more than 2× worse, better if every one is more than
    2× better, within 2× otherwise."""
    groups: dict[str, list[str]] = {"better": [], "within 2×": [], "worse": []}
    for label, v, ratios in rows:
        kind = "worse" if "worse" in v else "better" if v == {"better"} else "within 2×"
        groups[kind].append(f"{label} ({ratios})")
    return " · ".join(f"{k}: " + "; ".join(v) for k, v in groups.items() if v)


def _ratio_text(label: str, r: pd.Series) -> str:
    """'<metric> <ours/paper>×'; for a table whose paper values are rounded
    (``paper_rounding``): '<metric> = to <step>' when equal at the paper's precision, else
    :func:`worse_by`'s factor against the nearer end of the printed value's interval."""
    if pd.notna(r.get("rounding")) and pd.notna(r.get("factor")):
        return (
            f"{label} = to {r['rounding']:g}"
            if r["factor"] == 1.0
            else f"{label} {r['factor']:.3g}×"
        )
    return f"{label} {r['ours/paper']:.3g}×"


def _row_name(row: str, cells: pd.DataFrame) -> str:
    """A row as the table shows it (the experiment's ``row_names``), for prose."""
    if "name" in cells.columns and cells["name"].notna().any():
        name = str(cells["name"].dropna().iloc[0])
        if name != row:
            return name
    return shown_label(row)


def against_paper(long: pd.DataFrame, source: str = "the paper") -> str:
    """Markdown lines, one per column of the table (a problem, say): which rows are better
    than the paper's (every judged metric more than 2× better), within 2× or worse (some
    metric more than 2× worse), with ours / paper per metric; '' without paper values.
    ``source``: where the reference values come from (a table's ``paper_source``, for
    values that are not the paper's own)."""
    if long.empty or "verdict" not in long.columns:
        return ""
    judged = long[long["verdict"].fillna("") != ""]
    lines = []
    for col, cells in judged.groupby("col", sort=False):
        rows = [
            (
                _row_name(row, c),
                set(c["verdict"]),
                ", ".join(
                    _ratio_text(METRICS.get(r["metric"], r["metric"]), r) for _, r in c.iterrows()
                ),
            )
            for row, c in cells.groupby("row", sort=False)
        ]
        ref = "paper" if source == "the paper" else "theirs"
        lines.append(f"- **{shown_label(col)}** against {source} (ours / {ref}): " + _judged(rows))
    return "\n".join(lines)


def against_column(long: pd.DataFrame, ref: str) -> str:
    """Markdown lines, one per column other than ``ref`` (a method, say ``trsqp``): which
    rows it is better than ``ref`` in (every judged metric more than 2× better), within 2×
    of it, or worse than it (some metric more than 2× worse), with the ratio column / ref
    per metric from our runs and, in brackets, the same ratio from the paper's values: the
    paper's claim about its method next to what these runs say. '' without ``ref``."""
    if long.empty or ref not in set(long["col"]):
        return ""
    base = long[long["col"] == ref].set_index(["row", "metric"])
    lines = []
    for col, cells in long[long["col"] != ref].groupby("col", sort=False):
        rows = []
        for row, c in cells.groupby("row", sort=False):
            kinds, ratios = set(), []
            for _, r in c.iterrows():
                m = r["metric"]
                if (row, m) not in base.index or m in NOT_JUDGED:
                    continue
                b = base.loc[(row, m)]
                if pd.isna(r["mean"]) or pd.isna(b["mean"]):  # a cell without runs
                    continue
                kinds.add(verdict(worse_by(m, r["mean"], b["mean"])))
                paper = (
                    ""
                    if pd.isna(r["paper"]) or pd.isna(b["paper"])
                    else f" ({r['paper'] / b['paper']:.3g}×)"
                )
                ratios.append(f"{METRICS.get(m, m)} {r['mean'] / b['mean']:.3g}×{paper}")
            if kinds:
                rows.append((_row_name(row, c), kinds, ", ".join(ratios)))
        if rows:
            lines.append(
                f"- **{shown_label(col)}** against {ref} (its error / {ref}'s, ours "
                "and, in brackets, the paper's): " + _judged(rows)
            )
    return "\n".join(lines)


def _cell(rec, fields: list[str]) -> str:
    """A run's table cell as prose names it: its row and column fields, e.g. 'reaction/100'."""
    return shown_label("/".join(_label(rec.get(f)) for f in fields))


def time_capped(df: pd.DataFrame, fields: list[str]) -> str:
    """The runs that ``budget.time_s`` stopped, as one markdown line naming each by the
    table's row and column fields and the iterations it reached ('' if none did)."""
    if "status" not in df.columns:
        return ""
    cut = df[df["status"] == "time_budget"]
    if not len(cut):
        return ""
    names = sorted(
        (_cell(r, fields), int(r["iterations"]) if pd.notna(r.get("iterations")) else None)
        for _, r in cut.iterrows()
    )
    return (
        "_Stopped by the time budget (budget.time_s) before the method's own stop: "
        + "; ".join(f"{n} at {it} iterations" if it is not None else n for n, it in names)
        + "._"
    )


def failed_search_end(df: pd.DataFrame, fields: list[str]) -> str:
    """The single-solve runs (``pinn``: one L-BFGS solve at a fixed μ) whose solve ended by
    a failed line search rather than by (A.1)'s tests, as one markdown line naming each by
    the table's fields ('' if none). With ``on_linesearch_failure=stop`` such a solve keeps
    θ, so its step is 0 ≤ f_tol and its status reads ``converged``, as it would at roundoff
    near a minimiser; SciPy reports the same end as ABNORMAL_TERMINATION_IN_LNSRCH. The
    record's ``inner_ends_linesearch`` tells them apart: this note says which runs it was."""
    if not len(df) or "inner_ends_linesearch" not in df.columns or "method" not in df.columns:
        return ""
    ended = df[
        (df["method"] == "pinn")
        & (pd.to_numeric(df["inner_ends_linesearch"], errors="coerce").fillna(0) > 0)
    ]
    names = sorted({_cell(r, fields) for _, r in ended.iterrows()})
    if not names:
        return ""
    return (
        "_Ended by a failed line search (θ kept; SciPy's ABNORMAL_TERMINATION_IN_LNSRCH), "
        "not by (A.1)'s tests, though the status reads converged: " + "; ".join(names) + "._"
    )


def earlier_line_search(df: pd.DataFrame, fields: list[str]) -> str:
    """The runs made with the earlier line-search default (optax's step after a failed
    search, at most 30 reductions) where the table's labels do not say so, as one markdown
    line naming each by the table's fields ('' if none): in pretraining only (recorded
    before ``pretraining.on_linesearch_failure`` existed, or with its earlier values;
    trsqp's column then still names the method as it ran), or in the method too (a
    baseline whose variant says it, in a table whose fields do not show the variant). A
    cell that also has a run with today's default shows that one (the newest), so is not
    named."""
    if not len(df):
        return ""

    def column(name, fill):
        return (
            df[name].map(lambda v: fill if v is None or v != v else v)
            if name in df.columns
            else pd.Series(fill, index=df.index)
        )

    # not today's pretraining line search: recorded before the option existed, or run
    # with the earlier values; SciPy's pretraining has its own line search, and a strong-
    # Wolfe (zoom) search's step cap is the run's own setting, not the earlier default
    backtracking = column("pretraining.linesearch", "backtracking") == "backtracking"
    before = (
        (column("pretraining.on_linesearch_failure", "step") != "stop")
        | ((column("pretraining.max_linesearch_steps", 30) != 100) & backtracking)
    ) & (column("pretraining.solver", "optax") != "scipy")
    before = before.to_numpy().astype(bool)
    pre = (
        df["pretrain"].fillna(False).astype(bool).to_numpy()
        if "pretrain" in df.columns
        else np.zeros(len(df), bool)
    )
    # the line-search labels themselves: other labels share their source ("this project's
    # earlier default") and say nothing about a line search
    ls_texts = {t for opts in (STEP_ON_FAILURE, SHORT_LS) for t, _ in opts.values()}

    def names_line_search(form) -> bool:
        parsed = _labels(str(form))
        return bool(parsed) and any(text in ls_texts for text, _ in parsed[1])

    says = (
        df["variant"].map(names_line_search).to_numpy().astype(bool)
        if "variant" in df.columns
        else np.zeros(len(df), bool)
    )
    shown = "variant" in fields
    method_old = says & (not shown)
    pre_only = pre & before & ~says
    newer = {_cell(r, fields) for _, r in df[~before & ~says].iterrows()}
    parts = []
    for mask, what in ((pre_only, "in pretraining"), (method_old, "in the method and pretraining")):
        names = sorted({_cell(r, fields) for _, r in df[mask].iterrows()} - newer)
        if names:
            parts.append(f"{what}: " + "; ".join(names))
    if not parts:
        return ""
    return (
        "_Ran with the earlier line-search default (optax's step after a failed search, "
        "at most 30 reductions; now: stop, 100), " + " · ".join(parts) + "._"
    )


def averaged_over(df: pd.DataFrame, long: pd.DataFrame, spec: dict) -> str:
    """The footnote of a table whose cells average over config fields (``over``): which
    values ran and how many runs each cell holds; '' without ``over``."""
    over = [f for f in spec.get("over", ()) if f in df.columns]
    if not over or long.empty:
        return ""
    ran = {f: sorted({shown_label(_label(v)) for v in df[f].dropna()}, key=_natural) for f in over}
    values = "; ".join(f"{f} ∈ {{{', '.join(v)}}}" for f, v in ran.items())
    n = long.loc[long["seeds"] > 0, "seeds"]
    counts = f"{n.min()}" if n.min() == n.max() else f"{n.min()}–{n.max()}"
    return (
        f"_Each cell: mean ± std over {', '.join(over)} (and seeds), not one run: {values}; "
        f"{counts} runs per filled cell._"
    )


def labelled_runs(df: pd.DataFrame, spec: dict) -> str:
    """The footnote of a table whose rows do not show :func:`variant`: which rows hold runs
    with options other than the defaults, and their labels (e.g. a LISCO row of networks
    trained at this project's earlier default); '' when none."""
    rows = spec["rows"]
    if df.empty or "variant" not in df.columns or "variant" in rows + spec["cols"]:
        return ""
    names = {str(k): v for k, v in spec.get("row_names", {}).items()}
    keep = {str(r) for r in spec.get("only_rows", [])}
    keys = [
        "/".join(_label(v) for v in vals)
        for vals in df.reindex(columns=rows).itertuples(index=False)
    ]
    found: dict[str, set[str]] = {}
    for key, (_, r) in zip(keys, df.iterrows()):
        form, method = str(r["variant"]), str(r.get("method"))
        if form == method or (keep and key not in keep):
            continue
        found.setdefault(names.get(key, key), set()).add(form.removeprefix(method + " + "))
    if not found:
        return ""
    return (
        "_Rows with runs at options other than the defaults: "
        + "; ".join(f"{k}: {' | '.join(sorted(v))}" for k, v in sorted(found.items()))
        + "._"
    )


def rounding_note(spec: dict) -> str:
    """The footnote of a table whose paper values are compared at the paper's precision."""
    r = spec.get("paper_rounding")
    if not r:
        return ""
    return (
        f"_The paper prints its values to {r:g}: ours within ±{r / 2:g} of a printed value "
        f'is equal to it ("= to {r:g}"); otherwise the factor is against the nearer end '
        f"of that interval (a printed 0.000 counts as {r / 2:g}, not as 0)._"
    )


def write_experiment(
    name: str, results: str | Path, out: str | Path, stem: str | None = None
) -> dict:
    """Every table of experiment ``name`` -> <out>/<table>.{md,csv,tex}; {table: shown}.
    ``stem`` replaces the experiment's name in the file names (the same table from another
    set of runs, e.g. ``trsqp_hessian_h200``)."""
    df, out, written = collect(results), Path(out), {}
    for table, spec in experiment_specs(name).items():
        table = table if stem is None else stem + table[len(name) :]
        long, shown = experiment_table(df, spec)
        title = spec.get("title", table)
        say_lost(
            out / f"{table}.csv", lost_rows(out / f"{table}.csv", long, ["row", "col"]), results
        )
        write_atomic(out / f"{table}.csv", long.to_csv(index=False))
        fields = spec["rows"] + spec["cols"]
        parts = [
            f"# {title}",
            shown.to_markdown(index=False),
            against_paper(long, spec.get("paper_source", "the paper")),
            against_column(long, spec["versus"]) if spec.get("versus") else "",
            rounding_note(spec),
            labelled_runs(df, spec),
            mixed_cells(long),
            averaged_over(df, long, spec),
            time_capped(df, fields),
            earlier_line_search(df, fields),
            failed_search_end(df, fields),
            provenance(df, results),
        ]
        write_atomic(out / f"{table}.md", "\n\n".join(p for p in parts if p) + "\n")
        write_atomic(out / f"{table}.tex", shown.to_latex(index=False, escape=True, caption=title))
        written[table] = shown
    return written


def compare(a: str | Path, b: str | Path, rtol: float = 0.01) -> pd.DataFrame:
    """Run-by-run differences between two result sets (regression checks after a change).

    Runs are matched by ``config_hash`` (the whole resolved config, seed included); for every
    metric of :data:`METRICS` present in either, one row with A, B, B/A and ``changed`` when
    the relative difference exceeds ``rtol`` (or a value appears / disappears). Timings
    (``*_s``, ``throughput``) vary between machines and runs: they count as changed only
    beyond a factor 1.5. Runs found in one set only get a row with ``metric = "(run)"``.
    """
    da, db = collect(a), collect(b)
    for d in (da, db):
        if not d.empty and "config_hash" not in d.columns:
            d["config_hash"] = d["path"]
    label = lambda r: (
        f"{r.get('problem')}/{r.get('method')} seed {r.get('seed')}"
        + (f" tag {r['tag']}" if isinstance(r.get("tag"), str) else "")
        + f" [{Path(str(r.get('path'))).name}]"
    )
    ia = {h: r for h, r in (da.set_index("config_hash").iterrows() if not da.empty else [])}
    ib = {h: r for h, r in (db.set_index("config_hash").iterrows() if not db.empty else [])}
    rows = []
    for h in sorted(set(ia) | set(ib), key=lambda h: label(ia.get(h, ib.get(h)))):
        ra, rb = ia.get(h), ib.get(h)
        name = label(ra if ra is not None else rb)
        if ra is None or rb is None:
            rows.append(
                {
                    "run": name,
                    "metric": "(run)",
                    "A": "present" if ra is not None else "missing",
                    "B": "present" if rb is not None else "missing",
                    "B/A": None,
                    "changed": True,
                }
            )
            continue
        for m in ["status", *METRICS]:
            va, vb = ra.get(m), rb.get(m)
            na, nb = (v is None or (isinstance(v, float) and v != v) for v in (va, vb))
            if na and nb:
                continue
            if m == "status" or isinstance(va, str) or isinstance(vb, str):
                rows.append(
                    {
                        "run": name,
                        "metric": m,
                        "A": va,
                        "B": vb,
                        "B/A": None,
                        "changed": str(va) != str(vb),
                    }
                )
                continue
            ratio = vb / va if not (na or nb) and va != 0 else None
            tol = 1 / 3 if m.endswith("_s") or m == "throughput" else rtol  # 1.5x for timings
            changed = na != nb or (not na and abs(vb - va) > tol * max(abs(va), abs(vb)))
            rows.append(
                {"run": name, "metric": m, "A": va, "B": vb, "B/A": ratio, "changed": bool(changed)}
            )
    return pd.DataFrame(rows, columns=["run", "metric", "A", "B", "B/A", "changed"])


def main(argv=None):
    ap = argparse.ArgumentParser(
        prog="python -m runners.tables", description=__doc__.split("\n")[0]
    )
    ap.add_argument("--results", default="results", help="folder searched for metrics.json")
    ap.add_argument("--out", default=None, help="output folder (default: <results>/tables)")
    ap.add_argument(
        "--name",
        default=None,
        help="file stem of the tables (default: summary, or the experiment's name)",
    )
    ap.add_argument(
        "--where",
        action="append",
        default=[],
        metavar="FIELD=V[,V...]",
        help="table only the runs whose recorded FIELD has one of the values "
        "(e.g. seed=0,1; repeatable)",
    )
    ap.add_argument(
        "--tail",
        type=float,
        default=None,
        metavar="FRACTION",
        help="add each run's median over the last FRACTION of its logged iterations "
        "(history.csv) of the total loss and max |c|, and a comparison line on them",
    )
    ap.add_argument(
        "--with",
        dest="with_tables",
        action="append",
        default=[],
        metavar="TABLE.csv",
        help="add the rows of an earlier table (its CSV) to the runs' before the comparison "
        "lines: compare new runs with committed results whose run folders are gone "
        "(repeatable)",
    )
    ap.add_argument(
        "--pool",
        action="store_true",
        help="with --with: a table row of the same configuration as a runs' row, on other "
        "seeds, is pooled with it (one mean ± std over both sets of runs) instead of left out",
    )
    ap.add_argument(
        "--compare",
        nargs=2,
        metavar=("A", "B"),
        default=None,
        help="what changed between two result folders (runs matched by config)",
    )
    ap.add_argument(
        "--rtol",
        type=float,
        default=0.01,
        help="--compare: relative difference counted as a change",
    )
    ap.add_argument(
        "experiment",
        nargs="?",
        default=None,
        help="experiment=<name>: render conf/experiment/<name>.yaml's paper table",
    )
    args = ap.parse_args(argv)
    summary_only = [
        (args.where, "--where selects the runs of"),
        (args.tail is not None, "--tail adds columns to"),
        (args.with_tables, "--with adds rows to"),
        (args.pool, "--pool pools rows of"),
    ]
    for given, what in summary_only:
        if given and (args.compare is not None or args.experiment is not None):
            print(
                f"error: {what} the summary table; it does not apply to --compare or "
                "experiment=<name>",
                file=sys.stderr,
            )
            sys.exit(2)
    if args.pool and not args.with_tables:
        print(
            "error: --pool pools the rows of --with tables; give --with TABLE.csv", file=sys.stderr
        )
        sys.exit(2)
    if args.compare is not None:
        for f in args.compare:
            if not Path(f).is_dir():
                print(f"error: --compare: no such folder {f!r}", file=sys.stderr)
                sys.exit(2)
        diff = compare(*args.compare, rtol=args.rtol)
        changed = diff[diff["changed"]]
        out = Path(args.out) if args.out else Path("results") / "tables"
        write_atomic(out / "compare.csv", diff.to_csv(index=False))
        n_runs = diff["run"].nunique()
        print(
            changed.to_markdown(index=False, floatfmt=".4g") if len(changed) else "no differences"
        )
        print(
            f"\n{len(changed)} of {len(diff)} values differ (rtol {args.rtol:g}) across "
            f"{n_runs} runs; all values: {out}/compare.csv"
        )
        return
    if args.experiment is not None:
        key, _, name = args.experiment.partition("=")
        if key != "experiment" or not name:
            print(f"error: expected experiment=<name>, got {args.experiment!r}", file=sys.stderr)
            sys.exit(2)
        if not Path(args.results).is_dir():
            print(f"error: --results: no such folder {args.results!r}", file=sys.stderr)
            sys.exit(2)
        out = Path(args.out) if args.out else Path("results") / "tables"
        for table, shown in write_experiment(name, args.results, out, args.name).items():
            print(shown.to_markdown(index=False))
            print(f"\nwrote {out}/{table}.{{md,csv,tex}}\n")
        _say_skipped(args.results)
        return
    if not Path(args.results).is_dir():
        print(f"error: --results: no such folder {args.results!r}", file=sys.stderr)
        sys.exit(2)
    args.name = args.name or "summary"
    try:
        shown = write_tables(
            args.results,
            args.out,
            args.name,
            parse_where(args.where),
            args.tail,
            args.with_tables,
            args.pool,
        )
    except (WhereError, TailError, WithError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    if shown is None:
        print(
            f"error: no metrics.json under {args.results!r}: run python -m runners.train first",
            file=sys.stderr,
        )
        sys.exit(1)
    out = Path(args.out) if args.out else Path(args.results) / "tables"
    print(shown.to_markdown(index=False))
    n_skipped = len(shown.attrs.get("skipped", []))
    print(
        f"\nwrote {out}/{args.name}.{{md,csv,tex}} ({int(shown['seeds'].sum())} runs averaged"
        f", {int(shown['failed'].sum())} failed, {n_skipped} unreadable records skipped)"
    )


def _say_skipped(results) -> None:
    skipped = collect(results, quiet=True).attrs.get("skipped", [])
    if skipped:
        print(f"{len(skipped)} unreadable records skipped (named above)")


if __name__ == "__main__":
    main()

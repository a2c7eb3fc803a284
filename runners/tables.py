"""Collect every ``metrics.json`` under ``results/`` into one table.

``python -m runners.tables --compare results/A results/B`` lists what changed between two
result sets, run by run (regression checks after a code change).

``python -m runners.tables [--results results] [--out results/tables] [--name summary]``
writes ``<out>/<name>.{md,csv,tex}``: one row per (problem, method, swept values), with
mean ± std over seeds of abs/rel error, max |c|, iterations and wall time. The swept
values are the config fields (``problem.*``, ``method.*``, ``pretrain``, ``scale``...)
that differ between runs of the same problem and method.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

from runners.io import write_atomic

METRICS = {"abs_error": "abs error", "rel_error": "rel error",
           "max_constraint_violation": "max |c|",
           # the stochastic_constrained family (SQP momentum): full-batch loss terms at the end
           "total": "total loss", "residual": "residual loss", "data": "data loss",
           "boundary": "boundary loss", "mass_balance": "mass-balance loss",
           "max_abs_c": "‖c‖∞", "test_mse": "test MSE",
           "iterations": "iterations", "wall_s": "wall s",
           # the neural_dae family (collocation / sequential)
           "smoothing.iterations": "step 1 it", "main.iterations": "step 3 it",
           "smoothing.wall_s": "step 1 s", "pretraining.wall_s": "step 2 s",
           "main.wall_s": "step 3 s", "objective": "objective", "train_mse": "train MSE",
           "max_violation": "max violation", "min_S": "min S (test)",
           "hours_S_negative": "h with S < 0",
           # the parametric_opt family (LISCO, IPOPT, OSQP): over the test split
           "gap_max": "max gap %", "gap_mean": "gap %", "eq_max": "max |Ay−x|",
           "ineq_max": "max relu(Gy−h)", "eq_mean": "mean |Ay−x|",
           "ineq_mean": "mean relu(Gy−h)", "time_median_s": "median s", "time_max_s": "max s",
           "success": "success", "it_median": "median it", "it_max": "max it",
           "throughput": "inst/s", "T_max": "max ½‖F‖²", "T_p99": "99th ½‖F‖²",
           "T_p50": "median ½‖F‖²", "T_min": "min ½‖F‖²",
           **{f"frac{e}_it{k}": f"≤1e-{e} @{k}" for e in (6, 8) for k in (10, 20, 50, 100)},
           "predictor_train_s": "pred. train s", "predictor_steps_done": "pred. steps",
           "solver_train_s": "solver train s", "solver_steps_done": "solver steps"}
CONFIG_PREFIXES = ("problem.", "method.", "pretraining.")
CONFIG_KEYS = ("pretrain", "scale", "precision")
IGNORED = {"problem.name", "method.name"}


def collect(results: str | Path = "results") -> pd.DataFrame:
    """Every readable metrics.json under ``results`` (benchmarks excluded), one row each."""
    rows = []
    for path in sorted(Path(results).rglob("metrics.json")):
        if "bench" in path.relative_to(results).parts[:1]:
            continue
        try:
            rec = json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # a run being written, or not ours
        if isinstance(rec, dict) and "problem" in rec and "method" in rec:
            rec["path"] = str(path.parent)
            rows.append(rec)
    return pd.DataFrame(rows)


def swept_columns(df: pd.DataFrame) -> list[str]:
    """Config columns whose value differs between runs of one (problem, method)."""
    cols = [c for c in df.columns
            if (c.startswith(CONFIG_PREFIXES) or c in CONFIG_KEYS) and c not in IGNORED]
    swept = []
    for c in cols:
        as_text = df[c].astype(str)
        if (as_text.groupby([df["problem"], df["method"]]).nunique() > 1).any():
            swept.append(c)
    return swept


def summarize(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(numeric table with <metric>_mean/_std columns, display table with 'mean ± std')."""
    swept = swept_columns(df)
    keys = ["problem", "method", *swept]
    df = df.copy()
    for c in swept:
        df[c] = df[c].astype(str)
    metrics = [m for m in METRICS if m in df.columns and df[m].notna().any()]
    for m in metrics:
        df[m] = pd.to_numeric(df[m], errors="coerce")
    g = df.groupby(keys, dropna=False, sort=True)
    num = g[metrics].agg(["mean", "std"])
    num.columns = [f"{m}_{s}" for m, s in num.columns]
    num.insert(0, "seeds", g.size())
    if "status" in df.columns:
        num["status"] = g["status"].agg(lambda s: ", ".join(
            f"{k}×{v}" if v > 1 else k for k, v in s.value_counts().items()))
    num = num.reset_index()
    shown = num[keys + ["seeds"]].copy()
    for m in metrics:
        mean, std = num[f"{m}_mean"], num[f"{m}_std"].fillna(0.0)
        fmt = (lambda a, b: f"{a:.0f} ± {b:.0f}") if m == "iterations" else \
            (lambda a, b: f"{a:.1f} ± {b:.1f}") if m == "wall_s" else \
            (lambda a, b: f"{a:.4g} ± {b:.2g}")
        raw = num[f"{m}_std"]  # NaN for a single seed: show the value alone
        shown[METRICS[m]] = [fmt(a, b) if pd.notna(r) else fmt(a, 0.0).split(" ± ")[0]
                             for a, b, r in zip(mean, std, raw)]
    if "status" in num.columns:
        shown["status"] = num["status"]
    return num, shown


def write_tables(results: str | Path = "results", out: str | Path | None = None,
                 name: str = "summary") -> pd.DataFrame | None:
    df = collect(results)
    out = Path(out) if out is not None else Path(results) / "tables"
    if df.empty:
        return None
    num, shown = summarize(df)
    write_atomic(out / f"{name}.csv", num.to_csv(index=False))
    write_atomic(out / f"{name}.md", shown.to_markdown(index=False) + "\n")
    write_atomic(out / f"{name}.tex", shown.to_latex(index=False, escape=True))
    return shown


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


def experiment_specs(name: str) -> dict[str, dict]:
    """The experiment's table specs by output name: ``table`` -> {name: spec}, or
    ``tables: {key: spec}`` (several tables from one sweep) -> {name_key: spec}."""
    from omegaconf import OmegaConf

    path = CONF_DIR / "experiment" / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml"))
        raise SystemExit(f"error: experiment: unknown experiment {name!r}; valid choices: "
                         f"{', '.join(known)}")
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


def experiment_table(df: pd.DataFrame, spec: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The paper's layout: rows × columns of 'ours (paper)' cells, and a long numeric table.

    ``spec`` is the ``table`` node of ``conf/experiment/<name>.yaml``: ``rows`` and ``cols``
    (lists of metrics.json fields), ``metrics`` and ``paper`` (row label -> column label ->
    one value per metric).
    """
    rows, cols, metrics = spec["rows"], spec["cols"], spec["metrics"]
    paper = {str(r): {str(c): v for c, v in cs.items()} for r, cs in spec.get("paper", {}).items()}
    df = df.copy()
    for f in rows + cols:
        if f not in df.columns:
            df[f] = None
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
    row_keys = list(paper) + sorted(set(df["_row"]) - set(paper))
    col_keys = list(dict.fromkeys([c for r in paper.values() for c in r] + sorted(set(df["_col"]))))
    long, shown = [], []
    for r in row_keys:
        line = {"/".join(rows): names.get(r, r)}
        for c in col_keys:
            runs = df[(df["_row"] == r) & (df["_col"] == c)]
            ref = paper.get(r, {}).get(c)
            for i, m in enumerate(metrics):
                p = ref[i] if ref is not None and i < len(ref) else None
                if m == "status":  # text: the statuses of the runs
                    st = runs[m].dropna().astype(str) if m in runs else pd.Series([], dtype=str)
                    line[f"{c} status"] = ", ".join(st.unique()) or "–"
                    continue
                vals = pd.to_numeric(runs[m], errors="coerce").dropna() if m in runs else []
                mean = float(vals.mean()) if len(vals) else None
                std = float(vals.std()) if len(vals) > 1 else None
                long.append({"row": r, "col": c, "metric": m, "mean": mean, "std": std,
                             "seeds": len(vals), "paper": p})
                ours = "–" if mean is None else f"{mean:.3g}" + (f" ± {std:.1g}" if std else "")
                line[f"{c} {METRICS.get(m, m)}"] = ours + (f" ({p:.3g})" if p is not None else "")
        shown.append(line)
    return pd.DataFrame(long), pd.DataFrame(shown)


def write_experiment(name: str, results: str | Path, out: str | Path) -> dict:
    """Every table of experiment ``name`` -> <out>/<table>.{md,csv,tex}; {table: shown}."""
    df, out, written = collect(results), Path(out), {}
    for table, spec in experiment_specs(name).items():
        long, shown = experiment_table(df, spec)
        title = spec.get("title", table)
        write_atomic(out / f"{table}.csv", long.to_csv(index=False))
        write_atomic(out / f"{table}.md", f"# {title}\n\n" + shown.to_markdown(index=False)
                     + "\n")
        write_atomic(out / f"{table}.tex", shown.to_latex(index=False, escape=True,
                                                          caption=title))
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
    label = lambda r: (f"{r.get('problem')}/{r.get('method')} seed {r.get('seed')}"
                       + (f" tag {r['tag']}" if isinstance(r.get("tag"), str) else "")
                       + f" [{Path(str(r.get('path'))).name}]")
    ia = {h: r for h, r in (da.set_index("config_hash").iterrows() if not da.empty else [])}
    ib = {h: r for h, r in (db.set_index("config_hash").iterrows() if not db.empty else [])}
    rows = []
    for h in sorted(set(ia) | set(ib), key=lambda h: label(ia.get(h, ib.get(h)))):
        ra, rb = ia.get(h), ib.get(h)
        name = label(ra if ra is not None else rb)
        if ra is None or rb is None:
            rows.append({"run": name, "metric": "(run)", "A": "present" if ra is not None
                         else "missing", "B": "present" if rb is not None else "missing",
                         "B/A": None, "changed": True})
            continue
        for m in ["status", *METRICS]:
            va, vb = ra.get(m), rb.get(m)
            na, nb = (v is None or (isinstance(v, float) and v != v) for v in (va, vb))
            if na and nb:
                continue
            if m == "status" or isinstance(va, str) or isinstance(vb, str):
                rows.append({"run": name, "metric": m, "A": va, "B": vb, "B/A": None,
                             "changed": str(va) != str(vb)})
                continue
            ratio = vb / va if not (na or nb) and va != 0 else None
            tol = 1 / 3 if m.endswith("_s") or m == "throughput" else rtol  # 1.5x for timings
            changed = na != nb or (not na and abs(vb - va) > tol * max(abs(va), abs(vb)))
            rows.append({"run": name, "metric": m, "A": va, "B": vb, "B/A": ratio,
                         "changed": bool(changed)})
    return pd.DataFrame(rows, columns=["run", "metric", "A", "B", "B/A", "changed"])


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m runners.tables",
                                 description=__doc__.split("\n")[0])
    ap.add_argument("--results", default="results", help="folder searched for metrics.json")
    ap.add_argument("--out", default=None, help="output folder (default: <results>/tables)")
    ap.add_argument("--name", default="summary", help="file stem of the tables")
    ap.add_argument("--compare", nargs=2, metavar=("A", "B"), default=None,
                    help="what changed between two result folders (runs matched by config)")
    ap.add_argument("--rtol", type=float, default=0.01,
                    help="--compare: relative difference counted as a change")
    ap.add_argument("experiment", nargs="?", default=None,
                    help="experiment=<name>: render conf/experiment/<name>.yaml's paper table")
    args = ap.parse_args(argv)
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
        print(changed.to_markdown(index=False, floatfmt=".4g") if len(changed)
              else "no differences")
        print(f"\n{len(changed)} of {len(diff)} values differ (rtol {args.rtol:g}) across "
              f"{n_runs} runs; all values: {out}/compare.csv")
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
        for table, shown in write_experiment(name, args.results, out).items():
            print(shown.to_markdown(index=False))
            print(f"\nwrote {out}/{table}.{{md,csv,tex}}\n")
        return
    if not Path(args.results).is_dir():
        print(f"error: --results: no such folder {args.results!r}", file=sys.stderr)
        sys.exit(2)
    shown = write_tables(args.results, args.out, args.name)
    if shown is None:
        print(f"error: no metrics.json under {args.results!r}: run python -m runners.train first",
              file=sys.stderr)
        sys.exit(1)
    out = Path(args.out) if args.out else Path(args.results) / "tables"
    print(shown.to_markdown(index=False))
    print(f"\nwrote {out}/{args.name}.{{md,csv,tex}} ({int(shown['seeds'].sum())} runs)")


if __name__ == "__main__":
    main()

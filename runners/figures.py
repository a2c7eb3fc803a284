"""Figures from finished runs: ``python -m runners.figures heatmaps|sweep ...``.

* ``heatmaps --results DIR``: trSQP-PINN Figure 2. For every problem found under DIR, the
  reference solution and each method's prediction (seed 0) over (x, t). Predictions are
  recomputed from each run's ``params.msgpack`` and the problem config in its
  ``metrics.json`` (data, not pickle: nothing in a results folder runs code).
* ``sweep --results DIR --x problem.alpha``: trSQP-PINN Figure 1: abs and rel error against
  a swept coefficient, one line per method (mean over seeds, min–max band).
* ``curves --results DIR``: SQP momentum Figures 1–7: log10 loss terms against the epoch,
  mean ± std over seeds, one figure per problem, learning rate and batch mode, each with
  a CSV of what it draws beside it; ``--with FIG.csv`` joins such an earlier figure's
  lines (runs whose folders are gone) to the runs'.
* ``predictions --results DIR``: SQP momentum: held-out predictions, one figure per method.
"""

from __future__ import annotations

import argparse
import re
import sys
import textwrap
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from runners.io import save_figure, write_atomic
from runners.tables import (
    WhereError,
    WithError,
    collect,
    failed_flags,
    numeric_first,
    parse_where,
    select,
    warn,
)

METHOD_ORDER = ("penalty", "auglag", "pinn", "trsqp")
# integer config fields that a pandas column holding NaN turns into floats
INT_FIELDS = {
    "n_data",
    "m_train",
    "m_pretrain",
    "n_heldout",
    "n_log",
    "eval_nx",
    "eval_nt",
    "eval_batch",
    "depth",
    "width",
    "ref_substeps",
    "m_split",
    "m_pretrain_split",
}


class Unreadable(Exception):
    """A run's file that a figure needs cannot be read (the run is skipped, with a warning)."""


def runs_of(results) -> pd.DataFrame:
    """The runs under ``results`` whose status is a result (failed runs are not drawn)."""
    df = collect(results)
    if df.empty:
        return df
    failed = failed_flags(df)
    if failed.any():
        print(f"note: {int(failed.sum())} failed runs are not drawn", file=sys.stderr)
    return df[~failed]


def read_params(path: Path, template):
    """Flax msgpack at ``path`` restored into ``template`` (shapes and dtypes checked)."""
    import jax
    from flax import serialization

    try:
        params = serialization.from_bytes(template, Path(path).read_bytes())
    except Exception as e:  # missing, truncated or foreign: msgpack's own exception types
        raise Unreadable(f"{path}: {type(e).__name__}") from None
    got, ref = jax.tree.leaves(params), jax.tree.leaves(template)
    if len(got) != len(ref) or any(np.shape(a) != np.shape(b) for a, b in zip(got, ref)):
        raise Unreadable(f"{path}: arrays of other shapes than the run's network")
    return params


def _ordered(methods):
    """Methods (or variants, "trsqp + SOC (this project)") in the paper's order."""

    def key(m):
        base = str(m).split(" ")[0]
        return (METHOD_ORDER.index(base) if base in METHOD_ORDER else 99, str(m))

    return sorted(methods, key=key)


def load_prediction(rec: dict, max_nx: int = 512, max_nt: int = 256):
    """(x, t, reference, prediction) of one run, on a strided evaluation grid."""
    import jax

    from problems import build_problem

    jax.config.update("jax_enable_x64", rec.get("precision", "float64") == "float64")
    values = {
        k.split(".", 1)[1]: v
        for k, v in rec.items()
        if k.startswith("problem.")
        and k != "problem.name"
        and not (isinstance(v, float) and np.isnan(v))
    }  # fields of other problems
    values = {
        k: int(v)
        if isinstance(v, float) and v.is_integer() and k.split(".")[0] in INT_FIELDS
        else v
        for k, v in values.items()
    }
    for split in ("m_split", "m_pretrain_split"):  # flattened as problem.m_split.ic, ...
        keys = [k for k in values if k.startswith(split + ".")]
        if keys:
            values[split] = {k.split(".", 1)[1]: values.pop(k) for k in keys}
    nx, nt = int(values["eval_nx"]), int(values["eval_nt"])
    sx, st = max(1, nx // max_nx), max(1, nt // max_nt)
    values["eval_nx"], values["eval_nt"] = nx // sx, (nt - 1) // st + 1
    problem = build_problem(rec["problem"], values, dtype=rec.get("precision", "float64"))
    k_data, k_init = jax.random.split(jax.random.PRNGKey(int(rec["seed"])))
    data = problem.sample_data(k_data)
    params = read_params(Path(rec["path"]) / "params.msgpack", problem.init_params(k_init))
    pred = np.asarray(jax.jit(problem.predict_grid)(params, data))
    return np.asarray(data.eval_x), np.asarray(data.eval_t), np.asarray(data.u_ref), pred


def _select(df: pd.DataFrame, where: dict | None) -> pd.DataFrame:
    """Runs whose every field matches one of its values ({field: [values]}), by
    :func:`runners.tables.select` (numbers compared as numbers: 30 == 30.0, 5e-4 ==
    0.0005; booleans in any case). A field no run records, or no run left, is one line
    on stderr and exit 2, as the tables' ``--where``."""
    if not where:
        return df
    try:
        return select(df, where)
    except WhereError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


def _labels(df: pd.DataFrame, fields) -> pd.Series:
    from runners.tables import _label

    return pd.Series(
        ["/".join(_label(v) for v in vals) for vals in df[list(fields)].itertuples(index=False)],
        index=df.index,
    )


def heatmaps(
    results: str | Path,
    out: str | Path,
    seed: int = 0,
    rows=("problem",),
    cols=("method",),
    where: dict | None = None,
) -> Path:
    """Reference and predicted solutions: one row per value of ``rows`` (default: the
    problem), one panel per value of ``cols`` (default: the method), the first run of
    ``seed`` in each cell; ``where`` keeps the runs whose fields match (paper Figures 2, 4–6:
    e.g. ``cols=("method.mu",), where={"problem": ["transport"]}``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    df = _select(runs_of(results), where)
    for f in (*rows, *cols):
        if f not in df.columns:
            print(f"error: --rows/--cols: no run under {results} records {f!r}", file=sys.stderr)
            sys.exit(2)
    if "seed" in df and not (df["seed"] == seed).any():
        seeds = ", ".join(str(s) for s in sorted(df["seed"].unique()))
        print(f"error: --seed: no run has seed {seed} (recorded: {seeds})", file=sys.stderr)
        sys.exit(2)
    df = df[(df["seed"] == seed)] if "seed" in df else df
    if df.empty:
        print(f"error: --results: no run under {results} to draw", file=sys.stderr)
        sys.exit(2)
    df = df.assign(_row=_labels(df, rows), _col=_labels(df, cols))
    row_keys = sorted(df["_row"].unique(), key=numeric_first)
    by_method = tuple(cols) in (("method",), ("variant",))
    col_keys = (
        _ordered(df["_col"].unique())
        if by_method
        else sorted(df["_col"].unique(), key=numeric_first)
    )
    fig, axes = plt.subplots(
        len(row_keys),
        1 + len(col_keys),
        squeeze=False,
        figsize=(3.2 * (1 + len(col_keys)), 2.8 * len(row_keys)),
        constrained_layout=True,
    )
    col_name = "/".join(c.split(".")[-1] for c in cols)
    for i, rk in enumerate(row_keys):
        ref_drawn = False
        for j, ck in enumerate(col_keys):
            runs = df[(df["_row"] == rk) & (df["_col"] == ck)]
            ax = axes[i, 1 + j]
            if runs.empty:
                ax.axis("off")
                continue
            rec = runs.iloc[0].to_dict()
            try:
                x, t, ref, pred = load_prediction(rec)
            except Unreadable as e:
                warn(f"skipping {rec['path']} in the heatmaps: {e}")
                ax.axis("off")
                continue
            extent = (x[0], 2 * np.pi, t[0], t[-1])
            kw = {
                "origin": "lower",
                "aspect": "auto",
                "extent": extent,
                "vmin": ref.min(),
                "vmax": ref.max(),
            }
            if not ref_drawn:
                axes[i, 0].imshow(ref, **kw)
                axes[i, 0].set(xlabel="x", ylabel="t")
                axes[i, 0].set_title(f"{rk}: reference", fontsize=9)
                ref_drawn = True
            im = ax.imshow(pred, **kw)
            label = ck if by_method or len(cols) > 1 else f"{col_name} {ck}"
            # long variant labels ("penalty + step on failed search ...") wrap over lines
            ax.set_title(textwrap.fill(f"{label}: abs err {rec['abs_error']:.2g}", 36), fontsize=8)
            ax.set_xlabel("x")
        if ref_drawn:
            fig.colorbar(im, ax=axes[i, -1])
        else:
            axes[i, 0].axis("off")
    return save_figure(fig, out, dpi=80)


def paper_curves(experiment: str, x: str) -> dict:
    """The paper's values of an experiment's table (``paper:``, e.g. the authors' result
    files behind Figures 1, 3, 7-9) as curves: {problem or None: {method: [(x, abs, rel)]}},
    None where the table's rows do not name the problem (one problem per sweep)."""
    from runners.tables import experiment_spec

    spec = experiment_spec(experiment)
    rows, cols = spec["rows"], spec["cols"]
    if x not in rows or cols not in (["method"], ["variant"]):
        raise SystemExit(
            f"error: --experiment: {experiment!r} has no paper values by {x} and "
            f"method (its table's rows: {', '.join(rows)}; columns: "
            f"{', '.join(cols)})"
        )
    curves: dict = {}
    for key, by_method in spec.get("paper", {}).items():
        fields = dict(zip(rows, str(key).split("/")))
        for method, vals in by_method.items():
            curves.setdefault(fields.get("problem"), {}).setdefault(method, []).append(
                (float(fields[x]), *vals[:2])
            )
    return {p: {m: sorted(v) for m, v in ms.items()} for p, ms in curves.items()}


def sweep_plot(results: str | Path, x: str, out: str | Path, experiment: str | None = None) -> Path:
    """Errors against a swept field, one line per method (variant); with ``experiment``,
    the paper's values from its table beside ours (dashed, same colour)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    df = runs_of(results)
    if x not in df.columns:
        raise SystemExit(
            f"error: --x: no runs under {results} have {x!r}; swept fields: "
            f"{', '.join(c for c in df.columns if c.startswith('problem.'))}"
        )
    df = df.dropna(subset=[x])
    problems = sorted(df["problem"].unique())
    fig, axes = plt.subplots(
        len(problems), 2, figsize=(10, 3.6 * len(problems)), squeeze=False, constrained_layout=True
    )
    paper = paper_curves(experiment, x) if experiment else {}
    for row, prob in zip(axes, problems):
        sub = df[df["problem"] == prob]
        ref = paper.get(prob, paper.get(None, {}))
        for ax, (i, metric) in zip(row, enumerate(("abs_error", "rel_error"), start=1)):
            by = "variant" if "variant" in sub.columns else "method"
            for meth in _ordered(sub[by].unique()):
                g = sub[sub[by] == meth].groupby(x)[metric]
                xs = np.asarray(g.mean().index, dtype=float)
                (line,) = ax.plot(xs, g.mean().values, "o-", label=meth)
                ax.fill_between(xs, g.min().values, g.max().values, alpha=0.2)
                if meth in ref:
                    pts = np.asarray(ref[meth], dtype=float)
                    ax.plot(
                        pts[:, 0],
                        pts[:, i],
                        "x--",
                        color=line.get_color(),
                        alpha=0.7,
                        label=f"{meth} (paper)",
                    )
            ax.set(title=prob, xlabel=x, ylabel=metric.replace("_", " "), yscale="log")
            ax.grid(alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=2, fontsize=8)  # below
    return save_figure(fig, out)


def history_rows(path: Path, metric: str, phase: str = "train") -> pd.DataFrame | None:
    """A run's logged (iteration, ``metric``) rows of ``phase`` (where the history has
    phases), without the rows that do not log ``metric``; None without a history or the
    column."""
    if not path.is_file():
        return None
    h = pd.read_csv(path)
    if metric not in h.columns:
        return None
    if "phase" in h.columns:
        h = h[h["phase"] == phase]
    return h.dropna(subset=[metric])[["iteration", metric]]


def histories_plot(
    results: list[str],
    out: str | Path,
    by: list[str],
    metric: str = "abs_error_sub",
    where: dict | None = None,
    phase: str = "train",
) -> Path:
    """``metric`` of each run's history against its training iteration, one panel per
    problem, one line per run labelled by the fields ``by`` (e.g. ``device``,
    ``method.memory``): runs stopped at different iterations compared at equal ones.
    Histories with a ``phase`` column keep the rows of ``phase`` (PINN runs log
    ``pretrain`` / ``train``; LISCO ``predictor`` / ``solver``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    df = _select(pd.concat([runs_of(r) for r in results], ignore_index=True), where)
    if df.empty:
        raise SystemExit(f"error: no runs under {', '.join(results)} match")
    problems = sorted(df["problem"].unique())
    fig, axes = plt.subplots(
        1, len(problems), figsize=(4.6 * len(problems), 3.6), squeeze=False, constrained_layout=True
    )
    label = lambda r: ", ".join(f"{f.split('.')[-1]} {r.get(f)}" for f in by)
    labels = sorted({label(r) for _, r in df.iterrows()})
    colour = {lab: f"C{i % 10}" for i, lab in enumerate(labels)}  # one colour per label
    rows = {p: history_rows(Path(p) / "history.csv", metric, phase) for p in df["path"]}
    if all(h is None or h.empty for h in rows.values()):
        plt.close(fig)
        print(
            f"error: --phase/--metric: no run logs {metric!r} in phase {phase!r}", file=sys.stderr
        )
        sys.exit(2)
    for ax, prob in zip(axes[0], problems):
        for _, r in df[df["problem"] == prob].sort_values(by).iterrows():
            h = rows[r["path"]]
            if h is None or h.empty:
                continue
            ax.plot(h["iteration"], h[metric], color=colour[label(r)], label=label(r))
        ax.set(title=prob, xlabel="iteration", ylabel=metric.replace("_", " "), yscale="log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return save_figure(fig, out)


# --- SQP-momentum problems: one run's loss curves and held-out prediction ----------------


def loss_curves_figure(history: list, path: Path, title: str) -> Path:
    """log10 of each full-batch loss term (and ‖c‖∞) against the epoch, one panel each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    h = pd.DataFrame(history)
    cols = [c for c in h.columns if c.startswith("loss_")] + ["max_abs_c"]
    fig, axes = plt.subplots(1, len(cols), figsize=(3.2 * len(cols), 3.0), constrained_layout=True)
    for ax, col in zip(np.atleast_1d(axes), cols):
        ax.plot(h["epoch"], np.log10(np.maximum(h[col].to_numpy(float), 1e-300)))
        ax.set(title=col.removeprefix("loss_"), xlabel="epoch", ylabel="log10")
    fig.suptitle(title)
    return save_figure(fig, path, dpi=110)


def prediction_figure(problem, params, data, path: Path, title: str) -> Path | None:
    """The problem's own view of the trained network (``problem.prediction_view``:
    spring, butene: curves; burgers: (x, t) heatmaps; darcy: fields), drawn here; None
    (nothing written) for a problem without one."""
    import matplotlib

    from problems.common.views import Curves, Images

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    view_of = getattr(problem, "prediction_view", None)
    view = view_of(params, data) if view_of is not None else None
    if view is None:
        return None
    if isinstance(view, Curves):
        fig, ax = plt.subplots(figsize=(6, 3.4), constrained_layout=True)
        for ln in view.lines:
            ax.plot(ln.x, ln.y, ln.style, color=ln.color, label=ln.label or None)
        for t in view.vlines:
            ax.axvline(t, color="C2", lw=0.8, ls=":")
        ax.set(xlabel=view.xlabel, ylabel=view.ylabel)
        ax.legend(ncol=view.legend_columns, fontsize=8 if view.legend_columns > 1 else None)
    elif isinstance(view, Images):
        fig = _panels(list(view.images), list(view.names), view.xlabel, view.ylabel, view.extent)
    else:
        raise TypeError(f"{problem.name}.prediction_view returned {type(view).__name__}")
    fig.suptitle(title)
    return save_figure(fig, path, dpi=110)


def _panels(images, names, xlabel, ylabel, extent):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        1, len(images), figsize=(3.6 * len(images), 3.2), constrained_layout=True
    )
    for ax, img, name in zip(axes, images, names):
        im = ax.imshow(
            img,
            origin="lower",
            aspect="auto",
            extent=extent,
            cmap="magma" if name.startswith("|") else "viridis",
        )
        ax.set(title=name, xlabel=xlabel, ylabel=ylabel)
        fig.colorbar(im, ax=ax)
    return fig


SQP_ORDER = ("sqp_adam", "sqp_heavyball", "adam_con", "adam_unc", "sqp_sgd")


def _sqp_runs(results):
    """The runs of the stochastic_constrained family under ``results`` (a DataFrame)."""
    df = runs_of(results)
    if df.empty or "family" not in df:
        return df.iloc[0:0]
    df = df[df["family"] == "stochastic_constrained"].copy()
    if "method.full_batch" not in df:
        df["method.full_batch"] = False
    df["method.full_batch"] = df["method.full_batch"].fillna(False).astype(bool)
    return df


CURVE_POINTS = 400  # most points a loss-curve line keeps (every k-th logged row, the last too)


class CurveLine(NamedTuple):
    """One line of a loss-curves figure: the epochs; {column: (mean, std)} over the line's
    runs of log10 of each logged value; how many runs; their seeds and code commits
    (space-separated); and where it came from: ``"runs"`` (the runs under ``--results``) or
    the name of the curves CSV a ``--with`` read it from."""

    epoch: np.ndarray
    stats: dict
    runs: int
    seeds: str = ""
    commits: str = ""
    source: str = "runs"


def thinned(n: int, most: int = CURVE_POINTS) -> np.ndarray:
    """Indices of every k-th of ``n`` logged rows, k the smallest that keeps at most
    ``most`` of them, and of the last row (so a line ends where its runs did)."""
    idx = np.arange(0, n, max(1, -(-n // most)))
    return idx if n == 0 or idx[-1] == n - 1 else np.append(idx, n - 1)


def curve_lines(results, where: dict | None = None) -> dict:
    """The lines of :func:`loss_curves`, as data: {(problem, lr, full_batch): {label:
    :class:`CurveLine`}}, mean and std over the label's runs of the log10 of each logged
    full-batch loss term and ‖c‖∞, cut to the shortest run's rows and thinned to at most
    :data:`CURVE_POINTS` of them (a paper-budget run logs 1,000). ``where`` keeps the runs
    whose fields match ({field: [values]}, as ``--where``)."""
    df, lines = _select(_sqp_runs(results), where), {}
    for (prob, lr, full), runs in df.groupby(["problem", "method.lr", "method.full_batch"]):
        hist = {}
        if "precision" in runs and runs["precision"].nunique() > 1:
            runs = runs.assign(variant=runs["variant"] + " [" + runs["precision"] + "]")
        for m, r in runs.groupby("variant"):
            for _, run in r.iterrows():
                try:
                    h = pd.read_csv(Path(run["path"]) / "history.csv")
                    if "epoch" not in h.columns:
                        raise ValueError("no epoch column")
                except (OSError, ValueError) as e:
                    warn(
                        f"skipping {run['path']} in the loss curves: history.csv "
                        f"({type(e).__name__})"
                    )
                    continue
                hist.setdefault(m, []).append((h, run.get("seed"), run.get("commit")))
        if not hist:
            continue
        cols = [c for c in next(iter(hist.values()))[0][0].columns if c.startswith("loss_")]
        cols += ["max_abs_c"]
        group = lines.setdefault((prob, lr, bool(full)), {})
        for m, read in hist.items():
            hs = [h for h, _, _ in read]
            n = min(len(h) for h in hs)
            idx, stats = thinned(n), {}
            for col in cols:
                y = np.log10(np.maximum(np.stack([h[col].to_numpy(float)[:n] for h in hs]), 1e-300))
                stats[col] = (y.mean(0)[idx], y.std(0)[idx])
            seeds = sorted({int(s) for _, s, _ in read if pd.notna(s)})
            commits = sorted({str(c) for _, _, c in read if isinstance(c, str) and c})
            group[m] = CurveLine(
                hs[0]["epoch"].to_numpy()[:n][idx],
                stats,
                len(hs),
                " ".join(map(str, seeds)),
                " ".join(commits),
            )
    return lines


CURVE_KEYS = ("problem", "lr", "full_batch", "line", "runs", "seeds", "commits", "from")


def curve_frame(key: tuple, group: dict) -> pd.DataFrame:
    """The data of one loss-curves figure (``key`` = (problem, lr, full_batch), ``group`` its
    {label: CurveLine}) as a long table: one row per line and logged epoch, the columns
    :data:`CURVE_KEYS`, ``epoch`` and ``<column>.log10_mean`` / ``.log10_std`` (what the
    figure draws, to 4 decimals): the CSV :func:`loss_curves` writes beside each figure."""
    prob, lr, full = key
    parts = []
    for label, line in group.items():
        d = {
            "problem": prob,
            "lr": lr,
            "full_batch": bool(full),
            "line": label,
            "runs": line.runs,
            "seeds": line.seeds,
            "commits": line.commits,
            "from": line.source,
            "epoch": line.epoch,
        }
        for col, (mean, std) in line.stats.items():
            d[f"{col}.log10_mean"] = np.round(mean, 4)
            d[f"{col}.log10_std"] = np.round(std, 4)
        parts.append(pd.DataFrame(d))
    return pd.concat(parts, ignore_index=True)


def read_curves(path: str | Path) -> dict:
    """The lines of a curves CSV that :func:`loss_curves` wrote beside a figure, as
    :func:`curve_lines` gives them; a line that came from runs is labelled with the CSV's
    folder (``from``), one an earlier ``--with`` brought in keeps its own. Raises
    :class:`WithError` (one line) for a missing file or one that is no curves CSV."""
    path = Path(path)
    if not path.is_file():
        raise WithError(f"--with: no such curves CSV {str(path)!r}")
    try:
        df = pd.read_csv(path, dtype={"seeds": str, "commits": str, "from": str})
    except (OSError, ValueError) as e:
        raise WithError(f"--with: {path} is not a readable CSV ({e})") from None
    means = [c for c in df.columns if c.endswith(".log10_mean")]
    if not {*CURVE_KEYS, "epoch"} <= set(df.columns) or not means or df.empty:
        raise WithError(
            f"--with: {path} is not the data of a loss-curves figure (the CSV python -m "
            "runners.figures curves writes beside each figure: columns problem, lr, "
            "full_batch, line, runs, seeds, commits, from, epoch, <term>.log10_mean/_std)"
        )
    df[["seeds", "commits", "from"]] = df[["seeds", "commits", "from"]].fillna("")
    name = path.parent.name or path.stem
    lines = {}
    keys = ["problem", "lr", "full_batch", "line"]
    for (prob, lr, full, label), d in df.groupby(keys, sort=False):
        stats = {}
        for m in means:
            col = m.removesuffix(".log10_mean")
            if d[m].notna().any():
                std = d[f"{col}.log10_std"] if f"{col}.log10_std" in d else 0.0 * d[m]
                stats[col] = (d[m].to_numpy(float), std.to_numpy(float))
        source = d["from"].iloc[0]
        lines.setdefault((prob, float(lr), _truthy(full)), {})[label] = CurveLine(
            d["epoch"].to_numpy(),
            stats,
            int(d["runs"].iloc[0]),
            d["seeds"].iloc[0],
            d["commits"].iloc[0],
            name if source in ("", "runs") else source,
        )
    return lines


def _truthy(v) -> bool:
    return v is True or str(v).strip().lower() in ("true", "1")


def join_curves(lines: dict, path: str | Path) -> dict:
    """``lines`` (:func:`curve_lines`) with the lines of the curves CSV at ``path`` added to
    their figures (a figure of the CSV that the runs lack is drawn from the CSV alone): a
    curve of runs whose folders are gone (hours of compute in an earlier checkout, say)
    beside new runs. A CSV line labelled like a line already there is left out, with a
    warning; lines are not pooled over seeds."""
    lines = {k: dict(g) for k, g in lines.items()}
    for key, group in read_curves(path).items():
        target = lines.setdefault(key, {})
        for label, line in group.items():
            if label in target:
                warn(
                    f"--with: {path}'s line {label!r} ({key[0]}, lr {key[1]:g}) is named like "
                    "a line already drawn; left out"
                )
            else:
                target[label] = line
    return lines


def loss_curves(
    results, out_dir: str | Path, where: dict | None = None, with_curves=()
) -> list[Path]:
    """SQP momentum Figures 1–7 style: per (problem, learning rate, batch mode), log10 of
    each full-batch loss term and ‖c‖∞ against the epoch, one line per method: mean over
    seeds with a ± std band (of log10 values). A method run in two forms or with a problem
    option (``variant``: "sqp_adam + ICLR-2025 Adam form (predecessor)") is its own line,
    and so is each precision where a group holds runs of both ("[float32]"). ``where``
    keeps the runs whose fields match (``--where seed=1``: one seed's curves).

    Beside each figure, ``<figure>.csv`` holds what it draws (:func:`curve_frame`), so a
    figure can be drawn again, or joined, without the runs: ``with_curves`` names such
    CSVs, whose lines join the runs' (:func:`join_curves`; the legend names the folder
    each came from). ``results`` may be None when ``with_curves`` is given."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lines = curve_lines(results, where) if results is not None else {}
    for path in with_curves:
        lines = join_curves(lines, path)
    paths = []
    for (prob, lr, full), group in lines.items():
        cols = list(dict.fromkeys(c for line in group.values() for c in line.stats))
        fig, axes = plt.subplots(
            1, len(cols), figsize=(3.3 * len(cols), 3.1), constrained_layout=True, squeeze=False
        )
        axes = axes[0]
        order = lambda v: ((SQP_ORDER + (v.split(" + ")[0],)).index(v.split(" + ")[0]), v)
        for i, m in enumerate(sorted(group, key=order)):
            line = group[m]
            label = f"{m} ({line.runs})"
            if line.source != "runs":
                label = f"{m} ({line.runs}; {line.source})"
            for ax, col in zip(axes, cols):
                ax.set(title=col.removeprefix("loss_"), xlabel="epoch", ylabel="log10")
                if col not in line.stats:
                    continue
                mean, std = line.stats[col]
                ax.plot(
                    line.epoch,
                    mean,
                    color=f"C{i}",
                    label=label,
                    linestyle="--" if " + " in m else "-",
                )
                ax.fill_between(line.epoch, mean - std, mean + std, color=f"C{i}", alpha=0.2)
        axes[0].legend(fontsize=6)
        mode = "full batch" if full else "mini-batch"
        fig.suptitle(f"{prob}: lr {lr:g}, {mode} (mean ± std over seeds)")
        path = Path(out_dir) / f"sqp_momentum_{prob}_lr{lr:g}_{'full' if full else 'mini'}.png"
        paths.append(save_figure(fig, path, dpi=110))
        frame = curve_frame((prob, lr, full), group)
        write_atomic(path.with_suffix(".csv"), frame.to_csv(index=False))
    return paths


def load_run(path: Path):
    """(problem, params, data) of one finished run, from its .hydra/config.yaml (YAML) and
    params.msgpack (msgpack): loading a results folder runs no code."""
    import jax
    from omegaconf import OmegaConf

    from problems import build_problem, resolve_precision

    own = Path(path) / ".hydra" / "config.yaml"
    # a seed folder of a seeds=N run written before seed folders had their own config:
    # the parent's config (the problem is the same for every seed)
    try:
        cfg = OmegaConf.load(own if own.is_file() else Path(path).parent / ".hydra" / "config.yaml")
    except Exception as e:  # missing or not YAML
        raise Unreadable(f"{path}: .hydra/config.yaml ({type(e).__name__})") from None
    values = OmegaConf.to_container(cfg.problem, resolve=True)
    name = values.pop("name")
    precision = resolve_precision(cfg.precision, name)
    jax.config.update("jax_enable_x64", precision == "float64")
    problem = build_problem(name, values, dtype=precision)
    data = problem.make_data(cache_dir=str(Path(cfg.results_dir) / "cache"))
    template = problem.init_params(jax.random.PRNGKey(problem.cfg.data_seed))
    params = read_params(Path(path) / "params.msgpack", template)
    return problem, params, data


def predictions(results, out_dir: str | Path, seed: int = 0) -> list[Path]:
    """Per problem and method: the held-out prediction of the mini-batch run with the
    largest learning rate and ``seed`` (one figure per run), or of the full-batch run where a
    problem has no mini-batch runs (file names then carry ``full``)."""
    df, paths = _sqp_runs(results), []
    df = df[df["seed"] == seed]
    for prob, runs in df.groupby("problem"):
        full = bool(runs["method.full_batch"].all())
        runs = runs[runs["method.full_batch"] == full]
        runs = runs[runs["method.lr"] == runs["method.lr"].max()]
        batch = "full batch, " if full else ""
        for _, r in runs.iterrows():
            try:
                problem, params, data = load_run(r["path"])
            except Unreadable as e:
                warn(f"skipping {r['path']} in the predictions: {e}")
                continue
            slug = re.sub(r"[^A-Za-z0-9]+", "_", r["variant"]).strip("_")
            drawn = prediction_figure(
                problem,
                params,
                data,
                Path(out_dir) / f"sqp_momentum_{prob}_prediction_{'full_' * full}{slug}.png",
                f"{prob} / {r['variant']} ({batch}lr {r['method.lr']:g}, seed {seed}): "
                f"test MSE {r['test_mse']:.3g}",
            )
            if drawn is not None:
                paths.append(drawn)
    return paths


def main(argv=None):
    ap = argparse.ArgumentParser(
        prog="python -m runners.figures", description=__doc__.split("\n")[0]
    )
    sub = ap.add_subparsers(dest="kind", required=True)
    h = sub.add_parser("heatmaps", help="reference and predictions per problem and method")
    h.add_argument("--results", required=True)
    h.add_argument("--out", default="results/figures/heatmaps.png")
    h.add_argument("--seed", type=int, default=0)
    h.add_argument("--rows", default="problem", help="field(s) of the rows, comma-separated")
    h.add_argument("--cols", default="method", help="field(s) of the panels, comma-separated")
    h.add_argument(
        "--where",
        action="append",
        default=[],
        metavar="FIELD=V1,V2",
        help="keep runs whose FIELD is one of the values (repeatable)",
    )
    s = sub.add_parser("sweep", help="errors against a swept coefficient")
    s.add_argument("--results", required=True)
    s.add_argument("--x", required=True, help="the swept field, e.g. problem.alpha")
    s.add_argument("--out", default="results/figures/sweep.png")
    s.add_argument(
        "--experiment",
        default=None,
        help="draw the paper's values of conf/experiment/<name>.yaml beside ours",
    )
    t = sub.add_parser(
        "histories",
        help="a logged metric against the iteration, one line "
        "per run (runs cut at different iterations, compared at equal ones)",
    )
    t.add_argument(
        "--results", required=True, action="append", help="a folder of runs (repeatable)"
    )
    t.add_argument("--by", default="method", help="fields that label the lines, comma-separated")
    t.add_argument(
        "--metric",
        default="abs_error_sub",
        help="a history column (errors on the grid subsample: abs_error_sub)",
    )
    t.add_argument(
        "--where",
        action="append",
        default=[],
        metavar="FIELD=V1,V2",
        help="keep runs whose FIELD is one of the values (repeatable)",
    )
    t.add_argument(
        "--phase",
        default="train",
        help="in histories with phases, the one to plot (PINNs: pretrain|train; "
        "LISCO: predictor|solver)",
    )
    t.add_argument("--out", default="results/figures/histories.png")
    c = sub.add_parser("curves", help="SQP momentum: loss curves, mean ± std over seeds")
    c.add_argument("--results", help="runs to draw (optional with --with)")
    c.add_argument("--out-dir", default="results/figures")
    c.add_argument(
        "--where",
        action="append",
        default=[],
        metavar="FIELD=V1,V2",
        help="keep runs whose FIELD is one of the values (repeatable), e.g. seed=1",
    )
    c.add_argument(
        "--with",
        dest="with_curves",
        action="append",
        default=[],
        metavar="CURVES.csv",
        help="the data of an earlier curves figure (the CSV written beside it): its lines "
        "join the runs' (repeatable; a line named like one already drawn is left out)",
    )
    p = sub.add_parser("predictions", help="SQP momentum: held-out predictions per method")
    p.add_argument("--results", required=True)
    p.add_argument("--out-dir", default="results/figures")
    p.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    try:
        where = parse_where(getattr(args, "where", []))
    except WhereError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    if args.kind == "histories":
        for r in args.results:
            if not Path(r).is_dir():
                print(f"error: --results: no such folder {r!r}", file=sys.stderr)
                sys.exit(2)
        path = histories_plot(
            args.results, args.out, args.by.split(","), args.metric, where, args.phase
        )
        print(f"wrote {path}")
        return
    if args.kind == "curves" and args.with_curves:
        try:  # every --with CSV checked before anything is drawn or written
            for path in args.with_curves:
                read_curves(path)
        except WithError as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)
    elif args.results is None:  # only curves lacks required=True, for --with alone
        print(
            "error: curves needs --results (runs) or --with (an earlier figure's CSV)",
            file=sys.stderr,
        )
        sys.exit(2)
    if args.results is not None:
        if not Path(args.results).is_dir():
            print(f"error: --results: no such folder {args.results!r}", file=sys.stderr)
            sys.exit(2)
        if collect(args.results).empty:
            print(f"error: no metrics.json under {args.results!r}", file=sys.stderr)
            sys.exit(1)
    if args.kind == "curves":
        paths = loss_curves(args.results, args.out_dir, where, args.with_curves)
    elif args.kind == "predictions":
        paths = predictions(args.results, args.out_dir, args.seed)
    elif args.kind == "heatmaps":
        paths = [
            heatmaps(
                args.results,
                args.out,
                args.seed,
                rows=args.rows.split(","),
                cols=args.cols.split(","),
                where=where,
            )
        ]
    else:
        paths = [sweep_plot(args.results, args.x, args.out, args.experiment)]
    if not paths:  # e.g. a plugin problem without a prediction_view: a note, not an error
        print(f"note: nothing drawn from the runs under {args.results!r}", file=sys.stderr)
    for path in paths:
        print(f"wrote {path}")


if __name__ == "__main__":
    main()

"""``results/REPORT.md`` (and ``REPORT.html``): every paper table and figure, ours beside the
paper's, with the environment that produced them.

``python -m runners.report --scale smoke [--results results] [--times FILE]``
``python -m runners.report --scale paper,cpu,smoke``: each table from the first of these
scales whose sweep exists (the largest scale run so far), its scale named in the report.

What is shown is listed in ``conf/report.yaml`` (every table of the four specs). For each
table, one row per (row, column, metric) cell: ours (mean ± std over seeds, number of runs
averaged, number of failed runs, which are never averaged),
the paper's value, the ratio ours / paper and a mark ``✗`` where ours is worse than the
paper's by more than 2× (lower is better except for success rates, converged fractions and
throughput; counts such as training steps are not judged). A cell without runs says
``missing``; a table whose sweep folder does not exist says which ``make`` target fills it.
Nothing here fails on a partial results folder: the report states what is missing.
"""

from __future__ import annotations

import argparse
import glob
import html
import os
import platform
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
from omegaconf import OmegaConf

from runners.io import write_atomic
from runners.tables import (
    METRICS,
    WORSE_FACTOR,
    collect,
    experiment_specs,
    experiment_table,
    summarize,
    verdict,
    worse_by,
)

ROOT = Path(__file__).resolve().parent.parent
CONF = ROOT / "conf" / "report.yaml"


def report_cells(long: pd.DataFrame) -> pd.DataFrame:
    """The long table of :func:`runners.tables.experiment_table` as report rows."""
    rows = []
    # a (row, column) with runs but without this metric (a step the run does not have) is
    # "–"; "failed" means its only runs failed (counted, never averaged); "missing" means no
    # run at all for the (row, column)
    has_runs = long.groupby(["row", "col"])["seeds"].transform("max") > 0 if len(long) else []
    for r, present in zip(long.itertuples(index=False), has_runs):
        mean = None if r.mean is None or pd.isna(r.mean) else float(r.mean)
        paper = None if r.paper is None or pd.isna(r.paper) else float(r.paper)
        std = None if r.std is None or pd.isna(r.std) else float(r.std)
        n_failed = int(getattr(r, "failed", 0) or 0)
        ours = (
            ("–" if present else "failed" if n_failed else "missing")
            if mean is None
            else f"{mean:.3g}" + (f" ± {std:.1g}" if std else "")
        )
        factor = worse_by(r.metric, mean, paper)
        rows.append(
            {
                "row": getattr(r, "name", None) or r.row,
                "column": r.col,
                "metric": METRICS.get(r.metric, r.metric),
                "ours": ours,
                "runs": int(r.seeds),
                "failed": n_failed,
                "paper": "" if paper is None else f"{paper:.3g}",
                "ours/paper": ""
                if mean is None or paper is None or paper == 0
                else f"{mean / paper:.3g}",
                "verdict": verdict(factor),
                "> 2× worse": "✗" if factor is not None and factor > WORSE_FACTOR else "",
            }
        )
    return pd.DataFrame(
        rows,
        columns=[
            "row",
            "column",
            "metric",
            "ours",
            "runs",
            "failed",
            "paper",
            "ours/paper",
            "verdict",
            "> 2× worse",
        ],
    )


def environment(results: Path) -> dict:
    from runners.plumbing import versions

    def git(*args):
        try:
            return subprocess.run(
                ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    devices = sorted(
        {str(d) for d in collect(results, quiet=True).get("device", pd.Series([])).dropna()}
    )
    commit = git("rev-parse", "HEAD") or "unknown (not a git checkout)"
    dirty = git("status", "--porcelain", "--untracked-files=no")
    return {
        "commit": commit + (" (with uncommitted changes)" if dirty else ""),
        "generated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.platform()}, {os.cpu_count()} CPUs",
        "devices of the runs": ", ".join(devices) or "–",
        **versions(),
    }


def build(scale: str, results: str | Path = "results", times: str | Path | None = None) -> list:
    """The report as blocks: ("h1"|"h2"|"h3"|"p"|"code", text), ("table", DataFrame),
    ("img", (relative path, caption))."""
    results = Path(results)
    scales = [x.strip() for x in scale.split(",") if x.strip()]
    scale = scales[0]

    def first(fmt: str) -> tuple[Path, str]:  # the first scale whose path exists
        for sc in scales:
            path = results / fmt.format(scale=sc)
            if path.exists() or glob.glob(str(path)):
                return path, sc
        return results / fmt.format(scale=scale), scale

    spec = OmegaConf.to_container(OmegaConf.load(CONF), resolve=True)
    blocks: list = [("h1", f"Reproduction report, scale={','.join(scales)}")]
    blocks.append(
        (
            "p",
            f"Generated by `make reproduce SCALE={scale}` (`python -m runners.report"
            f" --scale {scale}`). Each table cell: ours (mean ± std over seeds), "
            "the paper's value, ours/paper, and ✗ where ours is worse than the "
            "paper's by more than 2× (lower is better except success, converged "
            "fractions and throughput). Timings of the paper are from its machine.",
        )
    )
    env = environment(results)
    blocks.append(("h2", "Environment"))
    blocks.append(("table", pd.DataFrame({"": list(env), "value": list(env.values())})))
    if times is not None and Path(times).is_file():
        t = pd.read_csv(times, sep=r"\s+", header=None, names=["target", "seconds", "exit"])
        t["minutes"] = [f"{s / 60:.1f} min" for s in t["seconds"]]
        blocks.append(("h2", "Wall time of each target"))
        blocks.append(("table", t[["target", "minutes", "exit"]]))
    missing_all, skipped = [], []
    df_cache: dict[Path, pd.DataFrame] = {}
    for paper in spec["papers"]:
        blocks.append(("h2", paper["title"]))
        blocks.append(("p", f"Make target: `make {paper['make']} SCALE={scale}`."))
        for t in paper["tables"]:
            sweep, sc = first(f"sweeps/{t['sweep']}-{{scale}}")
            exists = sweep.is_dir()
            if exists and sweep not in df_cache:
                df_cache[sweep] = collect(sweep)
                skipped.extend(df_cache[sweep].attrs.get("skipped", []))
            df = df_cache.get(sweep, pd.DataFrame())
            if "summary" in t:
                blocks.append(("h3", f"{t['summary']} ({t['paper_ref']}), scale={sc}"))
                if not exists or df.empty:
                    blocks.append(
                        (
                            "p",
                            f"**missing**: no runs in `{sweep}`; run "
                            f"`make {t.get('make', paper['make'])} SCALE={scale}`.",
                        )
                    )
                    missing_all.append(f"{t['summary']}: all runs")
                    continue
                blocks.append(("table", summarize(df)[1]))
                continue
            for name, tspec in experiment_specs(t["experiment"]).items():
                blocks.append(("h3", tspec.get("title", name)))
                blocks.append(("p", f"Paper: {t['paper_ref']}. Scale: {sc}. Runs: `{sweep}`."))
                if tspec.get("paper_source"):  # reference values that are not the paper's
                    blocks.append(
                        ("p", f"The paper column holds {tspec['paper_source']}'s values.")
                    )
                if not exists:
                    blocks.append(
                        (
                            "p",
                            f"**missing**: no sweep folder `{sweep}`; run "
                            f"`make {t.get('make', paper['make'])} SCALE={scale}`.",
                        )
                    )
                    missing_all.append(f"{name}: all runs")
                    continue
                long, _ = experiment_table(df, tspec)
                cells = report_cells(long)
                blocks.append(("table", cells))
                gone = cells[cells["ours"] == "missing"]
                if len(gone):
                    where = sorted({f"{r} / {c}" for r, c in zip(gone["row"], gone["column"])})
                    blocks.append(
                        ("p", f"**missing runs** ({len(where)} cells): " + "; ".join(where))
                    )
                    missing_all.append(f"{name}: {len(where)} cells")
                worse = cells[cells["> 2× worse"] == "✗"]
                blocks.append(
                    (
                        "p",
                        f"{len(worse)} of {int((cells['paper'] != '').sum())} values "
                        "with a paper reference are worse than the paper's by "
                        "more than 2×.",
                    )
                )
        for item in paper.get("not_reproduced", []):
            blocks.append(
                (
                    "p",
                    f"**not reproduced**: {item} (in the spec; no experiment "
                    "config in this runner yet).",
                )
            )
            missing_all.append(f"not reproduced: {item}")
        for f in paper.get("figures", []):
            where, _ = first(f.get("glob", f.get("path")))
            paths = sorted(glob.glob(str(where)))
            found = [p for p in paths if Path(p).is_file()]
            if not found:
                blocks.append(
                    (
                        "p",
                        f"**missing figure**: {f['caption']} "
                        f"(`{f.get('path', f.get('glob')).format(scale=scale)}`)",
                    )
                )
                missing_all.append(f"figure: {f['caption']}")
            for p in found:
                rel = os.path.relpath(p, results)
                blocks.append(("img", (rel, f"{f['caption']} — {rel}")))
    if skipped:
        blocks.append(("h2", "Unreadable records (skipped)"))
        blocks.append(
            (
                "p",
                f"{len(skipped)} `metrics.json` could not be read and are left "
                "out: " + "; ".join(f"`{p}` ({why})" for p, why in skipped),
            )
        )
    blocks.append(("h2", "Missing"))
    blocks.append(
        (
            "p",
            "; ".join(missing_all)
            if missing_all
            else "nothing: every table cell and figure is present.",
        )
    )
    return blocks


def to_markdown(blocks) -> str:
    out = []
    for kind, x in blocks:
        if kind in ("h1", "h2", "h3"):
            out.append("#" * int(kind[1]) + " " + x)
        elif kind == "p":
            out.append(x)
        elif kind == "table":
            out.append(x.to_markdown(index=False))
        elif kind == "img":
            out.append(f"![{x[1]}]({x[0]})")
    return "\n\n".join(out) + "\n"


def to_html(blocks) -> str:
    import re

    def inline(text):
        text = html.escape(text)
        text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
        return re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", text)

    body = []
    for kind, x in blocks:
        if kind in ("h1", "h2", "h3"):
            body.append(f"<{kind}>{html.escape(x)}</{kind}>")
        elif kind == "p":
            body.append(f"<p>{inline(x)}</p>")
        elif kind == "table":
            body.append(x.to_html(index=False, border=0, classes="t", na_rep=""))
        elif kind == "img":
            body.append(
                f'<figure><img src="{html.escape(x[0])}" style="max-width:100%">'
                f"<figcaption>{html.escape(x[1])}</figcaption></figure>"
            )
    style = (
        "body{font-family:sans-serif;max-width:1200px;margin:auto;padding:1em}"
        "table.t{border-collapse:collapse;font-size:90%;margin:1em 0}"
        "table.t td,table.t th{border:1px solid #ccc;padding:2px 6px;text-align:right}"
        "code{background:#f3f3f3}"
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>Reproduction report"
        f"</title><style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )


def write_report(
    scale: str, results: str | Path = "results", times: str | Path | None = None
) -> Path:
    blocks = build(scale, results, times)
    out = Path(results) / "REPORT.md"
    write_atomic(out, to_markdown(blocks))
    write_atomic(Path(results) / "REPORT.html", to_html(blocks))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(
        prog="python -m runners.report", description=__doc__.split("\n")[0]
    )
    ap.add_argument("--scale", default="smoke", help="the scale whose sweeps are reported")
    ap.add_argument("--results", default="results")
    ap.add_argument("--times", default=None, help="'target seconds exit' lines (make reproduce)")
    args = ap.parse_args(argv)
    if not Path(args.results).is_dir():
        raise SystemExit(f"error: --results: no such folder {args.results!r}")
    out = write_report(args.scale, args.results, args.times)
    print(f"wrote {out} and {out.with_suffix('.html')}")


if __name__ == "__main__":
    main()

"""Figures from finished runs: ``python -m runners.figures heatmaps|sweep ...``.

* ``heatmaps --results DIR``: trSQP-PINN Figure 2. For every problem found under DIR, the
  reference solution and each method's prediction (seed 0) over (x, t). Predictions are
  recomputed from each run's ``params.msgpack`` and the problem config in its
  ``metrics.json`` (data, not pickle: nothing in a results folder runs code).
* ``sweep --results DIR --x problem.alpha``: trSQP-PINN Figure 1: abs and rel error against
  a swept coefficient, one line per method (mean over seeds, min–max band).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from runners.io import save_figure
from runners.tables import collect

METHOD_ORDER = ("penalty", "auglag", "pinn", "trsqp")
# integer config fields that a pandas column holding NaN turns into floats
INT_FIELDS = {"n_data", "m_train", "m_pretrain", "n_heldout", "n_log", "eval_nx", "eval_nt",
              "eval_batch", "depth", "width", "ref_substeps", "m_split", "m_pretrain_split"}


def _ordered(methods):
    return sorted(methods, key=lambda m: (METHOD_ORDER.index(m) if m in METHOD_ORDER else 99, m))


def load_prediction(rec: dict, max_nx: int = 512, max_nt: int = 256):
    """(x, t, reference, prediction) of one run, on a strided evaluation grid."""
    import jax
    from flax import serialization

    from problems import build_problem

    jax.config.update("jax_enable_x64", rec.get("precision", "float64") == "float64")
    values = {k.split(".", 1)[1]: v for k, v in rec.items()
              if k.startswith("problem.") and k != "problem.name"
              and not (isinstance(v, float) and np.isnan(v))}  # fields of other problems
    values = {k: int(v) if isinstance(v, float) and v.is_integer() and k.split(".")[0] in
              INT_FIELDS else v for k, v in values.items()}
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
    template = problem.init_params(k_init)
    params = serialization.from_bytes(template, (Path(rec["path"]) / "params.msgpack").read_bytes())
    pred = np.asarray(jax.jit(problem.predict_grid)(params, data))
    return np.asarray(data.eval_x), np.asarray(data.eval_t), np.asarray(data.u_ref), pred


def heatmaps(results: str | Path, out: str | Path, seed: int = 0) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    df = collect(results)
    df = df[(df["seed"] == seed)] if "seed" in df else df
    problems = sorted(df["problem"].unique())
    methods = _ordered(df["method"].unique())
    fig, axes = plt.subplots(len(problems), 1 + len(methods), squeeze=False,
                             figsize=(3.2 * (1 + len(methods)), 2.8 * len(problems)),
                             constrained_layout=True)
    for i, prob in enumerate(problems):
        ref_drawn = False
        for j, meth in enumerate(methods):
            runs = df[(df["problem"] == prob) & (df["method"] == meth)]
            ax = axes[i, 1 + j]
            if runs.empty:
                ax.axis("off")
                continue
            rec = runs.iloc[0].to_dict()
            x, t, ref, pred = load_prediction(rec)
            extent = (x[0], 2 * np.pi, t[0], t[-1])
            kw = {"origin": "lower", "aspect": "auto", "extent": extent,
                  "vmin": ref.min(), "vmax": ref.max()}
            if not ref_drawn:
                axes[i, 0].imshow(ref, **kw)
                axes[i, 0].set(title=f"{prob}: reference", xlabel="x", ylabel="t")
                ref_drawn = True
            im = ax.imshow(pred, **kw)
            ax.set(title=f"{meth}: abs err {rec['abs_error']:.2g}", xlabel="x")
        if ref_drawn:
            fig.colorbar(im, ax=axes[i, -1])
        else:
            axes[i, 0].axis("off")
    return save_figure(fig, out)


def sweep_plot(results: str | Path, x: str, out: str | Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    df = collect(results)
    if x not in df.columns:
        raise SystemExit(f"error: --x: no runs under {results} have {x!r}; swept fields: "
                         f"{', '.join(c for c in df.columns if c.startswith('problem.'))}")
    df = df.dropna(subset=[x])
    problems = sorted(df["problem"].unique())
    fig, axes = plt.subplots(len(problems), 2, figsize=(10, 3.6 * len(problems)),
                             squeeze=False, constrained_layout=True)
    for row, prob in zip(axes, problems):
        sub = df[df["problem"] == prob]
        for ax, metric in zip(row, ("abs_error", "rel_error")):
            for meth in _ordered(sub["method"].unique()):
                g = sub[sub["method"] == meth].groupby(x)[metric]
                xs = np.asarray(g.mean().index, dtype=float)
                ax.plot(xs, g.mean().values, "o-", label=meth)
                ax.fill_between(xs, g.min().values, g.max().values, alpha=0.2)
            ax.set(title=prob, xlabel=x, ylabel=metric.replace("_", " "), yscale="log")
            ax.grid(alpha=0.3)
        row[0].legend()
    return save_figure(fig, out)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m runners.figures",
                                 description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="kind", required=True)
    h = sub.add_parser("heatmaps", help="reference and predictions per problem and method")
    h.add_argument("--results", required=True)
    h.add_argument("--out", default="results/figures/heatmaps.png")
    h.add_argument("--seed", type=int, default=0)
    s = sub.add_parser("sweep", help="errors against a swept coefficient")
    s.add_argument("--results", required=True)
    s.add_argument("--x", required=True, help="the swept field, e.g. problem.alpha")
    s.add_argument("--out", default="results/figures/sweep.png")
    args = ap.parse_args(argv)
    if not Path(args.results).is_dir():
        print(f"error: --results: no such folder {args.results!r}", file=sys.stderr)
        sys.exit(2)
    if collect(args.results).empty:
        print(f"error: no metrics.json under {args.results!r}", file=sys.stderr)
        sys.exit(1)
    path = heatmaps(args.results, args.out, args.seed) if args.kind == "heatmaps" else \
        sweep_plot(args.results, args.x, args.out)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

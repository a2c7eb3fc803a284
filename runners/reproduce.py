"""The paper pipelines: every sweep, table and figure of a paper, in order, from one entry.

``python -m runners.reproduce <pipeline> [--scale S] [--set NAME=VALUE ...] [--dry-run]
[-- OVERRIDE ...]``

A pipeline is a list of commands (:class:`Step`): Hydra sweeps (``runners.train -m``), then
the tables (``runners.tables``) and figures (``runners.figures``, ``runners.parametric``)
built from their folders. Each step runs as its own process, as a user would type it, so every
sweep stays resumable (finished runs are skipped on a rerun). ``--dry-run`` prints the
commands and runs nothing. Overrides after ``--`` go to every run (not to the tables), e.g.
``-- scale.trsqp_memory=10`` or ``-- seed=1``.

Pipelines (the ``make`` target of each in brackets): ``trsqp`` (``table-trsqp``),
``trsqp-precision``, ``trsqp-baseline-gap``, ``trsqp-sensitivity``, ``sqp-momentum``,
``neural-dae``, ``lisco``, ``lisco-500steps``, ``lisco-eval``, and ``all`` (``make
reproduce``: the four papers' main pipelines, each timed, a failing one not stopping the
others, then ``results/REPORT.md`` by :mod:`runners.report`).

The settings (:data:`SETTINGS`, ``--set NAME=VALUE``; the Makefile passes its variables of
the same names, upper-case) choose subsets: which problems, seeds, instances, ablations,
coefficient values. ``all --scale smoke`` uses :data:`SMOKE` (a pipeline check in about 30
minutes on 2 cores); settings given with ``--set`` win over it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

#: every setting and its default; the Makefile variable of the same name (upper-case) sets it
SETTINGS: dict[str, str] = {
    # trSQP-PINN: the tables, this project's trsqp options (an extra column of trsqp_default,
    # "trsqp + SOC (this project)", and an extra SR1 row of Table 1; empty: none), the
    # Figure 1 panels and their coefficient values (empty: the paper's 12 (β, α) / 5 (τ))
    "trsqp_tables": "trsqp_default trsqp_hessian trsqp_objective trsqp_pinn trsqp_pretrain",
    "trsqp_options": "method.second_order_correction=true",
    "trsqp_fig1": "transport_beta reaction_alpha reaction_diffusion_alpha reaction_diffusion_tau",
    "fig1_values": "",
    "fig1_tau_values": "",
    "gap_problems": "transport,reaction,reaction_diffusion",
    "trsqp_sens": "fig3_n:problem.n_data fig7_mpretrain:problem.m_pretrain "
    "fig8_depth:problem.depth fig9_width:problem.width",
    # SQP momentum: the problems and the vectorized seeds per (method, learning rate)
    "sqp_problems": "spring butene burgers darcy",
    "sqp_seeds": "5",
    # neural DAE: the tables and the tank-manifold ablation letters
    "dae_tables": "neural_dae_tank neural_dae_bioreactor neural_dae_population",
    "dae_ablations": "A,B,C,D,R",
    # LISCO: problems and instances (Hydra sweep lists)
    "lisco_problems": "qp,nonconvex_qp,rosenbrock",
    "lisco_instances": "0,1,2,3,4",
}

#: ``all --scale smoke``: fewer, shorter runs (measured 25-30 min on 2 cores, XLA compiles a
#: third of it): no Figure 1 coefficient sweeps (the report lists them as missing), 2
#: vectorized seeds, the tank ablation A-C (D, the exact Hessian, alone takes ~12 min), LISCO
#: instances 0 and 1 on 200 test points; sweeps as 2 single-threaded joblib jobs (LISCO stays
#: sequential: it times batch-1 solves)
PARALLEL = ("hydra/launcher=joblib", "hydra.launcher.n_jobs=2")
SMOKE = {
    "settings": {
        "trsqp_fig1": "",
        "sqp_seeds": "2",
        "dae_ablations": "A,B,C",
        "lisco_instances": "0,1",
    },
    "env": {"XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false"},
    "args": {
        "lisco": ("scale.lisco.n_test=200",),
        "trsqp": (*PARALLEL, "scale.trsqp_memory=10", "scale.max_iter=1000"),
        "sqp-momentum": PARALLEL,
        "neural-dae": PARALLEL,
    },
    # per experiment: Burgers' and Darcy's epochs below their smoke budget (5 / 25)
    "experiment_args": {
        f"sqp_momentum_{p}": ("method.epochs=2", "method.epochs_full_batch=5")
        for p in ("burgers", "darcy")
    },
}

#: the pipelines ``all`` runs, in order
ALL = ("lisco", "neural-dae", "sqp-momentum", "trsqp")


@dataclass(frozen=True)
class Step:
    """One command of a pipeline: ``python -m <argv...>``.

    ``fatal=False``: a failure is reported and the pipeline goes on (a figure whose inputs
    are optional); ``skip``: a reason not to run it, printed instead.
    """

    argv: tuple[str, ...]
    fatal: bool = True
    skip: str | Callable[[], str] = ""

    def skipped(self) -> str:
        """Why not to run it (checked when its turn comes: earlier steps may make its input)."""
        return self.skip() if callable(self.skip) else self.skip

    def command(self) -> str:
        return shlex.join(("python", "-m", *self.argv))


@dataclass(frozen=True)
class Context:
    scale: str
    settings: dict[str, str]
    args: tuple[str, ...]  # overrides for every run
    results: Path = Path("results")
    # overrides for the runs of one experiment (before ``args``, which win)
    experiment_args: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def where(self) -> tuple[str, ...]:
        """``results_dir`` for the runs when the results root is not the default."""
        return () if self.results == Path("results") else (f"results_dir={self.results}",)

    def words(self, name: str) -> list[str]:
        """A setting as a list (whitespace-separated)."""
        return self.settings[name].split()

    def sweep(
        self, experiment: str, *extra: str, name: str | None = None, progress: bool = False
    ) -> Step:
        """A resumable Hydra sweep of ``experiment`` into ``results/sweeps/<name>-<scale>``
        (``progress``: keep the runs' progress bars)."""
        return Step(
            (
                "runners.train",
                "-m",
                f"experiment={experiment}",
                f"scale={self.scale}",
                f"sweep_name={name or experiment}-{self.scale}",
                *(() if progress else ("progress=false",)),
                *extra,
                *self.where(),
                *self.experiment_args.get(experiment, ()),
                *self.args,
            )
        )

    def folder(self, name: str) -> str:
        return str(self.results / "sweeps" / f"{name}-{self.scale}")

    def table(self, experiment: str, out: str, name: str | None = None) -> Step:
        return Step(
            (
                "runners.tables",
                f"experiment={experiment}",
                "--results",
                self.folder(name or experiment),
                "--out",
                str(self.results / "tables" / out),
            )
        )

    def figure(self, *argv: str, fatal: bool = True, skip: str | Callable[[], str] = "") -> Step:
        return Step(("runners.figures", *argv), fatal=fatal, skip=skip)

    def png(self, stem: str) -> str:
        return str(self.results / "figures" / f"{stem}-{self.scale}.png")


# ------------------------------------------------------------------------------ pipelines


def trsqp(c: Context) -> list[Step]:
    """trSQP-PINN Tables 1-3 (``trsqp_tables``), this project's options as extra rows, the
    Figure 1 sweeps (``trsqp_fig1``), and the heatmaps of Figures 2 and 4-6."""
    steps, options, fig1 = [], c.words("trsqp_options"), c.words("trsqp_fig1")
    out = f"trsqp-{c.scale}"
    for e in c.words("trsqp_tables") + [f"trsqp_fig1_{f}" for f in fig1]:
        extra = []
        if e.startswith("trsqp_fig1_"):
            k = e.rsplit("_", 1)[1]
            values = c.settings["fig1_tau_values" if k == "tau" else "fig1_values"]
            extra = [f"problem.{k}={values}"] if values else []
        steps.append(c.sweep(e, *extra))
        if options and e == "trsqp_hessian":
            steps.append(c.sweep(e, "method.hessian=sr1", *options))
        if options and e == "trsqp_default":
            steps.append(c.sweep(e, "method=trsqp", *options))
        steps.append(c.table(e, out))
    heatmaps = [
        ("trsqp_default", "--cols variant", "trsqp_heatmaps"),  # Figure 2
        ("trsqp_pinn", "--where problem=transport --cols method.mu", "trsqp_fig4_pinn"),
        (
            "trsqp_pretrain",
            "--where problem=reaction,reaction_diffusion --cols method,pretrain",
            "trsqp_fig5_pretrain",
        ),
    ]
    for e, how, png in heatmaps:
        steps.append(
            c.figure("heatmaps", "--results", c.folder(e), *how.split(), "--out", c.png(png))
        )
    fig6 = c.folder("trsqp_fig1_reaction_alpha")
    how = "--rows problem.alpha --cols variant --where problem.alpha=-20,-30,-40,-50"
    steps.append(
        c.figure(
            *("heatmaps", "--results", fig6, *how.split(), "--out", c.png("trsqp_fig6_reaction")),
            fatal=False,
            skip=lambda: "" if Path(fig6).is_dir() else f"Figure 6 needs the Figure 1 sweep {fig6}",
        )
    )
    for f in fig1:
        e, x = f"trsqp_fig1_{f}", f"problem.{f.rsplit('_', 1)[1]}"
        how = ("--x", x, "--experiment", e, "--out", c.png(e))
        steps.append(c.figure("sweep", "--results", c.folder(e), *how))
    return steps


def trsqp_precision(c: Context) -> list[Step]:
    """float32 (the authors' code) against float64 (ours) for trsqp, penalty and auglag."""
    return [c.sweep("trsqp_precision"), c.table("trsqp_precision", f"trsqp-{c.scale}")]


#: the baseline-gap rows: one difference at a time towards the authors' code. A key that
#: only penalty and auglag have is set with ``++`` where the row does not name the method:
#: Hydra composes the command line once, with the default method (trsqp), before the jobs
GAP_ROWS = (
    ("float32", ()),
    ("pretraining stopped at 306", ("pretraining.inner_maxiter=306",)),
    (
        "strong Wolfe, maxls 20",
        (
            "pretraining.linesearch=zoom",
            "pretraining.max_linesearch_steps=20",
            "++method.linesearch=zoom",
            "++method.max_linesearch_steps=20",
        ),
    ),
    ("ALM step 2mu", ("method=auglag", "++method.multiplier_update=authors_code")),
    ("no pretraining", ("pretrain=false", "budget.time_s=300")),
    ("SciPy L-BFGS-B", ("++method.solver=scipy", "pretraining.solver=scipy")),
    (
        "SciPy L-BFGS-B + ALM step 2mu",
        (
            "method=auglag",
            "method.solver=scipy",
            "pretraining.solver=scipy",
            "++method.multiplier_update=authors_code",
        ),
    ),
    (
        "SciPy L-BFGS-B, no pretraining",
        ("pretrain=false", "++method.solver=scipy", "budget.time_s=300"),
    ),
    ("SciPy L-BFGS-B, our pretraining", ("++method.solver=scipy",)),
    (
        "SciPy L-BFGS-B, float64",
        (
            "precision=float64",
            "++method.solver=scipy",
            "pretraining.solver=scipy",
            "budget.time_s=300",
        ),
    ),
)


def trsqp_baseline_gap(c: Context) -> list[Step]:
    """The trSQP-PINN baselines, one difference at a time towards the authors' code
    (:data:`GAP_ROWS`), on ``gap_problems``."""
    problems = f"problem={c.settings['gap_problems']}"
    steps = [
        c.sweep("trsqp_baseline_gap", problems, f"tag='{tag}'", *extra) for tag, extra in GAP_ROWS
    ]
    return steps + [c.table("trsqp_baseline_gap", f"trsqp-{c.scale}")]


def trsqp_sensitivity(c: Context) -> list[Step]:
    """Figures 3 and 7-9: errors against N, M_pretrain, depth and width (``trsqp_sens``:
    ``figure:key`` pairs)."""
    steps = []
    for f in c.words("trsqp_sens"):
        name, x = f.split(":")
        e = f"trsqp_{name}"
        steps += [
            c.sweep(e),
            c.table(e, f"trsqp-{c.scale}"),
            c.figure(
                "sweep", "--results", c.folder(e), "--x", x, "--experiment", e, "--out", c.png(e)
            ),
        ]
    return steps


#: butene's extra rows: this project's scaled inputs and outputs
SQP_SCALED = (
    "method=sqp_adam,adam_unc",
    "problem.normalize_inputs=true",
    "problem.normalize_outputs=true",
)


def sqp_momentum(c: Context) -> list[Step]:
    """Per problem: 4 methods x 2 learning rates x ``sqp_seeds`` vectorized seeds, and one
    full-batch run per method and rate; sqp_adam also in the predecessor's (ICLR) form; butene
    also with this project's scaling. Then the table, loss curves and predictions."""
    steps, name = [], "sqp_momentum"
    for p in c.words("sqp_problems"):
        forms = [(), ("method=sqp_adam", "method.variant=iclr")]
        if p == "butene":
            forms.append(SQP_SCALED)
        for form in forms:
            for extra in (
                ("seed=0", f"seeds={c.settings['sqp_seeds']}"),
                ("seed=0", "method.full_batch=true"),
            ):
                steps.append(c.sweep(f"sqp_momentum_{p}", *form, *extra, name=name))
    folder, figs = c.folder(name), str(c.results / "figures" / f"{name}-{c.scale}")
    return steps + [
        Step(
            (
                "runners.tables",
                "--results",
                folder,
                "--out",
                str(c.results / "tables"),
                "--name",
                f"{name}-{c.scale}",
                "--tail",  # mini-batch curves spike: each run's median of its last 10% too
                "0.1",
            )
        ),
        c.figure("curves", "--results", folder, "--out-dir", figs),
        c.figure("predictions", "--results", folder, "--out-dir", figs),
    ]


#: the sequential baseline's run in each neural-DAE table
DAE_SEQUENTIAL = {
    "neural_dae_tank": "+ablation=S",
    "neural_dae_population": "problem.lyapunov=false",
}


def neural_dae(c: Context) -> list[Step]:
    """(a) the tank-manifold ablation (``dae_ablations``) and the sequential baseline S,
    (b) the bioreactor, (c) predator-prey with and without the Lyapunov constraint."""
    steps = []
    for e in c.words("dae_tables"):
        extra = [f"+ablation={c.settings['dae_ablations']}"] if e == "neural_dae_tank" else []
        steps.append(c.sweep(e, *extra))
        if e in DAE_SEQUENTIAL:
            steps.append(c.sweep(e, "method=sequential", DAE_SEQUENTIAL[e]))
        steps.append(c.table(e, f"neural_dae-{c.scale}"))
    return steps


def lisco(c: Context) -> list[Step]:
    """LISCO with and without predictor, IPOPT, and on the QP OSQP and jaxopt's BoxOSQP (OSQP's
    default and tight tolerances), on ``lisco_problems`` x ``lisco_instances``; Tables 1-5 and
    the convergence figure."""
    problems, instances = c.settings["lisco_problems"], c.settings["lisco_instances"]
    on = (f"problem={problems}", f"problem.instance={instances}")
    steps = [c.sweep("lisco", *on, name="lisco", progress=True), *_lisco_baselines(c, "lisco")]
    return steps + [
        c.table("lisco", f"lisco-{c.scale}", name="lisco"),
        Step(
            (
                "runners.parametric",
                "--results",
                c.folder("lisco"),
                "--out",
                c.png("lisco_convergence"),
            )
        ),
    ]


def _lisco_baselines(c: Context, name: str) -> list[Step]:
    """IPOPT on every problem and instance; on the QP also OSQP and jaxopt's BoxOSQP (OSQP's
    default and tight tolerances), into ``results/sweeps/<name>-<scale>``."""
    problems, instances = c.settings["lisco_problems"], c.settings["lisco_instances"]
    on = (f"problem={problems}", f"problem.instance={instances}")
    run = lambda *x: c.sweep("lisco_baselines", *x, name=name, progress=True)  # noqa: E731
    steps = [run(*on)]
    if "qp" in problems.split(","):
        qp = ("problem=qp", f"problem.instance={instances}")
        steps += [
            run(*qp, "method=osqp"),
            run(*qp, "method=jaxopt_osqp", "method.tight=false,true"),
        ]
    return steps


LISCO_KEYS = ("problem", "method.predictor", "problem.instance")


def trained_log(run: Path) -> str:
    """The log a trained lisco run's solver input used (``networks.json``; log10 before the
    key existed), so its networks are evaluated as they were trained."""
    from runners.parametric import trained_input_log

    try:
        meta = json.loads((run / "networks.json").read_text())
    except (OSError, ValueError):
        meta = {}
    return trained_input_log(meta)


def _lisco_again(c: Context, name: str, extra: tuple[str, ...]) -> list[Step]:
    """The networks ``lisco`` trained (each finished run of ``results/sweeps/lisco-<scale>``),
    evaluated again without training, with ``extra`` settings, into
    ``results/sweeps/<name>-<scale>``; networks evaluated there already are skipped."""
    steps, out = [], str(c.results / "sweeps" / f"{name}-{c.scale}")
    done = set()  # networks already evaluated there: a rerun resumes
    for m in Path(out).glob("runs/*/*/*/metrics.json"):
        try:
            done.add(str(json.loads(m.read_text()).get("method.checkpoint")))
        except (OSError, ValueError):
            continue
    for d in sorted(Path(c.folder("lisco")).glob("experiment=lisco,*")):
        if not (d / "metrics.json").is_file() or str(d) in done:
            continue
        o = {k: re.search(rf"(?:^|,){re.escape(k)}=([^,]*)", d.name) for k in LISCO_KEYS}
        if not all(o.values()):
            continue
        o = {k: m.group(1) for k, m in o.items()}
        steps.append(
            Step(
                (
                    "runners.train",
                    "experiment=lisco",
                    f"scale={c.scale}",
                    f"problem={o['problem']}",
                    f"method.predictor={o['method.predictor'].lower()}",
                    f"problem.instance={o['problem.instance']}",
                    "method.train=false",
                    f"method.checkpoint='{d}'",
                    f"method.input_log={trained_log(d)}",
                    *extra,
                    "figures=false",
                    "progress=false",
                    f"results_dir={out}",
                    *c.args,
                )
            )
        )
    if not steps:
        steps.append(Step((), skip=f"no finished LISCO runs in {c.folder('lisco')}: run `lisco`"))
    return steps


def lisco_500steps(c: Context) -> list[Step]:
    """Table 3's other reading ("LISCO is evaluated for 500 steps"): the networks ``lisco``
    trained, evaluated again with every test point run all n_max = 500 steps."""
    steps = _lisco_again(c, "lisco_500steps", ("++method.stop_tol=0",))
    return steps + [c.table("lisco", f"lisco_500steps-{c.scale}", name="lisco_500steps")]


def lisco_evaluate(c: Context) -> list[Step]:
    """The networks ``lisco`` trained, evaluated again at today's evaluation defaults (the
    paper's test set since 2026-12-06), with the baselines on the same test points, into
    ``results/sweeps/lisco_eval-<scale>``: Tables 1-4 of networks trained earlier without
    training them again, and their timings on a machine left alone for the evaluation."""
    steps = _lisco_again(c, "lisco_eval", ()) + _lisco_baselines(c, "lisco_eval")
    return steps + [c.table("lisco", f"lisco_eval-{c.scale}", name="lisco_eval")]


#: name -> (pipeline, its make target)
PIPELINES: dict[str, tuple[Callable[[Context], list[Step]], str]] = {
    "trsqp": (trsqp, "table-trsqp"),
    "trsqp-precision": (trsqp_precision, "table-trsqp-precision"),
    "trsqp-baseline-gap": (trsqp_baseline_gap, "table-trsqp-baseline-gap"),
    "trsqp-sensitivity": (trsqp_sensitivity, "table-trsqp-sensitivity"),
    "sqp-momentum": (sqp_momentum, "table-sqp-momentum"),
    "neural-dae": (neural_dae, "table-neural-dae"),
    "lisco": (lisco, "table-lisco"),
    "lisco-500steps": (lisco_500steps, "table-lisco-500steps"),
    "lisco-eval": (lisco_evaluate, "table-lisco-eval"),
}


# ------------------------------------------------------------------------------ running

Runner = Callable[[Sequence[str], dict], int]


def _subprocess(argv: Sequence[str], env: dict) -> int:
    return subprocess.call([sys.executable, "-m", *argv], env={**os.environ, **env})


def execute(name: str, steps: list[Step], env: dict, run: Runner, dry_run: bool) -> int:
    """Run ``steps`` in order; the first failing fatal step stops the pipeline (exit 1)."""
    for i, step in enumerate(steps, 1):
        head = f"[reproduce {name} {i}/{len(steps)}]"
        why = step.skipped()
        if why:
            print(f"{head} skipped: {why}", flush=True)
            continue
        print(f"{head} {step.command()}", flush=True)
        if dry_run:
            continue
        start = time.monotonic()
        rc = run(step.argv, env)
        if rc != 0:
            print(f"{head} failed (exit {rc}) after {time.monotonic() - start:.0f} s", flush=True)
            if step.fatal:
                return 1
    return 0


def settings_from(pairs: Sequence[str], base: dict[str, str]) -> dict[str, str]:
    """``NAME=VALUE`` pairs (names case-insensitive, the Makefile's variables) over ``base``."""
    out = dict(base)
    for pair in pairs:
        name, sep, value = pair.partition("=")
        key = name.strip().lower()
        if not sep or key not in SETTINGS:
            raise ValueError(
                f"--set {pair!r}: unknown setting {name!r}; valid: {', '.join(SETTINGS)}"
            )
        out[key] = value.strip()
    return out


def main(argv: Sequence[str] | None = None, run: Runner = _subprocess) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args_after = argv[argv.index("--") + 1 :] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    ap = argparse.ArgumentParser(
        prog="python -m runners.reproduce",
        description="Run a paper's sweeps, tables and figures (see the module docstring).",
        epilog="settings (--set NAME=VALUE): " + ", ".join(SETTINGS),
    )
    ap.add_argument("pipeline", choices=[*PIPELINES, "all"])
    ap.add_argument("--scale", default="smoke", choices=["smoke", "cpu", "paper"])
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    ap.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    ap.add_argument("--results", default="results", help="the results root (default: results)")
    a = ap.parse_args(argv)
    smoke = a.pipeline == "all" and a.scale == "smoke"
    try:
        settings = settings_from(a.set, {**SETTINGS, **(SMOKE["settings"] if smoke else {})})
    except ValueError as e:
        print(f"runners.reproduce: {e}", file=sys.stderr)
        return 2
    env = dict(SMOKE["env"]) if smoke else {}
    results = Path(a.results)

    def context(name: str) -> Context:
        extra = tuple(SMOKE["args"].get(name, ())) if smoke else ()
        per_experiment = dict(SMOKE["experiment_args"]) if smoke else {}
        return Context(a.scale, settings, (*extra, *args_after), results, per_experiment)

    if a.pipeline != "all":
        fn = PIPELINES[a.pipeline][0]
        return execute(a.pipeline, fn(context(a.pipeline)), env, run, a.dry_run)

    # all: every paper, each timed, a failure not stopping the others, then the report
    times, failed = [], 0
    for name in ALL:
        fn, target = PIPELINES[name]
        start = time.monotonic()
        rc = execute(name, fn(context(name)), env, run, a.dry_run)
        failed |= rc != 0
        times.append(f"{target} {time.monotonic() - start:.0f} {rc}")
    report = ("runners.report", "--scale", a.scale, "--results", str(results))
    if a.dry_run:
        print(f"[reproduce all] {shlex.join(('python', '-m', *report))}")
        return 0
    results.mkdir(parents=True, exist_ok=True)
    t = results / f"reproduce-{a.scale}-times.txt"
    t.write_text("\n".join(times) + "\n")
    if run((*report, "--times", str(t)), env) != 0:
        return 1
    return int(failed)


if __name__ == "__main__":
    sys.exit(main())

"""The ``neural_dae`` branch of ``runners.train``: collocation (CasADi + IPOPT) or sequential.

Writes into the run folder, besides Hydra's ``.hydra/``:

    metrics.json    status (converged | max_iter | solver_failed | diverged; IPOPT's return
                    status in status_message when it failed),
                    per-step IPOPT iterations / wall time / status / objective / violation,
                    train_mse; the test predictions two ways: ``test_*`` and the problem's
                    extras (bioreactor min_S, hours_S_negative) from ``method.inference``
                    (collocation: the constrained inference NLP; sequential: the
                    integrated model), ``simulate_*`` from the unconstrained march
                    (``simulate_min_S``, ...); config, versions
    history.csv     one row per IPOPT iteration (step, iteration, objective, infeasibility)
                    or per logged chunk of the sequential method
    network.npz     the closure network: W_k, b_k (Flax layout) and the standardisation
    trajectories.png  data, truth and the learned model per training trajectory, and the
                    test predictions (constrained inference and simulation) beyond the
                    training horizon

A failed IPOPT solve still writes all of these, from its last iterate.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from omegaconf import DictConfig

from runners.io import draw, save_figure, write_atomic, write_json


class IpoptProgress:
    """A live line per IPOPT step: iteration, objective, infeasibility (IPOPT prints nothing)."""

    def __init__(self, enabled: bool, max_iter: int, history: list):
        self.enabled, self.max_iter, self.history = enabled, max_iter, history
        self.bar, self.step = None, None

    def __call__(self, step, k, objective, inf):
        from runners.plumbing import Bar
        from runners.signals import StopRequested, requested

        if requested():  # CasADi catches what the signal handler raised in its callback:
            raise StopRequested(requested())  # end this IPOPT step at its next iteration

        if step != self.step:
            self.close()
            self.step = step
            self.bar = Bar(self.max_iter, f"IPOPT {step}", enabled=self.enabled)
        self.history.append(
            {"phase": step, "iteration": k, "objective": objective, "infeasibility": inf}
        )
        self.bar.show(k, {"obj": f"{objective:.4g}", "inf": f"{inf:.2g}"})

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _as_test(key: str) -> str:
    """``simulate_mse`` -> ``test_mse`` (also ``_ok``, ``_bound_violation``, ``_mse_<k>``),
    ``simulate_min_S`` -> ``min_S``: the names :meth:`DaeProblem.evaluate_test` gives with
    ``prefix="test"``."""
    rest = key[len("simulate_") :]
    test = rest in ("mse", "ok", "bound_violation") or rest.startswith("mse_")
    return f"test_{rest}" if test else rest


def _constrained_predictions(problem, layers, scaling: dict, mcfg, record: dict):
    """:func:`methods.dae.collocation.constrained_inference` from every test IC on the
    problem's inference grid (started from the simulation where finite), scored by
    :meth:`DaeProblem.evaluate_test`; adds the NLPs' status, iterations, wall time and the
    network's mean violation |s⁺ − s⁻| (standardized units) to ``record``."""
    from methods.dae.collocation import Standardization, constrained_inference

    sc = Standardization(**{k: np.asarray(v, float) for k, v in scaling.items()})
    closure = problem.network_closure(layers, sc.x_mean, sc.x_std, sc.z_mean, sc.z_std)
    grid = problem.inference_grid()
    runs = []

    def predict(k, x0):
        guess, *_ = problem.simulate(closure, x0, grid)
        inf = constrained_inference(
            problem, layers, sc, x0, grid, mcfg.inference_slack_weight, guess=guess
        )
        runs.append(inf)
        return grid, inf.X, inf.ok

    test, sims = problem.evaluate_test(predict, "test")
    reps = [r.report for r in runs]
    record.update(
        {
            "inference.status": next(
                (r.status for r in reps if r.status != "converged"), "converged"
            ),
            "inference.iterations": sum(r.iterations for r in reps),
            "inference.wall_s": sum(r.wall_s for r in reps),
            "inference.grid": f"{grid.n_fe}x{grid.K}",
            "inference.network_violation": float(
                np.mean([np.mean(np.abs(r.slack_pos - r.slack_neg)) for r in runs])
            ),
        }
    )
    return test, sims


def _simulated_train_mse(problem, closure, data) -> float:
    """The learned model simulated from each training IC, at the observation times, against
    the (noisy) observations; original units."""
    grid = problem.truth_grid()
    errs = []
    for x0, obs in zip(data.x0, data.x_obs):
        x, _, _, ok = problem.simulate(closure, x0, grid)
        if not ok:
            return float("nan")
        errs.append((grid.interpolate(x, data.t) - obs) ** 2)
    return float(np.mean(errs))


def trajectories_figure(problem, data, learned, tests, path: Path, title: str):
    """Rows: training trajectories then test ICs; columns: states. ``tests``:
    [(label, sims)] with sims [(t, X_learned, X_true, ok)] per test IC, drawn over each
    other (constrained inference and simulation)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_test = len(tests[0][1]) if tests else 0
    rows = len(data.x0) + n_test
    fig, axes = plt.subplots(
        rows, problem.n_x, figsize=(3.2 * problem.n_x, 2.3 * rows), squeeze=False, sharex="row"
    )
    grid = problem.truth_grid()
    for r, (x0, obs) in enumerate(zip(data.x0, data.x_obs)):
        truth, *_ = problem.simulate_truth(x0, grid)
        t_l, x_l = learned[r]
        for i, name in enumerate(problem.state_names):
            ax = axes[r, i]
            ax.plot(grid.times, truth[i], "k-", lw=1, label="truth")
            ax.plot(data.t, obs[i], "o", ms=3, color="tab:gray", label="data")
            ax.plot(t_l, x_l[i], "--", color="tab:red", lw=1.5, label="learned")
            ax.set_title(f"train {r + 1}: {name}", fontsize=9)
    styles = [("--", "tab:blue"), (":", "tab:orange")]
    for k in range(n_test):
        r = len(data.x0) + k
        for i, name in enumerate(problem.state_names):
            ax = axes[r, i]
            ax.plot(tests[0][1][k][0], tests[0][1][k][2][i], "k-", lw=1, label="truth")
            for (label, sims), (ls, color) in zip(tests, styles):
                t, xl, _, _ = sims[k]
                ax.plot(t, xl[i], ls, color=color, lw=1.5, label=label)
            if problem.x_lower is not None and np.isfinite(problem.x_lower[i]):
                ax.axhline(problem.x_lower[i], color="tab:red", lw=0.6, alpha=0.5)
            ax.axvline(problem.tf, color="0.6", lw=0.8, ls=":")
            ax.set_title(f"test {k + 1}: {name}", fontsize=9)
    for ax in axes[-1]:
        ax.set_xlabel("t")
    axes[0, 0].legend(fontsize=7)
    if n_test:
        axes[len(data.x0), 0].legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


class Trained(NamedTuple):
    """What a DAE method hands the evaluation: its status, the network (layers and
    scaling), the closure z = NN(x), the learned training trajectories and its record."""

    status: str
    layers: list
    scaling: dict
    closure: Any
    learned: list
    record: dict


def _collocation(cfg, setup, problem, data, history: list) -> Trained:
    """Steps 1-4 of the simultaneous approach (CasADi + IPOPT), an IPOPT progress bar."""
    from methods.dae.collocation import learned_closure, train_collocation

    mcfg, record = setup.method_cfg, {}
    bar = IpoptProgress(bool(cfg.progress), mcfg.max_iter, history)
    try:
        res = train_collocation(problem, mcfg, data, on_iteration=bar)
    finally:
        bar.close()
    from runners.signals import StopRequested, requested

    if requested():  # a stop signal during an IPOPT solve ended it as a failed step
        raise StopRequested(requested())
    for s in res.steps:
        record.update(
            {
                f"{s.name}.status": s.status,
                f"{s.name}.iterations": s.iterations,
                f"{s.name}.wall_s": s.wall_s,
                f"{s.name}.objective": s.objective,
                f"{s.name}.max_violation": s.max_violation,
            }
        )
        if s.return_status:
            record[f"{s.name}.ipopt_status"] = s.return_status
        if s.hessian_calls and s.name in ("main", "refinement"):
            record.update(
                {f"{s.name}.hessian_calls": s.hessian_calls, f"{s.name}.hessian_s": s.hessian_s}
            )
    main = [s for s in res.steps if s.name in ("main", "refinement")][-1]
    record.update(
        iterations=sum(s.iterations for s in res.steps if s.name != "pretraining"),
        objective=main.objective,
        max_violation=main.max_violation,
        wall_s=sum(s.wall_s for s in res.steps),
        nlp_train_mse=float(
            np.mean(
                [(res.grid.interpolate(x, data.t) - obs) ** 2 for x, obs in zip(res.X, data.x_obs)]
            )
        ),
    )
    if res.steps and res.steps[-1].status == "solver_failed":  # IPOPT's words, apart
        record["status_message"] = res.steps[-1].return_status
    sc = res.scaling
    scaling = {"x_mean": sc.x_mean, "x_std": sc.x_std, "z_mean": sc.z_mean, "z_std": sc.z_std}
    return Trained(
        res.status,
        res.layers,
        scaling,
        learned_closure(problem, res),
        [(res.grid.times, x) for x in res.X],
        record,
    )


def _sequential(cfg, setup, problem, data, history: list) -> Trained:
    """The sequential baseline: a jitted stepper through the ODE solver, in chunks."""
    import jax

    from methods.dae.sequential import (
        initial_params,
        make_model,
        sequential_method,
        to_sequential_data,
    )
    from methods.driver import run_chunked
    from problems.dae.base import flax_to_layers
    from runners.plumbing import Bar

    mcfg = setup.method_cfg
    method = sequential_method(problem, mcfg, data)
    sdata = to_sequential_data(data)
    bar = Bar(mcfg.epochs, f"sequential {problem.name}", enabled=cfg.progress, unit="epoch")

    def on_chunk(state, row):
        row["phase"] = "train"
        history.append(row)
        bar.show(int(method.progress(state)), {"loss": f"{row.get('objective', float('nan')):.4g}"})

    r = run_chunked(
        method,
        method.init(initial_params(problem, mcfg), sdata),
        sdata,
        max_steps=min(setup.max_iter, mcfg.epochs),
        log_every=cfg.log_every,
        time_budget_s=setup.time_s,
        on_chunk=on_chunk,
    )
    bar.close()
    _, xm, xs = make_model(problem, data)
    layers = flax_to_layers(jax.device_get(method.params(r.state)))
    scaling = {
        "x_mean": np.asarray(xm),
        "x_std": np.asarray(xs),
        "z_mean": np.zeros(problem.n_z),
        "z_std": np.ones(problem.n_z),
    }
    closure = problem.network_closure(layers, *scaling.values())
    record = {
        "iterations": int(method.iterations(r.state)),
        "objective": float(r.state.loss),
        "wall_s": r.wall_s,
        "compile_s": r.compile_s,
    }
    grid = problem.truth_grid()
    x0s = (
        np.asarray(jax.device_get(r.state.params["x0"]))
        if problem.cfg.initial_state == "free"
        else data.x0
    )
    x0s = [problem.consistent_initial_state(np.array(x, float)) for x in x0s]
    record["fitted_x0"] = [list(map(float, x)) for x in x0s]
    learned = [(grid.times, problem.simulate(closure, x0, grid)[0]) for x0 in x0s]
    return Trained(r.status, layers, scaling, closure, learned, record)


# how each neural-DAE method trains: (cfg, setup, problem, data, history) -> Trained
TRAINERS = {"collocation": _collocation, "sequential": _sequential}


def register_trainer(name: str):
    """Decorator: how the neural-DAE method ``name`` trains, for a method registered from
    outside the project (``methods.register_method(name, MethodSpec(NEURAL_DAE, ...))``).

    The trainer is ``(cfg, setup, problem, data, history) -> Trained``: ``setup.method_cfg``
    is the method's config, ``data`` the problem's training data, ``history`` a list to
    append one dict per logged iteration (written as ``history.csv``). :data:`TRAINERS` holds
    the two the paper uses (collocation: CasADi + IPOPT, :func:`_collocation`; sequential: a
    jitted stepper through the ODE solver, :func:`_sequential`); a new trainer may wrap
    either. Evaluation, artifacts and figures are the family's, as for those two."""

    def add(trainer: Callable) -> Callable:
        TRAINERS[name] = trainer
        return trainer

    return add


def run_neural_dae(cfg: DictConfig, setup, out: Path, base_record: dict) -> tuple[dict, str]:
    """Train, evaluate, write the artifacts; returns (record, one-line summary)."""
    import pandas as pd

    from problems.common.base import ConfigError

    problem = setup.problem
    if setup.method_name not in TRAINERS:
        raise ConfigError(
            f"method: {setup.method_name!r} has no neural-DAE trainer (register one with "
            f"runners.dae.register_trainer); valid methods: {', '.join(TRAINERS)}"
        )
    t0 = time.perf_counter()
    data = problem.make_data()
    data_s = time.perf_counter() - t0
    history: list = []
    mcfg = setup.method_cfg
    trained = TRAINERS[setup.method_name](cfg, setup, problem, data, history)
    status, layers, scaling, closure, learned = trained[:5]
    record = dict(trained.record)

    t_eval = time.perf_counter()
    simulated, sims = problem.evaluate_closure(closure, prefix="simulate")
    tests = [("simulated (test)", sims)]
    if mcfg.inference == "constrained":
        test, inferred = _constrained_predictions(problem, layers, scaling, mcfg, record)
        tests.insert(0, ("constrained inference (test)", inferred))
    else:  # the simulation is the prediction
        test = {_as_test(k): v for k, v in simulated.items()}
    record.update(
        train_mse=_simulated_train_mse(problem, closure, data),
        **test,
        **simulated,
        inference=mcfg.inference,
        eval_s=time.perf_counter() - t_eval,
        data_s=data_s,
    )
    if history:
        write_atomic(out / "history.csv", pd.DataFrame(history).to_csv(index=False))
    arrays = {
        **{f"W{k}": w for k, (w, _) in enumerate(layers)},
        **{f"b{k}": b for k, (_, b) in enumerate(layers)},
        **{k: np.asarray(v, float) for k, v in scaling.items()},
    }
    _write_npz(out / "network.npz", arrays)
    label = f"{problem.name} / {setup.method_name}  (seed {cfg.seed}, status {status})"
    full = {**base_record, "status": status, **record}
    write_json(out / "metrics.json", full)
    if cfg.figures:  # after metrics.json: a failing figure loses nothing
        draw(
            trajectories_figure,
            out / "trajectories.png",
            problem,
            data,
            learned,
            tests,
            title=label,
        )
    shown = ", ".join(
        f"{k} {full[k]:.4g}"
        for k in ("objective", "train_mse", "test_mse", "max_violation", "min_S")
        if k in full
    )
    summary = (
        f"{label}: iterations {full.get('iterations')}, {shown}, "
        f"wall {full.get('wall_s', 0):.1f}s -> {out}"
    )
    return full, summary


def _write_npz(path: Path, arrays: dict):
    import io

    buf = io.BytesIO()
    np.savez(buf, **arrays)
    write_atomic(path, buf.getvalue())


__all__ = [
    "TRAINERS",
    "IpoptProgress",
    "Trained",
    "register_trainer",
    "run_neural_dae",
    "trajectories_figure",
]

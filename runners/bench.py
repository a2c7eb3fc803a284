"""Benchmarks: ``python -m runners.bench [--only NAME] [--repeats R]`` (``make bench``).

Every performance figure of the project lives here, never in a timed unit test. A
benchmark compiles its chunk once (compile time reported apart), then times
``repeats`` calls of the compiled chunk in-process and reports the median seconds per
iteration. Each run writes a JSON record (figures, machine, library versions, commit)
to ``results/bench/<name>-<timestamp>.json``; ``results/tables/bench.md`` shows the
latest record of every benchmark.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from runners.io import write_atomic, write_json
from runners.plumbing import usable_cpus

BENCH_DIR = Path("results/bench")
TABLE = Path("results/tables/bench.md")


def _commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _machine() -> dict:
    import jax

    dev = jax.devices()[0]
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "cpus": usable_cpus(),  # this process's (taskset): what its timings ran on
        "device": f"{dev.platform}:{dev.device_kind}",
    }


def penalty_lbfgs_iteration(repeats: int, chunk: int) -> dict:
    """Seconds per inner L-BFGS iteration of ``penalty`` on reaction (α = 30), paper network.

    4 × 50 tanh network (n = 7851), N = 1000 labeled points, M = 7 constraints, float64,
    backtracking line search, memory 10. Tolerances are zero so no round ends early and
    every timed iteration is a real L-BFGS iteration.
    """
    import jax
    import jax.numpy as jnp

    from methods import build_method, method_config
    from problems import build_problem

    problem = build_problem("reaction", {"eval_nx": 64, "eval_nt": 16}, dtype="float64")
    data = problem.sample_data(jax.random.PRNGKey(0))
    params = problem.init_params(jax.random.PRNGKey(1))
    cfg = method_config(
        "penalty", {"inner_maxiter": 10**9, "gtol": 0.0, "ftol": 0.0}, "reaction", problem.family
    )
    method = build_method("penalty", cfg, problem, jnp.float64)
    compile_s, times, state = _time_chunks(method, method.init(params, data), data, repeats, chunk)
    diverged = not bool(method.finite(state))
    return {
        "s_per_iter_median": statistics.median(times),
        "s_per_iter_all": times,
        "compile_s": compile_s,
        "iterations_per_repeat": chunk,
        "repeats": repeats,
        "n_params": sum(x.size for x in jax.tree.leaves(params)),
        "n_data": 1000,
        "m_constraints": 7,
        "diverged": bool(diverged),
    }


def _time_chunks(method, state, data, repeats, chunk):
    """(compile_s, [s/iteration per repeat], final state) of ``chunk``-step compiled calls."""
    import jax

    from methods.driver import make_chunk

    t0 = time.perf_counter()
    compiled = make_chunk(method, chunk, 10**9).lower(state, data).compile()
    compile_s = time.perf_counter() - t0
    state, _, _ = compiled(state, data)  # warm-up
    jax.block_until_ready(state)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        state, _, _ = compiled(state, data)
        jax.block_until_ready(state)
        times.append((time.perf_counter() - t0) / chunk)
    return compile_s, times, state


def _pretrained(problem, data, params, iterations=2000):
    """Parameters after a short pretraining (Step 0), the state trSQP starts from in a run."""
    import jax.numpy as jnp

    from methods import PretrainConfig, pretrain_method, run_chunked

    pm = pretrain_method(
        problem, PretrainConfig(inner_maxiter=iterations, ic_weight=10.0), jnp.float64
    )
    r = run_chunked(pm, pm.init(params, data), data, max_steps=iterations, log_every=500)
    return pm.params(r.state)


def trsqp_iteration(memory):
    """Seconds per trSQP iteration (SR1) on reaction (α = 30), the paper network (n = 7851),
    N = 1000, M = 7, float64, after 2000 pretraining iterations (as in a run, where
    trSQP starts from the pretrained point; from the raw initialisation the first
    iterations need many more CG steps). ``memory``: "dense" (the paper's n × n H) or k
    pairs (compact L-SR1)."""

    def bench(repeats: int, chunk: int) -> dict:
        import jax
        import jax.numpy as jnp

        from methods import build_method, method_config
        from problems import build_problem

        problem = build_problem("reaction", {"eval_nx": 64, "eval_nt": 16}, dtype="float64")
        data = problem.sample_data(jax.random.PRNGKey(0))
        params = _pretrained(problem, data, problem.init_params(jax.random.PRNGKey(1)))
        cfg = method_config(
            "trsqp",
            {"memory": memory, "max_iter": 10**9, "gtol": 0.0, "xtol": 0.0, "ctol": 0.0},
            "reaction",
            problem.family,
        )
        method = build_method("trsqp", cfg, problem, jnp.float64)
        chunk = chunk if memory != "dense" else max(1, chunk // 10)
        compile_s, times, state = _time_chunks(
            method, method.init(params, data), data, repeats, chunk
        )
        return {
            "s_per_iter_median": statistics.median(times),
            "s_per_iter_all": times,
            "compile_s": compile_s,
            "iterations_per_repeat": chunk,
            "repeats": repeats,
            "n_params": int(state.theta.shape[0]),
            "memory": str(memory),
            "pretraining_iterations": 2000,
            "accepted_last": bool(state.accepted),
            "cg_iterations_last": int(state.cg_iterations),
        }

    return bench


SQP_MOMENTUM_METHODS = (
    "adam_unc",
    "adam_con",
    "sqp_adam",
    "sqp_adam_iclr",
    "sqp_heavyball",
    "sqp_sgd",
)
# bench label -> (method, overrides): sqp_adam is the paper's Algorithm 3, sqp_adam_iclr the
# predecessor's form
SQP_BENCH_RUNS = {k: (k, {}) for k in SQP_MOMENTUM_METHODS}
SQP_BENCH_RUNS["sqp_adam_iclr"] = ("sqp_adam", {"variant": "iclr"})
# The only published timings: the ICLR-2025 predecessor's Appendix C, Table 1, s per
# iteration of Adam(unc) / Adam(con) / P-Adam(con) (its projected Adam: sqp_adam_iclr here),
# full batch, lr 5e-4, on a Colab L4 GPU. The 2026 paper's text has no timing table.
PAPER_GPU_S = {
    "spring": (0.009, 0.019, 0.020),
    "butene": (0.024, 0.055, 0.053),
    "burgers": (0.042, 0.059, 0.060),
    "darcy": (0.852, 2.568, 2.533),
}


#: HLO instructions that move no data (not dispatched as work of their own)
_NOT_DISPATCHED = {"parameter", "constant", "get-tuple-element", "tuple", "bitcast"}


def dispatched_ops(compiled) -> int:
    """How many operations one call of a compiled XLA program dispatches one after another:
    the instructions of its entry computation, of the bodies and conditions of its loops
    (once each) and of what they ``call``, without those that move no data. A fusion is one
    operation (its body is not counted), as is a reduction (its reducer is not); the
    branches of a conditional are not counted (one of them runs: on the SQP-momentum steps,
    the rarely taken regularisation of a singular m × m system). On a small network
    (spring) XLA:CPU's time per step follows this count: each operation costs about the
    same dispatch overhead."""
    comps, entry, name = {}, None, None
    for line in compiled.as_text().splitlines():
        head = re.match(r"(ENTRY )?%(\S+) \(.*\{$", line)
        if head:
            name = head.group(2)
            comps[name] = []
            entry = name if head.group(1) else entry
        elif name and line.startswith("}"):
            name = None
        elif name and " = " in line:
            comps[name].append(line.split(" = ", 1)[1])
    n, todo, seen = 0, [entry], set()
    while todo:
        c = todo.pop()
        if c in seen or c not in comps:
            continue
        seen.add(c)
        for ins in comps[c]:
            op = re.search(r"\s([a-z][a-z0-9\-]*)\(", ins)
            n += bool(op) and op.group(1) not in _NOT_DISPATCHED
            if op and op.group(1) in ("while", "call"):
                todo += re.findall(r"(?:body|condition|to_apply)=%([\w.\-]+)", ins)
    return n


def sqp_momentum_iteration(problem_name: str, precision: str = "float64"):
    """Seconds per iteration of each SQP-momentum method on ``problem_name`` at the paper's
    size (network, data, mini-batch fraction, m constraints), in ``precision`` (float32: the
    papers' PyTorch default; the ``_f32`` benchmarks), from the problem's initial weights; the
    ratio of each to ``adam_unc`` is the issue's ≤ 1.3 target."""

    def bench(repeats: int, chunk: int) -> dict:
        import jax
        import jax.numpy as jnp

        from methods import build_method, method_config
        from problems import build_problem

        jax.config.update("jax_enable_x64", precision == "float64")
        problem = build_problem(problem_name, {}, dtype=precision)
        data = problem.make_data()
        params = problem.init_params(jax.random.PRNGKey(problem.cfg.data_seed))
        from methods.driver import make_chunk

        compiled, states, compile_s, ops = {}, {}, {}, {}
        for label in SQP_MOMENTUM_METHODS:
            name, extra = SQP_BENCH_RUNS[label]
            cfg = method_config(
                name, {"lr": 1e-4, "epochs": 10**6, **extra}, problem_name, problem.family
            )
            method = build_method(
                name, cfg, problem, jnp.dtype(precision), key=jax.random.PRNGKey(0)
            )
            state = method.init(params, data)
            ops[label] = dispatched_ops(jax.jit(method.step).lower(state, data).compile())
            t0 = time.perf_counter()
            compiled[label] = make_chunk(method, chunk, 10**9).lower(state, data).compile()
            compile_s[label] = time.perf_counter() - t0
            states[label] = jax.block_until_ready(compiled[label](state, data)[0])  # warm-up
        # the methods take turns, one chunk each per round, so that a slower stretch of the
        # machine weighs on every method alike; the median over rounds per method
        times = {label: [] for label in SQP_MOMENTUM_METHODS}
        for _ in range(repeats):
            for label in SQP_MOMENTUM_METHODS:
                t0 = time.perf_counter()
                states[label] = jax.block_until_ready(compiled[label](states[label], data)[0])
                times[label].append((time.perf_counter() - t0) / chunk)
        per = {
            label: {
                "s_per_iter": statistics.median(times[label]),
                "compile_s": compile_s[label],
                "hlo_ops": ops[label],
            }
            for label in SQP_MOMENTUM_METHODS
        }
        base = per["adam_unc"]["s_per_iter"]
        jax.config.update("jax_enable_x64", True)
        return {
            "s_per_iter_median": per["sqp_adam"]["s_per_iter"],
            "precision": precision,
            "compile_s": per["sqp_adam"]["compile_s"],
            "repeats": repeats,
            "iterations_per_repeat": chunk,
            "batch_size": problem.batch_size,
            "n_params": sum(x.size for x in jax.tree.leaves(params)),
            "m_constraints": int(problem.constraints(params, data).shape[0]),
            **{f"{k}.s_per_iter": v["s_per_iter"] for k, v in per.items()},
            **{f"{k}.compile_s": v["compile_s"] for k, v in per.items()},
            **{f"{k}.hlo_ops": v["hlo_ops"] for k, v in per.items()},
            **{f"{k}.ratio_to_adam_unc": v["s_per_iter"] / base for k, v in per.items()},
        }

    return bench


def sqp_momentum_parts(problem_name: str, precision: str = "float64"):
    """What a constrained step's time is made of, on ``problem_name`` at the paper's size:
    seconds per call of the mini-batch loss gradient ∇f (what adam_unc pays), of c and its
    Jacobian (one value-and-gradient pass per constraint), of the two together, and of the
    two m × m products J Jᵀ and (J H⁻¹) Jᵀ that sqp_adam's step forms (2 m² d
    multiply-adds: on Darcy, m = 50 and d = 22 101, as much work as a large part of a
    gradient), each run ``chunk`` times inside one compiled loop (the rest of sqp_adam's
    step, the solves and the moments, is its step time minus these)."""

    def bench(repeats: int, chunk: int) -> dict:
        import jax
        from jax.flatten_util import ravel_pytree

        from problems import build_problem

        jax.config.update("jax_enable_x64", precision == "float64")
        p = build_problem(problem_name, {}, dtype=precision)
        data = p.make_data()
        theta0, unravel = ravel_pytree(p.init_params(jax.random.PRNGKey(p.cfg.data_seed)))
        key = jax.random.PRNGKey(0)
        grad_f = lambda th, k: jax.grad(
            lambda t: p.objective_terms(
                unravel(t), data, p.sample_batch(jax.random.fold_in(key, k))
            )["total"]
        )(th)
        jacobian = lambda th: jax.vmap(lambda r: ravel_pytree(r)[0])(
            p.constraints_and_jacobian(unravel(th), data)[1]
        )  # (m, d), flattened like θ
        c_jac = lambda th: jacobian(th).sum(0)
        J0 = jacobian(theta0)
        h0 = 1.0 + jax.numpy.abs(theta0)

        def grams(th):  # J Jᵀ and (J H⁻¹) Jᵀ, the m × m products of sqp_adam's step
            J = J0 * (1.0 + th[:1])  # depends on the loop's θ: not hoisted out of it
            return (J @ J.T + (J / h0) @ J.T).sum() * th

        parts = {
            "grad_f": grad_f,
            "c_and_jacobian": lambda th, k: c_jac(th),
            "grad_f_plus_c_and_jacobian": lambda th, k: grad_f(th, k) + c_jac(th),
            "grams": lambda th, k: grams(th),
        }
        out = {}
        for name, fn in parts.items():
            run = jax.jit(
                lambda th, fn=fn: jax.lax.fori_loop(0, chunk, lambda k, t: t - 1e-12 * fn(t, k), th)
            )
            t0 = time.perf_counter()
            jax.block_until_ready(run(theta0))
            out[f"{name}.compile_s"] = time.perf_counter() - t0
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                jax.block_until_ready(run(theta0))
                times.append((time.perf_counter() - t0) / chunk)
            out[f"{name}.s_per_call"] = statistics.median(times)
        jax.config.update("jax_enable_x64", True)
        return {
            "s_per_iter_median": out["grad_f_plus_c_and_jacobian.s_per_call"],
            "compile_s": out["grad_f_plus_c_and_jacobian.compile_s"],
            "repeats": repeats,
            "iterations_per_repeat": chunk,
            "precision": precision,
            **out,
        }

    return bench


def neural_dae_tank(repeats: int, chunk: int) -> dict:
    """Wall time of the collocation pipeline on the tank manifold at the spec's settings:
    A (smoothing + pretraining + IPOPT L-BFGS) and D (exact Hessian), each step timed; the
    paper: A ≈ 37 s, D ≈ 227 s (D/A ≈ 6) on its machine. ``repeats`` of A (median), one D
    (``chunk`` is unused). The times include building each NLP (CasADi) and IPOPT.

    The exact Hessian's time per evaluation, D's (``method.exact_hessian=assembled``) and
    CasADi's AD Hessian of the whole Lagrangian (``casadi``, the earlier way: 2 IPOPT
    iterations of D, since a whole run takes ~12 min), from IPOPT's call statistics."""
    from methods.dae.collocation import CollocationConfig, train_collocation
    from problems import build_problem

    problem = build_problem("tank_manifold", {})
    data = problem.make_data()

    def once(**kw):
        t = time.perf_counter()
        res = train_collocation(problem, CollocationConfig(**kw), data)
        return time.perf_counter() - t, res

    runs_a = [once() for _ in range(max(1, min(repeats, 3)))]
    wall_a = statistics.median(w for w, _ in runs_a)
    wall_d, res_d = once(hessian="exact")
    res_a = runs_a[0][1]
    steps = {
        f"A.{s.name}.{k}": getattr(s, k)
        for s in res_a.steps
        for k in ("wall_s", "iterations", "status")
    }
    steps.update(
        {
            f"D.{s.name}.{k}": getattr(s, k)
            for s in res_d.steps
            for k in ("wall_s", "iterations", "status")
        }
    )
    main_d = [s for s in res_d.steps if s.name == "main"][0]
    wall_c, res_c = once(hessian="exact", exact_hessian="casadi", max_iter=2)
    main_c = [s for s in res_c.steps if s.name == "main"][0]
    return {
        "s_per_iter_median": wall_a,
        "compile_s": 0.0,
        "repeats": len(runs_a),
        "A_wall_s": wall_a,
        "D_wall_s": wall_d,
        "D_over_A": wall_d / wall_a,
        "paper_A_wall_s": 37.0,
        "paper_D_wall_s": 227.0,
        "D_hessian_ms": main_d.hessian_ms_per_call,
        "D_hessian_calls": main_d.hessian_calls,
        "casadi_hessian_ms": main_c.hessian_ms_per_call,
        "casadi_hessian_calls": main_c.hessian_calls,
        "casadi_probe_wall_s": wall_c,
        **steps,
    }


# The LISCO benches run on DC3's 833-point test split, as every recorded bench did (the
# tables' default is the paper's 1000 sampled points since 2026-12-06): speed depends on
# the batch size, not on which points they are
BENCH_TEST_SET = "dc3"


def lisco_parts(problem_name: str):
    """What one LISCO inference iteration costs, at batch 1 and at the whole test batch
    (833), float32, the paper's network (one hidden layer of 2048; cost does not depend on
    the weights, so untrained ones serve): seconds per call, each part run ``chunk`` times
    inside one compiled loop, of F(z; x) (the KKT residual, with ∇f by autodiff), of
    Π_sol on ready features (the network alone), of the step Δz (F, features, network) and
    of a whole loop iteration (the step, F at the new iterate for the ω-test, the best-iterate
    and reset bookkeeping; ``methods.parametric.lisco_inference``)."""

    def bench(repeats: int, chunk: int) -> dict:
        import jax
        import jax.numpy as jnp

        from methods.parametric.lisco import (
            LiscoConfig,
            init_networks,
            networks,
            solver_features,
            solver_step,
        )
        from methods.parametric.lisco_inference import infer
        from problems import build_problem

        jax.config.update("jax_enable_x64", True)
        problem = build_problem(problem_name, {"test_set": BENCH_TEST_SET})
        dtype = jnp.float32
        mc = LiscoConfig()  # a non-zero solver output layer: the step is timed on real work
        _, sol = networks(problem, mc, dtype)
        _, params = init_networks(problem, mc, dtype, jax.random.PRNGKey(0))
        res = problem.residual(dtype)
        residual = jax.vmap(res)
        step = solver_step(sol, params, res, mc.step_scale)

        def at_batch(b: int) -> dict:
            x = jnp.asarray(problem.test_x[:b], dtype)
            z = jax.random.normal(jax.random.PRNGKey(1), (b, problem.n_z), dtype)
            feats = solver_features(x, residual(z, x))[0]
            parts = {
                "residual": lambda t: residual(t, x),
                "network": lambda t: sol.apply(params, feats + t[:, :1]),
                "step": lambda t: step(t, x),
            }
            got = {}
            for name, fn in parts.items():
                run = jax.jit(
                    lambda t, fn=fn: jax.lax.fori_loop(0, chunk, lambda k, u: u + 1e-12 * fn(u), t)
                )
                got[f"batch{b}.{name}.s_per_call"] = _per_call(run, z, repeats, chunk)
            loop = jax.jit(lambda t: infer(step, res, t, x, n_max=chunk, tol=0.0).z)
            got[f"batch{b}.iteration.s_per_call"] = _per_call(loop, z, repeats, chunk)
            return got

        out = {**at_batch(1), **at_batch(len(problem.test_x))}
        return {
            "s_per_iter_median": out["batch1.iteration.s_per_call"],
            "compile_s": 0.0,
            "repeats": repeats,
            "iterations_per_repeat": chunk,
            "precision": "float32",
            "hidden": list(mc.hidden),
            "batch": len(problem.test_x),
            **out,
        }

    return bench


def _per_call(run, arg, repeats: int, chunk: int, reduce=statistics.median) -> float:
    """Median (or ``reduce``) seconds per loop iteration of the compiled ``run(arg)``
    (``chunk`` iterations a call; the first, compiling call is not timed)."""
    import jax

    jax.block_until_ready(run(arg))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(run(arg))
        times.append((time.perf_counter() - t0) / chunk)
    return reduce(times)


#: ``--lisco-run DIR``: the trained LISCO run to bench instead of the newest one
LISCO_RUN: Path | None = None
LISCO_BENCHES = ("lisco_qp", "lisco_nonconvex_qp", "lisco_rosenbrock")  # they bench a trained run


def _latest_lisco_checkpoint(problem_name: str, instance: int = 0) -> Path | None:
    """The lisco run folder to bench for ``problem_name``: ``--lisco-run`` when given (it
    must hold networks with a predictor for that problem and ``instance``), otherwise the
    newest such folder under results/ (the bench evaluates instance 0's test points)."""
    if LISCO_RUN is not None:
        try:
            info = json.loads((LISCO_RUN / "networks.json").read_text())
        except (OSError, ValueError):
            info = {}
        if not (
            info.get("problem") == problem_name
            and info.get("predictor")
            and info.get("instance", 0) == instance
            and (LISCO_RUN / "solver.msgpack").is_file()
        ):
            from runners.plumbing import fail

            fail(
                f"--lisco-run: {str(LISCO_RUN)!r} holds no trained lisco networks with "
                f"a predictor for problem {problem_name!r}, instance {instance}"
            )
        return LISCO_RUN
    best = None
    for meta in Path("results").rglob("networks.json"):
        try:
            info = json.loads(meta.read_text())
        except (OSError, ValueError):
            continue
        if (
            info.get("problem") == problem_name
            and info.get("predictor")
            and info.get("instance", 0) == instance
            and (meta.parent / "solver.msgpack").is_file()
            and (best is None or meta.stat().st_mtime > best.stat().st_mtime)
        ):
            best = meta
    return best.parent if best is not None else None


def lisco_vs_baseline(problem_name: str):
    """LISCO against IPOPT (OSQP on the QP) on the 833 test points, in the same process.

    The baseline: per-instance solve times (IPOPT exact Hessian tol 1e-10 from A⁺x; OSQP
    defaults, setup + solve). LISCO: the newest trained lisco run with predictor under
    results/ (``checkpoint``), batch 1 per instance (median / max) and the whole batch
    (throughput), success = ½‖F‖² ≤ 1e-8 in 500 iterations. Also the cost of one loop
    iteration (predictor + 500 iterations with an unreachable tol), at batch 1
    and batch 833: the speed figure that does not depend on how well the networks trained.
    Targets (issue): LISCO's batch-1 median ≤ 1/3 of IPOPT's; throughput ≥ 100× IPOPT's.
    Without a trained checkpoint only the per-iteration figures are meaningful."""

    def bench(repeats: int, chunk: int) -> dict:
        import dataclasses

        import jax
        import jax.numpy as jnp
        import numpy as np

        from methods.parametric.lisco import LiscoConfig, init_networks
        from methods.parametric.lisco_baselines import box_osqp_solve, ipopt_solve, osqp_solve
        from methods.parametric.lisco_inference import BATCH_CHUNK, STREAM_WIDTH
        from problems import build_problem
        from runners.parametric import _load_networks, time_lisco, trained_input_log

        jax.config.update("jax_enable_x64", True)  # the baselines and metrics in float64
        problem = build_problem(problem_name, {"test_set": BENCH_TEST_SET})
        x = problem.test_x
        batched: dict = {}
        if problem_name == "qp":
            base = osqp_solve(problem.inst, x)
            base_s, base_name = base.total_s, "osqp"
            for tight in (False, True):  # the accelerator's QP baseline: one vmapped call
                box, info = box_osqp_solve(problem.inst, x, tight=tight)
                z = np.hstack([box.y, box.nu, box.lam])
                tag = "jaxopt_osqp" + ("_tight" if tight else "")
                batched.update(
                    {
                        f"{tag}_batch_s": info["batch_s"],
                        f"{tag}_compile_s": info["compile_s"],
                        f"{tag}_throughput": len(x) / info["batch_s"],
                        f"{tag}_median_iterations": float(np.median(box.iterations)),
                        f"{tag}_median_T": float(
                            np.median(problem.sample_metrics(z, x, None)["merit"])
                        ),
                    }
                )
        else:
            base = ipopt_solve(problem.kind, problem.inst, x, tol=1e-10)
            base_s, base_name = base.solve_s, "ipopt"
        ckpt = _latest_lisco_checkpoint(problem_name)
        dtype = jnp.float32
        if ckpt is not None:
            meta = json.loads((ckpt / "networks.json").read_text())
            dtype = jnp.dtype(meta["dtype"])
            mc = LiscoConfig(
                hidden=tuple(meta["hidden"]),
                activation=meta["activation"],
                input_log=trained_input_log(meta),
            )
            pred, sol = _load_networks(
                ckpt, mc, problem, dtype, init_networks(problem, mc, dtype, jax.random.PRNGKey(0))
            )
        else:
            mc = LiscoConfig()
            pred, sol = init_networks(problem, mc, dtype, jax.random.PRNGKey(0))
        key = jax.random.PRNGKey(10_000)
        t = time_lisco(problem, mc, dtype, pred, sol, x, key)
        merit = np.asarray(problem.sample_metrics(np.asarray(t["result"].z), x, None)["merit"])
        ok = merit <= mc.tol
        secs = t["seconds"]
        # one loop iteration (every run does all 500), batch 1 and the full batch
        full = dataclasses.replace(mc, tol=1e-30)  # unreachable: all 500 iterations
        f1 = time_lisco(problem, full, dtype, pred, sol, x[: max(1, min(repeats, 20))], key)
        fb = time_lisco(problem, full, dtype, pred, sol, x, key, batch1=False)
        it1 = float(np.median(f1["seconds"])) / full.n_max
        itb = fb["batch_s"] / full.n_max
        # the floor: every sample's iterations at the cost of a row of the whole batch in one
        # loop (the most efficient width here), no row computed for a stopped sample
        row_s = _full_batch_row_s(problem, full, dtype, pred, sol, x, key)
        side = _streaming_side_by_side(problem, mc, dtype, pred, sol, x, key)
        # the ratio again, both sides timed in turns (the figures above time each once)
        from methods.parametric.lisco import make_batch_inference, start_points
        from runners.parametric import THRESHOLDS

        xj = jnp.asarray(x, dtype)
        start = jax.jit(lambda xb, kb: start_points(problem, mc, dtype, pred, xb, kb))
        batch_run = make_batch_inference(problem, mc, dtype, THRESHOLDS)

        def lisco_batch():  # as time_lisco times it: the predictor's start, then the loop
            jax.block_until_ready(batch_run(sol, start(xj, key), xj))

        def baseline_slice(j: int, k: int) -> float:
            if problem_name == "qp":
                return float(np.sum(osqp_solve(problem.inst, x[j::k]).total_s))
            return float(
                np.sum(ipopt_solve(problem.kind, problem.inst, x[j::k], tol=1e-10).solve_s)
            )

        lisco_batch()  # compiles this runner (its own jitted functions), not timed
        rounds = _interleaved_ratio(baseline_slice, lisco_batch, len(x))
        its = np.asarray(t["result"].iterations)
        floor_s = float(its.sum()) * row_s
        lisco_med = float(np.median(secs[ok])) if ok.any() else float("nan")
        base_tp = len(x) / float(np.sum(base_s))
        return {
            "s_per_iter_median": it1,
            "compile_s": t["eval_compile_s"],
            "repeats": 1,
            "checkpoint": str(ckpt) if ckpt else None,
            "trained": ckpt is not None,
            "baseline": base_name,
            "baseline_median_s": float(np.median(base_s)),
            "baseline_max_s": float(np.max(base_s)),
            "baseline_median_iterations": float(np.median(base.iterations)),
            "baseline_throughput": base_tp,
            "lisco_success": float(np.mean(ok)),
            "lisco_median_s": lisco_med,
            "lisco_max_s": float(np.max(secs[ok])) if ok.any() else float("nan"),
            "lisco_median_iterations": float(np.median(np.asarray(t["result"].iterations))),
            "lisco_throughput": t["throughput"],
            "lisco_batch_s": t["batch_s"],
            "lisco_batch_s_spread": [min(t["batch_s_all"]), max(t["batch_s_all"])],
            "lisco_batch_chunk": BATCH_CHUNK,  # iterations between compactions of the batch
            "lisco_stream_width": STREAM_WIDTH,  # rows in flight in the streaming phase
            # the batch with and without the streaming phase, and in bfloat16, taking turns
            **side,
            **rounds,
            "lisco_sum_iterations": int(its.sum()),
            "lisco_max_iterations": int(its.max()),
            "lisco_s_per_row_iter_full_batch": row_s,
            "lisco_batch_floor_s": floor_s,
            "throughput_ratio_at_floor": len(x) / floor_s / base_tp,
            "median_ratio_baseline_over_lisco": float(np.median(base_s)) / lisco_med,
            "throughput_ratio": t["throughput"] / base_tp,
            "lisco_s_per_iter_batch1": it1,
            "lisco_s_per_iter_batch833": itb,
            "lisco_s_per_instance_iter_batch833": itb / len(x),
            **batched,
            **{
                f"throughput_ratio_vs_{k[: -len('_throughput')]}": t["throughput"] / v
                for k, v in batched.items()
                if k.endswith("_throughput")
            },
        }

    return bench


def _full_batch_row_s(problem, cfg, dtype, pred, sol, x, key) -> float:
    """Seconds per sample per iteration of LISCO's loop with the whole batch in one
    ``lax.while_loop`` (:func:`methods.parametric.lisco.make_inference`, 20 iterations with
    every sample running): the cost of one row of the batch where rows cost least. The
    fastest of 7 calls, not the median: a floor, and on a shared machine a slower call is
    the machine's, not the loop's."""
    import dataclasses

    import jax.numpy as jnp

    from methods.parametric.lisco import make_inference, start_points

    n = 20
    run = make_inference(problem, dataclasses.replace(cfg, n_max=n), dtype, ())
    xj = jnp.asarray(x, dtype)
    z0 = start_points(problem, cfg, dtype, pred, xj, key)
    return _per_call(lambda z: run(sol, z, xj).z, z0, 7, n, reduce=min) / len(x)


def _interleaved_ratio(
    baseline, lisco, n_points: int, rounds: int = 3, slices: int = 4, clock=time.perf_counter
) -> dict:
    """The throughput ratio with both sides timed in the same stretch of the machine.

    ``baseline(j, k) -> seconds`` solves slice ``j`` of ``k`` of the test points one at a
    time and returns their solve seconds summed (IPOPT, OSQP); ``lisco()`` runs the whole
    batch once. A round runs the baseline's slices in turn, each followed by two LISCO
    batches: the first right after the baseline's solves (``cold``), the second right after
    the first (``warm``, as the baseline's own solves run one after another, and as
    ``throughput_ratio`` times LISCO). A round's ratio is (points / median LISCO batch) /
    (points / the slices' seconds summed); the medians over rounds are returned, with each
    round's figures. (On this 2-core machine the same code measured an hour apart moved
    IPOPT's rate by a third, which a ratio of two figures timed minutes apart carries in
    full; and a batch right after other work took up to half as long again as one right
    after another batch.)
    """
    out = {"warm": [], "cold": []}
    base_tp, lisco_s = [], {"warm": [], "cold": []}
    for _ in range(rounds):
        base_sum, batches = 0.0, {"warm": [], "cold": []}
        for j in range(slices):
            base_sum += baseline(j, slices)
            for kind in ("cold", "warm"):
                t0 = clock()
                lisco()
                batches[kind].append(clock() - t0)
        base_tp.append(n_points / base_sum)
        for kind, ts in batches.items():
            med = statistics.median(ts)
            lisco_s[kind].append(med)
            out[kind].append((n_points / med) / base_tp[-1])
    return {
        "throughput_ratio_interleaved": statistics.median(out["warm"]),
        "throughput_ratio_interleaved_cold": statistics.median(out["cold"]),
        "throughput_ratio_rounds": out["warm"],
        "throughput_ratio_rounds_cold": out["cold"],
        "baseline_throughput_rounds": base_tp,
        "lisco_batch_s_rounds": lisco_s["warm"],
        "lisco_batch_s_rounds_cold": lisco_s["cold"],
    }


def _streaming_side_by_side(problem, cfg, dtype, pred, sol, x, key, rounds: int = 7) -> dict:
    """The whole batch three ways, taking turns so that a slower stretch of the machine
    weighs on all alike (median seconds of ``rounds`` rounds): with the batched evaluation's
    streaming phase (the default), without it (``width=None``: the drain alone, from the
    whole batch, as before 2026-12-06 but with the rest of that day's changes: F carried,
    batches down to one row, doubling chunks), and streamed with the solver network's
    products in bfloat16 (``method.inference_precision=bfloat16``, this project's), whose
    success (½‖F‖² ≤ tol in float64) and iterations are recorded too."""
    import dataclasses

    import jax
    import jax.numpy as jnp
    import numpy as np

    from methods.parametric.lisco import make_batch_inference, start_points
    from runners.parametric import THRESHOLDS

    xj = jnp.asarray(x, dtype)
    z0 = jax.jit(lambda xb, kb: start_points(problem, cfg, dtype, pred, xb, kb))(xj, key)
    low = dataclasses.replace(cfg, inference_precision="bfloat16")
    runs = [
        make_batch_inference(problem, cfg, dtype, THRESHOLDS),
        make_batch_inference(problem, cfg, dtype, THRESHOLDS, width=None),
        make_batch_inference(problem, low, dtype, THRESHOLDS),
    ]
    times: list[list[float]] = [[] for _ in runs]
    for _ in range(rounds + 1):  # the first round compiles
        for run, ts in zip(runs, times):
            t0 = time.perf_counter()
            out = jax.block_until_ready(run(sol, z0, xj))
            ts.append(time.perf_counter() - t0)
    # out: the last run of the last round, the bfloat16 one
    merit = np.asarray(problem.sample_metrics(np.asarray(out.z), x, None)["merit"])
    its = np.asarray(out.iterations)
    med = [statistics.median(ts[1:]) for ts in times]
    return {
        "lisco_batch_s_streamed": med[0],
        "lisco_batch_s_without_streaming": med[1],
        "lisco_batch_s_bfloat16": med[2],
        "lisco_success_bfloat16": float(np.mean(merit <= cfg.tol)),
        "lisco_sum_iterations_bfloat16": int(its.sum()),
        "lisco_median_iterations_bfloat16": float(np.median(its)),
    }


def seeds_vectorized(method: str, problem: str, n: int = 5, extra: tuple = ()):
    """Wall time of ``seeds=n`` (one vmapped program) against n sequential runs, scale=smoke.

    Both sides run the CLI as a user would (``python -m runners.train ... progress=false
    figures=false``), each in a fresh results folder with a fresh persistent JAX cache, so
    the sequential side pays one compile and hits the cache afterwards, as it does on a new
    machine. Also reported: the in-process training seconds of each side (``wall_s`` of the
    records) and the largest relative difference of the seeds' final metrics.
    """

    def bench(repeats: int, chunk: int) -> dict:
        import sys
        import tempfile

        from runners.tables import collect

        base = [
            f"method={method}",
            f"problem={problem}",
            "scale=smoke",
            "progress=false",
            "figures=false",
            *extra,
        ]

        def timed(tmp, *args):
            env = {**os.environ, "HCSML_JAX_CACHE": str(Path(tmp) / "jax_cache")}
            t0 = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "runners.train", *base, *args, f"results_dir={tmp}"],
                check=True,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            return time.perf_counter() - t0

        with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
            vec_s = timed(a, "seed=0", f"seeds={n}")
            seq = [timed(b, f"seed={s}") for s in range(n)]
            ra = collect(a).sort_values("seed").reset_index(drop=True)
            rb = collect(b).sort_values("seed").reset_index(drop=True)
        key = "abs_error" if "abs_error" in ra.columns else "test_mse"
        diff = float(((ra[key] - rb[key]).abs() / rb[key].abs()).max())
        return {
            "method": method,
            "problem": problem,
            "args": " ".join(extra),
            "seeds": n,
            "vectorized_s": vec_s,
            "sequential_s": sum(seq),
            "sequential_runs_s": seq,
            "speedup": sum(seq) / vec_s,
            "vectorized_train_s": float(ra["wall_s"].iloc[0]),
            "sequential_train_s": float(rb["wall_s"].sum()),
            "vectorized_compile_s": float(ra["compile_s"].iloc[0]),
            "sequential_compile_s": float(rb["compile_s"].sum()),
            "metric": key,
            "max_rel_diff": diff,
            "s_per_iter_median": float("nan"),
            "compile_s": float(ra["compile_s"].iloc[0]),
            "repeats": 1,
        }

    return bench


BENCHMARKS = {
    "penalty_lbfgs_iter": penalty_lbfgs_iteration,
    "trsqp_sr1_dense_iter": trsqp_iteration("dense"),
    "trsqp_sr1_lm10_iter": trsqp_iteration(10),
    **{f"sqp_momentum_{p}_iter": sqp_momentum_iteration(p) for p in PAPER_GPU_S},
    **{f"sqp_momentum_{p}_iter_f32": sqp_momentum_iteration(p, "float32") for p in PAPER_GPU_S},
    **{f"sqp_momentum_{p}_parts": sqp_momentum_parts(p) for p in PAPER_GPU_S},
    "neural_dae_tank_pipeline": neural_dae_tank,
    **{f"lisco_{p}": lisco_vs_baseline(p) for p in ("qp", "nonconvex_qp", "rosenbrock")},
    **{f"lisco_{p}_parts": lisco_parts(p) for p in ("nonconvex_qp", "rosenbrock")},
    "seeds5_trsqp_reaction": seeds_vectorized("trsqp", "reaction"),
    "seeds5_trsqp_lm10_reaction": seeds_vectorized(
        "trsqp", "reaction", extra=("scale.trsqp_memory=10",)
    ),
    "seeds5_sqp_adam_spring": seeds_vectorized("sqp_adam", "spring"),
}


def _section(title: str, rows: list[dict]) -> str:
    """A markdown section: its title, then the rows as a table."""
    table = pd.DataFrame(rows).to_markdown(index=False, floatfmt=".4g")
    return f"\n## {title}\n\n{table}\n"


def _named(df: pd.DataFrame, prefix: str, parts: bool | None = None) -> pd.DataFrame:
    """The records whose name starts with ``prefix`` (and ends with ``_parts`` or not)."""
    keep = df["name"].str.startswith(prefix)
    if parts is not None:
        keep &= df["name"].str.endswith("_parts") == parts
    return df[keep]


def _sqp_momentum(df: pd.DataFrame) -> str:
    """Seconds per iteration of each SQP-momentum method, and what a step is made of."""
    text = ""
    sqp = _named(df, "sqp_momentum_", parts=False)
    if len(sqp):
        rows = [
            {
                "problem": sqp_problem(r["name"]),
                # records from before the float32 variants have no precision: float64
                "precision": r.get("precision")
                if isinstance(r.get("precision"), str)
                else "float64",
                "method": m,
                **{k: r.get(f"{m}.{k}") for k in SQP_COLUMNS},
                "predecessor_gpu_s_per_iter": predecessor_gpu_s(sqp_problem(r["name"]), m),
            }
            for _, r in sqp.iterrows()
            for m in SQP_MOMENTUM_METHODS
        ]
        title = (
            "SQP momentum: seconds per iteration by method (here: mini-batch, lr 1e-4; the "
            "predecessor's GPU figures, its Appendix C: full batch, lr 5e-4, a Colab L4)"
        )
        text += _section(title, rows)
    parts = _named(df, "sqp_momentum_", parts=True)
    if len(parts):
        keys = ["grad_f", "c_and_jacobian", "grad_f_plus_c_and_jacobian", "grams"]
        rows = [
            {
                "problem": r["name"].removeprefix("sqp_momentum_").removesuffix("_parts"),
                "precision": r.get("precision"),
                **{f"{k} (s)": r.get(f"{k}.s_per_call") for k in keys},
            }
            for _, r in parts.iterrows()
        ]
        title = (
            "SQP momentum: what a constrained step is made of (s per call; adam_unc pays grad_f)"
        )
        text += _section(title, rows)
    return text


def _neural_dae(df: pd.DataFrame) -> str:
    """The tank-manifold pipeline, A against D, step by step."""
    dae = df[df["name"] == "neural_dae_tank_pipeline"]
    if not len(dae):
        return ""
    r = dae.iloc[0]
    rows = [
        {
            "run": run,
            "step": step,
            **{k: r.get(f"{run}.{step}.{k}") for k in ("iterations", "wall_s", "status")},
        }
        for run in ("A", "D")
        for step in ("smoothing", "pretraining", "main")
    ]
    title = (
        f"Neural DAE, tank manifold: A {r['A_wall_s']:.1f} s (paper 37 s), "
        f"D {r['D_wall_s']:.1f} s (paper 227 s), D/A {r['D_over_A']:.2f} (paper ≈ 6)"
    )
    text = _section(title, rows)
    if pd.notna(r.get("D_hessian_ms")):
        text += (
            f"\nExact Hessian per evaluation: {r['D_hessian_ms']:.0f} ms assembled "
            f"(CasADi's sparse terms + the network's from JAX; {r['D_hessian_calls']:.0f}"
            f" calls in D) against {r['casadi_hessian_ms']:.0f} ms for CasADi's AD "
            f"Hessian of the whole Lagrangian ({r['casadi_hessian_calls']:.0f} calls "
            f"in 2 iterations of D)\n"
        )
    return text


def _results_relative(checkpoint):
    """A benched run's folder from ``results/`` on (``results/sweeps/<sweep>/<run>``), however
    it was given (relative or absolute); other values unchanged."""
    if not isinstance(checkpoint, str):
        return checkpoint
    parts = Path(checkpoint).parts
    return str(Path(*parts[parts.index("results") :])) if "results" in parts else checkpoint


def _sweep_of(checkpoint) -> str | None:
    """The sweep folder of a benched lisco run (``results/sweeps/<sweep>/<run>``)."""
    if not isinstance(checkpoint, str):
        return None
    parts = Path(checkpoint).parts
    return parts[parts.index("sweeps") + 1] if "sweeps" in parts[:-1] else checkpoint


def _lisco(df: pd.DataFrame) -> str:
    """LISCO against its baselines, the batched QP baseline, and an iteration's parts."""
    text = ""
    lisco = _named(df, "lisco_", parts=False)
    if len(lisco):
        rows = [
            {
                "problem": r["name"].removeprefix("lisco_"),
                "networks": _sweep_of(r.get("checkpoint")),
                "date": str(r.get("timestamp", ""))[:10],
                "commit": r.get("commit"),
                **{k: r.get(k) for k in LISCO_COLUMNS},
                **_lisco_iteration_budget(r),
            }
            for _, r in lisco.iterrows()
        ]
        title = (
            "LISCO vs IPOPT / OSQP on the 833 test points (targets: median ratio ≥ 3, "
            "throughput ratio ≥ 100; the latest record for each problem and set of "
            "networks, `networks` the sweep folder they were trained in; "
            "`lisco_batch_floor_s`: the points' iterations summed × the cost of one row "
            "of the whole batch in one loop, the batch's time if no row were computed "
            "for a stopped point, and `throughput_ratio_at_floor` the ratio at that time; "
            "`mean_iterations_for_target_at_floor`: the most iterations per point that "
            "would give the 100× ratio at the floor; `_bfloat16`: the batch with the solver "
            "network's products in bfloat16, `method.inference_precision=bfloat16`, this "
            "project's; `throughput_ratio_interleaved`: the median over 3 rounds of the "
            "ratio with the baseline's solves and LISCO's batches taking turns, where "
            "`throughput_ratio` times each side once: each slice of the baseline's solves "
            "is followed by two batches, `_cold` the first and the plain column the "
            "second)"
        )
        text += _section(title, rows)
        box_keys = ("batch_s", "compile_s", "throughput", "median_iterations", "median_T")
        box = [
            {
                "problem": r["name"].removeprefix("lisco_"),
                "setting": tag,
                **{k: r.get(f"jaxopt_osqp{suffix}_{k}") for k in box_keys},
                "lisco_throughput": r.get("lisco_throughput"),
                "lisco_over_batched": r.get(f"throughput_ratio_vs_jaxopt_osqp{suffix}"),
            }
            for _, r in lisco.iterrows()
            for tag, suffix in (("OSQP defaults", ""), ("tight", "_tight"))
            if pd.notna(r.get(f"jaxopt_osqp{suffix}_batch_s"))
        ]
        if box:
            title = (
                "The batched QP baseline: jaxopt BoxOSQP vmapped over the 833 test "
                "points, one jitted call, float64 (median ½‖F‖² with the same multiplier "
                "mapping as every baseline)"
            )
            text += _section(title, box)
    lparts = _named(df, "lisco_", parts=True)
    if len(lparts):
        rows = [
            {
                "problem": r["name"].removeprefix("lisco_").removesuffix("_parts"),
                "batch": b,
                **{
                    f"{k} (µs)": 1e6 * r.get(f"batch{b}.{k}.s_per_call", float("nan"))
                    for k in ("residual", "network", "step", "iteration")
                },
            }
            for _, r in lparts.iterrows()
            for b in (1, int(r.get("batch", 833)))
        ]
        title = (
            "LISCO: what one inference iteration is made of (µs per call, float32, "
            "one hidden layer of 2048; iteration = step + F at the new iterate + "
            "bookkeeping)"
        )
        text += _section(title, rows)
    return text


def _lisco_iteration_budget(r) -> dict:
    """Mean iterations per point the benched networks used, and the most that would still
    give a throughput of ``LISCO_THROUGHPUT_TARGET`` × the baseline's at the batch's floor
    (every row at the cost of a row of the whole batch: 1 / (target · baseline rate · row
    cost)); NaN for records without the floor fields."""
    nan = float("nan")
    need = ("lisco_sum_iterations", "lisco_s_per_row_iter_full_batch", "baseline_throughput")
    if any(pd.isna(r.get(k, nan)) for k in need):
        return dict.fromkeys(
            (
                "lisco_mean_iterations",
                "mean_iterations_for_target_at_floor",
                "throughput_ratio_bfloat16",
            ),
            nan,
        )
    points = r["lisco_throughput"] * r["lisco_batch_s"]  # the batch's size
    row_s, base_tp = r["lisco_s_per_row_iter_full_batch"], r["baseline_throughput"]
    low_s = r.get("lisco_batch_s_bfloat16", nan)
    return {
        "lisco_mean_iterations": r["lisco_sum_iterations"] / points,
        "mean_iterations_for_target_at_floor": 1.0 / (LISCO_THROUGHPUT_TARGET * base_tp * row_s),
        "throughput_ratio_bfloat16": points / low_s / base_tp if pd.notna(low_s) else nan,
    }


#: the issue's throughput target: LISCO's batch ≥ 100 × IPOPT's single-core rate
LISCO_THROUGHPUT_TARGET = 100.0


def _seeds(df: pd.DataFrame) -> str:
    """seeds=5 as one vmapped program against 5 sequential runs."""
    seeds = _named(df, "seeds")
    if not len(seeds):
        return ""
    title = (
        "seeds=5 as one vmapped program vs 5 sequential runs, scale=smoke, whole "
        "CLI wall time (target: speedup ≥ 3)"
    )
    return _section(title, [{k: r.get(k) for k in SEEDS_COLUMNS} for _, r in seeds.iterrows()])


SQP_COLUMNS = ("s_per_iter", "ratio_to_adam_unc", "hlo_ops", "compile_s")
# PAPER_GPU_S's three columns are these methods' (P-Adam(con) is the predecessor's form)
PREDECESSOR_GPU_METHODS = ("adam_unc", "adam_con", "sqp_adam_iclr")


def sqp_problem(record_name: str) -> str:
    """The problem of a ``sqp_momentum_<problem>_iter[_f32]`` record."""
    return record_name.removeprefix("sqp_momentum_").removesuffix("_f32").removesuffix("_iter")


def predecessor_gpu_s(problem: str, method: str) -> float | None:
    """The predecessor's GPU s per iteration of ``method`` on ``problem`` (None where it
    timed no such method)."""
    if method not in PREDECESSOR_GPU_METHODS or problem not in PAPER_GPU_S:
        return None
    return PAPER_GPU_S[problem][PREDECESSOR_GPU_METHODS.index(method)]


LISCO_COLUMNS = (
    "baseline",
    "baseline_median_s",
    "baseline_max_s",
    "lisco_median_s",
    "lisco_max_s",
    "median_ratio_baseline_over_lisco",
    "baseline_throughput",
    "lisco_throughput",
    "throughput_ratio",
    "throughput_ratio_interleaved",
    "throughput_ratio_interleaved_cold",
    "lisco_success",
    "lisco_s_per_iter_batch1",
    "lisco_s_per_instance_iter_batch833",
    "lisco_median_iterations",
    "lisco_batch_chunk",
    "lisco_stream_width",
    "lisco_batch_s_streamed",
    "lisco_batch_s_without_streaming",
    "lisco_batch_s_bfloat16",
    "lisco_success_bfloat16",
    "lisco_median_iterations_bfloat16",
    "lisco_sum_iterations",
    "lisco_batch_floor_s",
    "throughput_ratio_at_floor",
    "trained",
)
SEEDS_COLUMNS = (
    "method",
    "problem",
    "args",
    "seeds",
    "vectorized_s",
    "sequential_s",
    "speedup",
    "vectorized_train_s",
    "sequential_train_s",
    "vectorized_compile_s",
    "sequential_compile_s",
    "metric",
    "max_rel_diff",
)
OVERVIEW_COLUMNS = (
    "name",
    "s_per_iter_median",
    "compile_s",
    "repeats",
    "device",
    "cpu_count",
    "cpus",
    "version.jax",
    "commit",
    "timestamp",
)


def render(bench_dir: Path = BENCH_DIR, table: Path = TABLE) -> str:
    """``results/tables/bench.md`` from the latest record of each benchmark: an overview,
    then one section per family."""
    records = []
    for p in sorted(bench_dir.glob("*.json")):
        try:
            records.append(json.loads(p.read_text()))
        except (OSError, ValueError):
            continue
    if not records:
        return ""
    full = pd.DataFrame(records).sort_values("timestamp")
    df = full.groupby("name").tail(1)
    overview = df[[c for c in OVERVIEW_COLUMNS if c in df.columns]]
    text = "# Benchmarks (latest record of each; `make bench`)\n\n"
    text += overview.to_markdown(index=False, floatfmt=".4g") + "\n"
    # LISCO: the latest record of each benchmark for each set of networks benched
    # (the networks by their folder under results/: a record may hold the path absolute)
    if "checkpoint" in full.columns:
        full = full.assign(networks_key=full["checkpoint"].map(_results_relative))
    keys = ["name", "networks_key"] if "checkpoint" in full.columns else ["name"]
    lisco = full.groupby(keys, dropna=False).tail(1)
    text += _sqp_momentum(df) + _neural_dae(df) + _lisco(lisco) + _seeds(df)
    write_atomic(table, text)
    return text


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m runners.bench", description=__doc__.split("\n")[0])
    ap.add_argument(
        "--only", choices=list(BENCHMARKS), action="append", help="run only these benchmarks"
    )
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--chunk", type=int, default=200, help="iterations per timed call")
    ap.add_argument(
        "--lisco-run",
        metavar="DIR",
        help="the trained lisco run folder to bench (default: the newest under results/)",
    )
    args = ap.parse_args(argv)
    global LISCO_RUN
    LISCO_RUN = Path(args.lisco_run) if args.lisco_run else None
    if LISCO_RUN is not None:  # refuse a wrong folder before any benchmark runs
        for name in args.only or list(BENCHMARKS):
            if name in LISCO_BENCHES:
                _latest_lisco_checkpoint(name.removeprefix("lisco_"))
    import jax

    jax.config.update("jax_enable_x64", True)
    from runners.plumbing import versions

    for name in args.only or list(BENCHMARKS):
        fig = BENCHMARKS[name](args.repeats, args.chunk)
        now = datetime.now(timezone.utc)
        record = {
            "name": name,
            **fig,
            **_machine(),
            **{f"version.{k}": v for k, v in versions().items()},
            "commit": _commit(),
            "timestamp": now.isoformat(timespec="seconds"),
        }
        write_json(BENCH_DIR / f"{name}-{now.strftime('%Y%m%dT%H%M%S')}.json", record)
        if name.startswith("lisco_") and not name.endswith("_parts"):
            print(
                f"{name}: {fig['baseline']} median {fig['baseline_median_s'] * 1e3:.1f} ms, "
                f"LISCO batch-1 median {fig['lisco_median_s'] * 1e3:.2f} ms (success "
                f"{fig['lisco_success']:.3f}, trained={fig['trained']}), throughput ratio "
                f"{fig['throughput_ratio']:.0f}x, {fig['lisco_s_per_iter_batch1'] * 1e6:.0f} "
                f"us/iteration at batch 1"
            )
        elif name.startswith("seeds"):
            print(
                f"{name}: seeds={fig['seeds']} {fig['vectorized_s']:.1f} s vs "
                f"{fig['seeds']} runs {fig['sequential_s']:.1f} s: {fig['speedup']:.2f}x "
                f"(training {fig['vectorized_train_s']:.1f} s vs "
                f"{fig['sequential_train_s']:.1f} s; max rel. diff of {fig['metric']} "
                f"{fig['max_rel_diff']:.1e})"
            )
        elif name == "neural_dae_tank_pipeline":
            print(
                f"{name}: A {fig['A_wall_s']:.1f} s (paper 37 s), D {fig['D_wall_s']:.1f} s, "
                f"D/A {fig['D_over_A']:.1f} (paper ≈ 6)"
            )
        else:
            print(
                f"{name}: {fig['s_per_iter_median'] * 1e3:.3f} ms/iteration (median of "
                f"{args.repeats}), compile {fig['compile_s']:.1f} s"
            )
    print(render())


if __name__ == "__main__":
    main()

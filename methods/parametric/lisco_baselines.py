"""Classical baselines for DC3's parametric problems (spec lisco.md, "Baselines").

* ``ipopt_solve``: CasADi ``nlpsol('ipopt')``, built once with the parameter x as ``p``:

      min_y f(y)  s.t.  g(y; x) = [A y − x; G y],   [0; −∞] ≤ g ≤ [0; h],

  started at y₀ = A⁺x. The spec's setting is the exact Hessian, MUMPS, tol 1e-10; DC3's own
  setting (L-BFGS, tol 1e-4) is ``hessian="lbfgs", tol=1e-4``. CasADi's ``lam_g`` for this g
  is exactly (ν, λ) of L = f + νᵀ(Ay − x) + λᵀ(Gy − h), so z = (y, ν, λ) plugs straight into
  ``problems.parametric.dc3.Residual``.
* ``osqp_solve`` (convex QP only): the osqp package's own API, a new solver per instance,
  with the options CVXPY passes (the paper's call), DC3's call (defaults +
  ``eps_prim_inf=1e-4``) or tight tolerances with polishing. OSQP's dual y for the stacked
  rows [A; G] is (ν, λ) in the same convention.

* ``box_osqp_solve`` (convex QP only): jaxopt's ``BoxOSQP`` (OSQP's ADMM in JAX) vmapped
  over the test points, one jitted call for the whole batch: the baseline that runs on an
  accelerator, as LISCO does. Its dual ``y`` of [A; G] y = z, l ≤ z ≤ u is (ν, λ) in the
  same convention as OSQP's.

Per instance: iterations, the solver's status string, success, the wall time of the solve
call alone (``solve_s``, perf_counter around it) and with per-instance setup (``total_s``:
OSQP setup + solve; for IPOPT, built once, equal to ``solve_s``). Numpy in, numpy out.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import NamedTuple

import casadi as ca
import numpy as np
import osqp
import scipy.sparse as sp

from problems.common.base import check_choice
from problems.parametric.dc3 import OBJECTIVES, Dc3Instance, Ops

HESSIANS = ("exact", "lbfgs")


class BaselineResult(NamedTuple):
    y: np.ndarray  # (N, n)
    nu: np.ndarray  # (N, n_eq) multipliers of A y = x
    lam: np.ndarray  # (N, n_ineq) multipliers of G y <= h, >= 0
    iterations: np.ndarray  # (N,) int
    status: list[str]  # per instance, the solver's return status
    success: np.ndarray  # (N,) bool, the solver reported success
    solve_s: np.ndarray  # (N,) seconds of the solve call alone
    total_s: np.ndarray  # (N,) seconds including per-instance setup


CASADI_OPS = Ops(ca.dot, ca.sin, ca.sum1)  # the objective formulas' operations on CasADi SX


def casadi_objective(kind: str, inst: Dc3Instance, y):
    """f(y) of ``kind`` as a CasADi expression (the formulas of
    ``problems.parametric.dc3.OBJECTIVES``, with CasADi's operations)."""
    check_choice(kind, "problem.objective", list(OBJECTIVES))
    q, p = ca.DM(np.diag(inst.Q)), ca.DM(inst.p)  # Q is diagonal (DC3)
    return OBJECTIVES[kind](y, q, p, CASADI_OPS)


def _result(ys, nus, lams, iters, status, success, solve_s, total_s) -> BaselineResult:
    return BaselineResult(
        np.array(ys),
        np.array(nus),
        np.array(lams),
        np.array(iters, dtype=int),
        list(status),
        np.array(success, dtype=bool),
        np.array(solve_s),
        np.array(total_s),
    )


def ipopt_solve(
    kind: str,
    inst: Dc3Instance,
    X: np.ndarray,
    *,
    tol: float = 1e-10,
    hessian: str = "exact",
    max_iter: int = 3000,
    linear_solver: str = "mumps",
    on_instance: Callable[[int], None] | None = None,
) -> BaselineResult:
    """IPOPT on every row x of ``X`` with one CasADi solver (x is its parameter p).

    ``on_instance(i)`` is called after instance i (e.g. to advance a progress bar)."""
    check_choice(kind, "baseline.objective", list(OBJECTIVES))
    check_choice(hessian, "baseline.hessian", HESSIANS)
    n_eq, n = inst.A.shape
    n_ineq = inst.G.shape[0]
    y, xp = ca.SX.sym("y", n), ca.SX.sym("x", n_eq)
    g = ca.vertcat(ca.mtimes(ca.DM(inst.A), y) - xp, ca.mtimes(ca.DM(inst.G), y))
    opts = {
        "print_time": False,
        "ipopt.print_level": 0,
        "ipopt.sb": "yes",
        "ipopt.tol": tol,
        "ipopt.max_iter": max_iter,
        "ipopt.linear_solver": linear_solver,
    }
    if hessian == "lbfgs":
        opts["ipopt.hessian_approximation"] = "limited-memory"
    solver = ca.nlpsol(
        "ipopt", "ipopt", {"x": y, "p": xp, "f": casadi_objective(kind, inst, y), "g": g}, opts
    )
    pinv = np.linalg.pinv(inst.A)
    lbg = np.concatenate([np.zeros(n_eq), np.full(n_ineq, -np.inf)])
    ubg = np.concatenate([np.zeros(n_eq), inst.h])
    out = ([], [], [], [], [], [], [])
    for i, x in enumerate(np.asarray(X)):
        t0 = time.perf_counter()
        sol = solver(x0=pinv @ x, p=x, lbg=lbg, ubg=ubg)
        dt = time.perf_counter() - t0
        st = solver.stats()
        lam_g = np.asarray(sol["lam_g"]).ravel()
        for acc, v in zip(
            out,
            (
                np.asarray(sol["x"]).ravel(),
                lam_g[:n_eq],
                lam_g[n_eq:],
                st["iter_count"],
                st["return_status"],
                st["success"],
                dt,
            ),
        ):
            acc.append(v)
        if on_instance is not None:
            on_instance(i)
    return _result(*out, out[-1])


# OSQP's options: CVXPY's interface (cvxpy/reductions/solvers/qp_solvers/osqp_qpif.py sets
# eps_abs, eps_rel, max_iter and, for a new problem, polishing) | DC3's call
OSQP_SETTINGS = {
    "cvxpy": dict(eps_abs=1e-5, eps_rel=1e-5, max_iter=10000, polishing=True),
    "dc3": dict(eps_prim_inf=1e-4),
}


def osqp_solve(
    inst: Dc3Instance,
    X: np.ndarray,
    *,
    tight: bool = False,
    settings: str = "cvxpy",
    on_instance: Callable[[int], None] | None = None,
) -> BaselineResult:
    """OSQP on the convex QP for every row x of ``X``, a new solver per instance.

    ``settings``: ``cvxpy`` (the paper's "default options of OSQP, called from within
    CVXPY": the options CVXPY's interface sets) or ``dc3`` (DC3's call, OSQP's defaults +
    ``eps_prim_inf=1e-4``); ``tight`` overrides both: eps_abs = eps_rel = 1e-10, polishing,
    max_iter 100000."""
    n_eq, n_ineq = inst.A.shape[0], inst.G.shape[0]
    settings = (
        dict(eps_abs=1e-10, eps_rel=1e-10, polishing=True, max_iter=100000)
        if tight
        else OSQP_SETTINGS[settings]
    )
    p_mat = sp.csc_matrix(inst.Q)
    a_mat = sp.csc_matrix(np.vstack([inst.A, inst.G]))
    lo_ineq, hi_ineq = np.full(n_ineq, -np.inf), np.asarray(inst.h)
    out = ([], [], [], [], [], [], [], [])
    for i, x in enumerate(np.asarray(X)):
        t0 = time.perf_counter()
        solver = osqp.OSQP()
        solver.setup(
            P=p_mat,
            q=inst.p,
            A=a_mat,
            l=np.concatenate([x, lo_ineq]),
            u=np.concatenate([x, hi_ineq]),
            verbose=False,
            **settings,
        )
        t1 = time.perf_counter()
        r = solver.solve(raise_error=False)
        t2 = time.perf_counter()
        for acc, v in zip(
            out,
            (
                np.array(r.x),
                r.y[:n_eq].copy(),
                r.y[n_eq:].copy(),
                r.info.iter,
                r.info.status,
                r.info.status == "solved",
                t2 - t1,
                t2 - t0,
            ),
        ):
            acc.append(v)
        if on_instance is not None:
            on_instance(i)
    return _result(*out)


# jaxopt BoxOSQP settings: OSQP's defaults (tol 1e-3, 4000 iterations; jaxopt's stopping test
# is its own absolute one) and tight (tol 1e-9 in float64; no polishing in jaxopt)
BOX_OSQP = {False: {"tol": 1e-3, "maxiter": 4000}, True: {"tol": 1e-9, "maxiter": 100_000}}


def box_osqp_solve(
    inst: Dc3Instance,
    X: np.ndarray,
    *,
    tight: bool = False,
    dtype=np.float64,
    eq_qp_solve: str = "lu",
) -> tuple[BaselineResult, dict]:
    """jaxopt's BoxOSQP on the convex QP, vmapped over the rows of ``X`` in one jitted call.

        min ½ yᵀQy + pᵀy  s.t.  [A; G] y = z,  [x; −∞] ≤ z ≤ [x; h]

    BoxOSQP's Lagrangian ½yᵀQy + pᵀy + uᵀ([A; G]y − z) + μᵀ(z − ub) + φᵀ(lb − z) gives
    Qy + p + [A; G]ᵀu = 0, so u = (ν, λ) as OSQP's dual (λ = μ ≥ 0 on the one-sided rows).
    The batch is solved twice; the second call is timed (``solve_s`` = ``total_s`` = its
    seconds / N per instance). Returns (result, {compile_s, batch_s, tol, maxiter})."""
    import jax
    import jax.numpy as jnp
    from jaxopt import BoxOSQP

    check_choice(eq_qp_solve, "method.eq_qp_solve", ["lu", "cg", "cg+jacobi"])
    if np.dtype(dtype) == np.float64 and not jax.config.jax_enable_x64:
        raise ValueError("box_osqp_solve in float64 needs jax_enable_x64")
    n_eq, n_ineq = inst.A.shape[0], inst.G.shape[0]
    setting = BOX_OSQP[bool(tight)]
    solver = BoxOSQP(
        tol=setting["tol"],
        maxiter=setting["maxiter"],
        eq_qp_solve=eq_qp_solve,
        check_primal_dual_infeasability=False,
        jit=True,
    )
    q_mat, p_vec = jnp.asarray(inst.Q, dtype), jnp.asarray(inst.p, dtype)
    a_mat = jnp.asarray(np.vstack([inst.A, inst.G]), dtype)
    h = jnp.asarray(inst.h, dtype)
    lo_ineq = jnp.full(n_ineq, -jnp.inf, dtype)

    def one(x):
        lb, ub = jnp.concatenate([x, lo_ineq]), jnp.concatenate([x, h])
        sol = solver.run(params_obj=(q_mat, p_vec), params_eq=a_mat, params_ineq=(lb, ub))
        return sol.params.primal[0], sol.params.dual_eq, sol.state.iter_num, sol.state.error

    batched = jax.jit(jax.vmap(one))
    xs = jnp.asarray(X, dtype)
    t0 = time.perf_counter()
    jax.block_until_ready(batched(xs))
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    y, u, iters, err = jax.block_until_ready(batched(xs))
    batch_s = time.perf_counter() - t0
    u, err, n = np.asarray(u, np.float64), np.asarray(err), len(X)
    ok = err <= setting["tol"]
    status = [
        "solved" if o else f"error {e:.1e} > tol after {i} iterations"
        for o, e, i in zip(ok, err, np.asarray(iters))
    ]
    per = np.full(n, batch_s / n)
    res = _result(
        np.asarray(y, np.float64), u[:, :n_eq], u[:, n_eq:], np.asarray(iters), status, ok, per, per
    )
    return res, {"compile_s": compile_s - batch_s, "batch_s": batch_s, **setting}


# --- the baselines as methods: solve(problem, cfg, X, on_instance) -> (result, extra record) --


def ipopt_method(problem, cfg, X, on_instance=None) -> tuple[BaselineResult, dict]:
    """``method=ipopt`` (``methods.parametric.lisco.IpoptConfig``) on a ``parametric_opt``
    problem."""
    return ipopt_solve(
        problem.kind,
        problem.inst,
        X,
        tol=cfg.tol,
        hessian=cfg.hessian,
        max_iter=cfg.max_iter,
        linear_solver=cfg.linear_solver,
        on_instance=on_instance,
    ), {}


def osqp_method(problem, cfg, X, on_instance=None) -> tuple[BaselineResult, dict]:
    """``method=osqp`` (``OsqpConfig``): the osqp package, a new solver per instance."""
    r = osqp_solve(problem.inst, X, tight=cfg.tight, settings=cfg.settings, on_instance=on_instance)
    return r, {}


def box_osqp_method(problem, cfg, X, on_instance=None) -> tuple[BaselineResult, dict]:
    """``method=jaxopt_osqp`` (``JaxoptOsqpConfig``): one batched call (no per-instance
    progress); its batch figures go to the record under ``batch.``."""
    r, info = box_osqp_solve(problem.inst, X, tight=cfg.tight, eq_qp_solve=cfg.eq_qp_solve)
    return r, {f"batch.{k}": v for k, v in info.items()}


def convex_only(problem) -> str | None:
    """Why a convex-QP solver cannot take ``problem`` (None: it can)."""
    return (
        None
        if getattr(problem, "convex", False)
        else f"solves convex QPs only, not problem {problem.name!r}"
    )


__all__ = [
    "HESSIANS",
    "BOX_OSQP",
    "box_osqp_method",
    "convex_only",
    "ipopt_method",
    "osqp_method",
    "BaselineResult",
    "box_osqp_solve",
    "casadi_objective",
    "ipopt_solve",
    "osqp_solve",
]

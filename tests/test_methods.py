"""The L-BFGS round machine (penalty / auglag / pinn / pretraining) and the chunk driver."""

import math
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from methods import METHODS, build_method, method_config, run_chunked
from methods.driver import DIVERGED, Method
from methods.pde.penalty import InnerConfig, PenaltyConfig, lbfgs_rounds
from methods.pde.pretrain import PretrainConfig, pretrain_method, pretrain_report
from problems import ConfigError, build_problem

# min ‖θ − a‖² s.t. θ₀ + θ₁ = 1: the constrained optimum is θ = a − s/2 (s = a₀ + a₁ − 1),
# and the penalty subproblem min ‖θ − a‖² + μ c² has θ(μ) = a − μ s / (1 + 2μ).
A = jnp.array([2.0, 0.5, -1.0])
S = float(A[0] + A[1] - 1)
toy_loss = lambda p, d: jnp.sum((p["w"] - A) ** 2)
toy_c = lambda p, d: jnp.array([p["w"][0] + p["w"][1] - 1.0])
TOY = {"w": jnp.zeros(3)}
INNER = InnerConfig(inner_maxiter=200, gtol=1e-12, ftol=1e-14)


def toy(multiplier_update, mu0=1.0, rho=2.0, mu_max=2.0**10, rounds=100):
    return lbfgs_rounds(
        "toy",
        toy_loss,
        toy_c,
        INNER,
        mu0=mu0,
        rho=rho,
        mu_max=mu_max,
        max_rounds=rounds,
        multiplier_update=multiplier_update,
        dtype=jnp.float64,
    )


@pytest.mark.parametrize("update", ["paper", "textbook", "authors_code"])
def test_auglag_follows_its_multiplier_recursion_exactly(update):
    """Each round solves min ‖θ − a‖² + λc + μc² exactly: c(θ_{k+1}) = (S − λ_k)/(1 + 2μ_k).
    The paper's step (Alg. 2 line 5) is λ_{k+1} = λ_k + μ_k c(θ_k), with c at the round's
    start (c(θ_0) = −1 at θ_0 = 0); the textbook one uses c(θ_{k+1}); the authors' code's
    constants (½μ'‖c‖², μ' = 2μ) step by 2μ_k c(θ_k)."""
    rounds, rho = 12, 1.1
    m = toy(update, rho=rho, rounds=rounds, mu_max=1e9)
    r = run_chunked(m, m.init(TOY, None), None, max_steps=10_000, log_every=50)
    lam, mu, c_start = 0.0, 1.0, -1.0
    for _ in range(rounds):
        c_end = (S - lam) / (1 + 2 * mu)
        lam += {"paper": mu * c_start, "textbook": mu * c_end, "authors_code": 2 * mu * c_start}[
            update
        ]
        mu, c_start = rho * mu, c_end
    assert r.status == "converged" and int(r.state.round) == rounds
    assert int(r.state.inner_ends.sum()) == rounds  # each round's solve ended once
    assert int(r.state.inner_ends[2]) == 0  # by (A.1)'s tolerances, never l_max
    assert abs(float(r.state.lam[0]) - lam) < 1e-8 * max(1.0, abs(lam))
    assert abs(float(toy_c(r.state.params, None)[0]) - c_end) < 1e-10
    if update == "textbook":
        m = toy(update, rounds=12, mu_max=2.0**12)  # ρ = 2: λ → λ* = S, the multiplier
        r = run_chunked(m, m.init(TOY, None), None, max_steps=10_000, log_every=50)
        assert abs(float(r.state.lam[0]) - S) < 1e-3 * S


@pytest.mark.parametrize("on_failure", ["step", "stop"])
def test_a_failed_line_search_is_counted_and_stop_keeps_the_iterate(on_failure):
    """min (θ − 3)² behind a cliff: the loss is 1e8 for θ > 1. From θ = 0 the first L-BFGS
    step lands on θ = 1 (Armijo holds); the next direction points over the cliff, so every
    trial step of the backtracking search fails. optax then takes its last trial step
    (``step``: θ > 1, the loss jumps from 4 to 1e8); ``stop`` keeps θ = 1 and ends the
    solve, as SciPy's L-BFGS-B does."""
    wall = lambda p, d: jnp.where(p["w"][0] > 1.0, 1e8, (p["w"][0] - 3.0) ** 2)
    zero_c = lambda p, d: jnp.zeros(1)
    inner = InnerConfig(
        inner_maxiter=50,
        gtol=1e-12,
        ftol=0.0,
        max_linesearch_steps=30,
        on_linesearch_failure=on_failure,
    )
    m = lbfgs_rounds(
        "wall",
        wall,
        zero_c,
        inner,
        mu0=1.0,
        rho=2.0,
        mu_max=2.0,
        max_rounds=1,
        multiplier_update=None,
        dtype=jnp.float64,
    )
    s = m.init({"w": jnp.zeros(1)}, None)
    s = m.step(s, None)
    assert float(s.params["w"][0]) == 1.0 and int(s.ls_failures) == 0
    s = m.step(s, None)
    assert int(s.ls_failures) == 1
    if on_failure == "stop":
        assert float(s.params["w"][0]) == 1.0 and bool(s.done) and float(s.step_norm) == 0.0
        assert float(s.ls_increase) == 0.0
        assert s.inner_ends.tolist() == [0, 0, 0, 1]  # ended by the line search, not f_tol
    else:
        assert float(s.params["w"][0]) > 1.0 and not bool(s.done)
        assert float(wall(s.params, None)) == 1e8
        assert s.inner_ends.tolist() == [0, 0, 0, 0]  # the solve goes on
        assert float(s.ls_increase) == 1e8 - 4.0  # φ rose from (1 − 3)² = 4 to 1e8
    with pytest.raises(ConfigError, match="method.on_linesearch_failure"):
        InnerConfig(on_linesearch_failure="retry")


SCIPY = InnerConfig(inner_maxiter=200, gtol=1e-12, ftol=1e-14, solver="scipy")


@pytest.mark.parametrize("update", ["paper", "authors_code"])
def test_scipy_solver_follows_the_same_rounds(update):
    """solver=scipy (SciPy's L-BFGS-B on the host, the authors' code) solves each round of
    the toy to its optimum, so λ follows the same exact recursion as the jitted solver."""
    rounds, rho = 8, 1.1
    m = lbfgs_rounds(
        "toy",
        toy_loss,
        toy_c,
        SCIPY,
        mu0=1.0,
        rho=rho,
        mu_max=1e9,
        max_rounds=rounds,
        multiplier_update=update,
        dtype=jnp.float64,
    )
    r = run_chunked(m, m.init(TOY, None), None, max_steps=10_000, log_every=50)
    lam, mu, c_start = 0.0, 1.0, -1.0
    for _ in range(rounds):
        c_end = (S - lam) / (1 + 2 * mu)
        lam += (2.0 if update == "authors_code" else 1.0) * mu * c_start
        mu, c_start = rho * mu, c_end
    assert r.status == "converged" and int(r.state.round) == rounds
    assert int(r.state.inner_ends.sum()) == rounds  # each round's solve ended once
    assert int(r.state.inner_ends[2]) == 0  # by (A.1)'s tolerances, never l_max
    assert abs(float(r.state.lam[0]) - lam) < 1e-8 * max(1.0, abs(lam))
    assert abs(float(toy_c(r.state.params, None)[0]) - c_end) < 1e-9
    assert len(r.history) == rounds + 1  # the start, then one row per round
    assert all(row["inner_stop"] in (0, 1, 2, 3) for row in r.history[1:])  # SciPy's reason
    assert [row["iteration"] for row in r.history] == sorted(row["iteration"] for row in r.history)


def test_scipy_solver_in_float32_and_its_caps():
    """float32 values handed to SciPy (the authors' setting) still solve the toy to float32
    accuracy; the iteration cap cuts a round (status max_iter, no multiplier step); vectorized
    seeds are refused with a clear message."""
    m = lbfgs_rounds(
        "pinn",
        toy_loss,
        toy_c,
        SCIPY,
        mu0=10.0,
        rho=1.0,
        mu_max=math.inf,
        max_rounds=1,
        multiplier_update=None,
        dtype=jnp.float32,
    )
    p32 = {"w": jnp.zeros(3, jnp.float32)}
    r = run_chunked(m, m.init(p32, None), None, max_steps=10_000, log_every=50)
    expected = np.asarray(A) - 10.0 * S / 21.0 * np.array([1.0, 1.0, 0.0])
    assert r.state.params["w"].dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(r.state.params["w"]), expected, atol=1e-5)
    m = lbfgs_rounds(
        "auglag",
        toy_loss,
        toy_c,
        SCIPY,
        mu0=1.0,
        rho=1.1,
        mu_max=1e9,
        max_rounds=50,
        multiplier_update="paper",
        dtype=jnp.float64,
    )
    r = run_chunked(m, m.init(TOY, None), None, max_steps=2, log_every=50)
    assert r.status == "max_iter" and int(r.state.iteration) == 2
    assert int(r.state.round) == 0 and float(r.state.lam[0]) == 0.0
    with pytest.raises(ValueError, match="seeds=1"):
        run_chunked(m, m.init(TOY, None), None, max_steps=2, log_every=50, seeds=2)
    with pytest.raises(ConfigError, match=r"^method\.solver"):
        PenaltyConfig(solver="lbfgsb")


def test_penalty_ends_at_the_subproblem_solution_of_the_last_mu():
    m = toy(None)
    r = run_chunked(m, m.init(TOY, None), None, max_steps=10_000, log_every=50)
    mu_last = float(r.state.mu) / 2.0  # θ_{k+1} solves the round at μ_k, then μ ← ρμ
    expected = np.asarray(A) - mu_last * S / (1 + 2 * mu_last) * np.array([1.0, 1.0, 0.0])
    np.testing.assert_allclose(np.asarray(r.state.params["w"]), expected, atol=1e-8)
    assert float(jnp.max(jnp.abs(r.state.lam))) == 0.0


@pytest.mark.parametrize("update", ["paper", "textbook", "authors_code"])
def test_auglag_multiplier_update_rule(update):
    """At every round transition μ_{k+1} = ρ μ_k and λ_{k+1} = λ_k + μ_k c with c at the
    round's start θ_k (paper) or its end θ_{k+1} (textbook); the authors' code: 2μ_k c(θ_k)."""
    cfg = InnerConfig(inner_maxiter=3, gtol=0.0, ftol=0.0)
    m = lbfgs_rounds(
        "auglag",
        toy_loss,
        toy_c,
        cfg,
        mu0=0.5,
        rho=1.5,
        mu_max=1e9,
        max_rounds=100,
        multiplier_update=update,
        dtype=jnp.float64,
    )
    step = jax.jit(m.step)
    s = m.init(TOY, None)
    start = TOY  # θ_k of the current round
    transitions = 0
    for _ in range(20):
        new = step(s, None)
        if int(new.round) == int(s.round) + 1:
            transitions += 1
            at = new.params if update == "textbook" else start
            factor = 2.0 if update == "authors_code" else 1.0
            expected = s.lam + factor * s.mu * toy_c(at, None)
            np.testing.assert_allclose(np.asarray(new.lam), np.asarray(expected), rtol=1e-14)
            assert abs(float(new.mu) - 1.5 * float(s.mu)) < 1e-14
            assert int(new.inner_iter) == 0
            start = new.params
        s = new
    assert transitions == 6  # 20 steps of 3 inner iterations each round


def test_the_defaults_are_the_papers_algorithms():
    """Every deviation from the paper's Algorithms 2 and 3 is an option, off by default,
    in the dataclasses and in the config a run composes."""
    from hydra import compose, initialize_config_dir

    import runners.setup  # noqa: F401 (the dataclasses' default nodes)
    from methods.pde.penalty import AuglagConfig, InnerConfig
    from methods.pde.trsqp import TrsqpConfig

    conf = Path(__file__).resolve().parent.parent / "conf"

    def composed(method):
        with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
            return compose("train", overrides=[f"method={method}", "scale=paper"])

    for cfg, node in (
        (TrsqpConfig(), composed("trsqp").method),
        (AuglagConfig(), composed("auglag").method),
        (PenaltyConfig(), composed("penalty").method),
        (InnerConfig(), composed("pinn").method),
        (InnerConfig(), composed("trsqp").pretraining),
    ):
        # the paper's choice, or where it is silent the authors' code's (a failed line
        # search: SciPy's L-BFGS-B keeps θ and ends the solve)
        for key, paper in (
            ("second_order_correction", False),
            ("secant_multiplier", "paper"),
            ("radius_rule", "paper"),
            ("objective_reduction", "mean"),
            ("multiplier_update", "paper"),
            ("solver", "optax"),
            ("linesearch", "backtracking"),
            ("on_linesearch_failure", "stop"),
            ("max_linesearch_steps", 100),
        ):
            if hasattr(cfg, key):
                assert getattr(cfg, key) == paper, key
                assert node[key] == paper, (node, key)


def test_penalty_schedule_constants():
    assert PenaltyConfig().n_rounds == 100  # μ₀ = 1, ρ = 1.1, μ_max = ρ¹⁰⁰
    assert PenaltyConfig(mu0=2.0).n_rounds == math.ceil(100 - math.log(2) / math.log(1.1))
    with pytest.raises(ConfigError, match=r"^method\.rho"):
        PenaltyConfig(rho=0.9)
    with pytest.raises(ConfigError, match=r"^method\.linesearch"):
        PenaltyConfig(linesearch="wolfe")


def test_pinn_is_one_solve_at_fixed_mu():
    m = lbfgs_rounds(
        "pinn",
        toy_loss,
        toy_c,
        INNER,
        mu0=10.0,
        rho=1.0,
        mu_max=math.inf,
        max_rounds=1,
        multiplier_update=None,
        dtype=jnp.float64,
    )
    r = run_chunked(m, m.init(TOY, None), None, max_steps=10_000, log_every=50)
    expected = np.asarray(A) - 10.0 * S / 21.0 * np.array([1.0, 1.0, 0.0])
    np.testing.assert_allclose(np.asarray(r.state.params["w"]), expected, atol=1e-8)
    assert r.status == "converged" and float(r.state.mu) == 10.0


SMOKE = {"eval_nx": 64, "eval_nt": 11, "n_data": 200, "depth": 2, "width": 16}


@pytest.fixture(scope="module")
def smoke():
    p = build_problem("reaction", {**SMOKE, "alpha": 2.0})
    data = p.sample_data(jax.random.PRNGKey(0))
    return p, data, p.init_params(jax.random.PRNGKey(1))


def test_pretraining_reduces_constraint_violation_by_orders(smoke):
    p, data, params = smoke
    before = float(jnp.sum(p.pretrain_constraints(params, data) ** 2))
    m = pretrain_method(p, PretrainConfig(inner_maxiter=1000, ic_weight=10.0), jnp.float64)
    r = run_chunked(m, m.init(params, data), data, max_steps=1000, log_every=200)
    rep = pretrain_report(p, r.state.params, data)
    assert float(rep["pretrain_c_sq"]) < 1e-2 * before
    assert float(rep["pretrain_ic_rel"]) < 0.1  # not the trivial solution u ≡ 0


@pytest.mark.parametrize("name", ["penalty", "auglag"])
def test_penalty_and_auglag_reduce_c_on_a_pde(smoke, name):
    p, data, params = smoke
    cfg = method_config(name, {"inner_maxiter": 30}, "reaction", p.family)
    m = build_method(name, cfg, p, jnp.float64)
    r = run_chunked(m, m.init(params, data), data, max_steps=300, log_every=100)
    c0 = float(jnp.linalg.norm(p.constraints(params, data)))
    final = p.evaluate(m.params(r.state), data)
    assert float(final["constraint_norm"]) < 0.1 * c0
    assert np.isfinite(float(final["abs_error"])) and float(final["rel_error"]) < 1.0
    assert int(r.state.round) >= 5 and r.history[-1]["iteration"] == 300


class Blowup(NamedTuple):
    x: jax.Array
    k: jax.Array


def test_divergence_keeps_last_finite_iterate_and_history():
    m = Method(
        name="blowup",
        init=lambda p, d: Blowup(jnp.float64(1.0), jnp.int32(0)),
        step=lambda s, d: Blowup(s.x * 1e100, s.k + 1),
        done=lambda s: s.k < 0,
        finite=lambda s: jnp.isfinite(s.x),
        converged=lambda s: True,
        log=lambda s, d: {"x": s.x},
        params=lambda s: s.x,
        iterations=lambda s: s.k,
        progress=lambda s: s.k,
        progress_total=10,
    )
    r = run_chunked(m, m.init(None, None), None, max_steps=100, log_every=2)
    assert r.status == DIVERGED
    assert float(r.state.x) == 1e300 and int(r.state.k) == 3  # 1e400 overflowed
    assert [row["iteration"] for row in r.history] == [0, 2, 3]


def test_method_must_fit_the_problem_family():
    assert set(METHODS) >= {"penalty", "auglag", "pinn"}
    with pytest.raises(ConfigError, match=r"^method: 'penalty' does not fit problem 'tank'"):
        method_config("penalty", {}, "tank", "neural_dae")
    with pytest.raises(ConfigError, match=r"valid choices: penalty, auglag, pinn"):
        method_config("trsqpx", {}, "reaction", "constrained_learning")


# budgets the problem sets per scale (its class's ``epochs``), not a method constant
SCALE_DRIVEN = {"epochs", "epochs_full_batch"}
FAMILY_PROBLEM = {
    "constrained_learning": "reaction",
    "stochastic_constrained": "spring",
    "neural_dae": "tank_manifold",
    "parametric_opt": "qp",
}


@pytest.mark.parametrize("name", list(METHODS))
def test_a_methods_yaml_is_its_dataclass_default(name):
    """conf/method/<name>.yaml, composed as a run composes it (scale=paper, a problem of its
    family, interpolations resolved), gives the method's dataclass defaults: the YAML and
    the dataclass do not drift apart (scale-driven budgets apart)."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    import runners.setup  # noqa: F401 (config resolvers; the dataclasses' default nodes)

    spec = METHODS[name]
    conf = Path(__file__).resolve().parent.parent / "conf"
    with initialize_config_dir(config_dir=str(conf), version_base=None):
        cfg = compose(
            "train",
            overrides=[f"method={name}", f"problem={FAMILY_PROBLEM[spec.family]}", "scale=paper"],
        )
    values = OmegaConf.to_container(cfg.method, resolve=True)
    assert values.pop("name") == name
    default = spec.Config()
    for k, v in values.items():
        if k in SCALE_DRIVEN:
            continue
        v = tuple(v) if isinstance(v, list) else v
        assert v == getattr(default, k), (
            f"method.{k}: yaml {v!r}, dataclass {getattr(default, k)!r}"
        )

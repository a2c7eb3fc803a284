"""Turn a composed Hydra config into validated problem/method objects (one-line errors)."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, NamedTuple

from omegaconf import DictConfig, OmegaConf

from methods import METHODS, PretrainConfig, method_config, method_refusal
from problems import PARAMETRIC_OPT, PROBLEMS, build_problem, resolve_precision
from problems.common.base import (
    ConfigError,
    check,
    check_choice,
    check_positive_int,
    config_from_dict,
)
from problems.stochastic.base import DEFAULT_EPOCHS
from runners.defaults import store_defaults

store_defaults()  # the dataclasses' defaults, as the config nodes conf/ includes


def problem_epochs(problem: str, scale: str, which: int) -> int:
    """A stochastic problem's own budget at a scale: ``epochs[scale][which]`` of its class
    (0: mini-batch, 1: full batch); DEFAULT_EPOCHS for a scale it does not name (the
    ``${problem_epochs:...}`` of conf/sqp_momentum_method.yaml)."""
    table = getattr(PROBLEMS.get(problem), "epochs", None) or {}
    return int(table[scale][int(which)]) if scale in table else DEFAULT_EPOCHS


if not OmegaConf.has_resolver("problem_epochs"):
    OmegaConf.register_new_resolver("problem_epochs", problem_epochs)


def problem_lr(problem: str) -> float:
    """A stochastic problem's default fixed learning rate: the lower of the paper's two
    (its class's ``learning_rates``), so that a single run, ``method=sqp_adam
    problem=burgers``, runs at a rate the paper ran; a problem without them (one of a
    user's) gets :class:`~methods.stochastic.sqp_momentum.SqpMomentumConfig`'s ``lr``
    (the ``${problem_lr:...}`` of conf/sqp_momentum_method.yaml)."""
    from methods.stochastic.sqp_momentum import SqpMomentumConfig

    rates = getattr(PROBLEMS.get(problem), "learning_rates", None) or ()
    return float(min(rates)) if rates else SqpMomentumConfig.lr


if not OmegaConf.has_resolver("problem_lr"):
    OmegaConf.register_new_resolver("problem_lr", problem_lr)


class Setup(NamedTuple):
    problem: Any
    method_name: str
    method_cfg: Any
    pretrain_cfg: PretrainConfig | None
    precision: str
    max_iter: int
    time_s: float


def _plain(node) -> dict:
    return OmegaConf.to_container(node, resolve=True) if node is not None else {}


def check_writable_dir(value: Any, field: str) -> Path:
    """``value`` names a folder this process can create or write into (nothing is created)."""
    check(
        isinstance(value, str) and value.strip() != "",
        field,
        f"must be a folder path, got {value!r}",
    )
    path = Path(value).expanduser()
    probe = path
    while not probe.exists():  # the nearest existing ancestor decides
        if probe.parent == probe:
            break
        probe = probe.parent
    check(
        probe.is_dir(),
        field,
        f"{str(probe)!r} is a file, not a folder"
        if probe != path
        else f"{value!r} is a file, not a folder",
    )
    check(
        os.access(probe, os.W_OK | os.X_OK), field, f"{str(probe)!r} is not writable by this user"
    )
    return path


def check_sweep_name(value: Any) -> None:
    """A folder name (or sub-path) inside ``<results_dir>/sweeps``: never outside it."""
    text = value if isinstance(value, str) else ""
    parts = text.replace("\\", "/").split("/")
    check(
        text.strip() != ""
        and not text.startswith(("/", "~"))
        and all(p not in ("", ".", "..") for p in parts),
        "sweep_name",
        f"must be a folder name inside results_dir/sweeps (no '..', no absolute path, no "
        f"empty part), got {value!r}",
    )


def load_plugins(names: Any) -> None:
    """Import the modules of ``plugins`` (a list of importable names): they register their
    problems and methods (``problems.register_problem``, ``methods.register_method``)."""
    import importlib

    check(
        names is None
        or (isinstance(names, (list, tuple)) and all(isinstance(n, str) and n for n in names)),
        "plugins",
        f"must be a list of module names, got {names!r}",
    )
    for name in names or ():
        try:
            importlib.import_module(name)
        except Exception as e:  # noqa: BLE001 - any import failure is the user's input
            raise ConfigError(
                f"plugins: cannot import {name!r} ({type(e).__name__}: {e}); "
                "the module must be importable (PYTHONPATH)"
            ) from None
    if names:
        store_defaults()  # nodes for what the plugins registered


def resolve(cfg: DictConfig) -> Setup:
    """Validate every user-facing field; raises :class:`ConfigError` with a one-line message."""
    load_plugins(OmegaConf.to_container(cfg.plugins) if cfg.get("plugins") else None)
    check_writable_dir(cfg.get("results_dir"), "results_dir")
    check_sweep_name(cfg.get("sweep_name"))
    if cfg.get("jax_cache_dir"):  # '' / null: no persistent compilation cache
        check_writable_dir(cfg.get("jax_cache_dir"), "jax_cache_dir")
    seed = cfg.get("seed")
    check(
        isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0,
        "seed",
        f"must be an integer >= 0, got {seed!r}",
    )
    check_positive_int(cfg.get("seeds", 1), "seeds")
    every = cfg.get("checkpoint_every", 0)
    check(
        isinstance(every, int) and not isinstance(every, bool) and every >= 0,
        "checkpoint_every",
        f"must be an integer >= 0 (chunks; 0: on signals only), got {every!r}",
    )
    for f in ("log_every", "eval_every"):
        check_positive_int(cfg.get(f), f)
    check_positive_int(cfg.budget.max_iter, "budget.max_iter")
    time_s = cfg.budget.time_s
    check(
        time_s is None or (isinstance(time_s, (int, float)) and time_s > 0),
        "budget.time_s",
        f"must be null or a number of seconds > 0, got {time_s!r}",
    )

    pvals = _plain(cfg.problem)
    pname = pvals.pop("name", None)
    check_choice(pname, "problem.name", list(PROBLEMS))
    precision = resolve_precision(cfg.precision, pname)
    problem = build_problem(pname, pvals, dtype=precision)

    mvals = _plain(cfg.method)
    mname = mvals.pop("name", None)
    check_choice(mname, "method.name", list(METHODS))
    method_cfg = method_config(mname, mvals, pname, problem.family)
    learned = METHODS[mname].solve is None  # of the parametric family: LISCO, not a baseline
    if problem.family == PARAMETRIC_OPT and learned and not method_cfg.train:  # saved networks
        from runners.parametric import networks_meta

        networks_meta(method_cfg.checkpoint, method_cfg, problem, precision)
    refusal = method_refusal(mname, problem)
    check(refusal is None, "method", refusal or "")

    pretrain_cfg = None
    check(
        isinstance(cfg.pretrain, bool), "pretrain", f"must be true or false, got {cfg.pretrain!r}"
    )
    if cfg.pretrain and hasattr(problem, "pretrain_constraints"):
        # Step 0 of trSQP-PINN; problems without pretraining constraints (the stochastic
        # family) start from their initial weights whatever ``pretrain`` says
        pretrain_cfg = config_from_dict(PretrainConfig, _plain(cfg.pretraining), "pretraining")
    for node, c in (("method", method_cfg), ("pretraining", pretrain_cfg)):
        check(
            getattr(c, "solver", None) != "scipy" or cfg.get("seeds", 1) == 1,
            "seeds",
            f"must be 1 with {node}.solver=scipy (SciPy runs one seed per process), got "
            f"{cfg.get('seeds')!r}; valid: 1, or {node}.solver=optax",
        )
    return Setup(
        problem,
        mname,
        method_cfg,
        pretrain_cfg,
        precision,
        cfg.budget.max_iter,
        math.inf if time_s is None else float(time_s),
    )


__all__ = ["Setup", "load_plugins", "resolve", "ConfigError"]

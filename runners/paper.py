"""How far a trSQP-PINN run is from the paper: one line after the run's summary.

For a run of trsqp, penalty or auglag on transport, reaction or reaction_diffusion at the
paper's default coefficients (β = 30; α = 30; α = 20, τ = 2), :func:`paper_gap` gives the
paper's abs / rel error (Figure 1 / text, from ``conf/experiment/trsqp_default.yaml``), the
run's errors as multiples of them, and every setting in which the run differs from the
paper's setup: the same problem and method at ``scale=paper`` with this project's defaults
(``conf/``), which are the paper's Algorithm and constants.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from runners.defaults import defaults_node
from runners.io import flatten

CONF = Path(__file__).resolve().parent.parent / "conf"
COEFFICIENTS = ("alpha", "beta", "tau", "zeta")
COMPARED = ("problem", "method", "pretraining", "budget")
NOT_SETUP = {
    "problem.name",
    "method.name",
    "problem.eval_batch",
    "problem.n_log",
    "budget.time_s",
    "budget.max_iter",
}  # bookkeeping, not the paper's setup


def _with_defaults(cls: type, yaml_node):
    """A config file's node over its dataclass's defaults (what its ``defaults:`` list
    includes; runners/defaults.py), without composing through Hydra (a run calls this from
    inside its own Hydra job)."""
    node = OmegaConf.create(OmegaConf.to_container(yaml_node))
    node.pop("defaults", None)
    return OmegaConf.merge(OmegaConf.create(defaults_node(cls)), node)


def paper_setup(problem: str, method: str) -> dict:
    """The paper's setup of ``problem`` × ``method``, flattened (``problem.alpha``, ...)."""
    from methods import METHODS
    from methods.pde.pretrain import PretrainConfig
    from problems import PROBLEMS

    train = OmegaConf.load(CONF / "train.yaml")
    node = OmegaConf.create(
        {
            "problem": _with_defaults(
                PROBLEMS[problem].Config, OmegaConf.load(CONF / "problem" / f"{problem}.yaml")
            ),
            "method": _with_defaults(
                METHODS[method].Config, OmegaConf.load(CONF / "method" / f"{method}.yaml")
            ),
            "pretraining": _with_defaults(PretrainConfig, train.pretraining),
            "budget": train.budget,
            "scale": OmegaConf.load(CONF / "scale" / "paper.yaml"),
        }
    )
    plain = OmegaConf.to_container(node, resolve=True)
    return {k: v for part in COMPARED for k, v in flatten(plain[part], f"{part}.").items()}


def _same(a, b) -> bool:
    if (
        isinstance(a, (int, float))
        and isinstance(b, (int, float))
        and not isinstance(a, bool)
        and not isinstance(b, bool)
    ):
        return float(a) == float(b)
    return a == b


def paper_gap(cfg, problem: str, method: str, final: dict) -> str | None:
    """One line: the paper's errors for this problem and method, ours as multiples of them,
    and the settings that differ from the paper's; None where the paper has no number."""
    from runners.tables import experiment_spec

    ref = experiment_spec("trsqp_default").get("paper", {}).get(problem, {}).get(method)
    if ref is None or "abs_error" not in final:
        return None
    ours = {
        k: v
        for part in COMPARED
        for k, v in flatten(OmegaConf.to_container(cfg[part], resolve=True), f"{part}.").items()
    }
    paper = paper_setup(problem, method)
    if any(
        not _same(ours.get(f"problem.{c}"), paper.get(f"problem.{c}"))
        for c in COEFFICIENTS
        if f"problem.{c}" in paper
    ):
        return None  # another coefficient: the paper's Figure 1 curves, no number here
    differ = [
        f"{k}={ours.get(k)} (paper {paper.get(k)})"
        for k in sorted(set(ours) | set(paper))
        if k not in NOT_SETUP and not _same(ours.get(k), paper.get(k))
    ]
    if not cfg.get("pretrain", True):
        differ.insert(0, "pretrain=false (paper true)")
    a, r = final["abs_error"], final["rel_error"]
    return (
        f"paper (Figure 1, {method} on {problem}): abs {ref[0]:.3g} / rel {ref[1]:.3g}; "
        f"this run: abs {a:.3g} ({a / ref[0]:.3g}x the paper's) / rel {r:.3g} "
        f"({r / ref[1]:.3g}x); settings that differ from the paper's: "
        + (", ".join(differ) if differ else "none")
    )


__all__ = ["paper_gap", "paper_setup"]

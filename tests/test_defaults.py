"""Every default in one place (runners/defaults.py): the dataclass. The YAML files under conf/
include its node and set only a method's / problem's name and what a scale sets."""

import dataclasses
from pathlib import Path

import pytest
from omegaconf import OmegaConf

import runners.setup  # noqa: F401 (stores the dataclasses' default nodes)
from methods import METHODS
from methods.pde.pretrain import PretrainConfig
from problems import PROBLEMS
from runners.defaults import RUNTIME_FIELDS, defaults_node

CONF = Path(__file__).resolve().parent.parent / "conf"
FAMILY_PROBLEM = {
    "constrained_learning": "reaction",
    "stochastic_constrained": "spring",
    "neural_dae": "tank_manifold",
    "parametric_opt": "qp",
}
FAMILY_METHOD = {
    "constrained_learning": "trsqp",
    "stochastic_constrained": "sqp_adam",
    "neural_dae": "collocation",
    "parametric_opt": "lisco",
}


def _yaml_node(path: Path, under: str | None = None):
    node = OmegaConf.load(path)
    return node[under] if under else node


def _interpolates(node, key) -> bool:
    """The value at ``key`` is, or holds, a ``${...}`` interpolation."""
    if OmegaConf.is_interpolation(node, key):
        return True
    v = node[key]
    if OmegaConf.is_dict(v):
        return any(_interpolates(v, k) for k in v)
    if OmegaConf.is_list(v):
        return any(_interpolates(v, i) for i in range(len(v)))
    return False


def _restated(node, cls) -> list[str]:
    """Keys of a raw YAML node that write a dataclass field's value out (not ``${...}``)."""
    fields = {f.name for f in dataclasses.fields(cls)}
    return [k for k in node if k in fields and not _interpolates(node, k)]


def _files():
    for name, spec in METHODS.items():
        under = "method" if name == "lisco" else None  # lisco.yaml: # @package _global_
        yield f"method/{name}.yaml", CONF / "method" / f"{name}.yaml", under, spec.Config
    for name, cls in PROBLEMS.items():
        yield f"problem/{name}.yaml", CONF / "problem" / f"{name}.yaml", None, cls.Config
    yield (
        "sqp_momentum_method.yaml",
        CONF / "sqp_momentum_method.yaml",
        None,
        METHODS["sqp_adam"].Config,
    )
    yield "train.yaml pretraining", CONF / "train.yaml", "pretraining", PretrainConfig


@pytest.mark.parametrize("label,path,under,cls", list(_files()), ids=lambda v: str(v))
def test_no_yaml_restates_a_dataclass_default(label, path, under, cls):
    """A constant written in a YAML file as well as in its dataclass could drift: the YAML
    may only interpolate (the scale's budgets), never write a default out."""
    assert _restated(_yaml_node(path, under), cls) == [], f"{label} restates defaults"


def test_the_check_sees_a_restated_default(tmp_path):
    """The test above would fail on a YAML that writes a default out."""
    p = tmp_path / "trsqp.yaml"
    p.write_text("name: trsqp\nnu: 0.8\nmax_iter: ${scale.trsqp_max_iter}\n")
    assert _restated(_yaml_node(p), METHODS["trsqp"].Config) == ["nu"]


def _compose(*overrides):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("train", overrides=list(overrides))


@pytest.mark.parametrize("name", list(METHODS))
def test_every_method_field_is_a_config_key(name):
    """Every field of a method's dataclass is in the composed ``method`` node (so
    ``method.<field>=...`` overrides it without ``+``), and nothing else is but its name."""
    spec = METHODS[name]
    cfg = _compose(f"method={name}", f"problem={FAMILY_PROBLEM[spec.family]}", "scale=paper")
    keys = set(cfg.method) - {"name"}
    fields = {f.name for f in dataclasses.fields(spec.Config)} - set(RUNTIME_FIELDS)
    assert keys == fields


@pytest.mark.parametrize("name", list(PROBLEMS))
def test_every_problem_field_is_a_config_key(name):
    cls = PROBLEMS[name]
    cfg = _compose(f"problem={name}", f"method={FAMILY_METHOD[cls.family]}", "scale=paper")
    keys = set(cfg.problem) - {"name"}
    assert keys == {f.name for f in dataclasses.fields(cls.Config)} - set(RUNTIME_FIELDS)
    assert "dtype" not in cfg.problem  # the run's precision sets it


def test_a_field_once_missing_from_the_yaml_overrides_plainly():
    """LISCO's stop_tol was a dataclass field without a YAML line (``++method.stop_tol=0``
    was needed); it is now an ordinary key, and a changed dataclass default reaches the
    composed config with no YAML edit."""
    cfg = _compose("method=lisco", "problem=qp", "method.stop_tol=0")
    assert cfg.method.stop_tol == 0
    assert cfg.method.step_scale == METHODS["lisco"].Config().step_scale
    assert cfg.pretraining.gtol == PretrainConfig().gtol
    assert cfg.pretraining.inner_maxiter == cfg.scale.pretrain_maxiter  # the scale's, kept


def test_defaults_node_refuses_a_non_config_default():
    @dataclasses.dataclass
    class Bad:
        f: object = dataclasses.field(default_factory=object)

    with pytest.raises(TypeError, match=r"Bad\.f"):
        defaults_node(Bad)


def test_defaults_node_lists_and_runtime_fields():
    @dataclasses.dataclass
    class C:
        hidden: tuple = (32, 32)
        dtype: str = "float64"
        k: int | None = None

    assert defaults_node(C) == {"hidden": [32, 32], "k": None}


@pytest.mark.parametrize(
    "problem,scale,epochs",
    [
        ("butene", "cpu", (100, 500)),
        ("butene", "paper", (20000, 100000)),
        ("spring", "smoke", (200, 200)),
        ("darcy", "cpu", (50, 200)),
    ],
)
def test_a_stochastic_problem_owns_its_budget_per_scale(problem, scale, epochs):
    """method.epochs / epochs_full_batch come from the problem class's ``epochs`` table at
    the run's scale (no scale file names a problem)."""
    cls = PROBLEMS[problem]
    assert cls.epochs[scale] == epochs
    cfg = _compose(f"problem={problem}", "method=sqp_adam", f"scale={scale}")
    assert (cfg.method.epochs, cfg.method.epochs_full_batch) == epochs
    for s in ("smoke", "cpu", "paper"):
        assert "sqp_epochs" not in OmegaConf.load(CONF / "scale" / f"{s}.yaml")


def test_a_single_run_takes_the_lower_of_the_papers_two_rates_on_its_problem():
    """``method=<m> problem=<p>`` without ``method.lr`` runs at a rate the paper ran on that
    problem (the lower of the pair its experiment sweeps); an explicit rate wins; the
    experiment's sweep lists the same two rates the problem class names."""
    from methods.stochastic.sqp_momentum import SqpMomentumConfig
    from runners.setup import problem_lr

    for problem, lr in [("spring", 1e-4), ("butene", 1e-4), ("burgers", 5e-4), ("darcy", 5e-4)]:
        for method in ("sqp_adam", "adam_unc", "sqp_heavyball"):
            assert _compose(f"problem={problem}", f"method={method}").method.lr == lr
        swept = OmegaConf.load(CONF / "experiment" / f"sqp_momentum_{problem}.yaml")
        pair = str(swept.hydra.sweeper.params["method.lr"]).split(",")
        assert sorted(map(float, pair)) == sorted(PROBLEMS[problem].learning_rates)
    assert _compose("problem=burgers", "method=adam_con", "method.lr=1e-3").method.lr == 1e-3
    assert problem_lr("not_a_problem") == SqpMomentumConfig.lr


def test_a_scale_the_problem_does_not_name_gets_the_default_epochs():
    from problems.stochastic.base import DEFAULT_EPOCHS
    from runners.setup import problem_epochs

    assert problem_epochs("butene", "my_cluster", 0) == DEFAULT_EPOCHS == 200
    assert problem_epochs("not_a_problem", "cpu", 1) == DEFAULT_EPOCHS
    assert problem_epochs("butene", "cpu", 1) == 500

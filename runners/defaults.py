"""Every default in one place: a method's, a problem's and pretraining's dataclass.

Hydra sees each dataclass's defaults as a config node in its ConfigStore, stored here
under a top-level name:

    method_defaults_<method>     from ``methods.METHODS[<method>].Config``
    problem_defaults_<problem>   from ``problems.PROBLEMS[<problem>].Config``
    pretraining_defaults         from ``methods.pde.pretrain.PretrainConfig``

A YAML file in ``conf/method`` or ``conf/problem`` includes its node first and then sets only
what the dataclass cannot know: its ``name`` and the values a scale sets
(``${scale.<key>}``)::

    defaults:
      - /method_defaults_trsqp@_here_
      - _self_
    name: trsqp
    max_iter: ${scale.trsqp_max_iter}

So a new constant is written once, in the dataclass (with the paper's symbol in its
comment), and is at once a config key (``method.<field>=...`` on the command line, shown by
``--cfg job``). ``tests/test_defaults.py`` checks that no YAML file restates a default.

A dataclass field named ``dtype`` is not a config key: the run's ``precision`` sets it.
Methods and problems registered by a plugin (``plugins=[module]``) get their nodes when the
plugin is loaded before composition (:func:`store_defaults` again); a plugin's YAML may
instead write its values out.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from hydra.core.config_store import ConfigStore

RUNTIME_FIELDS = ("dtype",)  # set by the run (precision), not a config key


def defaults_node(cls: type) -> dict[str, Any]:
    """The defaults of dataclass ``cls`` as a plain dict (tuples as lists), without the
    fields in :data:`RUNTIME_FIELDS` and those without a default."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if not f.init or f.name in RUNTIME_FIELDS:
            continue
        if f.default is not dataclasses.MISSING:
            v = f.default
        elif f.default_factory is not dataclasses.MISSING:
            v = f.default_factory()
        else:
            continue
        out[f.name] = _plain(v, f"{cls.__name__}.{f.name}")
    return out


def _plain(v: Any, where: str) -> Any:
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    if isinstance(v, (list, tuple)):
        return [_plain(x, where) for x in v]
    if isinstance(v, dict):
        return {str(k): _plain(x, where) for k, x in v.items()}
    raise TypeError(f"{where}: default {v!r} is not a config value (bool, number, str, list)")


def store_defaults() -> None:
    """Store the defaults node of every registered method and problem, and pretraining's
    (again after a plugin registered more)."""
    from methods import METHODS
    from methods.pde.pretrain import PretrainConfig
    from problems import PROBLEMS

    cs = ConfigStore.instance()
    for name, spec in METHODS.items():
        cs.store(name=f"method_defaults_{name}", node=defaults_node(spec.Config))
    for name, cls in PROBLEMS.items():
        cs.store(name=f"problem_defaults_{name}", node=defaults_node(cls.Config))
    cs.store(name="pretraining_defaults", node=defaults_node(PretrainConfig))


__all__ = ["RUNTIME_FIELDS", "defaults_node", "store_defaults"]

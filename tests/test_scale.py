"""Running at scale: seeds vectorized, checkpoints and resume after a stop signal.

The runs are in-process (``runners.train.run`` on a composed config) with tiny networks,
so the comparisons cost seconds, not subprocess start-ups.
"""

import json
import os
import signal
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from test_cli import TINY

from runners import train as train_mod

CACHE = Path(__file__).resolve().parent.parent / ".jax_cache"
# test_cli's tiny PDE run, with shorter chunks (more checkpoints) and no figures
TINY_PINN = [a for a in TINY if not a.startswith(("method.", "log_every", "progress"))] + [
    "log_every=10",
    "progress=false",
    "figures=false",
]
TINY_SPRING = [
    "problem=spring",
    "problem.width=8",
    "problem.depth=1",
    "method=sqp_adam",
    "method.epochs=30",
    "log_every=10",
    "progress=false",
    "figures=false",
]


def compose_cfg(tmp, *overrides):
    with initialize_config_dir(config_dir=str(train_mod.CONF_DIR), version_base="1.3"):
        return compose(
            "train", overrides=[f"results_dir={tmp}", f"jax_cache_dir={CACHE}", *overrides]
        )


def run(tmp, out, *overrides):
    return train_mod.run(compose_cfg(tmp, *overrides), Path(out))


COMPARED = (
    "abs_error",
    "rel_error",
    "max_constraint_violation",
    "pretrain_c_sq",
    "total",
    "test_mse",
    "max_abs_c",
)


# float64 (both defaults are float32): a vmapped program may round differently from a
# single one, and in float32 ‖c‖∞ ~ 1e-5 is mostly rounding
@pytest.mark.parametrize(
    "case",
    [("method=trsqp", *TINY_PINN, "precision=float64"), (*TINY_SPRING, "precision=float64")],
    ids=["trsqp", "sqp_adam"],
)
def test_vectorized_seeds_match_separate_runs(tmp_path, case):
    recs = run(tmp_path, tmp_path / "vec", *case, "seed=3", "seeds=2")
    assert [r["seed"] for r in recs] == [3, 4]
    assert all(r["vectorized_seeds"] == 2 for r in recs)
    for r in recs:
        single = run(tmp_path, tmp_path / f"single{r['seed']}", *case, f"seed={r['seed']}")
        # the same config hash as the separate run: result sets compare run by run
        assert r["config_hash"] == single["config_hash"]
        assert r["iterations"] == single["iterations"] and r["status"] == single["status"]
        for k in COMPARED:
            if k in single:
                assert r[k] == pytest.approx(single[k], rel=1e-5, abs=1e-9), k
        assert (Path(r["run_dir"]) / "params.msgpack").is_file()
        from omegaconf import OmegaConf

        saved = OmegaConf.load(Path(r["run_dir"]) / ".hydra" / "config.yaml")
        assert saved.seed == r["seed"] and saved.seeds == 1  # the seed's own config
    # seed 3 and seed 4 are different runs (the mini-batch stream / the data differ)
    key = "abs_error" if "abs_error" in recs[0] else "test_mse"
    assert recs[0][key] != recs[1][key]
    # rerunning skips the finished seeds
    again = run(tmp_path, tmp_path / "vec", *case, "seed=3", "seeds=2")
    assert [a["finished_at"] for a in again] == [r["finished_at"] for r in recs]


def _stop_after(monkeypatch, phase: str, chunks: int):
    """Send this process a real SIGTERM once ``phase`` has run ``chunks`` chunks."""
    original = train_mod.Progress.__call__

    def call(self, state, rows):
        original(self, state, rows)
        if self.phase == phase and self.chunks == chunks + 1:  # + the initial row
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(train_mod.Progress, "__call__", call)


@pytest.mark.parametrize("phase", ["pretrain", "train"])
def test_interrupted_run_resumes_to_the_same_parameters(tmp_path, monkeypatch, phase):
    case = ("method=trsqp", *TINY_PINN, "seed=1", "checkpoint_every=1")
    full = run(tmp_path, tmp_path / "runs" / "full", *case)
    with monkeypatch.context() as m:
        _stop_after(m, phase, 2)
        with pytest.raises(SystemExit) as stop:
            run(tmp_path, tmp_path / "runs" / "a", *case)
    assert stop.value.code == 143
    meta = json.loads((tmp_path / "runs" / "a" / "checkpoint" / "checkpoint.json").read_text())
    assert meta["phase"] == phase and 0 < meta["iteration"] < 40
    assert not (tmp_path / "runs" / "a" / "metrics.json").exists()
    # a single run's rerun gets a new folder; it finds the interrupted one and continues it
    resumed = run(tmp_path, tmp_path / "runs" / "b", *case)
    assert not (tmp_path / "runs" / "a" / "checkpoint").exists()
    a = (tmp_path / "runs" / "full" / "params.msgpack").read_bytes()
    b = (tmp_path / "runs" / "b" / "params.msgpack").read_bytes()
    assert a == b  # bit for bit
    assert resumed["iterations"] == full["iterations"]
    assert resumed["abs_error"] == full["abs_error"]
    assert resumed["pretrain_iterations"] == full["pretrain_iterations"]
    import pandas as pd

    h_full = pd.read_csv(tmp_path / "runs" / "full" / "history.csv")
    h_res = pd.read_csv(tmp_path / "runs" / "b" / "history.csv")
    assert list(h_full["iteration"]) == list(h_res["iteration"])
    assert list(h_full["phase"]) == list(h_res["phase"])


def test_vectorized_seeds_resume_after_a_stop(tmp_path, monkeypatch):
    case = (*TINY_SPRING, "seed=0", "seeds=2", "checkpoint_every=0")
    full = run(tmp_path, tmp_path / "full", *case)
    with monkeypatch.context() as m:
        _stop_after(m, "train", 3)
        with pytest.raises(SystemExit):
            run(tmp_path, tmp_path / "sweep", *case)
    resumed = run(tmp_path, tmp_path / "sweep", *case)
    for f, r in zip(full, resumed):
        assert (Path(f["run_dir"]) / "params.msgpack").read_bytes() == (
            Path(r["run_dir"]) / "params.msgpack"
        ).read_bytes()


def test_a_checkpoint_of_another_shape_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    from runners.checkpoint import Checkpoint

    case = ("method=trsqp", *TINY_PINN, "checkpoint_every=1")
    with monkeypatch.context() as m:
        _stop_after(m, "train", 1)
        with pytest.raises(SystemExit):
            run(tmp_path, tmp_path / "s", *case)
    ck = Checkpoint(tmp_path / "s", "x")
    meta = json.loads((ck.dir / "checkpoint.json").read_text())
    import numpy as np
    from flax import serialization

    # a state of another run (other shapes) under this run's config hash
    blob = serialization.msgpack_serialize({"0": np.zeros(3)})
    (ck.dir / meta["state_file"]).write_bytes(blob)
    with pytest.raises(SystemExit) as e:
        run(tmp_path, tmp_path / "s", *case)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: checkpoint:") and "does not match" in err


def test_joblib_launcher_defaults_to_half_the_cores(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)), raising=False)
    with initialize_config_dir(config_dir=str(train_mod.CONF_DIR), version_base="1.3"):
        c = compose("train", overrides=["hydra/launcher=joblib"], return_hydra_config=True)
    assert c.hydra.launcher.n_jobs == 8 and "Joblib" in c.hydra.launcher._target_
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert train_mod.default_n_jobs() == 2
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)
    assert train_mod.default_n_jobs() == 1


def test_lisco_training_resumes_to_the_same_networks(tmp_path, monkeypatch):
    import jax

    case = (
        "method=lisco",
        "problem=qp",
        "problem.n_test=5",
        "method.hidden=[16]",
        "method.predictor_steps=60",
        "method.solver_steps=60",
        "method.predictor_batch=32",
        "method.solver_batch=32",
        "log_every=10",
        "checkpoint_every=2",
        "progress=false",
        "figures=false",
    )
    try:
        run(tmp_path, tmp_path / "runs" / "full", *case)
        with monkeypatch.context() as m:
            _stop_after(m, "solver", 3)
            with pytest.raises(SystemExit):
                run(tmp_path, tmp_path / "runs" / "a", *case)
        meta = json.loads((tmp_path / "runs" / "a" / "checkpoint" / "checkpoint.json").read_text())
        assert meta["phase"] == "solver" and meta["iteration"] == 30
        rec = run(tmp_path, tmp_path / "runs" / "b", *case)
    finally:
        jax.config.update("jax_enable_x64", True)  # lisco runs in float32; conftest's x64
    assert rec["predictor_steps_done"] == 60 and rec["solver_steps_done"] == 60
    import numpy as np
    from flax import serialization

    for f in ("predictor.msgpack", "solver.msgpack"):
        a, b = (
            jax.tree.leaves_with_path(
                serialization.msgpack_restore((tmp_path / "runs" / r / f).read_bytes())
            )
            for r in ("full", "b")
        )
        assert [k for k, _ in a] == [k for k, _ in b]
        for (k, x), (_, y) in zip(a, b):
            assert np.array_equal(x, y), (f, k)  # bit for bit


@pytest.mark.parametrize(
    "override, field",
    [("seeds=0", "seeds"), ("seeds=two", "seeds"), ("checkpoint_every=-1", "checkpoint_every")],
)
def test_bad_seeds_or_checkpoint_interval_is_a_one_line_error(tmp_path, override, field):
    from runners.setup import ConfigError, resolve

    with pytest.raises(ConfigError) as e:
        resolve(compose_cfg(tmp_path, override))
    msg = str(e.value)
    assert msg.startswith(f"{field}:") and "\n" not in msg


def test_vectorized_driver_stops_each_seed_on_its_own():
    """A toy stepper x <- 10 x in float32: the seed started at 1 overflows after 38 steps
    (status diverged, the last finite iterate kept), the seed started at 0 runs to the cap;
    each seed ends as its separate run does."""
    import jax
    import jax.numpy as jnp

    from methods.driver import Method, run_chunked, tree_all_finite

    m = Method(
        name="toy",
        init=None,
        step=lambda s, d: {"x": s["x"] * 10, "k": s["k"] + 1},
        done=lambda s: jnp.array(False),
        finite=lambda s: tree_all_finite(s["x"]),
        converged=lambda s: jnp.array(False),
        log=lambda s, d: {"x": s["x"]},
        params=lambda s: s["x"],
        iterations=lambda s: s["k"],
        progress=lambda s: s["k"],
        progress_total=100,
    )
    start = lambda x: {"x": jnp.float32(x), "k": jnp.int32(0)}
    both = jax.tree.map(lambda *a: jnp.stack(a), start(1.0), start(0.0))
    r = run_chunked(m, both, None, max_steps=100, log_every=16, seeds=2)
    assert r.status == ["diverged", "max_iter"]
    for i, x0 in enumerate((1.0, 0.0)):
        one = run_chunked(m, start(x0), None, max_steps=100, log_every=16)
        assert one.status == r.status[i]
        assert int(r.state["k"][i]) == int(one.state["k"]) and float(r.state["x"][i]) == float(
            one.state["x"]
        )
    assert int(r.state["k"][0]) == 38 and int(r.state["k"][1]) == 100
    assert [row["seed_index"] for row in r.history[:2]] == [0, 1]


@pytest.mark.parametrize("method", ["trsqp", "penalty", "auglag"])
def test_float32_runs_complete_with_their_dtype_recorded(tmp_path, method):
    """The authors' code runs float32 throughout: every trSQP-PINN method must run so too
    (pretraining included), with finite results and the precision in its record."""
    import jax
    import numpy as np
    from flax import serialization

    try:
        rec = run(tmp_path, tmp_path / "r", f"method={method}", *TINY_PINN, "precision=float32")
    finally:
        jax.config.update("jax_enable_x64", True)  # conftest's setting for the other tests
    assert rec["precision"] == "float32" and rec["status"] in ("converged", "max_iter")
    for k in ("abs_error", "rel_error", "max_constraint_violation", "pretrain_c_sq"):
        assert np.isfinite(rec[k]), k
    assert 0 < rec["abs_error"] < 2
    stored = serialization.msgpack_restore((tmp_path / "r" / "params.msgpack").read_bytes())
    leaves = jax.tree.leaves(stored)
    assert leaves and all(np.asarray(x).dtype == np.float32 for x in leaves)


@pytest.mark.parametrize(
    "overrides, expected",
    [
        (("problem=spring", "method=sqp_adam"), "float32"),  # the authors' PyTorch float32
        (("problem=darcy", "method=adam_unc"), "float32"),
        (("problem=reaction", "method=trsqp"), "float32"),  # the authors' JAX float32
        (("problem=population", "method=collocation"), "float64"),
        (("problem=spring", "method=sqp_adam", "precision=float64"), "float64"),
        (("problem=qp", "method=lisco"), "float32"),  # method=lisco sets it
    ],
)
def test_precision_auto_resolves_per_family(tmp_path, overrides, expected):
    from runners.setup import resolve

    cfg = compose_cfg(tmp_path, *overrides)
    assert resolve(cfg).precision == expected
    # the hash is of what runs: auto and its resolved value are the same configuration
    explicit = compose_cfg(tmp_path, *overrides, f"precision={expected}")
    assert train_mod.config_hash(cfg) == train_mod.config_hash(explicit)


def test_bad_precision_is_a_one_line_error(tmp_path):
    from runners.setup import ConfigError, resolve

    with pytest.raises(ConfigError) as e:
        resolve(compose_cfg(tmp_path, "precision=half"))
    msg = str(e.value)
    assert msg.startswith("precision:") and "auto" in msg and "\n" not in msg


def test_a_failing_figure_does_not_lose_the_run(tmp_path, monkeypatch, caplog):
    """A stochastic problem whose prediction figure raises: metrics.json and params are
    written first, the run returns its record, and the failure is one warning naming the
    figure; the other figure is still drawn."""
    import logging

    from runners import figures

    def broken(*args, **kwargs):
        raise KeyError("no panel for this problem")

    monkeypatch.setattr(figures, "prediction_figure", broken)
    with caplog.at_level(logging.WARNING, logger="runners"):
        rec = run(tmp_path, tmp_path / "run", *TINY_SPRING[:-1], "figures=true")
    out = Path(rec["run_dir"])
    assert json.loads((out / "metrics.json").read_text())["status"] == rec["status"]
    assert (out / "params.msgpack").is_file() and (out / "losses.png").is_file()
    assert not (out / "prediction.png").exists()
    assert any(
        "prediction.png not drawn" in r.getMessage() and "KeyError" in r.getMessage()
        for r in caplog.records
    )

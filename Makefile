# Two commands set everything up:  `make demo`  and  `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
SCALE  ?= smoke

.PHONY: install demo test test-slow lint bench tables table-trsqp table-trsqp-precision table-trsqp-baseline-gap table-trsqp-sensitivity table-sqp-momentum table-neural-dae table-lisco table-lisco-500steps table-lisco-eval reproduce clean-results

$(BIN)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]' --config-settings editable_mode=compat
	@touch $@

install: $(BIN)/.installed

# The demo: trsqp, the paper's Algorithm 3, on reaction (α = 30) in about a minute on 2 CPU
# cores, ending with how far it is from the paper's figure and which settings differ: the
# paper's pretraining (2e4 L-BFGS iterations, unweighted IC), limited-memory SR1 (10 pairs;
# the paper's is dense, ~0.2 s per iteration here) run to its stopping test, in float32 as
# the authors' code and precision=auto (float64, this project's option, needs ~10^4
# iterations, ~2.5 min), on the smoke evaluation grid.
DEMO ?= precision=float32 scale.trsqp_memory=10 scale.trsqp_max_iter=2000 \
  scale.pretrain_maxiter=20000 scale.pretrain_ic_weight=1.0
demo: install  ## trsqp on reaction in about a minute, against the paper's figure
	$(BIN)/python -m runners.train scale=$(SCALE) $(DEMO)

test: install  ## fast test suite (CI): ruff check, ruff format --check, pytest
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -q

test-slow: install  ## paper-scale checks
	$(BIN)/python -m pytest -q -m slow

lint: install  ## ruff check and ruff format --check (`ruff format .` fixes the second)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: install  ## performance figures -> results/bench/*.json, results/tables/bench.md
	$(BIN)/python -m runners.bench

tables: install  ## every metrics.json under results/ -> results/tables/summary.{md,csv,tex}
	$(BIN)/python -m runners.tables

# The paper pipelines: runners/reproduce.py holds each one's sweeps, tables and figures (its
# docstring and `python -m runners.reproduce --help`); `make <target> ARGS=...` passes Hydra
# overrides to every run, e.g. ARGS=scale.trsqp_memory=10 (limited-memory SR1: a paper-budget
# trsqp run in minutes instead of an hour) or ARGS=seed=1. These variables, when given, choose
# subsets (defaults in runners.reproduce.SETTINGS):
#   TRSQP_TABLES, TRSQP_OPTIONS (this project's trsqp options as extra rows; empty: none),
#   TRSQP_FIG1 (Figure 1 panels; empty: none), FIG1_VALUES / FIG1_TAU_VALUES (e.g. -30,1,30 /
#   2,6,10: fewer coefficients than the paper's 12 / 5), GAP_PROBLEMS, TRSQP_SENS,
#   SQP_PROBLEMS, SQP_SEEDS, DAE_TABLES, DAE_ABLATIONS, LISCO_PROBLEMS, LISCO_INSTANCES.
# Every sweep is resumable: finished runs are skipped on a rerun; `--dry-run` lists them:
#   $(BIN)/python -m runners.reproduce trsqp --scale paper --dry-run
SETTINGS := TRSQP_TABLES TRSQP_OPTIONS TRSQP_FIG1 FIG1_VALUES FIG1_TAU_VALUES GAP_PROBLEMS \
  TRSQP_SENS SQP_PROBLEMS SQP_SEEDS DAE_TABLES DAE_ABLATIONS LISCO_PROBLEMS LISCO_INSTANCES
SET = $(foreach v,$(SETTINGS),$(if $(filter undefined,$(origin $(v))),,--set '$(v)=$($(v))'))
REPRODUCE = $(BIN)/python -m runners.reproduce

# trSQP-PINN Tables 1-3 with the paper's values beside ours -> results/tables/trsqp-<scale>/;
# this project's options (TRSQP_OPTIONS) as an extra column of trsqp_default ("trsqp + SOC
# (this project)") and an extra SR1 row of Table 1; the Figure 1 sweeps and plots; heatmaps
# of Figure 2 and Figures 4-6 -> results/figures/
table-trsqp: install
	$(REPRODUCE) trsqp --scale $(SCALE) $(SET) -- $(ARGS)

# float32 (the authors' code) vs float64 (ours) for trsqp, penalty and auglag at the default
# coefficients -> results/tables/trsqp-<scale>/trsqp_precision_{errors,pretraining}.*
table-trsqp-precision: install
	$(REPRODUCE) trsqp-precision --scale $(SCALE) $(SET) -- $(ARGS)

# the trSQP-PINN baselines, one difference at a time towards the authors' code (float32;
# their pretraining's stop; strong-Wolfe line search; their ALM multiplier step; no
# pretraining; their SciPy L-BFGS-B) -> results/tables/trsqp-<scale>/trsqp_baseline_gap.*
table-trsqp-baseline-gap: install
	$(REPRODUCE) trsqp-baseline-gap --scale $(SCALE) $(SET) -- $(ARGS)

# Figures 3 and 7-9: errors against N, M_pretrain, depth and width for trsqp, penalty and
# auglag on the three PDEs -> results/tables/trsqp-<scale>/, results/figures/
table-trsqp-sensitivity: install
	$(REPRODUCE) trsqp-sensitivity --scale $(SCALE) $(SET) -- $(ARGS)

# SQP momentum paper (float32, as the authors' code): per problem 4 methods x 2 learning
# rates x SQP_SEEDS vectorized seeds and a full-batch run each; sqp_adam in both forms (the
# paper's Algorithm 3 and the ICLR predecessor's); butene also with this project's scaling
# -> results/tables/sqp_momentum-<scale>.*, results/figures/sqp_momentum-<scale>/*.png
table-sqp-momentum: install
	$(REPRODUCE) sqp-momentum --scale $(SCALE) $(SET) -- $(ARGS)

# Neural DAE paper: the tank-manifold ablation (DAE_ABLATIONS) and the sequential baseline,
# the bioreactor, predator-prey with / without the Lyapunov constraint
# -> results/tables/neural_dae-<scale>/; every run folder has trajectories.png
table-neural-dae: install
	$(REPRODUCE) neural-dae --scale $(SCALE) $(SET) -- $(ARGS)

# LISCO paper Tables 1-5 and the convergence figure: LISCO with / without predictor, IPOPT,
# OSQP and jaxopt's BoxOSQP on the QP, on LISCO_PROBLEMS x LISCO_INSTANCES (each cell the
# mean ± std over instances) -> results/tables/lisco-<scale>/, results/figures/
table-lisco: install
	$(REPRODUCE) lisco --scale $(SCALE) $(SET) -- $(ARGS)

# Table 3's other reading ("LISCO is evaluated for 500 steps"): table-lisco's networks with
# every test point run all 500 steps -> results/tables/lisco_500steps-<scale>/
table-lisco-500steps: install
	$(REPRODUCE) lisco-500steps --scale $(SCALE) $(SET) -- $(ARGS)

# table-lisco's networks evaluated again (no training) at today's evaluation defaults, with
# the baselines on the same test points -> results/tables/lisco_eval-<scale>/
table-lisco-eval: install
	$(REPRODUCE) lisco-eval --scale $(SCALE) $(SET) -- $(ARGS)

# Every paper's tables and figures, then results/REPORT.md and REPORT.html (ours beside the
# paper's, ratio, ✗ where ours is > 2x worse, missing runs named, environment, the wall time
# of each pipeline). A failing pipeline does not stop the others; the report says what is
# missing and make exits non-zero. SCALE=smoke is a pipeline check in < 30 min on 2 cores
# (fewer, shorter runs: runners.reproduce.SMOKE); SCALE=cpu|paper run everything as configured.
reproduce: install
	$(REPRODUCE) all --scale $(SCALE) $(SET) -- $(ARGS)

clean-results:
	rm -rf results/runs results/sweeps results/bench results/tables results/figures

# Two commands set everything up:  `make demo`  and  `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
SCALE  ?= smoke

.PHONY: install demo test test-slow lint bench tables table-trsqp table-trsqp-precision table-trsqp-baseline-gap table-trsqp-sensitivity table-sqp-momentum table-neural-dae table-lisco table-lisco-500steps reproduce clean-results

$(BIN)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]' --config-settings editable_mode=compat
	@touch $@

install: $(BIN)/.installed

# The demo: trsqp, the paper's Algorithm 3, on reaction (α = 30) in about a minute on 2 CPU
# cores, ending with how far it is from the paper's figure and which settings differ: the
# paper's pretraining (2e4 L-BFGS iterations, unweighted IC), limited-memory SR1 (10 pairs;
# the paper's is dense, ~0.2 s per iteration here) run to its stopping test, in float32 as
# the authors' code (float64, this project's default, needs ~10^4 iterations, ~2.5 min),
# on the smoke evaluation grid.
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

# trSQP-PINN paper tables and figures: each experiment is a resumable Hydra sweep, then its
# table with the paper's values beside ours -> results/tables/trsqp-<scale>/<table>.{md,csv,tex};
# Figure 2 heatmaps, Figures 4-6 heatmaps (PINN on transport per μ; penalty / auglag with and
# without pretraining; the three methods on reaction at α = -20..-50, from the Figure 1
# sweep) and Figure 1 error-vs-coefficient plots -> results/figures/.
# ARGS go to every run, e.g. ARGS=scale.trsqp_memory=10 (limited-memory SR1: a paper-budget
# trsqp run in minutes instead of an hour) or ARGS=seed=1.
# FIG1_VALUES / FIG1_TAU_VALUES (e.g. -30,1,30 / 2,6,10) run Figure 1 at fewer coefficients
# than the paper's 12 (β, α) / 5 (τ).
TRSQP_TABLES ?= trsqp_default trsqp_hessian trsqp_objective trsqp_pinn trsqp_pretrain
# this project's trsqp options, run as an extra column of trsqp_default ("trsqp + SOC (this
# project)") and an extra row of Table 1 (SR1 only); empty: none
TRSQP_OPTIONS ?= method.second_order_correction=true
TRSQP_FIG1 ?= transport_beta reaction_alpha reaction_diffusion_alpha reaction_diffusion_tau
FIG1_VALUES ?=
FIG1_TAU_VALUES ?=
table-trsqp: install
	@for e in $(TRSQP_TABLES) $(addprefix trsqp_fig1_,$(TRSQP_FIG1)); do \
	  k=$${e##*_}; v="$(FIG1_VALUES)"; [ "$$k" = tau ] && v="$(FIG1_TAU_VALUES)"; \
	  case $$e in trsqp_fig1_*) [ -n "$$v" ] && v="problem.$$k=$$v" ;; *) v="" ;; esac; \
	  $(BIN)/python -m runners.train -m experiment=$$e scale=$(SCALE) sweep_name=$$e-$(SCALE) \
	    progress=false $$v $(ARGS) || exit 1; \
	  if [ $$e = trsqp_hessian ] && [ -n "$(TRSQP_OPTIONS)" ]; then \
	    $(BIN)/python -m runners.train -m experiment=$$e scale=$(SCALE) sweep_name=$$e-$(SCALE) \
	      progress=false method.hessian=sr1 $(TRSQP_OPTIONS) $(ARGS) || exit 1; fi; \
	  if [ $$e = trsqp_default ] && [ -n "$(TRSQP_OPTIONS)" ]; then \
	    $(BIN)/python -m runners.train -m experiment=$$e scale=$(SCALE) sweep_name=$$e-$(SCALE) \
	      progress=false method=trsqp $(TRSQP_OPTIONS) $(ARGS) || exit 1; fi; \
	  $(BIN)/python -m runners.tables experiment=$$e --results results/sweeps/$$e-$(SCALE) \
	    --out results/tables/trsqp-$(SCALE) || exit 1; \
	done
	$(BIN)/python -m runners.figures heatmaps --results results/sweeps/trsqp_default-$(SCALE) \
	  --cols variant --out results/figures/trsqp_heatmaps-$(SCALE).png
	$(BIN)/python -m runners.figures heatmaps --results results/sweeps/trsqp_pinn-$(SCALE) \
	  --where problem=transport --cols method.mu --out results/figures/trsqp_fig4_pinn-$(SCALE).png
	$(BIN)/python -m runners.figures heatmaps --results results/sweeps/trsqp_pretrain-$(SCALE) \
	  --where problem=reaction,reaction_diffusion --cols method,pretrain \
	  --out results/figures/trsqp_fig5_pretrain-$(SCALE).png
	@d=results/sweeps/trsqp_fig1_reaction_alpha-$(SCALE); if [ -d $$d ]; then \
	  $(BIN)/python -m runners.figures heatmaps --results $$d --rows problem.alpha \
	    --cols variant --where problem.alpha=-20,-30,-40,-50 --out results/figures/trsqp_fig6_reaction-$(SCALE).png \
	    || echo "Figure 6: no runs at α = -20..-50 in $$d: skipped"; \
	  else echo "Figure 6 needs the Figure 1 reaction sweep ($$d): skipped"; fi
	@for f in $(TRSQP_FIG1); do \
	  $(BIN)/python -m runners.figures sweep --results results/sweeps/trsqp_fig1_$$f-$(SCALE) \
	    --x problem.$${f##*_} --experiment trsqp_fig1_$$f \
	    --out results/figures/trsqp_fig1_$$f-$(SCALE).png || exit 1; \
	done

# trSQP-PINN precision experiment: float32 (the authors' code) vs float64 (ours) for trsqp,
# penalty and auglag at the default coefficients -> results/tables/trsqp-<scale>/
# trsqp_precision_{errors,pretraining}.{md,csv,tex}
table-trsqp-precision: install
	$(BIN)/python -m runners.train -m experiment=trsqp_precision scale=$(SCALE) \
	  sweep_name=trsqp_precision-$(SCALE) progress=false $(ARGS)
	$(BIN)/python -m runners.tables experiment=trsqp_precision \
	  --results results/sweeps/trsqp_precision-$(SCALE) --out results/tables/trsqp-$(SCALE)

# trSQP-PINN baselines, one difference at a time towards the authors' code (float32; their
# pretraining's stop; strong-Wolfe line search; their ALM multiplier step, auglag only;
# float32 without pretraining, beside Table 3's left half; their SciPy L-BFGS-B, with and
# without pretraining, and with their ALM step) -> results/tables/trsqp-<scale>/
# trsqp_baseline_gap.{md,csv,tex}. GAP_PROBLEMS picks the problems.
GAP_PROBLEMS ?= transport,reaction,reaction_diffusion
table-trsqp-baseline-gap: install
	@set -e; for row in "float32|" "pretraining stopped at 306|pretraining.inner_maxiter=306" \
	  "strong Wolfe, maxls 20|pretraining.linesearch=zoom pretraining.max_linesearch_steps=20 ++method.linesearch=zoom ++method.max_linesearch_steps=20" \
	  "ALM step 2mu|method=auglag ++method.multiplier_update=authors_code" \
	  "no pretraining|pretrain=false budget.time_s=300" \
	  "SciPy L-BFGS-B|method.solver=scipy pretraining.solver=scipy" \
	  "SciPy L-BFGS-B + ALM step 2mu|method=auglag method.solver=scipy pretraining.solver=scipy ++method.multiplier_update=authors_code" \
	  "SciPy L-BFGS-B, no pretraining|pretrain=false method.solver=scipy budget.time_s=300" \
	  "SciPy L-BFGS-B, our pretraining|method.solver=scipy" \
	  "SciPy L-BFGS-B, float64|precision=float64 method.solver=scipy pretraining.solver=scipy budget.time_s=300"; do \
	  tag="$${row%%|*}"; extra="$${row#*|}"; \
	  $(BIN)/python -m runners.train -m experiment=trsqp_baseline_gap scale=$(SCALE) \
	    sweep_name=trsqp_baseline_gap-$(SCALE) progress=false problem=$(GAP_PROBLEMS) \
	    "tag='$$tag'" $$extra $(ARGS); \
	done
	$(BIN)/python -m runners.tables experiment=trsqp_baseline_gap \
	  --results results/sweeps/trsqp_baseline_gap-$(SCALE) --out results/tables/trsqp-$(SCALE)

# trSQP-PINN sensitivity, Figures 3 and 7-9: errors against N, M_pretrain, depth and width for
# trsqp, penalty and auglag on the three PDEs -> results/tables/trsqp-<scale>/trsqp_fig<k>_<x>.md
# and results/figures/trsqp_fig<k>_<x>-<scale>.png. TRSQP_SENS picks the figures.
TRSQP_SENS ?= fig3_n:problem.n_data fig7_mpretrain:problem.m_pretrain fig8_depth:problem.depth \
  fig9_width:problem.width
table-trsqp-sensitivity: install
	@for f in $(TRSQP_SENS); do \
	  e=trsqp_$${f%%:*}; x=$${f#*:}; \
	  $(BIN)/python -m runners.train -m experiment=$$e scale=$(SCALE) sweep_name=$$e-$(SCALE) \
	    progress=false $(ARGS) || exit 1; \
	  $(BIN)/python -m runners.tables experiment=$$e --results results/sweeps/$$e-$(SCALE) \
	    --out results/tables/trsqp-$(SCALE) || exit 1; \
	  $(BIN)/python -m runners.figures sweep --results results/sweeps/$$e-$(SCALE) --x $$x \
	    --experiment $$e --out results/figures/$$e-$(SCALE).png || exit 1; \
	done

# SQP momentum paper (float32, as the authors' code: precision=auto): per problem, 4 methods
# x 2 learning rates x SQP_SEEDS seeds (one
# vmapped program per method and rate: seeds=N) and 1 full-batch run per method and rate,
# one resumable sweep folder per scale. sqp_adam runs in both forms: the paper's Algorithm 3
# (the default) and the ICLR-2025 predecessor's (method.variant=iclr, its own rows). Butene
# also runs sqp_adam and adam_unc with this project's scaled inputs/outputs (extra rows).
# Then the table of final losses (mean ± std over seeds) ->
# results/tables/sqp_momentum-<scale>.{md,csv,tex}, loss curves and held-out predictions ->
# results/figures/sqp_momentum-<scale>/*.png
SQP_PROBLEMS ?= spring butene burgers darcy
SQP_SEEDS ?= 5
SQP_SCALED = method=sqp_adam,adam_unc problem.normalize_inputs=true problem.normalize_outputs=true
table-sqp-momentum: install
	@for p in $(SQP_PROBLEMS); do \
	  for form in "" "method=sqp_adam method.variant=iclr" \
	      $$( [ $$p = butene ] && echo "SCALED" ); do \
	    [ "$$form" = SCALED ] && form="$(SQP_SCALED)"; \
	    for extra in "seed=0 seeds=$(SQP_SEEDS)" "seed=0 method.full_batch=true"; do \
	      $(BIN)/python -m runners.train -m experiment=sqp_momentum_$$p scale=$(SCALE) \
	        sweep_name=sqp_momentum-$(SCALE) progress=false $$form $$extra $(ARGS) || exit 1; \
	    done; \
	  done; \
	done
	$(BIN)/python -m runners.tables --results results/sweeps/sqp_momentum-$(SCALE) \
	  --out results/tables --name sqp_momentum-$(SCALE)
	$(BIN)/python -m runners.figures curves --results results/sweeps/sqp_momentum-$(SCALE) \
	  --out-dir results/figures/sqp_momentum-$(SCALE)
	$(BIN)/python -m runners.figures predictions --results results/sweeps/sqp_momentum-$(SCALE) \
	  --out-dir results/figures/sqp_momentum-$(SCALE)

# Neural DAE paper: (a) tank-manifold ablation A-D and R (A + exact-Hessian refinement),
# (b) bioreactor simultaneous vs sequential, x(t0) free and fixed, (c) predator-prey with /
# without the Lyapunov constraint; the sequential baseline on all three problems; at the
# spec's full settings (the problems are small: SCALE only sets the sequential method's
# epochs) -> results/tables/neural_dae-<scale>/neural_dae_<exp>.{md,csv,tex}; every run
# folder has trajectories.png (constrained inference and simulation of the test ICs).
# DAE_ABLATIONS: the tank-manifold ablation letters to run (D, the exact Hessian, about a
# minute on an idle core).
DAE_TABLES ?= neural_dae_tank neural_dae_bioreactor neural_dae_population
DAE_ABLATIONS ?= A,B,C,D,R
table-neural-dae: install
	@for e in $(DAE_TABLES); do \
	  a=""; [ $$e = neural_dae_tank ] && a="+ablation=$(DAE_ABLATIONS)"; \
	  $(BIN)/python -m runners.train -m experiment=$$e scale=$(SCALE) sweep_name=$$e-$(SCALE) \
	    progress=false $$a $(ARGS) || exit 1; \
	  s=""; [ $$e = neural_dae_tank ] && s="+ablation=S"; \
	  [ $$e = neural_dae_population ] && s="problem.lyapunov=false"; \
	  if [ -n "$$s" ]; then $(BIN)/python -m runners.train -m experiment=$$e scale=$(SCALE) \
	    sweep_name=$$e-$(SCALE) progress=false method=sequential $$s $(ARGS) || exit 1; fi; \
	  $(BIN)/python -m runners.tables experiment=$$e --results results/sweeps/$$e-$(SCALE) \
	    --out results/tables/neural_dae-$(SCALE) || exit 1; \
	done

# LISCO paper Tables 1-5 (gaps and violations; batch-1 solve times, success and iterations
# against IPOPT / OSQP; 1/2||F||^2 percentiles; fraction converged after k iterations;
# training times) and the convergence figure, in one resumable sweep folder per scale:
# lisco with and without predictor on each problem, IPOPT on each, OSQP and jaxopt's batched
# BoxOSQP (OSQP's default and tight tolerances) on the QP, each on
# the instances LISCO_INSTANCES (five, as the paper reports; each cell is their mean ± std).
# -> results/tables/lisco-<scale>/lisco_table{1..5}.{md,csv,tex}, results/figures/lisco_convergence-<scale>.png
LISCO_PROBLEMS ?= qp,nonconvex_qp,rosenbrock
LISCO_INSTANCES ?= 0,1,2,3,4
table-lisco: install
	$(BIN)/python -m runners.train -m experiment=lisco scale=$(SCALE) problem=$(LISCO_PROBLEMS) \
	  problem.instance=$(LISCO_INSTANCES) sweep_name=lisco-$(SCALE) $(ARGS)
	$(BIN)/python -m runners.train -m experiment=lisco_baselines scale=$(SCALE) \
	  problem=$(LISCO_PROBLEMS) problem.instance=$(LISCO_INSTANCES) sweep_name=lisco-$(SCALE) \
	  $(ARGS)
	@if echo "$(LISCO_PROBLEMS)" | grep -qw qp; then \
	  $(BIN)/python -m runners.train -m experiment=lisco_baselines scale=$(SCALE) problem=qp \
	    method=osqp problem.instance=$(LISCO_INSTANCES) sweep_name=lisco-$(SCALE) $(ARGS) && \
	  $(BIN)/python -m runners.train -m experiment=lisco_baselines scale=$(SCALE) problem=qp \
	    method=jaxopt_osqp method.tight=false,true problem.instance=$(LISCO_INSTANCES) \
	    sweep_name=lisco-$(SCALE) $(ARGS) || exit 1; fi
	$(BIN)/python -m runners.tables experiment=lisco --results results/sweeps/lisco-$(SCALE) \
	  --out results/tables/lisco-$(SCALE)
	$(BIN)/python -m runners.parametric --results results/sweeps/lisco-$(SCALE) \
	  --out results/figures/lisco_convergence-$(SCALE).png

# Table 3's other reading ("LISCO is evaluated for 500 steps"): the networks that
# table-lisco trained, evaluated again with every test point run all n_max = 500 steps
# (++method.stop_tol=0; the default stops a point at 1/2||F||^2 <= 1e-8, Algorithm 1's tau).
# Needs table-lisco's runs. -> results/tables/lisco_500steps-<scale>/lisco_table{1..5}.*
table-lisco-500steps: install
	@set -e; for d in results/sweeps/lisco-$(SCALE)/experiment=lisco,*; do \
	  [ -f "$$d/metrics.json" ] || continue; \
	  p=$$(echo "$$d" | sed 's/.*,problem=\([a-z_]*\),.*/\1/'); \
	  i=$$(echo "$$d" | sed 's/.*problem.instance=\([0-9]*\),.*/\1/'); \
	  b=$$(echo "$$d" | sed 's/.*method.predictor=\([A-Za-z]*\),.*/\1/' | tr A-Z a-z); \
	  $(BIN)/python -m runners.train experiment=lisco scale=$(SCALE) problem=$$p \
	    method.predictor=$$b problem.instance=$$i method.train=false \
	    "method.checkpoint='$$d'" ++method.stop_tol=0 figures=false progress=false \
	    results_dir=results/sweeps/lisco_500steps-$(SCALE) $(ARGS); \
	done
	$(BIN)/python -m runners.tables experiment=lisco \
	  --results results/sweeps/lisco_500steps-$(SCALE) --out results/tables/lisco_500steps-$(SCALE)

# Every paper's tables and figures, then results/REPORT.md and REPORT.html (ours beside the
# paper's, ratio, ✗ where ours is > 2x worse, missing runs named, environment, the wall time
# of each target from results/reproduce-<scale>-times.txt). A failing target does not stop
# the others; the report says what is missing and make exits non-zero. Resumable: finished
# runs are skipped on a rerun.
# SCALE=smoke is a pipeline check sized for < 30 min on 2 cores (measured: 25-30 min; XLA
# compiles are a third of it): sweeps run as 2 parallel single-threaded jobs (joblib; LISCO
# stays sequential: it times batch-1 solves) and it runs fewer, shorter runs than
# `make table-*` SCALE=smoke: no Figure 1 coefficient sweeps (TRSQP_FIG1 empty: the report
# lists them as missing), limited-memory trsqp (10 pairs) and 1000 iterations for every PDE
# method, 2 vectorized seeds and 2 / 5 epochs (mini-batch / full batch) on Burgers and
# Darcy for the SQP-momentum paper, the tank ablation A-C (D, the exact Hessian, alone takes
# ~12 min), LISCO evaluated on 200 test points of instances 0 and 1.
# SCALE=cpu|paper run every target as configured.
REPRODUCE_TARGETS ?= table-lisco table-neural-dae table-sqp-momentum table-trsqp
PARALLEL ?= hydra/launcher=joblib hydra.launcher.n_jobs=2
REPRODUCE_smoke = TRSQP_FIG1= SQP_SEEDS=2 DAE_ABLATIONS=A,B,C LISCO_INSTANCES=0,1 \
  XLA_FLAGS=--xla_cpu_multi_thread_eigen=false
ARGS_smoke_table-lisco = scale.lisco.n_test=200
ARGS_smoke_table-trsqp = $(PARALLEL) scale.trsqp_memory=10 scale.max_iter=1000
ARGS_smoke_table-sqp-momentum = $(PARALLEL) scale.sqp_epochs.burgers.mini_batch=2 \
  scale.sqp_epochs.burgers.full_batch=5 scale.sqp_epochs.darcy.mini_batch=2 \
  scale.sqp_epochs.darcy.full_batch=5
ARGS_smoke_table-neural-dae = $(PARALLEL)
reproduce: install
	@mkdir -p results; t=results/reproduce-$(SCALE)-times.txt; : > $$t; failed=0; \
	for target in $(REPRODUCE_TARGETS); do \
	  case $$target in \
	    table-lisco) extra="$(ARGS_$(SCALE)_table-lisco)" ;; \
	    table-trsqp) extra="$(ARGS_$(SCALE)_table-trsqp)" ;; \
	    table-sqp-momentum) extra="$(ARGS_$(SCALE)_table-sqp-momentum)" ;; \
	    table-neural-dae) extra="$(ARGS_$(SCALE)_table-neural-dae)" ;; \
	    *) extra="" ;; esac; \
	  s=$$(date +%s); $(MAKE) --no-print-directory $$target SCALE=$(SCALE) \
	    $(REPRODUCE_$(SCALE)) ARGS="$$extra $(ARGS)"; \
	  rc=$$?; [ $$rc -eq 0 ] || failed=1; \
	  echo "$$target $$(( $$(date +%s) - s )) $$rc" >> $$t; \
	done; \
	$(BIN)/python -m runners.report --scale $(SCALE) --times $$t || exit 1; \
	exit $$failed

clean-results:
	rm -rf results/runs results/sweeps results/bench results/tables results/figures

# Two commands set everything up:  `make demo`  and  `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
SCALE  ?= smoke

.PHONY: install demo test test-slow lint bench tables table-trsqp clean-results

$(BIN)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]' --config-settings editable_mode=compat
	@touch $@

install: $(BIN)/.installed

demo: install  ## the default experiment (problem=reaction, scale=smoke)
	$(BIN)/python -m runners.train scale=$(SCALE)

test: install  ## fast test suite (CI)
	$(BIN)/python -m pytest -q

test-slow: install  ## paper-scale checks
	$(BIN)/python -m pytest -q -m slow

lint: install
	$(BIN)/ruff check .

bench: install  ## performance figures -> results/bench/*.json, results/tables/bench.md
	$(BIN)/python -m runners.bench

tables: install  ## every metrics.json under results/ -> results/tables/summary.{md,csv,tex}
	$(BIN)/python -m runners.tables

# trSQP-PINN paper tables: each experiment is a Hydra sweep (resumable), then its table with
# the paper's values beside ours -> results/tables/<experiment>.{md,csv,tex}
TRSQP_TABLES ?= trsqp_default trsqp_hessian trsqp_pinn trsqp_pretrain
table-trsqp: install
	@for e in $(TRSQP_TABLES); do \
	  $(BIN)/python -m runners.train -m experiment=$$e scale=$(SCALE) sweep_name=$$e-$(SCALE) \
	    progress=false || exit 1; \
	  $(BIN)/python -m runners.tables experiment=$$e --results results/sweeps/$$e-$(SCALE) \
	    || exit 1; \
	done

clean-results:
	rm -rf results/runs results/sweeps results/bench results/tables

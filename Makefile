# research_lib — two commands do all the set-up:
#   make test     create .venv on first use, then lint and run every test (notebooks included)
#   make report   create .venv on first use, then the daily GEX report for SPX (--source auto: live ->
#                 newest stored -> the modelled chain, labelled) -> reports/index.html
# Other targets: make venv | lint | bench | bench-report | gex FILE=... | clean

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
SHARED ?= ../shared/data
PYTEST_ARGS ?=

.PHONY: venv test lint report bench bench-report gex clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "research_lib needs Python 3.11+, found " + sys.version.split()[0])'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	@touch $(STAMP)

lint: venv
	$(VENV)/bin/ruff check research_lib tests benchmarks

test: venv lint
	MPLBACKEND=Agg $(PY) -m pytest -n 2 $(PYTEST_ARGS)

# make report [SYMBOLS=SPX,SPY,QQQ] [SOURCE=store] [REPORT_ARGS="--date 2026-08-21 --convention perfiliev"]
SYMBOLS ?= SPX
SOURCE  ?= auto
REPORT_ARGS ?=
report: venv
	MPLBACKEND=Agg $(VENV)/bin/research-lib report daily --symbols $(SYMBOLS) --source $(SOURCE) $(REPORT_ARGS)

bench: venv
	$(PY) benchmarks/gex.py

bench-report: venv
	$(PY) benchmarks/report.py

# make gex FILE=../shared/data/chains/cboe_quotedata/spx_2024-01-07.csv [ARGS="--convention perfiliev"]
gex: venv
	$(VENV)/bin/research-lib gex $(FILE) $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis build *.egg-info

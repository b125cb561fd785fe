# research_lib — two commands do all the set-up:
#   make test     create .venv on first use, then lint and run every test (notebooks included); the
#                 property tests are derandomised (HYPOTHESIS_PROFILE=deterministic, tests/conftest.py):
#                 the same examples on every machine and every run, CI or not
#   make report   create .venv on first use, then the daily GEX report for SPX (--source auto: live ->
#                 newest stored -> the modelled chain, labelled) -> reports/index.html
#   make fuzz     explore: only the hypothesis property tests, random examples, many more of them
#                 (HYPOTHESIS_PROFILE=fuzz: each test's max_examples x FUZZ_FACTOR, at least 2000);
#                 e.g. make fuzz FUZZ_FACTOR=50 PYTEST_ARGS=tests/test_regime.py. A failure prints
#                 its @reproduce_failure blob; every case a fuzz run finds becomes an @example(...) on
#                 its test, with the fix, so make test checks it from then on.
# Other targets: make venv | lint | browser (chromium for the browser test) | bench | bench-report | gex FILE=... | clean

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
SHARED ?= ../shared/data
PYTEST_ARGS ?=
FUZZ_FACTOR ?= 20

.PHONY: venv test fuzz lint browser report bench bench-report gex clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "research_lib needs Python 3.11+, found " + sys.version.split()[0])'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	@touch $(STAMP)

lint: venv
	$(VENV)/bin/ruff check research_lib tests benchmarks

# Debian's chromium and chromium-driver for the browser test (tests/test_paper_browser.py): installed with
# apt-get when missing and we are root. Never fails the run: without them the browser test skips, saying why.
browser:
	@if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing chromium and chromium-driver with apt-get (for tests/test_paper_browser.py)"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y -q chromium chromium-driver >/dev/null 2>&1 || \
	  { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium chromium-driver >/dev/null 2>&1; } || \
	  echo "could not install chromium: the browser test will skip"; \
	else echo "chromium not found (apt-get install chromium chromium-driver as root): the browser test will skip"; fi

test: venv lint browser
	HYPOTHESIS_PROFILE=deterministic MPLBACKEND=Agg $(PY) -m pytest -n 2 $(PYTEST_ARGS)

fuzz: venv
	HYPOTHESIS_PROFILE=fuzz HYPOTHESIS_FUZZ_FACTOR=$(FUZZ_FACTOR) MPLBACKEND=Agg $(PY) -m pytest -n 2 -m hypothesis $(PYTEST_ARGS)

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

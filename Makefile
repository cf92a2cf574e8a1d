# Everything installs into .venv from PyPI; the two set-up commands are `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
HOST   ?= 127.0.0.1
PORT   ?= 8000
SOAK_MINUTES ?= 30
SOAK_BACKEND ?= sqlite

TOOLS  := .tools
TOOLS_STAMP := $(TOOLS)/.installed-stamp

.PHONY: install tools wrk run test test-fast lint format bench bench-quick soak clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# semgrep and checkov live in their own venv: semgrep pins an older OpenTelemetry than Shipboard.
$(TOOLS_STAMP):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --upgrade pip
	$(TOOLS)/bin/pip install --quiet semgrep checkov
	touch $(TOOLS_STAMP)

tools: $(TOOLS_STAMP)

## make run: install, then serve on SQLite in ./.shipboard (prints the URL and, the first time, an admin token)
run: install
	$(BIN)/shipboard serve --host $(HOST) --port $(PORT)

## make test: install, then run the whole suite (PostgreSQL tests skip without a server unless CI=true)
test: install tools
	SHIPBOARD_SCANNER_PATH=$(CURDIR)/$(TOOLS)/bin $(BIN)/pytest

test-fast: install
	$(BIN)/pytest -x -q -m "not postgres and not slow"

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

format: install
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

# The list figure's load comes from wrk (C): a Python client saturates before the baseline does.
wrk:
	@command -v wrk >/dev/null || { if [ "$$(id -u)" = 0 ]; then apt-get install -y -qq wrk; \
	  else sudo apt-get install -y -qq wrk; fi; } >/dev/null

## make bench: each figure beside a baseline measured in the same run, as a ratio
bench: install wrk
	$(BIN)/python -m bench

bench-quick: install wrk
	$(BIN)/python -m bench --quick

## make soak: 30 minutes of steady mixed traffic against `shipboard serve` (SOAK_MINUTES, SOAK_BACKEND)
soak: install
	$(BIN)/python -m bench.soak --minutes $(SOAK_MINUTES) --backend $(SOAK_BACKEND)

clean:
	rm -rf $(VENV) $(TOOLS) .pytest_cache .mypy_cache .ruff_cache

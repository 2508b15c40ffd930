# mesotherapy-outcomes: every target sets itself up (.venv, install, kernel) and is safe to run again.
# `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
OUTCOMES := $(VENV)/bin/outcomes
STAMP := $(VENV)/.installed
LOCK := requirements.lock
LOCK_TOOLS := $(VENV)/lock-tools
RAW ?= data/raw
PROCESSED ?= data/processed
REPORTS ?= reports
JOBS ?= 2
LAB ?= notebooks/work
USER_ID ?= $(shell id -u)
# git strips outputs (and the machine's Python version) from notebooks as they are staged: see .gitattributes.
# Without .venv (after `make clean-env`) the filters pass notebooks through as they are, the clean one
# with a warning, instead of failing every git command until `make setup` runs again.
NBSTRIPOUT = $(VENV)/bin/nbstripout --keep-id --extra-keys metadata.language_info.version
NB_CLEAN = if [ -x $(VENV)/bin/nbstripout ]; then exec $(NBSTRIPOUT); fi; \
	echo "warning: $(VENV)/bin/nbstripout is missing (run make setup): notebook outputs are not stripped" >&2; exec cat
NB_TEXTCONV = nb() { if [ -x $(VENV)/bin/nbstripout ]; then exec $(NBSTRIPOUT) --textconv "$$1"; fi; exec cat "$$1"; }; nb

.DEFAULT_GOAL := help
.PHONY: help setup lock data report scheduled test lab bench clean-env

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-10s %s\n", $$1, $$2}'

# the exact versions of $(LOCK) (every machine gets the same), then the package itself on top
$(STAMP): pyproject.toml $(LOCK)
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is needed (found " + sys.version.split()[0] + ")")'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV) || { echo "Could not create $(VENV): on Debian/Ubuntu install python3-venv first." >&2; exit 1; }
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r $(LOCK)
	$(PY) -m pip install --quiet --no-deps -e .
	@$(PY) -c 'import weasyprint' 2>/dev/null || { echo "WeasyPrint (the PDFs) needs the Pango library >= 1.44: on Debian/Ubuntu sudo apt-get install libpango-1.0-0 libpangoft2-1.0-0" >&2; exit 1; }
	$(PY) -m ipykernel install --sys-prefix --name mesotherapy-outcomes --display-name "Python (mesotherapy-outcomes)" >/dev/null
	@if [ "$$(git rev-parse --show-toplevel 2>/dev/null)" = "$$(pwd -P)" ]; then \
		git config filter.nbstripout.clean '$(NB_CLEAN)' && git config filter.nbstripout.smudge cat && \
		git config diff.ipynb.textconv '$(NB_TEXTCONV)'; \
	else echo "Not the top of a git checkout: git's notebook filter (.gitattributes) is not set up."; fi
	@touch $(STAMP)

setup: $(STAMP) ## Create .venv, install the locked versions, the package, its Jupyter kernel and git's notebook filter

lock: ## Re-pin requirements.lock from pyproject.toml (keeps pins that still fit; LOCK_FLAGS=--upgrade for the newest)
	@test -x $(LOCK_TOOLS)/bin/uv || { $(PYTHON) -m venv $(LOCK_TOOLS) && $(LOCK_TOOLS)/bin/pip install --quiet 'uv>=0.5'; }
	$(LOCK_TOOLS)/bin/uv pip compile pyproject.toml --extra dev --universal --python-version 3.11 --fork-strategy fewest \
		--custom-compile-command "make lock" --overrides requirements-overrides.txt --quiet $(LOCK_FLAGS) -o $(LOCK)

CLEAN = $(OUTCOMES) clean --raw $(RAW) --out $(PROCESSED)
# Photos in $(PHOTOS) (index.csv and the images) are measured into the raw folder before the clean;
# photos measured before (same bytes) are not measured again. No index: nothing to do.
PHOTOS ?= $(RAW)/photos
MEASURE = if [ -f $(PHOTOS)/index.csv ]; then $(OUTCOMES) photos --photos $(PHOTOS) --out $(RAW)/photo_metrics.photos.csv; fi
REPORT = $(OUTCOMES) report --grid reports.yml --processed $(PROCESSED) --out $(REPORTS) --jobs $(JOBS)

data: $(STAMP) ## Demo cohort (with photos) into data/raw only if it is empty (never beside real files), measure data/raw/photos, clean into data/processed
	$(OUTCOMES) demo --raw $(RAW) --if-empty
	$(MEASURE)
	$(CLEAN)

report: data ## The main job: set-up, data, then every report in reports.yml (PDFs in reports/<date>/<time>/, reports/latest)
	$(REPORT)

scheduled: $(STAMP) ## For cron/systemd: measure new photos (if data/raw/photos/index.csv), clean data/raw, make every report; never writes demo data
	$(MEASURE)
	$(CLEAN)
	$(REPORT)

test: $(STAMP) ## Run the test suite
	$(PY) -m pytest

# The committed notebooks are the scheduled reports' templates: the analyst works on copies
# (made once, never overwritten). Root (in a container) needs --allow-root; nobody else gets it.
lab: $(STAMP) ## Start JupyterLab on your own copies of the notebooks, in notebooks/work/ (git-ignored)
	$(PY) -m outcomes.lab notebooks $(LAB)
	$(VENV)/bin/jupyter lab $(if $(filter 0,$(USER_ID)),--allow-root) $(LAB)

bench: $(STAMP) ## Run the benchmark scripts (slow; they print their figures)
	@for b in benchmarks/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean-env: ## Remove .venv (the next target rebuilds it)
	rm -rf $(VENV)

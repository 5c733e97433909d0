# The README's two commands: `make run` (install + run the workflow) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CORES ?= 8
# Another config (e.g. make run CONFIG=examples/torchvision-models.yaml); empty = config.yaml.
CONFIG ?=
RUN_ARGS ?=

.PHONY: run test install install-test clean

# Re-install only when the package metadata changes.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e '.[test,all]'
	touch $@

# tests/test_diagnostics_report.py opens the diagnostics report in a real headless Chromium
# (Debian's package); installed once, only where it is missing (apt-get, as root or via sudo).
$(VENV)/.chromium: | $(VENV)/.installed
	command -v chromium >/dev/null || command -v chromium-browser >/dev/null || \
	  { SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); $$SUDO apt-get update && $$SUDO apt-get install -y chromium; }
	touch $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

run: install
	$(BIN)/snakemake --cores $(CORES) $(if $(CONFIG),--configfile $(CONFIG) --replace-workflow-config) $(RUN_ARGS)

test: install-test $(VENV)/.chromium
	$(BIN)/python -m pytest

clean:
	rm -rf results logs .snakemake

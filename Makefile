# tiktok-gateway: `make run` starts the gateway, `make test` runs every check.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
CONFIG ?= gateway.toml
PYTEST_ARGS ?=

.PHONY: install run sandbox test lint typecheck pytest bench soak clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@echo "Installing tiktok-gateway and its dependencies into $(VENV) (once; about a minute)..."
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	@echo "  pip is ready; now the dependencies (the slow part)..."
	$(BIN)/pip install --quiet -e '.[dev,postgres]'
	@echo "  installed."
	touch $@

run: install
	$(BIN)/tiktok-gateway serve --config $(CONFIG) --init

sandbox: install
	$(BIN)/tiktok-gateway sandbox

test: install lint typecheck pytest

lint: install
	$(BIN)/ruff check src tests bench

typecheck: install
	$(BIN)/mypy

pytest: install
	$(BIN)/pytest $(PYTEST_ARGS)

bench: install
	$(BIN)/python -m bench.run

soak: install
	TIKTOK_GATEWAY_SOAK=1 $(BIN)/pytest tests/acceptance tests/unit/test_fuzz_inbound.py tests/unit/test_lint.py $(PYTEST_ARGS)
	$(BIN)/python -m bench.reliability

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build dist

# Two commands do all set-up: `make demo` and `make test`. Each builds .venv from uv.lock.
PYTHON ?= python3
VENV := .venv
UV := $(VENV)/bin/uv
UV_VERSION := 0.13.8
SYNCED := $(VENV)/.synced
RUN := $(UV) run --frozen --no-sync

.PHONY: demo test lint typecheck pytest bench venv clean

venv: $(SYNCED)

$(UV):
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(SYNCED): uv.lock pyproject.toml | $(UV)
	$(UV) sync --frozen --all-extras --quiet
	touch $@

demo: $(SYNCED)
	$(RUN) paywire demo

lint: $(SYNCED)
	$(RUN) ruff check src tests bench
	$(RUN) ruff format --check src tests bench

typecheck: $(SYNCED)
	$(RUN) mypy src

pytest: $(SYNCED)
	$(RUN) pytest -q

test: lint typecheck pytest

bench: $(SYNCED)
	$(RUN) python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis .paywire-demo

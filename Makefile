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

# llama-cpp-python (the `llm` extra) builds from source: it needs a C++ compiler and cmake.
BUILD_TOOLS := g++ cmake

$(SYNCED): uv.lock pyproject.toml | $(UV)
	@missing=""; for tool in $(BUILD_TOOLS); do command -v $$tool >/dev/null || missing="$$missing $$tool"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing build tools:$$missing"; \
		$$(command -v sudo) apt-get update -qq && $$(command -v sudo) apt-get install -y -qq build-essential cmake; \
	fi
	@echo "installing dependencies (the first time, llama-cpp-python builds from source: minutes)"
	$(UV) sync --frozen --all-extras --quiet
	touch $@

demo: $(SYNCED)
	$(RUN) paywire demo

lint: $(SYNCED)
	$(RUN) ruff check src tests bench
	$(RUN) ruff format --check src tests bench

typecheck: $(SYNCED)
	$(RUN) mypy src

# Two workers (pytest-xdist): the suite waits on subprocesses, sockets and fsync as much as
# on the CPU, so two halve its time even on two cores.
pytest: $(SYNCED)
	$(RUN) pytest -q -n 2

test: lint typecheck pytest

bench: $(SYNCED)
	$(RUN) python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis .paywire-demo

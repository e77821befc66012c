# The interface between the parts. `make demo` and `make test` are all a newcomer needs.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# dbt with the Snowflake adapter, beside the project's venv (it pins an older certifi than the
# project resolves to): `dbt parse --target snowflake` needs no connection, and CI runs it.
SNOWFLAKE_VENV  ?= .venv-snowflake
SNOWFLAKE_STAMP := $(SNOWFLAKE_VENV)/.installed

.PHONY: install snowflake demo stop test test-e2e test-fast test-faults bench lint format docs clean

install: $(STAMP)

# Re-installs only when the project's metadata changed; a no-op otherwise.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check "uv>=0.4"
	$(BIN)/uv pip install --quiet --python $(BIN)/python -e ".[dev]"
	@# Bytecode for the installed packages, once: where PYTHONDONTWRITEBYTECODE is set nothing else
	@# writes it, and every command, worker and flow run would compile Prefect, dbt and GX again.
	@$(BIN)/python -m compileall -q -j 0 $(VENV)/lib >/dev/null 2>&1 || true
	@touch $(STAMP)

snowflake: $(SNOWFLAKE_STAMP)

$(SNOWFLAKE_STAMP): pyproject.toml $(STAMP)
	@test -x $(SNOWFLAKE_VENV)/bin/python || $(PYTHON) -m venv $(SNOWFLAKE_VENV)
	$(BIN)/uv pip install --quiet --python $(SNOWFLAKE_VENV)/bin/python \
		"dbt-core>=1.11,<1.12" "dbt-snowflake>=1.10,<1.12"
	@touch $(SNOWFLAKE_STAMP)

# Leaves the Prefect server, the worker and the dashboards running (a second run reuses them).
demo: install
	$(BIN)/searchflow demo

# Stops only what `make demo` started, by the process ids it recorded.
stop:
	@test -x $(BIN)/searchflow || { echo "nothing to stop: the project is not installed"; exit 0; }
	$(BIN)/searchflow stop

test: install
	$(BIN)/python -m pytest

# The whole served chain on a real Prefect server, and a browser beside a running pipeline (minutes
# each; listed in tests/conftest.py). CI runs them after `make test`.
test-e2e: install
	$(BIN)/python -m pytest -m e2e

test-fast: install
	$(BIN)/python -m pytest -m "not slow and not prefect_server"

# Worker and server killed mid-chain on a real Prefect server (minutes each; not in `make test`).
test-faults: install
	$(BIN)/python -m pytest -m faults tests/orchestration/test_faults.py

bench: install
	$(BIN)/python -m bench

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

docs: install
	$(BIN)/searchflow transform --docs

clean:
	rm -rf data dbt/target dbt/logs .pytest_cache

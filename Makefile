# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 5000
FLASK := $(BIN)/flask --app wsgi

.PHONY: run test bench venv clean

venv: $(VENV)/.installed

# One line per step. pip's -qq keeps its errors and drops its warnings (a pip configuration
# naming an index folder that doesn't exist warns once per package).
$(VENV)/.installed: requirements.txt requirements-dev.txt
	@echo "== installing the Python packages into $(VENV) (pip)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/pip install -qq --disable-pip-version-check -r requirements-dev.txt
	@touch $@

## run: localstripe, a migrated SQLite database under instance/ with demo data, the service on 127.0.0.1:$(PORT)
run: venv
	@PORT=$(PORT) devtools/run.sh

## test: the whole suite on SQLite, then again on TEST_DATABASE_URL when it is set
test: venv
	devtools/ensure-chromium.sh
	env -u TEST_DATABASE_URL $(BIN)/python -m pytest
	@if [ -n "$$TEST_DATABASE_URL" ]; then \
		echo "== the same suite on $$TEST_DATABASE_URL"; \
		$(BIN)/python -m pytest; \
	fi

## bench: the speed figures, printed (see bench/README.md)
bench: venv
	@command -v wrk >/dev/null || (echo "== installing wrk (apt)" && apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis

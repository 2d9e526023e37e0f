# mcpd: `make run` serves, `make test` tests. Both create .venv and install what they need.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
export HOST PORT

.PHONY: run test install install-test lint bench bench-limits bench-audit clean

$(BIN)/python:
	@echo "==> creating $(VENV) with $(PYTHON)"
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null || \
		{ echo "mcpd needs Python 3.11 (found: '$(PYTHON)'); set PYTHON=/path/to/python3.11" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	@echo "==> installing mcpd into $(VENV)"
	$(BIN)/pip install -q -e .
	@touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed
	@echo "==> installing the test dependencies into $(VENV)"
	$(BIN)/pip install -q -e '.[test]'
	@touch $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

run: install
	@echo "==> applying migrations"
	$(BIN)/python manage.py migrate --no-input
	@echo "==> collecting static files"
	$(BIN)/python manage.py collectstatic --no-input -v0
	@echo "==> serving mcpd on http://$(HOST):$(PORT)/  (admin: http://$(HOST):$(PORT)/admin/)"
	@echo "    first admin user: $(BIN)/python manage.py createsuperuser"
	exec $(BIN)/gunicorn -c gunicorn.conf.py mcpd.wsgi

test: install-test
	@echo "==> running the test suite"
	bash tests/run.sh

lint: install-test
	$(BIN)/ruff check .

# Side by side: the stand-in provider alone, mcpd as `make run` serves it, and LiteLLM (installed on first
# use into ~/.cache/mcpd-bench). BENCH_ARGS=--quick for a short run, --no-litellm without LiteLLM.
bench: install-test
	$(BIN)/python bench/serving.py $(BENCH_ARGS)

# What limits cost per call (no limit, one, three), on SQLite and on PostgreSQL (tests/pg.sh).
bench-limits: install-test
	$(BIN)/python bench/limits.py $(BENCH_ARGS)

bench-audit: install-test
	$(BIN)/python bench/audit_scale.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) var/static

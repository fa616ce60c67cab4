# releasectl — every target installs what it needs into .venv first.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PYTEST_WORKERS ?= 2

.DEFAULT_GOAL := help
.PHONY: help install lint format test test-fast demo bench bench-small schemas golden clean

help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP) ## Create .venv and install releasectl with its dev tools

lint: $(STAMP) ## ruff, mypy (strict on controller/) and import-linter contracts
	$(BIN)/ruff check controller workflows tests bench
	$(BIN)/ruff format --check controller workflows tests bench
	$(BIN)/mypy controller workflows
	$(BIN)/lint-imports

format: $(STAMP) ## Rewrite code with ruff's formatter and autofixes
	$(BIN)/ruff check --fix controller workflows tests bench
	$(BIN)/ruff format controller workflows tests bench

test: lint ## Lint, then the whole test suite (real git, real training)
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) -q

test-fast: $(STAMP) ## Tests without lint or the end-to-end training tests
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) -q -m 'not slow'

demo: $(STAMP) ## The main job: a release repo in a temp folder, real training, bump, revert, history
	$(BIN)/releasectl demo

bench: $(STAMP) ## Benchmarks against raw git plumbing (BENCH_SCALE=small for a smoke run)
	$(BIN)/python -m bench

schemas: $(STAMP) ## Regenerate schemas/*.json from the pydantic models
	$(BIN)/python -m controller.core.schemas --write schemas
	$(BIN)/python -c "from controller.core.audit_report import schema_text; open('schemas/AuditReport.json', 'w').write(schema_text())"

golden: $(STAMP) ## Rewrite the golden workflow manifests under tests/golden
	REGENERATE=1 $(BIN)/python -m pytest -q tests/test_workflows_golden.py

clean: ## Remove the venv and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

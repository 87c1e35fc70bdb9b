# Two commands do all set-up: `make demo` (the main job) and `make test` (the whole suite).
# Each creates the virtual environment(s) it needs on first use.
PYTHON ?= python3
VENV := .venv
OT_VENV := .venv-opentrons
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
OT_STAMP := $(OT_VENV)/.installed

.PHONY: demo test bench clean venv

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

# Opentrons pins numpy<2 and jsonschema<4.18 (conflicts with the MCP SDK): it gets its own
# environment and is called as a tool (opentrons_simulate). See docs/DESIGN notes in README.
$(OT_STAMP):
	$(PYTHON) -m venv $(OT_VENV)
	$(OT_VENV)/bin/pip install --quiet --upgrade pip
	$(OT_VENV)/bin/pip install --quiet 'opentrons==9.0.0'
	touch $(OT_STAMP)

venv: $(STAMP) $(OT_STAMP)

demo: venv
	$(BIN)/labctl demo

test: venv
	$(BIN)/python -m pytest -n 2 --dist loadgroup -q $(PYTEST_ARGS)

bench: venv
	@for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) $(OT_VENV) .pytest_cache

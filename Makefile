# Two commands do everything on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
BOOK ?= ../shared/data/books/alice_in_wonderland.txt
EXCERPT_BYTES ?= 30000
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: setup run summarize test test-quick lint

$(BIN)/recursum: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first, pinned: the CPU build installs from local disk; an unpinned torch pulls CUDA.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

setup: $(BIN)/recursum

# The main job on embedded defaults: the REST service with SmolLM2-135M (nf4) and SQLite under
# $RECURSUM_HOME. Without RECURSUM_API_KEYS it serves in explicit dev mode (no keys; logged loudly).
run: setup
	$(BIN)/recursum models pull
	$(BIN)/recursum serve --host $(HOST) --port $(PORT) $(if $(RECURSUM_API_KEYS),,--dev)

# Summarize a book excerpt locally, without the service.
summarize: setup
	$(BIN)/recursum models pull
	head -c $(EXCERPT_BYTES) $(BOOK) > $(VENV)/excerpt.txt
	$(BIN)/recursum summarize $(VENV)/excerpt.txt --format markdown --out $(VENV)/tree.json

# Runs every test, slow real-model ones included; pytest's exit 5 (nothing collected) is not a failure.
test: setup
	$(BIN)/python -m pytest -q || [ $$? -eq 5 ]

# The quick tier while editing: no real model (`slow`), no processes, servers, browsers, PostgreSQL or
# training runs (`integration`). CI runs `test`.
test-quick: setup
	$(BIN)/python -m pytest -q -m "not slow and not integration" || [ $$? -eq 5 ]

lint: setup
	$(BIN)/ruff check schemas service training clients tests bench

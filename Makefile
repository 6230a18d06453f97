# Mirada: `make run` serves the demo, `make test` runs every check. Both set up .venv first.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup test lint typecheck pytest run preview bench docs-runtime clean

setup: $(STAMP)

# Pinned install from requirements.lock (torch==2.13.0 is the CPU wheel on our machines; mediapipe 0.10.21
# needs numpy<2 and opencv 4.11). Re-runs when the lock file or pyproject change.
$(STAMP): requirements.lock pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON) (Python 3.11)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

lint: setup
	$(BIN)/ruff check engine server tests bench
	$(BIN)/ruff format --check engine server tests bench

typecheck: setup
	$(BIN)/mypy

pytest: setup
	$(BIN)/python -m pytest -q

test: lint typecheck pytest

# The service with the bundled model on http://127.0.0.1:8000 (the demo page at /, the API at /docs); the backend
# is chosen automatically: TensorRT or torch on a GPU if there is one, else ONNX Runtime on the CPU.
run: setup
	$(BIN)/mirada serve --host 127.0.0.1 --port 8000

preview: setup
	$(BIN)/mirada synth preview docs/synth_preview.png --n 64 --seed 7

bench: setup
	$(BIN)/mirada synth bench

# Before/after pictures of the corrector on the package photos (docs/runtime_*.png), with the shipped weights.
docs-runtime: setup
	$(BIN)/python bench/runtime_docs.py --out docs

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache out

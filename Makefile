# The two user-facing targets: `make distill` (the whole flow) and `make test` (the suite).
# Both create .venv and install what they need on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TEACHER ?= reacher_8
RUN ?=
PRESETS ?= mlp_1x32,mlp_2x64,mlp_2x256,mlp_4x512
CONFIG ?=
ENV ?=
NAME ?=
RANDOM_INIT ?=
STAMP := $(VENV)/.installed
# The suite's time is mostly single-threaded XLA compiles: two workers, one test file each at a time
# (module fixtures compile once; the files sharing the session's tiny_run run in one worker, see
# tests/conftest.py), sharing compiled programs through the disk cache (.jax_cache).
TEST_WORKERS ?= 2

.PHONY: distill bench dagger-vs-bc test test-slow teacher venv clean

# pip --no-compile: byte-compiling the ~15,000 modules installed took a minute of a fresh `make test`;
# Python compiles the ~3,000 we import on first use and caches them, so bytecode writing stays on.
unexport PYTHONDONTWRITEBYTECODE

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip -c constraints.txt
	$(BIN)/python -m pip install -q --no-compile -c constraints.txt -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

distill: $(STAMP)
	$(BIN)/distill run --teacher $(TEACHER) $(if $(RUN),--run $(RUN),) $(if $(CONFIG),--config $(CONFIG),) \
		$(if $(RANDOM_INIT),--random-init,)

bench: $(STAMP)
	$(BIN)/distill sweep --teacher $(TEACHER) --presets $(PRESETS) $(if $(ENV),--env $(ENV),) \
		$(if $(CONFIG),--config $(CONFIG),) $(if $(NAME),--name $(NAME),)

dagger-vs-bc: $(STAMP)
	$(BIN)/python benchmarks/dagger_vs_bc.py

teacher: $(STAMP)
	$(BIN)/distill teacher train --name $(TEACHER)

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -m "not slow" -n $(TEST_WORKERS) --dist loadfile --durations=15

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

clean:
	rm -rf $(VENV) build *.egg-info

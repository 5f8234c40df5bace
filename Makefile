# The two user-facing targets: `make distill` (the whole flow) and `make test` (the suite).
# Both create .venv and install what they need on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TEACHER ?= reacher_8
RUN ?=
CONFIG ?=
RANDOM_INIT ?=
STAMP := $(VENV)/.installed

.PHONY: distill test test-slow teacher venv clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

distill: $(STAMP)
	$(BIN)/distill run --teacher $(TEACHER) $(if $(RUN),--run $(RUN),) $(if $(CONFIG),--config $(CONFIG),) \
		$(if $(RANDOM_INIT),--random-init,)

teacher: $(STAMP)
	$(BIN)/distill teacher train --name $(TEACHER)

test: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

clean:
	rm -rf $(VENV) build *.egg-info

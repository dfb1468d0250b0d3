# Entry points: `make demo`, `make test`, `make test-fast`. Each creates .venv when it is
# missing, with the Python that .python-version selects.
SHELL := /bin/bash
# PYTHON=3.6 or 3.7 (e.g. `make test PYTHON=3.6`): a venv of its own, .venv-3.6,
# from requirements-3.6.txt; without it, .venv with .python-version's Python.
PYTHON ?=
ifeq ($(PYTHON),)
VENV := .venv
PY_VERSION := $(shell cat .python-version)
REQUIREMENTS := requirements.txt
# pyenv resolves .python-version inside the repository; python3.X is the fallback.
BASE_PYTHON ?= $(shell pyenv which python 2>/dev/null || command -v python$(PY_VERSION))
else
VENV := .venv-$(PYTHON)
PY_VERSION := $(PYTHON)
REQUIREMENTS := requirements-$(PYTHON).txt
BASE_PYTHON ?= $(or $(lastword $(wildcard $(HOME)/.pyenv/versions/$(PYTHON).*/bin/python)),$(shell command -v python$(PYTHON)))
endif
PY := $(VENV)/bin/python
export KERAS_BACKEND := theano

.PHONY: demo test test-fast test-older bench venv clean

venv: $(VENV)/.installed

$(VENV)/.installed: $(REQUIREMENTS) setup.py pyproject.toml seq2seq_startup.pth
	@test -n "$(BASE_PYTHON)" || { echo "Python $(PY_VERSION) not found: install it (pyenv install $(PY_VERSION)) or set BASE_PYTHON=/path/to/python$(PY_VERSION)"; exit 1; }
	@$(BASE_PYTHON) -c 'import sys; v = "%d.%d" % sys.version_info[:2]; sys.exit(0 if v == "$(PY_VERSION)" else "$(BASE_PYTHON) is Python " + v + ", .python-version asks for $(PY_VERSION)")'
	test -x $(PY) || $(BASE_PYTHON) -m venv $(VENV)
	# pip first: the pip of an old Python's venv does not skip releases for newer Pythons.
	$(PY) -m pip install --quiet --upgrade "pip<24.1"
	$(PY) -m pip install --quiet --upgrade wheel
	$(PY) -m pip install --quiet -r $(REQUIREMENTS)
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

# The main job: grapheme-to-phoneme on CMUdict (examples/g2p.py; the
# reversal demo is examples/reverse.py). DEMO_OUT is the output folder.
DEMO_OUT ?= g2p_output
demo: venv
	$(PY) examples/g2p.py --out $(DEMO_OUT) --overwrite

test: venv
	$(PY) -m tests.runner

# The fast tier: every test not marked @attr('slow') (see tests/runner.py).
test-fast: venv
	$(PY) -m tests.runner --fast

# The smaller set CI runs on the older Pythons (`make test-older PYTHON=3.6`,
# `PYTHON=3.7`): the 2015-style scripts, remembered-state semantics, the seed
# README example, load_model, and one learning test.
OLDER_TESTS := tests/test_legacy.py tests/test_state.py \
	tests.test_learning:test_seed_readme_example_runs_verbatim_and_trains \
	tests.test_models:test_save_and_load_seed_layer_resets_the_remembered_state \
	tests.test_losses:test_saved_model_loads_with_the_loss \
	tests.test_model_learning:test_seq2seq_learns_to_reverse
test-older: venv
	$(PY) -m tests.runner $(OLDER_TESTS) --verbosity=2

# `make bench`: the benchmarks of benchmarks/README.md, in .venv plus a Python
# 3.11 venv for PyTorch (BENCH_ARGS passes options, e.g. BENCH_ARGS=--quick).
TORCH_VENV := benchmarks/.venv-torch
TORCH_PY_VERSION := 3.11
TORCH_BASE_PYTHON ?= $(or $(shell PYENV_VERSION=$(TORCH_PY_VERSION) pyenv which python 2>/dev/null),$(lastword $(wildcard $(HOME)/.pyenv/versions/$(TORCH_PY_VERSION).*/bin/python)),$(shell command -v python$(TORCH_PY_VERSION)))

$(TORCH_VENV)/.installed:
	@test -n "$(TORCH_BASE_PYTHON)" || { echo "Python $(TORCH_PY_VERSION) not found (for PyTorch): install it (pyenv install $(TORCH_PY_VERSION)) or set TORCH_BASE_PYTHON=/path/to/python$(TORCH_PY_VERSION)"; exit 1; }
	test -x $(TORCH_VENV)/bin/python || $(TORCH_BASE_PYTHON) -m venv $(TORCH_VENV)
	$(TORCH_VENV)/bin/python -m pip install --quiet torch==2.13.0
	touch $@

bench: venv $(TORCH_VENV)/.installed
	$(PY) -m benchmarks $(BENCH_ARGS)

clean:
	rm -rf $(VENV) *.egg-info

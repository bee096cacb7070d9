# Two commands: `make test` (set up .venv, lint, run the suite) and `make demo` (the end-to-end demo).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
# `make test` runs the suite on this many pytest-xdist workers, one test file per worker at a time (a file's
# module fixtures, such as a running node, are built once); 0 runs it in this process.
PYTEST_WORKERS ?= 2
DEMO_ARGS ?=

# ROS traffic stays on this machine; each run gets its own DDS domain.
export ROS_AUTOMATIC_DISCOVERY_RANGE ?= LOCALHOST
export ROS_DOMAIN_ID ?= $(shell echo $$(( $$$$ % 100 + 1 )))
# Each pytest-xdist worker N takes domain TACOCC_TEST_DOMAIN_BASE + N (test/conftest.py): an even base in 2..98.
export TACOCC_TEST_DOMAIN_BASE ?= $(shell echo $$(( $$$$ % 49 * 2 + 2 )))
export PYTHONUNBUFFERED := 1
# The suite starts many Python processes (nodes, their network processes, commands) that import the same
# modules: let them keep bytecode caches (__pycache__/, ignored by git) where the environment turned them off.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: test test-all lint typecheck format venv clean demo

venv: $(STAMP)

$(PY):
	@$(PYTHON) -c 'import sys; v = sys.version_info[:2]; \
	  sys.exit(0 if (3, 10) <= v <= (3, 12) else f"need Python 3.10-3.12, found {v[0]}.{v[1]} (set PYTHON=...)")'
	$(PYTHON) -m venv $(VENV)

# Re-runs pip only when the package metadata or the pins change; pip skips what is already installed.
$(STAMP): setup.py setup.cfg requirements/dev-constraints.txt | $(PY)
	$(PY) -m pip install --quiet --upgrade pip setuptools wheel
	$(PY) -m pip install --quiet -c requirements/dev-constraints.txt -e '.[cpu,ros,test]'
	touch $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# mypy on tacocc_core and tacocc_ros, configured in setup.cfg [mypy]; every `# type: ignore[code]` must say
# why in a comment after it.
typecheck: $(STAMP)
	$(PY) -m mypy
	@! grep -rnE --include='*.py' 'type: ignore(\[[^]]*\])?[[:space:]]*$$' tacocc_core tacocc_ros \
	  || { echo 'typecheck: the type: ignore above needs its reason ("# type: ignore[code]  # why")'; exit 1; }

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# pytest exits 5 when it collects no test: that is not a failure of the suite.
test: lint typecheck
	$(PY) -m pytest -m 'not slow' -n $(PYTEST_WORKERS) --dist loadfile --durations=15 $(PYTEST_ARGS) || [ $$? -eq 5 ]

test-all: lint typecheck
	$(PY) -m pytest $(PYTEST_ARGS) || [ $$? -eq 5 ]

# Synthetic scenes -> rosbag2 -> occupancy node and bag player over DDS -> demo_out/ (pictures, report.md).
demo: $(STAMP)
	$(VENV)/bin/tacocc demo $(DEMO_ARGS)

clean:
	rm -rf $(VENV) build install log .pytest_cache .ruff_cache .mypy_cache

# docs/CONFIGURATION.md is generated from the config dataclasses, node parameters and launch files.
.PHONY: docs
docs: $(STAMP)
	$(PY) -m tacocc_ros.tooling.reference_doc docs/CONFIGURATION.md

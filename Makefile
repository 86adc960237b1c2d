# The two commands a new user runs (see README.md):
#   make demo   - set up a virtual environment and run a real determination on the bundled examples
#   make test   - install the test dependencies and run the whole test suite
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip

.PHONY: demo test venv lint

$(PY):
	python3 -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

venv: $(PY)
	$(PIP) install --quiet -e .

demo: venv
	$(VENV)/bin/chokepoint check src/chokepoint/examples/*.yaml --format text

test: $(PY)
	$(PIP) install --quiet -e '.[test]'
	$(VENV)/bin/ruff check src tests bench examples
	$(VENV)/bin/mypy
	CHOKEPOINT_TEST_PG_URL="$$(bash scripts/test-services.sh)" $(VENV)/bin/pytest

lint: $(PY)
	$(VENV)/bin/ruff check src tests bench examples
	$(VENV)/bin/mypy

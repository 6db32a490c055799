# Two entry points, both self-contained on a fresh machine (python3 is all they need):
#   make demo   set up .venv and run the end-to-end demo
#   make test   set up .venv and run every test
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test setup clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml CMakeLists.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@

demo: setup
	$(VENV)/bin/sv2ffi demo

test: setup
	$(VENV)/bin/pytest

clean:
	rm -rf $(VENV) build .pytest_cache .hypothesis

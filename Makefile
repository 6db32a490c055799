# Two entry points, both self-contained on a fresh machine (python3 is all they need):
#   make demo   set up .venv and run the end-to-end demo
#   make test   set up .venv and run every test
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test setup clean

setup: $(VENV)/.installed

# the editable install builds libsv2 too (CMake): redo it when its inputs change
$(VENV)/.installed: pyproject.toml CMakeLists.txt sv2ffi/schema.py $(wildcard sv2ffi/capi/*.py sv2ffi/capi/*.c)
	python3 -m venv $(VENV)
	SV2FFI_REQUIRE_LIBSV2=1 $(PY) -m pip install --quiet --disable-pip-version-check \
		--config-settings=build-dir='build/{wheel_tag}' -e '.[test]'
	touch $@

demo: setup
	$(VENV)/bin/sv2ffi demo

test: setup
	$(VENV)/bin/pytest

clean:
	rm -rf $(VENV) build .pytest_cache .hypothesis

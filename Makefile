# Two entry points, both self-contained on a fresh machine (python3 is all they need):
#   make demo   set up .venv and run the end-to-end demo
#   make test   set up .venv and run every test
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test setup clean c-tools

setup: $(VENV)/.installed

# the editable install builds libsv2 too (CMake): redo it when its inputs change
$(VENV)/.installed: pyproject.toml CMakeLists.txt sv2ffi/schema.py $(wildcard sv2ffi/capi/*.py sv2ffi/capi/*.c sv2ffi/native/*.c sv2ffi/native/*.h)
	python3 -m venv $(VENV)
	SV2FFI_REQUIRE_LIBSV2=1 $(PY) -m pip install --quiet --disable-pip-version-check \
		--config-settings=build-dir='build/{wheel_tag}' -e '.[test]'
	touch $@

demo: setup
	$(VENV)/bin/sv2ffi demo

test: setup
	$(VENV)/bin/pytest

# optional: clang + libFuzzer and 32-bit gcc for the standalone C codec's tests
# (tests/test_ccodec_standalone.py skips those cases, saying so, without them)
c-tools:
	apt-get update -qq
	apt-get install -y -qq clang libfuzzer-14-dev gcc-multilib

clean:
	rm -rf $(VENV) build .pytest_cache .hypothesis

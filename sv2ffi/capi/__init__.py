"""libsv2: the C ABI of sv2ffi, built with cffi's embedding mode.

The codec is plain C generated from the schema (it never starts Python); connections,
keys and the embedded template provider call into the same Python objects the Python API
uses, so a behaviour tested once in Python holds for C callers too.

Modules, in the order a build uses them:

- ``abi``      ABI facts that are not in the schema: status codes, constants, the list
               of exported functions with their C signatures and docs.
- ``render``   turns schema + abi into ``include/sv2.h``, the cffi cdef and the
               generated C wrappers (deterministic text, no I/O).
- ``build``    the cffi embedding build: writes the C sources CMake compiles.
- ``glue.c``   hand-written C: Python start-up, thread-local last error, frees.
- ``codegen``  the codec in plain C (sv2_codec.c/.h) rendered from the schema; libsv2's
               sv2_encode / sv2_decode / sv2_decoder_* are that code.
- ``handles.c`` C handles (decoders) as table entries.
- ``handles``  opaque C handles -> Python objects.
- ``exports``  the Python bodies of the exported functions (``@ffi.def_extern``).
- ``devbuild`` CMake build of a source checkout into build/capi (tests, interop).
- ``interop``  ``sv2ffi interop``: builds the C++ examples and runs them against Python.

Importing this package must stay cheap and free of cffi/compiler requirements: the
Python test-suite and the CLI import pieces of it without a built library.
"""

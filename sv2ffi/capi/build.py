"""The cffi embedding build of libsv2, driven by the schema.

Writes the C sources of the library into one directory; CMake compiles them together
with ``glue.c`` and links libpython (``CMakeLists.txt``):

  sv2.h            the public header, rendered from the schema (identical to the committed
                   include/sv2.h when that is up to date; the build never trusts a stale one)
  sv2_internal.h   declarations shared by the wrappers and glue.c
  sv2_exports.c    the exported C functions, each forwarding to an extern "Python" one
  sv2_codec.c/.h   the codec in plain C (sv2ffi/capi/codegen.py); libsv2 compiles the .c
                   with SV2_CODEC_LIBSV2, and installs both for standalone use
  _sv2ffi_capi.c   cffi's module: extern "Python" entry points + the frozen init code

The init code frozen into the library is deliberately tiny: make the installed sv2ffi
package importable (``SV2FFI_PYTHONPATH`` if set, else the site-packages directory the
library found itself in (glue.c), else the one fixed at build time; ``site.addsitedir``
so an editable install's .pth hook works too), then ``sv2ffi.capi.exports.install``
binds every export.  All behaviour lives in the package.

Run as a script by CMake: ``python sv2ffi/capi/build.py --out-dir DIR --site-dir DIR``.
As a script it imports the schema and the renderer from this source tree *without*
running ``sv2ffi/__init__.py``: the isolated build environment of ``pip install .`` has
cffi but none of sv2ffi's runtime dependencies.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

if __name__ == "__main__" and not __package__:  # pragma: no cover - exercised by CMake
    import types

    _root = Path(__file__).resolve().parents[2]
    for _name, _path in (("sv2ffi", _root / "sv2ffi"), ("sv2ffi.capi", _root / "sv2ffi" / "capi")):
        _mod = types.ModuleType(_name)
        _mod.__path__ = [str(_path)]
        sys.modules[_name] = _mod
    __package__ = "sv2ffi.capi"

from . import codegen, render  # noqa: E402

MODULE = "_sv2ffi_capi"
ENV_PYTHONPATH = "SV2FFI_PYTHONPATH"

#: C helpers the Python side calls through ``lib`` (implemented in glue.c)
HELPERS = """
void *sv2i_alloc(size_t n);
void sv2i_set_error(const char *msg);
void sv2i_mark_ready(void);
const char *sv2i_site_dir(void);
const char *sv2_last_error(void);
void sv2_bytes_free(Sv2Bytes *bytes);
Sv2Status sv2_encode(const Sv2Message *msg, Sv2Bytes *frame);
Sv2Status sv2_decode(const uint8_t *data, size_t len, Sv2Message *out, size_t *consumed);
"""

INIT_CODE = """\
import os, site, sys
from {module} import ffi, lib
_env = os.environ.get({env!r})
_found = ffi.string(lib.sv2i_site_dir()).decode()
if _env:
    for _d in reversed([d for d in _env.split(os.pathsep) if d]):
        if _d not in sys.path:
            sys.path.insert(0, _d)
        site.addsitedir(_d)
else:
    for _d in ([_found] if _found else {site_dirs!r}):
        site.addsitedir(_d)
from sv2ffi.capi import exports
exports.install(ffi, lib)
lib.sv2i_mark_ready()
"""


def make_ffi(site_dirs: list[str]):
    """The cffi FFI object describing libsv2's Python side."""
    import cffi

    ffi = cffi.FFI()
    ffi.embedding_api(render.render_cdef())
    ffi.cdef(HELPERS)
    ffi.set_source(MODULE, '#include "sv2.h"\n' + HELPERS)
    ffi.embedding_init_code(INIT_CODE.format(module=MODULE, env=ENV_PYTHONPATH,
                                             site_dirs=list(site_dirs)))
    return ffi


def _write(path: Path, text: str) -> None:
    """Atomic write (a parallel reader never sees half a file).  Outputs are rewritten
    even when unchanged: their timestamps must be newer than the inputs, or the build
    tool would run the generator again on every build."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_sources(out_dir: Path, site_dirs: list[str]) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    outputs = {
        "sv2.h": render.render_header(),
        "sv2_internal.h": render.render_internal_header(),
        "sv2_exports.c": render.render_wrappers(),
        codegen.CODEC_SOURCE: codegen.render_codec_source(),
        codegen.CODEC_HEADER: codegen.render_codec_header(),
    }
    for name, text in outputs.items():
        _write(out_dir / name, text)
    tmp = out_dir / (MODULE + ".c.new")  # cffi writes its file itself
    make_ffi(site_dirs).emit_c_code(str(tmp))
    os.replace(tmp, out_dir / (MODULE + ".c"))
    return [out_dir / n for n in [*outputs, MODULE + ".c"]]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out-dir", required=True, type=Path)
    ap.add_argument("--site-dir", action="append", default=[],
                    help="site-packages directory holding sv2ffi (repeatable)")
    args = ap.parse_args(argv)
    write_sources(args.out_dir, args.site_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Where libsv2 is installed, and what a C or C++ build needs to use it.

``pip install`` puts the library, the header, a pkg-config file and a CMake package
config inside the sv2ffi package (``sv2ffi/lib``, ``sv2ffi/include``); this module finds
them for ``sv2ffi config``:

    cc app.c $(sv2ffi config --cflags --libs)
    PKG_CONFIG_PATH=$(sv2ffi config --pkg-config-path) pkg-config --cflags --libs sv2ffi
    cmake -DCMAKE_PREFIX_PATH=$(sv2ffi config --cmake-prefix-path) ...   # find_package(sv2ffi)

``SV2FFI_PREFIX`` points at another installation (any directory with lib/libsv2.so and
include/sv2.h, e.g. a ``cmake --install`` prefix).  The rpath in ``--libs`` lets the
program find libsv2 without LD_LIBRARY_PATH; libsv2 finds libpython through its own.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

ENV_PREFIX = "SV2FFI_PREFIX"
LIBRARY = "libsv2.dylib" if sys.platform == "darwin" else "libsv2.so"


class NotInstalledError(FileNotFoundError):
    """No libsv2 next to the package: it was installed without its C part."""


@dataclass(frozen=True)
class Installation:
    prefix: Path

    @property
    def lib_dir(self) -> Path:
        return self.prefix / "lib"

    @property
    def include_dir(self) -> Path:
        return self.prefix / "include"

    @property
    def library(self) -> Path:
        return self.lib_dir / LIBRARY

    @property
    def header(self) -> Path:
        return self.include_dir / "sv2.h"

    @property
    def pkg_config_dir(self) -> Path:
        return self.lib_dir / "pkgconfig"

    @property
    def cmake_dir(self) -> Path:
        return self.lib_dir / "cmake" / "sv2ffi"

    def cflags(self) -> str:
        return f"-I{self.include_dir}"

    def libs(self) -> str:
        return f"-L{self.lib_dir} -Wl,-rpath,{self.lib_dir} -lsv2"

    def is_complete(self) -> bool:
        return self.library.is_file() and self.header.is_file()


def candidates() -> list[Path]:
    """Places searched, in order: $SV2FFI_PREFIX, then each directory of the sv2ffi
    package (an editable install has two: the CMake install tree and the sources)."""
    import sv2ffi

    out = []
    if os.environ.get(ENV_PREFIX):
        out.append(Path(os.environ[ENV_PREFIX]))
    out += [Path(p) for p in sv2ffi.__path__]
    return out


def find() -> Installation:
    searched = candidates()
    for prefix in searched:
        inst = Installation(prefix.resolve())
        if inst.is_complete():
            return inst
    raise NotInstalledError(
        "libsv2 is not installed next to the sv2ffi package (looked in "
        + ", ".join(str(p) for p in searched)
        + "); install with `pip install .` (needs cmake and a C compiler) or set "
        + ENV_PREFIX)

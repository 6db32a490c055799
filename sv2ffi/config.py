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
import shlex
import shutil
import subprocess
import sys
import sysconfig
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
    lines = ["libsv2 was not built: this is a pure-Python installation of sv2ffi (the codec, "
             "Noise, the template provider and every command except the C ones work)."]
    if build_failed():
        lines.append("pip tried to build it and the C build failed, so pip installed the "
                     "Python parts only.")
    missing = missing_build_tools()
    if missing:
        lines.append("What the C build needs and this machine lacks:")
        lines += [f"  - {m}" for m in missing]
    else:
        lines.append("The build tools look present now; the build may have failed for "
                     "another reason (run pip with -v to see CMake's output).")
    lines.append("On Debian/Ubuntu: sudo apt install g++ cmake python3-dev, then "
                 "pip install --force-reinstall --no-deps sv2ffi (or your source path). "
                 f"Or set {ENV_PREFIX} to an existing libsv2 installation.")
    lines.append("Looked in: " + ", ".join(str(p) for p in searched))
    raise NotInstalledError("\n".join(lines))


def build_failed() -> bool:
    """Whether the build backend fell back to a pure-Python wheel (pyproject.toml's
    ``if.failed`` override writes ``sv2ffi/_build_status.py`` only then)."""
    try:
        from . import _build_status  # type: ignore[attr-defined]
    except ImportError:
        return False
    return bool(getattr(_build_status, "LIBSV2_BUILD_FAILED", False))


def _runs(cmd: list[str]) -> bool:
    try:
        return subprocess.run(cmd + ["--version"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, timeout=30).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def missing_build_tools() -> list[str]:
    """What building libsv2 needs that is absent here: a C compiler, cmake >= 3.18, and
    the headers and library of this Python (Debian: python3-dev)."""
    out = []
    cc = os.environ.get("CC")
    if cc:
        if not _runs(shlex.split(cc)):
            out.append(f"a C compiler: CC={cc} does not run")
    elif not any(shutil.which(c) for c in ("cc", "gcc", "clang")):
        out.append("a C compiler (cc, gcc or clang on PATH; Debian: g++ or gcc)")
    if not shutil.which("cmake"):
        out.append("cmake 3.18 or newer (Debian: cmake; or pip install cmake)")
    include = sysconfig.get_paths().get("include")
    if not include or not (Path(include) / "Python.h").is_file():
        out.append(f"Python.h for Python {sys.version_info.major}.{sys.version_info.minor} "
                   f"(looked in {include}; Debian: python3-dev)")
    return out

"""Build libsv2, its C tests and the C++ examples from a source checkout with CMake.

Used by the test-suite and ``sv2ffi interop``: one build directory (``build/capi``),
configured once for the running interpreter and rebuilt incrementally, then installed
into ``build/capi/stage`` so consumers see the same layout ``pip install`` produces.
A file lock serialises concurrent builds (two pytest runs, or pytest and interop).
"""

from __future__ import annotations

import fcntl
import functools
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable


class BuildError(RuntimeError):
    """CMake failed; the message ends with its output."""


def source_root() -> Path | None:
    """The checkout this package lives in, or None for an installed package."""
    root = Path(__file__).resolve().parents[2]
    if (root / "CMakeLists.txt").is_file() and (root / "examples" / "cpp").is_dir():
        return root
    return None


@dataclass(frozen=True)
class Build:
    build_dir: Path
    stage: Path  # install prefix: lib/, include/, lib/cmake/, lib/pkgconfig/

    @property
    def lib_dir(self) -> Path:
        return self.stage / "lib"

    @property
    def include_dir(self) -> Path:
        return self.stage / "include"

    def test_program(self, name: str) -> Path:
        return self.build_dir / "tests" / "capi" / name

    def example(self, name: str) -> Path:
        return self.build_dir / "examples" / "cpp" / name


def _run(cmd: list[str], log: Callable[[str], None] | None, cwd: Path | None = None) -> str:
    proc = subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=900)
    if log:
        log("$ " + " ".join(cmd))
    if proc.returncode != 0:
        raise BuildError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-6000:]}")
    return proc.stdout


def generator_args() -> list[str]:
    return ["-G", "Ninja"] if shutil.which("ninja") else []


def build(build_dir: Path | None = None, *, python: str = sys.executable,
          log: Callable[[str], None] | None = None) -> Build:
    """Configure (first time), build and stage libsv2 + tests + examples."""
    root = source_root()
    if root is None:
        raise BuildError("not a source checkout: CMakeLists.txt and examples/cpp are missing")
    build_dir = (build_dir or root / "build" / "capi").resolve()
    build_dir.mkdir(parents=True, exist_ok=True)
    stage = build_dir / "stage"
    with open(build_dir / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        cache = build_dir / "CMakeCache.txt"
        if not cache.exists() or not re.search(rf"^Python_EXECUTABLE:\w+={re.escape(python)}$",
                                               cache.read_text(), re.M):
            _run(["cmake", "-S", str(root), "-B", str(build_dir), *generator_args(),
                  "-DCMAKE_BUILD_TYPE=RelWithDebInfo", f"-DPython_EXECUTABLE={python}",
                  "-DSV2FFI_BUILD_EXAMPLES=ON", "-DBUILD_TESTING=ON"], log)
        _run(["cmake", "--build", str(build_dir), "--parallel", str(min(os.cpu_count() or 1, 2))],
             log)
        _run(["cmake", "--install", str(build_dir), "--prefix", str(stage)], log)
    return Build(build_dir, stage)


@functools.lru_cache(maxsize=None)
def build_once() -> Build:
    """build() once per process (the test modules share it)."""
    return build()

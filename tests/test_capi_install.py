"""The issue's "done when", literally: on a fresh copy of the repository, `pip install .`
into a new venv, then a C program built with nothing but `sv2ffi config --cflags --libs`
compiles, links and round-trips every message; pkg-config and `sv2ffi interop` work from
that installation too.

Slow-ish (a wheel build: CMake, cffi, a C compile; pip's cache makes the dependencies
quick): about 30 s here, bounded at 10 minutes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sv2ffi import framing
from test_capi import expected_samples

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(
    not (shutil.which("cmake") and shutil.which("gcc") and shutil.which("git")),
    reason="cmake, a C compiler and git are needed")


def repository_files() -> list[str]:
    """What a fresh clone would hold (tracked files, plus new ones not yet committed)."""
    out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT,
                         capture_output=True, check=True, timeout=60).stdout
    return [p for p in out.decode().split("\0") if p and (ROOT / p).is_file()]


def sh(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kw)
    assert proc.returncode == 0, f"{cmd}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def fresh_clone(dest: Path) -> Path:
    """The repository's files copied to ``dest``, then made read-only (as a checkout on a
    read-only mount or owned by another user): a wheel must build without writing there."""
    for rel in repository_files():
        path = dest / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, path)
    set_writable(dest, False)
    return dest


def set_writable(tree: Path, writable: bool) -> None:
    for p in [tree, *tree.rglob("*")]:
        mode = p.stat().st_mode
        p.chmod(mode | 0o200 if writable else mode & ~0o222)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    base = tmp_path_factory.mktemp("install")
    src = fresh_clone(base / "src")
    venv = base / "venv"
    python = getattr(sys, "_base_executable", sys.executable)
    sh([python, "-m", "venv", str(venv)])
    # the C build must succeed here: no silent fallback to a pure-Python install
    sh([str(venv / "bin" / "pip"), "install", "--quiet", str(src)], cwd=base,
       env={**os.environ, "SV2FFI_REQUIRE_LIBSV2": "1"})
    yield base, venv
    set_writable(src, True)


def test_installed_package_has_license_and_type_marker(installed):
    base, venv = installed
    site = next((venv / "lib").glob("python3*/site-packages"))
    assert (site / "sv2ffi" / "py.typed").is_file()
    licenses = list(site.glob("sv2ffi-*.dist-info/licenses/LICENSE"))
    assert licenses and "MIT License" in licenses[0].read_text()
    assert not (site / "sv2ffi" / "_build_status.py").exists()  # the C build did not fail


def check_samples(output: str) -> None:
    lines = output.splitlines()
    expected = expected_samples()
    assert len(lines) == len(expected)
    for line, want in zip(lines, expected):
        assert bytes.fromhex(line.split()[1]) == framing.encode_message(want)


def test_config_flags_alone_build_a_program_that_round_trips_every_message(installed):
    base, venv = installed
    flags = sh([str(venv / "bin" / "sv2ffi"), "config", "--cflags", "--libs"]).stdout.split()
    assert any(f.startswith("-I") for f in flags) and "-lsv2" in flags
    exe = base / "all_messages"
    sh(["gcc", "-std=c11", "-Wall", "-Wextra", "-Werror", "-pedantic",
        str(ROOT / "tests" / "capi" / "all_messages.c"), *flags, "-o", str(exe)])
    # no environment at all: the rpath finds libsv2, libsv2 finds its venv
    run = sh([str(exe)], env={}, cwd="/")
    check_samples(run.stdout)


def test_pkg_config_file_of_the_installation(installed):
    if not shutil.which("pkg-config"):
        pytest.skip("pkg-config not installed")
    base, venv = installed
    pc_dir = sh([str(venv / "bin" / "sv2ffi"), "config", "--pkg-config-path"]).stdout.strip()
    flags = sh(["pkg-config", "--cflags", "--libs", "sv2ffi"],
               env={**os.environ, "PKG_CONFIG_PATH": pc_dir}).stdout.split()
    exe = base / "all_messages_pc"
    sh(["gcc", "-std=c11", str(ROOT / "tests" / "capi" / "all_messages.c"), *flags, "-o",
        str(exe)])
    check_samples(sh([str(exe)], env={}).stdout)


def test_interop_from_the_installed_package(installed):
    """Outside any checkout: the examples shipped in the wheel, built with CMake's
    find_package against the installed library, pass against the Python peers."""
    if not shutil.which("g++"):
        pytest.skip("g++ not installed")
    base, venv = installed
    cwd = base / "read-only-cwd"
    cwd.mkdir(exist_ok=True)
    cwd.chmod(0o555)
    cache = base / "cache"
    proc = sh([str(venv / "bin" / "sv2ffi"), "interop"], cwd=cwd,
              env={**os.environ, "XDG_CACHE_HOME": str(cache)})
    from sv2ffi.capi.interop import EXAMPLES

    assert f"{len(EXAMPLES)} passed, 0 failed" in proc.stdout
    assert "against " + str(venv) in proc.stdout
    assert f" in {cache}/sv2ffi/interop-" in proc.stdout  # the cache, not the current dir
    assert not any(cwd.iterdir())

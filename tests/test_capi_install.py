"""libsv2 as users deploy it: a wheel built in one venv ("the builder's", under a home
nobody else can read), installed into another, then used by C programs built with nothing
but `sv2ffi config --cflags --libs`, pkg-config or find_package.

The library finds its own package at run time (glue.c: dladdr on itself, the
site-packages two levels up, the venv's pyvenv.cfg), so it keeps working when the
builder's venv is gone, when the venv it is installed in is moved, for another user, and
whatever PYTHON* variables the host has.

Slow-ish (one wheel build: CMake, cffi, a C compile; pip's cache makes the dependencies
quick): about a minute here, bounded at 10 minutes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
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


class Deployment:
    def __init__(self, base: Path, venv: Path, builder: Path):
        self.base = base
        self.venv = venv
        self.builder = builder

    def flags(self) -> list[str]:
        return sh([str(self.venv / "bin" / "sv2ffi"), "config", "--cflags",
                   "--libs"]).stdout.split()

    def lib_dir(self) -> str:
        return sh([str(self.venv / "bin" / "sv2ffi"), "config", "--libdir"]).stdout.strip()


@pytest.fixture(scope="module")
def installed():
    base = Path(tempfile.mkdtemp(prefix="sv2ffi-deploy-"))
    base.chmod(0o755)  # other users may enter; the builder's home below they may not
    src = fresh_clone(base / "src")
    python = getattr(sys, "_base_executable", sys.executable)
    builder = base / "builder-home"
    builder.mkdir(mode=0o700)
    sh([python, "-m", "venv", str(builder / "venv")])
    # from a read-only tree; the C build must succeed (no silent pure-Python fallback)
    sh([str(builder / "venv" / "bin" / "pip"), "wheel", "--quiet", "--no-deps", "-w",
        str(builder / "wheels"), str(src)], cwd=builder,
       env={**os.environ, "SV2FFI_REQUIRE_LIBSV2": "1"})
    wheel = next((builder / "wheels").glob("sv2ffi-*.whl"))
    venv = base / "venv"
    sh([python, "-m", "venv", str(venv)])
    sh([str(venv / "bin" / "pip"), "install", "--quiet", str(wheel)], cwd=base)
    for d in (venv, src):
        subprocess.run(["chmod", "-R", "a+rX", str(d)], check=True, timeout=120)
    yield Deployment(base, venv, builder)
    set_writable(src, True)
    (base / "read-only-cwd").exists() and (base / "read-only-cwd").chmod(0o755)
    shutil.rmtree(base, ignore_errors=True)


def test_installed_package_has_license_and_type_marker(installed):
    site = next((installed.venv / "lib").glob("python3*/site-packages"))
    assert (site / "sv2ffi" / "py.typed").is_file()
    licenses = list(site.glob("sv2ffi-*.dist-info/licenses/LICENSE"))
    assert licenses and "MIT License" in licenses[0].read_text()
    assert not (site / "sv2ffi" / "_build_status.py").exists()  # the C build did not fail


def build_stress(dep: Deployment, name: str = "stress") -> Path:
    exe = dep.base / name
    if not exe.exists():
        sh(["gcc", "-std=c11", "-I", str(ROOT / "tests" / "capi"),
            str(ROOT / "tests" / "capi" / "stress.c"), *dep.flags(), "-o", str(exe)])
        exe.chmod(0o755)
    return exe


def check_samples(output: str) -> None:
    lines = output.splitlines()
    expected = expected_samples()
    assert len(lines) == len(expected)
    for line, want in zip(lines, expected):
        assert bytes.fromhex(line.split()[1]) == framing.encode_message(want)


def test_config_flags_alone_build_a_program_that_round_trips_every_message(installed):
    base = installed.base
    flags = installed.flags()
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
    base, venv = installed.base, installed.venv
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
    base, venv = installed.base, installed.venv
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


def test_the_standalone_codec_is_installed_next_to_sv2h(installed):
    include = Path(installed.flags()[0][2:])
    assert {"sv2.h", "sv2_codec.h", "sv2_codec.c"} <= {p.name for p in include.iterdir()}


def test_python_parts_work_for_another_user(installed):
    """A service user who cannot read the builder's home: libpython and the packages come
    from the venv the library is installed in."""
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root and setpriv to run as another user")
    exe = build_stress(installed)
    assert oct(installed.builder.stat().st_mode & 0o777) == "0o700"
    proc = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                           str(exe), "20", "2"], capture_output=True, text=True, timeout=300,
                          env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"}, cwd="/")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert ", 2 handshakes, 0 failures" in proc.stdout


def test_host_python_variables_do_not_leak_in(installed, tmp_path):
    exe = build_stress(installed)
    decoy = tmp_path / "decoy"
    (decoy / "sv2ffi").mkdir(parents=True)
    (decoy / "sv2ffi" / "__init__.py").write_text("raise ImportError('the host PYTHONPATH')\n")
    env = {"PYTHONPATH": str(decoy), "PYTHONHOME": "/nonexistent", "PYTHONSAFEPATH": "1",
           "PYTHONNOUSERSITE": "", "PYTHONSTARTUP": str(decoy / "nope.py"),
           "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([str(exe), "5", "1"], capture_output=True, text=True, timeout=300,
                          env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_sv2ffi_pythonpath_still_overrides_without_a_venv_on_path(installed):
    """The override works with nothing but /usr/bin on PATH (it used to start the
    system python3's standard library)."""
    exe = build_stress(installed)
    site = next((installed.venv / "lib").glob("python3*/site-packages"))
    proc = subprocess.run([str(exe), "5", "1"], capture_output=True, text=True, timeout=300,
                          env={"SV2FFI_PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_works_after_the_builders_venv_is_deleted_and_after_a_move(installed):
    exe = build_stress(installed)
    shutil.rmtree(installed.builder)
    proc = subprocess.run([str(exe), "5", "1"], capture_output=True, text=True, timeout=300,
                          env={}, cwd="/")
    assert proc.returncode == 0, proc.stderr[-3000:]
    moved = installed.base / "moved-venv"
    lib_dir = installed.lib_dir()
    installed.venv.rename(moved)
    try:
        new_lib = lib_dir.replace(str(installed.venv), str(moved))
        proc = subprocess.run([str(exe), "5", "1"], capture_output=True, text=True,
                              timeout=300, env={"LD_LIBRARY_PATH": new_lib}, cwd="/")
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert ", 1 handshakes, 0 failures" in proc.stdout
    finally:
        moved.rename(installed.venv)

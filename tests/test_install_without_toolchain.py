"""`pip install` on a machine that cannot build libsv2 (here: CC and CXX point at
/bin/false, so CMake finds no working compiler): the pure-Python parts install anyway,
everything but the C side works, and `sv2ffi config` says that libsv2 was not built and
what is missing.  The source tree is read-only throughout, and the sdist carries the
LICENSE.

One fresh venv, about 20-40 s (pip's cache makes the dependencies quick)."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile

import pytest

from test_capi_install import fresh_clone, set_writable, sh, shutil

pytestmark = pytest.mark.skipif(not shutil.which("git"), reason="git is needed")


@pytest.fixture(scope="module")
def pure(tmp_path_factory):
    base = tmp_path_factory.mktemp("pure")
    src = fresh_clone(base / "src")
    venv = base / "venv"
    python = getattr(sys, "_base_executable", sys.executable)
    sh([python, "-m", "venv", str(venv)])
    env = {k: v for k, v in os.environ.items() if k != "SV2FFI_REQUIRE_LIBSV2"}
    env.update(CC="/bin/false", CXX="/bin/false")
    sh([str(venv / "bin" / "pip"), "install", "--quiet", str(src)], cwd=base, env=env)
    yield base, src, venv, env
    set_writable(src, True)


def test_config_says_libsv2_was_not_built_and_why(pure):
    base, _src, venv, env = pure
    proc = subprocess.run([str(venv / "bin" / "sv2ffi"), "config"], capture_output=True,
                          text=True, env=env, timeout=60)
    assert proc.returncode == 2
    err = proc.stderr
    assert "libsv2 was not built" in err
    assert "the C build failed" in err
    assert "CC=/bin/false does not run" in err
    assert "apt install g++ cmake python3-dev" in err


def test_the_python_parts_work(pure):
    base, _src, venv, env = pure
    py = str(venv / "bin" / "python")
    out = sh([str(venv / "bin" / "sv2ffi"), "decode",
              "0000021e0000000000001970726f746f636f6c2d76657273696f6e2d6d69736d61746368"],
             env=env).stdout
    assert "protocol-version-mismatch" in out
    sh([py, "-c", "import sv2ffi, sv2ffi.tp, sv2ffi.tp.server, sv2ffi.client, sv2ffi.keys"],
       env=env)
    # no C tip pass either: a TP seals and writes its tips in Python, and says so
    said = sh([py, "-c", "from sv2ffi import fanout; assert not fanout.AVAILABLE; "
               "print(fanout.describe())"], env=env).stdout
    assert said.startswith("Python (sv2ffi._fanout was not built")
    # nor the C getblocktemplate reader: the rpc source decodes replies with json
    said = sh([py, "-c", "from sv2ffi.tp.sources import gbt; assert not gbt.scanner_built(); "
               "assert gbt.scan_reply(b'{}') is None; print(gbt.describe())"], env=env).stdout
    assert said.startswith("json (sv2ffi._gbtscan was not built")
    site = next((venv / "lib").glob("python3*/site-packages"))
    assert (site / "sv2ffi" / "py.typed").is_file()
    assert not list(site.glob("sv2ffi/lib/libsv2*"))
    assert list(site.glob("sv2ffi-*.dist-info/licenses/LICENSE"))
    tp = sh([str(venv / "bin" / "sv2ffi"), "tp", "--version"], env=env).stdout
    assert tp.startswith("sv2ffi ")


def test_sdist_from_the_read_only_tree_carries_the_license(pure):
    base, src, venv, env = pure
    sh([str(venv / "bin" / "pip"), "install", "--quiet", "scikit-build-core>=0.10"], env=env)
    dist = base / "dist"
    dist.mkdir()
    name = sh([str(venv / "bin" / "python"), "-c",
               "import sys; from scikit_build_core.build import build_sdist; "
               "print(build_sdist(sys.argv[1]))", str(dist)], cwd=src, env=env).stdout.split()[-1]
    with tarfile.open(dist / name) as tar:
        names = tar.getnames()
    assert any(n.endswith("/LICENSE") for n in names)
    assert any(n.endswith("/sv2ffi/py.typed") for n in names)
    assert not any("/.venv/" in n or "/build/" in n for n in names)

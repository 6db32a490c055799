"""include/sv2.h: generated from the schema, drift-checked, compiles as C11 and C++17.

These tests need a C compiler but not libsv2: they parse and compile the header alone.
"""

from __future__ import annotations

import inspect
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sv2ffi import errors, schema
from sv2ffi.capi import abi, render

ROOT = Path(__file__).resolve().parents[1]
HEADER = ROOT / "include" / "sv2.h"
SCRIPT = ROOT / "scripts" / "build_header.py"
CAPI_TESTS = ROOT / "tests" / "capi"

needs_cc = pytest.mark.skipif(not (shutil.which("gcc") and shutil.which("g++")),
                              reason="gcc/g++ not installed")


def run_script(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=cwd, capture_output=True,
                          text=True, timeout=60)


def test_rendering_is_deterministic():
    assert render.render_header() == render.render_header()
    assert render.render_cdef() == render.render_cdef()


def test_committed_header_is_up_to_date():
    proc = run_script("--check")
    assert proc.returncode == 0, proc.stderr
    assert HEADER.read_text() == render.render_header()


@pytest.mark.parametrize("edit, names", [
    (("uint64_t template_id;", "uint32_t template_id;"), ["struct Sv2NewTemplate"]),
    (("#define SV2_NOISE_MAC_SIZE 16", "#define SV2_NOISE_MAC_SIZE 17"),
     ["#define SV2_NOISE_MAC_SIZE"]),
    (("    SV2_MSG_SUBMIT_SOLUTION = 0x76,\n", ""), ["enum Sv2MsgType"]),
    (("Sv2Status sv2_encode(const Sv2Message *msg, Sv2Bytes *frame);",
      "Sv2Status sv2_encode(Sv2Message *msg, Sv2Bytes *frame);"), ["function sv2_encode"]),
    (("/** U32: header nonce */", "/** U32: the nonce */"), ["text (doc comments or layout) differs"]),
])
def test_check_fails_on_a_hand_edited_header(tmp_path, edit, names):
    old, new = edit
    text = HEADER.read_text()
    assert old in text
    edited = tmp_path / "sv2.h"
    edited.write_text(text.replace(old, new, 1))
    proc = run_script("--check", "--header", str(edited))
    assert proc.returncode == 1
    for name in names:
        assert name in proc.stderr
    assert "fix: python scripts/build_header.py" in proc.stderr
    if old.startswith("uint64_t"):  # the diff shows both sides of the changed member
        assert "-  uint32_t template_id;" in proc.stderr
        assert "+  uint64_t template_id;" in proc.stderr


def test_check_reports_an_unparseable_header(tmp_path):
    broken = tmp_path / "sv2.h"
    broken.write_text(HEADER.read_text().replace("} Sv2Bytes;", "} Sv2Bytes", 1))
    proc = run_script("--check", "--header", str(broken))
    assert proc.returncode == 1
    assert "does not parse" in proc.stderr


def test_header_names_every_message_field_and_doc():
    text = HEADER.read_text()
    assert "GENERATED FILE, DO NOT EDIT" in text
    assert '#ifdef __cplusplus\nextern "C" {' in text
    assert text.startswith("/* sv2.h") and "#ifndef SV2_H\n#define SV2_H" in text
    for m in schema.MESSAGES:
        assert f"SV2_MSG_{m.const_name} = 0x{m.extension_type << 8 | m.msg_type:02x}," in text
        assert f"        Sv2{m.class_name} {m.snake_name};" in text
        struct = text.split(f"typedef struct Sv2{m.class_name} {{")[1].split("}")[0]
        for f in m.fields:
            assert re.search(rf"\b{f.name}\b", struct), (m.name, f.name)
            assert f.doc.split(";")[0][:30] in struct.replace("\n     * ", " "), (m.name, f.name)
    assert "msg.new_template.template_id" in text


def test_every_error_status_has_a_code():
    statuses = {cls.status for _, cls in inspect.getmembers(errors, inspect.isclass)
                if issubclass(cls, errors.Sv2Error)}
    assert statuses <= set(abi.STATUS), statuses - set(abi.STATUS)
    assert abi.STATUS["SV2_OK"] == 0 and abi.STATUS["SV2_NEED_MORE_DATA"] > 0
    assert all(v < 0 for k, v in abi.STATUS.items() if k.startswith("SV2_ERR_"))
    assert len(set(abi.STATUS.values())) == len(abi.STATUS)


def test_abi_literals_match_the_noise_and_key_modules():
    noise = pytest.importorskip("sv2ffi.noise")
    keys = pytest.importorskip("sv2ffi.keys")
    assert abi.NOISE_ACT1_SIZE == noise.ACT1_SIZE
    assert abi.NOISE_ACT2_SIZE == noise.ACT2_SIZE
    assert abi.NOISE_MAC_SIZE == noise.MAC_SIZE
    assert abi.NOISE_MAX_CT_CHUNK == noise.MAX_CT_CHUNK
    assert abi.NOISE_MAX_PT_CHUNK == noise.MAX_PT_CHUNK
    assert abi.NOISE_HEADER_CT_SIZE == noise.HEADER_CT_SIZE
    assert abi.CERTIFICATE_SIZE == keys.Certificate.SIZE
    longest = keys.encode_authority_pubkey(b"\xff" * 32)
    assert len(longest) + 1 <= abi.AUTHORITY_PUBKEY_TEXT_SIZE


def test_cdef_is_accepted_by_cffi_and_matches_the_header():
    cffi = pytest.importorskip("cffi")
    ffi = cffi.FFI()
    ffi.cdef(render.render_cdef())
    # the same declarations, parsed from the header, give the same declaration set
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import build_header
    finally:
        sys.path.pop(0)
    header_decls = build_header.declarations(render.render_header())
    cdef_text = render.render_cdef()
    for key in header_decls:
        kind, name = key.split(" ", 1)
        if kind in ("struct", "enum", "typedef"):
            assert re.search(rf"\b{name}\b", cdef_text), key
    assert ffi.typeof("Sv2Message").kind == "struct"
    for f in abi.python_functions():
        assert f.internal_name in cdef_text


@needs_cc
def test_layout_seen_by_cffi_equals_the_c_compiler(tmp_path):
    """cffi computes struct layouts from the cdef; the compiler from the header. Every
    offset and size must agree, or Python would read the wrong bytes."""
    cffi = pytest.importorskip("cffi")
    ffi = cffi.FFI()
    ffi.cdef(render.render_cdef())
    lines, expected = [], []
    for m in schema.MESSAGES:
        struct = f"Sv2{m.class_name}"
        lines.append(f'printf("%zu\\n", sizeof({struct}));')
        expected.append(ffi.sizeof(struct))
        for f in m.fields:
            lines.append(f'printf("%zu\\n", offsetof({struct}, {f.name}));')
            expected.append(ffi.offsetof(struct, f.name))
        lines.append(f'printf("%zu\\n", offsetof(Sv2Message, {m.snake_name}));')
        expected.append(ffi.offsetof("Sv2Message", m.snake_name))
    for m in schema.MESSAGES:  # the union's reserved size holds every message
        assert ffi.sizeof(f"Sv2{m.class_name}") <= schema.C_UNION_RESERVED, m.name
    assert ffi.sizeof("Sv2Message") == ffi.offsetof("Sv2Message", "reserved") \
        + schema.C_UNION_RESERVED
    for t in ("Sv2Message", "Sv2Bytes", "Sv2ResponderKeys", "Sv2Keypair"):
        lines.append(f'printf("%zu\\n", sizeof({t}));')
        expected.append(ffi.sizeof(t))
    src = tmp_path / "layout.c"
    src.write_text('#include <stdio.h>\n#include <stddef.h>\n#include "sv2.h"\nint main(void){\n'
                   + "\n".join(lines) + "\nreturn 0;}\n")
    exe = tmp_path / "layout"
    subprocess.run(["gcc", "-std=c11", f"-I{ROOT / 'include'}", str(src), "-o", str(exe)],
                   check=True, timeout=60)
    got = [int(x) for x in subprocess.run([str(exe)], capture_output=True, text=True,
                                          check=True).stdout.split()]
    assert got == expected


@needs_cc
@pytest.mark.parametrize("compiler, args, source", [
    ("gcc", ["-std=c11", "-Wall", "-Wextra", "-Werror", "-pedantic"], HEADER),
    ("gcc", ["-std=c11", "-Wall", "-Wextra", "-Werror", "-pedantic"],
     CAPI_TESTS / "header_c11.c"),
    ("g++", ["-std=c++17", "-Wall", "-Wextra", "-Werror"], HEADER),
    ("g++", ["-std=c++17", "-Wall", "-Wextra", "-Werror"], CAPI_TESTS / "header_cxx17.cpp"),
])
def test_header_compiles_strictly(tmp_path, compiler, args, source):
    lang = ["-x", "c" if compiler == "gcc" else "c++"] if source.suffix == ".h" else []
    proc = subprocess.run([compiler, *args, f"-I{ROOT / 'include'}", "-c", *lang, str(source),
                           "-o", str(tmp_path / "out.o")], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_pre_push_hook_runs_the_check(tmp_path):
    """The hook, in a scratch clone-like tree: passes as is, fails after a hand edit."""
    if not shutil.which("git"):
        pytest.skip("git not installed")
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    (repo / "include").mkdir()
    shutil.copy(SCRIPT, repo / "scripts" / "build_header.py")
    shutil.copy(ROOT / "scripts" / "pre-push", repo / "scripts" / "pre-push")
    shutil.copytree(ROOT / "sv2ffi", repo / "sv2ffi",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(HEADER, repo / "include" / "sv2.h")
    subprocess.run(["git", "init", "-q", str(repo)], check=True, timeout=30)
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"}
    ok = subprocess.run([str(repo / "scripts" / "pre-push")], cwd=repo, capture_output=True,
                        text=True, env=env, timeout=60)
    assert ok.returncode == 0, ok.stderr
    header = repo / "include" / "sv2.h"
    header.write_text(header.read_text().replace("size_t len;", "int len;", 1))
    bad = subprocess.run([str(repo / "scripts" / "pre-push")], cwd=repo, capture_output=True,
                         text=True, env=env, timeout=60)
    assert bad.returncode == 1
    assert "struct Sv2Bytes" in bad.stderr and "fix:" in bad.stderr

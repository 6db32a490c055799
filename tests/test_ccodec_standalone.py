"""The standalone C codec (`sv2ffi codegen`): C99 with nothing but libc, strict flags,
gcc and clang, 64-bit and 32-bit; a round trip of every vector through it; and the fuzz
run of its decoders under AddressSanitizer and UndefinedBehaviorSanitizer.

Compilers and 32-bit support come from Debian packages: `make c-tools` installs clang,
libFuzzer and gcc-multilib. Without them the matching cases are skipped with that reason.

The fuzz run is reduced here (SV2FFI_FUZZ_COUNT inputs, default 200,000, about 20 s);
the issue's full run is e.g. `SV2FFI_FUZZ_COUNT=5000000 .venv/bin/pytest
tests/test_ccodec_standalone.py -k fuzz -s` (prints the count).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sv2ffi import framing, jsonform

from conftest import load_vectors

ROOT = Path(__file__).resolve().parents[1]
CAPI = ROOT / "tests" / "capi"
STRICT = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic"]
FUZZ_COUNT = int(os.environ.get("SV2FFI_FUZZ_COUNT", "200000"))
INSTALL_HINT = "run `make c-tools` (Debian packages clang, libfuzzer-14-dev, gcc-multilib)"


@pytest.fixture(scope="module")
def codec_dir(tmp_path_factory) -> Path:
    """The pair as a user gets it: `sv2ffi codegen --out DIR`."""
    out = tmp_path_factory.mktemp("standalone")
    exe = Path(sys.executable).parent / "sv2ffi"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "sv2ffi"]
    proc = subprocess.run(cmd + ["codegen", "--out", str(out)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["sv2_codec.c", "sv2_codec.h"]
    return out


def frames() -> list[bytes]:
    return [framing.encode_message(jsonform.message_from_json(v))
            for v in load_vectors("messages.json")["vectors"] if not v.get("legacy")]


def _can_build(cc: str, bits: str, tmp_path: Path) -> str | None:
    """None if `cc bits` builds and runs a C program here, else why not."""
    if not shutil.which(cc):
        return f"{cc} is not installed; {INSTALL_HINT}"
    src = tmp_path / "probe.c"
    src.write_text("#include <stdio.h>\nint main(void){return printf(\"\") ;}\n")
    proc = subprocess.run([cc, bits, str(src), "-o", str(tmp_path / "probe")],
                          capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        return f"{cc} {bits} cannot build here ({proc.stderr.strip()[:120]}); {INSTALL_HINT}"
    return None


@pytest.mark.parametrize("cc", ["gcc", "clang"])
@pytest.mark.parametrize("bits", ["-m64", "-m32"])
def test_strict_c99_build_and_round_trip(codec_dir, cc, bits, tmp_path):
    why = _can_build(cc, bits, tmp_path)
    if why:
        pytest.skip(why)
    exe = tmp_path / "roundtrip"
    proc = subprocess.run(
        [cc, bits, *STRICT, "-O2", "-DSV2_STANDALONE", f"-I{codec_dir}",
         str(CAPI / "roundtrip.c"), str(codec_dir / "sv2_codec.c"), "-o", str(exe)],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    wire = frames()
    run = subprocess.run([str(exe)], input="\n".join(f.hex() for f in wire) + "\n",
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == [f.hex() for f in wire]
    # the objects need nothing beyond the C library
    nm = shutil.which("nm")
    if nm:
        obj = tmp_path / "codec.o"
        subprocess.run([cc, bits, *STRICT, "-c", f"-I{codec_dir}", str(codec_dir / "sv2_codec.c"),
                        "-o", str(obj)], check=True, timeout=300)
        undefined = set(subprocess.run([nm, "-u", str(obj)], capture_output=True, text=True,
                                       check=True).stdout.split()) - {"U"}
        libc = {"free", "malloc", "calloc", "realloc", "memcpy", "memmove", "memset", "strlen",
                "snprintf", "vsnprintf", "__stack_chk_fail", "_GLOBAL_OFFSET_TABLE_",
                "__x86.get_pc_thunk.bx", "__x86.get_pc_thunk.ax", "__x86.get_pc_thunk.cx",
                "__x86.get_pc_thunk.dx", "__x86.get_pc_thunk.si", "__x86.get_pc_thunk.di",
                "__tls_get_addr", "___tls_get_addr"}
        assert undefined <= libc, undefined - libc


def test_the_header_alone_compiles_as_c99_c11_and_cxx17(codec_dir, tmp_path):
    for cc, std in (("gcc", "-std=c99"), ("gcc", "-std=c11"), ("g++", "-std=c++17")):
        if not shutil.which(cc):
            continue
        lang = "c++" if cc == "g++" else "c"
        proc = subprocess.run([cc, std, "-Wall", "-Wextra", "-Werror", "-pedantic", "-x", lang,
                               "-fsyntax-only", str(codec_dir / "sv2_codec.h")],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, (cc, std, proc.stderr)


def test_the_codec_part_of_sv2h_and_sv2_codec_h_declare_the_same_things(codec_dir):
    """Same types, constants and functions: code written for one compiles with the other."""
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import build_header
    finally:
        sys.path.pop(0)
    text = (codec_dir / "sv2_codec.h").read_text()
    # the C99 spelling of the anonymous union is the one difference (C11: plain `union`)
    text = re.sub(r"#if !defined\(__cplusplus\).*?#endif\n", "", text, flags=re.S)
    text = text.replace("SV2_ANONYMOUS_UNION", "union")
    codec = build_header.declarations(text)
    full = build_header.declarations((ROOT / "include" / "sv2.h").read_text())
    for key, decl in codec.items():
        assert full.get(key) == decl, key


def _fuzz_seeds(path: Path) -> None:
    path.write_text("\n".join(f.hex() for f in frames()) + "\n")


def test_fuzz_the_decoders_under_asan_and_ubsan(codec_dir, tmp_path):
    exe = tmp_path / "fuzz_decode"
    proc = subprocess.run(
        ["gcc", "-std=c99", "-O1", "-g", "-fsanitize=address,undefined",
         "-fno-sanitize-recover=all", "-fno-omit-frame-pointer", f"-I{codec_dir}",
         str(CAPI / "fuzz_decode.c"), str(codec_dir / "sv2_codec.c"), "-o", str(exe)],
        capture_output=True, text=True, timeout=300)
    if proc.returncode != 0 and "asan" in proc.stderr.lower():
        pytest.skip(f"the sanitizer runtimes are missing: {proc.stderr[:200]}")
    assert proc.returncode == 0, proc.stderr
    seeds = tmp_path / "seeds.txt"
    _fuzz_seeds(seeds)
    run = subprocess.run([str(exe), str(seeds), str(FUZZ_COUNT), "1"], capture_output=True,
                         text=True, timeout=3600,
                         env={**os.environ, "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=1"})
    assert run.returncode == 0, run.stderr[-4000:]
    assert f"fuzz_decode: {FUZZ_COUNT} inputs" in run.stdout
    print(run.stdout.strip())


def test_libfuzzer_run(codec_dir, tmp_path):
    if not shutil.which("clang"):
        pytest.skip(f"clang is not installed; {INSTALL_HINT}")
    exe = tmp_path / "fuzz_libfuzzer"
    proc = subprocess.run(
        ["clang", "-O1", "-g", "-fsanitize=fuzzer,address,undefined", "-DSV2_LIBFUZZER",
         "-fno-sanitize-recover=all", f"-I{codec_dir}", str(CAPI / "fuzz_decode.c"),
         str(codec_dir / "sv2_codec.c"), "-o", str(exe)],
        capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        pytest.skip(f"clang cannot build a libFuzzer target here: {proc.stderr[:200]}; "
                    f"{INSTALL_HINT}")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i, f in enumerate(frames()):
        (corpus / f"v{i}").write_bytes(f)
    run = subprocess.run([str(exe), f"-runs={FUZZ_COUNT}", "-max_len=4096", "-seed=1",
                          str(corpus)], capture_output=True, text=True, timeout=3600)
    assert run.returncode == 0, run.stderr[-4000:]
    done = [ln for ln in run.stderr.splitlines() if ln.startswith("Done ")]
    assert done, run.stderr[-2000:]
    print(done[-1])

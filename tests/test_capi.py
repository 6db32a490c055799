"""libsv2 from C: every message round-trips, hostile input gives status codes, the library
finds its Python, and the handle table and last error behave as the contract says.

The library and the C programs in tests/capi are built once per run with CMake into
build/capi (incremental: a few tenths of a second when nothing changed).
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sv2ffi import framing
from sv2ffi.messages import (CLASSES, ChannelEndpointChanged, CoinbaseOutputConstraints,
                             NewExtendedMiningJob, NewMiningJob, NewTemplate, Reconnect,
                             RequestExtensionsError, RequestTransactionData,
                             RequestTransactionDataError, RequestTransactionDataSuccess,
                             SetGroupChannel, SetNewPrevHash, SetupConnection,
                             SetupConnectionError, SetupConnectionSuccess, SubmitSharesExtended,
                             SubmitSolution)
from conftest import load_vectors
from strategies import any_message, message_strategy

pytestmark = pytest.mark.skipif(not (shutil.which("cmake") and shutil.which("gcc")),
                                reason="cmake and a C compiler are needed to build libsv2")


@pytest.fixture(scope="module")
def capi():
    from sv2ffi.capi import devbuild

    return devbuild.build_once()


def run(program: Path, *args: str, stdin: str | None = None, env: dict | None = None,
        timeout: float = 120) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("SV2FFI_")}
    full_env.update(env or {})
    return subprocess.run([str(program), *args], input=stdin, capture_output=True, text=True,
                          env=full_env, timeout=timeout)


def expected_samples() -> list:
    """The values of tests/capi/sample_messages.h, written independently in Python."""
    outputs = bytes(8) + bytes.fromhex("266a24aa21a9ed") + b"\x11" * 31
    return [
        SetupConnection(2, 2, 2, 1, "127.0.0.1", 8442, "sv2ffi-c", "x86", "0.1", ""),
        SetupConnectionSuccess(2, 5),
        SetupConnectionError(0, "unsupported-protocol"),
        ChannelEndpointChanged(0xDEADBEEF),
        Reconnect("pool.example", 3333),
        CoinbaseOutputConstraints(128, 7),
        NewTemplate(0x0102030405060708, True, 0x20000000, 2, bytes([3, 1, 2, 3]), 0xFFFFFFFF,
                    5000000000, 1, outputs, 0,
                    [bytes((i * 16 + j) & 0xFF for j in range(32)) for i in range(12)]),
        SetNewPrevHash(0x0102030405060708, bytes(0xC0 + j for j in range(32)), 1700000000,
                       0x207FFFFF, b"\xff" * 29 + b"\x7f" * 3),
        RequestTransactionData(42),
        RequestTransactionDataSuccess(42, b"\xaa" * 32, [bytes(range(1, 61)), b"",
                                                         bytes((255 - i) & 0xFF
                                                               for i in range(250))]),
        RequestTransactionDataError(43, "stale-template-id"),
        SubmitSolution(7, 0x20000000, 1700000001, 0x12345678,
                       bytes((i * 3) & 0xFF for i in range(100))),
        NewMiningJob(7, 1, 1700000002, 0x20000000, bytes((3 * 16 + j) & 0xFF for j in range(32))),
        NewExtendedMiningJob(7, 2, None, 0x20000000, True,
                             [bytes((i * 16 + j) & 0xFF for j in range(32)) for i in range(2)],
                             bytes((i * 3) & 0xFF for i in range(42)),
                             bytes((i * 3) & 0xFF for i in range(42, 100))),
        SubmitSharesExtended(7, 11, 2, 0xCAFEBABE, 1700000003, 0x20000000, b"\xaa" * 8,
                             "Worker_001"),
        SetGroupChannel(3, [7, 8, 0x01020304]),
        RequestExtensionsError(1, [2, 3], [5]),
    ]


def test_every_message_built_in_c_round_trips_and_matches_python(capi):
    proc = run(capi.test_program("all_messages"))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    expected = expected_samples()
    assert len(lines) == len(expected)
    for line, want in zip(lines, expected):
        type_value, frame_hex = line.split()
        frame = bytes.fromhex(frame_hex)
        assert int(type_value) == want.SPEC.extension_type << 8 | want.SPEC.msg_type
        dec = framing.FrameDecoder()
        dec.feed(frame)
        assert framing.decode_frame(dec.next_frame()) == want
        assert frame == framing.encode_message(want)  # byte for byte what Python sends


@settings(max_examples=25, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.lists(any_message(), min_size=1, max_size=12))
def test_c_decode_then_encode_is_the_identity(capi, messages):
    frames = [framing.encode_message(m) for m in messages]
    proc = run(capi.test_program("roundtrip"), stdin="\n".join(f.hex() for f in frames) + "\n")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[:-1] == [f.hex() for f in frames]


@settings(max_examples=3, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.tuples(*[message_strategy(c) for c in CLASSES.values()]))
def test_every_message_of_the_schema_round_trips_through_libsv2(capi, one_of_each):
    """One frame per vector of tests/vectors/messages.json plus random values of every
    message class: libsv2's decode then encode gives the same bytes."""
    from sv2ffi import jsonform

    frames = [framing.encode_message(jsonform.message_from_json(v))
              for v in load_vectors("messages.json")["vectors"] if not v.get("legacy")]
    frames += [framing.encode_message(m) for m in one_of_each]
    proc = run(capi.test_program("roundtrip"), stdin="\n".join(f.hex() for f in frames) + "\n")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[:-1] == [f.hex() for f in frames]


def test_roundtrip_of_a_large_transaction_list(capi):
    """RequestTransactionData.Success with 3000 x 500-byte transactions (the benchmark's
    message) survives C decode + encode."""
    msg = RequestTransactionDataSuccess(9, bytes(32), [bytes([i % 251]) * 500
                                                       for i in range(3000)])
    frame = framing.encode_message(msg)
    proc = run(capi.test_program("roundtrip"), stdin=frame.hex())
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == frame.hex()


def test_bad_frames_in_a_stream_give_status_codes_and_the_stream_goes_on(capi):
    good = framing.encode_message(RequestTransactionData(5))
    unknown = bytes.fromhex("0000990100") + b"\x00" + b"\x01"
    truncated_payload = framing.encode_header(0, False, 0x73, 3) + b"\x01\x02\x03"
    proc = run(capi.test_program("roundtrip"),
               stdin=(good + unknown + truncated_payload + good).hex())
    lines = proc.stdout.splitlines()
    assert lines[0] == good.hex() and lines[-1] == good.hex()
    assert lines[1].startswith("ERR SV2_ERR_UNKNOWN_MESSAGE: unknown message type 0x99")
    assert lines[2].startswith("ERR SV2_ERR_DECODE: RequestTransactionData.template_id")


def test_api_misuse_gives_status_codes(capi):
    proc = run(capi.test_program("garbage"), "args")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "args: ok" in proc.stdout


@pytest.mark.parametrize("seed", [1, 2])
def test_random_garbage_into_the_decoder(capi, seed):
    proc = run(capi.test_program("garbage"), "decoder", "400", str(seed))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SV2_ERR_DECODE=" in proc.stdout  # garbage was really refused, not just buffered


def test_random_garbage_into_connections(capi):
    proc = run(capi.test_program("garbage"), "connection", "90", "3")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for status in ("SV2_ERR_HANDSHAKE", "SV2_ERR_CLOSED"):
        assert status in proc.stdout


def test_stress_without_valgrind(capi):
    proc = run(capi.test_program("stress"), "2000", "50")
    assert proc.returncode == 0, proc.stderr
    assert f"{2000 * len(expected_samples())} encode+decode round trips, 50 handshakes, 0 failures" \
        in proc.stdout


def test_a_broken_sv2ffi_package_is_an_error_status_not_a_crash(capi, tmp_path):
    """SV2FFI_PYTHONPATH comes first: a package there that fails to import makes every
    call that needs Python (here a handshake) return SV2_ERR_INTERNAL with a last error
    that says what to fix; the codec, plain C, works regardless."""
    fake = tmp_path / "sv2ffi"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise ImportError('this sv2ffi is broken on purpose')\n")
    proc = run(capi.test_program("stress"), "1", "1", env={"SV2FFI_PYTHONPATH": str(tmp_path)})
    assert proc.returncode == 1
    assert "sv2_encode" not in proc.stderr and "sv2_decoder" not in proc.stderr  # C: fine
    assert "this sv2ffi is broken on purpose" in proc.stderr  # the traceback, on stderr
    assert "SV2FFI_PYTHONPATH" in proc.stderr  # sv2_last_error() names the fix


def test_the_codec_never_needs_python(capi, tmp_path):
    """Every message through sv2_encode / sv2_decoder_* / the frees with an sv2ffi package
    that cannot even be imported: the codec is C and never starts the interpreter."""
    (tmp_path / "sv2ffi").mkdir()
    (tmp_path / "sv2ffi" / "__init__.py").write_text("raise SystemExit('imported')\n")
    proc = run(capi.test_program("all_messages"), env={"SV2FFI_PYTHONPATH": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.splitlines()) == len(expected_samples())
    assert "imported" not in proc.stderr


def test_the_library_finds_python_with_an_empty_environment(capi):
    proc = subprocess.run([str(capi.test_program("all_messages"))], capture_output=True,
                          text=True, env={}, timeout=60, cwd="/")
    assert proc.returncode == 0, proc.stderr


def test_only_the_public_api_is_exported(capi):
    nm = shutil.which("nm")
    if not nm:
        pytest.skip("nm not installed")
    out = subprocess.run([nm, "-D", "--defined-only", str(capi.lib_dir / "libsv2.so")],
                         capture_output=True, text=True, check=True).stdout
    names = {ln.split()[-1] for ln in out.splitlines() if " T " in ln}
    from sv2ffi.capi import abi

    assert names == {f.name for f in abi.FUNCTIONS}


# ---- in-process: libsv2 loaded into this Python (it then uses this interpreter) --------


@pytest.fixture(scope="module")
def lib(capi):
    lib = ctypes.CDLL(str(capi.lib_dir / "libsv2.so"))
    lib.sv2_last_error.restype = ctypes.c_char_p
    lib.sv2_decoder_new.restype = ctypes.c_void_p
    lib.sv2_decoder_free.argtypes = [ctypes.c_void_p]
    lib.sv2_decoder_feed.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
    lib.sv2_connection_new_plain.restype = ctypes.c_void_p
    lib.sv2_connection_free.argtypes = [ctypes.c_void_p]
    return lib


def test_free_really_frees_the_python_side(lib):
    from sv2ffi.capi.handles import TABLE

    lib.sv2_abi_version()
    before = TABLE.count()
    conns = [lib.sv2_connection_new_plain() for _ in range(20)]
    assert TABLE.count("Sv2Connection") >= 20
    for c in conns:
        lib.sv2_connection_free(c)
    assert TABLE.count() == before
    # decoders are C (handles.c): a freed one is refused, its slot serves a new one
    handles = [lib.sv2_decoder_new() for _ in range(50)]
    for h in handles:
        lib.sv2_decoder_free(h)
    assert lib.sv2_decoder_feed(handles[0], b"x", 1) == -1
    assert b"not a live Sv2Decoder" in lib.sv2_last_error()
    again = lib.sv2_decoder_new()
    assert again not in handles  # same slot, new generation
    assert lib.sv2_decoder_feed(again, b"x", 1) == 0
    lib.sv2_decoder_free(again)


def test_last_error_is_per_thread(lib):
    """Two threads fail differently at the same time; each reads its own message."""
    seen = {}
    barrier = threading.Barrier(2)

    def worker(name: str, data: bytes) -> None:
        dec = lib.sv2_decoder_new()
        try:
            barrier.wait(timeout=10)
            for _ in range(200):
                # a freed handle vs NULL data with a length: two different messages
                if name == "dangling":
                    status = lib.sv2_decoder_feed(ctypes.c_void_p(0x7FFF0), data, len(data))
                else:
                    status = lib.sv2_decoder_feed(dec, None, 5)
                assert status == -1
                seen.setdefault(name, set()).add(lib.sv2_last_error().decode())
        finally:
            lib.sv2_decoder_free(dec)

    threads = [threading.Thread(target=worker, args=(n, b"x")) for n in ("dangling", "null")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(seen["dangling"]) == 1 and "not a live Sv2Decoder" in seen["dangling"].pop()
    assert len(seen["null"]) == 1 and "data is NULL" in seen["null"].pop()


def test_the_guide_example_compiles_strictly_and_prints_what_the_guide_says(capi, tmp_path):
    root = Path(__file__).resolve().parents[1]
    guide = (root / "docs" / "c-api.md").read_text()
    source = (root / "tests" / "capi" / "guide_example.c").read_text()
    code = guide.split("```c\n", 1)[1].split("```", 1)[0]
    assert code in source  # the file is the guide's example, verbatim
    expected = guide.split("&& ./example\n", 1)[1].split("\n", 1)[0]
    exe = tmp_path / "example"
    subprocess.run(["gcc", "-std=c11", "-Wall", "-Wextra", "-Werror", "-pedantic",
                    str(root / "tests" / "capi" / "guide_example.c"), f"-I{capi.include_dir}",
                    f"-L{capi.lib_dir}", f"-Wl,-rpath,{capi.lib_dir}", "-lsv2", "-o", str(exe)],
                   check=True, timeout=120)
    proc = run(exe)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == expected


def test_ctest_suite_of_the_cmake_build_passes(capi):
    """The tests CMake registers (tests/capi/CMakeLists.txt) run green too."""
    proc = subprocess.run(["ctest", "--test-dir", str(capi.build_dir), "--output-on-failure"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert "100% tests passed" in proc.stdout


def test_config_command_honours_sv2ffi_prefix(capi):
    import sys

    env = {**os.environ, "SV2FFI_PREFIX": str(capi.stage)}
    proc = subprocess.run([sys.executable, "-m", "sv2ffi", "config", "--cflags", "--libs"],
                          capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [f"-I{capi.stage / 'include'}", f"-L{capi.stage / 'lib'}",
                                   f"-Wl,-rpath,{capi.stage / 'lib'}", "-lsv2"]
    proc = subprocess.run([sys.executable, "-m", "sv2ffi", "config", "--cmake-prefix-path",
                           "--pkg-config-path"], capture_output=True, text=True, env=env,
                          timeout=60)
    assert proc.stdout.split() == [str(capi.stage), str(capi.stage / "lib" / "pkgconfig")]
    assert (capi.stage / "lib" / "cmake" / "sv2ffi" / "sv2ffiConfig.cmake").is_file()

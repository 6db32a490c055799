"""`sv2ffi interop`: the C++ examples (built as a standalone CMake consumer of the staged
library) against their Python peers, and proof that its checks catch a wrong field."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import sys

import pytest

from sv2ffi.capi import interop

pytestmark = pytest.mark.skipif(not (shutil.which("cmake") and shutil.which("g++")),
                                reason="cmake and a C++ compiler are needed")


@pytest.fixture(scope="module")
def examples():
    lines: list[str] = []
    return interop.build_examples(None, lines.append)


def test_interop_command_passes_and_prints_a_transcript():
    proc = subprocess.run([sys.executable, "-m", "sv2ffi", "interop"], capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    out = proc.stdout
    for name in interop.EXAMPLES:
        assert f"PASS {name}" in out
    assert f"{len(interop.EXAMPLES)} passed, 0 failed" in out
    assert "c++ > SetNewPrevHash(template_id=1" in out  # what the C++ server built
    assert "error_code=protocol-version-mismatch" in out
    assert "c++ | RequestTransactionData.Success transactions=3" in out


def test_a_wrong_field_from_cpp_is_a_mismatch(examples):
    lines: list[str] = []
    with pytest.raises(interop.Mismatch, match="SetNewPrevHash.target"):
        asyncio.run(interop.run_template_provider(examples["template_provider"],
                                                  interop.Transcript(lines.append),
                                                  "--corrupt-target"))
    # the failed run still shows what the C++ side printed, from its first line on
    at = next(i for i, ln in enumerate(lines) if "template_provider output (exit code" in ln)
    assert any(ln.startswith("    c++ | listening ") for ln in lines[at:]), lines[at:]


def test_only_filter_runs_one_example_and_reports_it(examples, capsys):
    t = interop.Transcript(lambda s: None)
    asyncio.run(interop.run_all(examples, t, ["noise_server"]))
    assert t.failures == []


def test_template_provider_outlives_a_garbage_client(examples):
    """One client sending garbage is dropped; the next one is served normally."""
    async def main() -> None:
        from sv2ffi.aio import connect
        from sv2ffi.connection import Connection

        ex = await interop.Example.start(examples["template_provider"], "--connections", "2")
        try:
            port = int((await ex.line("listening ")).rsplit(":", 1)[1])
            with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                s.sendall(bytes.fromhex("000000ffffff") + b"\x00" * 64)  # a 16 MB frame
                s.shutdown(socket.SHUT_WR)
                s.settimeout(10)
                while s.recv(4096):
                    pass
            stream = await connect("127.0.0.1", port, connection=Connection.plain())
            try:
                await interop.mini_tp_session(stream, interop.Transcript(lambda s: None))
            finally:
                await stream.close()
            code, _ = await ex.finish(interop.Transcript(lambda s: None))
            assert code == 0
        finally:
            await ex.stop()

    asyncio.run(main())

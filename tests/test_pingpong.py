"""The ping-pong example: real server and client processes on 127.0.0.1 through the CLI,
with and without Noise, plus the library entry points."""

import asyncio
import os
import re
import selectors
import subprocess
import sys
import time

import pytest

from sv2ffi import keys
from sv2ffi.examples import pingpong

CLI = [sys.executable, "-m", "sv2ffi", "ping-pong"]
TIMEOUT = 60


def read_line(proc, deadline):
    """One stdout line of a child, or fail at the deadline (never hang)."""
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    line = b""
    while not line.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or not sel.select(left):
            raise AssertionError(f"no output from the server; so far {line!r}")
        ch = os.read(proc.stdout.fileno(), 1)
        if not ch:
            raise AssertionError(f"server exited: {line!r} {proc.stderr.read()!r}")
        line += ch
    return line.decode()


def start_server(*extra):
    proc = subprocess.Popen(CLI + ["server", "--port", "0", *extra], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    deadline = time.monotonic() + TIMEOUT
    try:
        first = read_line(proc, deadline)
        port = int(re.search(r"127\.0\.0\.1:(\d+)", first).group(1))
        key = None
        if "--noise" in extra:
            key = re.search(r"authority public key: (\S+)", read_line(proc, deadline)).group(1)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    return proc, port, key


def client(port, *extra):
    return subprocess.run(CLI + ["client", "--port", str(port), "--count", "4", *extra],
                          capture_output=True, text=True, timeout=TIMEOUT)


def finish(proc):
    try:
        assert proc.wait(timeout=TIMEOUT) == 0, proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_plain_processes():
    proc, port, _ = start_server("--clients", "1")
    run = client(port)
    assert run.returncode == 0, run.stderr
    pings = [ln for ln in run.stdout.splitlines() if ln.startswith("ping")]
    assert [re.match(r"ping (\d+) -> pong (\d+) \(", ln).groups() for ln in pings] == [
        (str(n), str(n)) for n in range(1, 5)]
    assert run.stdout.count("-> pong") == 4
    finish(proc)


def test_noise_processes_with_pinned_authority_key(tmp_path):
    made = keys.generate_datadir_keys(tmp_path)
    proc, port, key = start_server("--noise", "--datadir", str(tmp_path), "--clients", "2")
    assert key == made.authority_pubkey_text
    run = client(port, "--noise", "--authority-pubkey", key)
    assert run.returncode == 0, run.stderr
    assert made.static.xonly.hex() in run.stdout  # the client learned the static key
    assert run.stdout.count("-> pong") == 4
    # a client that expects another authority refuses the server (typed error, exit 1)
    other = keys.encode_authority_pubkey(keys.Keypair.generate().xonly)
    bad = client(port, "--noise", "--authority-pubkey", other)
    assert bad.returncode == 1
    assert "CertificateWrongSignerError" in bad.stderr
    finish(proc)


def test_client_usage_errors():
    bad_key = client(1, "--noise", "--authority-pubkey", "9bDuixKmZqAJnrmP746n8zU1wyAQRrus7th9dxnkPg6RzQvCnam")
    assert bad_key.returncode == 2 and "checksum" in bad_key.stderr
    run = subprocess.run(CLI + ["client"], capture_output=True, text=True, timeout=TIMEOUT)
    assert run.returncode == 2 and "--port" in run.stderr


def test_library_entry_points_plain_and_noise():
    async def main():
        done = []
        server = await pingpong.start_server(on_done=lambda: done.append(1))
        res = await pingpong.run_client("127.0.0.1", server.port, noise=False, count=3)
        assert res.used_version == 2 and len(res.rtts) == 3
        await server.close()
        k = pingpong.memory_keys()
        server = await pingpong.start_server(keys=k)
        res = await pingpong.run_client("127.0.0.1", server.port, noise=True,
                                        authority_pubkey=k.authority.xonly, count=2)
        assert res.remote_static_xonly == k.static.xonly
        # plain client to a Noise server: its SetupConnection is taken as the start of act
        # 1, so no reply ever comes; the client's bounded wait ends it
        with pytest.raises(asyncio.TimeoutError):
            await pingpong.run_client("127.0.0.1", server.port, noise=False, count=1,
                                      timeout=0.5)
        await server.close()
        assert done
    asyncio.run(asyncio.wait_for(main(), TIMEOUT))

"""Hostile clients against a real ``sv2ffi tp`` process, with honest observers measuring.

Used by tests/test_hostile.py (reduced sizes, in ``make test``) and benchmarks/hostile.py
(the full sizes, with a printed report).  Everything runs over real sockets on loopback;
attackers connect from their own loopback address (127.0.0.66), the observers from
127.0.0.1, as they would from different hosts.

Attacks (issue 15):
- ``non_reader``: sets up, asks for the transactions of the current template as fast as
  the limit allows, and never reads what comes back;
- ``silent``: sets up and then never reads nor writes;
- ``unknown_flood``: sets up, then sends empty frames of an unknown message type and of an
  unknown extension as fast as the socket takes them;
- ``constraints_churn``: several clients changing CoinbaseOutputConstraints in a loop;
- ``handshake_storm``: thousands of TCP connections that never start the handshake;
- ``slowloris``: connections that send the first handshake act one byte a second;
- ``garbage``: connections that send random bytes.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

from sv2ffi import bitcoin as btc
from sv2ffi.aio import Sv2Stream
from sv2ffi.client import TdpClient
from sv2ffi.connection import Connection
from sv2ffi.framing import Frame
from sv2ffi.messages import (CoinbaseOutputConstraints, RequestTransactionData, SetNewPrevHash,
                             SetupConnection)

SV2FFI = [sys.executable, "-m", "sv2ffi"]
ATTACKER = "127.0.0.66"
T = 60


def loopback_alias_works() -> bool:
    """Whether this machine routes all of 127/8 to loopback (Linux does)."""
    try:
        with socket.socket() as s:
            s.bind((ATTACKER, 0))
        return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(xs, p):
    xs = sorted(xs)
    return xs[max(0, min(len(xs) - 1, round(p / 100 * (len(xs) - 1))))] if xs else float("nan")


class TpProcess:
    """``sv2ffi tp`` on the built-in chain with its JSON-RPC endpoint (for blocks and the
    mempool); CPU and memory read from /proc."""

    def __init__(self, datadir: Path, *extra: str, mempool: int = 0):
        datadir.mkdir(parents=True, exist_ok=True)
        self.port, self.rpc_port = free_port(), free_port()
        self.proc = subprocess.Popen(
            SV2FFI + ["tp", "--sv2-port", str(self.port), "--datadir", str(datadir),
                      "--mempool-interval", "0", "--regtest-rpc-port", str(self.rpc_port),
                      "--log-level", "warning", *extra],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.key = self.cookie = None
        for line in self.proc.stdout:
            m = re.search(r"authority public key: (\w+)", line)
            if m:
                self.key = m.group(1)
            m = re.search(r"cookie (\S+)", line)
            if m:
                self.cookie = Path(m.group(1))
                break
        import threading
        self.stderr: list = []
        threading.Thread(target=lambda: self.stderr.extend(self.proc.stderr), daemon=True).start()
        threading.Thread(target=lambda: [None for _ in self.proc.stdout], daemon=True).start()
        if mempool:
            have = 0
            while have < mempool:
                have += self.rpc("generate_transactions", min(1000, mempool - have), 1, 50)

    def rpc(self, method, *params):
        from bitcoinrpc.authproxy import AuthServiceProxy
        user, pw = self.cookie.read_text().strip().split(":", 1)
        return getattr(AuthServiceProxy(f"http://{user}:{pw}@127.0.0.1:{self.rpc_port}/",
                                        timeout=T), method)(*params)

    def mine(self) -> str:
        addr = btc.script_address(btc.P2WSH_OP_TRUE, btc.NETWORKS["regtest"])
        block = self.rpc("generateblock", addr, [], False)
        self.rpc("submitblock", block["hex"])
        return block["hash"]

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_mib(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def close(self) -> str:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        time.sleep(0.2)
        return "".join(self.stderr)


# ---- honest observers ---------------------------------------------------------------------


class Observers:
    """``n`` honest clients recording when each tip's SetNewPrevHash arrives."""

    def __init__(self):
        self.clients: list = []
        self.arrivals: list = []  # per client: {prev_hash hex: monotonic}
        self.tasks: list = []

    async def start(self, tp: TpProcess, n: int) -> None:
        for _ in range(n):
            c = await TdpClient.connect("127.0.0.1", tp.port, authority_pubkey=tp.key,
                                        timeout=T)
            self.clients.append(c)
            self.arrivals.append({})
        for i, c in enumerate(self.clients):
            self.tasks.append(asyncio.create_task(self._read(i, c)))

    async def _read(self, i, c) -> None:
        try:
            while True:
                m = await c.stream.recv()
                if isinstance(m, SetNewPrevHash):
                    self.arrivals[i].setdefault(m.prev_hash[::-1].hex(), time.monotonic())
        except Exception:  # noqa: BLE001 - the observer stops; missed tips show it
            pass

    async def tips(self, tp: TpProcess, count: int, gap: float = 0.5) -> dict:
        """Mine ``count`` blocks; per-client latency from the block's submission, and how
        many (client, tip) pairs never arrived (within 10 s)."""
        loop = asyncio.get_running_loop()
        lat, missed = [], 0
        for _ in range(count):
            t0 = time.monotonic()
            tip = await loop.run_in_executor(None, tp.mine)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not all(tip in a for a in self.arrivals):
                await asyncio.sleep(0.01)
            for a in self.arrivals:
                if tip in a:
                    lat.append((a[tip] - t0) * 1000)
                else:
                    missed += 1
            await asyncio.sleep(gap)
        return {"p50": pct(lat, 50), "p99": pct(lat, 99), "missed": missed,
                "samples": count * len(self.arrivals)}

    async def close(self) -> None:
        for t in self.tasks:
            t.cancel()
        for c in self.clients:
            await c.close()


# ---- attackers ----------------------------------------------------------------------------


async def _raw(tp, source=ATTACKER):
    return await asyncio.open_connection("127.0.0.1", tp.port, local_addr=(source, 0))


async def _set_up(tp, source=ATTACKER, size=100) -> Sv2Stream:
    reader, writer = await _raw(tp, source)
    s = Sv2Stream(reader, writer, Connection.initiator(tp.key))
    await asyncio.wait_for(s.handshake(), T)
    await s.send(SetupConnection(protocol=2, min_version=2, max_version=2, flags=0,
                                 endpoint_host="", endpoint_port=0, vendor="hostile",
                                 hardware_version="", firmware="", device_id=""))
    await s.recv()
    await s.send(CoinbaseOutputConstraints(coinbase_output_max_additional_size=size,
                                           coinbase_output_max_additional_sigops=400))
    return s


async def non_reader(tp, duration: float, result: dict) -> None:
    """Ask for the transaction data of the current template as fast as the limit allows
    (4/s), and never read the answers."""
    s = await _set_up(tp)
    first = await s.recv()  # the work's future NewTemplate: its id is all we need
    writer = s._writer
    writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    end, sent, aborted = time.monotonic() + duration, 0, False
    while time.monotonic() < end:
        try:
            writer.write(s.connection.send(RequestTransactionData(template_id=first.template_id)))
            sent += 1
            await asyncio.wait_for(writer.drain(), 0.25)
        except asyncio.TimeoutError:  # the TP stopped reading us: our writes back up
            pass
        except (ConnectionError, OSError):
            aborted = True
            break
        if writer.transport.is_closing():
            aborted = True
            break
        await asyncio.sleep(0.25)
    result.update(requests=sent, aborted=aborted)
    writer.transport.abort()


async def silent(tp, duration: float, result: dict) -> None:
    s = await _set_up(tp)
    sock = s._writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    await asyncio.sleep(duration)
    s._writer.transport.abort()


async def unknown_flood(tp, duration: float, result: dict) -> None:
    """Empty frames of an unknown type and of an unknown extension, as fast as possible."""
    s = await _set_up(tp)
    conn, writer = s.connection, s._writer
    batch = b"".join(conn.send_frame(Frame(0, 0x6F, b"")) + conn.send_frame(Frame(0x4242, 1, b""))
                     for _ in range(500))
    end = time.monotonic() + duration
    frames = 0
    try:
        while time.monotonic() < end and not writer.transport.is_closing():
            writer.write(batch)
            frames += 1000
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    result["frames"] = frames
    result["disconnected"] = True if writer.transport.is_closing() else \
        (s._reader.at_eof() or s._reader.exception() is not None)
    writer.transport.abort()


async def constraints_churn(tp, duration: float, result: dict) -> None:
    s = await _set_up(tp, size=100)
    end = time.monotonic() + duration
    n = 0
    rng = random.Random(7)
    drain = asyncio.create_task(_drain(s))
    try:
        while time.monotonic() < end:
            await s.send(CoinbaseOutputConstraints(
                coinbase_output_max_additional_size=rng.choice([100, 9000, 15000, 30000]),
                coinbase_output_max_additional_sigops=rng.choice([400, 4000])))
            n += 1
            await asyncio.sleep(0.06)  # within the 20/s message limit
    except Exception:  # noqa: BLE001
        pass
    drain.cancel()
    result["changes"] = n
    s._writer.transport.abort()


async def _drain(s):
    try:
        while True:
            await s.recv()
    except Exception:  # noqa: BLE001
        pass


async def handshake_storm(tp, connections: int, result: dict) -> None:
    """``connections`` TCP connects that never say anything (closed after the run)."""
    opened, refused = [], 0
    for _ in range(connections):
        try:
            opened.append(await _raw(tp))
        except OSError:
            refused += 1
    await asyncio.sleep(1)
    alive = sum(1 for r, w in opened if not (r.at_eof() or r.exception() is not None
                                             or w.transport.is_closing()))
    result.update(opened=len(opened), refused_connect=refused)
    for _r, w in opened:
        w.transport.abort()
    result["still_open_after_1s"] = alive


async def slowloris(tp, connections: int, duration: float, result: dict) -> None:
    writers = []
    for _ in range(connections):
        try:
            writers.append((await _raw(tp))[1])
        except OSError:
            pass
    end = time.monotonic() + duration
    while time.monotonic() < end:
        for w in writers:
            if not w.transport.is_closing():
                w.write(b"\x00")
        await asyncio.sleep(1)
    result["slowloris"] = len(writers)
    for w in writers:
        w.transport.abort()


async def garbage(tp, connections: int, result: dict) -> None:
    rng = random.Random(3)
    n = 0
    for _ in range(connections):
        try:
            r, w = await _raw(tp)
            w.write(rng.randbytes(rng.randint(1, 4000)))
            await w.drain()
            w.transport.abort()
            n += 1
        except OSError:
            pass
    result["garbage"] = n


async def honest_during(tp, count: int, result: dict) -> None:
    """``count`` honest clients (from 127.0.0.1) that must get in and get a tip."""
    ok = 0
    for _ in range(count):
        try:
            c = await TdpClient.connect("127.0.0.1", tp.port, authority_pubkey=tp.key,
                                        timeout=30)
            await c.wait_for(SetNewPrevHash, 30)
            ok += 1
            await c.close()
        except Exception:  # noqa: BLE001 - counted as not in
            pass
    result["honest_ok"] = ok


def summary(idle: dict, attacked: dict) -> str:
    ratio = attacked["p99"] / idle["p99"] if idle["p99"] else float("nan")
    return (f"p50 {attacked['p50']:.1f} ms, p99 {attacked['p99']:.1f} ms "
            f"({ratio:.2f}x idle p99 {idle['p99']:.1f} ms), missed {attacked['missed']}/"
            f"{attacked['samples']}")


def median_of(results: list, key: str) -> float:
    return statistics.median(r[key] for r in results)

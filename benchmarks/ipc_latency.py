"""Tip latency of ``sv2ffi tp --source ipc`` (not run by pytest).

New block on the node -> SetNewPrevHash received by each of N = 1, 10, 100 Noise clients:
p50 and p99 over clients x blocks, and how many (client, block) pairs missed the tip (no
SetNewPrevHash for it within 5 s).  Medians of three runs of ``--rounds`` blocks each.

With ``SV2FFI_BITCOIN_NODE`` (a bitcoin-node v31+ built with IPC and ZMQ; bitcoin-cli
beside it or ``SV2FFI_BITCOIN_CLI``): one regtest node, a wallet-funded mempool, and two
columns measured in the same run on it: ``--source ipc`` and, as the peer, ``--source rpc``
with ZMQ hashblock.  t0 is just before ``submitblock`` of a block prepared beforehand
(``generateblock ... submit=false``, no transactions, so the mempool stays and every tip is
followed by a full template); the time the node's ZMQ hashblock arrives is printed too.

Without it: the IPC test double (tests/core_ipc_double.py, the built-in regtest chain in
its own process) against the same chain served in-process (``--source regtest``): what
the IPC round trips add.  t0 is when the chain connects the block.

The TP runs on a thread of this process (TpThread), the clients in a child process.
CLOCK_MONOTONIC is system-wide on Linux, so timestamps of the processes compare.

    .venv/bin/python benchmarks/ipc_latency.py [--rounds 10] [--clients 1,10,100]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from sv2ffi import bitcoin as btc  # noqa: E402
from sv2ffi.messages import SetNewPrevHash  # noqa: E402
from sv2ffi.tp.core import TpConfig  # noqa: E402
from sv2ffi.tp.runner import TpThread  # noqa: E402
from sv2ffi.tp.server import TpService  # noqa: E402

T = 60
MISS_AFTER = 5.0
REGTEST = btc.NETWORKS["regtest"]


def pct(xs, p):
    xs = sorted(xs)
    return xs[max(0, min(len(xs) - 1, round(p / 100 * (len(xs) - 1))))] if xs else float("nan")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- clients (child process) ------------------------------------------------------------


def client_proc(conn, port: int, key: str, n: int) -> None:
    asyncio.run(_clients(conn, port, key, n))


async def _clients(conn, port, key, n):
    from sv2ffi.client import TdpClient
    loop = asyncio.get_running_loop()
    clients = [await TdpClient.connect("127.0.0.1", port, authority_pubkey=key, timeout=T)
               for _ in range(n)]
    seen: list = [dict() for _ in range(n)]  # prev_hash -> arrival

    async def reader(i, c):
        while True:
            m = await c.stream.recv()
            now = time.monotonic()
            if isinstance(m, SetNewPrevHash):
                seen[i].setdefault(m.prev_hash, now)

    tasks = [loop.create_task(reader(i, c)) for i, c in enumerate(clients)]
    while not all(seen):  # every client is on the current tip before anything is timed
        await asyncio.sleep(0.01)
    conn.send("ready")
    while True:
        cmd = await loop.run_in_executor(None, conn.recv)
        if cmd == "quit":
            break
        deadline = time.monotonic() + MISS_AFTER
        while time.monotonic() < deadline and not all(cmd in s for s in seen):
            await asyncio.sleep(0.002)
        conn.send([s.get(cmd) for s in seen])
    for t in tasks:
        t.cancel()


def spawn_clients(port, key, n):
    parent, child = mp.Pipe()
    p = mp.get_context("fork").Process(target=client_proc, args=(child, port, key, n),
                                       daemon=True)
    p.start()
    if not parent.poll(T) or parent.recv() != "ready":
        raise RuntimeError("clients did not get ready")
    return p, parent


def measure(tp: TpThread, node, n: int, rounds: int):
    """(latencies ms, misses, zmq latencies ms) over ``rounds`` blocks for N clients."""
    p, pipe = spawn_clients(tp.port, tp.authority_pubkey, n)
    lat, zmq_lat, misses = [], [], 0
    try:
        for _ in range(rounds):
            time.sleep(0.3)  # the full template of the last tip is out; the node is idle
            tip, t0 = node.mine()
            pipe.send(tip)
            if not pipe.poll(T):
                raise RuntimeError("clients stopped answering")
            for t in pipe.recv():
                if t is None:
                    misses += 1
                else:
                    lat.append((t - t0) * 1e3)
            tz = node.zmq_seen.get(tip) if node.zmq_seen is not None else None
            if tz is not None:
                zmq_lat.append((tz - t0) * 1e3)
    finally:
        pipe.send("quit")
        p.join(10)
    return lat, misses, zmq_lat


# ---- a real bitcoin-node -----------------------------------------------------------------


class RealNode:
    def __init__(self, node_bin: str, cli_bin: str):
        self.dir = Path(tempfile.mkdtemp(prefix="sv2b-"))
        self.rpc_port, self.zmq_port = free_port(), free_port()
        self.cli_bin = cli_bin
        self.proc = subprocess.Popen(
            [node_bin, "-regtest", f"-datadir={self.dir}", "-ipcbind=unix", "-server",
             f"-rpcport={self.rpc_port}", f"-port={free_port()}", "-listen=0",
             f"-zmqpubhashblock=tcp://127.0.0.1:{self.zmq_port}", "-fallbackfee=0.0002",
             "-printtoconsole=0"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            self._setup()
        except BaseException:
            self.proc.kill()
            self.proc.wait()
            shutil.rmtree(self.dir, ignore_errors=True)
            raise

    def _setup(self):
        deadline = time.monotonic() + T
        while True:
            try:
                self.cli("getblockcount")
                break
            except subprocess.CalledProcessError:
                if time.monotonic() > deadline:
                    raise RuntimeError("bitcoin-node did not start")
                time.sleep(0.1)
        self.socket = self.dir / "regtest" / "node.sock"
        self.cli("createwallet", "w")
        self.addr = self.cli("getnewaddress")
        self.cli("generatetoaddress", 130, self.addr)
        self.zmq_seen: dict = {}
        threading.Thread(target=self._zmq, daemon=True).start()

    def cli(self, *args):
        out = subprocess.run([self.cli_bin, "-regtest", f"-datadir={self.dir}",
                              f"-rpcport={self.rpc_port}"] + [str(a) for a in args],
                             capture_output=True, text=True, timeout=T, check=True).stdout.strip()
        try:
            return json.loads(out)
        except ValueError:
            return out

    def rpc(self):
        from bitcoinrpc.authproxy import AuthServiceProxy
        user, pw = (self.dir / "regtest" / ".cookie").read_text().strip().split(":", 1)
        return AuthServiceProxy(f"http://{user}:{pw}@127.0.0.1:{self.rpc_port}/", timeout=T)

    def _zmq(self):
        import zmq
        sub = zmq.Context.instance().socket(zmq.SUB)
        sub.setsockopt(zmq.SUBSCRIBE, b"hashblock")
        sub.connect(f"tcp://127.0.0.1:{self.zmq_port}")
        while True:
            parts = sub.recv_multipart()
            self.zmq_seen.setdefault(parts[1][::-1], time.monotonic())

    def fund(self, count: int) -> int:
        """``count`` wallet transactions in the mempool, each spending a confirmed coin."""
        rpc = self.rpc()
        rpc.sendmany("", {rpc.getnewaddress(): 0.1 for _ in range(count)})
        rpc.generatetoaddress(1, self.addr)
        for _ in range(count):
            rpc.sendtoaddress(rpc.getnewaddress(), 0.01)
        return self.cli("getmempoolinfo")["size"]

    def mine(self):
        """A block without transactions (the mempool stays), prepared, then submitted: t0."""
        made = self.cli("generateblock", self.addr, "[]", "false")
        rpc = self.rpc()
        t0 = time.monotonic()
        assert rpc.submitblock(made["hex"]) is None
        return bytes.fromhex(made["hash"])[::-1], t0

    def close(self):
        try:
            self.cli("stop")
            self.proc.wait(T)
        except Exception:
            self.proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


def real_tps(node: RealNode, datadir: Path):
    from sv2ffi.tp.sources.ipc import IpcSource
    from sv2ffi.tp.sources.rpc import RpcSource
    cfg = dict(max_clients=1000, msg_rate=1e6, msg_burst=10 ** 6)
    yield "ipc", lambda: TpThread(TpService(IpcSource(node.socket, network=REGTEST),
                                            datadir=datadir / "ipc", config=TpConfig(**cfg)))
    yield "rpc+zmq", lambda: TpThread(TpService(RpcSource(
        f"http://127.0.0.1:{node.rpc_port}/", network=REGTEST,
        cookie_file=node.dir / "regtest" / ".cookie",
        zmq_hashblock=f"tcp://127.0.0.1:{node.zmq_port}"), datadir=datadir / "rpc",
        config=TpConfig(**cfg)))


# ---- the IPC test double (no node) -------------------------------------------------------


def double_proc(conn, path: str, mempool: int) -> None:
    from core_ipc_double import CoreIpcDouble
    from sv2ffi.tp.regtest import RegtestChain
    chain = RegtestChain(seed=5)
    chain.add_random_transactions(mempool)
    d = CoreIpcDouble(path, chain).start()
    conn.send("ready")
    while (cmd := conn.recv()) != "quit":
        conn.send(d.do(_mine_empty, chain))
    d.stop()


def _mine_empty(chain):
    tpl = chain.block_template()
    tpl.txs, tpl.coinbase_value = [], tpl.subsidy
    blk = chain.mine_template(tpl, extra=os.urandom(4))
    t0 = time.monotonic()
    assert chain.submit_block(blk.serialize()) is None
    return blk.hash, t0


class DoubleNode:
    zmq_seen = None

    def __init__(self, mempool: int):
        self.dir = Path(tempfile.mkdtemp(prefix="sv2d-"))
        self.socket = self.dir / "node.sock"
        self.pipe, child = mp.Pipe()
        self.p = mp.get_context("fork").Process(target=double_proc,
                                                args=(child, str(self.socket), mempool),
                                                daemon=True)
        self.p.start()
        assert self.pipe.poll(T) and self.pipe.recv() == "ready"

    def mine(self):
        self.pipe.send("mine")
        return self.pipe.recv()

    def close(self):
        self.pipe.send("quit")
        self.p.join(10)
        shutil.rmtree(self.dir, ignore_errors=True)


class InProcessChain:
    """Peer for the double: the same kind of chain as a source inside the TP."""

    zmq_seen = None

    def __init__(self, mempool: int, datadir: Path):
        from sv2ffi.tp.sources.regtest import RegtestSource
        self.src = RegtestSource(mempool_interval=0, seed=5)
        self.src.chain.add_random_transactions(mempool)
        self.tp = TpThread(TpService(self.src, datadir=datadir, config=TpConfig(
            max_clients=1000, msg_rate=1e6, msg_burst=10 ** 6)))

    def mine(self):
        return self.tp.call(_mine_empty, self.src.chain)


# ---- main --------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=10, help="blocks per run")
    ap.add_argument("--runs", type=int, default=3, help="runs per cell (median reported)")
    ap.add_argument("--clients", default="1,10,100")
    ap.add_argument("--mempool", type=int, default=200)
    args = ap.parse_args()
    ns = [int(x) for x in args.clients.split(",")]
    node_bin = os.environ.get("SV2FFI_BITCOIN_NODE")
    work = Path(tempfile.mkdtemp(prefix="sv2ffi-bench-"))
    results: dict = {}
    zmq_all = []
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs; {args.rounds} blocks x "
          f"{args.runs} runs per cell; Noise on every client connection")
    if node_bin:
        cli_bin = os.environ.get("SV2FFI_BITCOIN_CLI") or str(Path(node_bin).parent / "bitcoin-cli")
        node = RealNode(node_bin, cli_bin)
        try:
            size = node.fund(args.mempool)
            version = node.cli("getnetworkinfo")["subversion"]
            print(f"bitcoin-node {version} regtest, mempool {size} wallet transactions; "
                  "t0 = submitblock of a prepared block")
            for name, make in real_tps(node, work):
                tp = make().start()
                try:
                    for n in ns:
                        for _ in range(args.runs):
                            lat, miss, zl = measure(tp, node, n, args.rounds)
                            results.setdefault((name, n), []).append(
                                (statistics.median(lat) if lat else float("nan"), pct(lat, 99), miss))
                            zmq_all += zl
                finally:
                    tp.stop()
        finally:
            node.close()
    else:
        print("no SV2FFI_BITCOIN_NODE: the IPC TEST DOUBLE (regtest chain in its own process) "
              "vs the same chain in-process; t0 = the chain connects the block")
        node = DoubleNode(args.mempool)
        try:
            from sv2ffi.tp.sources.ipc import IpcSource
            tp = TpThread(TpService(IpcSource(node.socket, network=REGTEST), datadir=work / "ipc",
                                    config=TpConfig(max_clients=1000, msg_rate=1e6,
                                                    msg_burst=10 ** 6))).start()
            try:
                for n in ns:
                    for _ in range(args.runs):
                        lat, miss, _ = measure(tp, node, n, args.rounds)
                        results.setdefault(("ipc (double)", n), []).append(
                            (statistics.median(lat), pct(lat, 99), miss))
            finally:
                tp.stop()
        finally:
            node.close()
        peer = InProcessChain(args.mempool, work / "inproc")
        peer.tp.start()
        try:
            for n in ns:
                for _ in range(args.runs):
                    lat, miss, _ = measure(peer.tp, peer, n, args.rounds)
                    results.setdefault(("in-process", n), []).append(
                        (statistics.median(lat), pct(lat, 99), miss))
        finally:
            peer.tp.stop()
    names = list(dict.fromkeys(k[0] for k in results))
    print()
    print("new block -> SetNewPrevHash at each client, ms (median of runs of p50 / p99), "
          "missed (client, block) pairs")
    print(f"{'N':>4}  " + "  ".join(f"{nm:>26}" for nm in names) + "   ratio p50")
    for n in ns:
        cells, p50s = [], []
        for nm in names:
            runs = results[(nm, n)]
            p50 = statistics.median(r[0] for r in runs)
            p99 = statistics.median(r[1] for r in runs)
            miss = sum(r[2] for r in runs)
            p50s.append(p50)
            cells.append(f"{p50:8.2f} / {p99:8.2f}  miss {miss:<3}")
        ratio = p50s[0] / p50s[1] if len(p50s) > 1 and p50s[1] else float("nan")
        print(f"{n:>4}  " + "  ".join(f"{c:>26}" for c in cells) + f"   {ratio:8.2f}x")
    if zmq_all:
        print(f"\nfor reference: submitblock -> the node's ZMQ hashblock, p50 "
              f"{statistics.median(zmq_all):.2f} ms")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

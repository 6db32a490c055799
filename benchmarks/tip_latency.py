"""Tip latency: a new block on the node -> SetNewPrevHash at each of N Noise clients.

For N = 1, 10, 100 clients, per (client, block): the time from the node's ZMQ
``hashblock`` notification (``from zmq``) and from the moment the block was handed to
the node (``from submit``: just before ``submitblock`` of a prepared block) to the
SetNewPrevHash arriving; p50 / p99 over clients x blocks, the p99 of each tip's slowest
client, how many (client, block) pairs never got the tip (``missed``, none within 5 s),
and when the full template (the first one with transactions) followed.  Medians of
``--runs`` runs of ``--tips`` blocks each.

Columns, all on the same node in the same run:
- ``sv2ffi rpc``: ``sv2ffi tp --source rpc`` with ZMQ hashblock (always);
- ``sv2ffi ipc``: ``sv2ffi tp --source ipc`` (when the node is a bitcoin-node with IPC);
- ``sv2-tp``: stratum-mining/sv2-tp on the same bitcoin-node (when ``SV2FFI_SV2TP``);
- ``baseline rpc``: with ``--baseline PYTHON``, the ``sv2ffi tp --source rpc`` of another
  install (e.g. a worktree of an earlier commit, its ``.venv/bin/python``): a change's
  before and after in the same runs, on the same node, which the host's drift between
  invocations cannot fake.

Five clocks start a tip: ``from connect`` (the clock of record with a real Core) is the
block's connection in the node, the microsecond stamp of its ``UpdateTip`` log line,
written before Core signals the tip to anyone; ``from signal`` the node's tip notification
as the node dates it: its ``Enqueuing UpdatedBlockTip`` line (``-debug=validation``),
written by the thread that connected the block just before ``blockTip`` wakes every
``waitTipChanged`` waiter, so nothing else can hold it back either (the issue's "from the
node's tip notification"); ``from notify`` the node's tip signal
(a ``waitfornewblock`` long-poll of this script's, Core's ``waitTipChanged``), which
used to be the clock of record until it turned out to be held back on some tips: after a
tip each waiter takes ``cs_main``, and a TP's getblocktemplate that reaches the node first
holds it for its whole build, so the script's stamp came late (by up to 90 ms, making
latencies look smaller, even negative); ``from zmq`` its ZMQ hashblock, which bitcoind
publishes after its wallet has seen the block; ``from submit`` the moment the block was
handed to the node.  With the built-in endpoint (no log) ``from notify`` is used.

The node is the built-in regtest chain's bitcoind-style endpoint (``sv2ffi tp
--regtest-rpc-port``, its own process) by default, or a real regtest Bitcoin Core when
``SV2FFI_BITCOIN_NODE`` (bitcoin-node: all three columns) or ``SV2FFI_BITCOIND`` (rpc
only) is set (see tests/core_node.py).  Its mempool is kept at ``--mempool`` transactions:
the prepared blocks are empty, so every tip is followed by a full template.

Every TP is its own process; the clients run in two child processes, at SCHED_IDLE once
connected (benchmarks/arrivals.py says why).  A tip reaches a client when the kernel
queues the segment to the client's socket (``SO_TIMESTAMPNS``, benchmarks/arrivals.py):
on a busy 2-core machine a Python client reads and decrypts its
frame later, which measures the client, not the TP; the time it read the bytes is printed
too (``read``).  The node's tip signal is kernel-stamped the same way; the full template
column is from the clock of record (the block's connection with a real Core).  ``- its
gbt`` (``sv2ffi rpc``): the full template's latency minus the node's getblocktemplate time
for that very template (request to last byte, from the TP's log line for each block's
first full template): what the TP itself added, which issue 10 budgets at 5 ms, plus, on
the connection clock, the node's own time from signalling the block to answering the
TP's waitfornewblock (a worker thread woken, ``cs_main`` taken again, the reply handed to
libevent's thread: 0.5-4 ms here); the floor line's getblocktemplate is timed on other
tips, with no TP, and ``- node gbt`` is the full template's p50 minus that floor's p50
(issue 10's other reading of its budget: the node's own getblocktemplate time plus 5 ms).
CLOCK_MONOTONIC is system-wide on Linux, so the timestamps of all processes compare.
``TIPLAT_DETAIL=1`` prints each tip's first, median and last client (where a p99 comes
from); ``TIPLAT_TPLOG=1`` echoes the TPs' logs; ``TIPLAT_TRACE=1`` runs the ``sv2ffi`` TPs at
``--log-level debug``, whose line for each tip's notice dates the TP's read of the node's
answer (rpc: the waitfornewblock reply; ipc: the next empty template), and splits the tip into the node's share (its signal to that read)
and the TP's (that read to the client's kernel stamp).

    .venv/bin/python benchmarks/tip_latency.py [--clients 1,10,100] [--tips 15] [--runs 3]
"""

from __future__ import annotations

import argparse
import datetime
import os
import multiprocessing as mp
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))

from arrivals import (raw_rpc, rpc_socket, serve_clients,  # noqa: E402
                      waitfornewblock_arrivals)
from core_node import (BITCOIN_CLI, BITCOIN_NODE, BITCOIND, SV2TP, RealNode,  # noqa: E402
                       Sv2Tp, free_port)

SV2FFI = [sys.executable, "-m", "sv2ffi"]
#: Core's log line for a newly connected block (with -logtimemicros)
LOG_TIP = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6})Z UpdateTip: new best=(\w{64})")
#: Core's log line (with -debug=validation) written right before it signals the new tip to
#: its waiters (``validation.cpp``: ``UpdatedBlockTip`` is enqueued, then ``blockTip``
#: notifies ``waitTipChanged``/``waitfornewblock``/``waitNext`` at once)
LOG_SIGNAL = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6})Z \[validation\] "
                        r"Enqueuing UpdatedBlockTip: new block hash=(\w{64})")
MISS_AFTER = 5.0
T = 120


def pct(xs, p):
    xs = sorted(xs)
    return xs[max(0, min(len(xs) - 1, round(p / 100 * (len(xs) - 1))))] if xs else float("nan")


# ---- clients: child processes recording arrivals (benchmarks/arrivals.py) ------------------


def _worker(conn, port: int, key, n: int) -> None:
    serve_clients(conn, port, key, n, max_additional_size=100, max_additional_sigops=400)


def spawn_clients(port, key, n):
    parts = [n // 2, n - n // 2] if n > 1 else [n]
    procs = []
    for k in parts:
        a, b = mp.Pipe()
        p = mp.get_context("spawn").Process(target=_worker, args=(b, port, key, k), daemon=True)
        p.start()
        procs.append((p, a))
    for _p, a in procs:
        if not a.poll(T) or a.recv() != "ready":
            raise RuntimeError("clients did not connect")
    return procs


def collect(procs):
    snph, full = [], []
    for p, a in procs:
        a.send("stop")
        for s, f in a.recv():
            snph.append(s)
            full.append(f)
        p.join(10)
    return snph, full


# ---- nodes --------------------------------------------------------------------------------


class BuiltinNode:
    """The built-in regtest chain's bitcoind-style JSON-RPC + ZMQ endpoint, in its own
    process (``sv2ffi tp --regtest-rpc-port``)."""

    kind = "built-in regtest chain endpoint (sv2ffi tp --regtest-rpc-port)"
    ipc = False

    def __init__(self, mempool: int, datadir: Path):
        self.rpc_port, self.zmq = free_port(), f"tcp://127.0.0.1:{free_port()}"
        datadir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            SV2FFI + ["tp", "--sv2-port", "0", "--datadir", str(datadir), "--mempool-interval",
                      "0", "--regtest-rpc-port", str(self.rpc_port), "--regtest-zmq-hashblock",
                      self.zmq, "--log-level", "warning"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        for line in self.proc.stdout:
            m = re.search(r"cookie (\S+)", line)
            if m:
                self.cookie = Path(m.group(1))
                break
        self.url = f"http://127.0.0.1:{self.rpc_port}/"
        self.mempool = mempool
        try:
            self.refill()
        except BaseException:  # no endpoint left running behind a failed setup
            self.close()
            raise

    def rpc(self, method, *params):
        from bitcoinrpc.authproxy import AuthServiceProxy
        user, pw = self.cookie.read_text().strip().split(":", 1)
        return getattr(AuthServiceProxy(f"http://{user}:{pw}@127.0.0.1:{self.rpc_port}/",
                                        timeout=T), method)(*params)

    def refill(self):
        need = self.mempool - self.rpc("getmempoolinfo")["size"]
        if need > 0:
            self.rpc("generate_transactions", need)

    def prepare(self):
        """An empty block on the tip, not yet submitted (the mempool stays full)."""
        from sv2ffi import bitcoin as btc
        addr = btc.script_address(btc.P2WSH_OP_TRUE, btc.NETWORKS["regtest"])
        return self.rpc("generateblock", addr, [], False)["hex"]

    def submit(self, block_hex):
        r = self.rpc("submitblock", block_hex)
        if r is not None:
            raise RuntimeError(f"submitblock: {r}")

    def best(self) -> str:
        return self.rpc("getbestblockhash")

    def close(self):
        self.proc.terminate()
        self.proc.wait(30)


class CoreNode:
    """A real regtest Bitcoin Core (tests/core_node.py) with a wallet-funded mempool."""

    def __init__(self, exe: str, mempool: int, coins: int = 0):
        self.ipc = exe == BITCOIN_NODE
        self.kind = f"Bitcoin Core {Path(exe).name} (regtest)"
        # -checkmempool=0: mainnet's setting.  Regtest checks the whole mempool's
        # consistency after every block, between the block's connection and the tip signal
        # (about 20 ms with 3,000 transactions), a debugging aid no mined chain runs with;
        # -checkblockindex=0 likewise (regtest walks its block index under cs_main after
        # every block; no effect measured here, but no mined chain does it either).
        # -debug=validation: the node's own stamp of its tip signal (``signalled_at``)
        self.node = RealNode(exe, zmq=True, ipc=self.ipc, extra=(
            "-checkmempool=0", "-checkblockindex=0", "-debug=validation")).start()
        try:
            # the prepared blocks are empty: the mempool stays, refills are small
            self.node.fund_wallet(coins=coins or max(1000, mempool + 500))
            self.zmq, self.url, self.cookie = self.node.zmq, self.node.url, self.node.cookie
            self.mempool = mempool
            self.refill()
        except BaseException:  # no node left running behind a failed setup
            self.node.close()
            raise

    def refill(self):
        need = self.mempool - self.node.rpc("getmempoolinfo")["size"]
        if need > 0:
            self.node.fill_mempool(need)

    def prepare(self):
        """An empty block on the tip, not yet submitted (the mempool stays full)."""
        return self.node.rpc("generateblock", self.node.addr, [], False)["hex"]

    def submit(self, block_hex):
        r = self.node.rpc("submitblock", block_hex)
        if r is not None:
            raise RuntimeError(f"submitblock: {r}")

    def best(self) -> str:
        return self.node.rpc("getbestblockhash")

    def connected_at(self) -> dict:
        """Block hash -> when the node connected it, CLOCK_MONOTONIC: its ``UpdateTip``
        log line (``-logtimemicros``), which Core writes before it signals the new tip to
        ``waitfornewblock`` / ``waitTipChanged`` and ZMQ.  Unlike a waiter's reply, this
        clock cannot be held back by another RPC thread (after a tip, each waiter needs
        ``cs_main``, which a getblocktemplate sent meanwhile holds for its whole build)."""
        return self._log_stamps(LOG_TIP)

    def signalled_at(self) -> dict:
        """Block hash -> when the node signalled it as its new tip, CLOCK_MONOTONIC: the
        ``Enqueuing UpdatedBlockTip`` line (``-debug=validation``), written by the thread
        that connected the block, under ``cs_main``, just before ``blockTip`` wakes every
        waiter: the node's tip notification, dated by the node, which no RPC can delay."""
        return self._log_stamps(LOG_SIGNAL)

    def _log_stamps(self, pattern) -> dict:
        offset = time.time() - time.monotonic()
        got = {}
        log = self.node.dir / "regtest" / "debug.log"
        with open(log, errors="replace") as f:
            for line in f:
                m = pattern.match(line)
                if m:
                    when = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%f")
                    got[m.group(2)] = when.replace(
                        tzinfo=datetime.timezone.utc).timestamp() - offset
        return got

    def close(self):
        self.node.close()


# ---- template providers under test --------------------------------------------------------


class Sv2ffiTp:
    def __init__(self, node, source: str, datadir: Path, python: Optional[str] = None):
        self.name = f"sv2ffi {source}" if python is None else f"baseline {source}"
        self.port = free_port()
        datadir.mkdir(parents=True, exist_ok=True)
        args = ["tp", "--source", source, "--sv2-port", str(self.port), "--datadir",
                str(datadir), "--max-clients", "1000", "--log-level",
                "debug" if os.environ.get("TIPLAT_TRACE") else "info", "--chain",
                "regtest"]
        #: block hash -> the node's getblocktemplate ms for that block's first full
        #: template, as the rpc source logs it (request sent to the reply's last byte)
        self.gbt_ms: dict = {}
        #: block hash -> when the TP read the node's notice of it (its own DEBUG line,
        #: ``TIPLAT_TRACE=1`` only: the TP then logs at DEBUG)
        self.noticed_at: dict = {}
        if source == "rpc":
            args += ["--rpc-url", node.url, "--rpc-cookie-file", str(node.cookie),
                     "--zmq-hashblock", node.zmq]
        else:
            args += ["--ipcconnect", f"unix:{node.node.socket}"]
        cmd = SV2FFI if python is None else [python, "-m", "sv2ffi"]
        self.proc = subprocess.Popen(cmd + args, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        threading.Thread(target=self._read_log, daemon=True).start()
        for line in self.proc.stdout:
            m = re.search(r"authority public key: (\w+)", line)
            if m:
                self.key = m.group(1)
                break
        threading.Thread(target=lambda: [None for _ in self.proc.stdout], daemon=True).start()

    def _read_log(self):
        for line in self.proc.stderr:
            m = re.search(r"full template on block (\w+) .*getblocktemplate ([\d.]+) ms", line)
            if m:
                self.gbt_ms[m.group(1)] = float(m.group(2))
            m = re.search(r"tip (\w{64}) noticed: .* read at ([\d.]+)", line)
            if m:
                self.noticed_at[m.group(1)] = float(m.group(2))
            if os.environ.get("TIPLAT_TPLOG"):
                print(line.rstrip(), file=sys.stderr)

    def close(self):
        self.proc.terminate()
        self.proc.wait(30)


class RealSv2Tp:
    name = "sv2-tp"

    def __init__(self, node, datadir: Path):
        self.port = free_port()
        self.tp = Sv2Tp(node.node, self.port)
        self.key = self.tp.authority

    def close(self):
        self.tp.stop()


# ---- measuring ----------------------------------------------------------------------------


def zmq_listener(endpoint: str, arrivals: dict, stop: threading.Event):
    import zmq
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"hashblock")
    sub.connect(endpoint)
    try:
        while not stop.is_set():
            if sub.poll(100):
                parts = sub.recv_multipart()
                arrivals.setdefault(parts[1].hex(), time.monotonic())
    finally:
        sub.close(0)
        ctx.term()


def tip_waiter(node, arrivals: dict, stop: threading.Event):
    """The node's own tip signal (``waitfornewblock``, Core's ``waitTipChanged``): returns
    as the block connects, before the wallet and ZMQ hear of it; kernel-stamped."""
    port = int(node.url.rsplit(":", 1)[1].strip("/"))
    waitfornewblock_arrivals("127.0.0.1", port, node.cookie, arrivals, stop)


def measure(node, tp, n: int, tips: int) -> dict:
    procs = spawn_clients(tp.port, tp.key, n)
    zmq_at: dict = {}
    notify_at: dict = {}
    stop = threading.Event()
    listener = threading.Thread(target=zmq_listener, args=(node.zmq, zmq_at, stop), daemon=True)
    listener.start()
    waiter = threading.Thread(target=tip_waiter, args=(node, notify_at, stop), daemon=True)
    waiter.start()
    time.sleep(0.5)
    submitted = []
    for _ in range(tips):
        node.refill()
        prepared = node.prepare()
        time.sleep(0.3)
        t0 = time.monotonic()
        node.submit(prepared)
        submitted.append((node.best(), t0))
        time.sleep(1.0)  # the full template follows; then the next block
    time.sleep(MISS_AFTER)
    stop.set()
    snph, full = collect(procs)
    listener.join(5)
    waiter.join(5)
    connect_at = node.connected_at() if hasattr(node, "connected_at") else {}
    signal_at = node.signalled_at() if hasattr(node, "signalled_at") else {}
    lat = {k: [] for k in ("connect", "signal", "notify", "read", "zmq", "submit", "full",
                           "over", "gap", "sgap", "noticed", "tp")}
    worst: list = []
    missed = 0
    for tip, t0 in submitted:
        tn = notify_at.get(tip)
        # the clock of record: the block's connection in the node when its log says so,
        # else (the built-in endpoint) the node's tip signal
        tc = connect_at.get(tip, tn)
        ts = signal_at.get(tip)
        if tip in connect_at and tn is not None:
            lat["gap"].append((tn - connect_at[tip]) * 1000)
        if tip in connect_at and ts is not None:
            lat["sgap"].append((ts - connect_at[tip]) * 1000)
        tnotice = getattr(tp, "noticed_at", {}).get(tip)
        if tnotice is not None and ts is not None:
            lat["noticed"].append((tnotice - ts) * 1000)
        per_tip = []
        for i in range(n):
            got = snph[i].get(tip)
            if got is None or got[0] - t0 > MISS_AFTER:
                missed += 1
                continue
            t, read = got
            for key, start in (("submit", t0), ("zmq", zmq_at.get(tip)), ("notify", tn),
                               ("connect", tc), ("signal", ts), ("tp", tnotice)):
                if start is not None:
                    lat[key].append((t - start) * 1000)
            if tc is not None:
                lat["read"].append((read - tc) * 1000)
                per_tip.append((t - tc) * 1000)
            f = full[i].get(tip)
            if f is not None:
                lat["full"].append((f[0] - (tc or t0)) * 1000)
                gbt = getattr(tp, "gbt_ms", {}).get(tip)
                if gbt is not None:  # the same template's own getblocktemplate
                    lat["over"].append(lat["full"][-1] - gbt)
        if per_tip:
            worst.append(max(per_tip))
            if os.environ.get("TIPLAT_DETAIL"):  # where a p99 comes from: each tip's spread
                per_tip.sort()
                print(f"  {tp.name} N={n} tip {tip[:12]}: first {per_tip[0]:.2f} median "
                      f"{per_tip[len(per_tip) // 2]:.2f} last {per_tip[-1]:.2f} ms from "
                      f"{'connect' if tip in connect_at else 'notify'}"
                      + (f" (the node's signal at +{(ts - tc) * 1000:.2f})"
                         if ts is not None and tc is not None else "")
                      + (f" (the TP's notice at +{(tnotice - tc) * 1000:.2f})"
                         if tnotice is not None and tc is not None else "")
                      + (f" (this script's tip signal at +{(tn - tc) * 1000:.2f})"
                         if tn is not None and tc is not None and tn != tc else ""),
                      file=sys.stderr)
    out = {f"{k}{p}": pct(v, p) if v else float("nan")
           for k, v in lat.items() for p in (50, 99)}
    out.update(worst99=pct(worst, 99), missed=missed, samples=n * tips)
    return out


def node_gbt(node, tips: int) -> list:
    """The node's own getblocktemplate time right after a tip, with no TP attached (the
    floor of the full-template column): a block is submitted, and once it is the tip a
    getblocktemplate is timed from the request to the last byte of the reply (undecoded)."""
    port = int(node.url.rsplit(":", 1)[1].strip("/"))
    times = []
    sock = rpc_socket("127.0.0.1", port)
    try:
        for _ in range(tips):
            node.refill()
            prepared = node.prepare()
            node.submit(prepared)
            node.best()
            t0 = time.monotonic()
            _first, last, raw = raw_rpc(sock, node.cookie, "getblocktemplate",
                                        [{"rules": ["segwit"]}])
            times.append((last - t0) * 1000)
            time.sleep(0.2)
    finally:
        sock.close()
    return times


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", default="1,10,100")
    ap.add_argument("--tips", type=int, default=15)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--mempool", type=int, default=500)
    ap.add_argument("--only", default="", help="comma-separated columns to run (e.g. "
                    "'sv2ffi rpc,sv2-tp'); default all that can run")
    ap.add_argument("--baseline", metavar="PYTHON", help="an interpreter with another "
                    "sv2ffi installed: its rpc TP runs too, as 'baseline rpc'")
    args = ap.parse_args(argv)
    counts = [int(x) for x in args.clients.split(",")]
    work = Path(tempfile.mkdtemp(prefix="sv2ffi-tiplat-"))
    exe = BITCOIN_NODE or BITCOIND
    node = CoreNode(exe, args.mempool) if exe and BITCOIN_CLI else \
        BuiltinNode(args.mempool, work / "node")
    results: dict = {}
    try:
        gbt = node_gbt(node, max(5, args.tips // 2))
        makers = [("sv2ffi rpc", lambda d: Sv2ffiTp(node, "rpc", d))]
        if args.baseline:
            makers.append(("baseline rpc", lambda d: Sv2ffiTp(node, "rpc", d, args.baseline)))
        if getattr(node, "ipc", False):
            makers.append(("sv2ffi ipc", lambda d: Sv2ffiTp(node, "ipc", d)))
            if SV2TP:
                makers.append(("sv2-tp", lambda d: RealSv2Tp(node, d)))
        if args.only:
            keep = {x.strip() for x in args.only.split(",")}
            makers = [(n, m) for n, m in makers if n in keep]
        for run in range(args.runs):
            for name, make in makers:
                tp = make(work / f"{name.replace(' ', '-')}-{run}")
                try:
                    time.sleep(2)
                    for n in counts:
                        results.setdefault((name, n), []).append(measure(node, tp, n, args.tips))
                finally:
                    tp.close()
    finally:
        node.close()
    print(f"node: {node.kind}; mempool kept at {args.mempool} transactions; {args.tips} tips "
          f"per run; medians of {args.runs} runs (ms).  Arrivals are kernel receive stamps at "
          f"the client socket; 'read' is when the client process read it")
    print(f"the node's own getblocktemplate right after a tip (no TP attached): p50 "
          f"{statistics.median(gbt):.2f} ms, p99 {pct(gbt, 99):.2f} ms (request to last byte)")
    clock = "connect" if isinstance(node, CoreNode) else "notify"
    print(f"{'TP':<11} {'N':>4} | {'from ' + clock + ' p50':>16} {'p99':>7} {'slowest p99':>11} | "
          f"{'from signal p50':>15} {'p99':>7} | "
          f"{'from notify p50':>15} {'p99':>7} | {'read p50':>8} {'p99':>7} | "
          f"{'from zmq p50':>12} {'p99':>7} | {'from submit p50':>15} {'p99':>7} | "
          f"{'missed':>8} | {'full tpl p50':>12} {'- its gbt':>9} {'- node gbt':>10}")
    gbt50 = statistics.median(gbt)
    for (name, n), rs in results.items():
        med = {k: statistics.median(r[k] for r in rs) for k in rs[0]}
        f = {k: ("-" if v != v else f"{v:.2f}") for k, v in med.items()}
        # the full template against the node's getblocktemplate timed alone (the floor line)
        vs_node = "-" if med["full50"] != med["full50"] else f"{med['full50'] - gbt50:.2f}"
        print(f"{name:<11} {n:>4} | {f['connect50']:>16} {f['connect99']:>7} "
              f"{med['worst99']:>11.2f} | {f['signal50']:>15} {f['signal99']:>7} | "
              f"{f['notify50']:>15} {f['notify99']:>7} | "
              f"{f['read50']:>8} {f['read99']:>7} | {f['zmq50']:>12} {f['zmq99']:>7} | "
              f"{f['submit50']:>15} {f['submit99']:>7} | "
              f"{int(med['missed']):>4}/{rs[0]['samples']:<4}| {f['full50']:>12} "
              f"{f['over50']:>9} {vs_node:>10}")
    sgaps = [r["sgap50"] for rs in results.values() for r in rs if r["sgap50"] == r["sgap50"]]
    if sgaps:
        print(f"the node's log line for a connected block -> its log line for signalling the "
              f"tip (Enqueuing UpdatedBlockTip, just before blockTip wakes the waiters): median "
              f"{statistics.median(sgaps):.2f} ms")
    for (name, n), rs in results.items():
        if rs[0]["tp50"] == rs[0]["tp50"]:
            print(f"{name} N={n}, traced (TIPLAT_TRACE=1, the TP logging at DEBUG): the node's "
                  f"signal -> the TP's read of its answer p50 "
                  f"{statistics.median(r['noticed50'] for r in rs):.2f} ms; that read -> "
                  f"SetNewPrevHash received p50 {statistics.median(r['tp50'] for r in rs):.2f}"
                  f" / p99 {statistics.median(r['tp99'] for r in rs):.2f} ms (the TP's share)")
    gaps = [r["gap50"] for rs in results.values() for r in rs if r["gap50"] == r["gap50"]]
    if gaps:
        print(f"the node's log line for a connected block -> its tip signal reaching this "
              f"script's waitfornewblock: median {statistics.median(gaps):.2f} ms (larger when "
              f"a TP's getblocktemplate takes cs_main first)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Steady state: what a TP costs between blocks (not run by pytest).

No blocks; the node's mempool holds ``--mempool`` transactions (3,000 by default) and
``--clients`` Noise clients (100) stay connected.  Two phases of ``--seconds`` each:
a still mempool, then one new transaction every ``1/--tx-rate`` seconds (a quiet
mainnet hour brings a few per second).  For each phase: the TP process's CPU time (user +
system, all threads, from /proc) as a percentage of one core, the node's over the same
interval, and the templates the clients received.  Medians of ``--runs`` runs.

Columns: ``sv2ffi rpc`` (JSON-RPC + ZMQ, its default 2 s poll) on bitcoind or
bitcoin-node; ``sv2ffi ipc`` and ``sv2-tp`` when the node is a bitcoin-node with IPC
(``SV2FFI_BITCOIN_NODE``; ``SV2FFI_SV2TP`` for sv2-tp); on the built-in chain's endpoint
without a real node (its CPU is then Python's, not Core's).

    .venv/bin/python benchmarks/steady_cpu.py [--clients 100] [--mempool 3000] [--seconds 30]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import tip_latency as tl  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and all its threads so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime (fields 14, 15)


def node_pid(node) -> int:
    return node.node.proc.pid if hasattr(node, "node") else node.proc.pid


def trickle(node, rate: float, stop: threading.Event) -> None:
    while not stop.wait(1.0 / rate):
        if hasattr(node, "node"):
            node.node.fill_mempool(1)
        else:
            node.rpc("generate_transactions", 1)


def phase(node, tp_pid: int, seconds: float, rate: float) -> tuple:
    stop = threading.Event()
    feeder = threading.Thread(target=trickle, args=(node, rate, stop), daemon=True) \
        if rate else None
    n0, t0, w0 = cpu_seconds(node_pid(node)), cpu_seconds(tp_pid), time.monotonic()
    if feeder:
        feeder.start()
    time.sleep(seconds)
    stop.set()
    if feeder:
        feeder.join(30)
    wall = time.monotonic() - w0
    return ((cpu_seconds(tp_pid) - t0) / wall * 100, (cpu_seconds(node_pid(node)) - n0) / wall
            * 100)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=100)
    ap.add_argument("--mempool", type=int, default=3000)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--tx-rate", type=float, default=2.0)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--only", default="")
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="sv2ffi-steady-"))
    exe = tl.BITCOIN_NODE or tl.BITCOIND
    trickled = int(args.tx_rate * args.seconds * args.runs * 3) + 100
    node = tl.CoreNode(exe, args.mempool, coins=args.mempool + trickled) \
        if exe and tl.BITCOIN_CLI else \
        tl.BuiltinNode(args.mempool, work / "node")
    results: dict = {}
    try:
        makers = [("sv2ffi rpc", lambda d: tl.Sv2ffiTp(node, "rpc", d))]
        if getattr(node, "ipc", False):
            makers.append(("sv2ffi ipc", lambda d: tl.Sv2ffiTp(node, "ipc", d)))
            if tl.SV2TP:
                makers.append(("sv2-tp", lambda d: tl.RealSv2Tp(node, d)))
        if args.only:
            keep = {x.strip() for x in args.only.split(",")}
            makers = [(n, m) for n, m in makers if n in keep]
        for run in range(args.runs):
            for name, make in makers:
                node.refill()
                tp = make(work / f"{name.replace(' ', '-')}-{run}")
                try:
                    procs = tl.spawn_clients(tp.port, tp.key, args.clients)
                    time.sleep(5)  # connected, first templates out
                    pid = tp.proc.pid if hasattr(tp, "proc") else tp.tp.proc.pid
                    still = phase(node, pid, args.seconds, 0)
                    moving = phase(node, pid, args.seconds, args.tx_rate)
                    snph, full = tl.collect(procs)
                    results.setdefault(name, []).append(still + moving)
                finally:
                    tp.close()
    finally:
        node.close()
    print(f"node: {node.kind}; {args.clients} clients; mempool {args.mempool} transactions; "
          f"{args.seconds:.0f} s per phase; medians of {args.runs} runs; CPU in % of one core")
    print(f"{'TP':<11} | {'still: TP':>9} {'node':>6} | {f'{args.tx_rate:g} tx/s: TP':>12} "
          f"{'node':>6}")
    for name, rs in results.items():
        med = [statistics.median(r[i] for r in rs) for i in range(4)]
        print(f"{name:<11} | {med[0]:>8.2f}% {med[1]:>5.2f}% | {med[2]:>11.2f}% {med[3]:>5.2f}%")
    return 0


if __name__ == "__main__":
    mp.set_start_method("spawn", force=True)
    sys.exit(main())

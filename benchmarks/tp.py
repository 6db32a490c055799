"""Template provider benchmarks (not run by pytest).

1. New block known to the TP (the chain's block-connected event) -> SetNewPrevHash received
   by each of N = 1, 10, 100, 1,000 Noise clients (p50, p99 over clients x blocks, and the
   p99 over blocks of each block's slowest client), and -> the first full (non-future)
   NewTemplate for that tip.  Floors, same run: a bare asyncio server writing one
   pre-encoded 86-byte frame to N plain TCP clients on the same trigger, and the same
   server sealing it for each client with its own ChaCha20-Poly1305 key first.
2. Serving RequestTransactionData for a 3,000-transaction template: round trip over Noise,
   next to the core building the reply alone.
3. Memory per connected client (TP process RSS growth / N), next to the bare server's.

The TP runs on its own thread (TpThread, as the C ABI runs it); the clients run in a child
process so they do not share the TP's interpreter lock; a frame's arrival is the kernel's
receive stamp at the client socket (benchmarks/arrivals.py), so the client process being
slow to read 1,000 sockets is not counted as the TP's latency.  Times are CLOCK_MONOTONIC,
which is system-wide on Linux, so the two processes' timestamps compare directly.

    .venv/bin/python benchmarks/tp.py [--rounds 20] [--clients 1,10,100,1000] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from sv2ffi import fanout  # noqa: E402
from sv2ffi.messages import NewTemplate, RequestTransactionDataSuccess, SetNewPrevHash  # noqa: E402
from sv2ffi.tp.core import TpConfig  # noqa: E402
from sv2ffi.tp.runner import BackgroundLoop, TpThread  # noqa: E402
from sv2ffi.tp.server import TpService  # noqa: E402
from sv2ffi.tp.sources.regtest import RegtestSource  # noqa: E402

T = 60


def rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def pct(xs, p):
    xs = sorted(xs)
    k = max(0, min(len(xs) - 1, round(p / 100 * (len(xs) - 1))))
    return xs[k]


# ---- client process ------------------------------------------------------------------------


def client_proc(conn, kind: str, port: int, key: str, n: int, frame_size: int = 86) -> None:
    """The clients, kernel-stamping arrivals (benchmarks/arrivals.py): ``tp`` are Noise
    Template Distribution clients; ``raw`` plain sockets reading ``frame_size``-byte frames
    (the floors).  Answers each {"tip", "full"} command with every client's arrivals."""
    import selectors
    import socket

    from arrivals import SO_TIMESTAMPNS, StampedClient, pump, stamped_recv
    sel = selectors.DefaultSelector()
    clients = []
    if kind == "tp":
        clients = [StampedClient(port, key, timeout=T) for _ in range(n)]
        for c in clients:
            sel.register(c.sock, selectors.EVENT_READ, c.on_readable)
        snph_at = [c.snph for c in clients]
        full_at = [c.full for c in clients]
    else:
        snph_at = [dict() for _ in range(n)]
        full_at = [dict() for _ in range(n)]
        for i in range(n):
            sock = socket.create_connection(("127.0.0.1", port), timeout=T)
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            sock.setblocking(False)
            buf = bytearray()

            def read(sock=sock, buf=buf, got=snph_at[i]):
                data, kernel, user = stamped_recv(sock)
                buf += data
                while len(buf) >= frame_size:
                    del buf[:frame_size]
                    got[len(got)] = (kernel, user)
            sel.register(sock, selectors.EVENT_READ, read)

    conn.send("connected")
    while True:
        while not conn.poll(0):
            pump(sel, clients, 0.01)
        cmd = conn.recv()
        if cmd == "quit":
            break
        want_full, tip = cmd["full"], cmd["tip"]
        deadline = time.monotonic() + T
        while time.monotonic() < deadline:
            if all(tip in s for s in snph_at) and (not want_full or all(tip in f for f in full_at)):
                break
            pump(sel, clients, 0.002)
        conn.send([(s.get(tip, (None,))[0], f.get(tip, (None,))[0])
                   for s, f in zip(snph_at, full_at)])


def spawn(kind, port, key, n, frame_size=86):
    parent, child = mp.Pipe()
    p = mp.get_context("fork").Process(target=client_proc,
                                       args=(child, kind, port, key, n, frame_size),
                                       daemon=True)
    p.start()
    assert parent.poll(T) and parent.recv() == "connected"
    return p, parent


# ---- 1 + 3: tip latency and memory --------------------------------------------------------------


def _mine_empty_block(chain) -> bytes:
    """A block found on the empty (future) template, as pools mine right after a tip: the
    mempool stays, so the tip's full template has transactions to carry."""
    tpl = chain.block_template()
    tpl.txs, tpl.coinbase_value = [], tpl.subsidy
    blk = chain.mine_template(tpl, extra=os.urandom(4))
    assert chain.submit_block(blk.serialize()) is None
    return blk.hash


def bench_tp(n: int, rounds: int, mempool: int, native: bool = True):
    """``native``: the tip's pass in C (sv2ffi.fanout) or, False, in Python."""
    src = RegtestSource(mempool_interval=0, seed=1)
    src.chain.add_random_transactions(mempool)
    datadir = tempfile.mkdtemp(prefix="sv2ffi-bench-")
    svc = TpService(src, datadir=datadir, config=TpConfig(max_clients=1000, msg_rate=1e6,
                                                          msg_burst=10 ** 6),
                    max_pending=1000, max_pending_per_source=1000)  # all from one address
    svc._native_fanout = native and fanout.AVAILABLE
    tp = TpThread(svc).start()
    chain = src.chain
    known = {}
    chain.on_block.insert(0, lambda c: known.__setitem__(c.tip_hash, time.monotonic()))
    # warm up (first-connection allocations, imports) before measuring memory
    p, pipe = spawn("tp", tp.port, tp.authority_pubkey, 1)
    pipe.send("quit")
    p.join(10)
    time.sleep(0.2)
    rss0 = rss_kib()
    p, pipe = spawn("tp", tp.port, tp.authority_pubkey, n)
    deadline = time.monotonic() + T
    while svc.client_count < n and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)
    rss1 = rss_kib()
    snph, full, worst = [], [], []
    for _ in range(rounds):
        tip = tp.call(_mine_empty_block, chain)
        pipe.send({"tip": tip[::-1].hex(), "full": True})
        assert pipe.poll(T)
        res = pipe.recv()
        t0 = known[tip]
        per_tip = [(s - t0) * 1e3 for s, _ in res]
        snph += per_tip
        worst.append(max(per_tip))
        full += [(f - t0) * 1e3 for _, f in res if f is not None]
    pipe.send("quit")
    p.join(10)
    tp.stop()
    return snph, full, worst, (rss1 - rss0) / n


async def _raw_server(n_expected, ready):
    writers = []

    async def on_conn(r, w):
        writers.append(w)
        if len(writers) == n_expected:
            ready.set()

    server = await asyncio.start_server(on_conn, "127.0.0.1", 0)
    return server, writers


def bench_raw(n: int, rounds: int, encrypted: bool = False):
    """The floors: one 86-byte frame (a SetNewPrevHash's size) written to N plain TCP
    clients by a bare asyncio server; with ``encrypted``, sealed first for each client with
    its own ChaCha20-Poly1305 key as Noise does (header and payload: 118 bytes)."""
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
    bg = BackgroundLoop("raw")
    ready = None

    async def make():
        nonlocal ready
        ready = asyncio.Event()
        return await _raw_server(n, ready)

    server, writers = bg.run(make())
    port = server.sockets[0].getsockname()[1]
    rss0 = rss_kib()
    p, pipe = spawn("raw", port, None, n, 118 if encrypted else 86)
    bg.run(asyncio.wait_for(ready.wait(), T))
    time.sleep(0.2)
    rss1 = rss_kib()
    header, payload = bytes(6), bytes(80)
    ciphers = [ChaCha20Poly1305(os.urandom(32)) for _ in writers]
    lat, worst = [], []
    for k in range(rounds):
        def broadcast():
            t0 = time.monotonic()
            if encrypted:
                n0, n1 = (2 * k).to_bytes(12, "little"), (2 * k + 1).to_bytes(12, "little")
                for w, c in zip(writers, ciphers):
                    w.write(c.encrypt(n0, header, None) + c.encrypt(n1, payload, None))
            else:
                frame = header + payload
                for w in writers:
                    w.write(frame)
            return t0
        t0 = bg.call(broadcast)
        pipe.send({"tip": k, "full": False})
        assert pipe.poll(T)
        per_tip = [(s - t0) * 1e3 for s, _ in pipe.recv()]
        lat += per_tip
        worst.append(max(per_tip))
    pipe.send("quit")
    p.join(10)

    async def close():
        server.close()
        for w in writers:
            w.close()
    bg.run(close())
    bg.close()
    return lat, worst, (rss1 - rss0) / n


# ---- 2: RequestTransactionData for 3,000 transactions -------------------------------------------


def bench_tx_data(reps: int):
    from sv2ffi.client import TdpClient
    src = RegtestSource(mempool_interval=0, seed=3)
    made = 0
    while made < 3000:
        made += src.chain.add_random_transactions(3000 - made)
    datadir = tempfile.mkdtemp(prefix="sv2ffi-bench-")
    svc = TpService(src, datadir=datadir, config=TpConfig(tx_data_rate=1e6, tx_data_burst=10 ** 6))
    tp = TpThread(svc).start()

    async def main():
        c = await TdpClient.connect("127.0.0.1", tp.port, authority_pubkey=tp.authority_pubkey,
                                    timeout=T)
        await c.wait_for(SetNewPrevHash, T)
        tid = c.state.current.template_id
        times, size = [], 0
        for _ in range(reps):
            t0 = time.perf_counter()
            r = await c.request_transaction_data(tid, T)
            times.append((time.perf_counter() - t0) * 1e3)
            assert isinstance(r, RequestTransactionDataSuccess)
            size = sum(len(t) for t in r.transaction_list)
            ntx = len(r.transaction_list)
        await c.close()
        return times, size, ntx, tid

    times, size, ntx, tid = asyncio.run(main())
    core_times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        tp.call(svc.core.transaction_data, tid)
        core_times.append((time.perf_counter() - t0) * 1e3)
    tp.stop()
    return made, ntx, size, times, core_times


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--clients", default="1,10,100,1000")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--mempool", type=int, default=1000,
                    help="transactions in the full template that follows each tip")
    args = ap.parse_args()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs; {args.rounds} blocks per N "
          f"per run, medians of {args.runs} runs; Noise NX + ChaCha20-Poly1305 on every TP "
          f"connection; arrivals are kernel receive stamps at the client sockets")
    print()
    print("new block known -> SetNewPrevHash at each client (p50, p99, and the p99 over tips of "
          f"the slowest client) / -> first full NewTemplate ({args.mempool} transactions); "
          "the TP's tip pass in C (sv2ffi.fanout"
          f"{'' if fanout.AVAILABLE else ': NOT BUILT, Python used'}) and in Python "
          "(py: SNPH p50 and slowest); floors: one frame to N plain TCP clients, and sealed "
          "per client (ChaCha20-Poly1305), by a bare asyncio server")
    print(f"{'N':>5} | {'SNPH p50':>8} {'p99':>6} {'slowest':>7} | {'full p50':>8} {'p99':>6} | "
          f"{'py p50':>6} {'slowest':>7} | {'tcp p50':>7} {'slowest':>7} | "
          f"{'aead p50':>8} {'slowest':>7} | {'vs aead':>7} | {'RSS/client':>10} "
          f"{'tcp RSS/cl':>10}")
    med = statistics.median
    for n in [int(x) for x in args.clients.split(",")]:
        runs = []
        for _ in range(args.runs):
            snph, full, worst, mem = bench_tp(n, args.rounds, args.mempool)
            py, _, py_worst, _ = bench_tp(n, args.rounds, args.mempool, native=False)
            raw, raw_worst, raw_mem = bench_raw(n, args.rounds)
            aead, aead_worst, _ = bench_raw(n, args.rounds, encrypted=True)
            runs.append([med(snph), pct(snph, 99), pct(worst, 99), med(full), pct(full, 99),
                         med(py), pct(py_worst, 99),
                         med(raw), pct(raw_worst, 99), med(aead), pct(aead_worst, 99), mem,
                         raw_mem])
        r = [med(col) for col in zip(*runs)]
        print(f"{n:>5} | {r[0]:>6.2f}ms {r[1]:>6.2f} {r[2]:>7.2f} | {r[3]:>6.2f}ms {r[4]:>6.2f} | "
              f"{r[5]:>4.2f}ms {r[6]:>7.2f} | {r[7]:>5.2f}ms {r[8]:>7.2f} | "
              f"{r[9]:>6.2f}ms {r[10]:>7.2f} | "
              f"{r[2] / max(r[10], 1e-6):>6.1f}x | {r[11]:>7.1f}KiB {r[12]:>7.1f}KiB", flush=True)
    print()
    made, ntx, size, times, core = bench_tx_data(args.rounds)
    print(f"RequestTransactionData for a {ntx}-transaction template ({size / 1e6:.2f} MB of "
          f"witness-serialized transactions, mempool {made}):")
    print(f"  round trip over Noise: p50 {statistics.median(times):.2f} ms, "
          f"p99 {pct(times, 99):.2f} ms")
    print(f"  core building the reply alone (baseline): p50 {statistics.median(core):.3f} ms; "
          f"round trip / core = {statistics.median(times) / statistics.median(core):.0f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())

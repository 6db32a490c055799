"""Template provider benchmarks (not run by pytest).

1. New block known to the TP (the chain's block-connected event) -> SetNewPrevHash received
   by each of N = 1, 10, 100 Noise clients (p50, p99 over clients x blocks), and -> the first
   full (non-future) NewTemplate for that tip.  Baseline, same run: a bare asyncio server
   writing one pre-encoded 86-byte frame to N plain TCP clients on the same trigger.
2. Serving RequestTransactionData for a 3,000-transaction template: round trip over Noise,
   next to the core building the reply alone.
3. Memory per connected client (TP process RSS growth / N), next to the bare server's.

The TP runs on its own thread (TpThread, as the C ABI runs it); the clients run in a child
process so they do not share the TP's interpreter lock.  Times are CLOCK_MONOTONIC, which is
system-wide on Linux, so the two processes' timestamps compare directly.

    .venv/bin/python benchmarks/tp.py [--rounds 20] [--clients 1,10,100]
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


def client_proc(conn, kind: str, port: int, key: str, n: int) -> None:
    asyncio.run(_client_proc(conn, kind, port, key, n))


async def _client_proc(conn, kind, port, key, n):
    from sv2ffi.client import TdpClient
    loop = asyncio.get_running_loop()
    snph_at: list = [dict() for _ in range(n)]  # tip -> time
    full_at: list = [dict() for _ in range(n)]
    tasks = []
    if kind == "tp":
        clients = []
        for _ in range(n):
            clients.append(await TdpClient.connect("127.0.0.1", port, authority_pubkey=key,
                                                   timeout=T))

        async def reader(i, c):
            tip = None
            while True:
                m = await c.stream.recv()
                now = time.monotonic()
                c.state.apply(m)
                if isinstance(m, SetNewPrevHash):
                    tip = m.prev_hash
                    snph_at[i].setdefault(tip, now)
                elif isinstance(m, NewTemplate) and not m.future_template and tip is not None:
                    full_at[i].setdefault(tip, now)

        for i, c in enumerate(clients):
            tasks.append(loop.create_task(reader(i, c)))
    else:
        async def raw_reader(i):
            r, w = await asyncio.open_connection("127.0.0.1", port)
            k = 0
            while True:
                await r.readexactly(86)
                snph_at[i][k] = time.monotonic()
                k += 1
        for i in range(n):
            tasks.append(loop.create_task(raw_reader(i)))
    conn.send("connected")
    while True:
        cmd = await loop.run_in_executor(None, conn.recv)
        if cmd == "quit":
            break
        want_full = cmd["full"]
        tip = cmd["tip"]
        deadline = time.monotonic() + T
        while time.monotonic() < deadline:
            if all(tip in s for s in snph_at) and (not want_full or all(tip in f for f in full_at)):
                break
            await asyncio.sleep(0.002)
        conn.send([(s.get(tip), f.get(tip)) for s, f in zip(snph_at, full_at)])
    for t in tasks:
        t.cancel()


def spawn(kind, port, key, n):
    parent, child = mp.Pipe()
    p = mp.get_context("fork").Process(target=client_proc, args=(child, kind, port, key, n),
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


def bench_tp(n: int, rounds: int, mempool: int):
    src = RegtestSource(mempool_interval=0, seed=1)
    src.chain.add_random_transactions(mempool)
    datadir = tempfile.mkdtemp(prefix="sv2ffi-bench-")
    svc = TpService(src, datadir=datadir, config=TpConfig(max_clients=1000, msg_rate=1e6,
                                                          msg_burst=10 ** 6),
                    max_pending=1000, max_pending_per_source=1000)  # all from one address
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
    snph, full = [], []
    for _ in range(rounds):
        tip = tp.call(_mine_empty_block, chain)
        pipe.send({"tip": tip, "full": True})
        assert pipe.poll(T)
        res = pipe.recv()
        t0 = known[tip]
        for s, f in res:
            snph.append((s - t0) * 1e3)
            if f is not None:
                full.append((f - t0) * 1e3)
    pipe.send("quit")
    p.join(10)
    tp.stop()
    return snph, full, (rss1 - rss0) / n


async def _raw_server(n_expected, ready):
    writers = []

    async def on_conn(r, w):
        writers.append(w)
        if len(writers) == n_expected:
            ready.set()

    server = await asyncio.start_server(on_conn, "127.0.0.1", 0)
    return server, writers


def bench_raw(n: int, rounds: int):
    bg = BackgroundLoop("raw")
    ready = None

    async def make():
        nonlocal ready
        ready = asyncio.Event()
        return await _raw_server(n, ready)

    server, writers = bg.run(make())
    port = server.sockets[0].getsockname()[1]
    rss0 = rss_kib()
    p, pipe = spawn("raw", port, None, n)
    bg.run(asyncio.wait_for(ready.wait(), T))
    time.sleep(0.2)
    rss1 = rss_kib()
    frame = bytes(86)
    lat = []
    for k in range(rounds):
        def broadcast():
            t0 = time.monotonic()
            for w in writers:
                w.write(frame)
            return t0
        t0 = bg.call(broadcast)
        pipe.send({"tip": k, "full": False})
        assert pipe.poll(T)
        lat += [(s - t0) * 1e3 for s, _ in pipe.recv()]
    pipe.send("quit")
    p.join(10)

    async def close():
        server.close()
        for w in writers:
            w.close()
    bg.run(close())
    bg.close()
    return lat, (rss1 - rss0) / n


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
    ap.add_argument("--clients", default="1,10,100")
    ap.add_argument("--mempool", type=int, default=1000,
                    help="transactions in the full template that follows each tip")
    args = ap.parse_args()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs; "
          f"{args.rounds} blocks per N; Noise NX + ChaCha20-Poly1305 on every TP connection")
    print()
    print("new block known -> SetNewPrevHash received by each client / -> first full NewTemplate "
          f"({args.mempool} transactions)")
    print(f"{'N':>4} {'SNPH p50':>9} {'SNPH p99':>9} {'full p50':>9} {'full p99':>9} "
          f"{'raw p50':>8} {'raw p99':>8} {'p50 ratio':>9}  {'RSS/client':>10} {'raw RSS/cl':>10}")
    for n in [int(x) for x in args.clients.split(",")]:
        snph, full, mem = bench_tp(n, args.rounds, args.mempool)
        raw, raw_mem = bench_raw(n, args.rounds)
        print(f"{n:>4} {statistics.median(snph):>7.2f}ms {pct(snph, 99):>7.2f}ms "
              f"{statistics.median(full):>7.2f}ms {pct(full, 99):>7.2f}ms "
              f"{statistics.median(raw):>6.2f}ms {pct(raw, 99):>6.2f}ms "
              f"{statistics.median(snph) / max(statistics.median(raw), 1e-6):>8.1f}x  "
              f"{mem:>7.1f}KiB {raw_mem:>7.1f}KiB", flush=True)
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

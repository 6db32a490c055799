"""Memory of keeping every template of the tip: an hour of fee-driven updates.

A pool accepts shares (and so blocks) on every job of the current tip, so the TP keeps
every template it sent until the next tip.  This drives the sans-I/O core the way the
``rpc`` source does against a busy node: every 5 s a new getblocktemplate answer (JSON,
parsed with the source's transaction interner) for a 3,000-transaction mempool that
gained a few better-paying transactions, for one simulated hour without a block, with
clients in three constraint groups.  It prints the templates kept, the memory they take
(tracemalloc, and RSS), and the floor: one copy of the mempool's transactions.  Without
sharing, every template would hold its own copy: that estimate is printed too.

    .venv/bin/python benchmarks/tp_memory.py [--minutes 60] [--txs 3000]
"""

from __future__ import annotations

import argparse
import gc
import resource
import statistics
import sys
import time
import tracemalloc

from sv2ffi.messages import CoinbaseOutputConstraints, SetupConnection
from sv2ffi.tp.core import TemplateProviderCore, TpConfig
from sv2ffi.tp.regtest import RegtestChain
from sv2ffi.tp.regtest_rpc import RegtestRpcServer
from sv2ffi.tp.sources.rpc import parse_gbt
from sv2ffi.tp.template import TxInterner


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(minutes: float, n_txs: int) -> dict:
    chain = RegtestChain(seed=1)
    made = 0
    while made < n_txs:
        got = chain.add_random_transactions(min(500, n_txs - made), min_feerate=1, max_feerate=20)
        if not got:
            chain.generate(1)
            continue
        made += got
    rpc = RegtestRpcServer(chain, user="bench", password="bench")  # not started: JSON only
    interner = TxInterner()
    core = TemplateProviderCore(TpConfig(network=chain.network, fee_delta=1, template_interval=5))
    now = 0.0
    for size in (0, 100, 5000):  # three constraint groups, two clients each
        for _ in range(2):
            sid = core.open_session(now)
            core.receive(sid, SetupConnection(protocol=2, min_version=2, max_version=2, flags=0,
                                              endpoint_host="", endpoint_port=0, vendor="",
                                              hardware_version="", firmware="", device_id=""), now)
            core.receive(sid, CoinbaseOutputConstraints(
                coinbase_output_max_additional_size=size,
                coinbase_output_max_additional_sigops=400), now)
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    rss0 = rss_mib()
    parse_ms = []
    steps = int(minutes * 60 / 5)
    for _ in range(steps):
        chain.add_random_transactions(3, min_feerate=60, max_feerate=120)
        j = rpc._template_json()  # the node's work, not timed
        t0 = time.perf_counter()
        tpl = parse_gbt(j, chain.network, interner)
        parse_ms.append((time.perf_counter() - t0) * 1000)
        core.new_template(tpl, now)
        now += 5
        core.tick(now)
    gc.collect()
    used = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    kept = core.templates_of_tip()
    tx_bytes = sum(len(t.data) for t in tpl.txs)
    naive = sum(sum(len(t.data) for t in st.txs) for st in kept)
    return {"steps": steps, "templates": len(kept), "mempool_txs": len(tpl.txs),
            "tx_bytes": tx_bytes, "traced": used, "naive": naive,
            "rss_growth": rss_mib() - rss0, "interned": len(interner),
            "parse_ms": statistics.median(parse_ms)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=60)
    ap.add_argument("--txs", type=int, default=3000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args(argv)
    results = [run(args.minutes, args.txs) for _ in range(args.runs)]
    med = {k: statistics.median(r[k] for r in results) for k in results[0]}
    mib = 1 << 20
    print(f"{args.minutes:g} min of fee updates every 5 s, {med['mempool_txs']:.0f}-tx mempool, "
          f"3 constraint groups (median of {args.runs} runs)")
    print(f"  templates kept for the tip:        {med['templates']:.0f}")
    print(f"  transactions held (interned):      {med['interned']:.0f}")
    print(f"  one copy of the mempool (floor):   {med['tx_bytes'] / mib:8.1f} MiB")
    print(f"  memory of all kept templates:      {med['traced'] / mib:8.1f} MiB "
          f"({med['traced'] / med['tx_bytes']:.2f}x the floor)")
    print(f"  without sharing (a copy each):     {med['naive'] / mib:8.1f} MiB "
          f"({med['naive'] / med['tx_bytes']:.0f}x the floor)")
    print(f"  RSS growth:                        {med['rss_growth']:8.1f} MiB")
    print(f"  getblocktemplate result -> template (the TP's parse, interned): "
          f"{med['parse_ms']:.1f} ms (median per poll)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

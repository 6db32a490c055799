"""What the metrics hooks add to a new tip (not run by pytest).

On a new block the service hands the core's effects to ``TpMetrics.on_new_tip`` before
the first write, and ``on_written`` once every client has been written to (which also
builds the tip's log line).  This measures both for N = 100 and 1,000
clients next to the core's own work for the same tip (``core.new_tip``, which builds every
client's SetNewPrevHash and the next future template), in the same run.  The first ratio
is what the hooks add before the first client's write, the second what they add after
the last one.  Medians of three runs of ``--rounds`` tips each.

    .venv/bin/python benchmarks/metrics_hooks.py [--rounds 50] [--clients 100,1000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from sv2ffi.messages import (CoinbaseOutputConstraints, SetNewPrevHash,  # noqa: E402
                             SetupConnection)
from sv2ffi.tp.core import TemplateProviderCore, TipInfo, TpConfig  # noqa: E402
from sv2ffi.tp.metrics import TpMetrics  # noqa: E402
from sv2ffi.tp.regtest import RegtestChain  # noqa: E402


def one_run(n: int, rounds: int) -> tuple[float, float]:
    chain = RegtestChain(seed=1)
    core = TemplateProviderCore(TpConfig(max_clients=n + 1))
    metrics = TpMetrics()
    now = 1000.0
    core.new_template(chain.block_template(), now)
    setup = SetupConnection(protocol=2, min_version=2, max_version=2, flags=0,
                            endpoint_host="", endpoint_port=0, vendor="bench",
                            hardware_version="", firmware="", device_id="")
    for i in range(n):
        sid = core.open_session(now)
        cons = CoinbaseOutputConstraints(coinbase_output_max_additional_size=100 * (i % 4),
                                         coinbase_output_max_additional_sigops=10)
        for msg in (setup, cons):
            eff = core.receive(sid, msg, now)
            metrics.on_client_message(sid, ("127.0.0.1", 40000 + i), msg, eff)
    core_t = before_t = after_t = 0.0
    for r in range(rounds):
        tip = TipInfo(bytes([r % 256, r // 256, 1]) + bytes(29), 103 + r, 0x207FFFFF,
                      1_700_000_000 + r)
        t0 = time.perf_counter()
        eff = core.new_tip(tip, now)
        t1 = time.perf_counter()
        metrics.on_new_tip(tip, eff, metrics.clock())
        t2 = time.perf_counter()
        metrics.on_written(eff, set())  # as the service reports the writes
        t3 = time.perf_counter()
        assert any(isinstance(m, SetNewPrevHash) for _s, m in eff.sends)
        core_t += t1 - t0
        before_t += t2 - t1
        after_t += t3 - t2
    assert metrics.tip_latency.count == rounds
    return core_t / rounds, before_t / rounds, after_t / rounds


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=50)
    ap.add_argument("--clients", default="100,1000")
    args = ap.parse_args()
    import logging
    logging.disable(logging.INFO)  # the tip lines would be the cost measured otherwise
    print(f"{'clients':>8} {'core.new_tip':>13} {'on_new_tip':>11} {'/core':>6} "
          f"{'on_written':>14} {'/core':>6}")
    for n in (int(x) for x in args.clients.split(",")):
        runs = [one_run(n, args.rounds) for _ in range(3)]
        core_t, before_t, after_t = (statistics.median(r[i] for r in runs) for i in range(3))
        print(f"{n:>8} {core_t * 1e6:>10.0f} us {before_t * 1e6:>8.0f} us "
              f"{before_t / core_t:>5.2f}x {after_t * 1e6:>11.0f} us {after_t / core_t:>5.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())

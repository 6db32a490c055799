"""Hostile clients at full size: what each attack costs the honest clients and the TP.

A real ``sv2ffi tp`` process (built-in chain, a 4,000-transaction mempool) serves 10
honest observer clients; each attack of tests/hostile.py runs in its own process, alone
and then all at once, while blocks are mined.  Per window: the observers' latency from
the block's submission to SetNewPrevHash (p50, p99, and p99 as a multiple of the idle
window's p99 in the same run), missed tips, the TP's CPU (% of one core, from /proc) and
its RSS.  The handshake storm also counts how many of 100 honest clients got in.
Medians of ``--runs`` runs.

    .venv/bin/python benchmarks/hostile.py [--runs 3] [--tips 10]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import hostile  # noqa: E402
from hostile import Observers, TpProcess  # noqa: E402

ATTACKS = {
    "idle": lambda tp, r: asyncio.sleep(0),
    # attackers share one address: beyond its pending budget their connects are refused,
    # which gather(return_exceptions=True) absorbs (that is the defence working)
    "non-reader x5": lambda tp, r: _all(hostile.non_reader(tp, 15, {}) for _ in range(5)),
    "silent x20": lambda tp, r: _all(hostile.silent(tp, 15, {}) for _ in range(20)),
    "unknown-frame flood x3": lambda tp, r: _all(hostile.unknown_flood(tp, 15, {})
                                                 for _ in range(3)),
    "constraints churn x5": lambda tp, r: _all(hostile.constraints_churn(tp, 15, {})
                                               for _ in range(5)),
    "handshake storm 2000 + 100 honest": lambda tp, r: _all(
        (hostile.handshake_storm(tp, 2000, r), hostile.honest_during(tp, 100, r))),
    "slowloris x200": lambda tp, r: hostile.slowloris(tp, 200, 15, r),
    "garbage x500": lambda tp, r: hostile.garbage(tp, 500, r),
}


def _all(coros):
    return asyncio.gather(*coros, return_exceptions=True)


def all_at_once(tp, r):
    return _all(f(tp, r) for name, f in ATTACKS.items() if name != "idle")


def _attacker(name, port, key, rpc_port, cookie, conn):
    tp = TpProcess.__new__(TpProcess)
    tp.port, tp.key, tp.rpc_port, tp.cookie = port, key, rpc_port, cookie
    result: dict = {}
    f = all_at_once if name == "all at once" else ATTACKS[name]

    async def go():
        await f(tp, result)

    asyncio.run(go())
    conn.send(result)


def window(tp: TpProcess, name: str, tips: int) -> dict:
    a, b = mp.Pipe()
    proc = mp.get_context("spawn").Process(
        target=_attacker, args=(name, tp.port, tp.key, tp.rpc_port, tp.cookie, b), daemon=True)

    async def main():
        obs = Observers()
        await obs.start(tp, 10)
        cpu0, t0 = tp.cpu_seconds(), time.monotonic()
        proc.start()
        await asyncio.sleep(1.0)
        measured = await obs.tips(tp, tips, gap=0.4)
        cpu = (tp.cpu_seconds() - cpu0) / (time.monotonic() - t0) * 100
        rss = tp.rss_mib()
        await obs.close()
        return measured, cpu, rss

    measured, cpu, rss = asyncio.run(main())
    result = a.recv() if a.poll(120) else {}
    proc.join(30)
    return {**measured, "cpu": cpu, "rss": rss, **result}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--tips", type=int, default=10)
    ap.add_argument("--mempool", type=int, default=4000)
    ap.add_argument("--only", default="", help="comma-separated windows besides idle")
    args = ap.parse_args(argv)
    names = list(ATTACKS) + ["all at once"]
    if args.only:
        keep = {"idle"} | {x.strip() for x in args.only.split(",")}
        names = [n for n in names if n in keep]
    rows: dict = {n: [] for n in names}
    for _ in range(args.runs):
        tp = TpProcess(Path(tempfile.mkdtemp()) / "tp", "--max-clients", "300",
                       mempool=args.mempool)
        try:
            for n in names:
                rows[n].append(window(tp, n, args.tips))
        finally:
            tp.close()
    print(f"sv2ffi tp, built-in chain, {args.mempool}-tx mempool, 10 observers, {args.tips} "
          f"tips per window; medians of {args.runs} runs")
    print(f"{'attack':<34} {'p50 ms':>7} {'p99 ms':>7} {'x idle':>6} {'missed':>7} "
          f"{'TP CPU %':>8} {'TP RSS MiB':>10}  notes")
    idle99 = [r["p99"] for r in rows["idle"]]
    for n in names:
        rs = rows[n]
        med = lambda k: statistics.median(r[k] for r in rs)  # noqa: E731
        ratio = statistics.median(r["p99"] / i for r, i in zip(rs, idle99))
        note = ""
        if "honest_ok" in rs[0]:
            note = f"honest clients in: {int(med('honest_ok'))}/100"
        print(f"{n:<34} {med('p50'):>7.1f} {med('p99'):>7.1f} {ratio:>6.2f} "
              f"{int(med('missed')):>3}/{rs[0]['samples']:<3} {med('cpu'):>8.1f} "
              f"{med('rss'):>10.1f}  {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

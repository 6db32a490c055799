"""Embedded template provider benchmark (not run by pytest).

From the push of a template on a new tip to SetNewPrevHash received by each of N = 1, 10,
100 Noise clients (p50, p99 over clients x tips), and to the first full NewTemplate for
that tip, for three ways of running the same TP core, measured in the same run:

  C ABI        a C program (benchmarks/capi_tp_driver.c) calls sv2_tp_push_template;
               the library serves the clients from its own thread
  Python push  the same pushed-template source fed from Python (PushedSource on a TpThread
               in this process): the C ABI minus the C boundary
  sv2ffi tp    the standalone TP's own source path (benchmarks/tp.py's measurement: the
               built-in chain's block-connected event -> SetNewPrevHash); the baseline

Every pushed template carries the same mempool (--mempool transactions, 1,000 by default,
about 140 KB), as a node's block assembler would push right after a block: the new tip
must not wait for those to be parsed.  Clients run in a child process and date arrivals
with the kernel's receive stamps (benchmarks/arrivals.py); times are CLOCK_MONOTONIC,
system-wide on Linux, so the processes' timestamps compare directly.

    .venv/bin/python benchmarks/capi_tp.py [--rounds 20] [--clients 1,10,100] [--mempool 1000]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from sv2ffi import bitcoin as btc  # noqa: E402
from sv2ffi.tp.core import TpConfig  # noqa: E402
from sv2ffi.tp.regtest import RegtestChain  # noqa: E402
from sv2ffi.tp.runner import TpThread  # noqa: E402
from sv2ffi.tp.server import TpService  # noqa: E402
from sv2ffi.tp.sources.pushed import PushedSource  # noqa: E402

T = 60


def _load_tp_bench():
    """benchmarks/tp.py: its client process and the `sv2ffi tp` source-path measurement."""
    spec = importlib.util.spec_from_file_location("tp_bench", HERE / "tp.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


tpb = _load_tp_bench()
pct = tpb.pct


def assembled(chain: RegtestChain) -> bytes:
    """The chain's next template as a node's block assembler serializes it."""
    tpl = chain.block_template()
    cb = btc.coinbase_tx(tpl.height, [btc.TxOut(tpl.coinbase_value, btc.P2WSH_OP_TRUE),
                                      btc.witness_commitment_output([t.wtxid for t in tpl.txs])])
    txs = [cb] + [btc.Tx.from_bytes(t.data) for t in tpl.txs]
    header = btc.BlockHeader(tpl.version, tpl.prev_hash, btc.merkle_root([t.txid for t in txs]),
                             tpl.time, tpl.bits, 0)
    return btc.Block(header, txs).serialize()


def make_templates(count: int, mempool: int) -> list[bytes]:
    """count templates, each on a new tip (an empty block mined in between keeps the
    mempool, so every template carries it)."""
    chain = RegtestChain(seed=1)
    made = 0
    while made < mempool:
        made += chain.add_random_transactions(mempool - made)
    out = []
    for _ in range(count):
        out.append(assembled(chain))
        tpl = chain.block_template()
        tpl.txs, tpl.coinbase_value = [], tpl.subsidy
        assert chain.submit_block(chain.mine_template(tpl, extra=os.urandom(4)).serialize()) is None
    return out


def prev_hash(block: bytes) -> bytes:
    return block[4:36]


def measure(push, templates: list[bytes], n: int, port: int, key: str):
    """Clients in a child process; push templates[1] to warm up (every client active),
    then one per round; -> (SNPH latencies, full-template latencies, push call times), ms."""
    p, pipe = tpb.spawn("tp", port, key, n)
    snph, full, calls = [], [], []
    try:
        for k in range(1, len(templates)):
            t0, t1 = push(k)
            pipe.send({"tip": prev_hash(templates[k])[::-1].hex(), "full": True})
            assert pipe.poll(T), "clients did not report"
            res = pipe.recv()
            if k == 1:
                continue  # warm-up
            calls.append((t1 - t0) * 1e3)
            for s, f in res:
                assert s is not None, "a client missed SetNewPrevHash"
                snph.append((s - t0) * 1e3)
                if f is not None:
                    full.append((f - t0) * 1e3)
    finally:
        pipe.send("quit")
        p.join(10)
    return snph, full, calls


def build_driver() -> Path:
    from sv2ffi.capi import devbuild

    b = devbuild.build_once()
    exe = b.build_dir / "capi_tp_driver"
    src = HERE / "capi_tp_driver.c"
    if not exe.exists() or exe.stat().st_mtime < src.stat().st_mtime:
        subprocess.run(["cc", "-O2", "-std=c11", str(src), f"-I{b.include_dir}", f"-L{b.lib_dir}",
                        "-lsv2", f"-Wl,-rpath,{b.lib_dir}", "-o", str(exe)], check=True)
    return exe


def bench_capi(driver: Path, templates_file: Path, templates: list[bytes], n: int):
    datadir = tempfile.mkdtemp(prefix="sv2ffi-bench-capi-")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SV2FFI_")}
    proc = subprocess.Popen([str(driver), datadir, str(templates_file)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env=env)
    try:
        port = int(proc.stdout.readline().split()[1])
        key = proc.stdout.readline().split()[1]

        def push(k):
            proc.stdin.write(f"push {k}\n")
            proc.stdin.flush()
            _, _, t0, t1 = proc.stdout.readline().split()
            return float(t0), float(t1)

        return measure(push, templates, n, port, key)
    finally:
        proc.stdin.write("quit\n")
        proc.stdin.close()
        proc.wait(T)


def bench_python_push(templates: list[bytes], n: int):
    src = PushedSource(btc.NETWORKS["regtest"])
    svc = TpService(src, datadir=tempfile.mkdtemp(prefix="sv2ffi-bench-push-"),
                    config=TpConfig(fee_delta=1000, template_interval=5.0))
    src.push_block_template(templates[0])
    tp = TpThread(svc).start()
    try:
        def push(k):
            t0 = time.monotonic()
            src.push_block_template(templates[k])
            return t0, time.monotonic()

        return measure(push, templates, n, tp.port, tp.authority_pubkey)
    finally:
        tp.stop()


def fmt(xs) -> str:
    return f"{statistics.median(xs):7.2f} {pct(xs, 99):7.2f}"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--clients", default="1,10,100")
    ap.add_argument("--mempool", type=int, default=1000)
    args = ap.parse_args()
    templates = make_templates(args.rounds + 2, args.mempool)
    driver = build_driver()
    with tempfile.NamedTemporaryFile("w", suffix=".hex", delete=False) as f:
        f.write("\n".join(t.hex() for t in templates) + "\n")
        templates_file = Path(f.name)
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs; {args.rounds} tips per N; "
          f"templates of {len(templates[0]):,} bytes ({args.mempool} transactions); Noise on "
          f"every connection; times in ms (p50 p99)")
    print()
    print("push of a new tip -> SetNewPrevHash at each client (SNPH) / -> first full NewTemplate")
    print(f"{'N':>4} | {'C ABI SNPH':>15} {'C ABI full':>15} {'push call':>9} | "
          f"{'Py push SNPH':>15} {'Py push full':>15} | {'sv2ffi tp SNPH':>15} | "
          f"{'C/tp p50':>8}")
    try:
        for n in [int(x) for x in args.clients.split(",")]:
            c_snph, c_full, c_call = bench_capi(driver, templates_file, templates, n)
            p_snph, p_full, _ = bench_python_push(templates, n)
            t_snph, _, _, _ = tpb.bench_tp(n, args.rounds, args.mempool)
            ratio = statistics.median(c_snph) / statistics.median(t_snph)
            print(f"{n:>4} | {fmt(c_snph)} {fmt(c_full)} {statistics.median(c_call):9.2f} | "
                  f"{fmt(p_snph)} {fmt(p_full)} | {fmt(t_snph)} | {ratio:7.2f}x", flush=True)
    finally:
        templates_file.unlink()
    print()
    print("push call = how long the node's thread spends in sv2_tp_push_template (p50): the "
          "full parse of the template; the tip itself goes out before that finishes")
    return 0


if __name__ == "__main__":
    sys.exit(main())

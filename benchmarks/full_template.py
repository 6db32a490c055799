"""Where a full template's time goes in the TP, after the node's getblocktemplate reply
has arrived (not run by pytest).

The issue's goal for the full template after a tip is the node's own getblocktemplate
time plus 5 ms.  This prints, for a ``--txs``-transaction template (the built-in chain's
getblocktemplate JSON, the same shape as bitcoind's), each step the RPC source and the TP
core take, next to floors measured in the same run: decoding the JSON reply (the stdlib
decoder python-bitcoinrpc uses), turning it into a BlockTemplate with a cold and a warm
transaction interner (``parse_gbt``), building the clients' work (``new_template``:
coinbase merkle path and witness commitment, two merkle trees of sha256d), the floor
of hashing the same number of 64-byte nodes with hashlib alone, and the two trees
through hashlib and through OpenSSL (``sv2ffi._merkle``, what the TP uses when built);
then the same steps on the C road the rpc source takes when ``sv2ffi._gbtscan`` is built
(the reply's bytes scanned with the interpreter released, the merkle trees made in that
pass, one tuple per transaction left for Python), and with its transactions read ahead
while the reply arrives (``gbt.read_ahead``, 64 KiB at a time, as the rpc source does for
a new tip's template), what is left after the last byte.  Medians of ``--reps``.

    .venv/bin/python benchmarks/full_template.py [--txs 3000] [--reps 7]
"""

from __future__ import annotations

import argparse
import decimal
import hashlib
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from sv2ffi import bitcoin as btc  # noqa: E402
from sv2ffi.messages import CoinbaseOutputConstraints, SetupConnection  # noqa: E402
from sv2ffi.tp.core import TemplateProviderCore, TipInfo, TpConfig  # noqa: E402
from sv2ffi.tp.regtest import RegtestChain  # noqa: E402
from sv2ffi.tp.regtest_rpc import RegtestRpcServer  # noqa: E402
from sv2ffi.tp.sources.gbt import parse_gbt, read_ahead, scan_reply  # noqa: E402
from sv2ffi.tp.sources.rpc_stream import READ_AHEAD_STEP  # noqa: E402
from sv2ffi.tp.template import TxInterner  # noqa: E402


def timed(fn, reps: int) -> float:
    xs = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        xs.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(xs)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--txs", type=int, default=3000)
    ap.add_argument("--reps", type=int, default=7)
    args = ap.parse_args()
    chain = RegtestChain(seed=3)
    made = 0
    while made < args.txs:
        made += chain.add_random_transactions(args.txs - made)
    j = RegtestRpcServer(chain, user="bench", password="bench")._template_json()
    raw = json.dumps({"result": j, "error": None, "id": 1}).encode()
    net = btc.NETWORKS["regtest"]
    n = len(j["transactions"])

    decode = timed(lambda: json.loads(raw, parse_float=decimal.Decimal), args.reps)
    # what python-bitcoinrpc's AuthServiceProxy spent on every reply for a debug line that
    # is formatted before the logger looks at its level (sv2ffi's proxy skips it)
    debug_line = timed(lambda: "<-%s- %s" % (1, json.dumps(j, default=float)), args.reps)
    cold = timed(lambda: parse_gbt(j, net, TxInterner()), args.reps)
    interner = TxInterner()
    kept = parse_gbt(j, net, interner)  # noqa: F841 - keeps the interner's entries alive
    warm = timed(lambda: parse_gbt(j, net, interner), args.reps)

    core = TemplateProviderCore(TpConfig())
    now = 1000.0
    sid = core.open_session(now)
    core.receive(sid, SetupConnection(protocol=2, min_version=2, max_version=2, flags=0,
                                      endpoint_host="", endpoint_port=0, vendor="bench",
                                      hardware_version="", firmware="", device_id=""), now)
    core.receive(sid, CoinbaseOutputConstraints(coinbase_output_max_additional_size=100,
                                                coinbase_output_max_additional_sigops=10), now)
    def build_times(make) -> float:
        builds = []
        for _ in range(args.reps):
            tpl = make()
            k = int(now[0] - 999)  # a new block each time: the build after a tip
            tpl.prev_hash, tpl.height = k.to_bytes(32, "little"), tpl.height + k
            core.new_tip(TipInfo(tpl.prev_hash, tpl.height, tpl.bits, tpl.time), now[0])
            t0 = time.perf_counter()
            eff = core.new_template(tpl, now[0])
            builds.append((time.perf_counter() - t0) * 1e3)
            assert eff.sends
            now[0] += 1
        return statistics.median(builds)

    now = [now]
    build = build_times(lambda: parse_gbt(j, net, interner))
    # the C road: the reply's bytes scanned (merkle trees included) in the RPC thread with
    # the interpreter released, then one tuple per transaction for Python
    scanned = scan_reply(raw)
    if scanned is not None:
        def cold_road():
            fresh = TxInterner()
            return parse_gbt(scan_reply(raw, fresh), net, fresh)
        cold_all = timed(cold_road, args.reps)

        def c_road(arrive) -> tuple:
            """Medians of the scan and of parse_gbt after it, each rep as the source reads
            a new tip's reply (the interner warm, its memo from the last parse)."""
            scans, parses = [], []
            for _ in range(args.reps):
                buf, state = arrive()
                t0 = time.perf_counter()
                s = scan_reply(buf, interner, state)
                t1 = time.perf_counter()
                parse_gbt(s, net, interner)
                scans.append((t1 - t0) * 1e3)
                parses.append((time.perf_counter() - t1) * 1e3)
            return statistics.median(scans), statistics.median(parses)

        meanwhile: list = []

        def in_pieces() -> tuple:
            """The reply arriving 64 KiB at a time, read ahead after each piece but the last
            (RpcStream: READ_AHEAD_STEP, none at the last byte)."""
            buf, state, got, spent = bytearray(len(raw)), None, 0, 0.0
            while len(raw) - got > READ_AHEAD_STEP:
                buf[got:got + READ_AHEAD_STEP] = raw[got:got + READ_AHEAD_STEP]
                got += READ_AHEAD_STEP
                t0 = time.perf_counter()
                state = read_ahead(buf, state, got)
                spent += time.perf_counter() - t0
            buf[got:] = raw[got:]
            meanwhile.append(spent * 1e3)
            return buf, state

        scan, warm_c = c_road(lambda: (bytearray(raw), None))
        scan_ahead, _ = c_road(in_pieces)
        ahead_spent = statistics.median(meanwhile)
        build_c = build_times(lambda: parse_gbt(scan_reply(raw, interner), net, interner))

    node = bytes(64)

    def hashes():
        for _ in range(2 * n):
            hashlib.sha256(hashlib.sha256(node).digest()).digest()
    floor = timed(hashes, args.reps)

    txids = [t.txid for t in kept.txs]
    wtxids = [t.wtxid for t in kept.txs]
    trees_py = timed(lambda: (btc.coinbase_merkle_path_py(txids),
                              btc.merkle_root_py([bytes(32)] + wtxids)), args.reps)
    trees = timed(lambda: (btc.coinbase_merkle_path(txids),
                           btc.merkle_root([bytes(32)] + wtxids)), args.reps)

    print(f"a {n}-transaction template ({len(raw) / 1e6:.2f} MB of getblocktemplate JSON); "
          f"medians of {args.reps}, ms")
    print(f"  decode the JSON reply (json, Decimal floats)     {decode:8.2f}")
    print(f"    no longer paid: python-bitcoinrpc's debug line  {debug_line:8.2f}")
    print(f"  parse_gbt, cold interner (hex decoded)            {cold:8.2f}")
    print(f"  parse_gbt, warm interner (a poll after a tip)     {warm:8.2f}")
    print(f"  new_template: the clients' work, encoded          {build:8.2f}")
    print(f"    floor: {2 * n} sha256d of 64 bytes (hashlib)     {floor:8.2f}")
    print(f"    its two merkle trees, hashlib                    {trees_py:8.2f}")
    road = f"C ({btc._cmerkle.sha256d_road()})" if btc._cmerkle else "NOT BUILT: hashlib"
    print(f"    its two merkle trees, {road:<27}{trees:8.2f}")
    print(f"  after the reply, a warm tip's full template       {decode + warm + build:8.2f}")
    if scanned is None:
        print("  the C road (sv2ffi._gbtscan): NOT BUILT")
        return 0
    print("the C road (sv2ffi._gbtscan, what the rpc source uses when built)")
    print(f"  scan the reply's bytes: trees, held ones matched  {scan:8.2f}")
    print(f"  the same scan, its transactions read ahead        {scan_ahead:8.2f}"
          f"  (+{ahead_spent:.2f} while the reply arrived, 64 KiB at a time)")
    print(f"  parse_gbt from the scan                            {warm_c:8.2f}")
    print(f"  new_template: the clients' work, trees given       {build_c:8.2f}")
    print(f"  after the reply, a warm tip's full template       {scan + warm_c + build_c:8.2f}"
          f"  ({decode + warm + build:.2f} on the json road)")
    print(f"  after the reply, read ahead as it arrived         "
          f"{scan_ahead + warm_c + build_c:8.2f}  (what the rpc source does for a new tip)")
    print(f"  after the reply, cold (every transaction new)     {cold_all + build_c:8.2f}"
          f"  ({decode + cold + build:.2f} on the json road)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

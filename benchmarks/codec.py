"""Codec throughput, each figure next to a floor measured in the same run.

Floors: *encode* = joining the already-serialized field pieces of the same message
(``b"".join``: the copying any encoder must do, with no per-field logic); *decode* =
slicing the payload at precomputed field offsets into the same pieces (the copying any
decoder must do).  The ratio codec/floor is the cost of schema-driven validation and
dispatch.  Run: ``.venv/bin/python benchmarks/codec.py [--seconds 0.5]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from sv2ffi import codec  # noqa: E402
from sv2ffi.messages import (CoinbaseOutputConstraints, NewTemplate, RequestTransactionData,  # noqa: E402
                             RequestTransactionDataError, RequestTransactionDataSuccess,
                             SetNewPrevHash, SetupConnection, SetupConnectionSuccess,
                             SubmitSolution)


def samples() -> dict:
    commitment_out = bytes(8) + b"\x26\x6a\x24\xaa\x21\xa9\xed" + bytes(32)
    outputs5 = b"".join(i.to_bytes(8, "little") + b"\x03\x6a\x01" + bytes([i]) for i in range(4))
    return {
        "SetupConnection": SetupConnection(2, 2, 2, 0, "127.0.0.1", 8442, "sv2ffi", "", "", ""),
        "SetupConnection.Success": SetupConnectionSuccess(2, 0),
        "CoinbaseOutputConstraints": CoinbaseOutputConstraints(100, 400),
        "NewTemplate (5 outputs, 12-deep path)": NewTemplate(
            7, False, 0x20000000, 2, b"\x03\x01\x21\x00", 0xFFFFFFFE, 312_500_000, 5,
            outputs5 + commitment_out, 903387, [bytes([i]) * 32 for i in range(12)]),
        "SetNewPrevHash": SetNewPrevHash(7, bytes(range(32)), 1_700_000_000, 0x1702C4E4,
                                         bytes(32)),
        "RequestTransactionData": RequestTransactionData(7),
        "RequestTransactionData.Error": RequestTransactionDataError(7, "stale-template-id"),
        "SubmitSolution": SubmitSolution(7, 0x20000000, 1_700_000_000, 42, bytes(250)),
    }


def field_pieces(msg) -> list[bytes]:
    """The serialized message cut at field (and sequence element) boundaries."""
    out = []
    for f in msg.SPEC.fields:
        value = getattr(msg, f.name)
        if f.type.kind == "seq" and f.type.max_len > 1:
            out.append(len(value).to_bytes(f.type.len_size, "little"))
            out.extend(codec.encode_value(f.type.elem, v) for v in value)
        else:
            out.append(codec.encode_value(f.type, value))
    return out


def rate(fn, seconds: float) -> float:
    """Calls per second of fn, best of three runs of ~seconds/3 each."""
    n = 1
    while True:  # calibrate
        t = time.perf_counter()
        for _ in range(n):
            fn()
        dt = time.perf_counter() - t
        if dt > 0.02:
            break
        n *= 4
    per_run = max(1, int(n * (seconds / 3) / dt))
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        for _ in range(per_run):
            fn()
        best = min(best, (time.perf_counter() - t) / per_run)
    return 1.0 / best


def bench_message(name: str, msg, seconds: float) -> tuple[str, float, float, float, float, int]:
    msg_type = msg.SPEC.msg_type
    payload = codec.encode_payload(msg)
    pieces = field_pieces(msg)
    offsets = []
    off = 0
    for p in pieces:
        offsets.append((off, off + len(p)))
        off += len(p)
    join = b"".join
    enc = rate(lambda: codec.encode_payload(msg), seconds)
    enc_floor = rate(lambda: join(pieces), seconds)
    dec = rate(lambda: codec.decode_payload(0, msg_type, payload), seconds)
    dec_floor = rate(lambda: [payload[a:b] for a, b in offsets], seconds)
    return name, enc, enc_floor, dec, dec_floor, len(payload)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=0.6, help="time per measurement")
    args = ap.parse_args()

    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpus")
    print(f"{'message':40} {'bytes':>7} {'encode/s':>11} {'floor/s':>11} {'ratio':>6}"
          f" {'decode/s':>11} {'floor/s':>11} {'ratio':>6}")
    for name, msg in samples().items():
        name, enc, ef, dec, df, size = bench_message(name, msg, args.seconds)
        print(f"{name:40} {size:7d} {enc:11,.0f} {ef:11,.0f} {enc / ef:6.3f}"
              f" {dec:11,.0f} {df:11,.0f} {dec / df:6.3f}")

    txs = [bytes([i % 256]) * 500 for i in range(3000)]
    big = RequestTransactionDataSuccess(7, bytes(32), txs)
    name, enc, ef, dec, df, size = bench_message("RequestTransactionData.Success 3000x500B",
                                                 big, args.seconds * 3)
    mb = size / 1e6
    print(f"\nRequestTransactionData.Success, 3,000 transactions of 500 bytes ({size:,} bytes):")
    print(f"  encode {enc * mb:8.1f} MB/s   floor (join pieces)  {ef * mb:8.1f} MB/s"
          f"   ratio {enc / ef:.3f}")
    print(f"  decode {dec * mb:8.1f} MB/s   floor (slice pieces) {df * mb:8.1f} MB/s"
          f"   ratio {dec / df:.3f}")


if __name__ == "__main__":
    main()

"""Noise transport speed, each figure next to a baseline measured in the same run.

* handshakes/s of the responder (a server's cost per client: fresh ephemeral key, fresh
  static-key encoding, 2 ECDH, 2 AEAD, act 2) and of a full handshake (both sides);
* transport MB/s for an 80-byte message (SetNewPrevHash) and a 1 MiB message
  (RequestTransactionData.Success), send + receive through two Connections (codec,
  framing, chunking, AEAD), next to the raw ChaCha20-Poly1305 rate of `cryptography`
  for the same plaintext size (one encrypt + one decrypt per message).  The ratio
  ours/raw is what the Python layers cost on top of the cipher; a plain (no Noise)
  Connection pair is shown too.

Run: ``.venv/bin/python benchmarks/noise.py [--seconds 1]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305  # noqa: E402

from sv2ffi.codec import encode_payload  # noqa: E402
from sv2ffi.connection import Connection  # noqa: E402
from sv2ffi.keys import Certificate, Keypair  # noqa: E402
from sv2ffi.messages import RequestTransactionDataSuccess, SetNewPrevHash  # noqa: E402


def rate(fn, seconds: float) -> float:
    """Calls per second of fn, best of three runs of ~seconds/3 each."""
    n = 1
    while True:  # calibrate
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        dt = time.perf_counter() - t0
        if dt > 0.05:
            break
        n *= 2
    per_run = max(1, int(n * (seconds / 3) / dt))
    best = 0.0
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(per_run):
            fn()
        best = max(best, per_run / (time.perf_counter() - t0))
    return best


def handshakes(seconds: float) -> None:
    authority, static = Keypair.generate(), Keypair.generate()
    cert = Certificate.issue(authority, static.xonly, 0, 0xFFFFFFFF)
    acts = [Connection.initiator(authority.xonly).initiate() for _ in range(64)]
    i = 0

    def responder():
        nonlocal i
        conn = Connection.responder(static, cert)
        conn.feed(acts[i % 64])
        i += 1
        return conn.take_output()

    def full():
        client = Connection.initiator(authority.xonly)
        server = Connection.responder(static, cert)
        server.feed(client.initiate())
        client.feed(server.take_output())

    def raw_aead():  # the 2 AEAD operations of act 2, without any curve work
        aead = ChaCha20Poly1305(bytes(32))
        aead.encrypt(bytes(12), bytes(64), bytes(32))
        aead.encrypt(bytes(12), bytes(74), bytes(32))

    r = rate(responder, seconds)
    f = rate(full, seconds)
    print(f"{'responder handshakes':<28} {r:>10.0f} /s   ({1e6 / r:.0f} us each)")
    print(f"{'full handshakes (both sides)':<28} {f:>10.0f} /s   ({1e6 / f:.0f} us each)")
    print(f"{'  baseline: act-2 AEAD only':<28} {rate(raw_aead, seconds / 2):>10.0f} /s")


def transport(name: str, msg, seconds: float) -> None:
    payload_len = len(encode_payload(msg))
    authority, static = Keypair.generate(), Keypair.generate()
    client = Connection.initiator(authority.xonly)
    server = Connection.responder_from_authority(static, authority)
    server.feed(client.initiate())
    client.feed(server.take_output())
    plain_a, plain_b = Connection.plain(), Connection.plain()

    def noise_trip():
        server.feed(client.send(msg))

    def plain_trip():
        plain_b.feed(plain_a.send(msg))

    aead = ChaCha20Poly1305(bytes(32))
    data = os.urandom(payload_len)
    nonce = bytes(12)

    def raw():
        aead.decrypt(nonce, aead.encrypt(nonce, data, None), None)

    mb = payload_len / 1e6
    n, p, c = rate(noise_trip, seconds), rate(plain_trip, seconds), rate(raw, seconds)
    print(f"{name} ({payload_len} B payload), send + receive:")
    print(f"  {'Noise connection':<34} {n * mb:>9.1f} MB/s  {n:>10.0f} msg/s")
    print(f"  {'plain connection (no crypto)':<34} {p * mb:>9.1f} MB/s  {p:>10.0f} msg/s")
    print(f"  {'raw ChaCha20-Poly1305 enc+dec':<34} {c * mb:>9.1f} MB/s  {c:>10.0f} msg/s")
    print(f"  ratio Noise / raw AEAD: {n / c:.2f}   (Noise / plain: {n / p:.2f})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=1.0, help="time per measurement")
    args = ap.parse_args()
    handshakes(args.seconds)
    print()
    transport("SetNewPrevHash", SetNewPrevHash(7, bytes(range(32)), 1_700_000_000, 0x1702C4E4,
                                               bytes(32)), args.seconds)
    print()
    transport("RequestTransactionData.Success",
              RequestTransactionDataSuccess(7, b"", [os.urandom((1 << 20) - 15)]), args.seconds)


if __name__ == "__main__":
    main()

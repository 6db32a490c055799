"""Benchmark clients that timestamp what they receive in the kernel, not in Python.

A tip latency taken after a Python client has been scheduled, read its socket and
decrypted the frame measures the client as much as the TP: on a 2-core machine with 100
or 1,000 clients in one process, the last client reads its frame tens of milliseconds
after it arrived.  These clients ask Linux for the time each TCP segment was received
(``SO_TIMESTAMPNS``: the kernel stamps the segment as it is queued to the socket, which on
loopback is the moment the sender's write delivers it), so a latency is the TP's and the
network stack's, whatever the client does afterwards.  The time the client process read
the bytes is kept beside it (``user``), so both can be printed.

One recvmsg may return several segments, and the kernel merges a segment into the one
before it when that one is still unread, under the later stamp: a message read together
with a later one is dated late, never early (conservative).  So the clients only take the
bytes off their sockets while frames arrive and decrypt them when nothing is waiting.

The kernel stamps with CLOCK_REALTIME; each stamp is moved to CLOCK_MONOTONIC (which is
system-wide on Linux, so the benchmark processes compare) with the offset between the two
clocks read at the same moment.

``serve_clients`` (tip_latency.py's clients) runs at ``SCHED_IDLE`` once connected
(``measuring_priority``): they are the measuring apparatus, and on a 2-core machine a
client process woken by the first frame took the core the TP was still writing the other
clients' frames on.  The kernel's stamps do not depend on when a client runs, and its
frames come 60 ms or more apart (the node's getblocktemplate), time enough to take each
off the socket before the next would be merged into it; every TP column uses the same
clients.  tp.py's single process of 1,000 clients keeps normal priority: its full
template follows the tip within tens of milliseconds, and an idle-priority reader that fell
behind would have its tips dated late.

``waitfornewblock_arrivals`` dates the node's own tip signal the same way: a
``waitfornewblock`` long-poll on a raw HTTP socket, stamped by the kernel as the node's
reply arrives.
"""

from __future__ import annotations

import base64
import json
import os
import selectors
import socket
import struct
import time

from sv2ffi.connection import Connection
from sv2ffi.messages import (CoinbaseOutputConstraints, NewTemplate, SetNewPrevHash,
                             SetupConnection, SetupConnectionSuccess)

SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux; SCM_TIMESTAMPNS is the same
ANC = socket.CMSG_SPACE(16)


def realtime_to_monotonic() -> float:
    """Offset to add to a CLOCK_REALTIME stamp to get CLOCK_MONOTONIC (read back to back)."""
    a = time.clock_gettime(time.CLOCK_MONOTONIC)
    r = time.clock_gettime(time.CLOCK_REALTIME)
    b = time.clock_gettime(time.CLOCK_MONOTONIC)
    return (a + b) / 2 - r


def stamped_recv(sock: socket.socket, size: int = 1 << 16):
    """(bytes, kernel receive time as CLOCK_MONOTONIC or None, read time)."""
    data, anc, _flags, _addr = sock.recvmsg(size, ANC)
    now = time.monotonic()
    kernel = None
    for level, kind, raw in anc:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(raw) >= 16:
            sec, ns = struct.unpack("qq", raw[:16])
            kernel = sec + ns / 1e9 + realtime_to_monotonic()
    return data, kernel, now


class StampedClient:
    """A Template Distribution client on a blocking socket with kernel receive stamps."""

    def __init__(self, port: int, key, *, max_additional_size: int = 100,
                 max_additional_sigops: int = 400, timeout: float = 120):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self.conn = Connection.initiator(key)
        self.pending: list = []
        self.sock.sendall(self.conn.initiate())
        while not self.conn.is_established:
            self._feed(self._recv())
        self.sock.sendall(self.conn.send(SetupConnection(
            protocol=2, min_version=2, max_version=2, flags=0, endpoint_host="127.0.0.1",
            endpoint_port=port, vendor="sv2ffi-bench", hardware_version="",
            firmware="arrivals", device_id="")))
        while not self.pending:
            self._feed(self._recv())
        reply = self.pending.pop(0)[0]
        if not isinstance(reply, SetupConnectionSuccess):
            raise RuntimeError(f"TP refused the connection: {reply}")
        self.sock.sendall(self.conn.send(CoinbaseOutputConstraints(
            coinbase_output_max_additional_size=max_additional_size,
            coinbase_output_max_additional_sigops=max_additional_sigops)))
        self.sock.setblocking(False)
        self.raw: list = []  # (bytes, kernel stamp, read time) not decrypted yet
        self.tip = None
        self.snph: dict = {}  # prev_hash hex -> (kernel, user)
        self.full: dict = {}  # prev_hash hex -> (kernel, user) of the first work with txs

    def _recv(self) -> tuple:
        data, kernel, user = stamped_recv(self.sock)
        if not data:
            raise ConnectionError("TP closed the connection")
        return data, kernel, user

    def _feed(self, got) -> None:
        data, kernel, user = got
        self.pending += [(m, kernel, user) for m in self.conn.feed(data)]

    def on_readable(self) -> None:
        """Take what arrived off the socket with its stamp; nothing else.  Decrypting is
        left for ``process``: a client that decrypts as it reads falls behind, and a
        segment left unread when the next one arrives is merged with it by the kernel
        under the later stamp."""
        self.raw.append(self._recv())

    def process(self) -> None:
        """Decrypt what was read; record SetNewPrevHash and the first template carrying
        transactions for each tip (sv2-tp's future template carries them; ours follow as
        a non-future template), each with the stamp of the read that completed it."""
        raw, self.raw = self.raw, []
        for got in raw:
            self._feed(got)
        for m, kernel, user in self.pending:
            stamp = (kernel if kernel is not None else user, user)
            if isinstance(m, SetNewPrevHash):
                self.tip = m.prev_hash[::-1].hex()
                self.snph.setdefault(self.tip, stamp)
                if "next" in self.full:
                    self.full.setdefault(self.tip, self.full.pop("next"))
            elif isinstance(m, NewTemplate) and m.merkle_path and self.tip is not None:
                self.full.setdefault(self.tip if not m.future_template else "next", stamp)
        self.pending.clear()

    def close(self) -> None:
        self.sock.close()


def pump(sel, clients, timeout: float) -> None:
    """Read every readable socket; decrypt only once nothing more is waiting."""
    ready = sel.select(timeout)
    for key_, _ in ready:
        try:
            key_.data()
        except (BlockingIOError, InterruptedError):
            pass
        except (ConnectionError, OSError):
            sel.unregister(key_.fileobj)
    if not ready:
        for c in clients:
            if c.raw:
                c.process()


def measuring_priority() -> str:
    """This process at ``SCHED_IDLE`` (it runs only on a core nothing else wants), or
    nice 19 where that is not allowed; what was set."""
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        return "SCHED_IDLE"
    except (AttributeError, OSError):
        try:
            os.nice(19)
            return "nice 19"
        except OSError:
            return "normal"


def serve_clients(pipe, port: int, key, n: int, **constraints) -> None:
    """Child-process body: connect ``n`` clients, say "ready", read until the pipe says
    anything, then send back each client's (snph, full) arrivals."""
    clients = [StampedClient(port, key, **constraints) for _ in range(n)]
    measuring_priority()
    sel = selectors.DefaultSelector()
    for c in clients:
        sel.register(c.sock, selectors.EVENT_READ, c.on_readable)
    pipe.send("ready")
    while not pipe.poll(0):
        pump(sel, clients, 0.05)
    pipe.recv()
    for c in clients:
        c.process()
    pipe.send([(c.snph, c.full) for c in clients])
    for c in clients:
        c.close()


def raw_rpc(sock: socket.socket, cookie_path, method: str, params: list) -> tuple:
    """One JSON-RPC call on a raw HTTP/1.1 socket (kernel stamps on): (stamp of the
    reply's first bytes, stamp of its last, the reply's JSON bytes), undecoded."""
    auth = base64.b64encode(open(cookie_path, "rb").read().strip()).decode()
    body = json.dumps({"jsonrpc": "1.0", "id": 1, "method": method,
                       "params": params}).encode()
    sock.sendall(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Basic "
                 + auth.encode() + b"\r\nContent-Type: application/json\r\n"
                 b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    buf, first, last = bytearray(), None, None
    length = start = None
    while True:
        data, kernel, user = stamped_recv(sock, 1 << 20)
        if not data:
            raise ConnectionError("node closed the RPC connection")
        last = kernel if kernel is not None else user
        first = first if first is not None else last
        buf += data
        if length is None:
            head, sep, _rest = bytes(buf).partition(b"\r\n\r\n")
            if sep:
                start = len(head) + 4
                length = start + int([h.split(b":", 1)[1] for h in head.split(b"\r\n")
                                      if h.lower().startswith(b"content-length:")][0])
        if length is not None and len(buf) >= length:
            return first, last, bytes(buf[start:length])


def rpc_socket(host: str, port: int) -> socket.socket:
    sock = socket.create_connection((host, port), timeout=120)
    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    return sock


def waitfornewblock_arrivals(host: str, port: int, cookie_path, arrivals: dict, stop,
                             poll_ms: int = 500) -> None:
    """The node's own tip signal, kernel-stamped: ``waitfornewblock`` long-polls on a raw
    HTTP/1.1 socket; each new block hash -> the time the node's reply arrived."""
    cur = None
    sock = None
    while not stop.is_set():
        try:
            if sock is None:
                sock = rpc_socket(host, port)
            first, _last, raw = raw_rpc(sock, cookie_path, "waitfornewblock",
                                        [poll_ms] + ([cur] if cur else []))
            r = json.loads(raw)["result"]
        except (OSError, ValueError, KeyError, IndexError, TypeError):
            if sock is not None:
                sock.close()
            sock = None
            time.sleep(0.05)
            continue
        if r and r.get("hash") and r["hash"] != cur:
            if cur is not None:
                arrivals.setdefault(r["hash"], first)
            cur = r["hash"]
    if sock is not None:
        sock.close()

"""The template provider's network edge: admission, per-client read and write paths, limits.

Every rule about *what* to send lives in ``core.TemplateProviderCore``; this module decides
who gets a socket and keeps any one client from hurting the others.  Each client is an
``asyncio.Protocol`` (no task, no queue): bytes are fed to its sans-I/O ``Connection`` as
they arrive, and the service writes frames to its transport directly, so a new tip reaches
every client in one tight pass with no hop through a per-client queue.

Limits (every one of them logged when it bites; refusals as rate-limited summaries):

- **Admission.**  Connections that have not finished setting up (Noise handshake,
  SetupConnection, CoinbaseOutputConstraints) are *pending*; they have their own budget,
  ``max_pending`` in all and ``max_pending_per_source`` per source address, apart from the
  ``max_clients`` of working clients.  A storm of idle connects from one address fills
  only that address's share; everybody else still gets in.  A pending connection must
  finish the handshake within ``handshake_timeout`` and set up within ``setup_timeout``.
- **Reading.**  Every frame costs a token of the client's message rate limit, whatever its
  type or extension, before anything is decoded into a message; over the limit, the client
  is disconnected and the rest of what it sent is dropped unread.  Frames are bounded by
  ``max_payload``.  A client whose writes are backed up is not read from until they drain.
- **Writing.**  Frames go straight into the transport.  Past ``write_high`` bytes waiting,
  the client is "blocked"; blocked for ``write_timeout`` seconds, or past ``write_max``
  bytes at any moment, it is aborted: its socket closed without waiting, its slot freed.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from typing import Callable, Optional

from .. import errors
from ..connection import Connection
from ..noise import MAX_NONCE

log = logging.getLogger("sv2ffi.tp")

#: bytes a client may have waiting in its send buffer before it counts as blocked
WRITE_HIGH = 256 * 1024
#: bytes after which a client that does not read is aborted at once
WRITE_MAX = 32 * 1024 * 1024
#: seconds a blocked client has to start reading again
WRITE_TIMEOUT = 20.0
#: how often refusals are summarised in the log (one line, counts)
REFUSAL_LOG_INTERVAL = 10.0


class Limits:
    """The network limits of one listener (documented in docs/operator-guide.md)."""

    __slots__ = ("max_clients", "max_pending", "max_pending_per_source", "handshake_timeout",
                 "setup_timeout", "write_high", "write_max", "write_timeout", "max_payload")

    def __init__(self, *, max_clients: int, max_pending: int = 64,
                 max_pending_per_source: int = 8, handshake_timeout: float = 10.0,
                 setup_timeout: float = 30.0, write_high: int = WRITE_HIGH,
                 write_max: int = WRITE_MAX, write_timeout: float = WRITE_TIMEOUT,
                 max_payload: int):
        self.max_clients = max_clients
        self.max_pending = max_pending
        self.max_pending_per_source = max_pending_per_source
        self.handshake_timeout = handshake_timeout
        self.setup_timeout = setup_timeout
        self.write_high = write_high
        self.write_max = write_max
        self.write_timeout = write_timeout
        self.max_payload = max_payload


class RefusalLog:
    """Counts refused connections by reason; logs them as one line per interval."""

    def __init__(self, interval: float = REFUSAL_LOG_INTERVAL, clock=time.monotonic):
        self.interval = interval
        self.clock = clock
        self.counts: collections.Counter = collections.Counter()
        self.total: collections.Counter = collections.Counter()
        self._last = float("-inf")

    def refuse(self, reason: str) -> None:
        self.counts[reason] += 1
        self.total[reason] += 1
        self.flush()

    def flush(self, force: bool = False) -> None:
        now = self.clock()
        if self.counts and (force or now - self._last >= self.interval):
            n = sum(self.counts.values())
            parts = ", ".join(f"{k}: {v}" for k, v in self.counts.most_common())
            log.warning("dropped %d connection%s in the last %.0f s (%s)", n,
                        "" if n == 1 else "s", min(now - self._last, self.interval), parts)
            self.counts.clear()
            self._last = now


class ClientProtocol(asyncio.Protocol):
    """One TCP client: its Noise connection, its timers, its place in the admission budget.

    The owner (``TpListener``'s user, the TP service) gets callbacks:
    ``on_established(client)`` after the handshake, ``on_frames(client, msgs, skipped)``
    for what arrived, ``on_closed(client)`` once, at the end.
    """

    def __init__(self, listener: "TpListener"):
        self.listener = listener
        self.conn: Optional[Connection] = None  # made once admitted (it costs a key encoding)
        self.transport: Optional[asyncio.Transport] = None
        self.source = ""
        self.peername = None
        self.sid: Optional[int] = None  # the core's session, once established
        self.pending = True  # counts against the admission budget until set up
        self.closing = False
        self.blocked_since: Optional[float] = None
        self._frames_seen = 0
        self._timer: Optional[asyncio.TimerHandle] = None
        self._reading_paused = False
        self._write_paused = False
        self._fd = -1  # the socket's descriptor, for sv2ffi.fanout's direct writes
        #: (fd, sending CipherState) once the handshake is done on an encrypted connection:
        #: what a tip's pass needs of this client, in one place (``TpService._write_pass``)
        self.direct: Optional[tuple] = None
        #: bytes may wait in the transport (set by every write that left some; cleared
        #: by the tip's pass once the transport says none): most clients' transports are
        #: then never touched on a tip's way to the sockets
        self.queued = False

    # ---- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport) -> None:
        self.transport = transport
        sock = transport.get_extra_info("socket")
        self._fd = sock.fileno() if sock is not None else -1
        self.peername = transport.get_extra_info("peername")
        self.source = self.peername[0] if isinstance(self.peername, tuple) else str(self.peername)
        lim = self.listener.limits
        transport.set_write_buffer_limits(high=lim.write_high)
        refusal = self.listener.admit(self)
        if refusal is not None:
            self.listener.refusals.refuse(refusal)
            self.pending = False
            self.closing = True
            transport.abort()
            return
        self.conn = self.listener.connection_factory()
        self._timer = asyncio.get_running_loop().call_later(
            lim.handshake_timeout, self._deadline, "no Noise handshake within "
            f"{lim.handshake_timeout:g} s")

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        conn = self.conn
        was_established = conn.is_established
        try:
            msgs = conn.feed(data)
            out = conn.take_output()
        except errors.Sv2Error as e:
            self.listener.on_error(self, e)
            return
        if out:
            self.transport.write(out)
            if self.transport.get_write_buffer_size():
                self.queued = True
        if not was_established and conn.is_established:
            self.listener.handshakes_ok += 1
            cipher = conn.send_cipher
            if cipher is not None and self._fd >= 0:
                self.direct = (self._fd, cipher)
            self._cancel_timer()
            lim = self.listener.limits
            self._timer = asyncio.get_running_loop().call_later(
                lim.setup_timeout, self._deadline, "no SetupConnection and "
                f"CoinbaseOutputConstraints within {lim.setup_timeout:g} s")
            self.listener.on_established(self)
        frames = conn.frames_received - self._frames_seen
        self._frames_seen = conn.frames_received
        if frames and not self.closing:
            self.listener.on_frames(self, msgs, frames - len(msgs))
        if conn.error is not None and not self.closing:  # garbage after good frames
            self.listener.on_error(self, conn.error)

    def eof_received(self):
        return False  # close our side too

    def connection_lost(self, exc) -> None:
        self._cancel_timer()
        self.closing = True
        if self.conn is not None and not self.conn.is_established and self.pending:
            self.listener.handshakes_failed += 1
        self.listener.release(self)
        self.listener.on_closed(self)

    def pause_writing(self) -> None:
        """More than ``write_high`` bytes wait: stop reading its requests until they go."""
        self._write_paused = True
        self.blocked_since = time.monotonic()
        if not self._reading_paused and not self.closing:
            self._reading_paused = True
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        self._write_paused = False
        self.blocked_since = None
        if self._reading_paused and not self.closing:
            self._reading_paused = False
            self.transport.resume_reading()

    # ---- used by the service -----------------------------------------------------------------

    def direct_target(self, count: int):
        """``(fd, key, first_nonce)`` for ``count`` messages this client's bytes may be
        sealed and written with directly (``sv2ffi.fanout``), the nonces now taken; None
        when they may not: closing, or bytes queued in the transport that they would
        overtake, or no encryption.  Raises the connection's error (e.g. no nonces left).

        It reads only what is kept on this object (``direct``, ``queued``): at 1,000
        clients, going through each client's transport and connection objects for them
        took 2.6-4.2 ms of a tip before the first send, mostly cache misses on a busy
        host.  The nonces are taken as ``Connection.reserve_nonces`` takes them; with too
        few left, that method fails the connection and says why."""
        d = self.direct
        if d is None or self.closing:
            return None
        if self.queued:
            if self.transport.get_write_buffer_size():
                return None
            self.queued = False
        cipher = d[1]
        first = cipher.nonce
        if first + count > MAX_NONCE:
            self.conn.reserve_nonces(count)  # raises, and fails the connection
        cipher.nonce = first + count
        return (d[0], cipher.key, first)

    def write(self, data: bytes) -> bool:
        """Queue bytes; False (and the client aborted) past ``write_max`` waiting."""
        if self.closing:
            return False
        t = self.transport
        t.write(data)
        waiting = t.get_write_buffer_size()
        if waiting:
            self.queued = True
        if waiting > self.listener.limits.write_max:
            self.abort(f"not reading: more than {self.listener.limits.write_max} bytes "
                       "waiting to be sent")
            return False
        return True

    def set_up(self) -> None:
        """The client finished setting up: it leaves the pending budget."""
        self._cancel_timer()
        self.listener.release(self)

    def close(self, reason: str = "") -> None:
        """Flush what is queued (e.g. a SetupConnection.Error), then close; a client that
        does not take it within a few seconds is aborted."""
        if self.closing:
            return
        self.closing = True
        self._cancel_timer()
        if reason:
            log.debug("closing %s: %s", self.peername, reason)
        self.transport.close()
        if self.transport.get_write_buffer_size():
            self._timer = asyncio.get_running_loop().call_later(5.0, self.transport.abort)

    def abort(self, reason: str) -> None:
        """Drop the connection now, unsent data and all, freeing its slot."""
        if not self.closing:
            log.warning("client %s (%s): %s; aborting the connection", self.sid,
                        self.peername, reason)
        self.closing = True
        self._cancel_timer()
        self.transport.abort()

    # ---- internals ---------------------------------------------------------------------------

    def _deadline(self, why: str) -> None:
        self._timer = None
        if not self.closing:
            if self.sid is None:  # never got a session: counted, not a line each
                self.listener.refusals.refuse(why.split(" within")[0])
            else:
                log.info("client %s (%s): %s; disconnecting", self.sid, self.peername, why)
            self.closing = True
            self.transport.abort()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class TpListener:
    """The listening socket, the admission budget, and the clients' protocols.

    ``handler`` receives the protocol callbacks (``on_established``, ``on_frames``,
    ``on_error``, ``on_closed``); ``active_count()`` says how many working clients there
    are (for ``max_clients``).
    """

    def __init__(self, connection_factory: Callable[[], Connection], limits: Limits, handler,
                 active_count: Callable[[], int]):
        self.connection_factory = connection_factory
        self.limits = limits
        self.handler = handler
        self.active_count = active_count
        self.clients: set = set()
        self.pending_total = 0
        self.pending_by_source: collections.Counter = collections.Counter()
        self.refusals = RefusalLog()
        self.handshakes_ok = 0
        self.handshakes_failed = 0
        self._server: Optional[asyncio.AbstractServer] = None
        self.host, self.port = "", 0

    async def start(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: ClientProtocol(self), host, port,
                                                backlog=1024)
        sockname = self._server.sockets[0].getsockname()
        self.host, self.port = sockname[0], sockname[1]

    def admit(self, client: ClientProtocol) -> Optional[str]:
        """None to let the connection in (it then holds a pending slot), else why not."""
        lim = self.limits
        if self.active_count() >= lim.max_clients:
            return f"max_clients ({lim.max_clients}) working clients"
        if self.pending_total >= lim.max_pending:
            return f"max_pending ({lim.max_pending}) connections setting up"
        if self.pending_by_source[client.source] >= lim.max_pending_per_source:
            return f"max_pending_per_source ({lim.max_pending_per_source}) from one address"
        self.pending_total += 1
        self.pending_by_source[client.source] += 1
        self.clients.add(client)
        return None

    def release(self, client: ClientProtocol) -> None:
        """The client left the pending budget (set up, or gone); idempotent."""
        if client.pending:
            client.pending = False
            self.pending_total -= 1
            self.pending_by_source[client.source] -= 1
            if not self.pending_by_source[client.source]:
                del self.pending_by_source[client.source]

    # handler plumbing

    def on_established(self, client) -> None:
        self.handler.on_established(client)

    def on_frames(self, client, msgs, skipped: int) -> None:
        self.handler.on_frames(client, msgs, skipped)

    def on_error(self, client, error) -> None:
        self.handler.on_error(client, error)

    def on_closed(self, client) -> None:
        self.clients.discard(client)
        self.handler.on_closed(client)

    def check_writes(self, now: float) -> None:
        """Abort clients whose writes have been blocked for ``write_timeout`` seconds."""
        limit = self.limits.write_timeout
        for c in list(self.clients):
            if c.blocked_since is not None and not c.closing and now - c.blocked_since >= limit:
                c.abort(f"not reading: writes blocked for {limit:g} s")
        self.refusals.flush()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for c in list(self.clients):
            if c.transport is not None and not c.transport.is_closing():
                c.closing = True
                c.transport.abort()
        if self._server is not None:
            try:
                await asyncio.wait_for(self._server.wait_closed(), 5)
            except asyncio.TimeoutError:  # pragma: no cover
                pass
        self.refusals.flush(force=True)

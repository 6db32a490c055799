"""asyncio adapters around ``sv2ffi.connection``: a client, a server, and the stream
type both hand to application code.

The protocol logic is all in the sans-I/O Connection; this module only moves bytes
between it and asyncio streams, and adds what a network service needs: a handshake
timeout, a client limit, write backpressure (every ``send`` awaits ``drain``) and
isolation (whatever one client does ends at most that client's connection).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from typing import Awaitable, Callable

from . import errors
from .connection import Connection
from .messages import Message

log = logging.getLogger("sv2ffi.aio")

READ_SIZE = 1 << 16
CLOSE_TIMEOUT = 5.0


class Sv2Stream:
    """Messages in and out of one TCP connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 connection: Connection):
        self._reader = reader
        self._writer = writer
        self.connection = connection
        self._pending: collections.deque[Message] = collections.deque()
        self._closed = False
        try:
            self.peername = writer.get_extra_info("peername")
        except Exception:  # pragma: no cover - transport without a peer address
            self.peername = None

    # ---- handshake -------------------------------------------------------------------

    async def handshake(self) -> None:
        """Run the Noise handshake (nothing to do for plain connections)."""
        conn = self.connection
        act1 = conn.initiate()
        if act1:
            await self._write(act1)
        while not conn.is_established:
            self._pending.extend(conn.feed(await self._read("during the handshake")))
            await self._flush()

    # ---- messages --------------------------------------------------------------------

    async def recv(self) -> Message:
        """The next message; ConnectionClosed at end of stream, typed errors otherwise."""
        conn = self.connection
        while not self._pending:
            if conn.error is not None:
                raise conn.error
            data = await self._read()
            self._pending.extend(conn.feed(data))
            await self._flush()
            if not self._pending:
                # a chunk of frames this side skips (unknown types): let the other
                # connections of this loop run before reading on
                await asyncio.sleep(0)
        return self._pending.popleft()

    async def send(self, msg: Message) -> None:
        """Encode, encrypt, write and wait until the kernel took it (backpressure)."""
        await self._write(self.connection.send(msg))

    async def send_farewell(self, msg: Message) -> None:
        """One last message after the peer's undecodable payload (``Connection.farewell``)."""
        await self._write(self.connection.farewell(msg))

    async def send_raw(self, data: bytes) -> None:
        """Write bytes as they are (tests, proxies); bypasses the connection."""
        await self._write(data)

    def __aiter__(self):
        return self

    async def __anext__(self) -> Message:
        try:
            return await self.recv()
        except errors.ConnectionClosed:
            raise StopAsyncIteration from None

    # ---- closing ---------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    async def close(self) -> None:
        """Close the socket and wait (bounded) until it is gone; idempotent."""
        if self._closed and self._writer.is_closing():
            return
        self._closed = True
        self._writer.close()
        try:
            await asyncio.wait_for(self._writer.wait_closed(), CLOSE_TIMEOUT)
        except asyncio.TimeoutError:
            # a peer that does not read keeps unsent data (and the socket) alive: drop it
            self._writer.transport.abort()
        except Exception:  # noqa: BLE001 - already reset by the peer
            pass

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.close()

    # ---- bytes -----------------------------------------------------------------------

    async def _read(self, when: str = "") -> bytes:
        if self._closed:
            raise errors.ConnectionClosed("the stream was closed locally")
        try:
            data = await self._reader.read(READ_SIZE)
        except (ConnectionError, OSError) as e:
            self._closed = True
            raise errors.ConnectionClosed(f"connection lost{' ' + when if when else ''}: "
                                          f"{e}") from e
        if not data:
            self._closed = True
            raise errors.ConnectionClosed(f"peer closed the connection{' ' + when if when else ''}")
        return data

    async def _write(self, data: bytes) -> None:
        if self._closed or self._writer.is_closing():
            raise errors.ConnectionClosed("the stream is closed")
        try:
            self._writer.write(data)
            await self._writer.drain()
        except (ConnectionError, OSError) as e:
            self._closed = True
            raise errors.ConnectionClosed(f"connection lost while writing: {e}") from e

    async def _flush(self) -> None:
        out = self.connection.take_output()
        if out:
            await self._write(out)

    def __repr__(self) -> str:
        return f"<Sv2Stream {self.peername} {self.connection!r}>"


async def connect(host: str, port: int, *, connection: Connection,
                  timeout: float = 10) -> Sv2Stream:
    """Open a TCP connection and finish the handshake within ``timeout`` seconds."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except asyncio.TimeoutError:
        raise errors.ConnectionClosed(f"connect to {host}:{port} timed out") from None
    except OSError as e:
        raise errors.ConnectionClosed(f"cannot connect to {host}:{port}: {e}") from e
    stream = Sv2Stream(reader, writer, connection)
    try:
        await asyncio.wait_for(stream.handshake(), timeout)
    except asyncio.TimeoutError:
        await stream.close()
        raise errors.HandshakeError(f"handshake with {host}:{port} timed out") from None
    except BaseException:
        await stream.close()
        raise
    return stream


Handler = Callable[[Sv2Stream], Awaitable[None]]
ErrorCallback = Callable[[object, BaseException], None]


class Sv2Server:
    """A listening socket and its clients; see ``serve``."""

    def __init__(self, handler: Handler, connection_factory: Callable[[], Connection], *,
                 max_clients: int, handshake_timeout: float,
                 on_error: ErrorCallback | None = None):
        self._handler = handler
        self._factory = connection_factory
        self.max_clients = max_clients
        self.handshake_timeout = handshake_timeout
        self._on_error = on_error
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task] = set()
        self._streams: set[Sv2Stream] = set()
        self.active = 0
        self.accepted = 0
        self.rejected = 0
        #: Noise handshakes finished, and connections that ended before finishing one
        self.handshakes_ok = 0
        self.handshakes_failed = 0
        #: the last connection errors as (peername, exception), newest last
        self.errors: collections.deque = collections.deque(maxlen=256)
        self._error_event = asyncio.Event()
        self.port = 0
        self.host = ""

    async def _start(self, host: str, port: int) -> None:
        self._server = await asyncio.start_server(self._client, host, port)
        sockname = self._server.sockets[0].getsockname()
        self.host, self.port = sockname[0], sockname[1]

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        task = asyncio.current_task()
        if self.active >= self.max_clients:
            self.rejected += 1
            log.warning("refusing %s: %d clients connected (max_clients)",
                        writer.get_extra_info("peername"), self.active)
            writer.close()
            return
        self._tasks.add(task)
        self.active += 1
        self.accepted += 1
        stream = None
        try:
            stream = Sv2Stream(reader, writer, self._factory())
            self._streams.add(stream)
            try:
                await asyncio.wait_for(stream.handshake(), self.handshake_timeout)
            except asyncio.CancelledError:
                raise
            except BaseException as e:
                self.handshakes_failed += 1
                if isinstance(e, asyncio.TimeoutError):
                    raise errors.HandshakeError(
                        f"no handshake within {self.handshake_timeout} s") from None
                raise
            self.handshakes_ok += 1
            await self._handler(stream)
        except asyncio.CancelledError:
            pass  # server closing
        except errors.ConnectionClosed as e:
            log.debug("%s: %s", stream and stream.peername, e)
        except Exception as e:  # typed protocol errors, and bugs in a handler
            self._record(stream.peername if stream else writer.get_extra_info("peername"), e)
        finally:
            self.active -= 1
            self._tasks.discard(task)
            if stream is not None:
                self._streams.discard(stream)
                await stream.close()
            else:
                writer.close()

    def _record(self, peer, exc: BaseException) -> None:
        if isinstance(exc, errors.Sv2Error):
            log.info("closing %s: %s: %s", peer, type(exc).__name__, exc)
        else:
            log.error("handler failed for %s", peer, exc_info=exc)
        self.errors.append((peer, exc))
        self._error_event.set()
        if self._on_error is not None:
            try:
                self._on_error(peer, exc)
            except Exception:  # pragma: no cover - a broken callback must not kill us
                log.exception("on_error callback failed")

    async def wait_for_error(self, timeout: float = 10) -> BaseException:
        """The next connection error recorded (tests and monitoring)."""
        seen = len(self.errors)
        while len(self.errors) <= seen:
            self._error_event.clear()
            await asyncio.wait_for(self._error_event.wait(), timeout)
        return self.errors[-1][1]

    async def close(self) -> None:
        """Stop listening, end every client, and wait (bounded) until they are gone."""
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=CLOSE_TIMEOUT)
        if self._server is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), CLOSE_TIMEOUT)

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.close()


async def serve(handler: Handler, host: str = "127.0.0.1", port: int = 0, *,
                connection_factory: Callable[[], Connection], max_clients: int = 256,
                handshake_timeout: float = 10,
                on_error: ErrorCallback | None = None) -> Sv2Server:
    """Listen and run ``handler(stream)`` for every client after its handshake.

    ``connection_factory()`` makes the sans-I/O connection of each client (e.g.
    ``lambda: Connection.responder_from_authority(static, authority)``).  A handler's
    exception closes that client only; typed errors are recorded in ``server.errors``
    and passed to ``on_error(peername, exc)``.  Clients beyond ``max_clients`` are
    accepted and closed at once.  Port 0 picks a free port (``server.port``).
    """
    server = Sv2Server(handler, connection_factory, max_clients=max_clients,
                       handshake_timeout=handshake_timeout, on_error=on_error)
    await server._start(host, port)
    return server

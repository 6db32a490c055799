"""A JSON-RPC connection to bitcoind on the event loop itself, for the tip watch and a new
tip's getblocktemplate.

The other calls go through python-bitcoinrpc on a thread pool (they block, and some
are long).  The ``waitfornewblock`` long-poll is the TP's fastest tip signal, and its
reply is followed at once by a SetNewPrevHash to every client: answering it on a pool
thread costs a thread hop back to the loop and http.client's header parsing, a few
hundred microseconds on the path that should take one.  bitcoind answers HTTP/1.1 with a
Content-Length, so a reply is read as one head and one body, the body straight into a
buffer of its length (``_ReplyReader``).
"""

from __future__ import annotations

import asyncio
import binascii
import json
import logging
import re
import time
from typing import Awaitable, Callable, Optional, Union

from ...errors import RpcError

log = logging.getLogger("sv2ffi.tp.rpc")

#: a waitfornewblock reply is under 200 bytes; anything far bigger is not bitcoind's
MAX_REPLY = 1 << 20
MAX_HEADERS = 1 << 14
#: a body this long is read ahead as it arrives (``RpcStream.read_ahead``), each time at
#: least READ_AHEAD_STEP more bytes are in
READ_AHEAD_MIN = 1 << 18
READ_AHEAD_STEP = 1 << 16


class RpcTimeout(RpcError):
    """The call took longer than its timeout (expected for long-polls)."""


class _ReplyReader(asyncio.BufferedProtocol):
    """The reading side of one HTTP/1.1 connection to bitcoind: each reply's body is read
    straight into one buffer of its Content-Length.  Through ``asyncio.StreamReader`` a
    3,000-transaction getblocktemplate reply (1.7 MB) took 2.8-3.9 ms from the node's first
    byte to its last read, against 1.1-1.7 ms here and 0.9-1.8 for a blocking
    ``recv_into`` loop (same loopback server, issue 10): the stream reads 256 KiB chunks
    into new bytes objects, appends them to its buffer, pauses and resumes the socket
    at every 128 KiB past its limit, and copies the whole body out at the end."""

    def __init__(self, stream: "RpcStream"):
        self.stream: Optional[RpcStream] = stream  # None once the stream let go of it
        self.transport: Optional[asyncio.BaseTransport] = None
        self.closed = False
        self._head = bytearray(MAX_HEADERS + 1)
        self._head_len = 0
        self._body: Optional[bytearray] = None
        self._got = 0
        self._status = 0
        self._close_after = False
        self._reply: Optional[tuple] = None  # a whole reply nobody awaits yet
        self._ahead = None  # the stream's read_ahead state for the body being read
        self._ahead_at = 0  # the bytes it has seen
        self._error: Optional[BaseException] = None
        self._waiter: Optional[asyncio.Future] = None

    # asyncio's side
    def connection_made(self, transport) -> None:
        self.transport = transport

    def get_buffer(self, sizehint: int):
        if self._body is not None:
            return memoryview(self._body)[self._got:]
        return memoryview(self._head)[self._head_len:]

    def buffer_updated(self, nbytes: int) -> None:
        if self._body is not None:
            self._got += nbytes
            if self._got - self._ahead_at >= READ_AHEAD_STEP and self._got < len(self._body):
                self._read_ahead()
        else:
            self._head_len += nbytes
            try:
                if not self._start_body():
                    return
            except ValueError as e:
                self._fail(e)
                return
        if self._got == len(self._body):
            self._finish()

    def _read_ahead(self) -> None:
        """The body so far to the stream's ``read_ahead`` (while the rest is on its way,
        the loop has nothing else to do); a failure only ends the reading ahead."""
        stream = self.stream
        self._ahead_at = self._got
        if stream is None or stream.read_ahead is None or len(self._body) < READ_AHEAD_MIN:
            return
        try:
            self._ahead = stream.read_ahead(self._body, self._ahead, self._got)
        except Exception as e:  # e.g. MemoryError: the reply is read after its last byte
            log.debug("reading a reply ahead failed: %r", e)
            self._ahead, self._ahead_at = None, len(self._body)

    def eof_received(self) -> bool:
        self._fail(ConnectionResetError("the node closed the connection"))
        return False  # close our side too

    def connection_lost(self, exc) -> None:
        self._fail(exc if isinstance(exc, OSError) else ConnectionResetError(
            f"the connection was lost ({exc})" if exc else "the node closed the connection"))
        stream, self.stream = self.stream, None
        if stream is not None:
            stream._lost(self)

    # the stream's side
    async def reply(self) -> tuple:
        """The next reply: (HTTP status, body as a bytearray of its own, the state the
        stream's ``read_ahead`` left, or None)."""
        if self._reply is None and self._error is None:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        if self._reply is not None:
            out, self._reply = self._reply, None
            return out
        raise self._error

    def close(self) -> None:
        self.stream = None
        if self.transport is not None:
            self.transport.close()
        self._fail(ConnectionResetError("closed"))

    # parsing
    def _start_body(self) -> bool:
        """The head, once whole: its status and Content-Length, and the body's buffer with
        what came after the head already in it.  False: the head is not whole yet."""
        end = self._head.find(b"\r\n\r\n", 0, self._head_len)
        if end < 0:
            if self._head_len > MAX_HEADERS:
                raise ValueError("reply headers too long")
            return False
        if self._reply is not None or self._waiter is None and self.stream is None:
            raise ValueError("a reply nobody asked for")
        lines = self._head[:end].decode("latin-1").split("\r\n")
        status = lines[0].split(" ", 2)
        if len(status) < 2 or not status[1].isdigit():
            raise ValueError(f"not an HTTP reply: {lines[0][:80]!r}")
        length, close = None, False
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "connection" and value.strip().lower() == "close":
                close = True
        max_reply = self.stream.max_reply if self.stream is not None else MAX_REPLY
        if length is None or not 0 <= length <= max_reply:
            raise ValueError("reply without a usable Content-Length")
        extra = self._head_len - end - 4
        if extra > length:
            raise ValueError("more bytes than the reply's Content-Length")
        self._body = bytearray(length)
        self._body[:extra] = self._head[end + 4:self._head_len]
        self._got, self._head_len = extra, 0
        self._status, self._close_after = int(status[1]), close
        return True

    def _finish(self) -> None:
        """A whole reply.  Its body goes to the caller as the bytearray it was read into:
        a copy to bytes cost 0.66 ms for 1.7 MB (fresh pages faulted in), on the way to
        the clients' full template."""
        if self.stream is not None:
            self.stream.last_byte_at = time.monotonic()
        body, self._body = self._body, None
        self._reply = (self._status, body, self._ahead)
        self._ahead, self._ahead_at = None, 0
        stream = self.stream
        if stream is not None and stream.on_reply is not None:
            try:
                stream.on_reply(self._status, body)
            except Exception:  # the awaiting task still gets the reply
                log.exception("handling a reply as it arrived failed")
        if self._close_after:
            self.closed = True
            self.transport.close()
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _fail(self, exc: BaseException) -> None:
        self.closed = True
        if self._error is None:
            self._error = exc
        if self._body is not None:  # the node went away mid-reply
            self._body, self._ahead = None, None
            self._error = ConnectionResetError("the connection ended inside a reply")
        if self.transport is not None and not self.transport.is_closing():
            self.transport.abort()
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


class RpcStream:
    """One keep-alive HTTP connection to bitcoind, used by one task at a time.

    ``send_now`` writes a request without awaiting anything, so a call can leave in the
    same callback as the event that asks for it (a new tip's getblocktemplate goes out
    with the tip, not a loop iteration and a thread hop later); ``call(..., sent=True)``
    then reads its reply.  ``read`` (an awaitable taking the HTTP status, the body and what
    ``read_ahead`` made of it as it arrived) turns a reply (a bytearray, the caller's to
    keep) into a result its own way (sources/rpc.py: a getblocktemplate reply through the
    C scanner, or json on a pool thread); by default the json module reads it here."""

    def __init__(self, host: str, port: int, path: str, auth_header: Callable[[], bytes],
                 *, tls: bool = False, max_reply: int = MAX_REPLY, keep_warm: bool = False):
        self.host, self.port, self.path = host, port, path or "/"
        self.tls = tls  # an https:// URL (a TLS proxy in front of bitcoind): verified
        self._auth = auth_header
        self.max_reply = max_reply
        self._conn: Optional[_ReplyReader] = None
        #: the request line and headers, made when the connection opens: a cookie file is
        #: read once per connection (bitcoind writes a new cookie only when it restarts,
        #: which closes the connection), not at every request on the tip's path
        self._head: Optional[bytes] = None
        self._id = 0
        #: time.monotonic() of the last request written and of its reply's last byte
        self.sent_at = self.last_byte_at = 0.0
        #: reopen the connection as soon as the node closes it while idle (bitcoind
        #: closes a keep-alive connection after -rpcservertimeout, 30 s by default; blocks
        #: come minutes apart), so ``send_now`` finds one open
        self.keep_warm = keep_warm
        #: called with (HTTP status, body) in the protocol callback that read a reply's
        #: last byte, before the awaiting task resumes with the same reply (the tip
        #: watch: a new block's SetNewPrevHash one loop iteration sooner); must not block
        self.on_reply: Optional[Callable[[int, bytearray], None]] = None
        #: called with (body, its last state or None, bytes in) as a long body
        #: (READ_AHEAD_MIN) arrives, in the protocol callback, returning its next state;
        #: the last one goes to ``call``'s ``read`` (a getblocktemplate reply's
        #: transactions read while the rest arrives: sources/gbt.py, ``read_ahead``)
        self.read_ahead: Optional[Callable[[bytearray, object, int], object]] = None
        self._reopen: Optional[asyncio.Task] = None
        self.reopened = 0

    @property
    def connected(self) -> bool:
        """Whether a connection is open for ``send_now``."""
        return self._conn is not None and not self._conn.closed

    def send_now(self, method: str, *params) -> bool:
        """Write a request at once if the connection is open (False: it is not; ``call``
        then connects and sends).  Its reply must be read by ``call(..., sent=True)``."""
        if not self.connected:
            return False
        self._write_request(method, params)
        return True

    async def call(self, method: str, *params, timeout: float, sent: bool = False,
                   read: Optional[Callable[[int, bytearray, object], Awaitable]] = None):
        """The call's result; RpcError with the node's code when it answered with one,
        RpcTimeout past ``timeout``, RpcError("unreachable") when the connection failed
        (reopened once if the node had closed a kept one).  ``sent``: ``send_now`` wrote
        the request already."""
        for attempt in (1, 2):
            reused = self._conn is not None
            try:
                # asyncio.timeout, not wait_for: no task of its own, so the reply is read
                # in the caller's task (a tip's waitfornewblock: one loop iteration less)
                async with asyncio.timeout(timeout):
                    code, raw, ahead = await self._call(method, params, sent)
            except TimeoutError:
                self.close()
                raise RpcTimeout(f"{method} timed out") from None
            except (OSError, ValueError) as e:
                self.close()
                if reused and attempt == 1:
                    sent = False
                    continue  # the node closed our idle connection (restart, timeout)
                raise RpcError(f"{method}: node unreachable ({type(e).__name__}: {e})") \
                    from None
            if code == 401:  # credentials refused: the next call reads them again
                self.close()
            return await read(code, raw, ahead) if read is not None \
                else read_reply(method, code, raw)
        raise AssertionError("unreachable")  # pragma: no cover

    def _write_request(self, method: str, params) -> None:
        self._id += 1
        body = json.dumps({"jsonrpc": "1.0", "id": self._id, "method": method,
                           "params": list(params)}).encode()
        if self._head is None:
            self._head = b"".join((
                b"POST ", self.path.encode(), b" HTTP/1.1\r\nHost: ", self.host.encode(),
                b"\r\nAuthorization: ", self._auth(),
                b"\r\nContent-Type: application/json\r\nContent-Length: "))
        self._conn.transport.write(
            b"".join((self._head, str(len(body)).encode(), b"\r\n\r\n", body)))
        self.sent_at = time.monotonic()

    async def _call(self, method: str, params: tuple, sent: bool) -> tuple:
        if not sent:
            if self._conn is None:
                self._conn = await self._open()
            self._write_request(method, params)
        conn = self._conn
        if conn is None:
            raise ConnectionResetError("the connection was closed")
        return await conn.reply()

    async def _open(self) -> _ReplyReader:
        if self._reopen is not None and not self._reopen.done():
            self._reopen.cancel()
        self._reopen = None
        _, conn = await asyncio.get_running_loop().create_connection(
            lambda: _ReplyReader(self), self.host, self.port, ssl=True if self.tls else None)
        return conn

    def _lost(self, conn: _ReplyReader) -> None:
        """The node closed a connection this stream holds (``conn``): forgotten, and with
        ``keep_warm`` another one opened at once, unless a call is waiting on it (it
        learns of the loss and reopens itself)."""
        if conn is not self._conn:
            return
        self._conn = None
        self._head = None
        if self.keep_warm and conn._waiter is None and self._reopen is None:
            self._reopen = asyncio.get_running_loop().create_task(self._reopen_now())

    async def _reopen_now(self) -> None:
        try:
            conn = await asyncio.get_running_loop().create_connection(
                lambda: _ReplyReader(self), self.host, self.port,
                ssl=True if self.tls else None)
        except OSError:
            return  # the next call connects (and says so if it cannot)
        finally:
            self._reopen = None
        conn = conn[1]
        if self._conn is not None:  # a call connected meanwhile
            conn.close()
            return
        self._conn = conn
        self.reopened += 1

    def close(self) -> None:
        if self._reopen is not None:
            self._reopen.cancel()
            self._reopen = None
        if self._conn is not None:
            self._conn.close()
        self._conn = None
        self._head = None


def read_reply(method: str, code: int, raw: Union[bytes, bytearray]):
    """A JSON-RPC reply's result, or RpcError as the node said it."""
    if code == 401:
        raise RpcError("bitcoind refused our credentials (HTTP 401)")
    try:
        reply = json.loads(raw) if raw else None
    except ValueError:
        reply = None
    if not isinstance(reply, dict):
        raise RpcError(f"{method}: HTTP {code} without a JSON-RPC reply")
    err = reply.get("error")
    if err:
        raise RpcError(str(err.get("message", err)) if isinstance(err, dict) else str(err),
                       err.get("code") if isinstance(err, dict) else None)
    return reply.get("result")


#: a waitfornewblock reply as bitcoind writes it (UniValue, no spaces, a newline after):
#: ``{"result":{"hash":"<64 hex>","height":N},"error":null,"id":N}``, or the JSON-RPC
#: 2.0 form without ``error``; nothing else in it, and nothing JSON would refuse
_TIP_REPLY = re.compile(
    rb'\{(?:"jsonrpc":"2\.0",)?"result":\{"hash":"([0-9a-f]{64})","height":(0|[1-9][0-9]{0,8})\}'
    rb'(?:,"error":null)?,"id":(?:0|[1-9][0-9]{0,18}|null)\}[ \t\r\n]*')


def read_tip_reply(raw: Union[bytes, bytearray]) -> Optional[tuple]:
    """(block hash in internal order, height) from a waitfornewblock reply in bitcoind's own
    form, or None for anything else (``read_reply`` then reads it, or says what is
    wrong).  One match where the json module's walk of the same 120 bytes took 0.04-0.05
    ms on the way to the clients after a block, with nothing in the caches (issue 10).
    Whatever it accepts, the json module reads the same (tests/test_rpc_stream.py)."""
    m = _TIP_REPLY.fullmatch(raw)
    if m is None:
        return None
    return binascii.unhexlify(m[1])[::-1], int(m[2])

"""A JSON-RPC connection to bitcoind on the event loop itself, for the tip watch.

The other calls go through python-bitcoinrpc on a thread pool (they block, and some
are long).  The ``waitfornewblock`` long-poll is the TP's fastest tip signal, and its
reply is followed at once by a SetNewPrevHash to every client: answering it on a pool
thread costs a thread hop back to the loop and http.client's header parsing, a few
hundred microseconds on the path that should take one.  bitcoind answers HTTP/1.1 with a
Content-Length, so reading a reply takes one header block and one body read here.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Awaitable, Callable, Optional

from ...errors import RpcError

#: a waitfornewblock reply is under 200 bytes; anything far bigger is not bitcoind's
MAX_REPLY = 1 << 20
MAX_HEADERS = 1 << 14


class RpcTimeout(RpcError):
    """The call took longer than its timeout (expected for long-polls)."""


class RpcStream:
    """One keep-alive HTTP connection to bitcoind, used by one task at a time.

    ``send_now`` writes a request without awaiting anything, so a call can leave in the
    same callback as the event that asks for it (a new tip's getblocktemplate goes out
    with the tip, not a loop iteration and a thread hop later); ``call(..., sent=True)``
    then reads its reply.  ``read`` (an awaitable taking the HTTP status and body) turns a
    reply into a result its own way (sources/rpc.py: a getblocktemplate reply through the C
    scanner, or json on a pool thread); by default the json module reads it here."""

    def __init__(self, host: str, port: int, path: str, auth_header: Callable[[], bytes],
                 *, tls: bool = False, max_reply: int = MAX_REPLY, keep_warm: bool = False):
        self.host, self.port, self.path = host, port, path or "/"
        self.tls = tls  # an https:// URL (a TLS proxy in front of bitcoind): verified
        self._auth = auth_header
        self.max_reply = max_reply
        self._reader: Optional[asyncio.StreamReader] = None
        self._writer: Optional[asyncio.StreamWriter] = None
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
        self._warm: Optional[asyncio.Task] = None
        self._warm_stopped = False  # a keep-warm read was cancelled: the next call waits a turn
        self.reopened = 0

    def send_now(self, method: str, *params) -> bool:
        """Write a request at once if the connection is open (False: it is not; ``call``
        then connects and sends).  Its reply must be read by ``call(..., sent=True)``."""
        self._stop_warm()
        if self._writer is None or self._writer.is_closing() or self._reader.at_eof():
            return False
        self._write_request(method, params)
        return True

    async def call(self, method: str, *params, timeout: float, sent: bool = False,
                   read: Optional[Callable[[int, bytes], Awaitable]] = None):
        """The call's result; RpcError with the node's code when it answered with one,
        RpcTimeout past ``timeout``, RpcError("unreachable") when the connection failed
        (reopened once if the node had closed a kept one).  ``sent``: ``send_now`` wrote
        the request already."""
        self._stop_warm()
        if self._warm_stopped:
            self._warm_stopped = False
            await asyncio.sleep(0)  # the cancelled keep-warm task lets go of the stream
        for attempt in (1, 2):
            reused = self._writer is not None
            try:
                # asyncio.timeout, not wait_for: no task of its own, so the reply is read
                # in the caller's task (a tip's waitfornewblock: one loop iteration less)
                async with asyncio.timeout(timeout):
                    code, raw = await self._call(method, params, sent)
            except TimeoutError:
                self.close()
                raise RpcTimeout(f"{method} timed out") from None
            except (OSError, asyncio.IncompleteReadError, ValueError) as e:
                self.close()
                if reused and attempt == 1:
                    sent = False
                    continue  # the node closed our idle connection (restart, timeout)
                raise RpcError(f"{method}: node unreachable ({type(e).__name__}: {e})") \
                    from None
            if code == 401:  # credentials refused: the next call reads them again
                self.close()
            if self.keep_warm and self._writer is not None:
                self._warm = asyncio.get_running_loop().create_task(self._keep_warm())
            return await read(code, raw) if read is not None else read_reply(method, code, raw)
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
        self._writer.write(b"".join((self._head, str(len(body)).encode(), b"\r\n\r\n", body)))
        self.sent_at = time.monotonic()

    async def _call(self, method: str, params: tuple, sent: bool) -> tuple:
        if not sent:
            if self._writer is None:
                self._reader, self._writer = await self._open()
            self._write_request(method, params)
        head = await self._reader.readuntil(b"\r\n\r\n")
        if len(head) > MAX_HEADERS:
            raise ValueError("reply headers too long")
        lines = head.decode("latin-1").split("\r\n")
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
        if length is None or not 0 <= length <= self.max_reply:
            raise ValueError("reply without a usable Content-Length")
        raw = await self._reader.readexactly(length)
        self.last_byte_at = time.monotonic()
        if close:
            self.close()
        return int(status[1]), raw

    def _stop_warm(self) -> None:
        """Cancelling the keep-warm task cancels its pending read at once (no reply byte
        is taken), but the stream forgets that read only when the task next runs: the next
        call waits one loop iteration for it (``_warm_stopped``)."""
        if self._warm is not None:
            self._warm.cancel()
            self._warm = None
            self._warm_stopped = True

    async def _keep_warm(self) -> None:
        """While idle: nothing arrives unasked, so a read returns only when the node
        closes the connection; then a new one is opened (and watched the same way)."""
        reader = self._reader
        try:
            await reader.read(1)
        except OSError:
            pass
        if self._reader is not reader:
            return
        self._warm = None  # this task: not to be cancelled by close()
        self.close()
        try:
            r, w = await self._open()
        except OSError:
            return  # the next call connects (and says so if it cannot)
        if self._writer is not None:  # a call connected meanwhile
            w.close()
            return
        self._reader, self._writer = r, w
        self.reopened += 1
        self._warm = asyncio.get_running_loop().create_task(self._keep_warm())

    def _open(self):
        return asyncio.open_connection(self.host, self.port, ssl=True if self.tls else None)

    def close(self) -> None:
        self._stop_warm()
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None
        self._head = None


def read_reply(method: str, code: int, raw: bytes):
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

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
from typing import Callable, Optional

from ...errors import RpcError

#: a waitfornewblock reply is under 200 bytes; anything far bigger is not bitcoind's
MAX_REPLY = 1 << 20
MAX_HEADERS = 1 << 14


class RpcTimeout(RpcError):
    """The call took longer than its timeout (expected for long-polls)."""


class RpcStream:
    """One keep-alive HTTP connection to bitcoind, used by one task at a time."""

    def __init__(self, host: str, port: int, path: str, auth_header: Callable[[], bytes],
                 *, tls: bool = False):
        self.host, self.port, self.path = host, port, path or "/"
        self.tls = tls  # an https:// URL (a TLS proxy in front of bitcoind): verified
        self._auth = auth_header
        self._reader: Optional[asyncio.StreamReader] = None
        self._writer: Optional[asyncio.StreamWriter] = None
        self._id = 0

    async def call(self, method: str, *params, timeout: float):
        """The call's result; RpcError with the node's code when it answered with one,
        RpcTimeout past ``timeout``, RpcError("unreachable") when the connection failed
        (reopened once if the node had closed a kept one)."""
        for attempt in (1, 2):
            reused = self._writer is not None
            try:
                return await asyncio.wait_for(self._call(method, params), timeout)
            except asyncio.TimeoutError:
                self.close()
                raise RpcTimeout(f"{method} timed out") from None
            except (OSError, asyncio.IncompleteReadError, ValueError) as e:
                self.close()
                if reused and attempt == 1:
                    continue  # the node closed our idle connection (restart, timeout)
                raise RpcError(f"{method}: node unreachable ({type(e).__name__}: {e})") \
                    from None
        raise AssertionError("unreachable")  # pragma: no cover

    async def _call(self, method: str, params: tuple):
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(
                self.host, self.port, ssl=True if self.tls else None)
        self._id += 1
        body = json.dumps({"jsonrpc": "1.0", "id": self._id, "method": method,
                           "params": list(params)}).encode()
        self._writer.write(b"".join((
            b"POST ", self.path.encode(), b" HTTP/1.1\r\nHost: ", self.host.encode(),
            b"\r\nAuthorization: ", self._auth(), b"\r\nContent-Type: application/json\r\n"
            b"Content-Length: ", str(len(body)).encode(), b"\r\n\r\n", body)))
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
        if length is None or not 0 <= length <= MAX_REPLY:
            raise ValueError("reply without a usable Content-Length")
        raw = await self._reader.readexactly(length)
        if close:
            self.close()
        code = int(status[1])
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

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None

"""Ping-pong over SV2, with or without Noise: the smallest complete client and server.

Modelled on the reference implementation's ping-pong examples, but with real SV2
messages instead of example-only ones: the client opens with SetupConnection, the server
answers SetupConnection.Success; then each ping is a RequestTransactionData(n) and each
pong a RequestTransactionData.Success(n) carrying b"pong".  Run it from the CLI:

    sv2ffi ping-pong server --noise            # prints its port and authority key
    sv2ffi ping-pong client --noise --port P --authority-pubkey 9b...
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Callable

from .. import errors
from ..aio import Sv2Server, Sv2Stream, connect, serve
from ..connection import Connection
from ..keys import DatadirKeys, Keypair
from ..messages import (RequestTransactionData, RequestTransactionDataSuccess, SetupConnection,
                        SetupConnectionError, SetupConnectionSuccess)
from ..schema import PROTOCOL_VERSION

TEMPLATE_DISTRIBUTION = 2
PONG = b"pong"


async def pong_handler(stream: Sv2Stream) -> None:
    """Server side of one client: setup, then answer every ping until the client leaves."""
    setup = await stream.recv()
    if not isinstance(setup, SetupConnection):
        raise errors.NotEstablishedError(f"expected SetupConnection first, got "
                                         f"{type(setup).__name__}")
    if setup.protocol != TEMPLATE_DISTRIBUTION:
        await stream.send(SetupConnectionError(0, "unsupported-protocol"))
        return
    if not setup.min_version <= PROTOCOL_VERSION <= setup.max_version:
        await stream.send(SetupConnectionError(0, "protocol-version-mismatch"))
        return
    await stream.send(SetupConnectionSuccess(used_version=PROTOCOL_VERSION, flags=0))
    async for msg in stream:
        if isinstance(msg, RequestTransactionData):
            await stream.send(RequestTransactionDataSuccess(msg.template_id, PONG, []))


async def start_server(host: str = "127.0.0.1", port: int = 0, *,
                       keys: DatadirKeys | None = None, max_clients: int = 64,
                       on_done: Callable[[], None] | None = None) -> Sv2Server:
    """A ping-pong server; Noise if ``keys`` are given, plain otherwise."""
    if keys is None:
        factory = Connection.plain
    else:
        def factory():
            return Connection.responder_from_authority(keys.static, keys.authority)

    async def handler(stream: Sv2Stream) -> None:
        try:
            await pong_handler(stream)
        finally:
            if on_done is not None:
                on_done()

    return await serve(handler, host, port, connection_factory=factory,
                       max_clients=max_clients)


def memory_keys() -> DatadirKeys:
    """Keys that live as long as the process (the server prints the authority key)."""
    return DatadirKeys(Keypair.generate(), Keypair.generate())


@dataclass
class PingResult:
    used_version: int
    remote_static_xonly: bytes | None
    rtts: list = field(default_factory=list)


async def run_client(host: str, port: int, *, noise: bool, authority_pubkey=None,
                     count: int = 3, timeout: float = 10,
                     report: Callable[[str], None] = lambda line: None) -> PingResult:
    """Connect, set up, send ``count`` pings; every wait is bounded by ``timeout``."""
    conn = Connection.initiator(authority_pubkey) if noise else Connection.plain()
    stream = await connect(host, port, connection=conn, timeout=timeout)
    try:
        await stream.send(SetupConnection(TEMPLATE_DISTRIBUTION, PROTOCOL_VERSION,
                                          PROTOCOL_VERSION, 0, host, port, "sv2ffi",
                                          "", "example", ""))
        reply = await asyncio.wait_for(stream.recv(), timeout)
        if not isinstance(reply, SetupConnectionSuccess):
            raise errors.HandshakeError(f"setup refused: {reply}")
        result = PingResult(reply.used_version, conn.remote_static_xonly)
        report(f"setup ok: version {reply.used_version}"
               + (f", server static key {conn.remote_static_xonly.hex()}" if noise else ""))
        for n in range(1, count + 1):
            t0 = time.perf_counter()
            await stream.send(RequestTransactionData(n))
            pong = await asyncio.wait_for(stream.recv(), timeout)
            rtt = time.perf_counter() - t0
            if not (isinstance(pong, RequestTransactionDataSuccess) and pong.template_id == n
                    and pong.excess_data == PONG):
                raise errors.DecodeError(f"expected pong {n}, got {pong}")
            result.rtts.append(rtt)
            report(f"ping {n} -> pong {n} ({rtt * 1e3:.2f} ms)")
        return result
    finally:
        await stream.close()

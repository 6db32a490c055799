"""Shared helpers of the Noise / connection / asyncio tests (issue 3): sample messages
built from the schema, connected sans-I/O pairs, and a byte-flipping TCP proxy."""

from __future__ import annotations

import asyncio
import contextlib
import itertools

from sv2ffi import schema
from sv2ffi.connection import Connection
from sv2ffi.keys import Keypair
from sv2ffi.messages import CLASSES

# fixed keys: tests are deterministic and a failure can be replayed
AUTHORITY = Keypair(bytes.fromhex("65995eb19631f478a46ffa5cf1e545091efe950eaeac7482ffdc06eb6a89f697"))
STATIC = Keypair(bytes.fromhex("846a784f1a03dea59cc679754a60a7145542fa130e3efbd815c81e909ce32933"))
OTHER_AUTHORITY = Keypair(bytes(31) + b"\x07")


def _value(t: schema.Sv2Type, size: str, seed: int):
    """A value of type t: size 'min' (zero/empty) or 'max' (large, but bounded)."""
    if t.kind == "int":
        return 0 if size == "min" else t.max_value - seed % 7
    if t.kind == "bool":
        return size == "max"
    if t.kind == "f32":
        return 0.0 if size == "min" else 1.5
    if t.kind == "fixed":
        return bytes((seed + i) % 256 for i in range(t.size))
    if t.kind == "bytes":
        n = 0 if size == "min" else min(t.max_len, 70_000)  # crosses a 65,519-byte chunk
        if t.text:
            return "".join(chr(97 + (seed + i) % 26) for i in range(n))
        return bytes((seed * 31 + i) % 251 for i in range(n))
    if t.kind == "seq":
        if t.max_len == 1:  # OPTION
            return None if size == "min" else _value(t.elem, size, seed)
        n = 0 if size == "min" else 3
        return [_value(t.elem, size, seed + i) for i in range(n)]
    raise AssertionError(f"no sample for {t.name}")


def sample_message(cls, size: str = "max"):
    """An instance of a message class with every field filled according to the schema."""
    values = {}
    for i, f in enumerate(cls.SPEC.fields):
        if f.choices is not None:
            values[f.name] = sorted(f.choices)[-1 if size == "max" else 0]
        else:
            values[f.name] = _value(f.type, size, i + 1)
    return cls(**values)


def sample_messages():
    """(id, message) for every message in the schema, small and large."""
    for spec, size in itertools.product(schema.MESSAGES, ("min", "max")):
        yield f"{spec.class_name}-{size}", sample_message(CLASSES[spec.class_name], size)


def noise_pair(*, authority=AUTHORITY, static=STATIC, expect=None, **client_kw):
    """(client, server) Connections with the handshake done in memory."""
    client = Connection.initiator((expect or authority).xonly, **client_kw)
    server = Connection.responder_from_authority(static, authority)
    handshake(client, server)
    return client, server


def handshake(client, server):
    assert server.feed(client.initiate()) == []
    assert client.feed(server.take_output()) == []
    assert client.is_established and server.is_established


def flip(data: bytes, pos: int) -> bytes:
    b = bytearray(data)
    b[pos] ^= 0x01
    return bytes(b)


class TamperProxy:
    """A TCP man-in-the-middle on 127.0.0.1 that flips one bit at a chosen offset of one
    direction of the byte stream ("up" = client to server, "down" = server to client)."""

    def __init__(self, target_port: int, direction: str, offset: int):
        assert direction in ("up", "down")
        self.target_port = target_port
        self.direction = direction
        self.offset = offset
        self.port = 0
        self._server = None
        self._tasks = set()

    async def start(self):
        self._server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _client(self, c_reader, c_writer):
        s_reader, s_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        up = asyncio.ensure_future(self._pipe(c_reader, s_writer, self.direction == "up"))
        down = asyncio.ensure_future(self._pipe(s_reader, c_writer, self.direction == "down"))
        self._tasks |= {up, down}
        await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
        for t in (up, down):
            t.cancel()
        for w in (c_writer, s_writer):
            w.close()

    async def _pipe(self, reader, writer, tamper):
        seen = 0
        with contextlib.suppress(ConnectionError, OSError, asyncio.CancelledError):
            while data := await reader.read(1 << 16):
                if tamper and seen <= self.offset < seen + len(data):
                    data = flip(data, self.offset - seen)
                seen += len(data)
                writer.write(data)
                await writer.drain()
        writer.close()

    async def close(self):
        self._server.close()
        for t in self._tasks:
            t.cancel()
        await asyncio.wait_for(self._server.wait_closed(), 5)

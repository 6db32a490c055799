"""The asyncio server and client on real sockets (127.0.0.1): every message over Noise,
tampering by a man-in-the-middle, garbage, timeouts, limits, isolation, backpressure.

Every await on the network is bounded (``run`` caps a whole test at 60 s, the helpers
use short per-step timeouts), so a bug shows up as a failure, never as a hang.
"""

import asyncio
import random

import pytest

from noise_support import (AUTHORITY, OTHER_AUTHORITY, STATIC, TamperProxy, sample_messages)
from sv2ffi import errors, noise
from sv2ffi.aio import connect, serve
from sv2ffi.connection import Connection
from sv2ffi.framing import encode_message
from sv2ffi.keys import Certificate
from sv2ffi.messages import (RequestTransactionData, RequestTransactionDataSuccess,
                             SetupConnectionSuccess)
from sv2ffi.schema import MAX_PAYLOAD

STEP = 10  # seconds any single network step may take


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


async def echo(stream):
    async for msg in stream:
        await stream.send(msg)


def noise_server(handler=echo, **kw):
    return serve(handler, connection_factory=lambda: Connection.responder_from_authority(
        STATIC, AUTHORITY), **kw)


def client_conn(expect=AUTHORITY, **kw):
    return Connection.initiator(expect.xonly, **kw)


async def roundtrip(stream, n):
    await stream.send(RequestTransactionData(n))
    assert await asyncio.wait_for(stream.recv(), STEP) == RequestTransactionData(n)


def test_every_message_over_noise_on_tcp():
    async def main():
        async with await noise_server() as server:
            stream = await connect("127.0.0.1", server.port, connection=client_conn())
            assert stream.connection.remote_static_xonly == STATIC.xonly
            msgs = [m for _, m in sample_messages()]
            for m in msgs:
                await stream.send(m)
            for m in msgs:
                assert await asyncio.wait_for(stream.recv(), STEP) == m
            await stream.close()
            assert server.errors == type(server.errors)()
    run(main())


def test_every_message_plain_on_tcp():
    async def main():
        async with await serve(echo, connection_factory=Connection.plain) as server:
            stream = await connect("127.0.0.1", server.port, connection=Connection.plain())
            for _, m in sample_messages():
                await stream.send(m)
                assert await asyncio.wait_for(stream.recv(), STEP) == m
            await stream.close()
    run(main())


def test_16mib_message_over_tcp():
    async def main():
        async with await noise_server() as server:
            stream = await connect("127.0.0.1", server.port, connection=client_conn())
            msg = RequestTransactionDataSuccess(3, b"", [random.Random(2).randbytes(
                MAX_PAYLOAD - 15)])
            await stream.send(msg)
            assert await asyncio.wait_for(stream.recv(), 30) == msg
            assert stream.connection.recv_cipher.nonce == 258
            await stream.close()
    run(main())


async def _tamper_case(direction, offset, expect_client=None, expect_server=None,
                       send_big=False):
    """One client goes through a proxy that flips a bit; a second, direct client must be
    served before and after."""
    async with await noise_server() as server:
        bystander = await connect("127.0.0.1", server.port, connection=client_conn())
        await roundtrip(bystander, 1)
        proxy = await TamperProxy(server.port, direction, offset).start()
        try:
            if expect_client is not None and direction == "down" and offset < noise.ACT2_SIZE:
                with pytest.raises(expect_client):
                    await connect("127.0.0.1", proxy.port, connection=client_conn(), timeout=STEP)
            else:
                victim = await connect("127.0.0.1", proxy.port, connection=client_conn(),
                                       timeout=STEP)
                msg = (RequestTransactionDataSuccess(1, b"", [bytes(100_000)]) if send_big
                       else RequestTransactionData(7))
                await victim.send(msg)
                if expect_server is not None:
                    err = await server.wait_for_error(STEP)
                    assert isinstance(err, expect_server), err
                    with pytest.raises(errors.ConnectionClosed):
                        await asyncio.wait_for(victim.recv(), STEP)
                else:
                    with pytest.raises(expect_client):
                        await asyncio.wait_for(victim.recv(), STEP)
                await victim.close()
        finally:
            await proxy.close()
        await roundtrip(bystander, 2)
        # and a brand-new client is still welcome
        late = await connect("127.0.0.1", server.port, connection=client_conn())
        await roundtrip(late, 3)
        await late.close()
        await bystander.close()


# act 2 = e_r (0..63) | enc(s) (64..143) | enc(cert) (144..233): ends of each part
@pytest.mark.parametrize("offset", [0, 63, 64, 143, 144, 233])
def test_tampered_act2_client_gets_typed_error_server_unaffected(offset):
    run(_tamper_case("down", offset, expect_client=errors.HandshakeDecryptionError))


# client -> server stream: act 1 (0..63), then the header ciphertext (64..85)
@pytest.mark.parametrize("offset", [64, 69, 70, 85])
def test_tampered_header_ciphertext_server_records_error(offset):
    run(_tamper_case("up", offset, expect_server=errors.DecryptionError))


# payload of a 100,015-byte message: chunk 1 = 86..65620, chunk 2 = 65621..
@pytest.mark.parametrize("offset", [86, 86 + 65534, 86 + 65535, 86 + 100_015 + 31])
def test_tampered_payload_chunk_server_records_error(offset):
    run(_tamper_case("up", offset, expect_server=errors.DecryptionError, send_big=True))


@pytest.mark.parametrize("offset", [noise.ACT2_SIZE, noise.ACT2_SIZE + 30])
def test_tampered_server_frame_client_gets_typed_error(offset):
    run(_tamper_case("down", offset, expect_client=errors.DecryptionError))


def test_garbage_instead_of_act1():
    async def main():
        async with await noise_server(handshake_timeout=0.5) as server:
            bystander = await connect("127.0.0.1", server.port, connection=client_conn())
            # 1. a plain SV2 client: 64 bytes taken as act 1, the rest fails as a header
            r, w = await asyncio.open_connection("127.0.0.1", server.port)
            w.write(encode_message(SetupConnectionSuccess(2, 0)) * 10)
            assert isinstance(await server.wait_for_error(STEP), errors.DecryptionError)
            # server hung up (act 2 may or may not have been written before, depending on
            # whether act 1 and the garbage arrived in one read)
            assert len(await asyncio.wait_for(r.read(), STEP)) in (0, noise.ACT2_SIZE)
            w.close()
            # 2. fewer than 64 bytes, then silence: the handshake timeout ends it
            r, w = await asyncio.open_connection("127.0.0.1", server.port)
            w.write(b"\x00" * 10)
            err = await server.wait_for_error(STEP)
            assert isinstance(err, errors.HandshakeError) and "handshake" in str(err)
            assert await asyncio.wait_for(r.read(), STEP) == b""
            w.close()
            # 3. fewer than 64 bytes, then EOF: closed quietly, nothing to report
            r, w = await asyncio.open_connection("127.0.0.1", server.port)
            w.write(b"\x01" * 5)
            w.write_eof()
            assert await asyncio.wait_for(r.read(), STEP) == b""
            w.close()
            await roundtrip(bystander, 1)
            await bystander.close()
    run(main())


def test_certificate_from_another_authority_rejected_on_tcp():
    async def main():
        async with await noise_server() as server:
            with pytest.raises(errors.CertificateWrongSignerError):
                await connect("127.0.0.1", server.port, connection=client_conn(OTHER_AUTHORITY))
            ok = await connect("127.0.0.1", server.port, connection=client_conn())
            await roundtrip(ok, 1)
            await ok.close()
    run(main())


@pytest.mark.parametrize("shift,error", [(-3600, errors.CertificateExpiredError),
                                         (3600, errors.CertificateNotYetValidError)])
def test_expired_and_not_yet_valid_certificates_on_tcp(shift, error):
    now = 1_800_000_000
    cert = Certificate.issue(AUTHORITY, STATIC.xonly, now + shift - 100, now + shift + 100)

    async def main():
        async with await serve(echo, connection_factory=lambda: Connection.responder(
                STATIC, cert)) as server:
            with pytest.raises(error):
                await connect("127.0.0.1", server.port,
                              connection=client_conn(clock=lambda: now))
            # the same certificate is fine for a client whose clock is inside the window
            ok = await connect("127.0.0.1", server.port,
                               connection=client_conn(clock=lambda: now + shift))
            await roundtrip(ok, 1)
            await ok.close()
    run(main())


def test_frame_too_large_on_tcp():
    async def main():
        async with await serve(echo, connection_factory=lambda: Connection.responder_from_authority(
                STATIC, AUTHORITY, max_payload=4096)) as server:
            stream = await connect("127.0.0.1", server.port, connection=client_conn())
            await stream.send(RequestTransactionDataSuccess(1, bytes(5000), []))
            err = await server.wait_for_error(STEP)
            assert isinstance(err, errors.FrameTooLargeError)
            with pytest.raises(errors.ConnectionClosed):
                await asyncio.wait_for(stream.recv(), STEP)
            await stream.close()
    run(main())


def test_handler_exception_closes_only_that_client():
    async def handler(stream):
        msg = await stream.recv()
        if msg.template_id == 13:
            raise RuntimeError("handler bug")
        await stream.send(msg)
        await echo(stream)

    async def main():
        async with await noise_server(handler) as server:
            a = await connect("127.0.0.1", server.port, connection=client_conn())
            b = await connect("127.0.0.1", server.port, connection=client_conn())
            await a.send(RequestTransactionData(13))
            assert isinstance(await server.wait_for_error(STEP), RuntimeError)
            with pytest.raises(errors.ConnectionClosed):
                await asyncio.wait_for(a.recv(), STEP)
            await roundtrip(b, 1)
            await roundtrip(b, 2)
            await a.close()
            await b.close()
    run(main())


def test_max_clients():
    async def main():
        async with await noise_server(max_clients=2) as server:
            a = await connect("127.0.0.1", server.port, connection=client_conn())
            b = await connect("127.0.0.1", server.port, connection=client_conn())
            with pytest.raises(errors.ConnectionClosed):
                await connect("127.0.0.1", server.port, connection=client_conn(), timeout=STEP)
            assert server.rejected == 1
            await roundtrip(a, 1)
            await a.close()
            for _ in range(100):  # the server notices a's close asynchronously
                if server.active < 2:
                    break
                await asyncio.sleep(0.02)
            c = await connect("127.0.0.1", server.port, connection=client_conn())
            await roundtrip(c, 2)
            await roundtrip(b, 3)
            await b.close()
            await c.close()
    run(main())


def test_backpressure_send_waits_for_a_slow_reader():
    """A reader that does not read: send() must stop returning (drain) instead of
    buffering without limit; once the reader drains, everything arrives in order."""
    release = asyncio.Event
    N = 400  # 24 MB: more than the loopback socket buffers of both ends can absorb

    async def main():
        gate = release()
        got = []

        async def slow(stream):
            await asyncio.wait_for(gate.wait(), 30)
            async for msg in stream:
                got.append(msg.template_id)
                if len(got) == N:
                    return

        async with await noise_server(slow) as server:
            stream = await connect("127.0.0.1", server.port, connection=client_conn())
            msg = RequestTransactionDataSuccess(0, b"", [bytes(60_000)])
            sent = 0

            async def pump():
                nonlocal sent
                for i in range(N):
                    msg.template_id = i
                    await stream.send(msg)
                    sent += 1

            task = asyncio.ensure_future(pump())
            await asyncio.sleep(0.3)
            assert not task.done() and sent < N
            writer_buffer = stream._writer.transport.get_write_buffer_size()
            assert writer_buffer < 1 << 20  # bounded by the drain high-water mark + 1 frame
            gate.set()
            await asyncio.wait_for(task, 30)
            for _ in range(300):
                if len(got) == N:
                    break
                await asyncio.sleep(0.02)
            assert got == list(range(N))
            await stream.close()
    run(main())


def test_clean_close_both_ways():
    async def main():
        closed = asyncio.Event()

        async def handler(stream):
            try:
                await stream.recv()
            except errors.ConnectionClosed:
                closed.set()
                raise

        async with await noise_server(handler) as server:
            s = await connect("127.0.0.1", server.port, connection=client_conn())
            await s.close()
            await asyncio.wait_for(closed.wait(), STEP)
            assert s.closed
            with pytest.raises(errors.ConnectionClosed):
                await s.send(RequestTransactionData(1))
            with pytest.raises(errors.ConnectionClosed):
                await s.recv()
            # server-side close: the client's recv ends with ConnectionClosed
            t = await connect("127.0.0.1", server.port, connection=client_conn())
        with pytest.raises(errors.ConnectionClosed):
            await asyncio.wait_for(t.recv(), STEP)
        await t.close()
        assert not server.errors
    run(main())


def test_connect_refused_is_typed():
    async def main():
        async with await noise_server() as server:
            port = server.port
        with pytest.raises(errors.ConnectionClosed):
            await connect("127.0.0.1", port, connection=client_conn(), timeout=STEP)
    run(main())


def test_many_clients_concurrently():
    async def one(port, i):
        s = await connect("127.0.0.1", port, connection=client_conn())
        for n in range(5):
            await roundtrip(s, i * 100 + n)
        await s.close()

    async def main():
        async with await noise_server() as server:
            await asyncio.gather(*(one(server.port, i) for i in range(20)))
            assert server.accepted == 20 and not server.errors
    run(main())

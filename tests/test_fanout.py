"""sv2ffi._fanout, the TP's tip pass in C: the bytes it writes are exactly what
``noise.encrypt_frames`` makes for each client (the SV2 Noise transport of the digest's §5,
which SRI and sv2-tp read), partial and failed sends are reported, not lost, bad arguments
are typed errors that write nothing, and a real TP uses it for its clients."""

import asyncio
import errno
import os
import socket
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sv2ffi import fanout
from sv2ffi.client import TdpClient
from sv2ffi.connection import Connection
from sv2ffi.errors import NonceExhaustedError
from sv2ffi.messages import NewTemplate, SetNewPrevHash
from sv2ffi.noise import MAX_NONCE, MAX_PT_CHUNK, CipherState, encrypt_frames
from sv2ffi.tp.core import TpConfig
from sv2ffi.tp.runner import TpThread
from sv2ffi.tp.server import TpService
from sv2ffi.tp.sources.regtest import RegtestSource

from noise_support import noise_pair

pytestmark = pytest.mark.skipif(
    not fanout.AVAILABLE, reason="sv2ffi._fanout not built (no OpenSSL libcrypto headers)")

T = 20


def _pair():
    a, b = socket.socketpair()
    a.setblocking(False)
    return a, b


def _recv_all(sock, n):
    out = b""
    while len(out) < n:
        out += sock.recv(n - len(out))
    return out


frames_st = st.lists(st.tuples(st.binary(min_size=6, max_size=6),
                               st.binary(max_size=300)), min_size=1, max_size=4)


@settings(max_examples=60, deadline=None)
@given(frames=frames_st, keys=st.lists(st.binary(min_size=32, max_size=32), min_size=1,
                                       max_size=4),
       nonce=st.integers(0, 2**63))
def test_the_wire_bytes_are_encrypt_frames_for_every_client(frames, keys, nonce):
    units = fanout.units(frames)
    pairs = [_pair() for _ in keys]
    try:
        targets = [(a.fileno(), k, nonce + i) for i, ((a, _), k) in enumerate(zip(pairs, keys))]
        assert fanout.seal_send(units, targets) == [None] * len(keys)
        for i, ((_a, b), k) in enumerate(zip(pairs, keys)):
            want = encrypt_frames(CipherState(k, nonce + i), frames)
            assert _recv_all(b, len(want)) == want
    finally:
        for a, b in pairs:
            a.close()
            b.close()


def test_units_are_headers_then_non_empty_payloads_and_big_payloads_stay_in_python():
    h1, h2 = b"\0\0\x71\x03\0\0", b"\0\0\x72\x05\0\0"
    assert fanout.units([(h1, b"x"), (h2, b"")]) == (h1, b"x", h2)
    assert fanout.units([(h1, b"x" * (MAX_PT_CHUNK + 1))]) is None


def test_a_full_socket_returns_the_rest_to_queue_and_the_stream_stays_whole():
    a, b = _pair()
    a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    frames = [(b"\0\0\x71\x00\xef\xff", os.urandom(MAX_PT_CHUNK)) for _ in range(8)]
    key = os.urandom(32)
    try:
        [rest] = fanout.seal_send(fanout.units(frames), [(a.fileno(), key, 7)])
        assert isinstance(rest, bytes) and rest
        want = encrypt_frames(CipherState(key, 7), frames)
        got = _recv_all(b, len(want) - len(rest))
        assert got + rest == want
    finally:
        a.close()
        b.close()


def test_a_dead_peer_is_an_errno_for_that_client_only():
    dead_a, dead_b = _pair()
    live_a, live_b = _pair()
    dead_b.close()
    frames = [(b"\0\0\x71\x00\x03\x00", b"abc")]
    key = os.urandom(32)
    try:
        res = fanout.seal_send(fanout.units(frames),
                               [(dead_a.fileno(), key, 0), (live_a.fileno(), key, 0)])
        assert res[0] in (errno.EPIPE, errno.ECONNRESET)  # and no SIGPIPE: we are alive
        assert res[1] is None
        want = encrypt_frames(CipherState(key, 0), frames)
        assert _recv_all(live_b, len(want)) == want
    finally:
        for s in (dead_a, live_a, live_b):
            s.close()


@pytest.mark.parametrize("threads", [0, 1, 2, 4])
def test_a_pass_shared_by_threads_gives_each_client_its_own_outcome_and_bytes(threads):
    """600 clients (a pass big enough for two threads): every live client gets exactly
    its own key's and nonce's bytes, a dead one its errno, a full one the rest to queue,
    each at its own position in the result whichever thread wrote to it."""
    frames = [(b"\0\0\x71\x00\x03\x00", b"abc"), (b"\0\0\x72\x00\x05\x00", b"defgh")]
    units = fanout.units(frames)
    pairs = [_pair() for _ in range(600)]
    keys = [os.urandom(32) for _ in pairs]
    dead = set(range(7, 600, 37))
    full = set(range(11, 600, 53)) - dead
    big = [(b"\0\0\x71\x00\xef\xff", os.urandom(MAX_PT_CHUNK)) for _ in range(6)]
    try:
        for i in dead:
            pairs[i][1].close()
        for i in full:  # these get a pass of big frames on a small buffer
            pairs[i][0].setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        targets = [(a.fileno(), k, 1000 * i) for i, ((a, _), k) in enumerate(zip(pairs, keys))]
        res = fanout.seal_send(units, targets, threads)
        big_res = fanout.seal_send(fanout.units(big), [
            (fd, k, nonce + len(units)) for fd, k, nonce in (targets[i] for i in sorted(full))],
            threads)
        for i, ((_a, b), k) in enumerate(zip(pairs, keys)):
            if i in dead:
                assert res[i] in (errno.EPIPE, errno.ECONNRESET), i
                continue
            assert res[i] is None, i
            want = encrypt_frames(CipherState(k, 1000 * i), frames)
            assert _recv_all(b, len(want)) == want, i
        for i, rest in zip(sorted(full), big_res):
            assert isinstance(rest, bytes) and rest, i
            want = encrypt_frames(CipherState(keys[i], 1000 * i + len(units)), big)
            assert _recv_all(pairs[i][1], len(want) - len(rest)) + rest == want, i
    finally:
        for i, (a, b) in enumerate(pairs):
            a.close()
            if i not in dead:
                b.close()


@pytest.mark.parametrize("units, targets, exc", [
    ([b"x"], [], TypeError),  # units: a tuple
    ((b"x",), (), TypeError),  # targets: a list
    (("x",), [], ValueError),  # a unit is bytes
    ((b"x" * (MAX_PT_CHUNK + 1),), [], ValueError),
    ((b"x",), [(0, b"k" * 31, 0)], TypeError),  # a 32-byte key
    ((b"x",), [(0, b"k" * 32)], TypeError),
    ((b"x",), [(-1, b"k" * 32, 0)], ValueError),
    ((b"x",), [(0, b"k" * 32, -1)], ValueError),
    ((b"x",), [(0, b"k" * 32, 2**64)], ValueError),
    ((b"x", b"y"), [(0, b"k" * 32, 2**64 - 1)], ValueError),  # the nonce would wrap
    ((b"x",) * 65, [], ValueError),  # at most 64 units a pass
])
def test_bad_arguments_are_typed_errors_and_nothing_is_sent(units, targets, exc):
    a, b = _pair()
    try:
        good = (a.fileno(), b"k" * 32, 0)
        with pytest.raises(exc):
            fanout.seal_send(units, [good] + list(targets) if isinstance(targets, list)
                             else targets)
        b.setblocking(False)
        with pytest.raises(BlockingIOError):
            b.recv(100)  # the good target before the bad one got nothing either
    finally:
        a.close()
        b.close()


def test_reserve_nonces_takes_them_and_refuses_past_the_last():
    client, server = noise_pair()
    key, first = server.reserve_nonces(3)
    assert (key, first) == (server.send_cipher.key, 0) and server.send_cipher.nonce == 3
    server.send_cipher.nonce = MAX_NONCE - 2
    with pytest.raises(NonceExhaustedError):
        server.reserve_nonces(3)
    assert server.error is not None  # the connection is failed, as send_split would


async def _working_clients(tp, n: int) -> list:
    """``n`` clients connected to ``tp``, each holding its first work."""
    clients = [await TdpClient.connect("127.0.0.1", tp.port,
                                       authority_pubkey=tp.authority_pubkey, timeout=T)
               for _ in range(n)]
    for c in clients:
        await c.wait_for(SetNewPrevHash, T)
    return clients


async def _each_gets_the_tip(clients: list, tip: bytes) -> None:
    """Every client's next future NewTemplate, then the SetNewPrevHash that activates it
    on ``tip``."""
    for c in clients:
        fut = await c.wait_for(NewTemplate, T, lambda m: m.future_template)
        snph = await c.recv(T)
        assert snph.template_id == fut.template_id and snph.prev_hash == tip


def test_a_tp_sends_its_tips_through_the_c_pass_and_clients_decode_them(tmp_path, monkeypatch):
    calls = []
    real = fanout.seal_send
    monkeypatch.setattr(fanout, "seal_send",
                        lambda u, t, n=0: calls.append(len(t)) or real(u, t, n))
    src = RegtestSource(mempool_interval=0, initial_txs=5, seed=9)
    svc = TpService(src, datadir=tmp_path, config=TpConfig(max_clients=40))
    assert svc._native_fanout
    tp = TpThread(svc).start()
    chain = src.chain

    async def main():
        clients = await _working_clients(tp, 30)
        for _ in range(3):
            tp.call(chain.generate, 1)
            await _each_gets_the_tip(clients, tp.call(lambda: chain.tip_hash))
        for c in clients:
            await c.close()

    try:
        asyncio.run(asyncio.wait_for(main(), 120))
    finally:
        tp.stop()
    assert calls and max(calls) == 30, calls  # a tip: every client in one pass


def test_a_tips_pass_takes_nonces_from_the_kept_cipher_and_fails_only_a_client_out_of_them(
        tmp_path):
    """The pass reads each client's socket and sending cipher from ``ClientProtocol.direct``
    (kept since its handshake) and takes the nonces there, as ``reserve_nonces`` does: the
    connection's own next message continues from them.  A client with fewer nonces left
    than the tip needs is failed as ``reserve_nonces`` fails it, alone; the others get
    the tip."""
    src = RegtestSource(mempool_interval=0, initial_txs=3, seed=5)
    svc = TpService(src, datadir=tmp_path, config=TpConfig(max_clients=8))
    tp = TpThread(svc).start()
    chain = src.chain

    async def main():
        clients = await _working_clients(tp, 3)
        kept = tp.call(lambda: [(c.sid, c.direct[1] is c.conn.send_cipher, c.direct[1].nonce)
                                for c in svc.clients.values()])
        assert len(kept) == 3 and all(same for _, same, _ in kept)
        doomed = kept[0][0]
        tp.call(lambda: setattr(svc.clients[doomed].direct[1], "nonce", MAX_NONCE - 3))
        tp.call(chain.generate, 1)
        await _each_gets_the_tip(clients[1:], tp.call(lambda: chain.tip_hash))
        for _ in range(100 * T):
            if doomed not in tp.call(lambda: list(svc.clients)):
                break
            await asyncio.sleep(0.01)
        else:
            pytest.fail("the client out of nonces was not dropped")
        after = tp.call(lambda: {c.sid: c.direct[1].nonce for c in svc.clients.values()})
        assert after == {sid: n + 4 for sid, _, n in kept[1:]}  # two frames, four messages
        for c in clients:
            await c.close()

    try:
        asyncio.run(asyncio.wait_for(main(), 60))
    finally:
        tp.stop()


def test_switched_off_by_the_environment(monkeypatch):
    monkeypatch.setenv("SV2FFI_NATIVE_FANOUT", "0")
    assert not fanout.enabled()
    monkeypatch.delenv("SV2FFI_NATIVE_FANOUT")
    assert fanout.enabled()


def test_a_client_with_bytes_queued_gets_its_tip_after_them_in_order(tmp_path):
    """A client that reads slowly (here: a 4 KiB receive buffer, and it does not read while
    a 3,000-transaction RequestTransactionData.Success is being sent) has bytes waiting in
    the TP's transport when the next tip comes: the tip must not overtake them (a Noise
    stream decrypts only in order), so that client takes the queued path; once it reads,
    every frame decrypts and the messages come in the order sent."""
    from sv2ffi.messages import (CoinbaseOutputConstraints, RequestTransactionData,
                                 RequestTransactionDataSuccess, SetupConnection,
                                 SetupConnectionSuccess)

    src = RegtestSource(mempool_interval=0, initial_txs=0, seed=4)
    made = 0
    while made < 3000:
        made += src.chain.add_random_transactions(3000 - made)
    svc = TpService(src, datadir=tmp_path, config=TpConfig(max_clients=4))
    tp = TpThread(svc).start()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(T)
    conn = Connection.initiator(tp.authority_pubkey)
    got = []

    def read_until(pred):
        while not pred():
            try:
                data = sock.recv(65536)
            except TimeoutError:
                pytest.fail(f"timed out after {[type(m).__name__ for m in got]}")
            assert data, f"the TP closed the connection after {[type(m).__name__ for m in got]}"
            got.extend(conn.feed(data))

    try:
        sock.connect(("127.0.0.1", tp.port))
        sock.sendall(conn.initiate())
        while not conn.is_established:
            got.extend(conn.feed(sock.recv(65536)))
        sock.sendall(conn.send(SetupConnection(protocol=2, min_version=2, max_version=2,
                                               flags=0, endpoint_host="", endpoint_port=0,
                                               vendor="t", hardware_version="", firmware="",
                                               device_id="")))
        sock.sendall(conn.send(CoinbaseOutputConstraints(
            coinbase_output_max_additional_size=100, coinbase_output_max_additional_sigops=10)))
        # the active work (a new client's is the current template, sent as a future one
        # with its SetNewPrevHash) once it carries the mempool
        read_until(lambda: any(isinstance(m, NewTemplate) and m.merkle_path for m in got))
        full = [m for m in got if isinstance(m, NewTemplate) and m.merkle_path][-1]
        # a small send buffer on the TP's side too, so the reply cannot all fit in the kernel
        tp.call(lambda: [c.transport.get_extra_info("socket").setsockopt(
            socket.SOL_SOCKET, socket.SO_SNDBUF, 4096) for c in svc.clients.values()])
        sock.sendall(conn.send(RequestTransactionData(template_id=full.template_id)))
        for _ in range(100 * T):  # until the reply sits in the TP's transport
            if tp.call(lambda: [c.transport.get_write_buffer_size()
                                for c in svc.clients.values()])[0]:
                break
            time.sleep(0.01)
        else:
            pytest.fail("the reply never backed up in the TP's transport")
        tp.call(src.chain.generate, 1)
        tip = tp.call(lambda: src.chain.tip_hash)
        read_until(lambda: any(isinstance(m, SetNewPrevHash) and m.prev_hash == tip
                               for m in got))
    finally:
        sock.close()
        tp.stop()
    kinds = [type(m).__name__ for m in got]
    i = kinds.index("RequestTransactionDataSuccess")
    assert isinstance(got[0], SetupConnectionSuccess)
    assert isinstance(got[i], RequestTransactionDataSuccess)
    assert got[i].template_id == full.template_id and len(got[i].transaction_list) == made
    assert kinds[i + 1:i + 3] == ["NewTemplate", "SetNewPrevHash"], kinds
    assert got[i + 1].future_template and got[i + 2].template_id == got[i + 1].template_id


def test_a_negative_thread_count_is_a_value_error_and_nothing_is_sent():
    a, b = _pair()
    try:
        with pytest.raises(ValueError):
            fanout.seal_send((b"x",), [(a.fileno(), b"k" * 32, 0)], -1)
        b.setblocking(False)
        with pytest.raises(BlockingIOError):
            b.recv(100)
    finally:
        a.close()
        b.close()


def test_the_thread_cap_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("SV2FFI_FANOUT_THREADS", "1")
    assert fanout.thread_limit() == 1 and "at most 1 thread " in fanout.describe()
    monkeypatch.setenv("SV2FFI_FANOUT_THREADS", "many")  # not a number: the default
    assert fanout.thread_limit() == 0
    monkeypatch.delenv("SV2FFI_FANOUT_THREADS")
    assert fanout.thread_limit() == 0

"""The sans-I/O Connection: every message through Noise and plain, the largest frame,
tampering at many positions, and every refusal the issue lists, without a socket."""

import random

import pytest

from noise_support import (AUTHORITY, OTHER_AUTHORITY, STATIC, flip, handshake, noise_pair,
                           sample_messages)
from sv2ffi import errors, noise
from sv2ffi.connection import Connection, Role, State
from sv2ffi.framing import Frame, encode_message
from sv2ffi.keys import Certificate
from sv2ffi.messages import (RequestTransactionData, RequestTransactionDataSuccess,
                             SetNewPrevHash, SetupConnectionSuccess)
from sv2ffi.schema import MAX_PAYLOAD

SAMPLES = list(sample_messages())
IDS = [i for i, _ in SAMPLES]
MSGS = [m for _, m in SAMPLES]


@pytest.fixture(scope="module")
def pair():
    return noise_pair()


@pytest.mark.parametrize("msg", MSGS, ids=IDS)
def test_every_message_round_trips_through_noise_both_ways(pair, msg):
    client, server = pair
    wire = client.send(msg)
    plain = encode_message(msg)
    assert len(wire) == 22 + noise.ciphertext_len(len(plain) - 6)
    assert server.feed(wire) == [msg]
    assert client.feed(server.send(msg)) == [msg]


@pytest.mark.parametrize("msg", MSGS, ids=IDS)
def test_every_message_round_trips_plain(msg):
    a, b = Connection.plain(), Connection.plain()
    assert a.initiate() == b""
    wire = a.send(msg)
    assert wire == encode_message(msg)
    assert b.feed(wire) == [msg]


def test_all_messages_in_one_chunk_and_byte_by_byte():
    client, server = noise_pair()
    wire = b"".join(client.send(m) for m in MSGS)
    assert server.feed(wire) == MSGS
    small = [m for m in MSGS if len(encode_message(m)) < 400]
    wire = b"".join(client.send(m) for m in small)
    got = []
    for i in range(len(wire)):
        got += server.feed(wire[i:i + 1])
    assert got == small


def test_handshake_fed_byte_by_byte_with_a_message_behind_act2():
    client = Connection.initiator(AUTHORITY.xonly)
    server = Connection.responder_from_authority(STATIC, AUTHORITY)
    for b in client.initiate():
        assert server.feed(bytes([b])) == []
    msg = SetupConnectionSuccess(2, 0)
    tail = server.take_output() + server.send(msg)  # act 2 and a frame in one TCP segment
    got = []
    for i in range(len(tail)):
        got += client.feed(tail[i:i + 1])
    assert got == [msg]


def test_largest_payload_16mib_257_chunks():
    client, server = noise_pair()
    # 8 (template_id) + 2 (empty excess_data) + 2 (count) + 3 (B0_16M length) + n = 2^24-1
    n = MAX_PAYLOAD - 15
    msg = RequestTransactionDataSuccess(7, b"", [random.Random(1).randbytes(n)])
    before = client.send_cipher.nonce
    wire = client.send(msg)
    assert client.send_cipher.nonce - before == 1 + 257
    assert len(wire) == 22 + MAX_PAYLOAD + 16 * 257
    got = []
    for i in range(0, len(wire), 1 << 20):  # arrives in 1 MiB reads
        got += server.feed(wire[i:i + (1 << 20)])
    assert got == [msg]


# ---- tampering ---------------------------------------------------------------------

BIG = RequestTransactionDataSuccess(9, b"x", [bytes(range(256)) * 400])  # 2 payload chunks


def _positions(size, count, seed):
    edges = {0, size - 1}
    return sorted(edges | set(random.Random(seed).sample(range(size), min(count, size))))


def test_big_sample_really_has_two_chunks():
    assert noise.ciphertext_len(len(encode_message(BIG)) - 6) > noise.MAX_CT_CHUNK


@pytest.mark.parametrize("pos", range(22))
def test_tampered_header_ciphertext(pos):
    client, server = noise_pair()
    wire = client.send(SetNewPrevHash(1, bytes(32), 2, 3, bytes(32)))
    with pytest.raises(errors.DecryptionError) as e:
        server.feed(flip(wire, pos))
    assert e.value.status == "SV2_ERR_DECRYPTION"
    assert server.state is State.FAILED
    with pytest.raises(errors.DecryptionError):  # stays failed
        server.feed(b"")


BIG_WIRE = 22 + noise.ciphertext_len(len(encode_message(BIG)) - 6)
# first/last byte of each chunk (incl. its MAC), plus a fixed random sample
CHUNK_EDGES = [22, 22 + 65534, 22 + 65535, BIG_WIRE - 16, BIG_WIRE - 1]


@pytest.mark.parametrize("pos", sorted(set(CHUNK_EDGES + [22 + p for p in _positions(
    BIG_WIRE - 22, 30, 3)])))
def test_tampered_payload_chunk(pos):
    client, server = noise_pair()
    wire = client.send(BIG)
    assert len(wire) == BIG_WIRE
    with pytest.raises(errors.DecryptionError):
        server.feed(flip(wire, pos))


@pytest.mark.parametrize("pos", _positions(noise.ACT2_SIZE, 40, 2))
def test_tampered_act2_through_the_connection(pos):
    client = Connection.initiator(AUTHORITY.xonly)
    server = Connection.responder_from_authority(STATIC, AUTHORITY)
    server.feed(client.initiate())
    with pytest.raises(errors.HandshakeDecryptionError):
        client.feed(flip(server.take_output(), pos))
    assert client.state is State.FAILED
    with pytest.raises(errors.HandshakeDecryptionError):  # the same error, again
        client.send(SetupConnectionSuccess(2, 0))


def test_messages_before_garbage_are_delivered_then_the_error():
    client, server = noise_pair()
    good = client.send(RequestTransactionData(1)) + client.send(RequestTransactionData(2))
    bad = flip(client.send(RequestTransactionData(3)), 3)
    assert server.feed(good + bad) == [RequestTransactionData(1), RequestTransactionData(2)]
    assert isinstance(server.error, errors.DecryptionError)
    assert server.state is State.FAILED
    with pytest.raises(errors.DecryptionError):
        server.feed(b"")


def test_garbage_instead_of_act1():
    """A plain SV2 client talking to a Noise server: the first 64 bytes are taken as act
    1 (BIP324 decodes anything), the rest fails as the first encrypted header."""
    server = Connection.responder_from_authority(STATIC, AUTHORITY)
    plain = encode_message(SetupConnectionSuccess(2, 0)) * 8
    with pytest.raises(errors.DecryptionError):
        server.feed(plain)
    assert len(server.take_output()) == noise.ACT2_SIZE  # it did answer act 1


def test_certificate_from_another_authority():
    with pytest.raises(errors.CertificateWrongSignerError):
        noise_pair(expect=OTHER_AUTHORITY)


def _responder_with(cert):
    return Connection.responder(STATIC, cert)


@pytest.mark.parametrize("valid_from,not_valid_after,error", [
    (-100, -11, errors.CertificateExpiredError), (-100, -10, None),
    (11, 100, errors.CertificateNotYetValidError), (10, 100, None)])
def test_certificate_times_with_leeway(valid_from, not_valid_after, error):
    now = 1_800_000_000
    cert = Certificate.issue(AUTHORITY, STATIC.xonly, now + valid_from, now + not_valid_after)
    client = Connection.initiator(AUTHORITY.xonly, clock=lambda: now)
    server = _responder_with(cert)
    server.feed(client.initiate())
    if error is None:
        client.feed(server.take_output())
        assert client.is_established and client.certificate == cert
    else:
        with pytest.raises(error):
            client.feed(server.take_output())


def test_application_message_before_handshake_is_refused():
    msg = RequestTransactionData(1)
    client = Connection.initiator(AUTHORITY.xonly)
    with pytest.raises(errors.NotEstablishedError):
        client.send(msg)
    with pytest.raises(errors.NotEstablishedError):  # nothing may arrive before act 1
        Connection.initiator(AUTHORITY.xonly).feed(b"\0")
    act1 = client.initiate()
    with pytest.raises(errors.NotEstablishedError):
        client.send(msg)
    server = Connection.responder_from_authority(STATIC, AUTHORITY)
    with pytest.raises(errors.NotEstablishedError):
        server.send(msg)
    server.feed(act1)
    client.feed(server.take_output())
    assert server.feed(client.send(msg)) == [msg]
    assert errors.NotEstablishedError.status == "SV2_ERR_HANDSHAKE"


def test_initiate_twice():
    client = Connection.initiator(None)
    client.initiate()
    with pytest.raises(errors.HandshakeError):
        client.initiate()


@pytest.mark.parametrize("make", ["noise", "plain"])
def test_frame_too_large(make):
    if make == "noise":
        client = Connection.initiator(AUTHORITY.xonly)
        server = Connection.responder_from_authority(STATIC, AUTHORITY, max_payload=1000)
        handshake(client, server)
    else:
        client, server = Connection.plain(), Connection.plain(max_payload=1000)
    # payload = 8 (template_id) + 2 + len(excess_data) + 2 (empty list)
    ok = RequestTransactionDataSuccess(1, bytes(1000 - 12), [])
    assert server.feed(client.send(ok)) == [ok]
    too_big = RequestTransactionDataSuccess(1, bytes(1001 - 12), [])
    wire = client.send(too_big)
    with pytest.raises(errors.FrameTooLargeError) as e:
        server.feed(wire[:22])  # refused on the header alone, before any payload
    assert e.value.length == 1001 and e.value.status == "SV2_ERR_PAYLOAD_TOO_BIG"


def test_nonce_exhaustion_through_the_connection():
    client, server = noise_pair()
    msg = RequestTransactionData(5)
    client.send_cipher.nonce = server.recv_cipher.nonce = noise.MAX_NONCE - 2
    assert server.feed(client.send(msg)) == [msg]  # nonces 2^64-3 and 2^64-2
    with pytest.raises(errors.NonceExhaustedError):
        client.send(msg)
    assert client.state is State.FAILED
    server.recv_cipher.nonce = noise.MAX_NONCE
    with pytest.raises(errors.NonceExhaustedError):
        server.feed(bytes(22))


def test_unknown_messages_and_extensions_are_skipped():
    client, server = noise_pair()
    wire = (client.send_frame(Frame(0, 0x7F, b"\1\2\3"))
            + client.send_frame(Frame(0x0002, 0x00, b"ext"))
            + client.send(RequestTransactionData(4)))
    assert server.feed(wire) == [RequestTransactionData(4)]
    assert server.unknown_messages == 2
    assert server.is_established


def test_decode_error_fails_the_connection():
    client, server = noise_pair()
    with pytest.raises(errors.TruncatedError):
        server.feed(client.send_frame(Frame(0, 0x73, b"\1\2")))  # RequestTransactionData: 8 B
    assert server.state is State.FAILED


def test_encode_error_does_not_fail_the_connection():
    client, server = noise_pair()
    with pytest.raises(errors.EncodeError):
        client.send(RequestTransactionData(-1))
    assert server.feed(client.send(RequestTransactionData(1))) == [RequestTransactionData(1)]


def test_roles_states_and_authority_text():
    from sv2ffi.keys import encode_authority_pubkey
    client = Connection.initiator(encode_authority_pubkey(AUTHORITY.xonly))
    server = Connection.responder_from_authority(STATIC, AUTHORITY, clock=lambda: 1_000_000)
    assert (client.role, server.role) == (Role.INITIATOR, Role.RESPONDER)
    assert (client.state, server.state) == (State.START, State.WAIT_ACT1)
    assert server.certificate.valid_from == 1_000_000 - 3600  # as sv2-tp: an hour early
    assert server.certificate.not_valid_after == 1_000_000 + 3600
    assert Connection.plain().is_established and not Connection.plain().is_noise
    with pytest.raises(errors.KeyChecksumError):
        Connection.initiator("9bDuixKmZqAJnrmP746n8zU1wyAQRrus7th9dxnkPg6RzQvCnam")


# ---- property: any messages, any segmentation ----------------------------------------

from hypothesis import given, settings, strategies as st  # noqa: E402

from strategies import any_message  # noqa: E402


@settings(max_examples=60, deadline=None)
@given(st.lists(any_message(), min_size=1, max_size=6), st.randoms(use_true_random=False))
def test_any_messages_any_segmentation(msgs, rnd):
    client, server = noise_pair()
    wire = b"".join(client.send(m) for m in msgs)
    back = b"".join(server.send(m) for m in msgs)
    for conn, data in ((server, wire), (client, back)):
        got, i = [], 0
        while i < len(data):
            n = rnd.randint(1, 200)
            got += conn.feed(data[i:i + n])
            i += n
        assert got == msgs

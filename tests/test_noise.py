"""Noise building blocks: cipher states and nonces, transport chunking, act 2 tampering
at every byte, and the handshake state machines without a socket."""

import random

import pytest
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from noise_support import AUTHORITY, OTHER_AUTHORITY, STATIC, flip
from sv2ffi import errors, noise
from sv2ffi.framing import Frame
from sv2ffi.keys import Certificate, EllSwiftKey
from sv2ffi.schema import MAX_PAYLOAD


def test_sizes():
    assert noise.ACT1_SIZE == 64
    assert noise.ACT2_SIZE == 234
    assert noise.HEADER_CT_SIZE == 22
    assert noise.MAX_PT_CHUNK == 65519


@pytest.mark.parametrize("length,expected", [
    (0, 0), (1, 17), (65519, 65535), (65520, 65520 + 32), (MAX_PAYLOAD, MAX_PAYLOAD + 16 * 257)])
def test_ciphertext_len(length, expected):
    assert noise.ciphertext_len(length) == expected


def test_cipher_nonce_layout_matches_raw_chacha():
    key = bytes(range(32))
    cs = noise.CipherState(key, nonce=0x0102030405060708)
    ct = cs.encrypt(b"abc", b"ad")
    raw = ChaCha20Poly1305(key).encrypt(bytes(4) + (0x0102030405060708).to_bytes(8, "little"),
                                        b"abc", b"ad")
    assert ct == raw
    assert cs.nonce == 0x0102030405060709


def test_failed_decrypt_does_not_advance_the_nonce():
    key = bytes(32)
    ct = noise.CipherState(key).encrypt(b"hello")
    rx = noise.CipherState(key)
    with pytest.raises(errors.DecryptionError):
        rx.decrypt(flip(ct, 0))
    assert rx.nonce == 0
    assert rx.decrypt(ct) == b"hello"


def test_nonce_exhaustion_refused_on_both_sides():
    key = bytes(32)
    tx = noise.CipherState(key, nonce=noise.MAX_NONCE - 1)
    ct = tx.encrypt(b"last")  # nonce 2^64-2 is the last usable one
    with pytest.raises(errors.NonceExhaustedError):
        tx.encrypt(b"one more")
    rx = noise.CipherState(key, nonce=noise.MAX_NONCE - 1)
    assert rx.decrypt(ct) == b"last"
    with pytest.raises(errors.NonceExhaustedError):
        rx.decrypt(ct)
    assert errors.NonceExhaustedError.status == "SV2_ERR_CLOSED"


def test_frame_that_would_cross_the_reserved_nonce_is_refused_whole():
    cs = noise.CipherState(bytes(32), nonce=noise.MAX_NONCE - 2)
    with pytest.raises(errors.NonceExhaustedError):  # header + 2 chunks need 3 nonces
        noise.encrypt_frame(cs, bytes(6), bytes(noise.MAX_PT_CHUNK + 1))
    assert cs.nonce == noise.MAX_NONCE - 2  # nothing was consumed
    noise.encrypt_frame(cs, bytes(6), b"x")  # 2 nonces still fit



def test_frames_sealed_together_are_the_bytes_of_sealing_each():
    """The fan-out path (``encrypt_frames``: one call per client for a tip's template and
    SetNewPrevHash) must put on the wire exactly what one ``encrypt_frame`` per frame
    would, large payloads and empty ones included."""
    rnd = random.Random(7)
    frames = [(rnd.randbytes(6), rnd.randbytes(n)) for n in (80, 0, 3, 65519, 65520, 200000)]
    one, each = noise.CipherState(bytes(range(32)), 5), noise.CipherState(bytes(range(32)), 5)
    assert noise.encrypt_frames(one, frames) == b"".join(
        noise.encrypt_frame(each, h, p) for h, p in frames)
    assert one.nonce == each.nonce


def test_frames_that_would_cross_the_reserved_nonce_are_refused_whole():
    cs = noise.CipherState(bytes(32), nonce=noise.MAX_NONCE - 3)
    with pytest.raises(errors.NonceExhaustedError):  # 2 + 2 nonces, 3 left
        noise.encrypt_frames(cs, [(bytes(6), b"a"), (bytes(6), b"b")])
    assert cs.nonce == noise.MAX_NONCE - 3
    noise.encrypt_frames(cs, [(bytes(6), b"a"), (bytes(6), b"")])  # 3 nonces fit

def transport(max_payload=MAX_PAYLOAD):
    key = bytes(range(32))
    return (noise.FrameEncryptor(noise.CipherState(key)),
            noise.FrameDecryptor(noise.CipherState(key), max_payload))


@pytest.mark.parametrize("length", [0, 1, 80, 65519, 65520, 3 * 65519 + 5])
def test_chunking_and_byte_at_a_time_reassembly(length):
    enc, dec = transport()
    payload = random.Random(length).randbytes(length)
    frame = Frame(0, 0x71, payload)
    wire = enc.encrypt(frame)
    assert len(wire) == 22 + noise.ciphertext_len(length)
    assert enc.cipher.nonce == 1 + -(-length // 65519)
    step = 1 if length < 200 else 4099
    out = []
    for i in range(0, len(wire), step):
        dec.feed(wire[i:i + step])
        while (f := dec.next_frame()) is not None:
            out.append(f)
    assert out == [frame]
    assert dec.buffered == 0


def test_largest_frame_is_257_chunks():
    enc, dec = transport()
    frame = Frame(0, 0x74, bytes(MAX_PAYLOAD))
    wire = enc.encrypt(frame)
    assert enc.cipher.nonce == 258  # header + 257 payload chunks
    assert len(wire) == 22 + MAX_PAYLOAD + 16 * 257
    dec.feed(wire)
    assert dec.next_frame() == frame


def test_too_large_frame_refused_after_the_header_alone():
    enc, dec = transport(max_payload=1000)
    wire = enc.encrypt(Frame(0, 0x74, bytes(1001)))
    dec.feed(wire[:22])
    with pytest.raises(errors.FrameTooLargeError) as e:
        dec.next_frame()
    assert e.value.status == "SV2_ERR_PAYLOAD_TOO_BIG"


# ---- handshake state machines -------------------------------------------------------


def handshake_objects(authority_for_client=AUTHORITY, now=1_700_000_000, **cert_kw):
    cert = Certificate.issue(AUTHORITY, STATIC.xonly, cert_kw.get("valid_from", now - 60),
                             cert_kw.get("not_valid_after", now + 3600))
    seed = random.Random(now)
    rng = seed.randbytes
    ini = noise.InitiatorHandshake(authority_for_client.xonly, rng=rng, clock=lambda: now)
    res = noise.ResponderHandshake(EllSwiftKey.for_keypair(STATIC, rng), cert, rng=rng)
    return ini, res


def test_injected_rng_makes_handshakes_reproducible():
    a1, r1 = handshake_objects()
    a2, r2 = handshake_objects()
    assert a1.act1() == a2.act1()
    assert r1.read_act1(a1.ephemeral.encoding)[0] == r2.read_act1(a2.ephemeral.encoding)[0]


def test_both_sides_derive_the_same_transport_keys():
    ini, res = handshake_objects()
    act2, r_send, r_recv = res.read_act1(ini.act1())
    i_send, i_recv = ini.read_act2(act2)
    assert r_recv.decrypt(i_send.encrypt(b"up")) == b"up"
    assert i_recv.decrypt(r_send.encrypt(b"down")) == b"down"
    assert ini.remote_static_xonly == STATIC.xonly


@pytest.mark.parametrize("pos", range(noise.ACT2_SIZE))
def test_every_byte_of_act2_is_authenticated(pos):
    ini, res = handshake_objects()
    act2, _, _ = res.read_act1(ini.act1())
    with pytest.raises(errors.HandshakeDecryptionError) as e:
        ini.read_act2(flip(act2, pos))
    assert isinstance(e.value, errors.DecryptionError)
    assert isinstance(e.value, errors.HandshakeError)
    assert e.value.status == "SV2_ERR_HANDSHAKE"


def test_certificate_from_another_authority_is_rejected():
    ini, res = handshake_objects(authority_for_client=OTHER_AUTHORITY)
    act2, _, _ = res.read_act1(ini.act1())
    with pytest.raises(errors.CertificateWrongSignerError) as e:
        ini.read_act2(act2)
    assert e.value.status == "SV2_ERR_HANDSHAKE"


def test_no_authority_key_accepts_any_signer():
    cert = Certificate.issue(OTHER_AUTHORITY, STATIC.xonly, 0, 0xFFFFFFFF)
    ini = noise.InitiatorHandshake(None)
    res = noise.ResponderHandshake(EllSwiftKey.for_keypair(STATIC), cert)
    act2, _, _ = res.read_act1(ini.act1())
    ini.read_act2(act2)
    assert ini.certificate == cert


def test_garbage_act1_still_gets_an_act2():
    """BIP324 decodes every 64-byte string, so garbage is only caught at the first frame."""
    _, res = handshake_objects()
    act2, _, recv = res.read_act1(bytes(range(64)))
    assert len(act2) == 234
    with pytest.raises(errors.DecryptionError):
        recv.decrypt(bytes(22))


def test_wrong_act_lengths():
    ini, res = handshake_objects()
    with pytest.raises(errors.HandshakeError):
        res.read_act1(bytes(63))
    ini.act1()
    with pytest.raises(errors.HandshakeError):
        ini.read_act2(bytes(233))


def test_invalid_authority_key_refused_up_front():
    with pytest.raises(errors.InvalidKeyError):
        noise.InitiatorHandshake(bytes(32))  # x = 0 is not on the curve

"""Noise_NX_Secp256k1+EllSwift_ChaChaPoly_SHA256, as SV2 uses it (sv2-digest section 5).

Sans-I/O: the handshake objects turn whole acts into replies and cipher states, the
transport objects turn frames into wire bytes and back.  They never read a socket; the
caller (``sv2ffi.connection``) buffers bytes and hands over complete pieces.

Primitives come from libraries: ChaCha20-Poly1305, SHA-256 and HMAC from
``cryptography``/``hashlib``/``hmac``, ElligatorSwift ECDH and BIP340 from libsecp256k1
(``sv2ffi.keys``).  What is left here is the Noise bookkeeping: the chaining key ``ck``,
the handshake hash ``h``, nonces, and SV2's chunked transport framing.

Roles: the initiator (client) sends act 1 = its ephemeral key; the responder (server)
answers act 2 = ephemeral key, encrypted static key, encrypted certificate.  BIP324's
ECDH names the initiator party A on both sides.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import time
from typing import Callable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from . import errors
from .framing import Frame, decode_header, encode_header
from .keys import Certificate, EllSwiftKey, Keypair, ellswift_decode_x, ellswift_ecdh, xonly_key
from .schema import FRAME_HEADER_SIZE, MAX_PAYLOAD

PROTOCOL_NAME = b"Noise_NX_Secp256k1+EllSwift_ChaChaPoly_SHA256"
MAC_SIZE = 16
ELLSWIFT_SIZE = 64
ACT1_SIZE = ELLSWIFT_SIZE  # -> e
ACT2_SIZE = ELLSWIFT_SIZE + (ELLSWIFT_SIZE + MAC_SIZE) + (Certificate.SIZE + MAC_SIZE)  # 234
HEADER_CT_SIZE = FRAME_HEADER_SIZE + MAC_SIZE  # 22
MAX_CT_CHUNK = 65535
MAX_PT_CHUNK = MAX_CT_CHUNK - MAC_SIZE  # 65519
#: Noise reserves 2^64-1; a cipher state that would need it is used up.
MAX_NONCE = (1 << 64) - 1

Rng = Callable[[int], bytes]
Clock = Callable[[], float]


def ciphertext_len(payload_len: int) -> int:
    """Encrypted payload bytes for a plaintext payload (0 for an empty payload)."""
    chunks = -(-payload_len // MAX_PT_CHUNK)
    return payload_len + MAC_SIZE * chunks


def hkdf2(ck: bytes, ikm: bytes) -> tuple[bytes, bytes]:
    """Noise's HKDF with two outputs, HMAC-SHA256."""
    t = hmac.digest(ck, ikm, "sha256")
    o1 = hmac.digest(t, b"\x01", "sha256")
    return o1, hmac.digest(t, o1 + b"\x02", "sha256")


class CipherState:
    """One key and its counting nonce; refuses the reserved nonce 2^64-1."""

    __slots__ = ("_aead", "key", "nonce")

    def __init__(self, key: bytes, nonce: int = 0):
        self._aead = ChaCha20Poly1305(key)
        self.key = bytes(key)  # for sv2ffi.fanout, which seals many clients' frames in C
        self.nonce = nonce

    def _next_nonce(self) -> bytes:
        n = self.nonce
        if n >= MAX_NONCE:
            raise errors.NonceExhaustedError(
                "nonce 2^64-1 reached: this Noise session is used up (SV2 has no rekey)")
        return b"\0\0\0\0" + n.to_bytes(8, "little")

    def encrypt(self, plaintext, ad: bytes | None = None) -> bytes:
        out = self._aead.encrypt(self._next_nonce(), plaintext, ad)
        self.nonce += 1
        return out

    def decrypt(self, ciphertext, ad: bytes | None = None) -> bytes:
        try:
            out = self._aead.decrypt(self._next_nonce(), ciphertext, ad)
        except InvalidTag:
            raise errors.DecryptionError(f"bad MAC at nonce {self.nonce}") from None
        self.nonce += 1  # not advanced on failure, as in both reference implementations
        return out

    def decrypt_into(self, ciphertext, out) -> None:
        """Decrypt straight into a slice of a preallocated buffer (large payloads)."""
        try:
            self._aead.decrypt_into(self._next_nonce(), ciphertext, None, out)
        except InvalidTag:
            raise errors.DecryptionError(f"bad MAC at nonce {self.nonce}") from None
        self.nonce += 1


class SymmetricState:
    """Noise's ck / h / k bookkeeping during the handshake."""

    __slots__ = ("ck", "h", "cipher")

    def __init__(self):
        h = hashlib.sha256(PROTOCOL_NAME).digest()  # name longer than 32 bytes: hash it
        self.ck = h
        self.h = hashlib.sha256(h).digest()  # MixHash(empty prologue)
        self.cipher: CipherState | None = None

    def mix_hash(self, data: bytes) -> None:
        self.h = hashlib.sha256(self.h + data).digest()

    def mix_key(self, ikm: bytes) -> None:
        self.ck, k = hkdf2(self.ck, ikm)
        self.cipher = CipherState(k)

    def encrypt_and_hash(self, plaintext: bytes) -> bytes:
        c = plaintext if self.cipher is None else self.cipher.encrypt(plaintext, self.h)
        self.mix_hash(c)
        return c

    def decrypt_and_hash(self, ciphertext: bytes) -> bytes:
        if self.cipher is None:
            p = ciphertext
        else:
            try:
                p = self.cipher.decrypt(ciphertext, self.h)
            except errors.DecryptionError as e:
                raise errors.HandshakeDecryptionError(f"act 2: {e}") from None
        self.mix_hash(ciphertext)
        return p

    def split(self) -> tuple[bytes, bytes]:
        """(initiator->responder key, responder->initiator key)."""
        return hkdf2(self.ck, b"")


class Trace(dict):
    """Intermediate handshake values by name (filled only when asked for: vectors)."""


class InitiatorHandshake:
    """Client side: produce act 1, consume act 2, verify the certificate."""

    def __init__(self, authority_xonly: bytes | None, *, ephemeral: EllSwiftKey | None = None,
                 rng: Rng | None = None, clock: Clock | None = None, leeway: float = 10,
                 trace: Trace | None = None):
        if authority_xonly is not None:
            xonly_key(authority_xonly)  # refuse a key that cannot verify anything, now
        self.authority_xonly = authority_xonly
        self.ephemeral = ephemeral or EllSwiftKey.generate(rng)
        self.clock = clock or time.time
        self.leeway = leeway
        self.trace = trace
        self.state = SymmetricState()
        self.remote_static_xonly: bytes | None = None
        self.certificate: Certificate | None = None

    def _t(self, name: str, value: bytes) -> None:
        if self.trace is not None:
            self.trace[name] = value

    def act1(self) -> bytes:
        st = self.state
        e = self.ephemeral.encoding
        st.mix_hash(e)
        self._t("h_after_e", st.h)
        st.encrypt_and_hash(b"")  # empty payload, no key yet: h = SHA256(h)
        self._t("h_after_act1", st.h)
        return e

    def read_act2(self, act2: bytes) -> tuple[CipherState, CipherState]:
        """(send, receive) cipher states, after the certificate checked out."""
        if len(act2) != ACT2_SIZE:
            raise errors.HandshakeError(f"act 2 is {ACT2_SIZE} bytes, got {len(act2)}")
        st = self.state
        e_r = bytes(act2[:64])
        my_e = self.ephemeral
        st.mix_hash(e_r)
        st.mix_key(ellswift_ecdh(my_e.encoding, e_r, my_e.keypair.secret, True))
        s_r = st.decrypt_and_hash(bytes(act2[64:144]))
        st.mix_key(ellswift_ecdh(my_e.encoding, s_r, my_e.keypair.secret, True))
        cert = Certificate.from_bytes(st.decrypt_and_hash(bytes(act2[144:234])))
        static_x = ellswift_decode_x(s_r)
        cert.verify(self.authority_xonly, static_x, self.clock(), self.leeway)
        self.remote_static_xonly = static_x
        self.certificate = cert
        k1, k2 = st.split()
        self._t("k1", k1)
        self._t("k2", k2)
        return CipherState(k1), CipherState(k2)


class ResponderHandshake:
    """Server side: consume act 1, produce act 2; transport mode right after."""

    def __init__(self, static_key: EllSwiftKey, certificate: Certificate, *,
                 ephemeral: EllSwiftKey | None = None, rng: Rng | None = None,
                 trace: Trace | None = None):
        self.static = static_key
        self.certificate = certificate
        self.ephemeral = ephemeral or EllSwiftKey.generate(rng)
        self.trace = trace
        self.state = SymmetricState()

    def _t(self, name: str, value: bytes) -> None:
        if self.trace is not None:
            self.trace[name] = value

    def read_act1(self, act1: bytes) -> tuple[bytes, CipherState, CipherState]:
        """(act 2, send cipher state, receive cipher state)."""
        if len(act1) != ACT1_SIZE:
            raise errors.HandshakeError(f"act 1 is {ACT1_SIZE} bytes, got {len(act1)}")
        st = self.state
        e_i = bytes(act1)
        # Every 64-byte string is a valid encoding (BIP324), so garbage gets this far;
        # it fails later, when the peer cannot produce a valid first transport frame.
        st.mix_hash(e_i)
        st.decrypt_and_hash(b"")
        e_r = self.ephemeral
        st.mix_hash(e_r.encoding)
        self._t("h_after_er", st.h)
        ee = ellswift_ecdh(e_i, e_r.encoding, e_r.keypair.secret, False)
        st.mix_key(ee)
        self._t("ee", ee)
        self._t("ck_after_ee", st.ck)
        c_s = st.encrypt_and_hash(self.static.encoding)
        self._t("c_s", c_s)
        self._t("h_after_c_s", st.h)
        es = ellswift_ecdh(e_i, self.static.encoding, self.static.keypair.secret, False)
        st.mix_key(es)
        self._t("es", es)
        self._t("ck_after_es", st.ck)
        c_cert = st.encrypt_and_hash(self.certificate.to_bytes())
        self._t("c_cert", c_cert)
        self._t("h_final", st.h)
        k1, k2 = st.split()
        self._t("k1", k1)
        self._t("k2", k2)
        return e_r.encoding + c_s + c_cert, CipherState(k2), CipherState(k1)


# ---- transport -----------------------------------------------------------------------


def encrypt_frame(cipher: CipherState, header: bytes, payload: bytes) -> bytes:
    """22-byte encrypted header, then the payload in <= 65,535-byte encrypted chunks."""
    if cipher.nonce + 1 + -(-len(payload) // MAX_PT_CHUNK) > MAX_NONCE:
        # refuse up front: half a frame on the wire would desynchronise the peer
        raise errors.NonceExhaustedError(
            "not enough nonces left before 2^64-1 for this frame (SV2 has no rekey)")
    if len(payload) <= MAX_PT_CHUNK:
        # common case: one frame is at most two AEAD messages
        if not payload:
            return cipher.encrypt(header)
        return cipher.encrypt(header) + cipher.encrypt(payload)
    chunks = [cipher.encrypt(header)]
    view = memoryview(payload)
    for off in range(0, len(payload), MAX_PT_CHUNK):
        chunks.append(cipher.encrypt(view[off:off + MAX_PT_CHUNK]))
    return b"".join(chunks)


def encrypt_frames(cipher: CipherState, frames) -> bytes:
    """Encoded frames, each split as (6-byte header, payload), sealed back to back: what a
    server writes to one client in one go (a new tip's template and SetNewPrevHash).
    Fans out to many clients, so the nonce budget is checked once for all of them and the
    AEAD is called directly; a payload above one chunk takes ``encrypt_frame``'s path."""
    n = cipher.nonce
    need = 0
    for _header, payload in frames:
        need += 1 + -(-len(payload) // MAX_PT_CHUNK)
    if n + need > MAX_NONCE:
        raise errors.NonceExhaustedError(
            "not enough nonces left before 2^64-1 for these frames (SV2 has no rekey)")
    seal = cipher._aead.encrypt
    out = []
    for header, payload in frames:
        if len(payload) > MAX_PT_CHUNK:
            cipher.nonce = n
            out.append(encrypt_frame(cipher, header, payload))
            n = cipher.nonce
            continue
        out.append(seal(b"\0\0\0\0" + n.to_bytes(8, "little"), header, None))
        n += 1
        if payload:
            out.append(seal(b"\0\0\0\0" + n.to_bytes(8, "little"), payload, None))
            n += 1
    cipher.nonce = n
    return b"".join(out)


class FrameEncryptor:
    """Frames to wire bytes for one direction of an established session."""

    def __init__(self, cipher: CipherState):
        self.cipher = cipher

    def encrypt(self, frame: Frame) -> bytes:
        return encrypt_frame(self.cipher, frame.header(), frame.payload)

    def encrypt_raw(self, frame_bytes: bytes) -> bytes:
        """A plaintext frame (header + payload) as ``framing.encode_message`` makes it."""
        return encrypt_frame(self.cipher, frame_bytes[:FRAME_HEADER_SIZE],
                             frame_bytes[FRAME_HEADER_SIZE:])


class FrameDecryptor:
    """Wire bytes to frames for one direction; the encrypted twin of FrameDecoder.

    Chunks are decrypted as soon as each is complete, into a buffer sized from the
    header, so a 16 MiB frame never sits in memory twice.  The announced length is
    checked against ``max_payload`` before any of the payload is buffered.
    """

    def __init__(self, cipher: CipherState, max_payload: int = MAX_PAYLOAD):
        if not 0 <= max_payload <= MAX_PAYLOAD:
            raise ValueError(f"max_payload must be in 0..{MAX_PAYLOAD}")
        self.cipher = cipher
        self.max_payload = max_payload
        self._buf = bytearray()
        self._pos = 0
        self._header: tuple[int, bool, int, int] | None = None
        self._payload: bytearray | None = None
        self._filled = 0

    @property
    def buffered(self) -> int:
        """Bytes of an unfinished frame (received but not returned yet)."""
        return len(self._buf) - self._pos + (self._filled if self._header else 0)

    def feed(self, data: bytes) -> None:
        if self._pos and self._pos * 2 >= len(self._buf):
            del self._buf[:self._pos]
            self._pos = 0
        self._buf += data

    def next_frame(self) -> Frame | None:
        buf = self._buf
        if self._header is None:
            if len(buf) - self._pos < HEADER_CT_SIZE:
                return None
            p = self._pos
            plain = self.cipher.decrypt(bytes(buf[p:p + HEADER_CT_SIZE]))
            self._pos = p + HEADER_CT_SIZE
            ext, channel, msg_type, length = decode_header(plain)
            if length > self.max_payload:
                raise errors.FrameTooLargeError(length, self.max_payload)
            self._header = (ext, channel, msg_type, length)
            self._payload = bytearray(length)
            self._filled = 0
        ext, channel, msg_type, length = self._header
        payload = self._payload
        while self._filled < length:
            want = min(MAX_PT_CHUNK, length - self._filled)
            ct_size = want + MAC_SIZE
            p = self._pos
            if len(buf) - p < ct_size:
                return None
            with memoryview(buf) as view, memoryview(payload) as out:
                self.cipher.decrypt_into(view[p:p + ct_size], out[self._filled:self._filled + want])
            self._pos = p + ct_size
            self._filled += want
        self._header = None
        self._payload = None
        return Frame(ext, msg_type, bytes(payload), channel)


def responder_static(static_key: Keypair | EllSwiftKey, rng: Rng | None = None) -> EllSwiftKey:
    """A static key with an encoding: pinned if given as EllSwiftKey, else fresh."""
    if isinstance(static_key, EllSwiftKey):
        return static_key
    return EllSwiftKey.for_keypair(static_key, rng or os.urandom)

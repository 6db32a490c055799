"""One SV2 connection as a sans-I/O state machine: plain or Noise, initiator or responder.

The owner of the socket (asyncio adapter, C ABI, a test) moves bytes; this object
decides what they mean:

    conn = Connection.initiator(authority_pubkey)
    sock.send(conn.initiate())                  # act 1
    msgs = conn.feed(sock.recv(...))            # act 2 is consumed, messages come out
    sock.send(conn.send(SetupConnection(...)))  # encrypted frame(s)
    sock.send(conn.take_output())               # anything queued by feed() (act 2)

States (``conn.state``)::

    initiator:  START --initiate()--> WAIT_ACT2 --act 2--> ESTABLISHED
    responder:  WAIT_ACT1 --act 1 (act 2 queued)--> ESTABLISHED
    plain:      ESTABLISHED
    any failure ------------------------------------> FAILED (the error is kept)

Every failure is a typed ``sv2ffi.errors`` error and leaves the connection FAILED;
later calls raise the same error again.  If bytes fed in one call hold whole messages
*and then* something bad, feed() returns those messages and the error is raised by
the next call (``conn.error`` already holds it), so a valid message that arrived just
before garbage is not lost.
"""

from __future__ import annotations

import enum
import time

from . import errors
from .framing import Frame, FrameDecoder, decode_frame, encode_message, is_known_extension
from .keys import Certificate, EllSwiftKey, Keypair, decode_authority_pubkey
from .messages import Message
from .noise import (ACT1_SIZE, ACT2_SIZE, MAX_NONCE, Clock, FrameDecryptor, FrameEncryptor,
                    InitiatorHandshake, ResponderHandshake, Rng, Trace, encrypt_frames,
                    responder_static)
from .schema import MAX_PAYLOAD

#: Certificates made by ``responder_from_authority`` start this long before "now", so
#: clients whose clock lags (sv2-tp's initiator checks ``valid_from <= now`` without
#: leeway) still accept them; sv2-tp backdates its own certificate by the same hour
#: (src/sv2/template_provider.cpp).
CERT_BACKDATE = 3600


class State(enum.Enum):
    START = "start"
    WAIT_ACT1 = "wait-act1"
    WAIT_ACT2 = "wait-act2"
    ESTABLISHED = "established"
    FAILED = "failed"


#: a module constant for the per-message checks: an enum member looked up through its
#: class is an attribute lookup on the enum's metaclass (about 0.1 us, per client at a tip)
_ESTABLISHED = State.ESTABLISHED


class Role(enum.Enum):
    PLAIN = "plain"
    INITIATOR = "initiator"
    RESPONDER = "responder"


class Connection:
    """Use the constructors ``plain``, ``initiator``, ``responder``."""

    def __init__(self, role: Role, handshake, max_payload: int):
        if not 0 <= max_payload <= MAX_PAYLOAD:
            raise ValueError(f"max_payload must be in 0..{MAX_PAYLOAD}")
        self.role = role
        self.max_payload = max_payload
        self._handshake = handshake
        self._hs_buf = bytearray()
        self._out = bytearray()
        self._encryptor: FrameEncryptor | None = None
        self._decoder = None
        #: frames skipped: unknown msg_type, or an extension we do not speak
        self.unknown_messages = 0
        #: every frame read, skipped ones included (a server's rate limit counts them all)
        self.frames_received = 0
        #: True: feed() returns the Frames (of extensions the schema has) undecoded, for a
        #: caller with a codec of its own (libsv2 decodes them with its C codec)
        self.frames_only = False
        #: the error that failed the connection, if any
        self.error: errors.Sv2Error | None = None
        if role is Role.PLAIN:
            self.state = State.ESTABLISHED
            self._decoder = FrameDecoder(max_payload)
        elif role is Role.INITIATOR:
            self.state = State.START
        else:
            self.state = State.WAIT_ACT1

    # ---- constructors ----------------------------------------------------------------

    @classmethod
    def plain(cls, max_payload: int = MAX_PAYLOAD) -> "Connection":
        """No encryption (the spec allows it on a local network)."""
        return cls(Role.PLAIN, None, max_payload)

    @classmethod
    def initiator(cls, authority_pubkey: bytes | str | None, *, rng: Rng | None = None,
                  clock: Clock | None = None, max_payload: int = MAX_PAYLOAD,
                  leeway: float = 10, ephemeral: EllSwiftKey | None = None,
                  trace: Trace | None = None) -> "Connection":
        """Client side.  ``authority_pubkey``: 32-byte x-only key or its base58check text;
        None accepts any certificate signature (version and validity are still checked).
        """
        if isinstance(authority_pubkey, str):
            authority_pubkey = decode_authority_pubkey(authority_pubkey)
        hs = InitiatorHandshake(authority_pubkey, ephemeral=ephemeral, rng=rng, clock=clock,
                                leeway=leeway, trace=trace)
        return cls(Role.INITIATOR, hs, max_payload)

    @classmethod
    def responder(cls, static_key: Keypair | EllSwiftKey, certificate: Certificate, *,
                  rng: Rng | None = None, clock: Clock | None = None,
                  max_payload: int = MAX_PAYLOAD, ephemeral: EllSwiftKey | None = None,
                  trace: Trace | None = None) -> "Connection":
        """Server side.  A Keypair gets a fresh ElligatorSwift encoding per connection; an
        EllSwiftKey pins it (vectors).  ``clock`` is unused here (certificates are made
        by the caller) and accepted for symmetry."""
        hs = ResponderHandshake(responder_static(static_key, rng), certificate,
                                ephemeral=ephemeral, rng=rng, trace=trace)
        return cls(Role.RESPONDER, hs, max_payload)

    @classmethod
    def responder_from_authority(cls, static_key: Keypair, authority_key: Keypair,
                                 validity: int = 3600, *, rng: Rng | None = None,
                                 clock: Clock | None = None,
                                 max_payload: int = MAX_PAYLOAD) -> "Connection":
        """Server side with a certificate made now: valid from ``CERT_BACKDATE`` seconds
        ago until ``validity`` seconds from now (SRI issues one per handshake, too)."""
        now = int((clock or time.time)())
        cert = Certificate.issue(authority_key, static_key.xonly, max(now - CERT_BACKDATE, 0),
                                 min(now + validity, 0xFFFFFFFF))
        return cls.responder(static_key, cert, rng=rng, max_payload=max_payload)

    # ---- introspection ---------------------------------------------------------------

    @property
    def is_established(self) -> bool:
        return self.state is _ESTABLISHED

    @property
    def is_noise(self) -> bool:
        return self.role is not Role.PLAIN

    @property
    def remote_static_xonly(self) -> bytes | None:
        """The responder's static key (initiator side, after the handshake)."""
        return getattr(self._handshake, "remote_static_xonly", None)

    @property
    def certificate(self) -> Certificate | None:
        """Initiator: the certificate received; responder: the one presented."""
        return getattr(self._handshake, "certificate", None)

    @property
    def send_cipher(self):
        """Outgoing CipherState (Noise, established), e.g. to inspect the nonce."""
        return self._encryptor.cipher if self._encryptor else None

    @property
    def recv_cipher(self):
        return self._decoder.cipher if isinstance(self._decoder, FrameDecryptor) else None

    # ---- handshake -------------------------------------------------------------------

    def initiate(self) -> bytes:
        """Initiator: act 1 (64 bytes) to write first.  Plain / responder: b""."""
        self._check_usable()
        if self.role is not Role.INITIATOR:
            return b""
        if self.state is not State.START:
            raise errors.HandshakeError("initiate() was already called")
        act1 = self._guard(self._handshake.act1)
        self.state = State.WAIT_ACT2
        return act1

    def take_output(self) -> bytes:
        """Bytes queued by feed() (act 2 on a responder), to be written; then cleared."""
        out = bytes(self._out)
        self._out.clear()
        return out

    # ---- receiving -------------------------------------------------------------------

    def feed(self, data: bytes) -> list[Message]:
        """Give received bytes; get the application messages they completed."""
        self._check_usable()
        msgs: list[Message] = []
        try:
            self._feed(data, msgs)
        except errors.Sv2Error as e:
            self._fail(e)
            if msgs:
                return msgs  # the error is raised by the next call
            raise
        except Exception as e:  # a bug must not take the process down with the connection
            err = errors.Sv2Error(f"internal error: {e!r}")
            err.__cause__ = e
            self._fail(err)
            raise err from e
        return msgs

    def _feed(self, data: bytes, msgs: list) -> None:
        if self.state is State.START:
            raise errors.NotEstablishedError("bytes arrived before act 1 was sent")
        if self.state is State.WAIT_ACT1:
            data = self._take_act(data, ACT1_SIZE)
            if data is None:
                return
            act2, send, recv = self._handshake.read_act1(self._hs_buf)
            self._out += act2
            self._establish(send, recv)
        elif self.state is State.WAIT_ACT2:
            data = self._take_act(data, ACT2_SIZE)
            if data is None:
                return
            send, recv = self._handshake.read_act2(self._hs_buf)
            self._establish(send, recv)
        if data:
            self._decoder.feed(data)
        self._read_frames(msgs)

    def _take_act(self, data: bytes, size: int) -> bytes | None:
        """Collect one handshake act; return the bytes after it, None if incomplete."""
        need = size - len(self._hs_buf)
        self._hs_buf += data[:need]
        if len(self._hs_buf) < size:
            return None
        return data[need:]

    def _establish(self, send, recv) -> None:
        self._hs_buf = bytearray()
        self._encryptor = FrameEncryptor(send)
        self._decoder = FrameDecryptor(recv, self.max_payload)
        self.state = State.ESTABLISHED

    def _read_frames(self, msgs: list) -> None:
        decoder = self._decoder
        while (frame := decoder.next_frame()) is not None:
            self.frames_received += 1
            if not is_known_extension(frame):  # an extension we have no messages of
                self.unknown_messages += 1
                continue
            if self.frames_only:
                msgs.append(frame)
                continue
            try:
                msgs.append(decode_frame(frame))
            except errors.UnknownMessageError:
                self.unknown_messages += 1

    # ---- sending ---------------------------------------------------------------------

    def send(self, msg: Message) -> bytes:
        """Wire bytes for one message (one frame; encrypted chunks under Noise)."""
        self._check_sendable()
        return self._send_plain_frame(encode_message(msg))  # EncodeError: caller's bug, no fail

    def farewell(self, msg: Message) -> bytes:
        """Wire bytes for one last message after the peer sent a payload that does not
        decode.  Such a frame was authenticated and decrypted, so the transport is still
        sound and the peer can be told why it is being dropped (a SetupConnection.Error for
        a protocol this side does not know).  Refused after any other kind of failure."""
        if self.error is not None and not isinstance(self.error, errors.DecodeError):
            raise self.error
        if self.role is not Role.PLAIN and self._encryptor is None:
            raise errors.NotEstablishedError("no transport to say farewell on")
        return self._send_plain_frame(encode_message(msg))

    def send_frame(self, frame: Frame) -> bytes:
        """Wire bytes for a raw frame (e.g. an extension message the schema lacks)."""
        self._check_sendable()
        return self._send_plain_frame(frame.to_bytes())

    def send_encoded(self, frame: bytes) -> bytes:
        """Wire bytes for one frame already encoded (header + payload), by
        ``framing.encode_message`` or another codec."""
        self._check_sendable()
        return self._send_plain_frame(frame)

    def send_split(self, frames) -> bytes:
        """Wire bytes for frames already encoded and split as (6-byte header, payload):
        a server sending the same messages to many peers encodes and splits them once,
        then seals them per peer in one call (``noise.encrypt_frames``)."""
        if self.error is not None or self.state is not _ESTABLISHED:
            self._check_sendable()  # raises the reason
        if self._encryptor is None:
            return b"".join(h + p for h, p in frames)
        try:
            return encrypt_frames(self._encryptor.cipher, frames)
        except errors.Sv2Error as e:
            self._fail(e)
            raise

    def reserve_nonces(self, count: int):
        """The sending key and the first of ``count`` nonces, now taken, for a caller that
        seals ``count`` messages itself (``sv2ffi.fanout``, many clients in one C pass);
        None on an unencrypted connection.  Raises as ``send_split`` would (not
        established, failed, or the nonces would reach 2^64-1, which fails the connection)."""
        if self.error is not None or self.state is not _ESTABLISHED:
            self._check_sendable()
        if self._encryptor is None:
            return None
        cipher = self._encryptor.cipher
        first = cipher.nonce
        if first + count > MAX_NONCE:
            e = errors.NonceExhaustedError(
                "not enough nonces left before 2^64-1 for these frames (SV2 has no rekey)")
            self._fail(e)
            raise e
        cipher.nonce = first + count
        return cipher.key, first

    def _send_plain_frame(self, frame_bytes: bytes) -> bytes:
        if self._encryptor is None:
            return frame_bytes
        return self._guard(self._encryptor.encrypt_raw, frame_bytes)

    def _check_sendable(self) -> None:
        self._check_usable()
        if self.state is not State.ESTABLISHED:
            raise errors.NotEstablishedError(
                f"cannot send an application message in state {self.state.value}: the "
                "handshake has not finished")

    # ---- failure ---------------------------------------------------------------------

    def _check_usable(self) -> None:
        if self.error is not None:
            raise self.error

    def _fail(self, err: errors.Sv2Error) -> None:
        self.error = err
        self.state = State.FAILED

    def _guard(self, fn, *args):
        try:
            return fn(*args)
        except errors.Sv2Error as e:
            self._fail(e)
            raise

    def __repr__(self) -> str:
        return f"<Connection {self.role.value} {self.state.value}>"

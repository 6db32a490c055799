"""Typed errors shared by every layer.

Callers (the asyncio adapters, the C ABI, the CLI) decide what to do by *type*: a
decode error on one connection closes that connection, an unknown message type is
logged and skipped, an encode error is a programming error of the caller.  Each class
carries ``status``, the name of the C ``Sv2Status`` it maps to, so the C ABI does not
keep a second table of the same facts.
"""

from __future__ import annotations


class Sv2Error(Exception):
    """Base of every error sv2ffi raises on purpose."""

    status = "SV2_ERR_INTERNAL"


class CodecError(Sv2Error, ValueError):
    """Bytes that are not a valid SV2 message, or a message that cannot be encoded.

    Names the message, the field and (when decoding) the byte offset, so an operator can
    find the problem in a hex dump without a debugger.
    """

    status = "SV2_ERR_DECODE"

    def __init__(self, reason: str, *, message: str | None = None, field: str | None = None,
                 offset: int | None = None):
        self.reason = reason
        self.message = message
        self.field = field
        self.offset = offset
        where = []
        if message:
            where.append(message + (f".{field}" if field else ""))
        elif field:
            where.append(field)
        if offset is not None:
            where.append(f"at byte {offset}")
        super().__init__(f"{' '.join(where)}: {reason}" if where else reason)


class DecodeError(CodecError):
    """A payload does not decode."""


class TruncatedError(DecodeError):
    """The payload ended in the middle of a field."""


class TrailingBytesError(DecodeError):
    """Bytes are left over after the last field: the sender and we disagree on the layout."""


class LengthExceedsMaxError(DecodeError):
    """A length prefix is larger than the type allows (e.g. 33 for a B0_32)."""


class SequenceTooLongError(DecodeError):
    """A sequence count is above the sequence type's limit (e.g. OPTION with 2 elements)."""


class InvalidValueError(DecodeError):
    """A field holds a value the protocol does not define (e.g. protocol 7)."""


class EncodeError(CodecError):
    """A message field holds a value that does not fit its SV2 type."""

    status = "SV2_ERR_INVALID_ARGUMENT"


class UnknownMessageError(CodecError):
    """A frame carries a message type this library does not know.

    Recoverable: the frame has already been consumed, so the stream stays usable.
    """

    status = "SV2_ERR_UNKNOWN_MESSAGE"

    def __init__(self, extension_type: int, msg_type: int):
        self.extension_type = extension_type
        self.msg_type = msg_type
        super().__init__(
            f"unknown message type 0x{msg_type:02x} (extension_type 0x{extension_type:04x})")


class FramingError(Sv2Error, ValueError):
    """A frame header or frame boundary is wrong."""

    status = "SV2_ERR_INVALID_FRAME"


class FrameTooLargeError(FramingError):
    """A frame announces a payload larger than the limit (2^24-1, or a configured lower one)."""

    status = "SV2_ERR_PAYLOAD_TOO_BIG"

    def __init__(self, length: int, limit: int):
        self.length = length
        self.limit = limit
        super().__init__(f"frame payload of {length} bytes exceeds the limit of {limit} bytes")


# ---- Noise transport, keys, certificates, connections (issue 3) ----------------------


class HandshakeError(Sv2Error):
    """The Noise handshake failed or was not finished; the connection must be dropped."""

    status = "SV2_ERR_HANDSHAKE"


class InvalidEllSwiftError(HandshakeError):
    """A public key is not a usable 64-byte ElligatorSwift encoding.

    BIP324 maps *every* 64-byte string to a curve point, so libsecp256k1 refuses nothing
    of the right length: in practice this means a wrong length or a refused secret key.
    """


class NotEstablishedError(HandshakeError):
    """An application message was sent (or bytes arrived) before the handshake finished."""


class DecryptionError(Sv2Error):
    """A ChaCha20-Poly1305 tag does not verify: the bytes were tampered with or misframed."""

    status = "SV2_ERR_DECRYPTION"


class HandshakeDecryptionError(DecryptionError, HandshakeError):
    """A bad tag inside act 2: both a decryption failure and a failed handshake."""

    status = "SV2_ERR_HANDSHAKE"


class NonceExhaustedError(Sv2Error):
    """A cipher state reached nonce 2^64-1, which Noise reserves; SV2 has no rekey."""

    status = "SV2_ERR_CLOSED"


class CertificateError(HandshakeError):
    """The responder's SIGNATURE_NOISE_MESSAGE does not prove it speaks for the authority."""


class CertificateExpiredError(CertificateError):
    """now > not_valid_after + leeway."""


class CertificateNotYetValidError(CertificateError):
    """now < valid_from - leeway."""


class CertificateWrongSignerError(CertificateError):
    """The signature is not by the expected authority key (wrong signer or tampered)."""


class CertificateVersionError(CertificateError):
    """A certificate version other than 0, the only one defined."""


class ConnectionClosed(Sv2Error):
    """The peer closed the connection (or it was closed locally)."""

    status = "SV2_ERR_CLOSED"


class KeyFormatError(Sv2Error, ValueError):
    """A key in text or file form cannot be used."""

    status = "SV2_ERR_INVALID_ARGUMENT"


class KeyChecksumError(KeyFormatError):
    """The base58check checksum does not match (a typo in a copied key)."""


class KeyVersionError(KeyFormatError):
    """An authority public key whose 2-byte version prefix is not 1."""


class KeyLengthError(KeyFormatError):
    """A decoded key has the wrong number of bytes."""


class InvalidKeyError(KeyFormatError):
    """32 bytes that are not a secp256k1 secret key (0 or >= n) or not an x-only point."""


class KeyFileTooLargeError(KeyFormatError):
    """A key file far larger than any key: refused by its size, before it is read whole or
    decoded (base58 decoding is quadratic in the length of its input)."""


# ---- the data directory -----------------------------------------------------------------


class DatadirError(Sv2Error, ValueError):
    """The data directory (or a directory in it) cannot be used as given: missing, a file
    where a directory belongs, or not writable.  An operator's setup problem, reported in
    one sentence that names the path; the TP does not start with it."""

    status = "SV2_ERR_INVALID_ARGUMENT"


# ---- Bitcoin consensus data and the template provider (issue 5) -------------------------


class BitcoinDecodeError(Sv2Error, ValueError):
    """Bytes that are not a valid transaction, header or block (truncated, trailing bytes,
    non-canonical sizes, impossible values)."""

    status = "SV2_ERR_DECODE"


class InvalidTemplateError(Sv2Error, ValueError):
    """A block template (pushed serialized block, getblocktemplate result) that a TP cannot
    serve: no BIP34 height, no reward output, wrong coinbase shape, ..."""

    status = "SV2_ERR_INVALID_ARGUMENT"


class BlockRejectedError(Sv2Error):
    """A block was refused: bad proof of work, merkle root, coinbase, or the node said no."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(reason)


class ProtocolViolationError(Sv2Error):
    """A peer broke the session rules (message out of order, impossible constraints, rate
    limit exceeded); its connection is closed, others are unaffected."""

    status = "SV2_ERR_CLOSED"


class RpcError(Sv2Error):
    """The bitcoind JSON-RPC source failed (node unreachable, auth refused, RPC error)."""

    def __init__(self, reason: str, code: int | None = None):
        self.reason = reason
        self.code = code
        super().__init__(reason if code is None else f"{reason} (code {code})")


class ChainMismatchError(Sv2Error):
    """The node runs another chain than the TP was told to serve: nothing is served."""


class IpcError(Sv2Error):
    """Bitcoin Core's IPC Mining interface failed a call (``--source ipc``)."""


class NodeUnavailableError(IpcError):
    """No node on the IPC socket, or the connection dropped: waited for with backoff."""


class UnsupportedNodeError(IpcError):
    """The node serves a Mining interface sv2ffi does not speak (Core v30 or older), or
    another chain than the one asked for: refused, not retried."""


# ---- C ABI (issue 4) ----------------------------------------------------------------------


class InvalidArgumentError(Sv2Error, ValueError):
    """A C caller passed a NULL pointer, a freed or foreign handle, or an impossible size."""

    status = "SV2_ERR_INVALID_ARGUMENT"

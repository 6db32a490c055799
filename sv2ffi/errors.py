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
    """Bytes that are not a valid SV2 message, or a message that cannot be encoded."""

    status = "SV2_ERR_DECODE"


class DecodeError(CodecError):
    """A payload does not decode; names the message, the field and the byte offset."""

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

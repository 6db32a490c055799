"""SV2 frames: the 6-byte header and a streaming decoder.

A frame is ``extension_type (U16, bit 15 = channel_msg) | msg_type (U8) | length (U24)``
followed by ``length`` payload bytes.  The decoders here are sans-I/O: feed them whatever
chunks the transport produced (one byte, or many frames at once) and pull whole frames
or messages out; ``None`` means "need more bytes".
"""

from __future__ import annotations

from dataclasses import dataclass

from . import codec, errors
from .messages import Message
from .schema import (CHANNEL_BIT, EXTENSION_TYPE_MASK, FRAME_HEADER_SIZE, KNOWN_EXTENSIONS,
                     MAX_PAYLOAD)


@dataclass(slots=True)
class Frame:
    """One plaintext frame. ``extension_type`` excludes the channel bit."""

    extension_type: int
    msg_type: int
    payload: bytes
    channel_msg: bool = False

    def header(self) -> bytes:
        return encode_header(self.extension_type, self.channel_msg, self.msg_type,
                             len(self.payload))

    def to_bytes(self) -> bytes:
        return self.header() + self.payload


def encode_header(extension_type: int, channel_msg: bool, msg_type: int, length: int) -> bytes:
    """The 6-byte header; refuses values the header cannot carry."""
    if not 0 <= extension_type <= EXTENSION_TYPE_MASK:
        raise errors.EncodeError(f"extension_type {extension_type} is not in 0..0x7fff")
    if not 0 <= msg_type <= 0xFF:
        raise errors.EncodeError(f"msg_type {msg_type} is not in 0..255")
    if not 0 <= length <= MAX_PAYLOAD:
        raise errors.FrameTooLargeError(length, MAX_PAYLOAD)
    ext = extension_type | (CHANNEL_BIT if channel_msg else 0)
    return ext.to_bytes(2, "little") + bytes((msg_type,)) + length.to_bytes(3, "little")


def fixed_frame_packer(cls: type):
    """For a message class whose fields are all fixed-size (integers, BOOL, fixed byte
    strings: e.g. SetNewPrevHash), a function of its field values, in the schema's order,
    to its whole frame: ``encode_message``'s bytes from one ``struct`` call behind a
    header made once.  For a frame made on the way to the clients (a tip's
    SetNewPrevHash: ``encode_message`` took 0.04-0.05 ms there after a block, with
    nothing warm in the caches, issue 10).  The values are the caller's to get right, as
    the struct takes them; a byte string of the wrong length is refused (``struct`` would
    pad or cut it).  ValueError for a class this cannot pack."""
    plan = codec._PLANS[cls]
    if plan.tlvs or len(plan.steps) != 1 or plan.steps[0][2] is None \
            or plan.steps[0][1] != len(plan.fields):
        raise ValueError(f"{cls.__name__} has fields of variable size")
    run = plan.steps[0][2]
    spec = cls.SPEC
    header = encode_header(spec.extension_type, spec.channel_msg, spec.msg_type, run.size)
    pack, fixed = run.struct.pack, tuple(run.fixed)

    def frame(*values) -> bytes:
        for i, size in fixed:
            if len(values[i]) != size:
                raise errors.EncodeError(f"{len(values[i])} bytes where {size} are due",
                                         message=spec.name, field=run.fields[i].name)
        return header + pack(*values)
    return frame


def decode_header(data: bytes) -> tuple[int, bool, int, int]:
    """(extension_type, channel_msg, msg_type, length) from exactly 6 bytes."""
    if len(data) != FRAME_HEADER_SIZE:
        raise errors.FramingError(f"a frame header is 6 bytes, got {len(data)}")
    ext = data[0] | (data[1] << 8)
    return ext & EXTENSION_TYPE_MASK, bool(ext & CHANNEL_BIT), data[2], int.from_bytes(
        data[3:6], "little")


def encode_message(msg: Message) -> bytes:
    """A whole plaintext frame (header + payload) for one message."""
    ext, msg_type, channel = codec.message_type_of(msg)
    payload = codec.encode_payload(msg)
    return encode_header(ext, channel, msg_type, len(payload)) + payload


def decode_frame(frame: Frame) -> Message:
    """The message carried by a frame (UnknownMessageError for types we don't know)."""
    msg = codec.decode_payload(frame.extension_type, frame.msg_type, frame.payload)
    if msg.SPEC.channel_msg != frame.channel_msg:
        raise errors.DecodeError(
            f"channel_msg bit is {int(frame.channel_msg)}, the spec says "
            f"{int(msg.SPEC.channel_msg)}", message=msg.SPEC.name)
    return msg


class FrameDecoder:
    """Reassembles frames from arbitrary chunks.

    ``max_payload`` lets a server refuse large frames from untrusted peers before
    buffering them.  After a FrameTooLargeError the stream cannot be resynchronised, so
    the decoder stays failed and re-raises.
    """

    def __init__(self, max_payload: int = MAX_PAYLOAD):
        if not 0 <= max_payload <= MAX_PAYLOAD:
            raise ValueError(f"max_payload must be in 0..{MAX_PAYLOAD}")
        self.max_payload = max_payload
        self._buf = bytearray()
        self._pos = 0
        self._error: errors.Sv2Error | None = None

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as a frame."""
        return len(self._buf) - self._pos

    def feed(self, data: bytes) -> None:
        if self._pos and self._pos * 2 >= len(self._buf):
            del self._buf[:self._pos]  # compact lazily: O(1) amortised per byte
            self._pos = 0
        self._buf += data

    def next_frame(self) -> Frame | None:
        """The next whole frame, or None if more bytes are needed."""
        if self._error is not None:
            raise self._error
        avail = len(self._buf) - self._pos
        if avail < FRAME_HEADER_SIZE:
            return None
        p = self._pos
        buf = self._buf
        ext, channel, msg_type, length = decode_header(bytes(buf[p:p + FRAME_HEADER_SIZE]))
        if length > self.max_payload:
            self._error = errors.FrameTooLargeError(length, self.max_payload)
            raise self._error
        end = p + FRAME_HEADER_SIZE + length
        if end > len(buf):
            return None
        payload = bytes(buf[p + FRAME_HEADER_SIZE:end])
        self._pos = end
        return Frame(ext, msg_type, payload, channel)

    def __iter__(self):
        while (frame := self.next_frame()) is not None:
            yield frame


def is_known_extension(frame: Frame) -> bool:
    """Whether the schema has messages of the frame's extension_type.

    Messages are keyed by (extension_type, msg_type): extension 0x0001's messages reuse
    msg_types 0x00-0x02.  Frames of any other extension are to be discarded unread (spec
    3.4.1: an unknown extension's messages are ignored); a known extension's frame with
    an unknown msg_type is an UnknownMessageError instead.
    """
    return frame.extension_type in KNOWN_EXTENSIONS


class MessageDecoder:
    """Frames to messages, with the spec's rules for what cannot be understood.

    Frames of an extension the schema has no messages for are discarded and counted in
    ``discarded`` (``is_known_extension``).  A frame with an unknown msg_type raises
    UnknownMessageError *after* being consumed, so the caller may log it and keep reading.
    """

    def __init__(self, max_payload: int = MAX_PAYLOAD):
        self.frames = FrameDecoder(max_payload)
        self.discarded = 0

    def feed(self, data: bytes) -> None:
        self.frames.feed(data)

    def next_message(self) -> Message | None:
        while True:
            frame = self.frames.next_frame()
            if frame is None:
                return None
            if not is_known_extension(frame):
                self.discarded += 1
                continue
            return decode_frame(frame)

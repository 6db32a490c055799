"""sv2ffi: Stratum V2 template distribution for Bitcoin nodes.

For most uses three names are enough::

    import sv2ffi
    msgs = sv2ffi.decode(frames)        # bytes of whole plaintext frames -> [Message, ...]
    data = sv2ffi.encode(msgs[0])       # Message -> one frame's bytes
    # sv2ffi.tp.run(...)                # a template provider in this process (sv2ffi.tp)

Layers, bottom up: ``schema`` (types and message table) -> ``messages`` (generated
classes) -> ``codec`` (payload encode/decode) -> ``framing`` (frames, streaming
decoders).  Everything here is sans-I/O; sockets live in the asyncio adapters.
"""

from .errors import Sv2Error
from .framing import Frame, FrameDecoder, MessageDecoder, decode_frame, encode_message
from .messages import Message

__version__ = "0.1.0"


def decode(data: bytes) -> list[Message]:
    """Every message in ``data``, which must hold whole plaintext frames (header and
    payload; several may follow each other).  Raises a ``Sv2Error`` subclass naming
    what is wrong: an incomplete frame, an unknown message type, a field that does
    not decode.  For a stream that arrives in pieces use ``MessageDecoder``."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"decode() takes bytes, got {type(data).__name__}")
    dec = FrameDecoder()
    dec.feed(bytes(data))
    out = [decode_frame(frame) for frame in dec]
    if dec.buffered:
        from .errors import FramingError
        raise FramingError(f"incomplete frame: {dec.buffered} bytes left over after "
                           f"{len(out)} whole frame(s)")
    return out


def encode(msg: Message) -> bytes:
    """One plaintext frame (6-byte header + payload) carrying ``msg``."""
    if not isinstance(msg, Message):
        raise TypeError(f"encode() takes a message (sv2ffi.messages.*), got "
                        f"{type(msg).__name__}")
    return encode_message(msg)


__all__ = ["Sv2Error", "Message", "decode", "encode", "Frame", "FrameDecoder",
           "MessageDecoder", "decode_frame", "encode_message", "__version__"]

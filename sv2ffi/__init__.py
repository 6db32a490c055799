"""sv2ffi: Stratum V2 template distribution for Bitcoin nodes.

Layers, bottom up: ``schema`` (types and message table) -> ``messages`` (generated
classes) -> ``codec`` (payload encode/decode) -> ``framing`` (frames, streaming
decoders).  Everything here is sans-I/O; sockets live in the asyncio adapters.
"""

from .errors import Sv2Error
from .framing import Frame, FrameDecoder, MessageDecoder, decode_frame, encode_message

__version__ = "0.1.0"

__all__ = ["Sv2Error", "Frame", "FrameDecoder", "MessageDecoder", "decode_frame",
           "encode_message", "__version__"]

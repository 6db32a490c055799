"""The JSON form of messages used by ``sv2ffi decode`` / ``sv2ffi encode``.

Integers are JSON numbers, byte strings and U256 are lowercase hex in wire order,
STR0_255 is text, sequences are arrays, OPTION is null or the value.  The mapping is
derived from the schema types, so it covers every message without a per-message line.
"""

from __future__ import annotations

from typing import Any

from . import errors, schema
from .framing import Frame, encode_header
from .codec import encode_payload, message_type_of
from .messages import Message, message_class
from .schema import Sv2Type


def value_to_json(t: Sv2Type, v: Any) -> Any:
    if t.kind in ("fixed", "bytes") and not t.text:
        return v.hex()
    if t.kind == "seq":
        if t.max_len == 1:
            return None if v is None else value_to_json(t.elem, v)
        return [value_to_json(t.elem, x) for x in v]
    return v


def value_from_json(t: Sv2Type, v: Any, where: str) -> Any:
    if t.kind in ("fixed", "bytes") and not t.text:
        if not isinstance(v, str):
            raise errors.EncodeError(f"{where}: {t.name} is given as a hex string")
        try:
            return bytes.fromhex(v)
        except ValueError:
            raise errors.EncodeError(f"{where}: not valid hex: {v[:40]!r}") from None
    if t.kind == "seq":
        if t.max_len == 1:
            return None if v is None else value_from_json(t.elem, v, where)
        if not isinstance(v, list):
            raise errors.EncodeError(f"{where}: {t.name} is given as an array")
        return [value_from_json(t.elem, x, f"{where}[{i}]") for i, x in enumerate(v)]
    return v  # ints, bools, floats and text are JSON-native; the codec checks their range


def message_to_json(msg: Message, frame: Frame | None = None) -> dict:
    """The CLI's object for one message (header facts included)."""
    ext, msg_type, channel = message_type_of(msg)
    if frame is not None:
        ext, channel = frame.extension_type, frame.channel_msg
    return {
        "type": msg.SPEC.name,
        "msg_type": msg_type,
        "extension_type": ext,
        "channel_msg": channel,
        "fields": {f.name: value_to_json(f.type, getattr(msg, f.name)) for f in msg.SPEC.fields},
    }


def message_from_json(obj: Any) -> Message:
    """Inverse of message_to_json; ``type`` may be the spec or the class name."""
    if not isinstance(obj, dict):
        raise errors.EncodeError("each message is a JSON object")
    name = obj.get("type")
    if not isinstance(name, str):
        raise errors.EncodeError('a message object needs "type", e.g. "NewTemplate"')
    try:
        cls = message_class(name)
    except KeyError:
        raise errors.EncodeError(f"unknown message type {name!r}") from None
    spec = cls.SPEC
    if "msg_type" in obj and obj["msg_type"] != spec.msg_type:
        raise errors.EncodeError(f"{name}: msg_type {obj['msg_type']} contradicts "
                                 f"{spec.msg_type}")
    fields = obj.get("fields", {})
    if not isinstance(fields, dict):
        raise errors.EncodeError(f"{name}: \"fields\" is a JSON object")
    known = {f.name for f in spec.fields}
    extra = set(fields) - known
    if extra:
        raise errors.EncodeError(f"{name}: unknown field(s) {', '.join(sorted(extra))}")
    values = {}
    for f in spec.fields:
        if f.name in fields:
            values[f.name] = value_from_json(f.type, fields[f.name], f"{name}.{f.name}")
        elif f.absent_default is None:
            raise errors.EncodeError(f"{name}: missing field {f.name}")
    return cls(**values)


def frame_from_json(obj: Any) -> bytes:
    """A whole frame. ``extension_type``/``channel_msg``, if given, must match the schema."""
    msg = message_from_json(obj)
    ext, msg_type, channel = message_type_of(msg)
    for key, want in (("extension_type", ext), ("channel_msg", channel)):
        if key in obj and (obj[key] != want or type(obj[key]) is not type(want)):
            raise errors.EncodeError(f"{msg.SPEC.name}: {key} {obj[key]!r} contradicts the "
                                     f"schema ({want!r})")
    payload = encode_payload(msg)
    return encode_header(ext, channel, msg_type, len(payload)) + payload


__all__ = ["message_to_json", "message_from_json", "frame_from_json", "value_to_json",
           "value_from_json", "schema"]

"""Python message classes, one per row of ``schema.MESSAGES``.

The classes are generated so that a message's fields are written down once, in the
schema.  Each class is a slotted dataclass whose attributes are the spec's field names,
with ``SPEC`` pointing back at its schema row:

    >>> from sv2ffi.messages import RequestTransactionData
    >>> RequestTransactionData(template_id=7)
    RequestTransactionData(template_id=7)

Python values: integers for U8..U64 (and BOOL as bool), float for F32, bytes for fixed
and byte-string types (U256 in wire order), str for STR0_255, list for SEQ types and
``None``/value for OPTION and for an extension's TLV field (absent by default).
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from . import schema
from .schema import MessageSpec, Sv2Type


class Message:
    """Base of the generated message classes."""

    __slots__ = ()
    SPEC: ClassVar[MessageSpec]

    @property
    def msg_type(self) -> int:
        return self.SPEC.msg_type

    def fields(self) -> dict[str, Any]:
        """Field values in wire order."""
        return {f.name: getattr(self, f.name) for f in self.SPEC.fields}


def _python_type(t: Sv2Type) -> Any:
    if t.kind == "int":
        return int
    if t.kind == "bool":
        return bool
    if t.kind == "f32":
        return float
    if t.kind == "bytes" and t.text:
        return str
    if t.kind in ("bytes", "fixed"):
        return bytes
    if t.max_len == 1:  # OPTION
        return Any
    return list


def _make_class(spec: MessageSpec) -> type:
    fields = []
    for f in spec.fields:
        if f.absent_default is not None:
            fields.append((f.name, _python_type(f.type), dataclasses.field(default=f.absent_default)))
        elif f.type.tlv is not None:  # an extension's TLV field: absent unless given
            fields.append((f.name, _python_type(f.type), dataclasses.field(default=None)))
        else:
            fields.append((f.name, _python_type(f.type)))
    cls = dataclasses.make_dataclass(spec.class_name, fields, bases=(Message,), slots=True,
                                     namespace={"SPEC": spec, "__doc__": spec.doc})
    cls.__module__ = __name__
    return cls


#: class name -> class, in schema order
CLASSES: dict[str, type] = {}
#: (extension_type, msg_type) -> class
BY_KEY: dict[tuple[int, int], type] = {}

for _spec in schema.MESSAGES:
    _cls = _make_class(_spec)
    CLASSES[_spec.class_name] = _cls
    BY_KEY[(_spec.extension_type, _spec.msg_type)] = _cls
    globals()[_spec.class_name] = _cls

__all__ = ["Message", "CLASSES", "BY_KEY", "message_class", *CLASSES]


def message_class(name: str) -> type:
    """Class for a spec name ("SetupConnection.Success") or class name."""
    return CLASSES[schema.message_spec(name).class_name]

"""Hypothesis strategies derived from the schema, so every message type is covered
without a per-message line (shared by the codec, connection and C ABI tests)."""

from __future__ import annotations

import struct

from hypothesis import strategies as st

from sv2ffi import schema
from sv2ffi.messages import CLASSES
from sv2ffi.schema import Sv2Type


def _f32_values() -> st.SearchStrategy:
    # only values that survive a binary32 round trip compare equal after decoding
    return st.floats(width=32, allow_nan=False)


def value_strategy(t: Sv2Type, *, max_bytes: int = 300, max_items: int = 6) -> st.SearchStrategy:
    if t.kind == "int":
        return st.integers(0, t.max_value)
    if t.kind == "bool":
        return st.booleans()
    if t.kind == "f32":
        return _f32_values()
    if t.kind == "fixed":
        return st.binary(min_size=t.size, max_size=t.size)
    if t.kind == "bytes":
        if t.text:
            # any bytes: STR0_255 carries no charset, the codec must round-trip them all
            return st.binary(max_size=t.max_len).map(
                lambda b: b.decode("utf-8", "surrogateescape"))
        return st.binary(max_size=min(t.max_len, max_bytes))
    if t.kind == "seq":
        elem = value_strategy(t.elem, max_bytes=max_bytes, max_items=max_items)
        if t.max_len == 1:
            return st.none() | elem
        return st.lists(elem, max_size=min(t.max_len, max_items))
    raise AssertionError(t.kind)


def message_strategy(cls: type) -> st.SearchStrategy:
    fields = {}
    for f in cls.SPEC.fields:
        s = value_strategy(f.type)
        if f.choices is not None:
            s = st.sampled_from(sorted(f.choices))
        fields[f.name] = s
    return st.builds(cls, **fields)


def any_message() -> st.SearchStrategy:
    return st.one_of(*[message_strategy(c) for c in CLASSES.values()])


ALL_TYPES = list(schema.PRIMITIVES) + [schema.SEQ0_255(schema.U256),
                                       schema.SEQ0_64K(schema.B0_16M),
                                       schema.OPTION(schema.U32), schema.SEQ0_255(schema.BOOL)]

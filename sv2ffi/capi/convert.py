"""Sv2Message (C) <-> Message (Python), planned once per message from the schema types.

A message crosses the boundary as raw memory: for every message the plan holds a
``struct`` format laid out with the offsets cffi computes from the cdef (the same
offsets the C compiler uses: ``tests/test_header.py`` compares them), so reading a C
message is one ``unpack_from`` and writing one is one ``pack_into``, whatever the
number of fields.  Byte strings and sequences appear in those formats as their two
machine words (pointer, length) and are then read or written at that address.

Reading a C message trusts nothing but the pointers themselves: lengths and counts are
checked against the type's maximum *before* any memory is read, NULL data with a
non-zero length is refused, and everything else (value ranges, choices, a bool that is
neither 0 nor 1) is left to the codec, which reports it exactly as it does for Python
callers.

Writing a message for C puts every variable-size part (byte strings, sequence arrays and
their bytes) into one malloc'd block, ``Sv2Message.storage``, so ``sv2_message_free`` is
one ``free()`` in C with no Python involved.  Each part starts 8-byte aligned; decoded
text fields get a NUL after their bytes for C's convenience.
"""

from __future__ import annotations

import array
import struct
from typing import Any, Callable

from .. import errors, schema
from ..messages import BY_KEY, Message
from ..schema import MessageSpec, Sv2Type
from . import render

ALIGN = 8
_INT_CODES = {"uint8_t": "B", "uint16_t": "H", "uint32_t": "I", "uint64_t": "Q"}


def _pad(n: int) -> int:
    return (n + ALIGN - 1) & ~(ALIGN - 1)


def _fill_packed(prepared, arena, base, off):
    """Copy a sequence already packed into one blob; (pointer, count), NULL when empty."""
    _, blob, n = prepared
    if not n:
        return 0, 0
    arena[off:off + len(blob)] = blob
    return base + off, n


class _Layout:
    """Builds a '=' struct format from (offset, code) pieces, padding the gaps."""

    def __init__(self, start: int):
        self.start = start
        self.pos = start
        self.codes: list[str] = []

    def add(self, offset: int, code: str) -> None:
        if offset < self.pos:
            raise AssertionError(f"overlapping fields at offset {offset}")
        if offset > self.pos:
            self.codes.append(f"{offset - self.pos}x")
        self.codes.append(code)
        self.pos = offset + struct.calcsize("=" + code)

    def format(self, end: int | None = None) -> struct.Struct:
        codes = list(self.codes)
        if end is not None and end > self.pos:
            codes.append(f"{end - self.pos}x")
        return struct.Struct("=" + "".join(codes))


class Converter:
    """Conversion plans for every message of the schema, bound to one cffi ``ffi``/``lib``."""

    def __init__(self, ffi, lib):
        self.ffi = ffi
        self.lib = lib
        self.NULL = ffi.NULL
        word = ffi.sizeof("size_t")
        if ffi.sizeof("void *") != word or ffi.sizeof("Sv2Bytes") != 2 * word \
                or ffi.offsetof("Sv2Bytes", "len") != word:
            raise RuntimeError("libsv2 assumes pointers and size_t of one machine word")
        self.word = {4: "I", 8: "Q"}[word]
        self.array_code = next(c for c in "QLI" if array.array(c).itemsize == word)
        self.message_size = ffi.sizeof("Sv2Message")
        self.type_code = {4: "i", 1: "b", 2: "h", 8: "q"}[ffi.sizeof("Sv2MsgType")]
        self._readers: dict[int, Callable[[Any], Message]] = {}
        self._writers: dict[type, Callable[[Message, Any], None]] = {}
        for cls in BY_KEY.values():
            spec = cls.SPEC
            self._readers[render.msg_type_value(spec)] = self._make_reader(spec, cls)
            self._writers[cls] = self._make_writer(spec)

    # ---- layout ---------------------------------------------------------------------

    def _code(self, t: Sv2Type) -> str:
        if t.kind == "int":
            return _INT_CODES[t.c_type]
        if t.kind == "bool":
            return "B"  # as a number: the codec refuses anything but 0 and 1
        if t.kind == "f32":
            return "f"
        if t.kind == "fixed":
            return f"{t.size}s"
        return self.word * 2  # Sv2Bytes {data, len} / Sv2...Seq {elements, len}

    def _member_layout(self, spec: MessageSpec, layout: _Layout) -> None:
        base = self.ffi.offsetof("Sv2Message", spec.snake_name)
        struct_name = render.message_struct_name(spec)
        for f in spec.fields:
            layout.add(base + self.ffi.offsetof(struct_name, f.name), self._code(f.type))

    # ---- C -> Python ----------------------------------------------------------------

    def to_python(self, msg_p) -> Message:
        """The Message a C caller built in ``*msg_p``."""
        reader = self._readers.get(msg_p.type)
        if reader is None:
            raise errors.InvalidArgumentError(f"Sv2Message.type {int(msg_p.type)} is not a "
                                              "known SV2_MSG_* value")
        return reader(self.ffi.buffer(msg_p, self.message_size))

    def _make_reader(self, spec: MessageSpec, cls: type) -> Callable[[Any], Message]:
        start = self.ffi.offsetof("Sv2Message", spec.snake_name)
        layout = _Layout(start)
        self._member_layout(spec, layout)
        unpack = layout.format().unpack_from
        var = [(i, self._var_reader(f.type, spec.name, f.name)) for i, f in
               enumerate(spec.fields) if f.type.kind in ("bytes", "seq")]
        if not var:
            def read_fixed(buf) -> Message:
                return cls(*unpack(buf, start))
            return read_fixed
        # raw tuple: one slot per scalar field, two (address, length) per variable one
        slots, k = [], 0
        for f in spec.fields:
            slots.append(k)
            k += 2 if f.type.kind in ("bytes", "seq") else 1
        plan = [(i, slots[i], fn) for i, fn in var]
        scalar = [(i, slots[i]) for i, f in enumerate(spec.fields)
                  if f.type.kind not in ("bytes", "seq")]
        n_fields = len(spec.fields)

        def read(buf) -> Message:
            raw = unpack(buf, start)
            values = [None] * n_fields
            for i, slot in scalar:
                values[i] = raw[slot]
            for i, slot, fn in plan:
                values[i] = fn(raw[slot], raw[slot + 1])
            return cls(*values)

        return read

    def _bad(self, spec_name: str, field: str, reason: str) -> errors.EncodeError:
        return errors.EncodeError(reason, message=spec_name, field=field)

    def _bytes_at(self, address: int, n: int) -> bytes:
        return self.ffi.unpack(self.ffi.cast("char *", address), n)

    def _var_reader(self, t: Sv2Type, spec_name: str, field: str) -> Callable[[int, int], Any]:
        """fn(address, length) -> value, for a byte string or a sequence field."""
        bad = self._bad
        bytes_at = self._bytes_at
        if t.kind == "bytes":
            top, text = t.max_len, t.text

            def read_bytes(address: int, n: int):
                if n == 0:
                    return "" if text else b""
                if n > top:
                    raise bad(spec_name, field, f"len {n} exceeds the {t.name} maximum of {top}")
                if not address:
                    raise bad(spec_name, field, f"data is NULL but len is {n}")
                raw = bytes_at(address, n)
                return raw.decode("utf-8", "surrogateescape") if text else raw

            return read_bytes
        e, top, optional = t.elem, t.max_len, t.max_len == 1
        ffi = self.ffi
        if e.kind == "fixed":
            k = e.size

            def elements(address: int, n: int) -> list:
                blob = bytes_at(address, n * k)
                return [blob[i:i + k] for i in range(0, n * k, k)]
        elif e.kind in ("int", "bool", "f32"):
            ptr_type = f"{e.c_type} *"
            if e.kind == "bool":
                ptr_type = "uint8_t *"  # as numbers: the codec refuses anything but 0 and 1

            def elements(address: int, n: int) -> list:
                return ffi.unpack(ffi.cast(ptr_type, address), n)
        elif e.kind == "bytes":
            code, size, etop, etext = self.array_code, 2 * ffi.sizeof("size_t"), e.max_len, e.text

            def elements(address: int, n: int) -> list:
                words = array.array(code)
                words.frombytes(bytes_at(address, n * size))
                ptrs, lens = words[0::2], words[1::2]
                if max(lens) > etop:
                    raise bad(spec_name, field, f"an element's len {max(lens)} exceeds the "
                                                f"{e.name} maximum of {etop}")
                out = []
                for p, ln in zip(ptrs, lens):
                    if not ln:
                        out.append(b"")
                    elif not p:
                        raise bad(spec_name, field, f"element data is NULL but len is {ln}")
                    else:
                        out.append(bytes_at(p, ln))
                if etext:
                    return [b.decode("utf-8", "surrogateescape") for b in out]
                return out
        else:
            raise TypeError(f"{t.name}: sequences of {e.kind} have no C mapping")

        def read_seq(address: int, n: int):
            if n > top:
                raise bad(spec_name, field, f"len {n} exceeds the {t.name} limit of {top}")
            if n == 0:
                return None if optional else []
            if not address:
                raise bad(spec_name, field, f"elements is NULL but len is {n}")
            items = elements(address, n)
            return items[0] if optional else items

        return read_seq

    # ---- Python -> C ------------------------------------------------------------------

    def clear(self, out) -> None:
        """Zero a caller's Sv2Message, so a failed call leaves nothing to free."""
        self.ffi.memmove(out, bytes(self.message_size), self.message_size)

    def to_c(self, msg: Message, out) -> None:
        """Fill ``*out`` with msg (every byte of it); variable parts go into out.storage."""
        writer = self._writers.get(type(msg))
        if writer is None:
            raise errors.EncodeError(f"not an SV2 message: {type(msg).__name__}")
        writer(msg, self.ffi.buffer(out, self.message_size))

    def put_bytes(self, out, data: bytes) -> None:
        """Hand ``data`` to C as an Sv2Bytes the caller frees with sv2_bytes_free."""
        n = len(data)
        address = 0
        if n:
            p = self._alloc(n)
            self.ffi.memmove(p, data, n)
            address = int(self.ffi.cast("uintptr_t", p))
        struct.pack_into("=" + self.word * 2, self.ffi.buffer(out, 2 * struct.calcsize(
            "=" + self.word)), 0, address, n)

    def _alloc(self, n: int):
        p = self.lib.sv2i_alloc(n)
        if p == self.NULL:
            raise MemoryError(f"malloc({n}) failed")
        return p

    def _make_writer(self, spec: MessageSpec) -> Callable[[Message, Any], None]:
        ffi = self.ffi
        layout = _Layout(0)
        layout.add(0, self.type_code)
        layout.add(ffi.offsetof("Sv2Message", "storage"), self.word)
        self._member_layout(spec, layout)
        pack = layout.format(self.message_size).pack_into
        type_value = render.msg_type_value(spec)
        names = [f.name for f in spec.fields]
        var = [(i, *self._var_writer(f.type)) for i, f in enumerate(spec.fields)
               if f.type.kind in ("bytes", "seq")]
        alloc = self._alloc

        if not var:
            def write_fixed(msg: Message, buf) -> None:
                pack(buf, 0, type_value, 0, *[getattr(msg, n) for n in names])
            return write_fixed

        def write(msg: Message, buf) -> None:
            values = [getattr(msg, n) for n in names]
            prepared = [(i, prepare(values[i]), fill) for i, prepare, fill in var]
            total = sum(p[0] for _, p, _ in prepared)
            storage = 0
            flat: list = []
            if total:
                base = alloc(total)
                storage = int(ffi.cast("uintptr_t", base))
                arena = ffi.buffer(base, total)
                off = 0
                for i, p, fill in prepared:
                    values[i] = fill(p, arena, storage, off)
                    off += p[0]
            else:
                for i, p, fill in prepared:
                    values[i] = (0, 0)
            for i, f in enumerate(spec.fields):
                if f.type.kind in ("bytes", "seq"):
                    flat += values[i]
                else:
                    flat.append(values[i])
            pack(buf, 0, type_value, storage, *flat)

        return write

    def _var_writer(self, t: Sv2Type):
        """(prepare, fill) for a byte string or sequence field.

        ``prepare(value)`` returns a tuple whose first item is the padded number of bytes
        the value needs in the storage block; ``fill(prepared, arena, base, off)`` copies it
        to ``arena[off:]`` and returns the field's (address, length) for the C struct.
        """
        if t.kind == "bytes":
            text = t.text

            def prepare(v):
                raw = v.encode("utf-8", "surrogateescape") if text else v
                return _pad(len(raw) + text), (raw + b"\0" if text else raw), len(raw)

            def fill(prepared, arena, base, off):
                _, data, n = prepared
                if data:
                    arena[off:off + len(data)] = data
                return base + off, n

            return prepare, fill
        e, optional = t.elem, t.max_len == 1
        items = (lambda v: [] if v is None else [v]) if optional else (lambda v: v)
        if e.kind == "fixed":
            def prepare(v):
                v = items(v)
                blob = b"".join(v)
                return _pad(len(blob)), blob, len(v)

            return prepare, _fill_packed
        if e.kind in ("int", "bool", "f32"):
            code = {"f32": "f", "bool": "B"}.get(e.kind) or _INT_CODES[e.c_type]
            size = struct.calcsize("=" + code)

            def prepare(v):
                v = items(v)
                return _pad(len(v) * size), struct.pack(f"={len(v)}{code}", *v), len(v)

            return prepare, _fill_packed
        if e.kind == "bytes":
            text, code = e.text, self.array_code
            size = 2 * array.array(code).itemsize

            def prepare(v):
                v = items(v)
                raws = [x.encode("utf-8", "surrogateescape") for x in v] if text else v
                # text elements each get a NUL: join with NULs and end with one
                blob = b"\0".join(raws) + b"\0" if text else b"".join(raws)
                return _pad(len(raws) * size) + _pad(len(blob)), raws, blob

            def fill(prepared, arena, base, off):
                _, raws, blob = prepared
                n = len(raws)
                if not n:
                    return 0, 0
                data_off = off + _pad(n * size)
                if blob:
                    arena[data_off:data_off + len(blob)] = blob
                words = array.array(code, [0]) * (2 * n)
                pos, step = base + data_off, 1 if text else 0
                addrs = array.array(code, [0]) * n
                lens = array.array(code, [len(r) for r in raws])
                for i, ln in enumerate(lens):
                    addrs[i] = pos
                    pos += ln + step
                words[0::2] = addrs
                words[1::2] = lens
                arena[off:off + n * size] = words.tobytes()
                return base + off, n

            return prepare, fill
        raise TypeError(f"{t.name}: sequences of {e.kind} have no C mapping")

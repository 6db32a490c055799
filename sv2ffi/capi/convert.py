"""Sv2Message (C) <-> Message (Python), planned once per message from the schema types.

Reading a C message trusts nothing but the pointers themselves: lengths and counts are
checked against the type's maximum *before* any memory is read, NULL data with a
non-zero length is refused, and everything else (value ranges, choices) is left to the
codec, which reports it exactly as it does for Python callers.

Writing a message for C puts every variable-size part (byte strings, sequence arrays and
their bytes) into one malloc'd block, ``Sv2Message.storage``, so ``sv2_message_free`` is
one ``free()`` in C with no Python involved.  Array segments come first in that block,
each 8-byte aligned; decoded text fields get a NUL after their bytes for C's convenience.
"""

from __future__ import annotations

import array
from typing import Any, Callable

from .. import errors, schema
from ..messages import BY_KEY, Message
from ..schema import MessageSpec, Sv2Type
from . import render

ALIGN = 8


def _pad(n: int) -> int:
    return (n + ALIGN - 1) & ~(ALIGN - 1)


def _array_code(itemsize: int) -> str | None:
    for code in "QLI":
        if array.array(code).itemsize == itemsize:
            return code
    return None


class Converter:
    """Conversion plans for every message of the schema, bound to one cffi ``ffi``/``lib``."""

    def __init__(self, ffi, lib):
        self.ffi = ffi
        self.lib = lib
        self.NULL = ffi.NULL
        self._zero_message = bytes(ffi.sizeof("Sv2Message"))
        # Sv2Bytes as two machine words lets arrays of them be read and written in one go
        word = ffi.sizeof("size_t")
        self._bytes_size = ffi.sizeof("Sv2Bytes")
        code = _array_code(word)
        self._pairs_code = code if (
            code and ffi.sizeof("void *") == word and ffi.offsetof("Sv2Bytes", "len") == word
            and self._bytes_size == 2 * word) else None
        self._readers: dict[int, Callable[[Any], Message]] = {}
        self._writers: dict[type, Callable[[Message, Any], None]] = {}
        for (ext, msg_type), cls in BY_KEY.items():
            spec = cls.SPEC
            self._readers[render.msg_type_value(spec)] = self._make_reader(spec, cls)
            self._writers[cls] = self._make_writer(spec)

    # ---- C -> Python ------------------------------------------------------------------

    def to_python(self, msg_p) -> Message:
        """The Message a C caller built in ``*msg_p``."""
        reader = self._readers.get(msg_p.type)
        if reader is None:
            raise errors.InvalidArgumentError(f"Sv2Message.type {int(msg_p.type)} is not a "
                                              "known SV2_MSG_* value")
        try:
            return reader(msg_p)
        except ValueError as e:
            if isinstance(e, errors.Sv2Error):
                raise
            # cffi refuses to read some values (a bool element that is neither 0 nor 1)
            raise errors.EncodeError(str(e)) from None

    def _make_reader(self, spec: MessageSpec, cls: type) -> Callable[[Any], Message]:
        member = spec.snake_name
        getters = [self._field_reader(spec, f) for f in spec.fields]

        def read(msg_p) -> Message:
            s = getattr(msg_p, member)
            return cls(*[g(s) for g in getters])

        return read

    def _field_reader(self, spec: MessageSpec, f: schema.Field) -> Callable[[Any], Any]:
        name = f.name
        read_value = self._value_reader(f.type, spec.name, name)
        if f.type.kind in ("int", "f32"):
            return lambda s: getattr(s, name)
        if f.type.kind == "bool":
            def get_bool(s):
                try:
                    return getattr(s, name)
                except ValueError:  # cffi refuses a _Bool that is neither 0 nor 1
                    raise self._bad(spec.name, name, "a bool must be 0 or 1") from None
            return get_bool

        def get(s):
            return read_value(getattr(s, name))

        return get

    def _bad(self, spec_name: str, field: str, reason: str) -> errors.EncodeError:
        return errors.EncodeError(reason, message=spec_name, field=field)

    def _value_reader(self, t: Sv2Type, spec_name: str, field: str) -> Callable[[Any], Any]:
        ffi = self.ffi
        NULL = self.NULL
        if t.kind in ("int", "f32"):
            return lambda v: v
        if t.kind == "bool":
            return lambda v: v
        if t.kind == "fixed":
            return lambda v: ffi.buffer(v)[:]
        if t.kind == "bytes":
            top, text = t.max_len, t.text

            def read_bytes(b):
                n = b.len
                if n == 0:
                    return "" if text else b""
                if n > top:
                    raise self._bad(spec_name, field, f"len {n} exceeds the {t.name} maximum "
                                                      f"of {top}")
                if b.data == NULL:
                    raise self._bad(spec_name, field, f"data is NULL but len is {n}")
                raw = ffi.buffer(b.data, n)[:]
                return raw.decode("utf-8", "surrogateescape") if text else raw

            return read_bytes
        if t.kind == "seq":
            return self._seq_reader(t, spec_name, field)
        raise TypeError(f"no C mapping for {t.name}")

    def _seq_reader(self, t: Sv2Type, spec_name: str, field: str) -> Callable[[Any], Any]:
        ffi, NULL, e = self.ffi, self.NULL, t.elem
        top, optional = t.max_len, t.max_len == 1
        if e.kind == "fixed":
            k = e.size

            def elements(q, n):
                blob = ffi.buffer(q.elements, n * k)[:]
                return [blob[i:i + k] for i in range(0, n * k, k)]
        elif e.kind in ("int", "f32", "bool"):
            def elements(q, n):
                return list(q.elements[0:n])
        elif e.kind == "bytes":
            one = self._value_reader(e, spec_name, field)
            code, size = self._pairs_code, self._bytes_size

            def elements(q, n):
                if code is None:
                    return [one(q.elements[i]) for i in range(n)]
                words = array.array(code)
                words.frombytes(ffi.buffer(q.elements, n * size))
                ptrs, lens = words[0::2], words[1::2]
                if max(lens) > e.max_len:
                    raise self._bad(spec_name, field, f"an element's len {max(lens)} exceeds "
                                                      f"the {e.name} maximum of {e.max_len}")
                out = []
                for p, n_ in zip(ptrs, lens):
                    if not n_:
                        out.append(b"")
                    elif not p:
                        raise self._bad(spec_name, field, f"element data is NULL but len is {n_}")
                    else:
                        out.append(ffi.unpack(ffi.cast("char *", p), n_))
                if e.text:
                    return [b.decode("utf-8", "surrogateescape") for b in out]
                return out
        else:
            raise TypeError(f"{t.name}: sequences of {e.kind} have no C mapping")

        def read_seq(q):
            n = q.len
            if n > top:
                raise self._bad(spec_name, field, f"len {n} exceeds the {t.name} limit of {top}")
            if n == 0:
                return None if optional else []
            if q.elements == NULL:
                raise self._bad(spec_name, field, f"elements is NULL but len is {n}")
            items = elements(q, n)
            return items[0] if optional else items

        return read_seq

    # ---- Python -> C ------------------------------------------------------------------

    def clear(self, out) -> None:
        """Zero a caller's Sv2Message, so a failed call leaves nothing to free."""
        self.ffi.memmove(out, self._zero_message, len(self._zero_message))

    def to_c(self, msg: Message, out) -> None:
        """Fill ``*out`` (already cleared) with msg; variable parts go into out.storage."""
        writer = self._writers.get(type(msg))
        if writer is None:
            raise errors.EncodeError(f"not an SV2 message: {type(msg).__name__}")
        writer(msg, out)

    def put_bytes(self, out, data: bytes) -> None:
        """Hand ``data`` to C as an Sv2Bytes the caller frees with sv2_bytes_free."""
        if not data:
            out.data = self.NULL
            out.len = 0
            return
        p = self._alloc(len(data))
        self.ffi.memmove(p, data, len(data))
        out.data = p
        out.len = len(data)

    def _alloc(self, n: int):
        p = self.lib.sv2i_alloc(n)
        if p == self.NULL:
            raise MemoryError(f"malloc({n}) failed")
        return p

    def _make_writer(self, spec: MessageSpec) -> Callable[[Message, Any], None]:
        type_value = render.msg_type_value(spec)
        member = spec.snake_name
        ffi = self.ffi
        scalars = [f.name for f in spec.fields if f.type.kind in ("int", "bool", "f32")]
        fixed = [(f.name, f.type.size) for f in spec.fields if f.type.kind == "fixed"]
        var = [(f.name, *self._var_writer(f.type)) for f in spec.fields
               if f.type.kind in ("bytes", "seq")]
        alloc = self._alloc

        def write(msg: Message, out) -> None:
            out.type = type_value
            s = getattr(out, member)
            for name in scalars:
                setattr(s, name, getattr(msg, name))
            for name, size in fixed:
                ffi.memmove(getattr(s, name), getattr(msg, name), size)
            if not var:
                return
            values = [(name, prepare(getattr(msg, name)), fill) for name, prepare, fill in var]
            total = sum(p[0] for _, p, _ in values)
            if total == 0:
                return
            base = alloc(total)
            out.storage = base
            off = 0
            for name, prepared, fill in values:
                fill(getattr(s, name), prepared, base, off)
                off += prepared[0]

        return write

    def _var_writer(self, t: Sv2Type):
        """(prepare, fill) for a byte string or sequence field.

        ``prepare(value)`` returns a tuple whose first item is the padded number of bytes
        the value needs in the storage block; ``fill(cfield, prepared, base, off)`` copies
        it to ``base + off`` and points the C field at it.
        """
        ffi = self.ffi
        if t.kind == "bytes":
            text = t.text

            def prepare(v):
                raw = v.encode("utf-8", "surrogateescape") if text else v
                return _pad(len(raw) + text), raw

            def fill(cf, prepared, base, off):
                raw = prepared[1]
                n = len(raw)
                p = base + off
                if text:
                    ffi.memmove(p, raw + b"\0", n + 1)
                elif n:
                    ffi.memmove(p, raw, n)
                cf.data = p
                cf.len = n

            return prepare, fill
        e, optional = t.elem, t.max_len == 1
        items = (lambda v: [] if v is None else [v]) if optional else (lambda v: v)
        ptr_type = render.seq_elements_decl(t).replace("elements", "")
        if e.kind == "fixed":
            def prepare(v):
                v = items(v)
                blob = b"".join(v)
                return _pad(len(blob)), blob, len(v)

            def fill(cf, prepared, base, off):
                _, blob, n = prepared
                if n:
                    ffi.memmove(base + off, blob, len(blob))
                    cf.elements = ffi.cast(ptr_type, base + off)
                cf.len = n

            return prepare, fill
        if e.kind in ("int", "bool", "f32"):
            size = ffi.sizeof(e.c_type)

            def prepare(v):
                v = items(v)
                return _pad(len(v) * size), v

            def fill(cf, prepared, base, off):
                v = prepared[1]
                if v:
                    p = ffi.cast(ptr_type, base + off)
                    p[0:len(v)] = v
                    cf.elements = p
                cf.len = len(v)

            return prepare, fill
        if e.kind == "bytes":
            text, code, size = e.text, self._pairs_code, self._bytes_size

            def prepare(v):
                v = items(v)
                raws = [x.encode("utf-8", "surrogateescape") for x in v] if text else v
                # text elements each get a NUL: join with NULs and end with one
                blob = b"\0".join(raws) + b"\0" if text else b"".join(raws)
                return _pad(len(raws) * size) + _pad(len(blob)), raws, blob

            def fill(cf, prepared, base, off):
                _, raws, blob = prepared
                n = len(raws)
                if not n:
                    cf.len = 0
                    return
                arr = ffi.cast("Sv2Bytes *", base + off)
                data_off = off + _pad(n * size)
                if blob:
                    ffi.memmove(base + data_off, blob, len(blob))
                lens = [len(r) for r in raws]
                if code is not None:
                    start = int(ffi.cast("uintptr_t", base)) + data_off
                    addrs = array.array(code, [0]) * n
                    pos = start
                    step = 1 if text else 0
                    for i, ln in enumerate(lens):
                        addrs[i] = pos
                        pos += ln + step
                    words = array.array(code, [0]) * (2 * n)
                    words[0::2] = addrs
                    words[1::2] = array.array(code, lens)
                    ffi.memmove(arr, words, n * size)
                else:
                    pos = data_off
                    for i, ln in enumerate(lens):
                        arr[i].data = base + pos
                        arr[i].len = ln
                        pos += ln + (1 if text else 0)
                cf.elements = arr
                cf.len = n

            return prepare, fill
        raise TypeError(f"{t.name}: sequences of {e.kind} have no C mapping")

"""The SV2 codec in plain C, rendered from the schema: ``sv2_codec.h`` and ``sv2_codec.c``.

Two ways to use the same two files:

* **inside libsv2** (compiled with ``SV2_CODEC_LIBSV2``): ``sv2_encode``, ``sv2_decode``,
  ``sv2_decoder_*``, ``sv2_message_free`` and ``sv2_bytes_free`` run in C and never start
  the embedded interpreter; decoder handles are table entries (a freed or garbage handle
  is refused, never dereferenced) and the last error is libsv2's thread-local one;
* **standalone** (``sv2ffi codegen --out DIR``, also installed next to sv2.h): C99 and the
  C standard library only, for firmware and tools; the types and names are those of
  sv2.h's codec part, handles are plain pointers.

The C file is one fixed engine (one routine per *kind* of SV2 type, like
``sv2ffi.codec``) plus tables generated from ``schema.MESSAGES``: one row per type, per
message and per field (struct offset, SV2 type, allowed values).  Error texts are the
Python codec's, word for word (same status, message, field and byte offset), which
``tests/test_ccodec.py`` checks over hypothesis round trips, every truncation point and
random garbage.
"""

from __future__ import annotations

import re

from .. import schema
from ..schema import MessageSpec, Sv2Type
from . import abi, render

CODEC_HEADER = "sv2_codec.h"
CODEC_SOURCE = "sv2_codec.c"
GUARD = "SV2_CODEC_H"

_KIND = {"int": "SV2C_INT", "bool": "SV2C_BOOL", "f32": "SV2C_F32", "fixed": "SV2C_FIXED",
         "bytes": "SV2C_BYTES", "seq": "SV2C_SEQ"}
_C_SIZE = {"uint8_t": 1, "uint16_t": 2, "uint32_t": 4, "uint64_t": 8, "bool": 1, "float": 4}


# ---- header ---------------------------------------------------------------------------


def render_codec_header() -> str:
    """The text of sv2_codec.h: sv2.h's codec part, C99, nothing beyond libc."""
    out = [
        f"/* {CODEC_HEADER}: the SV2 codec of sv2ffi in plain C (C99, C standard library only).",
        " *",
        " * GENERATED FILE, DO NOT EDIT: `sv2ffi codegen --out DIR` renders it with",
        f" * {CODEC_SOURCE} from sv2ffi/schema.py. The types, constants and functions are those",
        " * of the codec part of sv2.h (libsv2), so code written against one compiles against",
        " * the other; include one of the two, not both. Compile sv2_codec.c with your program.",
        " * Differences from libsv2: decoder handles are plain pointers (libsv2 refuses freed",
        " * or garbage handles), and sv2_last_error() is per thread only where the compiler has",
        " * thread-local storage (C11 or GCC/Clang).",
        " */",
        f"#ifndef {GUARD}",
        f"#define {GUARD}",
        "",
        "#include <stdbool.h>",
        "#include <stddef.h>",
        "#include <stdint.h>",
        "",
        "#ifdef __cplusplus",
        'extern "C" {',
        "#endif",
        "",
        "/* C99 has no anonymous unions; GCC and Clang accept one after __extension__ */",
        "#if !defined(__cplusplus) && defined(__GNUC__) && \\",
        "    (!defined(__STDC_VERSION__) || __STDC_VERSION__ < 201112L)",
        "#define SV2_ANONYMOUS_UNION __extension__ union",
        "#else",
        "#define SV2_ANONYMOUS_UNION union",
        "#endif",
    ]
    for title, consts in abi.constants():
        if title not in CODEC_CONSTANT_SECTIONS:
            continue
        out += render._section(title)
        for c in consts:
            out += render._block_comment(c.doc)
            out.append(render._define(c))
    out += render._section("Types")
    for i, decl in enumerate(render.types(docs=True, codec_only=True)):
        if i:
            out.append("")
        out += [ln.replace("    union {", "    SV2_ANONYMOUS_UNION {") for ln in decl]
    out += render._section("Functions")
    for i, f in enumerate(codec_functions()):
        if i:
            out.append("")
        out += render._block_comment(f.doc)
        out.append(f.decl() + ";")
    out += ["", "#ifdef __cplusplus", "}", "#endif", "", f"#endif /* {GUARD} */", ""]
    return "\n".join(out)


CODEC_CONSTANT_SECTIONS = ("Frames", "Protocol values", "Channel bits")


def render_codec_cdef() -> str:
    """The codec's declarations for cffi (tests load a compiled sv2_codec.c with them)."""
    out: list[str] = []
    for decl in render.types(docs=False, codec_only=True):
        out += decl
    out += [f.decl() + ";" for f in codec_functions()]
    return "\n".join(out) + "\n"


def codec_functions() -> list[abi.Function]:
    return [f for f in abi.FUNCTIONS if f.codec]


# ---- tables ---------------------------------------------------------------------------


def _ident(t: Sv2Type) -> str:
    return "sv2c_t_" + re.sub(r"[^A-Za-z0-9]+", "_", t.name).strip("_").lower()


def _c_elem_size(t: Sv2Type) -> str:
    """sizeof() of one element of t as a C struct member or sequence element."""
    if t.kind in ("int", "bool", "f32"):
        return f"sizeof({t.c_type})"
    if t.kind == "fixed":
        return str(t.size)
    if t.kind == "bytes":
        return "sizeof(Sv2Bytes)"
    return f"sizeof({render.seq_struct_name(t)})"


def _types_in_order() -> list[Sv2Type]:
    seen: dict[str, Sv2Type] = {}

    def visit(t: Sv2Type) -> None:
        if t.elem is not None:
            visit(t.elem)
        seen.setdefault(_ident(t), t)

    for m in schema.MESSAGES:
        for f in m.fields:
            visit(f.type)
    return list(seen.values())


def _c_string(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _max(t: Sv2Type) -> int:
    if t.kind == "int":
        return min(t.max_value, 0xFFFFFFFF)
    return t.max_len or 0


def _type_rows() -> list[str]:
    out = []
    for t in _types_in_order():
        wire = t.size or 0
        csize = _C_SIZE.get(t.c_type, 0) if t.kind in ("int", "bool", "f32") else 0
        elem = f"&{_ident(t.elem)}" if t.elem is not None else "NULL"
        ext, ft = t.tlv if t.tlv else (0, 0)
        kind = "SV2C_TLV" if t.tlv else _KIND[t.kind]
        out.append(
            f"static const Sv2cType {_ident(t)} = {{{_c_string(t.name)}, {kind}, {wire}, "
            f"{csize}, {t.len_size or 0}, {int(t.text)}, {_max(t)}u, "
            f"{_c_elem_size(t.elem) if t.elem is not None else '0'}, {elem}, {ext}, {ft}}};")
    return out


def _field_rows(m: MessageSpec) -> list[str]:
    rows = []
    member = m.snake_name
    for f in m.fields:
        choices, enc_text, dec_text, n_choices = "NULL", "NULL", "NULL", 0
        if f.choices is not None:
            values = sorted(f.choices)
            n_choices = len(values)
            choices = f"sv2c_choices_{member}_{f.name}"
            enc_text = _c_string("[" + ", ".join(map(str, values)) + "]")
            dec_text = _c_string("(" + ", ".join(map(str, values)) + ")")
        has_default = f.absent_default is not None
        rows.append(
            f"    {{{_c_string(f.name)}, &{_ident(f.type)}, "
            f"(uint16_t)offsetof(Sv2Message, {member}.{f.name}), {n_choices}, {choices}, "
            f"{enc_text}, {dec_text}, {int(has_default)}, {f.absent_default or 0}u}},")
    return rows


_GET = {1: "{p}[{o}]", 2: "sv2c_get16({p} + {o})", 3: "sv2c_get24({p} + {o})",
        4: "sv2c_get32({p} + {o})", 8: "sv2c_get64({p} + {o})"}
_PUT = {1: "{p}[{o}] = (uint8_t)({v})", 2: "sv2c_put16({p} + {o}, {v})",
        3: "sv2c_put24({p} + {o}, {v})", 4: "sv2c_put32({p} + {o}, {v})",
        8: "sv2c_put64({p} + {o}, {v})"}


def _simple_elem(t: Sv2Type) -> bool:
    return t.kind in ("int", "bool", "f32", "fixed")


def _fast_encodable(m: MessageSpec) -> bool:
    """Fields the generated straight-line encoder handles: no allowed-value lists, no TLV,
    sequences of fixed-size elements only (sequences of byte strings use the engine)."""
    return all(f.choices is None and f.type.tlv is None and
               (f.type.kind != "seq" or _simple_elem(f.type.elem)) for f in m.fields)


def _fast_decodable(m: MessageSpec) -> bool:
    return _fast_encodable(m) and all(f.absent_default is None for f in m.fields)


def _get_expr(t: Sv2Type, at: str) -> str:
    if t.kind == "int":
        return f"({t.c_type}){_GET[t.size].format(p='p', o=at)}"
    raise AssertionError(t.kind)


def _fast_decoder(m: MessageSpec) -> list[str]:
    """``int sv2c_decode_<m>(p, n, out)``: 0 with *out filled, or -1 when anything is off
    (the engine then decodes the payload again to report exactly what)."""
    y = f"out->{m.snake_name}"
    scan = [f"static int sv2c_decode_{m.snake_name}(const uint8_t *p, size_t n, Sv2Message *out)",
            "{", "    size_t o = 0, store = 0;", "    uint8_t *a = NULL;"]
    fill = ["    o = 0;"]
    for f in m.fields:
        t = f.type
        v = f"v_{f.name}"
        if t.kind in ("int", "bool", "f32", "fixed"):
            scan += [f"    if (n - o < {t.size})", "        return -1;", f"    o += {t.size};"]
            if t.kind == "int":
                fill.append(f"    {y}.{f.name} = {_get_expr(t, 'o')};")
            elif t.kind == "bool":
                fill.append(f"    {y}.{f.name} = (p[o] & 1) != 0;")
            elif t.kind == "f32":
                fill.append(f"    sv2c_store_float_bits(&{y}.{f.name}, "
                            f"sv2c_f32_from_wire(sv2c_get32(p + o)));")
            else:
                fill.append(f"    memcpy({y}.{f.name}, p + o, {t.size});")
            fill.append(f"    o += {t.size};")
            continue
        scan.insert(2, f"    size_t {v};")
        hdr = t.len_size
        scan += [f"    if (n - o < {hdr})", "        return -1;",
                 f"    {v} = (size_t){_GET[hdr].format(p='p', o='o')};"]
        if t.max_len < (1 << (8 * hdr)) - 1:
            scan += [f"    if ({v} > {t.max_len}u)", "        return -1;"]
        scan.append(f"    o += {hdr};")
        fill.append(f"    o += {hdr};")
        if t.kind == "bytes":
            text = int(t.text)
            scan += [f"    if (n - o < {v})", "        return -1;", f"    o += {v};"]
            if text:
                scan.append(f"    store += SV2C_ALIGN({v} + 1);")
                fill += [f"    memcpy(a, p + o, {v});", f"    a[{v}] = 0;",
                         f"    sv2c_set_span(&{y}.{f.name}, a, {v});",
                         f"    a += SV2C_ALIGN({v} + 1);"]
            else:
                scan += [f"    store += SV2C_ALIGN({v});"]
                fill += [f"    if ({v}) {{", f"        memcpy(a, p + o, {v});",
                         f"        sv2c_set_span(&{y}.{f.name}, a, {v});",
                         f"        a += SV2C_ALIGN({v});", "    } else {",
                         f"        sv2c_set_span(&{y}.{f.name}, NULL, 0);", "    }"]
            fill.append(f"    o += {v};")
            continue
        e = t.elem
        esize, ecsize = e.size, _c_elem_size(e)
        scan += [f"    if ({v} > (n - o) / {esize})", "        return -1;",
                 f"    o += {v} * {esize};", f"    store += SV2C_ALIGN({v} * {ecsize});"]
        fill += [f"    if ({v}) {{"]
        if e.kind == "fixed":
            fill.append(f"        memcpy(a, p + o, {v} * {esize});")
        else:
            fill += ["        size_t i;", f"        for (i = 0; i < {v}; i++) {{"]
            at = f"o + i * {esize}"
            if e.kind == "int":
                fill.append(f"            {e.c_type} x = {_get_expr(e, at)};")
            elif e.kind == "bool":
                fill.append(f"            bool x = (p[{at}] & 1) != 0;")
            else:
                fill += ["            float x;",
                         f"            sv2c_store_float_bits(&x, sv2c_f32_from_wire("
                         f"sv2c_get32(p + {at})));"]
            fill += [f"            memcpy(a + i * {ecsize}, &x, sizeof x);", "        }"]
        fill += [f"        sv2c_set_span(&{y}.{f.name}, a, {v});",
                 f"        a += SV2C_ALIGN({v} * {ecsize});", "    } else {",
                 f"        sv2c_set_span(&{y}.{f.name}, NULL, 0);", "    }",
                 f"    o += {v} * {esize};"]
    scan += ["    if (o != n)", "        return -1;", "    if (store) {",
             "        a = (uint8_t *)malloc(store);", "        if (!a)",
             "            return -1; /* the engine reports it */", "        out->storage = a;",
             "    }"]
    return scan + fill + ["    return 0;", "}"]


def _fast_encoder(m: MessageSpec) -> list[str]:
    """``sv2c_size_<m>`` (payload size, or -1 when a value needs the engine's error) and
    ``sv2c_write_<m>`` (writes the payload; only after size said yes)."""
    x = f"in->{m.snake_name}"
    size = [f"static int sv2c_size_{m.snake_name}(const Sv2Message *in, uint64_t *size)", "{",
            "    uint64_t n = 0;", "    (void)in;"]
    write = [f"static void sv2c_write_{m.snake_name}(const Sv2Message *in, uint8_t *p)", "{"]
    fixed = 0
    for f in m.fields:
        t = f.type
        member = f"{x}.{f.name}"
        if t.kind in ("int", "bool", "f32", "fixed"):
            fixed += t.size
            if t.kind == "int":
                if t.size < _C_SIZE[t.c_type]:
                    size += [f"    if ({member} > {t.max_value}u)", "        return -1;"]
                write += ["    " + _PUT[t.size].format(p="p", o="0", v=member) + ";",
                          f"    p += {t.size};"]
            elif t.kind == "bool":
                size += [f"    if (*(const uint8_t *)&{member} > 1)", "        return -1;"]
                write += [f"    *p++ = {member} ? 1 : 0;"]
            elif t.kind == "f32":
                write += [f"    sv2c_put32(p, sv2c_float_bits(&{member}));", "    p += 4;"]
            else:
                write += [f"    memcpy(p, {member}, {t.size});", f"    p += {t.size};"]
            continue
        hdr = t.len_size
        fixed += hdr
        ptr = "data" if t.kind == "bytes" else "elements"
        size += [f"    if ({member}.len > {t.max_len}u || (!{member}.{ptr} && {member}.len))",
                 "        return -1;"]
        put_len = _PUT[hdr].format(p="p", o="0", v=f"(uint32_t){member}.len")
        write += [f"    {put_len};", f"    p += {hdr};"]
        if t.kind == "bytes":
            size.append(f"    n += {member}.len;")
            write += [f"    if ({member}.len)", f"        memcpy(p, {member}.data, {member}.len);",
                      f"    p += {member}.len;"]
            continue
        e = t.elem
        size.append(f"    n += (uint64_t){member}.len * {e.size};")
        if e.kind == "fixed":
            write += [f"    if ({member}.len)",
                      f"        memcpy(p, {member}.elements, {member}.len * {e.size});",
                      f"    p += {member}.len * {e.size};"]
            continue
        loop = ["    {", "        size_t i;", f"        for (i = 0; i < {member}.len; i++) {{"]
        if e.kind == "bool":
            size += ["    {", "        size_t i;", f"        for (i = 0; i < {member}.len; i++)",
                     f"            if (((const uint8_t *){member}.elements)[i] > 1)",
                     "                return -1;", "    }"]
            write += loop + [f"            *p++ = {member}.elements[i] ? 1 : 0;", "        }",
                             "    }"]
        elif e.kind == "f32":
            write += loop + [f"            sv2c_put32(p, sv2c_float_bits(&{member}.elements[i]));",
                             "            p += 4;", "        }", "    }"]
        else:
            if e.size < _C_SIZE[e.c_type]:
                size += ["    {", "        size_t i;",
                         f"        for (i = 0; i < {member}.len; i++)",
                         f"            if ({member}.elements[i] > {e.max_value}u)",
                         "                return -1;", "    }"]
            put = _PUT[e.size].format(p="p", o="0", v=f"{member}.elements[i]")
            write += loop + [f"            {put};", f"            p += {e.size};", "        }",
                             "    }"]
    size += [f"    *size = n + {fixed}u;", "    return 0;", "}"]
    write.append("}")
    return size + write


def _fast_functions(m: MessageSpec) -> list[str]:
    """Straight-line code generated for one message: constant types and sizes, no table
    walk. Used whenever the input is valid; on anything else the table-driven engine runs
    and reports the error exactly as the Python codec does."""
    out = []
    if _fast_decodable(m):
        out += _fast_decoder(m)
    if _fast_encodable(m):
        out += _fast_encoder(m)
    return out


def _message_tables() -> list[str]:
    out = []
    for m in schema.MESSAGES:
        out += _fast_functions(m)
    for m in schema.MESSAGES:
        for f in m.fields:
            if f.choices is not None:
                values = ", ".join(f"{v}u" for v in sorted(f.choices))
                out.append(f"static const uint32_t sv2c_choices_{m.snake_name}_{f.name}[] = "
                           f"{{{values}}};")
        out.append(f"static const Sv2cField sv2c_fields_{m.snake_name}[] = {{")
        out += _field_rows(m)
        out.append("};")
    out.append("")
    for m in schema.MESSAGES:
        out.append(
            f"static const Sv2cMessage sv2c_msg_{m.snake_name} = {{{_c_string(m.name)}, "
            f"0x{render.msg_type_value(m):x}u, 0x{m.extension_type:04x}, 0x{m.msg_type:02x}, "
            f"{int(m.channel_msg)}, {len(m.fields)}, sv2c_fields_{m.snake_name}, "
            f"(uint16_t)offsetof(Sv2Message, {m.snake_name}), "
            f"(uint16_t)sizeof({render.message_struct_name(m)}), "
            f"{'sv2c_decode_' + m.snake_name if _fast_decodable(m) else 'NULL'}, "
            f"{'sv2c_size_' + m.snake_name if _fast_encodable(m) else 'NULL'}, "
            f"{'sv2c_write_' + m.snake_name if _fast_encodable(m) else 'NULL'}}};")
    out += ["", "/* (extension_type << 8 | msg_type), i.e. Sv2Message.type -> message */",
            "static const Sv2cMessage *sv2c_find(uint32_t key)", "{", "    switch (key) {"]
    for m in schema.MESSAGES:
        out.append(f"    case 0x{render.msg_type_value(m):x}u: return &sv2c_msg_{m.snake_name};")
    out += ["    default: return NULL;", "    }", "}", "",
            "static int sv2c_known_extension(unsigned ext)", "{",
            "    return " + " || ".join(f"ext == 0x{e:04x}u" for e in
                                        sorted(schema.KNOWN_EXTENSIONS)) + ";", "}"]
    return out


def _status_names() -> list[str]:
    out = ["SV2_API const char *sv2_status_name(Sv2Status status)", "{", "    switch (status) {"]
    for name, _, _ in abi.STATUS_CODES:
        out.append(f'    case {name}: return "{name}";')
    out += ["    }", '    return "SV2_UNKNOWN_STATUS";', "}"]
    return out


def render_codec_source() -> str:
    """The text of sv2_codec.c."""
    parts = [
        f"/* {CODEC_SOURCE}: the SV2 codec of sv2ffi in plain C (C99, C standard library only).",
        " *",
        " * GENERATED FILE, DO NOT EDIT: rendered from sv2ffi/schema.py by sv2ffi/capi/codegen.py",
        " * (`sv2ffi codegen --out DIR`). The engine below is one routine per kind of SV2 type;",
        " * the tables after it are one row per type, message and field of the schema. Error",
        " * texts are those of sv2ffi's Python codec, word for word.",
        " */",
        ENGINE_PRELUDE,
        *_type_rows(),
        "",
        *_message_tables(),
        "",
        *_status_names(),
        ENGINE,
    ]
    return "\n".join(parts) + "\n"


# ---- the engine -------------------------------------------------------------------------

ENGINE_PRELUDE = r"""
#ifdef SV2_CODEC_LIBSV2
#include "sv2.h"
#else
#include "sv2_codec.h"
#endif

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef SV2_API
#ifdef SV2_CODEC_LIBSV2
#define SV2_API __attribute__((visibility("default")))
#else
#define SV2_API
#endif
#endif

/* ---- kinds and tables ------------------------------------------------------------------- */

enum { SV2C_INT, SV2C_BOOL, SV2C_F32, SV2C_FIXED, SV2C_BYTES, SV2C_SEQ, SV2C_TLV };

typedef struct Sv2cType {
    const char *name;            /* SV2 name, as error texts spell it */
    unsigned char kind;
    unsigned char size;          /* wire size of INT, BOOL, F32, FIXED */
    unsigned char csize;         /* C size of INT, BOOL, F32 members */
    unsigned char len_size;      /* length or count prefix of BYTES and SEQ */
    unsigned char text;          /* BYTES: NUL-terminated when decoded */
    uint32_t max;                /* INT: largest value; BYTES: bytes; SEQ: elements */
    size_t elem_csize;           /* SEQ: C size of one element */
    const struct Sv2cType *elem; /* SEQ, TLV: element type */
    uint16_t tlv_ext;            /* TLV: extension_type and field_type */
    unsigned char tlv_field;
} Sv2cType;

typedef struct Sv2cField {
    const char *name;
    const Sv2cType *type;
    uint16_t offset;             /* of the member in Sv2Message */
    unsigned char n_choices;     /* allowed values (SetupConnection.protocol) */
    const uint32_t *choices;
    const char *choices_encode;  /* "[0, 1, 2]" */
    const char *choices_decode;  /* "(0, 1, 2)" */
    unsigned char has_default;   /* the payload may end before this field */
    uint32_t absent_default;
} Sv2cField;

typedef struct Sv2cMessage {
    const char *name;
    uint32_t type;               /* Sv2Message.type */
    uint16_t ext;
    unsigned char msg_type;
    unsigned char channel;
    unsigned char n_fields;
    const Sv2cField *fields;
    uint16_t member;             /* offset of the union member */
    uint16_t c_size;             /* its size */
    /* generated straight-line code (NULL: the engine alone); the engine also runs when
       they say no, to report the error */
    int (*decode)(const uint8_t *payload, size_t n, Sv2Message *out);
    int (*size)(const Sv2Message *in, uint64_t *payload);
    void (*write)(const Sv2Message *in, uint8_t *payload);
} Sv2cMessage;

static uint16_t sv2c_get16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t sv2c_get24(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16;
}
static uint32_t sv2c_get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t sv2c_get64(const uint8_t *p)
{
    return (uint64_t)sv2c_get32(p) | (uint64_t)sv2c_get32(p + 4) << 32;
}
static void sv2c_put16(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static void sv2c_put24(uint8_t *p, uint32_t v)
{
    sv2c_put16(p, v);
    p[2] = (uint8_t)(v >> 16);
}
static void sv2c_put32(uint8_t *p, uint32_t v)
{
    sv2c_put16(p, v);
    sv2c_put16(p + 2, v >> 16);
}
static void sv2c_put64(uint8_t *p, uint64_t v)
{
    sv2c_put32(p, (uint32_t)v);
    sv2c_put32(p + 4, (uint32_t)(v >> 32));
}

static uint32_t sv2c_float_bits(const void *src)
{
    float f;
    uint32_t u;
    memcpy(&f, src, sizeof f);
    memcpy(&u, &f, sizeof u);
    return u;
}

static void sv2c_store_float_bits(void *dst, uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    memcpy(dst, &f, sizeof f);
}

/* An F32 as it arrives: a signalling NaN becomes quiet (the quiet bit set), as it does in
   the Python codec (binary32 -> float -> binary32), so both decode alike. */
static uint32_t sv2c_f32_from_wire(uint32_t u)
{
    if ((u & 0x7F800000u) == 0x7F800000u && (u & 0x007FFFFFu))
        u |= 0x00400000u;
    return u;
}

/* the two machine words of Sv2Bytes and of every Sv2...Seq: a pointer and a size_t */
typedef struct Sv2cSpan {
    const void *data;
    size_t len;
} Sv2cSpan;

static Sv2cSpan sv2c_span(const void *src)
{
    Sv2cSpan s;
    memcpy(&s, src, sizeof s);
    return s;
}

static void sv2c_set_span(void *dst, const void *data, size_t len)
{
    Sv2cSpan s;
    s.data = data;
    s.len = len;
    memcpy(dst, &s, sizeof s);
}

#define SV2C_ALIGN(n) (((n) + 7u) & ~(size_t)7u)


/* ---- generated from sv2ffi/schema.py -------------------------------------------------- */
"""

ENGINE = r"""
/* ---- the last error ---------------------------------------------------------------------- */

#define SV2C_ERROR_CAP 512

#ifdef SV2_CODEC_LIBSV2
void sv2i_set_error(const char *msg); /* libsv2's thread-local last error (glue.c) */
#else
#if defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L && !defined(__STDC_NO_THREADS__)
#define SV2C_THREAD_LOCAL _Thread_local
#elif defined(__GNUC__)
#define SV2C_THREAD_LOCAL __thread
#else
#define SV2C_THREAD_LOCAL /* no thread-local storage: one last error per process */
#endif
static SV2C_THREAD_LOCAL char sv2c_last_error[SV2C_ERROR_CAP];

static void sv2i_set_error(const char *msg)
{
    size_t n = strlen(msg);
    if (n >= SV2C_ERROR_CAP) {
        n = SV2C_ERROR_CAP - 1;
        while (n > 0 && ((unsigned char)msg[n] & 0xC0) == 0x80)
            n--; /* never cut a UTF-8 sequence in half */
    }
    memcpy(sv2c_last_error, msg, n);
    sv2c_last_error[n] = '\0';
}

SV2_API const char *sv2_last_error(void)
{
    return sv2c_last_error;
}
#endif

/* Formats "<message>.<field> at byte <offset>: <reason>" (parts left out when NULL / -1),
   the way sv2ffi.errors.CodecError prints itself, and makes it the last error. */
static Sv2Status sv2c_fail(Sv2Status status, const char *message, const char *field,
                           long long offset, const char *fmt, ...)
{
    char text[SV2C_ERROR_CAP];
    size_t n = 0;
    va_list ap;
    int w;
    text[0] = '\0';
    if (message) {
        w = snprintf(text, sizeof text, field ? "%s.%s" : "%s", message, field);
        n = w > 0 ? (size_t)w : 0;
    } else if (field) {
        w = snprintf(text, sizeof text, "%s", field);
        n = w > 0 ? (size_t)w : 0;
    }
    if (n < sizeof text && offset >= 0) {
        w = snprintf(text + n, sizeof text - n, n ? " at byte %lld" : "at byte %lld", offset);
        n += w > 0 ? (size_t)w : 0;
    }
    if (n && n < sizeof text) {
        w = snprintf(text + n, sizeof text - n, ": ");
        n += w > 0 ? (size_t)w : 0;
    }
    if (n < sizeof text) {
        va_start(ap, fmt);
        vsnprintf(text + n, sizeof text - n, fmt, ap);
        va_end(ap);
    }
    sv2i_set_error(text);
    return status;
}

static Sv2Status sv2c_out_of_memory(size_t n)
{
    return sv2c_fail(SV2_ERR_INTERNAL, NULL, NULL, -1, "out of memory (%lu bytes)",
                     (unsigned long)n);
}

/* ---- little-endian integers, whatever the host's byte order ------------------------------- */

static uint64_t sv2c_get(const uint8_t *p, unsigned n)
{
    switch (n) {
    case 1: return p[0];
    case 2: return sv2c_get16(p);
    case 3: return sv2c_get24(p);
    case 4: return sv2c_get32(p);
    default: return sv2c_get64(p);
    }
}

static uint8_t *sv2c_put(uint8_t *p, uint64_t v, unsigned n)
{
    switch (n) {
    case 1: p[0] = (uint8_t)v; break;
    case 2: sv2c_put16(p, (uint32_t)v); break;
    case 3: sv2c_put24(p, (uint32_t)v); break;
    case 4: sv2c_put32(p, (uint32_t)v); break;
    default: sv2c_put64(p, v); break;
    }
    return p + n;
}

/* C members: an integer of csize bytes, a bool, a float */
static uint64_t sv2c_load_int(const void *src, unsigned csize)
{
    uint8_t u8;
    uint16_t u16;
    uint32_t u32;
    uint64_t u64;
    switch (csize) {
    case 1: memcpy(&u8, src, 1); return u8;
    case 2: memcpy(&u16, src, 2); return u16;
    case 4: memcpy(&u32, src, 4); return u32;
    default: memcpy(&u64, src, 8); return u64;
    }
}

static void sv2c_store_int(void *dst, unsigned csize, uint64_t v)
{
    uint8_t u8 = (uint8_t)v;
    uint16_t u16 = (uint16_t)v;
    uint32_t u32 = (uint32_t)v;
    switch (csize) {
    case 1: memcpy(dst, &u8, 1); break;
    case 2: memcpy(dst, &u16, 2); break;
    case 4: memcpy(dst, &u32, 4); break;
    default: memcpy(dst, &v, 8); break;
    }
}

#define SV2C_TLV_HEADER 5u

/* ---- encoding: check and size, then write ---------------------------------------------- */

/* An encoding error in field f (in element `elem` of it when >= 0), the Python codec's way:
   "<message>.<field>: element <i>: <reason>". Formatted only when it happens. */
static Sv2Status sv2c_fail_element(const Sv2cMessage *m, const Sv2cField *f, long elem,
                                   const char *fmt, ...)
{
    char reason[SV2C_ERROR_CAP];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    if (elem >= 0)
        return sv2c_fail(SV2_ERR_INVALID_ARGUMENT, m->name, f->name, -1, "element %ld: %s",
                         elem, reason);
    return sv2c_fail(SV2_ERR_INVALID_ARGUMENT, m->name, f->name, -1, "%s", reason);
}

/* Checks one value of type t at src (a C member or sequence element) and adds its wire
   size to *size. elem >= 0: it is element `elem` of a sequence, and the reason says so. */
static Sv2Status sv2c_check_value(const Sv2cType *t, const void *src, const Sv2cMessage *m,
                                  const Sv2cField *f, long elem, uint64_t *size)
{
    switch (t->kind) {
    case SV2C_INT: {
        uint64_t v = sv2c_load_int(src, t->csize);
        if (t->size < t->csize && v > t->max) /* U24 in a uint32_t */
            return sv2c_fail_element(m, f, elem, "%llu does not fit %s (0..%lu)",
                                     (unsigned long long)v, t->name, (unsigned long)t->max);
        *size += t->size;
        return SV2_OK;
    }
    case SV2C_BOOL: {
        uint8_t b;
        memcpy(&b, src, 1);
        if (b > 1)
            return sv2c_fail_element(m, f, elem, "BOOL needs true or false, got %u",
                                     (unsigned)b);
        *size += 1;
        return SV2_OK;
    }
    case SV2C_F32:
    case SV2C_FIXED:
        *size += t->size;
        return SV2_OK;
    case SV2C_BYTES: {
        Sv2cSpan s = sv2c_span(src);
        if (s.len > t->max)
            return sv2c_fail_element(m, f, elem, "%lu bytes do not fit %s (max %lu)",
                                     (unsigned long)s.len, t->name, (unsigned long)t->max);
        if (!s.data && s.len)
            return sv2c_fail_element(m, f, elem, "data is NULL but len is %lu",
                                     (unsigned long)s.len);
        *size += t->len_size + s.len;
        return SV2_OK;
    }
    default: { /* SV2C_SEQ, SV2C_TLV */
        Sv2cSpan s = sv2c_span(src);
        size_t i;
        Sv2Status st;
        if (s.len > t->max)
            return sv2c_fail_element(m, f, elem, "%lu elements do not fit %s (max %lu)",
                                     (unsigned long)s.len, t->name, (unsigned long)t->max);
        if (!s.data && s.len)
            return sv2c_fail_element(m, f, elem, "elements is NULL but len is %lu",
                                     (unsigned long)s.len);
        if (t->kind == SV2C_TLV) {
            if (s.len) { /* ext U16 | field U8, then the value with its U16 length */
                *size += 3;
                return sv2c_check_value(t->elem, s.data, m, f, -1, size);
            }
            return SV2_OK;
        }
        *size += t->len_size;
        if (t->elem->kind == SV2C_FIXED || t->elem->kind == SV2C_F32 ||
            (t->elem->kind == SV2C_INT && t->elem->size == t->elem->csize)) {
            *size += (uint64_t)s.len * t->elem->size; /* no element can be wrong */
            return SV2_OK;
        }
        for (i = 0; i < s.len; i++) {
            st = sv2c_check_value(t->elem, (const uint8_t *)s.data + i * t->elem_csize, m, f,
                                  (long)i, size);
            if (st != SV2_OK)
                return st;
        }
        return SV2_OK;
    }
    }
}

static Sv2Status sv2c_check_message(const Sv2Message *msg, const Sv2cMessage **mp,
                                    uint64_t *payload)
{
    const Sv2cMessage *m = sv2c_find((uint32_t)msg->type);
    const uint8_t *base = (const uint8_t *)msg;
    unsigned i, k;
    Sv2Status st;
    if (!m)
        return sv2c_fail(SV2_ERR_INVALID_ARGUMENT, NULL, NULL, -1,
                         "Sv2Message.type %d is not a known SV2_MSG_* value", (int)msg->type);
    *mp = m;
    *payload = 0;
    if (m->size && m->size(msg, payload) == 0)
        goto sized;
    for (i = 0; i < m->n_fields; i++) {
        const Sv2cField *f = &m->fields[i];
        st = sv2c_check_value(f->type, base + f->offset, m, f, -1, payload);
        if (st != SV2_OK)
            return st;
        if (f->n_choices) {
            uint64_t v = sv2c_load_int(base + f->offset, f->type->csize);
            for (k = 0; k < f->n_choices && f->choices[k] != v; k++)
                ;
            if (k == f->n_choices)
                return sv2c_fail(SV2_ERR_INVALID_ARGUMENT, m->name, f->name, -1,
                                 "%llu is not one of %s", (unsigned long long)v,
                                 f->choices_encode);
        }
    }
sized:
    if (*payload > SV2_MAX_PAYLOAD)
        return sv2c_fail(SV2_ERR_PAYLOAD_TOO_BIG, NULL, NULL, -1,
                         "frame payload of %llu bytes exceeds the limit of %lu bytes",
                         (unsigned long long)*payload, (unsigned long)SV2_MAX_PAYLOAD);
    return SV2_OK;
}

static uint8_t *sv2c_write_value(const Sv2cType *t, const void *src, uint8_t *p)
{
    switch (t->kind) {
    case SV2C_INT:
        return sv2c_put(p, sv2c_load_int(src, t->csize), t->size);
    case SV2C_BOOL:
        *p = *(const uint8_t *)src;
        return p + 1;
    case SV2C_F32:
        return sv2c_put(p, sv2c_float_bits(src), 4);
    case SV2C_FIXED:
        memcpy(p, src, t->size);
        return p + t->size;
    case SV2C_BYTES: {
        Sv2cSpan s = sv2c_span(src);
        p = sv2c_put(p, s.len, t->len_size);
        if (s.len)
            memcpy(p, s.data, s.len);
        return p + s.len;
    }
    default: {
        Sv2cSpan s = sv2c_span(src);
        size_t i;
        if (t->kind == SV2C_TLV) {
            if (!s.len)
                return p;
            p = sv2c_put(p, t->tlv_ext, 2);
            *p++ = t->tlv_field;
            return sv2c_write_value(t->elem, s.data, p);
        }
        p = sv2c_put(p, s.len, t->len_size);
        if (t->elem->kind == SV2C_FIXED) {
            if (s.len)
                memcpy(p, s.data, s.len * t->elem->size);
            return p + s.len * t->elem->size;
        }
        for (i = 0; i < s.len; i++)
            p = sv2c_write_value(t->elem, (const uint8_t *)s.data + i * t->elem_csize, p);
        return p;
    }
    }
}

static void sv2c_write_frame(const Sv2Message *msg, const Sv2cMessage *m, size_t payload,
                             uint8_t *p)
{
    const uint8_t *base = (const uint8_t *)msg;
    unsigned i;
    sv2c_put16(p, m->ext | (m->channel ? SV2_CHANNEL_BIT : 0));
    p[2] = m->msg_type;
    sv2c_put24(p + 3, (uint32_t)payload);
    p += SV2_FRAME_HEADER_SIZE;
    if (m->write) {
        m->write(msg, p);
        return;
    }
    for (i = 0; i < m->n_fields; i++)
        p = sv2c_write_value(m->fields[i].type, base + m->fields[i].offset, p);
}

SV2_API Sv2Status sv2_encoded_size(const Sv2Message *msg, size_t *size)
{
    const Sv2cMessage *m;
    uint64_t payload;
    Sv2Status st;
    if (!size)
        return sv2c_fail(SV2_ERR_INVALID_ARGUMENT, NULL, NULL, -1, "size is NULL");
    *size = 0;
    if (!msg)
        return sv2c_fail(SV2_ERR_INVALID_ARGUMENT, NULL, NULL, -1, "msg is NULL");
    st = sv2c_check_message(msg, &m, &payload);
    if (st == SV2_OK)
        *size = SV2_FRAME_HEADER_SIZE + (size_t)payload;
    return st;
}

SV2_API Sv2Status sv2_encode(const Sv2Message *msg, Sv2Bytes *frame)
{
    const Sv2cMessage *m;
    uint64_t payload;
    uint8_t *buf;
    Sv2Status st;
    if (!frame)
        return sv2c_fail(SV2_ERR_INVALID_ARGUMENT, NULL, NULL, -1, "frame is NULL");
    frame->data = NULL;
    frame->len = 0;
    if (!msg)
        return sv2c_fail(SV2_ERR_INVALID_ARGUMENT, NULL, NULL, -1, "msg is NULL");
    st = sv2c_check_message(msg, &m, &payload);
    if (st != SV2_OK)
        return st;
    buf = (uint8_t *)malloc(SV2_FRAME_HEADER_SIZE + (size_t)payload);
    if (!buf)
        return sv2c_out_of_memory(SV2_FRAME_HEADER_SIZE + (size_t)payload);
    sv2c_write_frame(msg, m, (size_t)payload, buf);
    frame->data = buf;
    frame->len = SV2_FRAME_HEADER_SIZE + (size_t)payload;
    return SV2_OK;
}

SV2_API Sv2Status sv2_encode_into(const Sv2Message *msg, uint8_t *buf, size_t cap,
                                  size_t *written)
{
    const Sv2cMessage *m;
    uint64_t payload;
    Sv2Status st;
    if (!written)
        return sv2c_fail(SV2_ERR_INVALID_ARGUMENT, NULL, NULL, -1, "written is NULL");
    *written = 0;
    if (!msg)
        return sv2c_fail(SV2_ERR_INVALID_ARGUMENT, NULL, NULL, -1, "msg is NULL");
    st = sv2c_check_message(msg, &m, &payload);
    if (st != SV2_OK)
        return st;
    *written = SV2_FRAME_HEADER_SIZE + (size_t)payload;
    if (!buf || cap < *written)
        return sv2c_fail(SV2_ERR_INVALID_ARGUMENT, NULL, NULL, -1,
                         "buf has room for %lu bytes, the frame needs %lu",
                         (unsigned long)(buf ? cap : 0), (unsigned long)*written);
    sv2c_write_frame(msg, m, (size_t)payload, buf);
    return SV2_OK;
}

/* ---- decoding: check and size, then fill ------------------------------------------------- */

/* Checks the value of type t at buf[*off] (errors as the Python codec: typed, with the
   message, field and byte offset), advances *off and adds the storage it needs to *store. */
static Sv2Status sv2c_scan_value(const Sv2cType *t, const uint8_t *buf, size_t n, size_t *off,
                                 const Sv2cMessage *m, const Sv2cField *f, size_t *store)
{
    size_t o = *off;
    switch (t->kind) {
    case SV2C_INT:
    case SV2C_BOOL:
    case SV2C_F32:
    case SV2C_FIXED:
        if (n - o < t->size)
            return sv2c_fail(SV2_ERR_DECODE, m->name, f->name, (long long)o,
                             "truncated %s: needs %u bytes, %lu left", t->name,
                             (unsigned)t->size, (unsigned long)(n - o));
        *off = o + t->size;
        return SV2_OK;
    case SV2C_BYTES: {
        size_t len;
        if (n - o < t->len_size)
            return sv2c_fail(SV2_ERR_DECODE, m->name, f->name, (long long)o,
                             "truncated %s: needs %u bytes, %lu left", t->name,
                             (unsigned)t->len_size, (unsigned long)(n - o));
        len = (size_t)sv2c_get(buf + o, t->len_size);
        if (len > t->max)
            return sv2c_fail(SV2_ERR_DECODE, m->name, f->name, (long long)o,
                             "length %lu exceeds the %s maximum of %lu", (unsigned long)len,
                             t->name, (unsigned long)t->max);
        o += t->len_size;
        if (n - o < len)
            return sv2c_fail(SV2_ERR_DECODE, m->name, f->name, (long long)o,
                             "truncated %s: length %lu, %lu bytes left", t->name,
                             (unsigned long)len, (unsigned long)(n - o));
        if (len || t->text)
            *store += SV2C_ALIGN(len + t->text);
        *off = o + len;
        return SV2_OK;
    }
    default: { /* SV2C_SEQ (a TLV's value is scanned as its element) */
        size_t count, i;
        Sv2Status st;
        if (n - o < t->len_size)
            return sv2c_fail(SV2_ERR_DECODE, m->name, f->name, (long long)o,
                             "truncated %s: needs %u bytes, %lu left", t->name,
                             (unsigned)t->len_size, (unsigned long)(n - o));
        count = (size_t)sv2c_get(buf + o, t->len_size);
        if (count > t->max)
            return sv2c_fail(SV2_ERR_DECODE, m->name, f->name, (long long)o,
                             "%lu elements exceed the %s limit of %lu", (unsigned long)count,
                             t->name, (unsigned long)t->max);
        o += t->len_size;
        if (count)
            *store += SV2C_ALIGN(count * t->elem_csize);
        if (t->elem->size && t->elem->kind != SV2C_BOOL) { /* fixed-size elements */
            size_t need = count * t->elem->size;
            if (n - o < need) { /* the first element that does not fit */
                size_t k = (n - o) / t->elem->size;
                o += k * t->elem->size;
                return sv2c_fail(SV2_ERR_DECODE, m->name, f->name, (long long)o,
                                 "truncated %s: needs %u bytes, %lu left", t->elem->name,
                                 (unsigned)t->elem->size, (unsigned long)(n - o));
            }
            *off = o + need;
            return SV2_OK;
        }
        for (i = 0; i < count; i++) {
            st = sv2c_scan_value(t->elem, buf, n, &o, m, f, store);
            if (st != SV2_OK)
                return st;
        }
        *off = o;
        return SV2_OK;
    }
    }
}

/* Writes the value checked by sv2c_scan_value into dst; variable parts go to *arena. */
static size_t sv2c_fill_value(const Sv2cType *t, const uint8_t *buf, size_t o, void *dst,
                              uint8_t **arena)
{
    switch (t->kind) {
    case SV2C_INT:
        sv2c_store_int(dst, t->csize, sv2c_get(buf + o, t->size));
        return o + t->size;
    case SV2C_BOOL: {
        bool b = (buf[o] & 1) != 0; /* receivers look at bit 0 only */
        memcpy(dst, &b, sizeof b);
        return o + 1;
    }
    case SV2C_F32:
        sv2c_store_float_bits(dst, sv2c_f32_from_wire(sv2c_get32(buf + o)));
        return o + 4;
    case SV2C_FIXED:
        memcpy(dst, buf + o, t->size);
        return o + t->size;
    case SV2C_BYTES: {
        size_t len = (size_t)sv2c_get(buf + o, t->len_size);
        o += t->len_size;
        if (len || t->text) {
            uint8_t *d = *arena;
            if (len)
                memcpy(d, buf + o, len);
            if (t->text)
                d[len] = 0;
            *arena += SV2C_ALIGN(len + t->text);
            sv2c_set_span(dst, d, len);
        } else {
            sv2c_set_span(dst, NULL, 0);
        }
        return o + len;
    }
    default: {
        size_t count = (size_t)sv2c_get(buf + o, t->len_size), i;
        uint8_t *elems = *arena;
        o += t->len_size;
        if (!count) {
            sv2c_set_span(dst, NULL, 0);
            return o;
        }
        *arena += SV2C_ALIGN(count * t->elem_csize);
        if (t->elem->kind == SV2C_FIXED) {
            memcpy(elems, buf + o, count * t->elem->size);
            o += count * t->elem->size;
        } else {
            for (i = 0; i < count; i++)
                o = sv2c_fill_value(t->elem, buf, o, elems + i * t->elem_csize, arena);
        }
        sv2c_set_span(dst, elems, count);
        return o;
    }
    }
}

/* The TLV fields after the last regular field (spec 3.4.3): any order; TLVs of other
   extensions or field types are skipped; a known one twice is an error. pos[k] gets the
   offset of field k's TLV value, or 0 when absent. */
static Sv2Status sv2c_scan_tlvs(const Sv2cMessage *m, unsigned first, const uint8_t *buf,
                                size_t n, size_t o, size_t *pos, size_t *store)
{
    unsigned k;
    Sv2Status st;
    for (k = first; k < m->n_fields; k++)
        pos[k] = 0;
    while (o < n) {
        unsigned ext, field_type;
        if (n - o < SV2C_TLV_HEADER)
            return sv2c_fail(SV2_ERR_DECODE, m->name, NULL, (long long)o,
                             "truncated TLV header: needs %u bytes, %lu left", SV2C_TLV_HEADER,
                             (unsigned long)(n - o));
        ext = (unsigned)sv2c_get(buf + o, 2);
        field_type = buf[o + 2];
        for (k = first; k < m->n_fields; k++)
            if (m->fields[k].type->tlv_ext == ext && m->fields[k].type->tlv_field == field_type)
                break;
        if (k == m->n_fields) {
            size_t len = (size_t)sv2c_get(buf + o + 3, 2);
            if (n - o - SV2C_TLV_HEADER < len)
                return sv2c_fail(SV2_ERR_DECODE, m->name, NULL, (long long)(o + SV2C_TLV_HEADER),
                                 "truncated TLV 0x%04x/0x%02x: length %lu, %lu bytes left",
                                 ext, field_type, (unsigned long)len,
                                 (unsigned long)(n - o - SV2C_TLV_HEADER));
            o += SV2C_TLV_HEADER + len;
            continue;
        }
        if (pos[k])
            return sv2c_fail(SV2_ERR_DECODE, m->name, m->fields[k].name, (long long)o,
                             "TLV 0x%04x/0x%02x appears twice", ext, field_type);
        pos[k] = o + 3;
        o += 3;
        st = sv2c_scan_value(m->fields[k].type->elem, buf, n, &o, m, &m->fields[k], store);
        if (st != SV2_OK)
            return st;
        *store += SV2C_ALIGN(sizeof(Sv2Bytes)); /* the OPTION's one element */
    }
    return SV2_OK;
}

#define SV2C_MAX_FIELDS 32

/* Decodes payload buf[0..n) of message m into *out (zeroed by the caller). */
static Sv2Status sv2c_decode_payload(const Sv2cMessage *m, const uint8_t *buf, size_t n,
                                     Sv2Message *out)
{
    uint8_t *base = (uint8_t *)out, *arena;
    size_t off = 0, store = 0, pos[SV2C_MAX_FIELDS];
    unsigned i, k, n_regular = m->n_fields;
    Sv2Status st;

    if (m->decode && m->decode(buf, n, out) == 0)
        return SV2_OK;
    memset(base + m->member, 0, m->c_size);
    for (i = 0; i < m->n_fields; i++) {
        const Sv2cField *f = &m->fields[i];
        if (f->type->kind == SV2C_TLV) {
            n_regular = i;
            break;
        }
        pos[i] = off;
        if (off == n && f->has_default)
            continue;
        st = sv2c_scan_value(f->type, buf, n, &off, m, f, &store);
        if (st != SV2_OK)
            return st;
        if (f->n_choices) {
            uint64_t v = sv2c_get(buf + pos[i], f->type->size);
            for (k = 0; k < f->n_choices && f->choices[k] != v; k++)
                ;
            if (k == f->n_choices)
                return sv2c_fail(SV2_ERR_DECODE, m->name, f->name, (long long)pos[i],
                                 "%llu is not a defined value %s", (unsigned long long)v,
                                 f->choices_decode);
        }
    }
    if (n_regular < m->n_fields) {
        st = sv2c_scan_tlvs(m, n_regular, buf, n, off, pos, &store);
        if (st != SV2_OK)
            return st;
    } else if (off != n) {
        return sv2c_fail(SV2_ERR_DECODE, m->name, NULL, (long long)off,
                         "%lu trailing bytes after the last field", (unsigned long)(n - off));
    }
    arena = NULL;
    if (store) {
        arena = (uint8_t *)malloc(store);
        if (!arena)
            return sv2c_out_of_memory(store);
        out->storage = arena;
    }
    for (i = 0; i < n_regular; i++) {
        const Sv2cField *f = &m->fields[i];
        if (pos[i] == n && f->has_default)
            sv2c_store_int(base + f->offset, f->type->csize, f->absent_default);
        else
            sv2c_fill_value(f->type, buf, pos[i], base + f->offset, &arena);
    }
    for (i = n_regular; i < m->n_fields; i++) {
        if (pos[i]) { /* an OPTION of one value: the element, then its bytes */
            uint8_t *elem = arena;
            arena += SV2C_ALIGN(sizeof(Sv2Bytes));
            sv2c_fill_value(m->fields[i].type->elem, buf, pos[i], elem, &arena);
            sv2c_set_span(base + m->fields[i].offset, elem, 1);
        }
    }
    return SV2_OK;
}

static void sv2c_clear(Sv2Message *out)
{
    memset(out, 0, sizeof *out);
}

/* not a status of the API: a frame of an extension this codec has no messages for, which
   the streaming decoder skips silently (spec 3.4.1: unknown extensions are ignored) */
#define SV2C_DISCARD ((Sv2Status)100)

/* One frame at data[0..avail): SV2_NEED_MORE_DATA, SV2C_DISCARD, or the frame's size in
   *frame_len and its message in *out (or an error). */
static Sv2Status sv2c_decode_frame(const uint8_t *data, size_t avail, size_t max_payload,
                                   Sv2Message *out, size_t *frame_len)
{
    unsigned ext_field, ext, msg_type, channel;
    size_t len;
    const Sv2cMessage *m;
    Sv2Status st;
    if (avail < SV2_FRAME_HEADER_SIZE)
        return SV2_NEED_MORE_DATA;
    ext_field = (unsigned)sv2c_get(data, 2);
    ext = ext_field & SV2_EXTENSION_TYPE_MASK;
    channel = (ext_field & SV2_CHANNEL_BIT) != 0;
    msg_type = data[2];
    len = (size_t)sv2c_get(data + 3, 3);
    if (len > max_payload)
        return sv2c_fail(SV2_ERR_PAYLOAD_TOO_BIG, NULL, NULL, -1,
                         "frame payload of %lu bytes exceeds the limit of %lu bytes",
                         (unsigned long)len, (unsigned long)max_payload);
    if (avail - SV2_FRAME_HEADER_SIZE < len)
        return SV2_NEED_MORE_DATA;
    *frame_len = SV2_FRAME_HEADER_SIZE + len;
    if (!sv2c_known_extension(ext))
        return SV2C_DISCARD;
    m = sv2c_find(ext << 8 | msg_type);
    if (!m)
        return sv2c_fail(SV2_ERR_UNKNOWN_MESSAGE, NULL, NULL, -1,
                         "unknown message type 0x%02x (extension_type 0x%04x)", msg_type, ext);
    out->type = (Sv2MsgType)m->type;
    st = sv2c_decode_payload(m, data + SV2_FRAME_HEADER_SIZE, len, out);
    if (st == SV2_OK && channel != m->channel) {
        free(out->storage);
        st = sv2c_fail(SV2_ERR_DECODE, m->name, NULL, -1,
                       "channel_msg bit is %u, the spec says %u", channel, (unsigned)m->channel);
    }
    if (st != SV2_OK)
        sv2c_clear(out);
    return st;
}

SV2_API Sv2Status sv2_decode(const uint8_t *data, size_t len, Sv2Message *out,
                             size_t *consumed)
{
    size_t frame_len = 0;
    Sv2Status st;
    if (!consumed)
        return sv2c_fail(SV2_ERR_INVALID_ARGUMENT, NULL, NULL, -1, "consumed is NULL");
    *consumed = 0;
    if (!out)
        return sv2c_fail(SV2_ERR_INVALID_ARGUMENT, NULL, NULL, -1, "out is NULL");
    out->type = (Sv2MsgType)0;
    out->storage = NULL;
    if (!data && len)
        return sv2c_fail(SV2_ERR_INVALID_ARGUMENT, NULL, NULL, -1,
                         "data is NULL but len is %lu", (unsigned long)len);
    st = sv2c_decode_frame(data, len, SV2_MAX_PAYLOAD, out, &frame_len);
    if (st != SV2_NEED_MORE_DATA)
        *consumed = frame_len;
    if (st != SV2_OK)
        sv2c_clear(out);
    if (st == SV2C_DISCARD)
        return sv2c_fail(SV2_ERR_UNKNOWN_MESSAGE, NULL, NULL, -1,
                         "extension_type 0x%04x has no messages here (msg_type 0x%02x); "
                         "skip the frame", (unsigned)(sv2c_get(data, 2) & SV2_EXTENSION_TYPE_MASK),
                         (unsigned)data[2]);
    return st;
}

SV2_API void sv2_message_free(Sv2Message *msg)
{
    if (!msg)
        return;
    free(msg->storage);
    memset(msg, 0, sizeof *msg);
}

SV2_API void sv2_bytes_free(Sv2Bytes *bytes)
{
    if (!bytes)
        return;
    free((void *)bytes->data);
    bytes->data = NULL;
    bytes->len = 0;
}

/* ---- the streaming decoder ---------------------------------------------------------------- */

#define SV2C_DECODER_MAGIC 0x53763244u /* "Sv2D" */

typedef struct Sv2cDecoder {
    uint32_t magic;
    int failed;                  /* a frame above the limit: the stream is unusable */
    size_t max_payload;
    uint8_t *buf;
    size_t cap, start, end;      /* buffered bytes are buf[start..end) */
    char failure[SV2C_ERROR_CAP];
} Sv2cDecoder;

#ifdef SV2_CODEC_LIBSV2
/* libsv2: a handle is a table entry, never dereferenced before it is looked up. */
Sv2Decoder *sv2i_handle_add(void *obj);
void *sv2i_handle_get(Sv2Decoder *handle);
void *sv2i_handle_remove(Sv2Decoder *handle);
#define SV2C_ADD(impl) sv2i_handle_add(impl)
#define SV2C_GET(h) ((Sv2cDecoder *)sv2i_handle_get(h))
#define SV2C_REMOVE(h) ((Sv2cDecoder *)sv2i_handle_remove(h))
#else
static Sv2cDecoder *sv2c_standalone_get(Sv2Decoder *h)
{
    Sv2cDecoder *d = (Sv2cDecoder *)(void *)h;
    if (!d) {
        sv2c_fail(SV2_ERR_INVALID_ARGUMENT, NULL, NULL, -1, "Sv2Decoder handle is NULL");
        return NULL;
    }
    if (d->magic != SV2C_DECODER_MAGIC) {
        sv2c_fail(SV2_ERR_INVALID_ARGUMENT, NULL, NULL, -1,
                  "%p is not a live Sv2Decoder handle (freed, or never returned by libsv2)",
                  (void *)h);
        return NULL;
    }
    return d;
}
#define SV2C_ADD(impl) ((Sv2Decoder *)(void *)(impl))
#define SV2C_GET(h) sv2c_standalone_get(h)
#define SV2C_REMOVE(h) sv2c_standalone_get(h)
#endif

SV2_API Sv2Decoder *sv2_decoder_new_with_limit(size_t max_payload)
{
    Sv2cDecoder *d;
    Sv2Decoder *h;
    if (max_payload > SV2_MAX_PAYLOAD) {
        sv2c_fail(SV2_ERR_INVALID_ARGUMENT, NULL, NULL, -1, "max_payload must be in 0..%lu",
                  (unsigned long)SV2_MAX_PAYLOAD);
        return NULL;
    }
    d = (Sv2cDecoder *)calloc(1, sizeof *d);
    if (!d) {
        sv2c_out_of_memory(sizeof *d);
        return NULL;
    }
    d->magic = SV2C_DECODER_MAGIC;
    d->max_payload = max_payload;
    h = SV2C_ADD(d);
    if (!h) {
        free(d);
        sv2c_out_of_memory(sizeof *d);
    }
    return h;
}

SV2_API Sv2Decoder *sv2_decoder_new(void)
{
    return sv2_decoder_new_with_limit(SV2_MAX_PAYLOAD);
}

SV2_API Sv2Status sv2_decoder_feed(Sv2Decoder *dec, const uint8_t *data, size_t len)
{
    Sv2cDecoder *d = SV2C_GET(dec);
    if (!d)
        return SV2_ERR_INVALID_ARGUMENT;
    if (!len)
        return SV2_OK;
    if (!data)
        return sv2c_fail(SV2_ERR_INVALID_ARGUMENT, NULL, NULL, -1,
                         "data is NULL but len is %lu", (unsigned long)len);
    if (d->start == d->end)
        d->start = d->end = 0;
    if (d->cap - d->end < len) {
        if (d->start) { /* move the unread bytes to the front first */
            memmove(d->buf, d->buf + d->start, d->end - d->start);
            d->end -= d->start;
            d->start = 0;
        }
        if (d->cap - d->end < len) {
            size_t cap = d->cap ? d->cap : 256;
            uint8_t *nb;
            while (cap - d->end < len) {
                if (cap > ((size_t)-1) / 2) {
                    cap = d->end + len;
                    break;
                }
                cap *= 2;
            }
            nb = (uint8_t *)realloc(d->buf, cap);
            if (!nb)
                return sv2c_out_of_memory(cap);
            d->buf = nb;
            d->cap = cap;
        }
    }
    memcpy(d->buf + d->end, data, len);
    d->end += len;
    return SV2_OK;
}

SV2_API Sv2Status sv2_decoder_next(Sv2Decoder *dec, Sv2Message *out)
{
    Sv2cDecoder *d = SV2C_GET(dec);
    Sv2Status st;
    if (!d)
        return SV2_ERR_INVALID_ARGUMENT;
    if (!out)
        return sv2c_fail(SV2_ERR_INVALID_ARGUMENT, NULL, NULL, -1, "out is NULL");
    out->type = (Sv2MsgType)0;
    out->storage = NULL;
    if (d->failed) {
        sv2c_clear(out);
        sv2i_set_error(d->failure);
        return SV2_ERR_PAYLOAD_TOO_BIG;
    }
    for (;;) {
        size_t frame_len = 0;
        st = sv2c_decode_frame(d->buf + d->start, d->end - d->start, d->max_payload, out,
                               &frame_len);
        if (st == SV2_NEED_MORE_DATA) {
            sv2c_clear(out);
            return st;
        }
        if (st == SV2_ERR_PAYLOAD_TOO_BIG) {
            d->failed = 1;
            {
                const char *why = sv2_last_error();
                size_t n = strlen(why);
                if (n >= sizeof d->failure)
                    n = sizeof d->failure - 1;
                memcpy(d->failure, why, n);
                d->failure[n] = '\0';
            }
            sv2c_clear(out);
            return st;
        }
        d->start += frame_len;
        if (st != SV2C_DISCARD)
            return st;
    }
}

SV2_API void sv2_decoder_free(Sv2Decoder *dec)
{
    Sv2cDecoder *d;
    if (!dec)
        return;
    d = SV2C_REMOVE(dec);
    if (!d)
        return;
    d->magic = 0;
    free(d->buf);
    free(d);
}
"""

"""Render the C face of the schema: ``include/sv2.h``, the cffi cdef, the C wrappers.

Everything here is a pure function of ``schema`` and ``abi``: same input, same bytes,
whatever the machine or the dict order, so a generated file can be committed and
drift-checked.  The header and the cdef are two renderings of one declaration model
(cffi's ``embedding_api()`` accepts no ``#`` lines and no comments are needed there), and
the wrappers are the exported C functions that forward to cffi's extern "Python" entry
points.

C mapping of SV2 types (``c_field``):
  U8..U64 -> uint8_t..uint64_t (U24 in uint32_t), BOOL -> bool, F32 -> float,
  U256/PUBKEY/SIGNATURE -> uint8_t[N], B0_*/STR0_255 -> Sv2Bytes {data, len},
  SEQ0_255/SEQ0_64K/OPTION -> Sv2<Elem>Seq {elements, len} (OPTION: len 0 or 1).
"""

from __future__ import annotations

import re
import textwrap

from .. import schema
from ..schema import MessageSpec, Sv2Type
from . import abi

WIDTH = 96
HEADER_PATH = "include/sv2.h"
GUARD = "SV2_H"

# ---- type mapping ----------------------------------------------------------------------


def elem_tag(t: Sv2Type) -> str:
    """CamelCase tag naming a C representation: U256, Pubkey, Bool, Bytes, U256Seq."""
    if t.kind == "bytes":
        return "Bytes"
    if t.kind == "seq":
        return elem_tag(t.elem) + "Seq"
    if re.fullmatch(r"[A-Z]\d+", t.name):
        return t.name
    return t.name.capitalize()


def seq_struct_name(t: Sv2Type) -> str:
    assert t.kind == "seq"
    return f"Sv2{elem_tag(t)}"


def c_field(t: Sv2Type, name: str) -> str:
    """The C declarator of a struct member holding a value of type t."""
    if t.kind in ("int", "bool", "f32"):
        return f"{t.c_type} {name}"
    if t.kind == "fixed":
        return f"uint8_t {name}[{t.size}]"
    if t.kind == "bytes":
        return f"Sv2Bytes {name}"
    if t.kind == "seq":
        return f"{seq_struct_name(t)} {name}"
    raise ValueError(f"no C mapping for {t.name}")


def seq_elements_decl(t: Sv2Type) -> str:
    """Declarator of the ``elements`` member of a sequence struct."""
    e = t.elem
    if e.kind in ("int", "bool", "f32"):
        return f"const {e.c_type} *elements"
    if e.kind == "fixed":
        return f"const uint8_t (*elements)[{e.size}]"
    if e.kind == "bytes":
        return "const Sv2Bytes *elements"
    if e.kind == "seq":
        return f"const {seq_struct_name(e)} *elements"
    raise ValueError(f"no C mapping for {e.name}")


def seq_types() -> list[Sv2Type]:
    """Distinct sequence representations used by messages, inner ones first."""
    out: dict[str, Sv2Type] = {}

    def visit(t: Sv2Type) -> None:
        if t.kind == "seq":
            visit(t.elem)
            out.setdefault(seq_struct_name(t), t)

    for m in schema.MESSAGES:
        for f in m.fields:
            visit(f.type)
    return list(out.values())


def message_struct_name(m: MessageSpec) -> str:
    return f"Sv2{m.class_name}"


def msg_type_value(m: MessageSpec) -> int:
    """Sv2Message.type: msg_type in bits 0-7, extension_type in bits 8-22 (so extension
    0x0001's RequestExtensions, msg_type 0x00, is 0x100)."""
    return (m.extension_type << 8) | m.msg_type


# ---- text helpers ----------------------------------------------------------------------


def _block_comment(text: str, indent: str = "") -> list[str]:
    lines = textwrap.wrap(text, WIDTH - len(indent) - 4, break_on_hyphens=False)
    if len(lines) == 1 and len(lines[0]) + len(indent) + 7 <= WIDTH:
        return [f"{indent}/** {lines[0]} */"]
    return [f"{indent}/**"] + [f"{indent} * {ln}" for ln in lines] + [f"{indent} */"]


def _member(decl: str, doc: str, indent: str = "    ") -> list[str]:
    return _block_comment(doc, indent) + [f"{indent}{decl};"] if doc else [f"{indent}{decl};"]


def _field_doc(f: schema.Field) -> str:
    doc = f"{f.type.name}: {f.doc}" if f.doc else f.type.name
    if f.type.kind == "bytes" and f.type.text:
        doc += " (text; NUL-terminated in decoded messages)"
    elif f.type.kind == "seq" and f.type.max_len == 1:
        doc += " (len 0: absent, len 1: elements[0] is the value)"
    return doc


# ---- the declaration model, rendered with or without docs -----------------------------


def _status_enum(docs: bool) -> list[str]:
    out = _block_comment("What every fallible function returns: SV2_OK, SV2_NEED_MORE_DATA "
                         "(> 0) or an error (< 0; sv2_last_error() says why).") if docs else []
    out.append("typedef enum Sv2Status {")
    for name, value, doc in abi.STATUS_CODES:
        if docs:
            out += _block_comment(doc, "    ")
        out.append(f"    {name} = {value},")
    out.append("} Sv2Status;")
    return out


def _msg_type_enum(docs: bool) -> list[str]:
    out = _block_comment("Values of Sv2Message.type: the SV2 msg_type in bits 0-7 and the "
                         "frame's extension_type (without the channel bit) in bits 8-22, so "
                         "every (extension_type, msg_type) pair has its own value.") if docs else []
    out.append("typedef enum Sv2MsgType {")
    for m in schema.MESSAGES:
        if docs:
            out += _block_comment(f"{m.name} ({m.protocol}): {m.doc}", "    ")
        out.append(f"    SV2_MSG_{m.const_name} = 0x{msg_type_value(m):02x},")
    out.append("} Sv2MsgType;")
    return out


def _bytes_struct(docs: bool) -> list[str]:
    out = []
    if docs:
        out += _block_comment(
            "A byte string: len bytes at data. In messages C builds, data points at the "
            "caller's memory (may be NULL when len is 0). Returned by the library: owned by "
            "the message (sv2_message_free) or by the caller (sv2_bytes_free).")
    out.append("typedef struct Sv2Bytes {")
    out += _member("const uint8_t *data", "first byte" if docs else "")
    out += _member("size_t len", "number of bytes" if docs else "")
    out.append("} Sv2Bytes;")
    return out


def _seq_struct(t: Sv2Type, docs: bool) -> list[str]:
    name = seq_struct_name(t)
    out = []
    if docs:
        out += _block_comment(f"A sequence of {t.elem.name}: len elements at elements "
                              "(for OPTION fields len is 0 or 1).")
    out.append(f"typedef struct {name} {{")
    out += _member(seq_elements_decl(t), "first element" if docs else "")
    out += _member("size_t len", "number of elements" if docs else "")
    out.append(f"}} {name};")
    return out


def _message_struct(m: MessageSpec, docs: bool) -> list[str]:
    name = message_struct_name(m)
    out = []
    if docs:
        chan = ", channel message" if m.channel_msg else ""
        ext = f"extension_type 0x{m.extension_type:04x}, " if m.extension_type else ""
        out += _block_comment(f"{m.name} ({m.protocol}, {ext}msg_type 0x{m.msg_type:02x}"
                              f"{chan}): {m.doc}")
    out.append(f"typedef struct {name} {{")
    if not m.fields:
        out += _member("uint8_t unused", "messages without fields still need a member"
                       if docs else "")
    for f in m.fields:
        out += _member(c_field(f.type, f.name), _field_doc(f) if docs else "")
    out.append(f"}} {name};")
    return out


def _message_union(docs: bool) -> list[str]:
    out = []
    if docs:
        out += _block_comment(
            "Any SV2 message: type says which union member is valid, e.g. "
            "msg.type == SV2_MSG_NEW_TEMPLATE and msg.new_template.template_id.")
    out.append("typedef struct Sv2Message {")
    out += _member("Sv2MsgType type", "which member of the union below is valid"
                   if docs else "")
    out += _member("void *storage",
                   "library-private: the single allocation holding the bytes of a message "
                   "the library returned (NULL otherwise); sv2_encode ignores it"
                   if docs else "")
    out.append("    union {")
    for m in schema.MESSAGES:
        out.append(f"        {message_struct_name(m)} {m.snake_name};")
    if docs:
        out += _block_comment(
            f"not a message: fixes the union at {schema.C_UNION_RESERVED} bytes, so "
            "messages added later never change sizeof(Sv2Message)", "        ")
    out.append(f"        uint64_t reserved[{schema.C_UNION_RESERVED // 8}];")
    out.append("    };")
    out.append("} Sv2Message;")
    return out


def _helper_struct(s: abi.Struct, docs: bool) -> list[str]:
    out = _block_comment(s.doc) if docs else []
    out.append(f"typedef struct {s.name} {{")
    for f in s.fields:
        sep = "" if f.ctype.endswith("*") else " "
        out += _member(f"{f.ctype}{sep}{f.name}{f.suffix}", f.doc if docs else "")
    out.append(f"}} {s.name};")
    return out


def types(docs: bool, codec_only: bool = False) -> list[list[str]]:
    """Every type declaration, one list of lines per declaration, in dependency order.
    ``codec_only``: just the codec's (sv2_codec.h): no connection, TP or key types."""
    decls = [_status_enum(docs), _msg_type_enum(docs), _bytes_struct(docs)]
    decls += [_seq_struct(t, docs) for t in seq_types()]
    decls += [_message_struct(m, docs) for m in schema.MESSAGES]
    decls.append(_message_union(docs))
    for name, doc in abi.OPAQUE_TYPES:
        if codec_only and name != "Sv2Decoder":
            continue
        decls.append((_block_comment(f"Opaque handle: {doc}.") if docs else [])
                     + [f"typedef struct {name} {name};"])
    if codec_only:
        return decls
    for decl, doc in abi.TYPEDEFS:
        decls.append((_block_comment(doc) if docs else []) + [decl + ";"])
    decls += [_helper_struct(s, docs) for s in abi.HELPER_STRUCTS]
    return decls


# ---- header --------------------------------------------------------------------------


def _define(c: abi.Constant) -> str:
    if isinstance(c.value, str):
        value = '"' + c.value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    elif c.hex:
        value = f"0x{c.value:04x}"
    else:
        value = str(c.value)
    return f"#define SV2_{c.name} {value}"


def _section(title: str) -> list[str]:
    return ["", f"/* ---- {title} " + "-" * max(4, WIDTH - len(title) - 12) + " */", ""]


def render_header() -> str:
    """The text of include/sv2.h."""
    out = [
        f"/* sv2.h: the C API of libsv2 (sv2ffi), ABI version {abi.ABI_VERSION}.",
        " *",
        " * GENERATED FILE, DO NOT EDIT. It is rendered from sv2ffi/schema.py and",
        " * sv2ffi/capi/abi.py by `python scripts/build_header.py`, and checked against them",
        " * by `python scripts/build_header.py --check` (CI and the pre-push hook).",
        " *",
        " * C11, usable unchanged from C++. Guide (ownership, threading, errors, example):",
        " * docs/c-api.md. Status: every function returning Sv2Status gives SV2_OK (0),",
        " * SV2_NEED_MORE_DATA (> 0) or an error (< 0) and then sv2_last_error() says why.",
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
    ]
    for title, consts in abi.constants():
        out += _section(title)
        for c in consts:
            out += _block_comment(c.doc)
            out.append(_define(c))
    out += _section("Types")
    for i, decl in enumerate(types(docs=True)):
        if i:
            out.append("")
        out += decl
    groups: dict[str, list[abi.Function]] = {}
    for f in abi.FUNCTIONS:
        groups.setdefault(f.group, []).append(f)
    for group, funcs in groups.items():
        out += _section(f"Functions: {group}")
        for i, f in enumerate(funcs):
            if i:
                out.append("")
            out += _block_comment(f.doc)
            out.append(f.decl() + ";")
    out += ["", "#ifdef __cplusplus", "}", "#endif", "", f"#endif /* {GUARD} */", ""]
    return "\n".join(out)


# ---- cffi ----------------------------------------------------------------------------


def render_cdef() -> str:
    """Declarations for ``ffi.embedding_api()``: the types and the extern "Python"
    entry points (internal names; the public names are the C wrappers)."""
    out: list[str] = []
    for decl in types(docs=False):
        out += decl
    for f in abi.python_functions():
        out.append(f.decl(f.internal_name) + ";")
    return "\n".join(out) + "\n"


# ---- C wrappers -----------------------------------------------------------------------


def render_internal_header() -> str:
    """sv2_internal.h: what the generated wrappers and glue.c share."""
    out = [
        "/* sv2_internal.h: GENERATED by sv2ffi/capi/render.py. Private to libsv2. */",
        "#ifndef SV2_INTERNAL_H",
        "#define SV2_INTERNAL_H",
        '#include "sv2.h"',
        "",
        '#define SV2I_EXPORT __attribute__((visibility("default")))',
        "",
        "/* glue.c */",
        "int sv2i_enter(void);",
        "int sv2i_is_ready(void);",
        "void sv2i_init_failed(void);",
        "void sv2i_set_error(const char *msg);",
        "",
        "/* handles.c: the C side of the handle table (decoders live in C) */",
        "Sv2Decoder *sv2i_handle_add(void *obj);",
        "void *sv2i_handle_get(Sv2Decoder *handle);",
        "void *sv2i_handle_remove(Sv2Decoder *handle);",
        "",
        "/* extern \"Python\" entry points generated by cffi */",
    ]
    out += [f.decl(f.internal_name) + ";" for f in abi.python_functions()]
    out += ["", "#endif", ""]
    return "\n".join(out)


def _wrapper(f: abi.Function) -> list[str]:
    fail = abi.failure_value(f.ret)
    args = ", ".join(p.name for p in f.params)
    ret_fail = f"return {fail};" if fail else "return;"
    out = [f"SV2I_EXPORT {f.decl()}", "{"]
    if f.ret == "void":
        out += [f"    if (!sv2i_enter()) {ret_fail}",
                f"    {f.internal_name}({args});",
                "    if (!sv2i_is_ready()) sv2i_init_failed();"]
    else:
        out += [f"    {f.ret}{'' if f.ret.endswith('*') else ' '}r;",
                f"    if (!sv2i_enter()) {ret_fail}",
                f"    r = {f.internal_name}({args});",
                f"    if (!sv2i_is_ready()) {{ sv2i_init_failed(); {ret_fail} }}",
                "    return r;"]
    out.append("}")
    return out


def render_wrappers() -> str:
    """sv2_exports.c: one exported C function per Python-implemented API function."""
    out = [
        "/* sv2_exports.c: GENERATED by sv2ffi/capi/render.py from sv2ffi/capi/abi.py.",
        " * Each exported function makes sure Python runs (sv2i_enter), calls the cffi",
        " * extern \"Python\" entry point, and turns a failed start-up into an error status",
        " * instead of cffi's silent zero result. (The codec is C: sv2_codec.c.) */",
        '#include "sv2_internal.h"',
    ]
    for f in abi.python_functions():
        out.append("")
        out += _wrapper(f)
    out.append("")
    return "\n".join(out)

#!/usr/bin/env python3
"""Render include/sv2.h (and the cffi cdef) from the schema, or check the committed one.

    python scripts/build_header.py            # (re)write include/sv2.h
    python scripts/build_header.py --check    # exit 1 if include/sv2.h drifted
    python scripts/build_header.py --cdef     # print the cffi declarations

The text comes from ``sv2ffi.capi.render`` (same schema, same bytes).  ``--check``
parses the committed header and the freshly rendered one with pycparser and compares
their declarations (types, struct members, enum values, prototypes, #define values) one
by one, so the report names what changed ("struct Sv2NewTemplate: member template_id
...") instead of dumping a wall of text.  Comment-only differences fail too, with a
text diff: the doc comments are generated from the schema as well.
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's sv2ffi, not an installed one

from sv2ffi.capi import render  # noqa: E402

HEADER = ROOT / render.HEADER_PATH
FIX = "python scripts/build_header.py && git add include/sv2.h"

# what <stdint.h>, <stddef.h> and <stdbool.h> would provide, for pycparser
PRELUDE = """
typedef unsigned char uint8_t; typedef unsigned short uint16_t; typedef unsigned int uint32_t;
typedef unsigned long uint64_t; typedef unsigned long uintptr_t; typedef unsigned long size_t;
typedef signed char int8_t; typedef short int16_t; typedef int int32_t; typedef long int64_t;
typedef _Bool bool;
"""
PRELUDE_NAMES = set(re.findall(r"(\w+);", PRELUDE))


class HeaderError(Exception):
    """The header cannot be read as declarations at all."""


def _strip_comments(text: str) -> str:
    def repl(m: re.Match) -> str:
        s = m.group(0)
        if s.startswith("/"):
            return " " if s.startswith("/*") and "\n" not in s else "\n" * s.count("\n")
        return s  # a string literal

    return re.sub(r'"(?:\\.|[^"\\])*"|/\*.*?\*/|//[^\n]*', repl, text, flags=re.S)


def _preprocess(text: str) -> tuple[str, dict[str, str]]:
    """Evaluate the few directives a generated header uses; return C text and #defines.

    ``__cplusplus`` is taken as undefined (the C view); include guards work because
    #define adds to the defined set.
    """
    defines: dict[str, str] = {}
    keep: list[bool] = []
    out: list[str] = []
    for lineno, line in enumerate(_strip_comments(text).split("\n"), 1):
        s = line.strip()
        active = all(keep)
        if not s.startswith("#"):
            out.append(line if active else "")
            continue
        out.append("")
        m = re.match(r"#\s*(\w+)\s*(.*)", s)
        directive, rest = (m.group(1), m.group(2).strip()) if m else ("", "")
        if directive in ("ifdef", "ifndef"):
            cond = rest in defines
            keep.append(cond if directive == "ifdef" else not cond)
        elif directive == "endif":
            if not keep:
                raise HeaderError(f"line {lineno}: #endif without #if")
            keep.pop()
        elif directive == "else":
            if not keep:
                raise HeaderError(f"line {lineno}: #else without #if")
            keep[-1] = not keep[-1]
        elif not active:
            continue
        elif directive == "define":
            dm = re.match(r"(\w+)\s*(.*)", rest)
            if not dm:
                raise HeaderError(f"line {lineno}: malformed #define")
            if dm.group(1) in defines:
                raise HeaderError(f"line {lineno}: {dm.group(1)} defined twice")
            defines[dm.group(1)] = dm.group(2).strip()
        elif directive == "include":
            continue
        else:
            raise HeaderError(f"line {lineno}: unexpected directive #{directive}")
    if keep:
        raise HeaderError("unterminated #if block")
    return "\n".join(out), defines


def declarations(text: str) -> dict[str, str]:
    """name -> canonical text of every declaration and #define in a header."""
    from pycparser import c_ast, c_generator, c_parser
    from pycparser.c_parser import ParseError

    body, defines = _preprocess(text)
    try:
        ast = c_parser.CParser().parse(PRELUDE + body, filename="sv2.h")
    except ParseError as e:
        raise HeaderError(f"not parseable C: {e}") from None
    gen = c_generator.CGenerator()
    out: dict[str, str] = {}
    for name, value in defines.items():
        if value:  # the include guard has no value
            out[f"#define {name}"] = f"#define {name} {value}"
    for node in ast.ext:
        if isinstance(node, c_ast.Typedef):
            if node.name in PRELUDE_NAMES:
                continue
            inner = node.type.type
            kind = {c_ast.Struct: "struct", c_ast.Enum: "enum", c_ast.Union: "union"}.get(
                type(inner), "typedef")
            key = f"{kind} {node.name}"
        elif isinstance(node, c_ast.Decl) and isinstance(node.type, c_ast.FuncDecl):
            key = f"function {node.name}"
        elif isinstance(node, c_ast.Decl):
            key = f"declaration {node.name or gen.visit(node)}"
        else:
            key = f"{type(node).__name__} {gen.visit(node)[:40]}"
        canon = gen.visit(node)
        if key in out:
            raise HeaderError(f"{key} declared twice")
        out[key] = canon
    return out


def compare(committed: str, expected: str) -> list[str]:
    """Readable report lines; empty when the committed header is what the schema implies."""
    try:
        have = declarations(committed)
    except HeaderError as e:
        return [f"the committed header does not parse: {e}"]
    want = declarations(expected)
    report: list[str] = []
    for key in sorted(want.keys() - have.keys()):
        report.append(f"missing  {key}: the schema implies it, the header lacks it")
        report += [f"    + {ln}" for ln in want[key].splitlines()]
    for key in sorted(have.keys() - want.keys()):
        report.append(f"extra    {key}: in the header, not implied by the schema")
        report += [f"    - {ln}" for ln in have[key].splitlines()]
    for key in sorted(have.keys() & want.keys()):
        if have[key] != want[key]:
            report.append(f"changed  {key}:")
            for ln in difflib.unified_diff(have[key].splitlines(), want[key].splitlines(),
                                           "header", "schema", lineterm="", n=1):
                if not ln.startswith(("---", "+++")):
                    report.append(f"    {ln}")
    if not report and committed != expected:
        report.append("the declarations match, but the text (doc comments or layout) differs:")
        diff = list(difflib.unified_diff(committed.splitlines(), expected.splitlines(),
                                         "header", "generated", lineterm="", n=1))
        report += [f"    {ln}" for ln in diff[2:42]]
        if len(diff) > 42:
            report.append(f"    ... {len(diff) - 42} more diff lines")
    return report


def check(path: Path) -> int:
    expected = render.render_header()
    try:
        committed = path.read_text()
    except OSError as e:
        print(f"{path}: cannot read it ({e.strerror}); generate it with: {FIX}", file=sys.stderr)
        return 1
    report = compare(committed, expected)
    if not report:
        print(f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}: "
              "up to date with the schema")
        return 0
    print(f"{path}: out of date with sv2ffi/schema.py and sv2ffi/capi/abi.py "
          f"(it is generated; do not edit it by hand)", file=sys.stderr)
    for line in report:
        print(line, file=sys.stderr)
    print(f"fix: {FIX}", file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Render or check include/sv2.h")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true",
                      help="compare the committed header with the schema; exit 1 on drift")
    mode.add_argument("--cdef", action="store_true", help="print the cffi declarations")
    ap.add_argument("--header", type=Path, default=HEADER,
                    help=f"header path (default {render.HEADER_PATH})")
    args = ap.parse_args(argv)
    if args.check:
        return check(args.header.resolve())
    if args.cdef:
        sys.stdout.write(render.render_cdef())
        return 0
    text = render.render_header()
    args.header.parent.mkdir(parents=True, exist_ok=True)
    args.header.write_text(text)
    print(f"wrote {args.header} ({text.count(chr(10))} lines)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The ``sv2ffi`` command.  Every subcommand and flag is defined in ``build_parser``.

Handlers stay thin: they parse, call the library, print.  Bad input ends with one
line on stderr and exit code 2; nothing prints a traceback for an input problem.
"""

from __future__ import annotations

import argparse
import json
import string
import sys
from typing import Sequence

from . import errors

EXIT_BAD_INPUT = 2


def _fail(msg: str) -> int:
    print(f"sv2ffi: {msg}", file=sys.stderr)
    return EXIT_BAD_INPUT


# ---- decode / encode ----------------------------------------------------------------

_HEX = set(string.hexdigits.encode() + string.whitespace.encode())


def _read_frames_input(arg: str | None) -> bytes:
    """Hex from the argument, else stdin as hex (if it only holds hex) or raw binary."""
    if arg is not None:
        text = arg
    else:
        raw = sys.stdin.buffer.read()
        if raw and not set(raw) <= _HEX:
            return raw
        text = raw.decode("ascii")
    text = "".join(text.split())
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise errors.FramingError("input is neither hex nor binary SV2 frames") from None


def cmd_decode(args: argparse.Namespace) -> int:
    from .framing import FrameDecoder, decode_frame
    from .jsonform import message_to_json

    try:
        data = _read_frames_input(args.hex)
        if not data:
            return _fail("no input: give hex as an argument or on stdin")
        dec = FrameDecoder()
        dec.feed(data)
        out = []
        for frame in dec:
            out.append(json.dumps(message_to_json(decode_frame(frame), frame)))
        if dec.buffered:
            raise errors.FramingError(f"incomplete frame: {dec.buffered} bytes left over after "
                                      f"{len(out)} whole frame(s)")
    except errors.Sv2Error as e:
        return _fail(str(e))
    print("\n".join(out))
    return 0


def _read_json_input(arg: str | None) -> list:
    text = arg if arg is not None else sys.stdin.read()
    text = text.strip()
    if not text:
        raise errors.EncodeError("no input: give JSON as an argument or on stdin")
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        # one object per line, as `sv2ffi decode` prints them
        try:
            return [json.loads(line) for line in text.splitlines() if line.strip()]
        except json.JSONDecodeError as e:
            raise errors.EncodeError(f"invalid JSON: {e}") from None
    return value if isinstance(value, list) else [value]


def cmd_encode(args: argparse.Namespace) -> int:
    from .jsonform import frame_from_json

    try:
        frames = [frame_from_json(obj) for obj in _read_json_input(args.json)]
    except errors.Sv2Error as e:
        return _fail(str(e))
    print("\n".join(f.hex() for f in frames))
    return 0


# ---- demo (placeholder main job until the template provider exists) -------------------


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_codec_demo

    return run_codec_demo(sys.stdout)


# ---- parser -------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sv2ffi",
                                description="Stratum V2 template distribution toolkit")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    d = sub.add_parser("decode", help="decode SV2 frames (hex or binary) to JSON lines")
    d.add_argument("hex", nargs="?", help="frames as hex; default: read hex or binary on stdin")
    d.set_defaults(func=cmd_decode)

    e = sub.add_parser("encode", help="encode JSON messages (as `decode` prints) to hex frames")
    e.add_argument("json", nargs="?", help="a JSON object or list; default: read stdin")
    e.set_defaults(func=cmd_encode)

    demo = sub.add_parser("demo", help="run the end-to-end demo")
    demo.set_defaults(func=cmd_demo)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

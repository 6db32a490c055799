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
    from .demo import run_demo

    return run_demo(sys.stdout)


# ---- tp / client (template provider and a TDP client) ---------------------------------


def cmd_tp(args: argparse.Namespace) -> int:
    from .tp.app import run_tp

    return run_tp(args)


def cmd_client(args: argparse.Namespace) -> int:
    from .client import run_client

    return run_client(args)


# ---- keygen / ping-pong (Noise transport) ---------------------------------------------


def cmd_keygen(args: argparse.Namespace) -> int:
    from .keys import generate_datadir_keys

    try:
        made = generate_datadir_keys(args.datadir, overwrite=args.force)
    except FileExistsError as e:
        return _fail(f"{e} (use --force to replace the keys)")
    except OSError as e:
        return _fail(f"cannot write keys to {args.datadir}: {e}")
    print(f"wrote authority and static keys to {args.datadir} (mode 0600)", file=sys.stderr)
    print(made.authority_pubkey_text)
    return 0


def cmd_ping_pong(args: argparse.Namespace) -> int:
    import asyncio

    from .examples import pingpong

    def say(line: str) -> None:
        print(line, flush=True)

    if args.role == "server":
        async def run_server() -> int:
            keys = None
            if args.noise:
                from .keys import load_datadir_keys
                keys = load_datadir_keys(args.datadir) if args.datadir else pingpong.memory_keys()
            done = asyncio.Event()
            left = [args.clients]

            def on_done() -> None:
                left[0] -= 1
                if left[0] == 0:
                    done.set()

            server = await pingpong.start_server(args.host, args.port or 0, keys=keys,
                                                 on_done=on_done)
            say(f"listening on {server.host}:{server.port} ({'noise' if keys else 'plain'})")
            if keys:
                say(f"authority public key: {keys.authority_pubkey_text}")
            try:
                await (done.wait() if args.clients else asyncio.Event().wait())
            finally:
                await server.close()
            return 0

        try:
            return asyncio.run(run_server())
        except errors.Sv2Error as e:
            return _fail(str(e))
        except OSError as e:
            return _fail(f"cannot listen on {args.host}:{args.port}: {e}")
        except KeyboardInterrupt:
            return 0
    if args.port is None:
        return _fail("the client needs --port")
    if args.noise and not args.authority_pubkey:
        print("sv2ffi: warning: no --authority-pubkey, the server certificate's signature is "
              "not verified", file=sys.stderr)
    try:
        asyncio.run(pingpong.run_client(args.host, args.port, noise=args.noise,
                                        authority_pubkey=args.authority_pubkey,
                                        count=args.count, timeout=args.timeout, report=say))
    except errors.Sv2Error as e:
        print(f"sv2ffi: {type(e).__name__}: {e}", file=sys.stderr)
        return 2 if isinstance(e, errors.KeyFormatError) else 1
    except asyncio.TimeoutError:
        print(f"sv2ffi: no answer within {args.timeout} s", file=sys.stderr)
        return 1
    return 0


# ---- C ABI: config, interop ------------------------------------------------------------


def cmd_config(args: argparse.Namespace) -> int:
    from .config import NotInstalledError, find

    try:
        inst = find()
    except NotInstalledError as e:
        return _fail(str(e))
    flags = [v for k, v in (("cflags", inst.cflags()), ("libs", inst.libs())) if getattr(args, k)]
    if flags:
        print(" ".join(flags))
    paths = {"prefix": inst.prefix, "libdir": inst.lib_dir, "includedir": inst.include_dir,
             "cmake_prefix_path": inst.prefix, "pkg_config_path": inst.pkg_config_dir}
    asked = [k for k in paths if getattr(args, k)]
    for k in asked:
        print(paths[k])
    if not flags and not asked:
        print(f"prefix      {inst.prefix}\nlibrary     {inst.library}\nheader      {inst.header}"
              f"\ncflags      {inst.cflags()}\nlibs        {inst.libs()}"
              f"\npkg-config  {inst.pkg_config_dir}\ncmake       {inst.cmake_dir}")
    return 0


def cmd_codegen(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .capi import codegen

    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        for name, text in ((codegen.CODEC_HEADER, codegen.render_codec_header()),
                           (codegen.CODEC_SOURCE, codegen.render_codec_source())):
            (out / name).write_text(text)
    except OSError as e:
        return _fail(f"cannot write to {out}: {e}")
    print(f"wrote {out / codegen.CODEC_HEADER} and {out / codegen.CODEC_SOURCE}")
    return 0


def cmd_interop(args: argparse.Namespace) -> int:
    from .capi.interop import main as interop_main

    return interop_main(args.build_dir, args.only)


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

    c = sub.add_parser("config", help="where libsv2 is installed and how to build against it")
    for flag, what in (("--cflags", "compiler flags"), ("--libs", "linker flags"),
                       ("--prefix", "installation prefix"), ("--libdir", "library directory"),
                       ("--includedir", "header directory"),
                       ("--cmake-prefix-path", "for CMAKE_PREFIX_PATH (find_package(sv2ffi))"),
                       ("--pkg-config-path", "for PKG_CONFIG_PATH (pkg-config sv2ffi)")):
        c.add_argument(flag, action="store_true", help=what)
    c.set_defaults(func=cmd_config)

    g = sub.add_parser("codegen", help="write the standalone C codec (sv2_codec.h, sv2_codec.c: "
                                       "C99, libc only) for firmware and tools")
    g.add_argument("--out", required=True, help="directory to write the two files into")
    g.set_defaults(func=cmd_codegen)

    io = sub.add_parser("interop", help="build libsv2 and the C++ examples, run each against "
                                        "its Python peer, print a transcript")
    io.add_argument("--build-dir", help="CMake build directory (default build/capi)")
    io.add_argument("--only", action="append", choices=["template_provider", "noise_server",
                                                        "noise_client", "embedded_node"],
                    help="run only this example (repeatable)")
    io.set_defaults(func=cmd_interop)

    demo = sub.add_parser("demo", help="run the end-to-end demo")
    demo.set_defaults(func=cmd_demo)

    tp = sub.add_parser("tp", help="run a template provider (built-in regtest chain or bitcoind)",
                        description="Serve Stratum V2 templates over Noise. Flags follow sv2-tp's; "
                        "see docs/operator-guide.md.")
    tp.add_argument("--sv2-bind", default="127.0.0.1", help="address to listen on "
                    "(default 127.0.0.1; expose deliberately)")
    tp.add_argument("--sv2-port", type=int, default=None, help="port (default per chain: 8442 "
                    "main, 18442 testnet3, 48442 testnet4, 38442 signet, 18447 regtest)")
    tp.add_argument("--template-interval", type=float, default=5.0,
                    help="minimum seconds between fee-driven updates (new tips never wait)")
    tp.add_argument("--fee-delta", type=int, default=1000,
                    help="sat the fees must rise by for an update (default 1000)")
    tp.add_argument("--datadir", help="keys (0600) and solved blocks (default ~/.sv2ffi/CHAIN)")
    tp.add_argument("--chain", default="regtest",
                    help="main, test(net3), testnet4, signet, regtest (default regtest)")
    tp.add_argument("--source", choices=("regtest", "rpc"), default="regtest",
                    help="regtest: the built-in in-memory test/demo chain (default); rpc: bitcoind")
    tp.add_argument("--rpc-url", help="bitcoind JSON-RPC URL (default http://127.0.0.1:<chain "
                    "rpc port>/)")
    tp.add_argument("--rpc-user", help="JSON-RPC user (or use --rpc-cookie-file)")
    tp.add_argument("--rpc-password", help="JSON-RPC password")
    tp.add_argument("--rpc-cookie-file", help="bitcoind's .cookie (default "
                    "~/.bitcoin/<chain>/.cookie when no user/password is given)")
    tp.add_argument("--zmq-hashblock", help="bitcoind's -zmqpubhashblock endpoint, e.g. "
                    "tcp://127.0.0.1:28332 (default: long-poll getblocktemplate)")
    tp.add_argument("--log-level", help="debug, info, warning, error (default from "
                    "SV2FFI_LOG_LEVEL, else info)")
    tp.add_argument("--max-clients", type=int, default=100, help="connections served at once")
    tp.add_argument("--mempool-interval", type=float, default=2.0,
                    help="regtest source: seconds between new demo mempool transactions")
    tp.add_argument("--regtest-rpc-port", type=int, default=None,
                    help="regtest source: also serve the chain's bitcoind-style JSON-RPC on this "
                    "port (cookie in DATADIR/regtest-rpc/.cookie)")
    tp.add_argument("--regtest-zmq-hashblock", default=None,
                    help="regtest source with --regtest-rpc-port: publish ZMQ hashblock here")
    tp.set_defaults(func=cmd_tp)

    cl = sub.add_parser("client", help="a Template Distribution client over Noise "
                        "(prints templates; --mine mines regtest templates)")
    cl.add_argument("--host", default="127.0.0.1")
    cl.add_argument("--port", type=int, default=18447)
    cl.add_argument("--authority-pubkey", help="TP authority key (base58check); verifies the "
                    "TP's certificate")
    cl.add_argument("--max-additional-size", type=int, default=1000,
                    help="CoinbaseOutputConstraints: bytes of coinbase outputs we add")
    cl.add_argument("--max-additional-sigops", type=int, default=100,
                    help="CoinbaseOutputConstraints: sigops of those outputs")
    cl.add_argument("--request-tx-data", action="store_true",
                    help="RequestTransactionData for every active template")
    cl.add_argument("--mine", action="store_true", help="CPU-mine (regtest) and SubmitSolution")
    cl.add_argument("--blocks", type=int, default=0, help="with --mine: exit after N blocks")
    cl.add_argument("--interval", type=float, default=1.0,
                    help="with --mine: seconds to wait on each tip before mining it")
    cl.add_argument("--payout-address", help="with --mine: regtest bech32 payout address")
    cl.add_argument("--timeout", type=float, default=120.0,
                    help="exit if no message arrives for this long")
    cl.set_defaults(func=cmd_client)

    kg = sub.add_parser("keygen", help="write an authority key pair and a static key (0600) "
                        "and print the authority public key")
    kg.add_argument("--datadir", required=True, help="directory for sv2_authority_key, "
                    "sv2_authority_key.pub and sv2_static_key")
    kg.add_argument("--force", action="store_true", help="replace existing keys")
    kg.set_defaults(func=cmd_keygen)

    pp = sub.add_parser("ping-pong", help="ping-pong example server or client, plain or Noise")
    pp.add_argument("role", choices=("server", "client"))
    pp.add_argument("--host", default="127.0.0.1")
    pp.add_argument("--port", type=int, default=None,
                    help="server: port to listen on (default 0 = any free port); client: required")
    pp.add_argument("--noise", action="store_true", help="encrypt with Noise NX")
    pp.add_argument("--datadir", help="server: keys from here (created if missing); default: "
                    "fresh keys in memory")
    pp.add_argument("--clients", type=int, default=0,
                    help="server: exit after this many clients finished (default 0 = never)")
    pp.add_argument("--authority-pubkey", help="client: the server's authority key (base58check)")
    pp.add_argument("--count", type=int, default=3, help="client: number of pings")
    pp.add_argument("--timeout", type=float, default=10, help="client: seconds per wait")
    pp.set_defaults(func=cmd_ping_pong)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

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

from . import __version__, errors
from .tp import options

EXIT_BAD_INPUT = 2
RPC_PASSWORD_ENV = "SV2FFI_RPC_PASSWORD"


class HelpFormatter(argparse.HelpFormatter):
    """Shows every option's default: appended when the help text does not already say
    what happens without the option (options whose default is None say it themselves)."""

    def _get_help_string(self, action):
        text = action.help or ""
        if (action.option_strings and "default" not in text
                and not any(action.default is v for v in (None, False, argparse.SUPPRESS))):
            text += " (default: %(default)s)"
        return text


def version_text() -> str:
    return f"sv2ffi {__version__}"


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
    from .datadir import DatadirError, net_dir
    from .keys import generate_datadir_keys, import_sv2tp_keys

    try:
        d = net_dir(args.datadir, args.chain)
    except (DatadirError, OSError) as e:
        return _fail(str(e))
    try:
        if args.import_sv2tp:
            made = import_sv2tp_keys(args.import_sv2tp, d, overwrite=args.force)
        else:
            made = generate_datadir_keys(d, overwrite=args.force)
    except FileExistsError as e:
        return _fail(f"{e} (use --force to replace the keys)")
    except errors.KeyFormatError as e:
        return _fail(str(e))
    except OSError as e:
        return _fail(f"{e.filename or d}: {e.strerror or e}")
    what = (f"converted sv2-tp's keys from {args.import_sv2tp}" if args.import_sv2tp
            else "wrote a new authority key and static key")
    print(f"{what} to {d} (mode 0600); authority public key:", file=sys.stderr)
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
    from . import bitcoin as btc
    from . import fanout
    from .config import NotInstalledError, find
    from .tp.sources import gbt

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
              f"\npkg-config  {inst.pkg_config_dir}\ncmake       {inst.cmake_dir}"
              f"\ntip pass    {fanout.describe()}\ngbt reader  {gbt.describe()}"
              f"\nmerkle      {btc.merkle_hashing()}")
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
    p = argparse.ArgumentParser(prog="sv2ffi", formatter_class=HelpFormatter,
                                description="Stratum V2 template distribution toolkit")
    p.add_argument("--version", action="version", version=version_text())
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
                                        "its Python peer, print a transcript",
                        formatter_class=HelpFormatter)
    io.add_argument("--build-dir", metavar="DIR", help="CMake build directory (default: "
                    "build/capi in a source checkout, else a per-user cache directory, "
                    "$XDG_CACHE_HOME/sv2ffi or ~/.cache/sv2ffi)")
    io.add_argument("--only", action="append", choices=["template_provider", "noise_server",
                                                        "noise_client", "embedded_node"],
                    help="run only this example (repeatable; default: all)")
    io.set_defaults(func=cmd_interop)

    demo = sub.add_parser("demo", help="run the end-to-end demo")
    demo.set_defaults(func=cmd_demo)

    tp = sub.add_parser("tp", help="run a template provider (built-in regtest chain or bitcoind)",
                        description="Serve Stratum V2 templates over Noise. Flags follow sv2-tp's "
                        "(a table: docs/operator-guide.md); every flag can also be set in "
                        "sv2ffi.conf, where sv2-tp's names work too. The command line wins.",
                        formatter_class=HelpFormatter)
    tp.add_argument("--version", action="version", version=version_text())
    g = tp.add_argument_group("configuration and files")
    g.add_argument("--conf", metavar="FILE", help="configuration file of key=value lines "
                   "(default: DATADIR/sv2ffi.conf when it exists; 0 = read none)")
    g.add_argument("--datadir", metavar="DIR", help="data directory root; keys (0600) and "
                   "solved blocks go in DIR/<chain>/, like Bitcoin Core (default: ~/.sv2ffi, "
                   "created; a DIR given here must exist)")
    g.add_argument("--chain", type=options.chain, default=None,
                   help="main, test (testnet3), testnet4, signet, regtest (default: regtest for "
                   "the built-in chain; with --source rpc, whatever the node runs, and a node on "
                   "another chain than a given --chain is refused)")
    g = tp.add_argument_group("SV2 listener")
    g.add_argument("--sv2-bind", type=options.bind_address, default="127.0.0.1",
                   metavar="ADDR[:PORT]", help="address to listen on: ADDR, ADDR:PORT or "
                   "[IPv6]:PORT; a port here wins over --sv2-port. Loopback by default: "
                   "expose deliberately")
    g.add_argument("--sv2-port", type=options.port, default=None, metavar="PORT",
                   help="port (default per chain: 8442 main, 18442 testnet3, 48442 testnet4, "
                   "38442 signet, 18447 regtest; 0 = any free port)")
    g.add_argument("--template-interval", type=options.nonnegative_seconds, default=5.0,
                   metavar="SECONDS", help="minimum seconds between fee-driven updates (new "
                   "tips never wait)")
    g.add_argument("--fee-delta", type=options.nonnegative_int, default=1000, metavar="SAT",
                   help="sat the fees must rise by for an update")
    g.add_argument("--max-clients", type=options.positive_int, default=100, metavar="N",
                   help="working clients (set up) served at once")
    g.add_argument("--max-pending", type=options.positive_int, default=64, metavar="N",
                   help="connections still setting up (handshake, SetupConnection, "
                   "constraints), a budget apart from --max-clients")
    g.add_argument("--max-pending-per-source", type=options.positive_int, default=8,
                   metavar="N", help="of those, from any one source address")
    g.add_argument("--write-timeout", type=options.positive_seconds, default=20.0,
                   metavar="SECONDS", help="a client whose writes stay backed up this long "
                   "(it does not read) is disconnected and its slot freed")
    g = tp.add_argument_group("template source")
    g.add_argument("--source", choices=("regtest", "rpc", "ipc"), default="regtest",
                   help="regtest: the built-in in-memory test/demo chain; rpc: bitcoind "
                   "JSON-RPC; ipc: bitcoin-node's Mining interface (-ipcbind=unix, Core v31+)")
    g.add_argument("--ipcconnect", default="unix", metavar="unix[:PATH]",
                   help="ipc source, as sv2-tp's -ipcconnect: 'unix' is node.sock in the node's "
                   "data directory for the chain, 'unix:PATH' a socket path (relative to that "
                   "directory)")
    g.add_argument("--bitcoin-datadir", metavar="DIR", help="ipc source: the node's -datadir "
                   "(default ~/.bitcoin)")
    g.add_argument("--rpc-url", metavar="URL", help="bitcoind JSON-RPC URL (default "
                   "http://127.0.0.1:<chain's RPC port>/)")
    g.add_argument("--rpc-user", metavar="USER", help="JSON-RPC user (default: none, use the "
                   "cookie file)")
    g.add_argument("--rpc-password-file", metavar="FILE", help="file holding the JSON-RPC "
                   f"password (default: ${RPC_PASSWORD_ENV} if set)")
    g.add_argument("--rpc-password", metavar="PASSWORD", help="JSON-RPC password (default: "
                   "none). Visible to every user in `ps`: prefer --rpc-password-file, "
                   f"${RPC_PASSWORD_ENV} or sv2ffi.conf")
    g.add_argument("--rpc-cookie-file", metavar="FILE", help="bitcoind's .cookie (default "
                   "~/.bitcoin/<chain>/.cookie when no user/password is given)")
    g.add_argument("--zmq-hashblock", metavar="ENDPOINT", help="bitcoind's -zmqpubhashblock "
                   "endpoint, e.g. tcp://127.0.0.1:28332 (default: long-poll getblocktemplate)")
    g = tp.add_argument_group("logging and metrics")
    g.add_argument("--log-level", type=options.log_level, metavar="LEVEL",
                   help="debug, info, warning, error (default: $SV2FFI_LOG_LEVEL, else info)")
    g.add_argument("--metrics-bind", type=options.metrics_address, metavar="[ADDR:]PORT",
                   help="serve Prometheus metrics over HTTP at /metrics on PORT (127.0.0.1 "
                   "unless ADDR is given) (default: off)")
    g = tp.add_argument_group("built-in regtest chain (--source regtest)")
    g.add_argument("--mempool-interval", type=options.nonnegative_seconds, default=2.0,
                   metavar="SECONDS", help="seconds between new demo mempool transactions "
                   "(0 = none)")
    g.add_argument("--regtest-rpc-port", type=options.port, default=None, metavar="PORT",
                   help="also serve the chain's bitcoind-style JSON-RPC on this port, cookie "
                   "in DATADIR/regtest/regtest-rpc/.cookie (default: off)")
    g.add_argument("--regtest-zmq-hashblock", default=None, metavar="ENDPOINT",
                   help="with --regtest-rpc-port: publish ZMQ hashblock here (default: off)")
    tp.set_defaults(func=cmd_tp, tp_parser=tp)

    cl = sub.add_parser("client", help="a Template Distribution client over Noise "
                        "(prints templates; --mine mines regtest templates)",
                        formatter_class=HelpFormatter)
    cl.add_argument("--host", default="127.0.0.1", help="the TP's address")
    cl.add_argument("--port", type=options.port, default=18447, help="the TP's port")
    cl.add_argument("--authority-pubkey", help="TP authority key (base58check); verifies the "
                    "TP's certificate (default: none, the signature is not checked)")
    cl.add_argument("--max-additional-size", type=int, default=1000,
                    help="CoinbaseOutputConstraints: bytes of coinbase outputs we add")
    cl.add_argument("--max-additional-sigops", type=int, default=100,
                    help="CoinbaseOutputConstraints: sigops of those outputs")
    cl.add_argument("--request-tx-data", action="store_true",
                    help="RequestTransactionData for every active template")
    cl.add_argument("--mine", action="store_true", help="CPU-mine (regtest) and SubmitSolution")
    cl.add_argument("--blocks", type=int, default=0,
                    help="with --mine: exit after N blocks (default: 0 = never)")
    cl.add_argument("--interval", type=float, default=1.0,
                    help="with --mine: seconds to wait on each tip before mining it")
    cl.add_argument("--payout-address", help="with --mine: regtest bech32 payout address "
                    "(default: an anyone-can-spend P2WSH output)")
    cl.add_argument("--timeout", type=float, default=120.0,
                    help="exit if no message arrives for this long")
    cl.set_defaults(func=cmd_client)

    kg = sub.add_parser("keygen", help="write an authority key pair and a static key (0600) "
                        "and print the authority public key", formatter_class=HelpFormatter,
                        description="Keys go where `sv2ffi tp` with the same --datadir and "
                        "--chain reads them: DATADIR/<chain>/sv2_authority_key, "
                        "sv2_authority_key.pub and sv2_static_key.")
    kg.add_argument("--datadir", metavar="DIR", help="data directory root (default: "
                    "~/.sv2ffi, created; a DIR given here must exist)")
    kg.add_argument("--chain", type=options.chain, default="regtest",
                    help="the chain whose subdirectory gets the keys")
    kg.add_argument("--import-sv2tp", metavar="PATH", help="convert sv2-tp's binary key "
                    "files instead of making new keys: its sv2_authority_key file, or the "
                    "directory holding it (its sv2_static_key is converted too) (default: "
                    "make new keys)")
    kg.add_argument("--force", action="store_true", help="replace existing keys")
    kg.set_defaults(func=cmd_keygen)

    pp = sub.add_parser("ping-pong", help="ping-pong example server or client, plain or Noise",
                        formatter_class=HelpFormatter)
    pp.add_argument("role", choices=("server", "client"))
    pp.add_argument("--host", default="127.0.0.1", help="address to listen on / connect to")
    pp.add_argument("--port", type=int, default=None,
                    help="server: port to listen on (default 0 = any free port); client: required")
    pp.add_argument("--noise", action="store_true", help="encrypt with Noise NX")
    pp.add_argument("--datadir", help="server: keys from here (created if missing); default: "
                    "fresh keys in memory")
    pp.add_argument("--clients", type=int, default=0,
                    help="server: exit after this many clients finished (default 0 = never)")
    pp.add_argument("--authority-pubkey", help="client: the server's authority key "
                    "(base58check; default: none, the signature is not checked)")
    pp.add_argument("--count", type=int, default=3, help="client: number of pings")
    pp.add_argument("--timeout", type=float, default=10, help="client: seconds per wait")
    pp.set_defaults(func=cmd_ping_pong)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    hint = _sv2tp_spelling(parser, argv)
    if hint:
        return _fail(hint)
    args = parser.parse_args(argv)
    args.argv = argv
    return args.func(args)


def _sv2tp_spelling(parser: argparse.ArgumentParser, argv: list[str]) -> str | None:
    """A hint for the first sv2-tp-style option (``-sv2port=8442``), instead of argparse's
    top-level usage, which would not tell an sv2-tp user what to type."""
    ours = {opt for action in parser._actions for opt in action.option_strings}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sp in action.choices.values():
                ours |= {opt for a in sp._actions for opt in a.option_strings}
    for token in argv:
        if token == "--":
            break
        if token.startswith("-") and token.split("=", 1)[0] not in ours:
            hint = options.sv2tp_hint(token, ours)
            if hint:
                return hint
    return None


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""``sv2ffi tp``: the standalone template provider process.

Flags are named after sv2-tp's (``--sv2-bind``, ``--sv2-port``, ``--template-interval``,
``--fee-delta``, ...) so an operator's habits carry over; see docs/operator-guide.md.
Settings come from the command line, then ``sv2ffi.conf`` (``config_file``), then the
defaults; keys and solved blocks live in the data directory's per-network subdirectory
(``sv2ffi.datadir``).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Optional

from .. import bitcoin as btc
from ..datadir import DatadirError, conf_path, is_private, net_dir
from ..errors import Sv2Error
from .config_file import ConfigFileError, load, resolve
from .core import TpConfig
from .logs import setup_logging
from .metrics import MetricsServer, TpMetrics
from .options import format_host_port
from .server import TpService

RPC_PASSWORD_ENV = "SV2FFI_RPC_PASSWORD"
log = logging.getLogger("sv2ffi.tp")


class SettingsError(ValueError):
    """The settings cannot be used (a message for the operator, exit code 2)."""


def default_cookie_file(net: btc.Network) -> Path:
    sub = {"main": "", "test": "testnet3", "testnet4": "testnet4", "signet": "signet",
           "regtest": "regtest"}[net.name]
    return Path.home() / ".bitcoin" / sub / ".cookie"


# ---- settings: command line over sv2ffi.conf over defaults ----------------------------------


def _explicit(parser: argparse.ArgumentParser, argv: list[str]) -> set:
    """The dests the command line set (so the configuration file does not override them):
    parse again into a namespace pre-filled with a marker, which argparse leaves alone for
    options that were not given."""
    unset = object()
    ns = argparse.Namespace(**{a.dest: unset for a in parser._actions})
    parser.parse_args(argv, namespace=ns)
    return {k for k, v in vars(ns).items() if v is not unset}


def _tp_argv(argv: list[str]) -> list[str]:
    return argv[argv.index("tp") + 1:] if "tp" in argv else []


def apply_config_file(args, warnings: list) -> Optional[Path]:
    """Fill ``args`` from the configuration file where the command line said nothing;
    return the file used (None if none)."""
    parser = getattr(args, "tp_parser", None)
    explicit = _explicit(parser, _tp_argv(getattr(args, "argv", []))) if parser else set()
    if args.conf == "0":
        return None
    if args.conf is not None:
        path = Path(args.conf).expanduser()
        if not path.is_file():
            raise SettingsError(f"configuration file {path} does not exist")
    else:
        path = conf_path(args.datadir)
        if not path.is_file():
            return None
    values = resolve(load(path), parser, chain=args.chain if "chain" in explicit else None,
                     source=args.source if "source" in explicit else None,
                     warn=warnings.append)
    for dest, value in values.items():
        if dest not in explicit:
            setattr(args, dest, value)
    if values.get("rpc_password") and is_private(path) is False:
        warnings.append(f"{path} holds rpc-password but others can read it; "
                        f"chmod 600 {path}")
    return path


def rpc_password(args) -> Optional[str]:
    """--rpc-password-file, else --rpc-password, else $SV2FFI_RPC_PASSWORD."""
    if args.rpc_password_file:
        if args.rpc_password:
            raise SettingsError("give --rpc-password-file or --rpc-password, not both")
        p = Path(args.rpc_password_file).expanduser()
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as e:
            raise SettingsError(f"cannot read the RPC password file {p}: "
                                f"{e.strerror or e}") from None
        password = text.rstrip("\r\n")
        if not password:
            raise SettingsError(f"the RPC password file {p} is empty")
        return password
    return args.rpc_password or os.environ.get(RPC_PASSWORD_ENV) or None


def build_source(args, net: btc.Network):
    if args.source == "regtest":
        if net.name != "regtest":
            raise SettingsError("--source regtest runs the built-in regtest test/demo chain; "
                                "use --chain regtest (or --source rpc for a real node)")
        from .sources.regtest import RegtestSource
        return RegtestSource(mempool_interval=args.mempool_interval, initial_txs=20)
    if args.source == "ipc":
        from .sources.ipc import IpcSource, socket_path
        return IpcSource(socket_path(args.ipcconnect, net, args.bitcoin_datadir), network=net,
                         fee_delta=args.fee_delta, template_interval=args.template_interval)
    from .sources.rpc import RpcSource
    url = args.rpc_url or f"http://127.0.0.1:{net.rpc_port}/"
    password = rpc_password(args)
    cookie = args.rpc_cookie_file
    if cookie is None and (args.rpc_user is None or password is None):
        cookie = default_cookie_file(net)
    return RpcSource(url, network=net, user=args.rpc_user, password=password,
                     cookie_file=cookie, zmq_hashblock=args.zmq_hashblock)


# ---- running ------------------------------------------------------------------------------------


async def learn_chain(args) -> str:
    """``--source rpc`` without ``--chain``: the chain the node runs.  Like bitcoin-cli
    without -chain, the mainnet RPC port and cookie are the defaults for reaching it."""
    source = build_source(args, btc.NETWORKS["main"])
    try:
        return (await source.learn_network()).name
    finally:
        await source.stop()


async def serve_tp(args, datadir: Path) -> int:
    net = btc.network(args.chain)
    source = build_source(args, net)
    config = TpConfig(network=net, fee_delta=args.fee_delta,
                      template_interval=args.template_interval, max_clients=args.max_clients)
    host, bind_port = args.sv2_bind
    port = bind_port if bind_port is not None else (
        net.sv2_port if args.sv2_port is None else args.sv2_port)
    metrics = TpMetrics()
    service = TpService(source, config=config, host=host, port=port, datadir=datadir,
                        metrics=metrics, max_pending=args.max_pending,
                        max_pending_per_source=args.max_pending_per_source,
                        write_timeout=args.write_timeout)
    rpc_server = metrics_server = None
    if args.source == "regtest" and args.regtest_rpc_port is not None:
        from .regtest_rpc import RegtestRpcServer
        rpc_server = RegtestRpcServer(source.chain, host=host, port=args.regtest_rpc_port,
                                      cookie_file=datadir / "regtest-rpc" / ".cookie",
                                      zmq_endpoint=args.regtest_zmq_hashblock)
    stop = asyncio.Event()
    why = ["stopped"]
    loop = asyncio.get_running_loop()
    if threading.current_thread() is threading.main_thread():  # signals reach only that one
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, lambda s=sig: (why.__setitem__(0, s.name), stop.set()))
    started = time.monotonic()
    await service.start()
    try:
        if rpc_server is not None:
            await rpc_server.start()
        if args.metrics_bind is not None:
            metrics_server = MetricsServer(metrics, *args.metrics_bind, loop=loop)
        print(f"sv2ffi tp: {net.name}, listening on {format_host_port(host, service.port)} "
              f"(Noise), datadir {datadir}", flush=True)
        print(f"authority public key: {service.authority_pubkey}", flush=True)
        if metrics_server is not None:
            print(f"metrics: {metrics_server.url}", flush=True)
        if rpc_server is not None:
            zmq = rpc_server.zmq_endpoint
            print(f"built-in chain JSON-RPC: {rpc_server.url} cookie {rpc_server.cookie_file}"
                  + (f" zmq hashblock {zmq}" if zmq else ""), flush=True)
        stopped = asyncio.ensure_future(stop.wait())
        failed = asyncio.ensure_future(service.failed.wait())
        await asyncio.wait({stopped, failed}, return_when=asyncio.FIRST_COMPLETED)
        for f in (stopped, failed):
            f.cancel()
        if service.fatal is not None:
            why[0] = "the template source failed"
            raise service.fatal
    finally:
        log.info("shutting down (%s): %d clients connected", why[0], metrics.active_clients)
        if metrics_server is not None:
            metrics_server.close()
        if rpc_server is not None:
            await rpc_server.stop()
        await service.stop()
        accepted = sum(1 for _sol, _path, result in service.solutions if result is None)
        log.info("stopped after %.0f s: %d clients served, %d blocks submitted (%d accepted)",
                 time.monotonic() - started, metrics.clients_served, len(service.solutions),
                 accepted)
    return 0


#: seconds a thread may hold the interpreter lock while another waits (default 0.005)
TIP_SWITCH_INTERVAL = 0.0005
#: the collector's thresholds in ``sv2ffi tp`` (default 700, 10, 10): see ``run_tp``
TP_GC_THRESHOLDS = (50000, 20, 10)


def run_tp(args) -> int:
    warnings: list = []
    try:
        conf = apply_config_file(args, warnings)
        if args.chain is None and args.source != "rpc":
            args.chain = "regtest"
        if args.chain is not None:
            datadir = net_dir(args.datadir, args.chain)
    except (ConfigFileError, DatadirError, SettingsError) as e:
        print(f"sv2ffi tp: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"sv2ffi tp: {e.filename or 'data directory'}: {e.strerror or e}", file=sys.stderr)
        return 2
    setup_logging(args.log_level)
    if conf is not None:
        log.info("configuration file %s", conf)
    for w in warnings:
        log.warning("%s", w)
    if "--rpc-password" in getattr(args, "argv", ()) or any(
            a.startswith("--rpc-password=") for a in getattr(args, "argv", ())):
        log.warning("--rpc-password is visible to every user of this machine (ps); prefer "
                    "--rpc-password-file, $%s or sv2ffi.conf", RPC_PASSWORD_ENV)
    # The event loop answers tips; the source's pool threads parse getblocktemplate
    # replies (tens of milliseconds of pure Python for thousands of transactions).  With
    # the interpreter's default 5 ms switch interval a tip arriving during a parse waits
    # up to 5 ms for the lock; at 0.5 ms the parse runs a little slower and the tip does
    # not wait.  Only the standalone TP sets this: an embedding process keeps its own.
    sys.setswitchinterval(TIP_SWITCH_INTERVAL)
    # The cyclic garbage collector stops the interpreter for its passes; a full pass over
    # a TP's heap (clients, templates, the mempool's transactions) takes milliseconds, and
    # when one lands just before a tip every client waits for it.  The TP's garbage is
    # almost all freed by reference counting, so the passes can be rarer: what exists at
    # start-up is frozen out of them, young passes run every 50,000 allocations instead
    # of 700, full ones 140 times less often than by default.  (tip_latency.py, bitcoind,
    # 100 clients, 30 tips x 3 runs: p50 / p99 2.98 / 18.76 and 2.84 / 12.42 ms by
    # default, 2.27 / 6.31 ms so.)  Only the standalone TP does this, like the switch
    # interval: an embedding process keeps its own collector settings.
    gc.collect()
    gc.freeze()
    gc.set_threshold(*TP_GC_THRESHOLDS)
    try:
        if args.chain is None:
            args.chain = asyncio.run(learn_chain(args))
            datadir = net_dir(args.datadir, args.chain)
        return asyncio.run(serve_tp(args, datadir))
    except (ConfigFileError, DatadirError, SettingsError) as e:
        print(f"sv2ffi tp: {e}", file=sys.stderr)
        return 2
    except (ValueError, Sv2Error, OSError) as e:
        print(f"sv2ffi tp: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # pragma: no cover
        return 0

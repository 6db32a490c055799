"""``sv2ffi tp``: the standalone template provider process.

Flags are named after sv2-tp's (``--sv2-bind``, ``--sv2-port``, ``--template-interval``,
``--fee-delta``, ...) so an operator's habits carry over; see docs/operator-guide.md.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Optional

from .. import bitcoin as btc
from ..errors import Sv2Error
from .core import TpConfig
from .server import TpService

LOG_ENV = "SV2FFI_LOG_LEVEL"
log = logging.getLogger("sv2ffi.tp")


def setup_logging(level: Optional[str]) -> None:
    level = (level or os.environ.get(LOG_ENV) or "info").upper()
    logging.basicConfig(level=getattr(logging, level, logging.INFO), stream=sys.stderr,
                        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")


def default_datadir(chain: str) -> Path:
    return Path.home() / ".sv2ffi" / chain


def default_cookie_file(net: btc.Network) -> Path:
    sub = {"main": "", "test": "testnet3", "testnet4": "testnet4", "signet": "signet",
           "regtest": "regtest"}[net.name]
    return Path.home() / ".bitcoin" / sub / ".cookie"


def build_source(args, net: btc.Network):
    if args.source == "regtest":
        if net.name != "regtest":
            raise ValueError("--source regtest runs the built-in regtest test/demo chain; "
                             "use --chain regtest (or --source rpc for a real node)")
        from .sources.regtest import RegtestSource
        return RegtestSource(mempool_interval=args.mempool_interval, initial_txs=20)
    if args.source == "ipc":
        from .sources.ipc import IpcSource, socket_path
        return IpcSource(socket_path(args.ipcconnect, net, args.bitcoin_datadir), network=net,
                         fee_delta=args.fee_delta, template_interval=args.template_interval)
    from .sources.rpc import RpcSource
    url = args.rpc_url or f"http://127.0.0.1:{net.rpc_port}/"
    cookie = args.rpc_cookie_file
    if cookie is None and (args.rpc_user is None or args.rpc_password is None):
        cookie = default_cookie_file(net)
    return RpcSource(url, network=net, user=args.rpc_user, password=args.rpc_password,
                     cookie_file=cookie, zmq_hashblock=args.zmq_hashblock)


async def serve_tp(args) -> int:
    net = btc.network(args.chain)
    datadir = Path(args.datadir) if args.datadir else default_datadir(net.name)
    source = build_source(args, net)
    config = TpConfig(network=net, fee_delta=args.fee_delta,
                      template_interval=args.template_interval, max_clients=args.max_clients)
    port = net.sv2_port if args.sv2_port is None else args.sv2_port
    service = TpService(source, config=config, host=args.sv2_bind, port=port, datadir=datadir)
    rpc_server = None
    if args.source == "regtest" and args.regtest_rpc_port is not None:
        from .regtest_rpc import RegtestRpcServer
        rpc_server = RegtestRpcServer(source.chain, host=args.sv2_bind,
                                      port=args.regtest_rpc_port,
                                      cookie_file=datadir / "regtest-rpc" / ".cookie",
                                      zmq_endpoint=args.regtest_zmq_hashblock)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    if threading.current_thread() is threading.main_thread():  # signals reach only that one
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
    await service.start()
    try:
        if rpc_server is not None:
            await rpc_server.start()
        print(f"sv2ffi tp: {net.name}, listening on {args.sv2_bind}:{service.port} "
              f"(Noise), datadir {datadir}", flush=True)
        print(f"authority public key: {service.authority_pubkey}", flush=True)
        if rpc_server is not None:
            print(f"built-in chain JSON-RPC: {rpc_server.url} cookie {rpc_server.cookie_file}"
                  + (f" zmq hashblock {rpc_server.zmq_endpoint}" if rpc_server.zmq_endpoint else ""),
                  flush=True)
        # a source that cannot serve this node at all (ipc: an unsupported Core version or
        # another chain) ends the process; anything else is waited out by the source
        fatal = getattr(source, "fatal", None)
        waits = [asyncio.ensure_future(stop.wait())] + ([fatal] if fatal is not None else [])
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        waits[0].cancel()
        if fatal is not None and fatal.done():
            print(f"sv2ffi tp: {fatal.result()}", file=sys.stderr, flush=True)
            return 2
    finally:
        if rpc_server is not None:
            await rpc_server.stop()
        await service.stop()
    return 0


def run_tp(args) -> int:
    setup_logging(args.log_level)
    try:
        return asyncio.run(serve_tp(args))
    except (ValueError, Sv2Error, OSError) as e:
        print(f"sv2ffi tp: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # pragma: no cover
        return 0

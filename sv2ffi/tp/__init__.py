"""A template provider in your own Python process, in a few lines::

    import sv2ffi.tp
    with sv2ffi.tp.run(datadir="/var/lib/sv2ffi", chain="signet", source="rpc",
                       rpc_cookie_file="/var/lib/bitcoind/signet/.cookie") as tp:
        print(tp.port, tp.authority_pubkey)
        ...                                   # it serves on its own thread meanwhile

``run`` takes the same settings as ``sv2ffi tp`` (as keyword arguments, same defaults,
same checks) and returns once the TP listens; leaving the ``with`` block stops it.  The
pieces it assembles are public for finer control: ``server.TpService`` (the asyncio
service), ``runner.TpThread`` (its thread), ``sources`` (where templates come from),
``core`` (the sans-I/O rules), ``metrics`` (counters and the Prometheus endpoint).

Nothing heavy is imported until ``run`` is called, so ``sv2ffi.tp.options`` and the other
small modules stay cheap to import.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional

if TYPE_CHECKING:  # pragma: no cover
    from .metrics import TpMetrics
    from .server import TpService


class TemplateProvider:
    """A running template provider (what ``run`` returns)."""

    def __init__(self, service: "TpService", datadir: Path, metrics_bind=None):
        from .metrics import MetricsServer
        from .runner import TpThread

        self.service = service
        self.datadir = datadir
        self._thread = TpThread(service).start()
        self._metrics_server = None
        if metrics_bind is not None:
            try:
                self._metrics_server = MetricsServer(service.metrics, *metrics_bind,
                                                     loop=self._thread.loop)
            except BaseException:
                self._thread.stop()
                raise

    @property
    def port(self) -> int:
        return self.service.port

    @property
    def authority_pubkey(self) -> str:
        """The base58check key pools and JDCs pin."""
        return self.service.authority_pubkey

    @property
    def metrics(self) -> "TpMetrics":
        return self.service.metrics

    @property
    def metrics_url(self) -> Optional[str]:
        return self._metrics_server.url if self._metrics_server else None

    @property
    def source(self):
        return self.service.source

    def call(self, fn: Callable[..., Any], *args, timeout: float = 30) -> Any:
        """Run ``fn(*args)`` on the TP's event loop and return its result (e.g.
        ``tp.call(tp.source.chain.generate, 1)`` mines a block on the built-in chain)."""
        return self._thread.call(fn, *args, timeout=timeout)

    def stop(self) -> None:
        if self._metrics_server is not None:
            self._metrics_server.close()
            self._metrics_server = None
        self._thread.stop()

    def __enter__(self) -> "TemplateProvider":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def run(*, chain: str = "regtest", datadir=None, source: str = "regtest",
        host: str = "127.0.0.1", port: Optional[int] = None, fee_delta: int = 1000,
        template_interval: float = 5.0, max_clients: int = 100,
        rpc_url: Optional[str] = None, rpc_user: Optional[str] = None,
        rpc_password: Optional[str] = None, rpc_cookie_file=None,
        zmq_hashblock: Optional[str] = None, mempool_interval: float = 2.0,
        metrics_bind: Optional[str] = None) -> TemplateProvider:
    """Start a template provider on a background thread; return once it listens.

    ``datadir`` is the data directory root as for ``sv2ffi tp --datadir`` (keys and solved
    blocks in ``datadir/<chain>/``; it must exist; default ``~/.sv2ffi``).  ``port=None``
    is the chain's SV2 port, 0 any free one (``tp.port``).  ``metrics_bind`` is
    ``"PORT"`` or ``"ADDR:PORT"`` for a Prometheus endpoint (``tp.metrics_url``).
    Bad values raise ValueError naming the setting, before anything starts.
    """
    import argparse

    from .. import bitcoin as btc
    from ..datadir import net_dir
    from . import options
    from .app import build_source
    from .core import TpConfig
    from .metrics import TpMetrics
    from .server import TpService

    def check(fn, name, value):
        try:
            return fn(str(value))
        except argparse.ArgumentTypeError as e:
            raise ValueError(f"{name}: {e}") from None

    net = btc.network(check(options.chain, "chain", chain))
    if source not in ("regtest", "rpc"):
        raise ValueError(f"source must be 'regtest' or 'rpc', got {source!r}")
    bind = None if metrics_bind is None else check(options.metrics_address, "metrics_bind",
                                                   metrics_bind)
    if port is not None:
        check(options.port, "port", port)
    settings = argparse.Namespace(
        source=source, mempool_interval=check(options.nonnegative_seconds, "mempool_interval",
                                              mempool_interval),
        rpc_url=rpc_url, rpc_user=rpc_user, rpc_password=rpc_password, rpc_password_file=None,
        rpc_cookie_file=rpc_cookie_file, zmq_hashblock=zmq_hashblock)
    d = net_dir(datadir, net.name)
    src = build_source(settings, net)
    config = TpConfig(network=net, fee_delta=fee_delta, template_interval=template_interval,
                      max_clients=max_clients)
    service = TpService(src, config=config, host=host,
                        port=net.sv2_port if port is None else port, datadir=d,
                        metrics=TpMetrics())
    return TemplateProvider(service, d, bind)


__all__ = ["run", "TemplateProvider"]

"""The embedded template provider behind ``sv2_tp_*``: the object one ``Sv2Tp *`` names.

It is the TP that ``sv2ffi tp`` runs (``TpService`` over Noise, the sans-I/O core) fed by
a ``PushedSource`` and run by a ``TpThread``: the node's threads push templates, the
library thread serves the clients, solved blocks come back on the source's solution
thread.  What this class adds is the lifecycle a C host can rely on:

* new -> started -> stopped, never back: a stopped (or failed-to-start) provider is
  refused with ``ConnectionClosed`` (SV2_ERR_CLOSED) instead of half-working;
* ``stop()`` returns only when the library thread ended and no callback is running, and
  after it returns the callback is never entered again, even if a join had to be
  retried (the ``_closed`` flag is set under the lock the callback runs under);
* ``stop()`` called from inside the callback is refused: it would wait for itself.

Threads and the GIL: the C callback is called through cffi, which releases the GIL for
the duration of the C call, so a node thread blocked in ``sv2_tp_push_template`` (which
needs the GIL) proceeds while the callback waits for, say, the node's main lock; and a
push never waits for the library thread, so the reverse cannot deadlock either.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Callable, Optional

from .. import bitcoin as btc
from .. import errors

log = logging.getLogger("sv2ffi.capi.tp")

NEW, RUNNING, STOPPED = "new", "running", "stopped"
#: how often a stop() waiting on a slow callback says so (it keeps waiting)
STOP_WARN_INTERVAL = 10.0


class EmbeddedTp:
    def __init__(self, *, network: str, datadir: str, host: str = "127.0.0.1", port: int = 0,
                 fee_delta: int = 1000, template_interval: float = 5.0,
                 on_solution: Optional[Callable[[bytes], None]] = None):
        from ..keys import load_datadir_keys
        from ..tp.core import TpConfig
        from ..tp.server import TpService
        from ..tp.sources.pushed import PushedSource

        try:
            net = btc.network(network)
        except ValueError as e:
            raise errors.InvalidArgumentError(f"network: {e}") from None
        if not datadir:
            raise errors.InvalidArgumentError("datadir is empty: the keys and solved blocks "
                                              "need a directory")
        try:
            keys = load_datadir_keys(Path(datadir), create=True)
        except OSError as e:
            raise errors.InvalidArgumentError(f"cannot use datadir {datadir}: {e}") from None
        self.network = net
        self.host, self.configured_port = host, port
        self._on_solution = on_solution
        self.source = PushedSource(net, on_solution=self._deliver)
        self.service = TpService(self.source, config=TpConfig(
            network=net, fee_delta=fee_delta, template_interval=template_interval),
            host=host, port=port, datadir=datadir, keys=keys)
        self.authority_pubkey: str = keys.authority_pubkey_text
        self.state = NEW
        self._thread = None
        self._state_lock = threading.Lock()  # start/stop transitions
        self._callback_lock = threading.Lock()  # held while the callback runs
        self._closed = False  # set under _callback_lock: no callback from then on
        self._local = threading.local()
        self.callbacks = 0

    # ---- lifecycle ---------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return self.service.port

    def start(self) -> None:
        from ..tp.runner import TpThread

        if getattr(self._local, "in_callback", False):
            raise errors.InvalidArgumentError("sv2_tp_start called from the solution callback")
        with self._state_lock:
            if self.state == RUNNING:
                raise errors.InvalidArgumentError("the template provider is already started")
            if self.state == STOPPED:
                raise errors.ConnectionClosed(
                    "the template provider was stopped (or failed to start) and cannot be "
                    "restarted: sv2_tp_free it and create a new one")
            self._thread = TpThread(self.service, name="sv2ffi-tp")
            try:
                self._thread.start()
            except OSError as e:
                self._fail_start()
                raise errors.InvalidArgumentError(
                    f"cannot listen on {self.host}:{self.configured_port}: "
                    f"{e.strerror or e}") from None
            except BaseException:
                self._fail_start()
                raise
            self.state = RUNNING
        log.info("embedded template provider listening on %s:%d", self.host, self.port)

    def _fail_start(self) -> None:
        self.state = STOPPED
        with self._callback_lock:
            self._closed = True

    def stop(self) -> None:
        if getattr(self._local, "in_callback", False):
            raise errors.InvalidArgumentError(
                "sv2_tp_stop/sv2_tp_free called from inside the solution callback: it would "
                "wait for the callback to return; stop from another thread")
        with self._state_lock:
            if self.state != STOPPED:
                thread, self.state = self._thread, STOPPED
                if thread is not None:
                    while True:
                        try:
                            thread.stop(timeout=STOP_WARN_INTERVAL)
                            break
                        except TimeoutError:
                            log.warning("sv2_tp_stop: still waiting for the library thread "
                                        "(is the solution callback blocked on a lock the "
                                        "stopping thread holds?)")
            with self._callback_lock:  # waits for a callback still running (never expected)
                self._closed = True

    # ---- templates and solutions ---------------------------------------------------------------

    def push(self, block: bytes) -> None:
        if self.state == STOPPED:
            raise errors.ConnectionClosed("the template provider was stopped; pushes are "
                                          "refused")
        self.source.push_block_template(block)

    def _deliver(self, block: bytes) -> None:
        """On the source's solution thread, after the block was persisted."""
        with self._callback_lock:
            if self._closed or self._on_solution is None:
                return
            self._local.in_callback = True
            try:
                self.callbacks += 1
                self._on_solution(block)
            finally:
                self._local.in_callback = False

"""Run a TpService on its own thread with its own event loop.

The C ABI (a node's threads calling ``sv2_tp_start`` / ``sv2_tp_stop``) and the tests need
the TP to run beside code that is not asyncio.  ``start()`` returns once the socket is
listening (or raises what went wrong); ``stop()`` shuts the service down on its loop and
joins the thread, so no callback of the service runs after it returns.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import signal
import threading
from typing import Any, Callable, Optional

from .server import TpService


class TpThread:
    def __init__(self, service: TpService, *, name: str = "sv2ffi-tp"):
        self.service = service
        self.name = name
        self.loop: Optional[asyncio.AbstractEventLoop] = None
        self._thread: Optional[threading.Thread] = None
        self._ready = threading.Event()
        self._error: Optional[BaseException] = None
        self._stop_event: Optional[asyncio.Event] = None

    @property
    def port(self) -> int:
        return self.service.port

    @property
    def authority_pubkey(self) -> str:
        return self.service.authority_pubkey

    def start(self, timeout: float = 30) -> "TpThread":
        if self._thread is not None:
            raise RuntimeError("already started")
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError(f"template provider did not start within {timeout} s")
        if self._error is not None:
            self._thread.join(5)
            raise self._error
        return self

    def _run(self) -> None:
        # A client hanging up must cost an EPIPE, not the process: Python ignores SIGPIPE,
        # but a C host embedding the TP (libsv2) usually leaves it at its default, which
        # terminates.  Blocking it in this thread (and the threads it starts: executors,
        # the solution callback's) keeps the host's own signal setup untouched.
        if hasattr(signal, "pthread_sigmask"):
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGPIPE})
        loop = self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            self._stop_event = asyncio.Event()
            try:
                loop.run_until_complete(self.service.start())
            except BaseException as e:  # reported to start()'s caller
                self._error = e
                self._ready.set()
                loop.run_until_complete(self.service.stop())
                return
            self._ready.set()
            loop.run_until_complete(self._stop_event.wait())
            loop.run_until_complete(self.service.stop())
        finally:
            try:
                pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
                for t in pending:
                    t.cancel()
                if pending:
                    loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.run_until_complete(loop.shutdown_default_executor())
            finally:
                loop.close()

    def call(self, fn: Callable[..., Any], *args, timeout: float = 30) -> Any:
        """Run ``fn(*args)`` on the service's loop and return its result (tests, C ABI)."""
        fut: concurrent.futures.Future = concurrent.futures.Future()

        def run():
            try:
                fut.set_result(fn(*args))
            except BaseException as e:
                fut.set_exception(e)

        self.loop.call_soon_threadsafe(run)
        return fut.result(timeout)

    def stop(self, timeout: float = 60) -> None:
        thread = self._thread
        if thread is None or not thread.is_alive():
            return
        if threading.current_thread() is thread:
            raise RuntimeError("stop() called from the TP's own thread")
        self.loop.call_soon_threadsafe(self._stop_event.set)
        thread.join(timeout)
        if thread.is_alive():
            raise TimeoutError("template provider thread did not stop")


class BackgroundLoop:
    """An event loop on its own thread, for running asyncio services (the regtest JSON-RPC
    endpoint, a TP) beside blocking code: ``run(coro)`` waits for the result."""

    def __init__(self, name: str = "sv2ffi-loop"):
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def run(self, coro, timeout: float = 60) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, fn: Callable[..., Any], *args, timeout: float = 60) -> Any:
        async def wrapper():
            return fn(*args)
        return self.run(wrapper(), timeout)

    def close(self) -> None:
        async def cancel_all():
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if self.loop.is_running():
            self.run(cancel_all())
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(30)
        self.loop.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

"""Templates pushed by an embedding node (the C ABI's ``sv2_tp_push_template``).

The node builds templates itself and pushes each as a serialized block (placeholder
coinbase with the BIP34 height, one reward output, OP_RETURN outputs, transactions).  A
push whose previous-block hash differs from the last one is a new tip.  Solved blocks go
back through ``on_solution(block_bytes)``, which the service calls only after the block is
persisted.  ``push_block_template`` may be called from any thread.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Callable, Optional

from ... import bitcoin as btc
from ..template import BlockTemplate, parse_pushed_block
from . import Source

log = logging.getLogger("sv2ffi.tp.pushed")


class PushedSource(Source):
    name = "pushed"

    def __init__(self, network: btc.Network, on_solution: Optional[Callable[[bytes], None]] = None):
        self.network = network
        self.on_solution = on_solution
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._lock = threading.Lock()
        self._running = False
        self.last: Optional[BlockTemplate] = None
        self.pushed = 0

    def describe(self) -> str:
        return "templates pushed by the embedding node"

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._running = True
        if self.last is not None:  # pushed before the service started
            self.sink.on_template(self.last)

    async def stop(self) -> None:
        with self._lock:
            self._running = False

    def push_block_template(self, block: bytes) -> BlockTemplate:
        """Parse (raising InvalidTemplateError on a malformed block) and hand the template
        to the TP.  Thread-safe; parsing happens on the caller's thread."""
        tpl = parse_pushed_block(bytes(block), self.network)
        with self._lock:
            self.last = tpl
            self.pushed += 1
            if self._running and self._loop is not None:
                self._loop.call_soon_threadsafe(self._deliver, tpl)
        return tpl

    def _deliver(self, tpl: BlockTemplate) -> None:
        if self._running:
            self.sink.on_template(tpl)

    async def submit_block(self, block: bytes) -> Optional[str]:
        if self.on_solution is None:
            return "no solution callback"
        self.on_solution(block)
        return None

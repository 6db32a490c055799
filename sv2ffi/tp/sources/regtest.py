"""The default source: the built-in regtest test/demo chain, in this process.

Besides serving the chain's templates it keeps the mempool moving (a few fee-paying
transactions every ``mempool_interval`` seconds) so fee-driven updates are visible, the way
they are against a real node.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Optional

from ..core import TipInfo
from ..regtest import RegtestChain
from . import Source

log = logging.getLogger("sv2ffi.tp.regtest")


class RegtestSource(Source):
    name = "regtest"

    def __init__(self, chain: Optional[RegtestChain] = None, *, mempool_interval: float = 2.0,
                 txs_per_interval: int = 3, seed: int = 0, initial_txs: int = 0):
        self.chain = chain or RegtestChain(seed=seed)
        self.initial_txs = initial_txs
        self.mempool_interval = mempool_interval
        self.txs_per_interval = txs_per_interval
        self._feeder: Optional[asyncio.Task] = None
        self._publish_scheduled = False
        self._running = False

    def describe(self) -> str:
        return f"built-in regtest test/demo chain (height {self.chain.height})"

    async def start(self) -> None:
        self._running = True
        self.chain.on_block.append(self._on_block)
        self.chain.on_mempool.append(self._on_mempool)
        if self.initial_txs:
            self.chain.add_random_transactions(self.initial_txs)
        self.sink.on_template(self.chain.block_template())
        if self.mempool_interval > 0 and self.txs_per_interval > 0:
            self._feeder = asyncio.get_running_loop().create_task(self._feed())

    async def stop(self) -> None:
        self._running = False
        for lst, fn in ((self.chain.on_block, self._on_block),
                        (self.chain.on_mempool, self._on_mempool)):
            if fn in lst:
                lst.remove(fn)
        if self._feeder is not None:
            self._feeder.cancel()
            try:
                await self._feeder
            except asyncio.CancelledError:
                pass
            self._feeder = None

    async def _feed(self) -> None:
        while True:
            await asyncio.sleep(self.mempool_interval)
            self.chain.add_random_transactions(self.txs_per_interval)

    def _on_block(self, chain: RegtestChain) -> None:
        if not self._running:
            return
        # the tip first (SetNewPrevHash needs nothing else); the full template is built on
        # the next loop iteration, so the clients' writers send SetNewPrevHash before it
        self.sink.on_tip(TipInfo(chain.tip_hash, chain.height + 1, chain.next_bits(),
                                 chain.next_time()))
        self._publish_scheduled = True
        asyncio.get_running_loop().call_soon(self._publish)

    def _on_mempool(self, chain: RegtestChain) -> None:
        # coalesce bursts of mempool changes into one template per loop iteration
        if self._running and not self._publish_scheduled:
            self._publish_scheduled = True
            asyncio.get_running_loop().call_soon(self._publish)

    def _publish(self) -> None:
        if self._running and self._publish_scheduled:
            self._publish_scheduled = False
            self.sink.on_template(self.chain.block_template())

    async def submit_block(self, block: bytes) -> Optional[str]:
        reason = self.chain.submit_block(block)
        return None if reason in (None, "duplicate") else reason

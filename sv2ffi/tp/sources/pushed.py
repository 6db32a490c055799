"""Templates pushed by an embedding node (the C ABI's ``sv2_tp_push_template``).

The node builds templates itself and pushes each as a serialized block (placeholder
coinbase with the BIP34 height, one reward output, OP_RETURN outputs, transactions).  A
push whose previous-block hash differs from the last one is a new tip.

Two things keep a push from delaying the network side:

* A new tip is announced from the header and the coinbase alone (``peek_tip``), before
  the transactions are parsed: SetNewPrevHash depends on nothing else, and parsing a full
  block in Python takes tens of milliseconds.  The pushing thread even waits (GIL
  released, bounded) until the event loop has written SetNewPrevHash to every client:
  parsing right away would hold the GIL and leave the loop thread only the interpreter's
  switch-interval slices, delaying the tip by about the parse time.  If the rest of the
  block then turns out malformed the push still fails; the clients stay on the (valid)
  empty template of the new tip.
* Solved blocks go back through ``on_solution(block_bytes)`` on a worker thread of this
  source, one at a time and in order, only after the service persisted them: a node whose
  callback takes a while (validating and connecting the block) never stalls the event loop
  serving the clients.  ``stop()`` waits for that thread, so no callback runs after it.

``push_block_template`` may be called from any thread, including from ``on_solution``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from typing import Callable, Optional

from ... import bitcoin as btc
from ...errors import BitcoinDecodeError, InvalidTemplateError
from ..core import TipInfo
from ..template import BlockTemplate, TxInterner, parse_pushed_block
from . import Source

log = logging.getLogger("sv2ffi.tp.pushed")

#: longest a push waits for the event loop to send a new tip before parsing on anyway
TIP_WAIT = 1.0


def peek_tip(block: bytes, network: btc.Network) -> TipInfo:
    """What SetNewPrevHash needs from a pushed template: the header and the coinbase's
    BIP34 height, without parsing the transactions (``parse_pushed_block`` checks all)."""
    try:
        r = btc.Reader(block)
        header = btc.BlockHeader.read(r)
        if r.compact_size() < 1:
            raise BitcoinDecodeError("no transactions")
        cb = btc.Tx.read(r)
    except BitcoinDecodeError as e:
        raise InvalidTemplateError(f"pushed template is not a serialized block: {e}") from None
    if not cb.is_coinbase:
        raise InvalidTemplateError("pushed template: first transaction is not a coinbase")
    try:
        height = btc.parse_bip34_height(cb.vin[0].script_sig)
        if not header.bits:
            raise BitcoinDecodeError("nBits is zero")
        btc.bits_to_target(header.bits)
    except BitcoinDecodeError as e:
        raise InvalidTemplateError(f"pushed template: {e}") from None
    return TipInfo(header.prev_hash, height, header.bits, header.time)


class PushedSource(Source):
    name = "pushed"

    def __init__(self, network: btc.Network, on_solution: Optional[Callable[[bytes], None]] = None):
        self.network = network
        self.on_solution = on_solution
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._lock = threading.Lock()
        self._running = False
        self._tip_hash: Optional[bytes] = None  # last tip handed to the service
        self._solutions: Optional[concurrent.futures.ThreadPoolExecutor] = None
        self._loop_thread: Optional[int] = None
        self.last: Optional[BlockTemplate] = None
        self.pushed = 0
        self._interner = TxInterner()  # pushes of one mempool share their transactions

    def describe(self) -> str:
        return "templates pushed by the embedding node"

    async def start(self) -> None:
        self._solutions = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="sv2ffi-tp-solution")
        with self._lock:
            self._loop = asyncio.get_running_loop()
            self._loop_thread = threading.get_ident()
            self._running = True
            last = self.last
            if last is not None:  # pushed before the service started
                self._tip_hash = last.prev_hash
        if last is not None:
            self.sink.on_template(last)

    async def stop(self) -> None:
        with self._lock:
            self._running = False
        if self._solutions is not None:  # callbacks already handed over run to completion
            await asyncio.get_running_loop().run_in_executor(None, self._solutions.shutdown, True)

    def push_block_template(self, block: bytes) -> BlockTemplate:
        """Parse (raising InvalidTemplateError on a malformed block) and hand the template
        to the TP; a new tip goes ahead of the parse.  Thread-safe; parsing happens on the
        caller's thread.  After stop() a push is only parsed."""
        data = bytes(block)
        tip = peek_tip(data, self.network)
        sent = None
        with self._lock:
            if self._running and tip.prev_hash != self._tip_hash:
                self._tip_hash = tip.prev_hash
                sent = threading.Event()
                self._loop.call_soon_threadsafe(self._deliver_tip, tip, sent)
        if sent is not None and threading.get_ident() != self._loop_thread:
            sent.wait(TIP_WAIT)
        tpl = parse_pushed_block(data, self.network, interner=self._interner)
        with self._lock:
            self.last = tpl
            self.pushed += 1
            if self._running:
                self._loop.call_soon_threadsafe(self._deliver, tpl)
        return tpl

    def _deliver_tip(self, tip: TipInfo, sent: threading.Event) -> None:
        try:
            if self._running:
                self.sink.on_tip(tip)
        finally:
            # the client writers were woken by on_tip and run before this callback: each
            # writes its SetNewPrevHash in one step (write + a drain that does not wait
            # unless the socket is backed up)
            self._loop.call_soon(sent.set)

    def _deliver(self, tpl: BlockTemplate) -> None:
        if self._running:
            self.sink.on_template(tpl)

    async def submit_block(self, block: bytes) -> Optional[str]:
        if self.on_solution is None:
            return "no solution callback"
        await asyncio.get_running_loop().run_in_executor(self._solutions, self.on_solution, block)
        return None

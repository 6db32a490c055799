"""A Cap'n Proto client of a bitcoin-node's Mining interface (pycapnp): calls in, Python
values out.  What to call when (tips, templates, reconnects) is ``sources/ipc.py``.

How a client drives the node (facts from Core's ``test/functional/test_framework/
ipc_util.py`` and libmultiprocess): bootstrap ``Init``, ``construct`` a ThreadMap, ask it
for named server threads, then pass ``Context(thread=...)`` with every call.  The node runs
calls naming one thread one after another on that thread, so every blocking wait here gets
a thread of its own (``THREADS``) and quick calls never queue behind a wait.  ``interrupt``
and ``interruptWait`` take no context: they run on the node's event loop and unblock waits.

Must be used on the thread whose asyncio loop runs ``capnp.kj_loop()``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..errors import IpcError, NodeUnavailableError, UnsupportedNodeError
from .ipc_schema import SUPPORTED_CORE, load

log = logging.getLogger("sv2ffi.tp.ipc")

#: server threads: tip waits, template waits, everything else (submits, checks, destroy)
THREADS = ("tip", "template", "submit")
MAX_MONEY = 21_000_000 * 100_000_000


@dataclass(frozen=True)
class CoinbaseFields:
    """``CoinbaseTx`` of a node template (Core v31+): what the coinbase must contain."""

    version: int
    sequence: int
    script_sig_prefix: bytes
    witness: Optional[bytes]
    reward_remaining: int
    required_outputs: tuple  # serialized outputs
    lock_time: int


def coinbase_fields(c) -> CoinbaseFields:
    """A ``getCoinbaseTx`` result as CoinbaseFields."""
    return CoinbaseFields(int(c.version), int(c.sequence), bytes(c.scriptSigPrefix),
                          bytes(c.witness) if c._has("witness") else None,
                          int(c.blockRewardRemaining),
                          tuple(bytes(o) for o in c.requiredOutputs), int(c.lockTime))


def _kj(e) -> Exception:
    """A pycapnp exception as ours: a dropped connection is the node being unavailable."""
    what = getattr(e, "description", str(e))
    if getattr(e, "type", None) == "DISCONNECTED":
        return NodeUnavailableError(f"connection to the node lost ({what})")
    return IpcError(what)


class NodeTemplate:
    """One ``BlockTemplate`` capability on the node.  It stays usable (submitSolution)
    until ``destroy``; the node keeps its transactions alive meanwhile."""

    def __init__(self, conn: "MiningConnection", cap):
        self.conn = conn
        self.cap = cap

    async def _call(self, promise):
        return await self.conn.call(promise)

    async def header(self, thread: str) -> bytes:
        r = await self._call(self.cap.getBlockHeader(self.conn.ctx(thread)))
        return bytes(r.result)

    async def contents(self, thread: str) -> tuple:
        """(serialized block, fees, sigops costs, CoinbaseFields), four pipelined calls."""
        ctx = self.conn.ctx(thread)
        cap = self.cap
        pb, pf, ps, pc = (cap.getBlock(ctx), cap.getTxFees(ctx), cap.getTxSigops(ctx),
                          cap.getCoinbaseTx(ctx))
        block = bytes((await self._call(pb)).result)
        fees = list((await self._call(pf)).result)
        sigops = list((await self._call(ps)).result)
        cb = coinbase_fields((await self._call(pc)).result)
        return block, fees, sigops, cb

    async def submit_solution(self, version: int, timestamp: int, nonce: int, coinbase: bytes,
                              thread: str = "submit") -> bool:
        r = await self._call(self.cap.submitSolution(
            context=self.conn.ctx(thread), version=version, timestamp=timestamp, nonce=nonce,
            coinbase=coinbase))
        return bool(r.result)

    async def wait_next(self, fee_threshold: int, timeout: float,
                        thread: str = "template") -> Optional["NodeTemplate"]:
        """The next template once fees rose by ``fee_threshold`` sat (MAX_MONEY: only a new
        tip counts) or the tip changed; None at the timeout (seconds) or after
        ``interrupt_wait``."""
        return await self.conn.template_of(self.next_promise(fee_threshold, timeout, thread))

    def next_promise(self, fee_threshold: int, timeout: float, thread: str = "template"):
        """The ``waitNext`` promise itself (await it with ``MiningConnection.template_of``),
        so a caller may pipeline calls on the next template before it exists."""
        opts = self.conn.schema.mining.BlockWaitOptions.new_message(
            timeout=max(timeout, 0.0) * 1000.0, feeThreshold=fee_threshold)
        return self.cap.waitNext(context=self.conn.ctx(thread), options=opts)

    async def interrupt_wait(self) -> None:
        await self._call(self.cap.interruptWait())

    async def destroy(self, thread: str = "submit") -> None:
        try:
            await self._call(self.cap.destroy(self.conn.ctx(thread)))
        except IpcError as e:  # already gone with its connection: nothing left to free
            log.debug("destroy: %s", e)


class MiningConnection:
    """One connection to a node's IPC socket, from ``Init`` to a ``Mining`` capability."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.schema = load()
        self.client = None
        self.stream = None
        self.mining = None
        self._ctx: dict = {}
        self.has_submit_block: Optional[bool] = None  # unknown until first tried

    @classmethod
    async def open(cls, path) -> "MiningConnection":
        """Connect, create the server threads and the Mining object.

        NodeUnavailableError: no socket, nobody listening, or the connection dropped.
        UnsupportedNodeError: the node does not serve the v31 Mining interface.
        """
        import capnp
        self = cls(path)
        try:
            stream = await capnp.AsyncIoStream.create_unix_connection(str(self.path))
        except (FileNotFoundError, ConnectionRefusedError) as e:
            raise NodeUnavailableError(f"no node listening on {self.path} ({e.strerror})") from None
        except OSError as e:
            raise NodeUnavailableError(f"cannot connect to {self.path}: {e}") from None
        s = self.schema
        try:
            self.stream = stream
            self.client = capnp.TwoPartyClient(stream)
            init = self.client.bootstrap().cast_as(s.init.Init)
            tmap = init.construct().threadMap  # pipelined: one round trip for all of it
            for name in THREADS:
                thread = tmap.makeThread(f"sv2ffi-{name}").result
                self._ctx[name] = s.proxy.Context.new_message(thread=thread)
            try:
                self.mining = (await init.makeMining(self.ctx("submit"))).result
            except capnp.KjException as e:
                if e.type == "UNIMPLEMENTED":
                    raise UnsupportedNodeError(
                        f"the node at {self.path} does not serve the Mining interface of "
                        f"{SUPPORTED_CORE} (Init.makeMining @3 is unimplemented: Bitcoin Core "
                        "v30 or older). Upgrade the node to v31 or later.") from None
                raise _kj(e) from None
        except BaseException:
            self.close()
            raise
        return self

    def ctx(self, thread: str):
        return self._ctx[thread]

    async def call(self, promise):
        """Await a call's promise; Cap'n Proto errors as ours (IpcError, NodeUnavailable)."""
        import capnp
        try:
            return await promise
        except capnp.KjException as e:
            raise _kj(e) from None

    async def is_test_chain(self) -> bool:
        return bool((await self.call(self.mining.isTestChain(self.ctx("submit")))).result)

    async def is_initial_block_download(self) -> bool:
        r = await self.call(self.mining.isInitialBlockDownload(self.ctx("submit")))
        return bool(r.result)

    async def get_tip(self) -> Optional[tuple]:
        """(hash, height) of the node's tip, None before it has one."""
        r = await self.call(self.mining.getTip(self.ctx("submit")))
        if not r.hasResult:
            return None
        return bytes(r.result.hash), int(r.result.height)

    async def wait_tip_changed(self, current: bytes, timeout: float,
                               thread: str = "tip") -> Optional[tuple]:
        """(hash, height) once the tip differs from ``current`` or at the timeout (then
        the unchanged tip); None when interrupted or the node is shutting down."""
        r = await self.call(self.mining.waitTipChanged(
            context=self.ctx(thread), currentTip=current, timeout=max(timeout, 0.0) * 1000.0))
        h = bytes(r.result.hash)
        return (h, int(r.result.height)) if len(h) == 32 else None

    def create_new_block(self, *, reserved_weight: int, reserved_sigops: int,
                         use_mempool: bool = True, cooldown: bool = True,
                         thread: str = "template"):
        """The ``createNewBlock`` promise (await it with ``template_of``), so a caller may
        pipeline calls on the template before it exists."""
        opts = self.schema.mining.BlockCreateOptions.new_message(
            useMempool=use_mempool, blockReservedWeight=reserved_weight,
            coinbaseOutputMaxAdditionalSigops=reserved_sigops)
        return self.mining.createNewBlock(context=self.ctx(thread), options=opts,
                                          cooldown=cooldown)

    async def template_of(self, promise) -> Optional[NodeTemplate]:
        """The template a ``create_new_block`` promise resolves to; None when the node
        returned none (interrupted or shutting down)."""
        r = await self.call(promise)
        return NodeTemplate(self, r.result) if r._has("result") else None

    async def check_block(self, block: bytes, check_pow: bool = True) -> tuple:
        """(valid, reason, debug) by the node's TestBlockValidity on its tip."""
        opts = self.schema.mining.BlockCheckOptions.new_message(checkMerkleRoot=True,
                                                                checkPow=check_pow)
        r = await self.call(self.mining.checkBlock(context=self.ctx("submit"), block=block,
                                                    options=opts))
        return bool(r.result), str(r.reason), str(r.debug)

    async def submit_block(self, block: bytes) -> Optional[tuple]:
        """(accepted, reason, debug) through ``Mining.submitBlock``; None when the node has
        no such method (v31 and master 31.99 do not)."""
        import capnp
        if self.has_submit_block is False:
            return None
        try:
            r = await self.mining.submitBlock(context=self.ctx("submit"), block=block)
        except capnp.KjException as e:
            if e.type == "UNIMPLEMENTED":
                self.has_submit_block = False
                return None
            raise _kj(e) from None
        self.has_submit_block = True
        return bool(r.result), str(r.reason), str(r.debug)

    async def interrupt(self) -> None:
        await self.call(self.mining.interrupt())

    def on_disconnect(self):
        return self.client.on_disconnect()

    def close(self) -> None:
        client, self.client = self.client, None
        stream, self.stream = self.stream, None
        self.mining = None
        self._ctx = {}
        for thing in (client, stream):
            if thing is not None:
                try:
                    thing.close()
                except Exception as e:  # closing a connection that already broke
                    log.debug("closing the IPC connection: %s", e)

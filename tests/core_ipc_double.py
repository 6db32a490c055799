"""TEST DOUBLE of a bitcoin-node's IPC Mining interface, serving the built-in regtest chain.

Not Bitcoin Core: a pycapnp server speaking sv2ffi's own schema (``sv2ffi/tp/ipc_schema``)
on a unix socket, so ``--source ipc``'s logic (tips, waitNext, reservations, restarts,
version refusal, solutions) is tested everywhere without a node.  That the schema matches
Core's is checked against Core's facts (``test_ipc_schema.py``) and a real ``bitcoin-node``
(``test_ipc_real_node.py``), not here.

What it copies from Core's behaviour (src/node/interfaces.cpp, src/node/miner.cpp):

- calls naming one server thread run one after another (libmultiprocess), so a client
  that queued a quick call behind its own wait would hang here as it would on a node;
- ``waitTipChanged`` returns the new tip, the unchanged tip at the timeout, an empty hash
  after ``interrupt``; ``waitNext`` returns on a new tip or once fees rose by the
  threshold (checked on every mempool change here, once a second on a node), nothing at the
  timeout or after ``interruptWait``; timeouts are milliseconds;
- templates keep ``blockReservedWeight`` and ``coinbaseOutputMaxAdditionalSigops`` free,
  coinbase fields as Core v31 sets them (version 2, sequence 0xfffffffe, lock time
  height - 1, the witness commitment as the one required output);
- ``submitSolution`` puts the client's coinbase into the template's block and processes
  it; true for a block already known.

Variants: ``version="v31"`` (default: no ``Mining.submitBlock``, like v31 and master
31.99), ``"submitblock"`` (a later node that has it), ``"v30"`` (``Init.makeMining`` at
ordinal 2: the client must refuse it).  Schemas for the variants are made from sv2ffi's
files at run time, each in a parser of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import tempfile
import threading
from pathlib import Path
from typing import Optional

import capnp

from sv2ffi import bitcoin as btc
from sv2ffi.tp.ipc_schema import FILES, SCHEMA_DIR
from sv2ffi.tp.regtest import VERSION, RegtestChain

MAX_MONEY = 21_000_000 * 100_000_000

#: Core v30's Init (facts: Init.makeMining was ordinal 2 before v31 moved it to 3)
_V30_INIT = """@0xf2c5cfa319406aa6;
using Proxy = import "proxy.capnp";
interface Init {
    construct @0 (threadMap :Proxy.ThreadMap) -> (threadMap :Proxy.ThreadMap);
    makeEcho @1 (context :Proxy.Context) -> (result :AnyPointer);
    makeMining @2 (context :Proxy.Context) -> (result :AnyPointer);
}
"""


def _schema(variant: str):
    d = Path(tempfile.mkdtemp(prefix=f"ipc-double-{variant}-"))
    for name in FILES:
        text = (SCHEMA_DIR / f"{name}.capnp").read_text()
        if name == "mining" and variant != "submitblock":  # v31: Mining ends at @6
            text = re.sub(r"\n(\s*#[^\n]*\n)*\s*submitBlock @7[^;]*;", "\n", text)
        if name == "init" and variant == "v30":
            text = _V30_INIT
        (d / f"{name}.capnp").write_text(text)
    parser = capnp.SchemaParser()
    return {name: parser.load(str(d / f"{name}.capnp")) for name in FILES}


def build_template(chain: RegtestChain, reserved_weight: int, reserved_sigops: int,
                   use_mempool: bool):
    """(block with a placeholder coinbase, fees, sigops, coinbase fields) like Core's
    BlockAssembler with these options."""
    height = chain.height + 1
    entries = chain._selected(chain.block_max_weight - reserved_weight) if use_mempool else []
    while entries and sum(e.sigops for e in entries) > btc.MAX_BLOCK_SIGOPS_COST - reserved_sigops:
        entries.pop()  # block order: a child never stays without its parent
    txs = [e.tx for e in entries]
    fees = [e.fee for e in entries]
    reward = btc.block_subsidy(height, chain.network) + sum(fees)
    commitment = btc.witness_commitment_output([t.wtxid for t in txs])
    prefix = btc.bip34_height_push(height)
    cb = btc.Tx(2, [btc.TxIn(bytes(32), 0xFFFFFFFF, prefix, 0xFFFFFFFE,
                             [btc.WITNESS_RESERVED_VALUE])],
                [btc.TxOut(reward, bytes((btc.OP_TRUE,))), commitment], height - 1)
    header = btc.BlockHeader(VERSION, chain.tip_hash,
                             btc.merkle_root([cb.txid] + [t.txid for t in txs]),
                             chain.next_time(), chain.next_bits(), 0)
    block = btc.Block(header, [cb] + txs)
    coinbase = dict(version=2, sequence=0xFFFFFFFE, scriptSigPrefix=prefix,
                    witness=btc.WITNESS_RESERVED_VALUE, blockRewardRemaining=reward,
                    requiredOutputs=[commitment.serialize()], lockTime=height - 1)
    return block, fees, [e.sigops for e in entries], coinbase


class CoreIpcDouble:
    """The double's server: ``start()``/``stop()`` (a node restart is stop + start on the
    same socket path), ``do(fn)`` to touch the chain on the server's thread."""

    def __init__(self, socket_path, chain: Optional[RegtestChain] = None, *,
                 version: str = "v31", ibd: bool = False, tip_delay: float = 0.0):
        self.path = Path(socket_path)
        self.chain = chain or RegtestChain(seed=7)
        self.version = version
        self.schema = _schema(version)
        self.ibd = ibd
        #: the tip path's answers (waitTipChanged, and waitNext on an empty template) come
        #: this late after a new tip: the template path wins
        self.tip_delay = tip_delay
        #: waitNext answers a template on the same tip after a tick (Core on test networks
        #: from 20 minutes after the tip's time: the minimum-difficulty rule)
        self.min_difficulty = False
        self.loop: Optional[asyncio.AbstractEventLoop] = None
        self._thread: Optional[threading.Thread] = None
        self._stop: Optional[asyncio.Event] = None
        self._changed: Optional[asyncio.Event] = None
        self.connections = 0
        self.calls: list = []  # (method, thread name)
        self.create_options: list = []  # (useMempool, blockReservedWeight, sigops, cooldown)
        self.wait_options: list = []  # (timeout ms, feeThreshold)
        self.submitted: list = []  # (method, accepted)
        self.destroyed = 0
        self.live_templates = 0
        self.misuse: list = []  # what would crash a real node (see Template._use)
        self._threads: dict = {}  # server threads by name, of the current connection

    # ---- lifecycle --------------------------------------------------------------------

    def start(self) -> "CoreIpcDouble":
        ready = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main(ready)),
                                        name="core-ipc-double", daemon=True)
        self._thread.start()
        if not ready.wait(20):
            raise TimeoutError("the IPC test double did not start")
        return self

    def stop(self) -> None:
        if self._thread is None:
            return
        self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(20)
        self._thread = None
        self.loop = None

    async def _main(self, ready: threading.Event) -> None:
        self.loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._changed = asyncio.Event()
        self.chain.on_block.append(self._notify)
        self.chain.on_mempool.append(self._notify)
        servers: list = []
        try:
            async with capnp.kj_loop():
                async def accept(stream):
                    self.connections += 1
                    srv = capnp.TwoPartyServer(stream, bootstrap=self._init())
                    servers.append(srv)
                    await srv.on_disconnect()

                self.path.unlink(missing_ok=True)
                listener = await capnp.AsyncIoStream.create_unix_server(accept, str(self.path))
                ready.set()
                await self._stop.wait()
                listener.close()
                self.path.unlink(missing_ok=True)
                for srv in servers:  # the node goes away: every connection drops
                    srv.close()
                self._notify()
        finally:
            servers.clear()
            self._threads = {}
            self.chain.on_block.remove(self._notify)
            self.chain.on_mempool.remove(self._notify)
            ready.set()

    def do(self, fn, *args, timeout: float = 30):
        """Run ``fn(*args)`` on the double's loop (chain changes wake its waiters there)."""
        if self.loop is None:
            return fn(*args)

        async def call():
            return fn(*args)
        return asyncio.run_coroutine_threadsafe(call(), self.loop).result(timeout)

    def _notify(self, *_args) -> None:
        ev, self._changed = self._changed, asyncio.Event()
        ev.set()

    async def wait_change(self, deadline: float) -> bool:
        """Wait for a chain or mempool change until ``deadline`` (loop time)."""
        ev = self._changed
        remaining = deadline - self.loop.time()
        if remaining <= 0:
            return False
        try:
            await asyncio.wait_for(ev.wait(), remaining)
            return True
        except asyncio.TimeoutError:
            return False

    # ---- interfaces -------------------------------------------------------------------

    def _init(self):
        double = self
        s = self.schema

        class Thread(s["proxy"].Thread.Server):
            def __init__(self, name):
                self.name = name
                self.lock = asyncio.Lock()

            async def getName(self, **kw):
                return self.name

        class ThreadMap(s["proxy"].ThreadMap.Server):
            async def makeThread(self, name, **kw):
                t = Thread(name)
                double._threads[name] = t
                return t

        class Init(s["init"].Init.Server):
            async def construct(self, threadMap, **kw):
                return ThreadMap()

            if double.version != "v30":
                async def makeMining(self, context, **kw):
                    return Mining()

        Mining = self._mining_class()
        return Init()

    async def _on_thread(self, method: str, context):
        """The server thread a call names, locked for the call (one call at a time)."""
        name = (await context.thread.getName()).result
        self.calls.append((method, name))
        return self._threads[name].lock

    def _mining_class(self):
        double = self
        s = self.schema
        chain = self.chain

        class Mining(s["mining"].Mining.Server):
            def __init__(self):
                self.interrupted = False

            async def isTestChain(self, context, **kw):
                async with await double._on_thread("isTestChain", context):
                    return True

            async def isInitialBlockDownload(self, context, **kw):
                async with await double._on_thread("isInitialBlockDownload", context):
                    return double.ibd

            async def getTip(self, context, _context, **kw):
                async with await double._on_thread("getTip", context):
                    _context.results.result.hash = chain.tip_hash
                    _context.results.result.height = chain.height
                    _context.results.hasResult = True

            async def waitTipChanged(self, context, currentTip, timeout, _context, **kw):
                async with await double._on_thread("waitTipChanged", context):
                    deadline = double.loop.time() + min(timeout, 1e9) / 1000.0
                    current = bytes(currentTip)
                    while chain.tip_hash == current and not self.interrupted:
                        if not await double.wait_change(deadline):
                            break
                    if chain.tip_hash != current and double.tip_delay:
                        await asyncio.sleep(double.tip_delay)
                    if self.interrupted or double._stop.is_set():
                        self.interrupted = False
                        _context.results.result.hash = b""
                        return
                    _context.results.result.hash = chain.tip_hash
                    _context.results.result.height = chain.height

            async def createNewBlock(self, context, options, cooldown, **kw):
                async with await double._on_thread("createNewBlock", context):
                    double.create_options.append((options.useMempool, options.blockReservedWeight,
                                                  options.coinbaseOutputMaxAdditionalSigops,
                                                  cooldown))
                    if options.blockReservedWeight < 2000:
                        raise ValueError(f"block_reserved_weight ({options.blockReservedWeight}) "
                                         "must be at least 2000 weight units")
                    while cooldown and double.ibd:
                        await double.wait_change(double.loop.time() + 0.05)
                    return Template(options.useMempool, options.blockReservedWeight,
                                    options.coinbaseOutputMaxAdditionalSigops)

            async def checkBlock(self, context, block, options, _context, **kw):
                async with await double._on_thread("checkBlock", context):
                    blk = btc.Block.from_bytes(bytes(block))
                    if blk.header.prev_hash != chain.tip_hash:
                        reason = "inconclusive-not-best-prevblk"
                    else:
                        reason = chain._check(blk)
                    _context.results.result = reason is None
                    _context.results.reason = reason or ""
                    _context.results.debug = ""

            async def interrupt(self, **kw):
                self.interrupted = True
                double._notify()

            if double.version == "submitblock":
                async def submitBlock(self, context, block, _context, **kw):
                    async with await double._on_thread("submitBlock", context):
                        reason = chain.submit_block(bytes(block))
                        double.submitted.append(("submitBlock", reason in (None, "duplicate")))
                        _context.results.result = reason is None
                        _context.results.reason = reason or ""
                        _context.results.debug = ""

        class Template(s["mining"].BlockTemplate.Server):
            def __init__(self, use_mempool, reserved_weight, reserved_sigops):
                self.opts = (use_mempool, reserved_weight, reserved_sigops)
                self.block, self.fees, self.sigops, self.coinbase = build_template(
                    chain, reserved_weight, reserved_sigops, use_mempool)
                self.interrupted = False
                self.calls_running = 0
                self.gone = False
                double.live_templates += 1

            @contextlib.asynccontextmanager
            async def _use(self, method, context):
                """Core frees a template on destroy: a call on it after, or a destroy
                while a call runs on another thread, is a use-after-free on a node."""
                if self.gone:
                    double.misuse.append(f"{method} on a destroyed template")
                if method == "destroy" and self.calls_running:
                    double.misuse.append("destroy while a call runs on the template")
                async with await double._on_thread(method, context):
                    self.calls_running += 1
                    try:
                        yield
                    finally:
                        self.calls_running -= 1

            async def destroy(self, context, **kw):
                async with self._use("destroy", context):
                    self.gone = True
                    double.destroyed += 1
                    double.live_templates -= 1

            async def getBlockHeader(self, context, **kw):
                async with self._use("getBlockHeader", context):
                    return self.block.header.serialize()

            async def getBlock(self, context, **kw):
                async with self._use("getBlock", context):
                    return self.block.serialize()

            async def getTxFees(self, context, **kw):
                async with self._use("getTxFees", context):
                    return self.fees

            async def getTxSigops(self, context, **kw):
                async with self._use("getTxSigops", context):
                    return self.sigops

            async def getCoinbaseTx(self, context, _context, **kw):
                async with self._use("getCoinbaseTx", context):
                    r = _context.results.init("result")
                    for k, v in self.coinbase.items():
                        setattr(r, k, v)

            async def getCoinbaseMerklePath(self, context, **kw):
                async with self._use("getCoinbaseMerklePath", context):
                    return btc.coinbase_merkle_path([t.txid for t in self.block.txs[1:]])

            async def submitSolution(self, context, version, timestamp, nonce, coinbase, **kw):
                async with self._use("submitSolution", context):
                    cb = btc.Tx.from_bytes(bytes(coinbase))
                    txs = [cb] + self.block.txs[1:]
                    h = self.block.header
                    self.block = btc.Block(btc.BlockHeader(
                        version, h.prev_hash, btc.merkle_root([t.txid for t in txs]), timestamp,
                        h.bits, nonce), txs)
                    reason = chain.submit_block(self.block.serialize())
                    double.submitted.append(("submitSolution", reason in (None, "duplicate")))
                    return reason in (None, "duplicate")

            async def waitNext(self, context, options, **kw):
                async with self._use("waitNext", context):
                    double.wait_options.append((options.timeout, options.feeThreshold))
                    deadline = double.loop.time() + min(options.timeout, 1e9) / 1000.0
                    prev = self.block.header.prev_hash
                    mine = sum(self.fees)
                    while not self.interrupted and not double._stop.is_set():
                        if chain.tip_hash != prev:
                            if double.tip_delay and not self.opts[0]:
                                await asyncio.sleep(double.tip_delay)
                            return Template(*self.opts)
                        if double.min_difficulty:  # Core: at its wait's next tick
                            return Template(*self.opts)
                        if options.feeThreshold < MAX_MONEY:
                            _, fees, _, _ = build_template(chain, self.opts[1], self.opts[2],
                                                           self.opts[0])
                            if sum(fees) >= mine + options.feeThreshold:
                                return Template(*self.opts)
                        if double.loop.time() >= deadline:
                            break
                        # Core looks again at each tick (a second) even with no change
                        await double.wait_change(min(deadline, double.loop.time() + 0.05))
                    self.interrupted = False
                    return None

            async def interruptWait(self, **kw):
                self.interrupted = True
                double._notify()

        return Mining

"""Templates from Bitcoin Core's IPC Mining interface (Cap'n Proto on a unix socket).

A drop-in for sv2-tp: the node runs with ``-ipcbind=unix`` (``bitcoin-node``, or
``bitcoin -m node``), we connect to ``<datadir>/<chain>/node.sock`` like sv2-tp's
``-ipcconnect=unix``.  Supported: Core v31 and master 31.99; a v30 node is refused (its
Mining interface is incompatible), as is a node on another chain.

What comes from where:

- **Tips** from the node's *empty* template (``createNewBlock`` without the mempool):
  SetNewPrevHash needs only the new block's hash, the next nBits and a valid nTime, which
  its header gives before any transaction is selected.  On a node thread of its own the
  tip path keeps a ``waitNext`` pending on the empty template of the tip we are on,
  without a fee threshold, so only a new tip ends it: the node builds the next empty
  template in the same wake-up and answers with it (its block pipelined on it).
  Each empty node template is kept: it is the block a client solves on the future
  template it was switched to.
- **Templates** from ``createNewBlock`` with the largest coinbase reservation any client
  group asked for (weight and sigops cost, at least Core's defaults), once per new tip
  (after its SetNewPrevHash went out) and when a client group joins with a larger
  reservation.  Fee updates: from ``template_interval`` after the last template
  (sv2-tp's rule), once a second, ``waitNext`` with the fee delta and no wait: the node
  builds one template and answers with it if fees rose by the delta (what Core's own
  ``waitNext`` does every second while it waits).  No wait of this loop is pending when a
  block comes: Core wakes every ``waitNext`` in its tip notification and builds its
  template under ``cs_main``, and the tip path's empty template then waited for that
  build about half the time (20-40 ms with 3,000 transactions).
- **Solutions**: the TP persisted the block already; it is matched to the node template
  with the same previous block and transactions and handed over with ``submitSolution``
  (the node rebuilds the block around the client's coinbase).  Without a match (a node
  restarted since, or a reservation that grew after the template was made) a node that
  has ``Mining.submitBlock`` gets the whole block; v31 has none, and the reason says so.
- **Node restarts**, dropped sockets, a node still starting: reconnected with backoff
  (0.5 s doubling to 10 s, as the RPC source); initial block download is waited out (not on
  signet, as sv2-tp).  Node templates die with their connection.

pycapnp needs a KJ event loop on the thread making calls, so the Cap'n Proto side runs on
a thread of its own (``sv2ffi-ipc``) with its own asyncio loop; events reach the TP service
on its loop through ``call_soon_threadsafe``, in order.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ... import bitcoin as btc
from ...errors import (BitcoinDecodeError, InvalidTemplateError, IpcError, NodeUnavailableError,
                       UnsupportedNodeError)
from ..core import TipInfo
from ..ipc_client import MAX_MONEY, CoinbaseFields, MiningConnection, NodeTemplate
from ..template import BlockTemplate, TxInterner, block_template_txs
from . import Source

log = logging.getLogger("sv2ffi.tp.ipc")

#: Bitcoin Core's defaults for a template's coinbase room (-blockreservedweight, and the
#: sigops cost it keeps for the coinbase): the least the source ever asks for.
DEFAULT_RESERVED_WEIGHT = 8000
DEFAULT_RESERVED_SIGOPS = 400
#: Core's per-chain data directory names (chainparamsbase.cpp)
CHAIN_SUBDIRS = {"main": "", "test": "testnet3", "testnet4": "testnet4", "signet": "signet",
                 "regtest": "regtest"}
#: sockaddr_un.sun_path holds 108 bytes including the terminating NUL
MAX_SOCKET_PATH = 107
#: longest a new tip's full template waits for the tip path's SetNewPrevHash (seconds)
TIP_FIRST = 0.25
#: how long a solution on a tip's empty work waits for that empty node template (s)
EMPTY_WAIT = 5.0
#: past -templateinterval, how often the node is asked whether fees rose by the delta
#: (each check is one template build in the node, as each tick of Core's own waitNext)
FEE_CHECK = 1.0


async def _wait_event(event: asyncio.Event, seconds: float) -> None:
    """Wait until ``event`` is set or ``seconds`` passed, whichever comes first."""
    try:
        await asyncio.wait_for(event.wait(), seconds)
    except asyncio.TimeoutError:
        pass


def default_bitcoin_datadir() -> Path:
    return Path.home() / ".bitcoin"


def socket_path(ipcconnect: str, network: btc.Network, bitcoin_datadir=None) -> Path:
    """Where ``-ipcconnect`` points, with Core's rules (src/ipc/process.cpp): ``unix`` is
    ``node.sock`` in the chain's data directory, ``unix:<path>`` is ``<path>`` relative to
    that directory (an absolute path stays as it is)."""
    netdir = Path(bitcoin_datadir or default_bitcoin_datadir()).expanduser() / \
        CHAIN_SUBDIRS[network.name]
    if ipcconnect == "unix":
        path = netdir / "node.sock"
    elif ipcconnect.startswith("unix:") and len(ipcconnect) > 5:
        path = netdir / Path(ipcconnect[5:]).expanduser()
    else:
        raise ValueError(f"--ipcconnect must be 'unix' or 'unix:<socket path>', got {ipcconnect!r}")
    if len(str(path).encode()) > MAX_SOCKET_PATH:
        raise ValueError(f"IPC socket path {str(path)!r} is longer than the {MAX_SOCKET_PATH} "
                         "bytes a unix socket address holds")
    return path


def template_from_node(block: bytes, fees, sigops, cb: CoinbaseFields,
                       network: btc.Network, interner: Optional[TxInterner] = None) -> BlockTemplate:
    """A node template (getBlock, getTxFees, getTxSigops, getCoinbaseTx) -> BlockTemplate.

    The node's fees and sigops costs are taken as they are; its coinbase is a placeholder
    except for the fields ``getCoinbaseTx`` names.  The witness commitment among the
    required outputs is recomputed per served template (so it is checked here to be the
    one these transactions give); other required outputs are passed on as they are.
    """
    try:
        header = btc.BlockHeader.from_bytes(block[:80])
        found = btc.block_transactions(block)
        if not found:
            raise BitcoinDecodeError("block without transactions")
        btc.Tx.from_bytes(found[0][0])  # the node's placeholder coinbase: only checked
    except BitcoinDecodeError as e:
        raise InvalidTemplateError(f"node template: getBlock is not a block: {e}") from None
    txs = found[1:]
    if len(fees) != len(txs) or len(sigops) != len(txs):
        raise InvalidTemplateError(f"node template: {len(txs)} transactions but {len(fees)} fees "
                                   f"and {len(sigops)} sigops")
    try:
        height = btc.parse_bip34_height(cb.script_sig_prefix)
        outputs = []
        for raw in cb.required_outputs:
            r = btc.Reader(raw)
            outputs.append(btc.TxOut.read(r))
            if r.remaining:
                raise BitcoinDecodeError("trailing bytes after a required output")
    except BitcoinDecodeError as e:
        raise InvalidTemplateError(f"node template: getCoinbaseTx: {e}") from None
    if not cb.script_sig_prefix.startswith(btc.bip34_height_push(height)):
        raise InvalidTemplateError("node template: scriptSigPrefix is not a BIP34 height")
    ttxs = block_template_txs(txs, interner if interner is not None else TxInterner(),
                              "node template", fees, sigops)
    commits = [o for o in outputs if len(o.script_pubkey) >= 38
               and o.script_pubkey[:2] == bytes((btc.OP_RETURN, 0x24))
               and o.script_pubkey[2:6] == btc.WITNESS_COMMITMENT_HEADER]
    extra = [o for o in outputs if o not in commits]
    if cb.witness is not None and cb.witness != btc.WITNESS_RESERVED_VALUE:
        raise InvalidTemplateError("node template: a coinbase witness other than the 32 zero "
                                   "bytes the witness commitment is computed with")
    if commits and commits[-1] != btc.witness_commitment_output([t.wtxid for t in ttxs]):
        raise InvalidTemplateError("node template: the witness commitment does not match the "
                                   "template's transactions")
    total_fees = sum(t.fee for t in ttxs)
    subsidy = btc.block_subsidy(height, network)
    paid = cb.reward_remaining + sum(o.value for o in outputs)
    if paid != subsidy + total_fees:
        raise InvalidTemplateError(
            f"node template at height {height}: reward {paid} sat is not the {network.name} "
            f"subsidy {subsidy} + fees {total_fees} (is --chain right?)")
    return BlockTemplate(network, height, header.prev_hash, header.version,
                         header.bits, header.time, subsidy + total_fees, ttxs,
                         coinbase_tx_version=cb.version, coinbase_sequence=cb.sequence,
                         coinbase_locktime=cb.lock_time, fees_known=True, extra_outputs=extra,
                         segwit=bool(commits) or cb.witness is not None)


@dataclass
class _Held:
    """A node template kept for submitSolution; ``expires`` once its tip is left."""

    template: NodeTemplate
    expires: Optional[float] = None


class IpcSource(Source):
    name = "ipc"

    def __init__(self, socket_path, *, network: btc.Network, fee_delta: int = 1000,
                 template_interval: float = 5.0, stale_grace: float = 10.0,
                 retry_delay: float = 0.5, max_retry_delay: float = 10.0,
                 tip_wait: float = 10.0, cooldown: Optional[bool] = None,
                 wait_ibd: Optional[bool] = None, ibd_poll: float = 1.0,
                 min_reserved_weight: int = DEFAULT_RESERVED_WEIGHT,
                 min_reserved_sigops: int = DEFAULT_RESERVED_SIGOPS, submit_attempts: int = 10):
        self.socket_path = Path(socket_path)
        self.network = network
        self.fee_delta = fee_delta
        self.template_interval = template_interval
        self.stale_grace = stale_grace
        self.retry_delay, self.max_retry_delay = retry_delay, max_retry_delay
        self.tip_wait = tip_wait  # longest single waitTipChanged (then asked again)
        # Core: wait out IBD and headers ahead of the tip before a template, except where
        # one miner may be all there is (regtest, signet), which would wait forever
        self.cooldown = network.name not in ("regtest", "signet") if cooldown is None else cooldown
        self.wait_ibd = network.name != "signet" if wait_ibd is None else wait_ibd
        self.ibd_poll = ibd_poll
        self.min_reserved = (min_reserved_weight, min_reserved_sigops)
        self.submit_attempts = submit_attempts
        self.reservation = self.min_reserved  # (weight, sigops cost) asked of the node
        #: set (on the service's loop) to the UnsupportedNodeError that ended the source
        self.fatal: Optional[asyncio.Future] = None
        self.connected = threading.Event()
        # counters, for logs and tests
        self.reconnects = 0
        self.ibd_waits = 0
        self.fast_tips = 0
        #: tips announced from a waitNext template before the tip path's empty one came
        self.tips_from_templates = 0
        self.templates = 0
        self.node_templates_created = 0
        self.last_tip_ms = 0.0  # the tip path's answer (an empty template) -> tip handed over
        # service side
        self._svc_loop: Optional[asyncio.AbstractEventLoop] = None
        self._running = False
        self._thread: Optional[threading.Thread] = None
        self._started = threading.Event()
        # IPC thread side
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._stop: Optional[asyncio.Event] = None
        self._tip_changed: Optional[asyncio.Event] = None
        self._wake: Optional[asyncio.Event] = None
        self._tip_out: Optional[asyncio.Event] = None  # clear while a tip is being sent
        self._conn: Optional[MiningConnection] = None
        self._tip: Optional[TipInfo] = None
        self._held: dict = {}  # (prev_hash, txids) -> _Held
        self._waiting: Optional[NodeTemplate] = None  # template in waitNext
        #: the empty template the tip path waits on (``_tip_loop``): not destroyed meanwhile
        self._tip_watch: Optional[NodeTemplate] = None
        #: the template loop's template: a template is destroyed only when neither the loop
        #: nor ``_held`` has it (destroying one a call is running on crashes the node)
        self._current: Optional[NodeTemplate] = None
        self._interner = TxInterner()  # node templates of one mempool share transactions

    def describe(self) -> str:
        return f"bitcoin-node IPC Mining interface at unix:{self.socket_path}"

    # ---- service side ----------------------------------------------------------------------

    async def start(self) -> None:
        import capnp  # noqa: F401  (fail here, clearly, if pycapnp is missing)
        self._svc_loop = asyncio.get_running_loop()
        self.fatal = self._svc_loop.create_future()
        self._running = True
        self._thread = threading.Thread(target=self._thread_main, name="sv2ffi-ipc", daemon=True)
        self._thread.start()
        await self._svc_loop.run_in_executor(None, self._started.wait, 30)

    async def stop(self) -> None:
        self._running = False
        if self._stop is not None:
            self._to_ipc(self._stop.set)
        if self._thread is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._thread.join, 60)

    def on_constraints(self, constraints) -> None:
        weight = max([self.min_reserved[0]] + [c.reserved_weight for c in constraints])
        sigops = max([self.min_reserved[1]] + [c.reserved_sigops_cost for c in constraints])
        res = (min(weight, btc.MAX_BLOCK_WEIGHT), min(sigops, btc.MAX_BLOCK_SIGOPS_COST))
        self._to_ipc(self._set_reservation, res)

    def _to_ipc(self, fn, *args) -> None:
        """Run ``fn`` on the IPC thread's loop, unless that thread has ended already."""
        loop = self._loop
        if loop is not None:
            try:
                loop.call_soon_threadsafe(fn, *args)
            except RuntimeError:  # closed: the source ended (an unsupported node)
                pass

    async def submit_block(self, block: bytes) -> Optional[str]:
        if self._loop is None or self._loop.is_closed() or not self._thread.is_alive():
            return "the IPC source is not running"
        fut = asyncio.run_coroutine_threadsafe(self._submit(bytes(block)), self._loop)
        return await asyncio.wrap_future(fut)

    def _deliver_tip(self, tip: TipInfo) -> None:
        try:
            if self._running:
                self.sink.on_tip(tip)
        finally:
            # on_tip woke every client's writer, which runs before this callback and writes
            # SetNewPrevHash in one step: then the template path may parse (see _publish)
            self._svc_loop.call_soon(self._to_ipc, self._tip_out.set)

    def _deliver_template(self, tpl: BlockTemplate) -> None:
        if self._running:
            self.sink.on_template(tpl)

    def _set_fatal(self, e: Exception) -> None:
        if self.fatal is not None and not self.fatal.done():
            self.fatal.set_result(e)  # a result: nobody has to retrieve it
            if self._running:
                self.sink.on_fatal(e)  # the service stops serving; `sv2ffi tp` exits 2

    # ---- IPC thread ------------------------------------------------------------------------

    def _thread_main(self) -> None:
        try:
            asyncio.run(self._main())
        except Exception:  # pragma: no cover - logged, the service keeps its clients
            log.exception("IPC source thread failed")
        finally:
            self._started.set()

    async def _main(self) -> None:
        import capnp
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._tip_changed = asyncio.Event()
        self._wake = asyncio.Event()  # a new tip or reservation for the template loop
        self._tip_out = asyncio.Event()
        self._tip_out.set()
        self._held_added = asyncio.Event()
        if not self._running:
            return
        self._started.set()
        async with capnp.kj_loop():
            await self._run()
        gc.collect()

    async def _sleep(self, seconds: float) -> None:
        """Sleep unless stopping."""
        await _wait_event(self._stop, seconds)

    async def _run(self) -> None:
        delay = self.retry_delay
        logged_wait = False
        while not self._stop.is_set():
            conn = None
            failed = False
            try:
                conn = await MiningConnection.open(self.socket_path)
                await self._check_node(conn)
                if self._stop.is_set():
                    break
                log.info("connected to bitcoin-node over IPC at %s", self.socket_path)
                self._conn = conn
                self.connected.set()
                logged_wait = False
                delay = self.retry_delay
                await self._serve(conn)
            except UnsupportedNodeError as e:
                log.error("%s", e)
                # a fresh exception: the caught one's traceback holds Cap'n Proto objects,
                # which must not be freed on another thread
                self._svc_loop.call_soon_threadsafe(self._set_fatal, UnsupportedNodeError(str(e)))
                return
            except asyncio.CancelledError:
                raise
            except Exception as e:  # the TP keeps serving what it has; the node is retried
                failed = not self._stop.is_set()
                if failed:
                    logged_wait = self._log_failure(e, delay, logged_wait)
            finally:
                if self._conn is not None and failed:
                    self.reconnects += 1
                self.connected.clear()
                self._conn = None
                self._held.clear()  # node templates die with their connection
                self._waiting = None
                self._current = self._tip_watch = None
                if conn is not None:
                    conn.close()
                del conn
                # Cap'n Proto objects belong to this thread's event loop: collect any reference
                # cycle holding one here, before the collector runs on another thread
                gc.collect()
            if failed:
                await self._sleep(delay)
                delay = min(delay * 2, self.max_retry_delay)

    def _log_failure(self, e: Exception, delay: float, logged_wait: bool) -> bool:
        """Log why the node is retried (a node that stays away: once); returns whether the
        failure was the node being unavailable."""
        unavailable = isinstance(e, NodeUnavailableError)
        if isinstance(e, (IpcError, InvalidTemplateError)):
            if unavailable and logged_wait:
                log.debug("bitcoin-node IPC: %s; retrying in %.1f s", e, delay)
            else:
                hint = (" (is bitcoin-node running with -ipcbind=unix, on this chain?)"
                        if self._conn is None and unavailable else "")
                log.warning("bitcoin-node IPC: %s; retrying in %.1f s%s", e, delay, hint)
        else:
            log.exception("bitcoin-node IPC: unexpected error; retrying in %.1f s", delay)
        return unavailable

    async def _check_node(self, conn: MiningConnection) -> None:
        test_chain = await conn.is_test_chain()
        if test_chain == (self.network.name == "main"):
            raise UnsupportedNodeError(
                f"--chain is {self.network.name} but the node at {self.socket_path} runs "
                f"{'a test chain' if test_chain else 'mainnet'}")
        while self.wait_ibd and await conn.is_initial_block_download():
            if self.ibd_waits % 30 == 0:
                log.info("bitcoin-node is in initial block download; waiting before serving "
                         "templates")
            self.ibd_waits += 1
            await self._sleep(self.ibd_poll)
            if self._stop.is_set():
                return

    async def _serve(self, conn: MiningConnection) -> None:
        """Tip and template loops until the connection fails (raises) or stop (returns)."""
        if self._stop.is_set():
            return
        ref = await conn.get_tip()
        if ref is None:  # still starting: this waits until the node has a tip
            ref = await conn.wait_tip_changed(bytes(32), self.tip_wait)
            if ref is None:
                raise NodeUnavailableError("the node is shutting down")
        watch = await self._announce_tip(conn, ref)
        loops = [asyncio.ensure_future(c) for c in (self._tip_loop(conn, *watch),
                                                     self._template_loop(conn),
                                                     self._prune_loop())]
        stop = asyncio.ensure_future(self._stop.wait())
        gone = asyncio.ensure_future(conn.on_disconnect())
        try:
            done, _ = await asyncio.wait(loops + [stop, gone],
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not gone.done():
                await self._unblock(conn)
            tasks = loops + [stop, gone]
            for t in tasks:
                t.cancel()
            # the loops also end by themselves once stopping; never hang on one that does not
            _, stuck = await asyncio.wait(tasks, timeout=5)
            if stuck:
                log.warning("IPC source: %d task(s) did not end when cancelled", len(stuck))
        failed = [t.exception() for t in loops if t in done and not t.cancelled()
                  and t.exception() is not None]
        node_gone = gone in done
        del loops, done, stop, gone  # no cycle through the tasks keeps capabilities alive
        if failed:
            raise failed[0]
        if node_gone:
            raise NodeUnavailableError("the node closed the IPC connection")

    async def _unblock(self, conn: MiningConnection) -> None:
        """Unblock our waits on the node before leaving, so its threads are free at once
        instead of at their timeouts."""
        waits = [conn.interrupt()]
        for tmpl in (self._waiting, self._tip_watch):
            if tmpl is not None:
                waits.append(tmpl.interrupt_wait())
        try:
            await asyncio.wait_for(asyncio.gather(*waits, return_exceptions=True), 2)
        except asyncio.TimeoutError:
            pass

    # ---- tips ------------------------------------------------------------------------------

    async def _tip_loop(self, conn: MiningConnection, watch: NodeTemplate,
                        prev: bytes) -> None:
        """New tips from a ``waitNext`` on ``watch``, the node's empty template on
        ``prev`` (the tip we are on), with no fee threshold: only a new tip ends it, and
        the node then builds the new tip's empty template in the same wake-up.  Its block
        (header and coinbase) is pipelined on it, so the tip costs one round trip after the
        node's signal.  (``waitTipChanged`` then ``createNewBlock`` took two, and the second
        reached the node after the template loop's own ``waitNext`` had taken ``cs_main``
        to build the full template: the tip waited for that build, 20-40 ms with 3,000
        mempool transactions, issue 10.)  A template on the same tip is the test networks'
        minimum-difficulty rule (the node answers every ``waitNext`` at once from 20
        minutes after the tip's time): then one ``waitTipChanged`` round instead."""
        while not self._stop.is_set():
            if self._tip_watch is not watch:  # the one waited on before may go now
                old, self._tip_watch = self._tip_watch, watch
                self._free(old)
            ctx = conn.ctx("tip")
            promise = watch.next_promise(MAX_MONEY, self.tip_wait, thread="tip")
            # pipelined: the empty block is its header and coinbase (whose scriptSig has
            # the height), one call where getBlockHeader + getCoinbaseTx took two hops each
            # through the node's thread for this context
            block = promise.result.getBlock(ctx)
            nxt = await conn.template_of(promise)
            if nxt is None:
                continue  # the wait's timeout (or stopping: the loop ends)
            t0, noticed = time.perf_counter(), time.monotonic()
            self.node_templates_created += 1
            try:
                empty = btc.Block.from_bytes(bytes((await conn.call(block)).result))
                hdr = empty.header
                height = btc.parse_bip34_height(empty.txs[0].vin[0].script_sig)
            except (BitcoinDecodeError, IndexError) as e:
                asyncio.ensure_future(nxt.destroy("tip"))
                raise InvalidTemplateError(f"node template header: {e}") from None
            if hdr.prev_hash == prev:  # minimum difficulty: wait for a real tip instead
                asyncio.ensure_future(nxt.destroy("tip"))
                ref = await conn.wait_tip_changed(prev, self.tip_wait)
                if ref is None:
                    raise NodeUnavailableError("the node is shutting down (waitTipChanged "
                                               "gave no tip)")
                if ref[0] != prev:
                    watch, prev = await self._announce_tip(conn, ref)
                continue
            self._hold((hdr.prev_hash, ()), nxt)
            watch, prev = nxt, hdr.prev_hash
            if self._send_tip(TipInfo(hdr.prev_hash, height, hdr.bits, hdr.time)):
                self.last_tip_ms = (time.perf_counter() - t0) * 1e3
                if log.isEnabledFor(logging.DEBUG):  # the TP's share of a tip, for tracing
                    log.debug("tip %s noticed: the node's empty template for it read at %.6f "
                              "(CLOCK_MONOTONIC), its block %.3f ms later",
                              btc.hash_hex(prev), noticed, self.last_tip_ms)

    async def _announce_tip(self, conn: MiningConnection, ref: tuple) -> tuple:
        """Tip -> the node's empty template for the next height -> SetNewPrevHash; returns
        (that template, the block it builds on) for ``_tip_loop`` to wait on."""
        block_hash, height = ref
        t0 = time.perf_counter()
        promise = conn.create_new_block(reserved_weight=self.min_reserved[0],
                                        reserved_sigops=self.min_reserved[1], use_mempool=False,
                                        cooldown=False, thread="tip")
        header = promise.result.getBlockHeader(conn.ctx("tip"))  # pipelined
        tmpl = await conn.template_of(promise)
        if tmpl is None:
            raise NodeUnavailableError("the node is shutting down (createNewBlock gave nothing)")
        self.node_templates_created += 1
        try:
            hdr = btc.BlockHeader.from_bytes(bytes((await conn.call(header)).result))
        except BitcoinDecodeError as e:
            asyncio.ensure_future(tmpl.destroy("tip"))
            raise InvalidTemplateError(f"node template header: {e}") from None
        self._hold((hdr.prev_hash, ()), tmpl)
        if hdr.prev_hash == block_hash:  # else the tip moved on already: the next wait says
            if self._send_tip(TipInfo(block_hash, height + 1, hdr.bits, hdr.time)):
                self.last_tip_ms = (time.perf_counter() - t0) * 1e3
                log.debug("tip %s at height %d: the node's empty template in %.1f ms",
                          btc.hash_hex(block_hash), height, self.last_tip_ms)
        return tmpl, hdr.prev_hash

    def _set_tip(self, tip: TipInfo) -> bool:
        """Record a tip; False when it is the one we are on or older."""
        cur = self._tip
        if cur is not None and (tip.prev_hash == cur.prev_hash or tip.height < cur.height):
            return False
        self._tip = tip
        self._tip_changed.set()
        self._wake.set()
        deadline = time.monotonic() + self.stale_grace + 1.0
        for key, held in self._held.items():
            if key[0] == tip.prev_hash:
                held.expires = None
            elif held.expires is None:
                held.expires = deadline
        return True

    # ---- templates ------------------------------------------------------------------------

    def _set_reservation(self, res: tuple) -> None:
        if res == self.reservation:
            return
        log.info("coinbase reservation asked of the node: %d weight units, %d sigops cost "
                 "(largest client group)", res[0], res[1])
        self.reservation = res
        if self._wake is not None:  # the template loop makes a new template at once
            self._wake.set()

    async def _template_loop(self, conn: MiningConnection) -> None:
        """Full templates: ``createNewBlock`` for each new tip (once the tip went out) and
        for a larger reservation; fee updates from ``waitNext`` with the fee delta and no
        wait (the node builds one template and answers with it if fees rose by the delta),
        asked once per ``FEE_CHECK`` from ``template_interval`` after the last template
        (sv2-tp's rule).  No ``waitNext`` of this loop is pending when a block comes: the
        node would build the full template for the new tip in its tip notification, under
        ``cs_main``, and the tip path's empty template would wait for that build half the
        time (issue 10; Core's own ``waitNext`` with a fee threshold builds one every
        second too, so the node's work is the same)."""
        cur: Optional[NodeTemplate] = None
        made_for = made_on = None
        last_sent = float("-inf")
        interval = self.template_interval
        while not self._stop.is_set():
            self._wake.clear()
            new_tip = self._tip is not None and self._tip.prev_hash != made_on
            if cur is None or self.reservation != made_for or new_tip:
                if new_tip:  # its SetNewPrevHash written before the full template is asked
                    await _wait_event(self._tip_out, TIP_FIRST)
                self._tip_changed.clear()
                made_for = self.reservation
                cur = await conn.template_of(conn.create_new_block(
                    reserved_weight=made_for[0], reserved_sigops=made_for[1],
                    cooldown=self.cooldown, thread="template"))
                if cur is None:
                    raise NodeUnavailableError("the node is shutting down (createNewBlock gave "
                                               "nothing)")
                self._use(cur)
                self.node_templates_created += 1
                made_on = await self._publish(cur)
                last_sent = time.monotonic()
                continue
            elapsed = time.monotonic() - last_sent
            if elapsed < interval:  # within -templateinterval only a new tip counts
                await _wait_event(self._wake, interval - elapsed)
                continue
            self._tip_changed.clear()
            self._waiting = cur
            try:
                nxt = await cur.wait_next(self.fee_delta, 0)  # one fee check, no wait
            finally:
                self._waiting = None
            if nxt is None:
                await _wait_event(self._wake, FEE_CHECK)
                continue
            self._use(nxt)
            cur = nxt
            self.node_templates_created += 1
            made_on = await self._publish(nxt)
            last_sent = time.monotonic()

    async def _publish(self, tmpl: NodeTemplate) -> bytes:
        """Fetch, convert, keep and hand a node template to the TP.  Returns the block it
        builds on."""
        block, fees, sigops, cb = await tmpl.contents("template")
        if self._tip is None or block[4:36] != self._tip.prev_hash:
            self._announce_from_template(block, cb)
        # Parsing holds the interpreter for milliseconds (the service's loop, writing
        # SetNewPrevHash to every client, runs on another thread): let a new tip the tip
        # path has not announced yet, or is still sending, go out first.
        try:
            if self._tip is None or block[4:36] != self._tip.prev_hash:
                await asyncio.wait_for(self._tip_changed.wait(), TIP_FIRST)
            await asyncio.wait_for(self._tip_out.wait(), TIP_FIRST)
        except asyncio.TimeoutError:
            pass
        tpl = template_from_node(block, fees, sigops, cb, self.network, self._interner)
        tip = self._tip
        if tip is not None and tpl.height < tip.height:
            log.debug("dropping a node template for height %d: the tip moved on", tpl.height)
            return tpl.prev_hash
        if tip is None or tpl.prev_hash != tip.prev_hash:
            self._set_tip(TipInfo(tpl.prev_hash, tpl.height, tpl.bits, tpl.time))
        self._hold((tpl.prev_hash, tuple(t.txid for t in tpl.txs)), tmpl)
        self.templates += 1
        self._svc_loop.call_soon_threadsafe(self._deliver_template, tpl)
        return tpl.prev_hash

    def _announce_from_template(self, block: bytes, cb) -> None:
        """A template on a tip the tip path has not announced yet: its header says all a
        SetNewPrevHash needs, so the tip goes out now.  The node answers a pending
        ``waitNext`` from inside its tip notification, before a ``createNewBlock`` asked
        after ``waitTipChanged`` gets its turn (with 3,000 mempool transactions: about 10
        against 21 ms after the block); the tip path's empty template still comes, and is
        held for solutions on the empty work (``_submit`` waits for it)."""
        try:
            hdr = btc.BlockHeader.from_bytes(block[:80])
            height = btc.parse_bip34_height(cb.script_sig_prefix)
        except BitcoinDecodeError:
            return  # the template path reports it
        if self._send_tip(TipInfo(hdr.prev_hash, height, hdr.bits, hdr.time)):
            self.tips_from_templates += 1

    def _send_tip(self, tip: TipInfo) -> bool:
        """A newer tip, recorded and handed to the service at once (its template follows
        once the tip is out: ``_tip_out``); False when it is not newer."""
        if not self._set_tip(tip):
            return False
        self.fast_tips += 1
        self._tip_out.clear()
        self._svc_loop.call_soon_threadsafe(self._deliver_tip, self._tip)
        return True

    def _hold(self, key: tuple, tmpl: NodeTemplate) -> None:
        self._held_added.set()
        old = self._held.get(key)
        self._held[key] = _Held(tmpl, None if self._tip is None or key[0] == self._tip.prev_hash
                                else time.monotonic() + self.stale_grace + 1.0)
        if old is not None and old.template is not tmpl:  # same block either way
            self._free(old.template)

    def _use(self, tmpl: NodeTemplate) -> None:
        """The template loop moves on to ``tmpl``; its previous one may go."""
        old, self._current = self._current, tmpl
        if old is not tmpl:
            self._free(old)

    def _free(self, tmpl: Optional[NodeTemplate]) -> None:
        """Destroy ``tmpl`` on the node unless the template loop or ``_held`` still has it."""
        if tmpl is None or tmpl is self._current or tmpl is self._tip_watch or \
                any(h.template is tmpl for h in self._held.values()):
            return
        asyncio.ensure_future(tmpl.destroy())

    async def _prune_loop(self) -> None:
        """Free node templates of old tips once the TP's grace period for them is over."""
        while not self._stop.is_set():
            await asyncio.sleep(1.0)
            now = time.monotonic()
            for key in [k for k, h in self._held.items()
                        if h.expires is not None and h.expires <= now]:
                self._free(self._held.pop(key).template)

    # ---- solutions -------------------------------------------------------------------------

    async def _empty_template_for(self, key: tuple, wait: float = EMPTY_WAIT):
        """A solution on the empty work of a tip announced from a full template
        (``_announce_from_template``) can come before the tip path's empty node template,
        the one it must be submitted through: wait for it, a bounded time."""
        deadline = time.monotonic() + wait
        while (held := self._held.get(key)) is None and not self._stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self._held_added.clear()
            try:
                await asyncio.wait_for(self._held_added.wait(), left)
            except asyncio.TimeoutError:
                return None
        return held

    async def _submit(self, block: bytes) -> Optional[str]:
        try:
            blk = btc.Block.from_bytes(block)
        except BitcoinDecodeError as e:
            return f"not a block: {e}"
        hdr = blk.header
        coinbase = blk.txs[0].serialize(True)
        key = (hdr.prev_hash, tuple(t.txid for t in blk.txs[1:]))
        delay = self.retry_delay
        last: object = None
        for attempt in range(1, self.submit_attempts + 1):
            conn = self._conn
            try:
                if conn is None:
                    raise NodeUnavailableError("not connected to the node")
                held = self._held.get(key)
                if held is None and not key[1]:
                    held = await self._empty_template_for(key)
                if held is not None:
                    if await held.template.submit_solution(hdr.version, hdr.time, hdr.nonce,
                                                           coinbase):
                        return None
                    _, reason, debug = await conn.check_block(block)
                    return (f"the node refused the block: {reason or 'submitSolution returned false'}"
                            + (f" ({debug})" if debug else ""))
                got = await conn.submit_block(block)
                if got is not None:
                    ok, reason, debug = got
                    if ok or reason == "duplicate":
                        return None
                    return f"submitBlock: {reason}" + (f" ({debug})" if debug else "")
                return ("no node template holds this block's transactions (the node restarted, "
                        "or a client's coinbase reservation grew after the template was made) "
                        "and the node has no submitBlock (Core v31): submit the persisted block "
                        "with bitcoin-cli submitblock")
            except NodeUnavailableError as e:
                last = e
                log.warning("submitting block %s, attempt %d: %s; retrying in %.1f s",
                            btc.hash_hex(hdr.hash), attempt, e, delay)
                await self._sleep(delay)
                if self._stop.is_set():
                    break
                delay = min(delay * 2, self.max_retry_delay)
            except IpcError as e:
                return f"submit failed: {e}"
        return f"submit failed after {self.submit_attempts} attempts: {last}"


"""The asyncio adapter of the template provider: Noise server + source + TP core.

Everything with a rule in it lives in ``core.TemplateProviderCore``; this module moves
messages between sockets and the core, runs the clock (``tick``), and does the two pieces
of I/O the core asks for: persisting a solved block (before anything else hears of it) and
submitting it through the source.

Each client gets an outgoing queue and a writer task, so a slow client delays nobody's
SetNewPrevHash; a client whose queue overflows is disconnected.  Clients only ever send
small messages (the largest is SubmitSolution with a B0_64K coinbase), so frames above
that are refused before being buffered.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Optional

from .. import aio
from ..connection import Connection
from ..errors import ConnectionClosed, InvalidValueError, ProtocolViolationError, Sv2Error
from ..messages import SetupConnectionError
from ..schema import ERROR_CODES
from ..keys import DatadirKeys, load_datadir_keys
from .core import Effects, SessionState, Solution, TemplateProviderCore, TipInfo, TpConfig
from .metrics import TpMetrics
from .service_config import check_service_args
from .sources import Source
from .storage import save_block
from .template import BlockTemplate

log = logging.getLogger("sv2ffi.tp")

#: SubmitSolution: 22 bytes of fields + a B0_64K coinbase; nothing a client sends is bigger.
MAX_CLIENT_PAYLOAD = 22 + 65535
_CLOSE = object()


class _Peer:
    __slots__ = ("sid", "stream", "queue", "writer", "closing")

    def __init__(self, sid: int, stream: aio.Sv2Stream):
        self.sid = sid
        self.stream = stream
        self.queue: asyncio.Queue = asyncio.Queue()
        self.writer: Optional[asyncio.Task] = None
        self.closing = False


class TpService:
    """One template provider: listening socket, sessions, a source, a data directory."""

    def __init__(self, source: Source, *, config: Optional[TpConfig] = None,
                 host: str = "127.0.0.1", port: int = 0, datadir=None,
                 keys: Optional[DatadirKeys] = None, tick_interval: float = 0.1,
                 handshake_timeout: float = 10.0, setup_timeout: float = 30.0,
                 max_queue: int = 4096, metrics: Optional[TpMetrics] = None):
        check_service_args(source, config, host, port, datadir, keys, tick_interval,
                           handshake_timeout, setup_timeout, max_queue)
        self.metrics = metrics if metrics is not None else TpMetrics()
        self.metrics.service = self
        self.source = source
        self.core = TemplateProviderCore(config or TpConfig())
        self.config = self.core.config
        self.host, self._port = host, port
        self.datadir = Path(datadir) if datadir is not None else None
        self.keys = keys
        self.tick_interval = tick_interval
        self.handshake_timeout = handshake_timeout
        self.setup_timeout = setup_timeout
        self.max_queue = max_queue
        self.peers: dict[int, _Peer] = {}
        self.server: Optional[aio.Sv2Server] = None
        self._ticker: Optional[asyncio.Task] = None
        self._solution_tasks: set = set()
        self.solutions: list = []  # (Solution, path, result) for inspection and tests
        self._stopping = False
        self._pending_template: Optional[BlockTemplate] = None
        self._pending_reorg = False
        self._template_scheduled = False
        #: set when the source found it must not serve (``fatal`` says why)
        self.failed: Optional[asyncio.Event] = None
        self.fatal: Optional[BaseException] = None
        self._constraints_seen: frozenset = frozenset()

    # ---- lifecycle -----------------------------------------------------------------------

    @property
    def port(self) -> int:
        return self.server.port if self.server else self._port

    @property
    def authority_pubkey(self) -> str:
        return self.keys.authority_pubkey_text

    async def start(self) -> None:
        if self.keys is None:
            self.keys = await asyncio.to_thread(load_datadir_keys, self.datadir, create=True)
        keys = self.keys
        self.failed = asyncio.Event()

        def factory() -> Connection:
            return Connection.responder_from_authority(keys.static, keys.authority,
                                                       max_payload=MAX_CLIENT_PAYLOAD)

        self.source.attach(self)
        self.server = await aio.serve(self._handle, self.host, self._port,
                                      connection_factory=factory,
                                      max_clients=self.config.max_clients,
                                      handshake_timeout=self.handshake_timeout)
        await self.source.start()
        self._ticker = asyncio.get_running_loop().create_task(self._tick_loop())
        log.info("template provider listening on %s:%d, source: %s", self.host, self.port,
                 self.source.describe())

    async def stop(self) -> None:
        """Stop accepting, end every client, finish in-flight solutions, stop the source.
        After this returns no source event or solution callback runs."""
        self._stopping = True
        if self._ticker is not None:
            self._ticker.cancel()
            await asyncio.gather(self._ticker, return_exceptions=True)
        if self.server is not None:
            await self.server.close()
        for peer in list(self.peers.values()):
            if peer.writer is not None:
                peer.writer.cancel()
        if self._solution_tasks:
            await asyncio.wait(list(self._solution_tasks), timeout=30)
        await self.source.stop()

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(self.tick_interval)
            self._dispatch(self.core.tick(time.monotonic()))
            self._tell_constraints()  # coalesced constraints changes are applied by tick

    # ---- source events (Sink) ----------------------------------------------------------------

    def on_tip(self, tip: TipInfo, *, reorg: bool = False) -> None:
        if not self._stopping:
            self._new_tip(tip, reorg)

    def _new_tip(self, tip: TipInfo, reorg: bool) -> None:
        before = self.core.tip
        eff = self.core.new_tip(tip, time.monotonic(), reorg=reorg)
        if self.core.tip is not before:  # not a late notification of an older block
            self.metrics.on_new_tip(tip, eff)
        self._dispatch(eff)

    def is_newer(self, prev_hash: bytes, height: int) -> bool:
        return self.core.is_newer(prev_hash, height)

    def tip_relation(self, prev_hash: bytes, height: int) -> str:
        return self.core.tip_relation(prev_hash, height)

    def on_template(self, tpl: BlockTemplate, *, reorg: bool = False) -> None:
        """A new tip goes out at once (the empty template and SetNewPrevHash); building the
        full template waits one loop iteration, so the client writers send the tip first.
        Templates arriving meanwhile replace the pending one: only the newest is built."""
        if self._stopping:
            return
        if reorg or self.core.is_new_tip(tpl):
            self._new_tip(TipInfo(tpl.prev_hash, tpl.height, tpl.bits, tpl.time, tpl.min_time),
                          reorg)
        self._pending_template, self._pending_reorg = tpl, reorg
        if not self._template_scheduled:
            self._template_scheduled = True
            asyncio.get_running_loop().call_soon(self._apply_template)

    def _apply_template(self) -> None:
        self._template_scheduled = False
        tpl, self._pending_template = self._pending_template, None
        if tpl is not None and not self._stopping:
            self._dispatch(self.core.new_template(tpl, time.monotonic(),
                                                  reorg=self._pending_reorg))

    def on_fatal(self, error: BaseException) -> None:
        """The source cannot serve (e.g. the node runs another chain): stop serving; the
        process running the service exits with ``fatal``."""
        log.error("template source failed: %s", error)
        self.fatal = error
        if self.failed is not None:
            self.failed.set()

    # ---- clients -----------------------------------------------------------------------------

    async def _handle(self, stream: aio.Sv2Stream) -> None:
        try:
            sid = self.core.open_session(time.monotonic(), peer=str(stream.peername))
        except ProtocolViolationError as e:
            log.warning("refusing %s: %s", stream.peername, e)
            return
        peer = self.peers[sid] = _Peer(sid, stream)
        peer.writer = asyncio.get_running_loop().create_task(self._write_loop(peer))
        core = self.core
        try:
            while not peer.closing:
                session = core.sessions.get(sid)
                if session is None:
                    break
                if session.state is SessionState.ACTIVE:
                    msg = await stream.recv()
                else:  # a client must finish setting up promptly
                    msg = await asyncio.wait_for(stream.recv(), self.setup_timeout)
                eff = core.receive(sid, msg, time.monotonic())
                self.metrics.on_client_message(sid, stream.peername, msg, eff)
                self._dispatch(eff)
                self._tell_constraints()
        except asyncio.TimeoutError:
            log.warning("client %d (%s): no setup within %.0f s; disconnecting", sid,
                        stream.peername, self.setup_timeout)
        except ConnectionClosed:
            log.info("client %d (%s) disconnected", sid, stream.peername)
        except InvalidValueError as e:
            session = core.sessions.get(sid)
            if (e.message, e.field) == ("SetupConnection", "protocol") and session is not None \
                    and session.state is SessionState.AWAIT_SETUP:
                # a protocol number this codec does not know: tell the client, as sv2-tp does
                # for any protocol but Template Distribution, before closing
                log.warning("client %d (%s): SetupConnection for an unknown protocol; "
                            "disconnecting", sid, stream.peername)
                try:
                    await asyncio.wait_for(stream.send_farewell(SetupConnectionError(
                        flags=0, error_code=ERROR_CODES["UNSUPPORTED_PROTOCOL"])), 5)
                except (asyncio.TimeoutError, Sv2Error, OSError):
                    pass
            else:
                log.warning("client %d (%s): %s: %s; disconnecting", sid, stream.peername,
                            type(e).__name__, e)
        except Sv2Error as e:
            log.warning("client %d (%s): %s: %s; disconnecting", sid, stream.peername,
                        type(e).__name__, e)
        finally:
            core.close_session(sid)
            self.metrics.on_client_closed(sid)
            self._tell_constraints()
            if peer.writer is not None and not peer.writer.done():
                if peer.closing:  # let the writer flush e.g. SetupConnection.Error
                    try:
                        await asyncio.wait_for(asyncio.shield(peer.writer), 5)
                    except (asyncio.TimeoutError, Exception):
                        pass
                peer.writer.cancel()
            self.peers.pop(sid, None)

    async def _write_loop(self, peer: _Peer) -> None:
        stream = peer.stream
        try:
            while True:
                msg = await peer.queue.get()
                if msg is _CLOSE:
                    break
                await stream.send(msg)
                self.metrics.on_sent(peer.sid, msg)
        except (ConnectionClosed, Sv2Error, OSError):
            pass
        finally:
            peer.closing = True
            await stream.close()

    def _dispatch(self, eff: Effects) -> None:
        if not eff:
            return
        peers = self.peers
        for sid, msg in eff.sends:
            peer = peers.get(sid)
            if peer is None or peer.closing:
                continue
            peer.queue.put_nowait(msg)
            if peer.queue.qsize() > self.max_queue:
                log.warning("client %d is not reading (%d messages queued); disconnecting", sid,
                            peer.queue.qsize())
                self._close_peer(peer)
                self.core.close_session(sid)
        for sid, _reason in eff.closes:
            peer = peers.get(sid)
            if peer is not None:
                self._close_peer(peer)
        for sol in eff.solutions:
            task = asyncio.get_running_loop().create_task(self._on_solution(sol))
            self._solution_tasks.add(task)
            task.add_done_callback(self._solution_tasks.discard)

    def _tell_constraints(self) -> None:
        """Source hook: the distinct client constraints, whenever that set changes."""
        seen = frozenset(c for c, g in self.core.groups.items() if g.members)
        if seen != self._constraints_seen:
            self._constraints_seen = seen
            self.source.on_constraints(seen)

    def _close_peer(self, peer: _Peer) -> None:
        if not peer.closing:
            peer.closing = True
            peer.queue.put_nowait(_CLOSE)

    async def _on_solution(self, sol: Solution) -> None:
        try:
            path = await asyncio.to_thread(save_block, self.datadir, sol.height, sol.block)
        except OSError as e:  # never lose the block silently; still try to submit it
            log.error("could not persist block at height %d: %s", sol.height, e)
            path = None
        else:
            log.info("block at height %d persisted to %s", sol.height, path)
        try:
            result = await self.source.submit_block(sol.block)
        except Exception as e:  # the source logs details; a failed submit is not fatal
            result = f"submit failed: {e}"
        if result is None:
            log.info("block at height %d accepted by the %s source", sol.height, self.source.name)
        else:
            log.warning("block at height %d not accepted: %s", sol.height, result)
        self.metrics.on_solution_result(sol, result)
        self.solutions.append((sol, path, result))

    @property
    def client_count(self) -> int:
        return len(self.core.active_sessions)

"""The asyncio adapter of the template provider: listener + source + TP core.

Everything with a rule in it lives in ``core.TemplateProviderCore``; the network edge
(admission, per-client read and write paths, their limits) in ``listener.py``.  This
module wires them: client frames go to the core, the core's effects go out, the clock
ticks, and it does the two pieces of I/O the core asks for: persisting a solved block
(before anything else hears of it) and submitting it through the source.

Writes are direct: a message the core sends to many clients is encoded once and encrypted
per client straight into each transport, so a new tip reaches everybody in one pass, and a
client that does not read fills only its own buffer (and is aborted, listener.py).
Clients only ever send small messages (the largest is SubmitSolution with a B0_64K
coinbase), so frames above that are refused before being buffered.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import time
from pathlib import Path
from typing import Callable, Optional

from .. import fanout
from ..connection import CERT_BACKDATE, Connection
from ..errors import InvalidValueError, ProtocolViolationError, Sv2Error
from ..framing import encode_message
from ..keys import Certificate, DatadirKeys, load_datadir_keys
from ..messages import SetupConnectionError
from ..schema import ERROR_CODES, FRAME_HEADER_SIZE
from .core import Effects, SessionState, Solution, TemplateProviderCore, TipInfo, TpConfig
from .listener import WRITE_TIMEOUT, ClientProtocol, Limits, TpListener
from .metrics import TpMetrics
from .service_config import check_service_args
from .sources import Source
from .storage import prepare_blocks_dir, save_block
from .template import BlockTemplate

log = logging.getLogger("sv2ffi.tp")

#: SubmitSolution: 22 bytes of fields + a B0_64K coinbase; nothing a client sends is bigger.
MAX_CLIENT_PAYLOAD = 22 + 65535
#: certificates: valid from an hour back (connection.CERT_BACKDATE) for this long, made
#: once a minute (a Schnorr signature per handshake is most of a refused connection's cost)
CERT_VALIDITY = 3600
CERT_REISSUE = 60.0


class TpService:
    """One template provider: listening socket, sessions, a source, a data directory."""

    def __init__(self, source: Source, *, config: Optional[TpConfig] = None,
                 host: str = "127.0.0.1", port: int = 0, datadir=None,
                 keys: Optional[DatadirKeys] = None, tick_interval: float = 0.1,
                 handshake_timeout: float = 10.0, setup_timeout: float = 30.0,
                 write_timeout: float = WRITE_TIMEOUT, max_pending: int = 64,
                 max_pending_per_source: int = 8, metrics: Optional[TpMetrics] = None):
        check_service_args(source, config, host, port, datadir, keys, tick_interval,
                           handshake_timeout, setup_timeout, write_timeout, max_pending,
                           max_pending_per_source)
        self.metrics = metrics if metrics is not None else TpMetrics()
        self.metrics.service = self
        self.source = source
        #: shared messages sealed and sent in one C pass (sv2ffi.fanout), when built
        self._native_fanout = fanout.enabled()
        self._fanout_threads = fanout.thread_limit()
        self.core = TemplateProviderCore(config or TpConfig())
        self.config = self.core.config
        self.host, self._port = host, port
        self.datadir = Path(datadir) if datadir is not None else None
        self.keys = keys
        self.tick_interval = tick_interval
        self.limits = Limits(max_clients=self.config.max_clients, max_pending=max_pending,
                             max_pending_per_source=max_pending_per_source,
                             handshake_timeout=handshake_timeout, setup_timeout=setup_timeout,
                             write_timeout=write_timeout, max_payload=MAX_CLIENT_PAYLOAD)
        self.clients: dict[int, ClientProtocol] = {}  # session id -> its connection
        self.server: Optional[TpListener] = None
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
        # first: a TP that could not save a solved block must neither listen nor mint keys
        await asyncio.to_thread(prepare_blocks_dir, self.datadir)
        if self.keys is None:
            self.keys = await asyncio.to_thread(load_datadir_keys, self.datadir, create=True)
        keys = self.keys
        self.failed = asyncio.Event()

        issued: list = [None, float("-inf")]  # one certificate a minute, not per handshake

        def factory() -> Connection:
            now = time.time()
            if now - issued[1] >= CERT_REISSUE:
                t = int(now)
                issued[:] = [Certificate.issue(keys.authority, keys.static.xonly,
                                               max(t - CERT_BACKDATE, 0),
                                               min(t + CERT_VALIDITY, 0xFFFFFFFF)), now]
            return Connection.responder(keys.static, issued[0], max_payload=MAX_CLIENT_PAYLOAD)

        self.source.attach(self)
        self.server = TpListener(factory, self.limits, self, lambda: self.core.active_count)
        await self.server.start(self.host, self._port)
        await self.source.start()
        self._ticker = asyncio.get_running_loop().create_task(self._tick_loop())
        log.info("template provider listening on %s:%d, source: %s", self.host, self.port,
                 self.source.describe())
        if not self._native_fanout:  # many clients then cost about 4x more CPU per tip
            log.info("tips are sealed and written in %s", fanout.describe())

    async def stop(self) -> None:
        """Stop accepting, end every client, finish in-flight solutions, stop the source.
        After this returns no source event or solution callback runs."""
        self._stopping = True
        if self._ticker is not None:
            self._ticker.cancel()
            await asyncio.gather(self._ticker, return_exceptions=True)
        if self.server is not None:
            await self.server.close()
        if self._solution_tasks:
            await asyncio.wait(list(self._solution_tasks), timeout=30)
        await self.source.stop()

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(self.tick_interval)
            now = time.monotonic()
            self._dispatch(self.core.tick(now))
            self._tell_constraints()  # coalesced constraints changes are applied by tick
            self.server.check_writes(now)

    # ---- source events (Sink) ----------------------------------------------------------------

    def on_tip(self, tip: TipInfo, *, reorg: bool = False,
               then: Optional[Callable[[], None]] = None) -> None:
        if not self._stopping:
            self._new_tip(tip, reorg, then)
        elif then is not None:
            then()

    def _new_tip(self, tip: TipInfo, reorg: bool,
                 then: Optional[Callable[[], None]] = None) -> None:
        """The tip to every client in one pass, then the source's ``then`` (its request
        for the new tip's full template), then the bookkeeping.  No garbage collection
        runs during it: a full collection of a TP with a thousand clients takes tens of
        milliseconds, which would land on the clients written after it; it runs once the
        tip is out."""
        collecting = gc.isenabled()
        gc.disable()
        try:
            before, started = self.core.tip, self.metrics.clock()
            eff = self.core.new_tip(tip, time.monotonic(), reorg=reorg)
            # counted once written, unless a late notification of an older block
            self._dispatch(eff, then, (tip, started) if self.core.tip is not before else None)
        finally:
            if collecting:
                gc.enable()
        asyncio.get_running_loop().call_soon(self.core.prepare_next_tip)

    def on_tip_correction(self, tip: TipInfo) -> None:
        if not self._stopping:
            self._dispatch(self.core.correct_tip(tip, time.monotonic()))

    def is_newer(self, prev_hash: bytes, height: int) -> bool:
        return self.core.is_newer(prev_hash, height)

    def tip_relation(self, prev_hash: bytes, height: int) -> str:
        return self.core.tip_relation(prev_hash, height)

    def on_template(self, tpl: BlockTemplate, *, reorg: bool = False) -> None:
        """A template on the tip the clients have is built and written at once.  One that
        brings a new tip sends the tip first (the empty template and SetNewPrevHash) and is
        built one loop iteration later, so the client writers send the tip before it;
        templates arriving meanwhile replace the pending one: only the newest is built.
        (Building at once saves the full template after a tip that loop iteration: 0.2-0.4
        ms with a 3,000-transaction reply just freed, issue 10.)"""
        if self._stopping:
            return
        if reorg or self.core.is_new_tip(tpl):
            self._new_tip(TipInfo(tpl.prev_hash, tpl.height, tpl.bits, tpl.time, tpl.min_time),
                          reorg)
        elif not self._template_scheduled:
            self._dispatch(self.core.new_template(tpl, time.monotonic(), reorg=reorg))
            return
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

    # ---- clients (listener callbacks) ----------------------------------------------------------

    def on_established(self, client: ClientProtocol) -> None:
        """Noise done: a session in the core (SetupConnection must follow)."""
        try:
            client.sid = self.core.open_session(time.monotonic(), peer=str(client.peername))
        except ProtocolViolationError as e:
            client.abort(str(e))
            return
        self.clients[client.sid] = client

    def on_frames(self, client: ClientProtocol, msgs: list, skipped: int) -> None:
        """What one read brought: the messages, and how many frames carried none (unknown
        types or extensions); every frame costs a token of the message rate limit."""
        sid, core = client.sid, self.core
        if sid is None:
            return
        now = time.monotonic()
        if skipped:
            self._dispatch(core.count_frames(sid, skipped, now))
        for msg in msgs:
            if client.closing or sid not in core.sessions:
                break
            eff = core.receive(sid, msg, now)
            self.metrics.on_client_message(sid, client.peername, msg, eff)
            self._dispatch(eff)
            if client.pending:
                s = core.sessions.get(sid)
                if s is not None and s.state is SessionState.ACTIVE:
                    client.set_up()
        self._tell_constraints()

    def on_error(self, client: ClientProtocol, e: Sv2Error) -> None:
        """The client sent something that is not SV2 (or not over its Noise session)."""
        session = self.core.sessions.get(client.sid) if client.sid is not None else None
        if isinstance(e, InvalidValueError) and (e.message, e.field) == (
                "SetupConnection", "protocol") and session is not None \
                and session.state is SessionState.AWAIT_SETUP:
            # a protocol number this codec does not know: tell the client, as sv2-tp does
            # for any protocol but Template Distribution, before closing
            log.warning("client %d (%s): SetupConnection for an unknown protocol; "
                        "disconnecting", client.sid, client.peername)
            try:
                client.write(client.conn.farewell(SetupConnectionError(
                    flags=0, error_code=ERROR_CODES["UNSUPPORTED_PROTOCOL"])))
            except Sv2Error:
                pass
            client.close("unsupported protocol")
            return
        if client.sid is None:  # the handshake failed: counted in the refusal summary
            self.server.refusals.refuse(f"failed handshake ({type(e).__name__})")
            client.closing = True
            client.transport.abort()
            return
        log.warning("client %s (%s): %s: %s; disconnecting", client.sid, client.peername,
                    type(e).__name__, e)
        client.abort(str(e))

    def on_closed(self, client: ClientProtocol) -> None:
        sid = client.sid
        if sid is None:
            return
        self.core.close_session(sid)
        self.metrics.on_client_closed(sid)
        self.clients.pop(sid, None)
        self._tell_constraints()

    def _dispatch(self, eff: Effects, then: Optional[Callable[[], None]] = None,
                  tip: Optional[tuple] = None) -> None:
        """The effects carried out; ``then`` (a source's request that must not delay the
        tip, e.g. its full template) runs as soon as the clients are written to, before
        any bookkeeping.  ``tip``: (TipInfo, when it reached the service) for a new tip's
        effects, whose metrics start after the writes."""
        if eff.fan is not None or eff.unicasts:
            self._write(eff, then, tip)
        else:
            if then is not None:
                then()
            if tip is not None:
                self.metrics.on_new_tip(tip[0], eff, tip[1])
        if eff.notes:
            eff.write_notes()
        if not eff:
            return
        for sid, reason in eff.closes:
            c = self.clients.get(sid)
            if c is not None:
                c.close(reason)
        for sol in eff.solutions:
            task = asyncio.get_running_loop().create_task(self._on_solution(sol))
            self._solution_tasks.add(task)
            task.add_done_callback(self._solution_tasks.discard)

    def _write(self, eff: Effects, then: Optional[Callable[[], None]] = None,
               tip: Optional[tuple] = None) -> None:
        """Every client's messages in one write each: a message is encoded once, split
        into header and payload once, and sealed per client; the clients are written to
        first, the bookkeeping (metrics) comes after.  The fan (a tip: every client the
        same messages) goes first, in one C pass (``sv2ffi.fanout``) when it is built,
        without any per-client step before it but the client's own key and nonces;
        clients that get the same unicasts are grouped into passes the same way;
        otherwise clients are written one by one (``Connection.send_split``)."""
        frames = eff.frames
        split: dict = {}  # id(message) -> (header, payload)

        def parts(msg) -> tuple:
            mid = id(msg)
            sp = split.get(mid)
            if sp is None:
                encoded = frames.get(mid) if frames else None
                if encoded is None:
                    encoded = encode_message(msg)
                sp = split[mid] = (encoded[:FRAME_HEADER_SIZE], encoded[FRAME_HEADER_SIZE:])
            return sp

        unwritten: set = set()
        if eff.fan is not None:
            sids, msgs = eff.fan
            self._write_group(sids, [parts(m) for m in msgs], unwritten)
        keys: dict = {}  # sid -> its unicast messages, in the order sent
        for sid, msg in eff.unicasts:
            k = keys.get(sid)
            keys[sid] = (msg,) if k is None else k + (msg,)
        if keys:
            passes: dict = {}  # message ids -> (messages, the sids that get exactly those)
            for sid, k in keys.items():
                ids = tuple(map(id, k))
                group = passes.get(ids)
                if group is None:
                    passes[ids] = (k, [sid])
                else:
                    group[1].append(sid)
            for k, sids in passes.values():
                self._write_group(sids, [parts(m) for m in k], unwritten)
        if then is not None:
            then()
        if tip is not None:
            self.metrics.on_new_tip(tip[0], eff, tip[1])
        self.metrics.on_written(eff, unwritten)

    def _write_group(self, sids, frames: list, unwritten: set) -> None:
        """Clients that get the same frames: one C pass when it is built, else one by one."""
        if self._native_fanout:
            self._write_pass(sids, frames, unwritten)
            return
        clients = self.clients
        for sid in sids:
            c = clients.get(sid)
            if c is None or c.closing:
                unwritten.add(sid)
            else:
                self._write_one(c, frames, unwritten)

    def _write_one(self, c: ClientProtocol, frames: list, unwritten: set) -> None:
        try:
            data = c.conn.send_split(frames)
        except Sv2Error as e:  # e.g. nonces exhausted: that client only
            c.abort(str(e))
            unwritten.add(c.sid)
            return
        if not c.write(data):
            unwritten.add(c.sid)

    def _write_pass(self, sids, frames: list, unwritten: set) -> None:
        """Clients getting the same frames, sealed and sent in one C call.  A client whose
        transport still holds bytes (they must go first), an unencrypted one, or frames
        that need more than one Noise message each, take the one-by-one path."""
        clients = self.clients
        units = fanout.units(frames)
        count = len(units) if units is not None else 0
        targets, members = [], []
        for sid in sids:
            c = clients.get(sid)
            if c is None or c.closing:
                unwritten.add(sid)
                continue
            try:
                target = c.direct_target(count) if count else None
            except Sv2Error as e:  # nonces exhausted: that client only
                c.abort(str(e))
                unwritten.add(sid)
                continue
            if target is None:
                self._write_one(c, frames, unwritten)
            else:
                targets.append(target)
                members.append(c)
        if not targets:
            return
        sent = fanout.seal_send(units, targets, self._fanout_threads)
        for c, r in zip(members, sent):
            if r is None:
                continue
            if r.__class__ is bytes:  # its socket's buffer is full: the transport queues the rest
                if not c.write(r):
                    unwritten.add(c.sid)
            else:
                c.abort(f"send failed: {os.strerror(r)}")
                unwritten.add(c.sid)

    def _tell_constraints(self) -> None:
        """Source hook: the distinct client constraints, whenever that set changes."""
        seen = frozenset(c for c, g in self.core.groups.items() if g.members)
        if seen != self._constraints_seen:
            self._constraints_seen = seen
            self.source.on_constraints(seen)

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

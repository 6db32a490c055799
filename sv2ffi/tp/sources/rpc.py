"""Templates from a real bitcoind over JSON-RPC (python-bitcoinrpc), new blocks from ZMQ.

- Authentication: user/password, or bitcoind's cookie file, re-read on every call because
  bitcoind writes a new cookie each time it starts.
- New blocks: whichever signal comes first of a ``waitfornewblock`` long-poll (returns as
  the block connects), ZMQ ``hashblock`` (pyzmq, when configured; bitcoind publishes it only
  after its wallet has processed the block), and our own ``submitblock`` being accepted.
  The fast path asks only for the new block's header and computes the next nBits itself,
  so SetNewPrevHash goes out before the (slower) getblocktemplate; without ZMQ,
  long-polling getblocktemplate brings the templates.
- Mempool changes: getblocktemplate every ``poll_interval`` seconds in ZMQ mode (the TP
  core decides whether fees rose enough to send anything); long-poll returns them otherwise.
- A node that goes away (restart, crash) is waited for with backoff; a node in initial
  block download is waited for too; nothing is served from a node that is not ready.
- ``submitblock`` is retried while the node is unreachable; ``duplicate`` means accepted.

python-bitcoinrpc is blocking, so calls run on a small thread pool; ``stop()`` shuts the
sockets of calls in flight (a long-poll can otherwise sit for minutes) and joins the pool.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import decimal
import gc
import http.client
import json
import logging
import socket
import threading
import time
from pathlib import Path
from typing import Optional
from urllib.parse import urlparse

from bitcoinrpc.authproxy import AuthServiceProxy, JSONRPCException

from ... import bitcoin as btc
from ...errors import ChainMismatchError, InvalidTemplateError, RpcError
from ..core import TipInfo
from ..template import TxInterner
from . import Source
from . import gbt
from .gbt import ScannedGbt, items_read_ahead, parse_gbt, read_ahead, scan_reply
from .rpc_stream import RpcStream, RpcTimeout, read_reply, read_tip_reply

log = logging.getLogger("sv2ffi.tp.rpc")

#: the largest getblocktemplate reply read (a 4 MWU block's transactions in hex, with
#: their JSON, stay well below it)
MAX_GBT_REPLY = 64 << 20
#: every getblocktemplate request (long-polls add their longpollid)
GBT_REQUEST = {"rules": ["segwit"]}
RPC_IN_WARMUP = -28
RPC_CLIENT_IN_INITIAL_DOWNLOAD = -10
#: bitcoind's names for --chain values in getblockchaininfo
CHAIN_NAMES = {"main": "main", "test": "test", "testnet4": "testnet4", "signet": "signet",
               "regtest": "regtest"}


class _Proxy(AuthServiceProxy):
    """python-bitcoinrpc's proxy with a cheaper debug line for each reply: the library
    formats its line, the whole result run through ``json.dumps``, before the logger
    decides whether to keep it (``authproxy._get_response``); for a 3,000-transaction
    getblocktemplate that was 10-19 ms of every template's path (issue 10).  Here the
    line is made only when DEBUG is on, from the reply's own bytes (``logs.py`` cuts it
    short); the reply is read and checked as the library does, same errors, same codes."""

    #: set on a getblocktemplate call: reads the reply's bytes in C (``gbt.scan_reply``)
    #: instead of the json module when it can (None: it declined; json decodes it)
    scan = None
    #: time.monotonic() when the reply's last byte was read (the node's share ends there)
    last_byte_at = 0.0

    def _get_response(self):
        resp = self._AuthServiceProxy__conn.getresponse()
        if resp is None:
            raise JSONRPCException({"code": -342, "message": "missing HTTP response from server"})
        if resp.getheader("Content-Type") != "application/json":
            raise JSONRPCException({"code": -342, "message": "non-JSON HTTP response with "
                                    f"'{resp.status} {resp.reason}' from server"})
        raw = resp.read()
        self.last_byte_at = time.monotonic()
        if self.scan is not None:
            scanned = self.scan(raw)
            if scanned is not None:
                if _rpc_log.isEnabledFor(logging.DEBUG):
                    _rpc_log.debug("<-- %s", raw.decode("utf-8", "replace"))
                return {"result": scanned, "error": None}
        reply = json.loads(raw, parse_float=decimal.Decimal)
        if _rpc_log.isEnabledFor(logging.DEBUG):
            _rpc_log.debug("<-%s- %s", reply.get("id") if isinstance(reply, dict) else "?",
                           raw.decode("utf-8", "replace"))
        return reply


#: python-bitcoinrpc's logger, which ``_Proxy`` writes its reply lines to
_rpc_log = logging.getLogger("BitcoinRPC")


class RpcSource(Source):
    name = "rpc"

    def __init__(self, url: str, *, network: Optional[btc.Network] = None, user: Optional[str] = None,
                 password: Optional[str] = None, cookie_file=None,
                 zmq_hashblock: Optional[str] = None, poll_interval: float = 2.0,
                 timeout: float = 30.0, longpoll_timeout: float = 120.0,
                 retry_delay: float = 0.5, max_retry_delay: float = 10.0,
                 submit_attempts: int = 10, tip_wait: float = 30.0):
        u = urlparse(url)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise ValueError(f"--rpc-url must be http://host:port/, got {url!r}")
        if cookie_file is None and (user is None or password is None):
            raise ValueError("give --rpc-user and --rpc-password, or --rpc-cookie-file")
        # credentials travel in our own Authorization header (any characters allowed),
        # never in the URL
        self._url = f"{u.scheme}://x:x@{u.hostname}:{u.port or 8332}{u.path or '/'}"
        self.url = url
        self.network = network
        self.user, self.password = user, password
        self.cookie_file = Path(cookie_file) if cookie_file else None
        self.zmq_hashblock = zmq_hashblock
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.longpoll_timeout = longpoll_timeout
        self.retry_delay, self.max_retry_delay = retry_delay, max_retry_delay
        self.submit_attempts = submit_attempts
        #: seconds each waitfornewblock long-poll waits (0: no such watch)
        self.tip_wait = tip_wait
        #: with ZMQ, a getblocktemplate at least this often even if the mempool looks quiet
        self.full_refresh = 30.0
        self._mempool_mark = None
        self._refreshed_at = float("-inf")
        self.skipped_polls = 0
        #: getblocktemplate replies read by the C scanner, and by the json module (the
        #: scanner not built, or a reply of a shape it leaves to json); "read ahead": of
        #: those, new tips' replies whose transactions were read as they arrived
        self.gbt_reads = {"scanned": 0, "decoded": 0, "read ahead": 0}
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=6,
                                                           thread_name_prefix="sv2ffi-rpc")
        self._inflight: set = set()
        self._inflight_lock = threading.Lock()
        self._local = threading.local()  # per pool thread: a keep-alive connection
        self._kept: set = set()
        self._task: Optional[asyncio.Task] = None
        self._running = False
        self._lpid: Optional[str] = None
        self._tip: Optional[bytes] = None
        self._tip_height = -1
        #: the block the last template was built on (its first full template is logged)
        self._templated_tip: Optional[bytes] = None
        self._tip_at = 0.0  # time.monotonic() when the last fast tip went to the service
        #: headers of the chain we follow, by height: (hash, HeaderInfo); enough to
        #: compute a tip without asking the node (median time past, retargets)
        self._chain: dict = {}
        self._chain_lock = threading.RLock()
        #: the next block's tip worked out ahead (``_prepare_prediction``): (our tip's
        #: hash, the next block's height, its child's nBits, the bound its median time
        #: past cannot exceed), or None; a pure function of our tip's hash
        self._prediction: Optional[tuple] = None
        self.ready: Optional[asyncio.Event] = None  # set while the node serves templates
        self._interner = TxInterner()
        self.reorgs = 0
        self.reconnects = 0
        #: failed calls, read by the metrics: the node answered with an error, or did not
        self.rpc_errors = {"reply": 0, "unreachable": 0}
        self.ibd_waits = 0
        self.fast_tips = 0
        #: the block ``_tip_reply_now`` switched the clients to, for the watch's task
        self._announced_now: Optional[bytes] = None
        #: how each new tip was learned ("predicted": waitfornewblock without a header
        #: lookup; "corrected": a prediction the header then overruled)
        self.tip_signals = {"zmq": 0, "waitfornewblock": 0, "submitblock": 0, "predicted": 0,
                            "corrected": 0}
        self._fast_pending: set = set()
        #: one poll's getblocktemplate (and its mempool mark) at a time (a tip's goes at once)
        self._refresh_lock: Optional[asyncio.Lock] = None
        self._kick: Optional[asyncio.Task] = None
        self._kick_again = False
        #: the event loop's connection for a new tip's getblocktemplate (``_kick_refresh``)
        self._gbt_stream: Optional[RpcStream] = None
        self._gbt_read_at = 0.0

    def describe(self) -> str:
        how = f"ZMQ hashblock {self.zmq_hashblock}" if self.zmq_hashblock else "long-poll"
        return f"bitcoind JSON-RPC {self.url} ({how})"

    # ---- calls ---------------------------------------------------------------------------

    def _auth_header(self) -> bytes:
        if self.cookie_file is not None:
            try:
                pair = self.cookie_file.read_text().strip()
            except OSError as e:
                raise RpcError(f"cannot read cookie file {self.cookie_file}: {e}") from None
        else:
            pair = f"{self.user}:{self.password}"
        return b"Basic " + base64.b64encode(pair.encode())

    def _kept_connection(self) -> http.client.HTTPConnection:
        """This thread's keep-alive connection to the node: a short call (a block header
        on the tip path) costs no TCP connect."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            u = urlparse(self._url)
            conn = self._local.conn = http.client.HTTPConnection(u.hostname, u.port,
                                                                 timeout=self.timeout)
            with self._inflight_lock:
                self._kept.add(conn)
        return conn

    def call_sync(self, method: str, *params, timeout: Optional[float] = None,
                  timing: Optional[list] = None):
        """One JSON-RPC call.  Calls with the default timeout reuse this thread's
        keep-alive connection (reopened once if the node closed it, e.g. on a restart);
        long ones (long-polls) get their own connection.  getblocktemplate's reply is read
        by ``gbt.scan_reply`` when it can (a ``ScannedGbt`` then, else the decoded dict).
        ``timing``: gets (request sent, reply's last byte read, reply read), monotonic
        seconds."""
        keep = timeout is None
        for attempt in (1, 2):
            conn = self._kept_connection() if keep else None
            proxy = _Proxy(self._url, method, timeout=timeout or self.timeout,
                           connection=conn)
            proxy._AuthServiceProxy__auth_header = self._auth_header()
            if method == "getblocktemplate":
                proxy.scan = lambda raw: scan_reply(raw, self._interner)
            conn = proxy._AuthServiceProxy__conn
            reused = keep and conn.sock is not None
            with self._inflight_lock:
                if not self._running:
                    raise RpcError("source stopped")
                self._inflight.add(conn)
            try:
                if conn.sock is None:
                    conn.connect()
                with self._inflight_lock:  # stop() may have run before the socket existed
                    if not self._running:
                        raise RpcError("source stopped")
                sent_at = time.monotonic()
                result = proxy(*params)
                if timing is not None:
                    timing[:] = (sent_at, proxy.last_byte_at, time.monotonic())
                if not keep:
                    conn.close()
                return result
            except JSONRPCException as e:
                if not keep:
                    conn.close()
                self.rpc_errors["reply"] += 1
                raise RpcError(str(e.message), e.code) from None
            except (socket.timeout, TimeoutError) as e:
                conn.close()
                raise RpcTimeout(f"{method} timed out") from e
            except (OSError, http.client.HTTPException, ValueError) as e:
                conn.close()
                if reused and attempt == 1 and self._running:
                    continue  # the node closed our idle connection (restart, timeout)
                self.rpc_errors["unreachable"] += 1
                raise RpcError(f"{method}: node unreachable ({type(e).__name__}: {e})") from None
            finally:
                with self._inflight_lock:
                    self._inflight.discard(conn)
        raise AssertionError("unreachable")  # pragma: no cover

    async def call(self, method: str, *params, timeout: Optional[float] = None,
                   timing: Optional[list] = None):
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: self.call_sync(
            method, *params, timeout=timeout, timing=timing))

    # ---- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        self._running = True
        self.ready = asyncio.Event()
        self._refresh_lock = asyncio.Lock()
        u = urlparse(self._url)
        self._gbt_stream = RpcStream(u.hostname, u.port, u.path, self._auth_header,
                                     tls=u.scheme == "https", max_reply=MAX_GBT_REPLY,
                                     keep_warm=True)
        self._gbt_stream.read_ahead = read_ahead if gbt.scanner_built() else None
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        with self._inflight_lock:
            self._running = False
            for conn in list(self._inflight | self._kept):  # unblock long-polls and slow calls
                sock = getattr(conn, "sock", None)
                if sock is not None:
                    try:
                        sock.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
        for task in (self._task, self._kick):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        if self._gbt_stream is not None:
            self._gbt_stream.close()
        await asyncio.get_running_loop().run_in_executor(
            None, lambda: self._pool.shutdown(wait=True, cancel_futures=True))
        for conn in list(self._kept):
            conn.close()
        self._kept.clear()

    async def _run(self) -> None:
        delay = self.retry_delay
        while self._running:
            try:
                await self._wait_ready()
                # with ZMQ, through the tips' connection: it is then open for the first tip
                await self._refresh(stream=self._gbt_stream if self.zmq_hashblock else None)
                await asyncio.get_running_loop().run_in_executor(self._pool,
                                                                 self._prime_chain_sync)
                self._prepare_prediction()
                self._mempool_mark = None  # (re)connected: the next poll fetches a template
                self.ready.set()
                delay = self.retry_delay
                watch = asyncio.get_running_loop().create_task(self._watch_tips()) \
                    if self.tip_wait else None
                try:
                    if self.zmq_hashblock:
                        await self._zmq_loop()
                    else:
                        await self._longpoll_loop()
                finally:
                    if watch is not None:
                        watch.cancel()
                        await asyncio.gather(watch, return_exceptions=True)
            except asyncio.CancelledError:
                raise
            except ChainMismatchError as e:
                self.ready.clear()
                self.sink.on_fatal(e)
                return
            except (RpcError, InvalidTemplateError) as e:
                if not self._running:
                    return
                self.ready.clear()
                self.reconnects += 1
                log.warning("bitcoind: %s; retrying in %.1f s", e, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.max_retry_delay)

    async def _chain_info(self) -> dict:
        """getblockchaininfo, waiting (with backoff) while the node warms up."""
        delay = self.retry_delay
        while True:
            try:
                return await self.call("getblockchaininfo")
            except RpcError as e:
                if e.code != RPC_IN_WARMUP:
                    raise
                log.info("bitcoind is starting: %s", e)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.max_retry_delay)

    async def learn_network(self) -> btc.Network:
        """The chain the node runs (``getblockchaininfo``), for a TP started without
        ``--chain``; waits for the node to answer.  Usable before ``start()``."""
        self._running = True
        delay = self.retry_delay
        while True:
            try:
                info = await self._chain_info()
                break
            except RpcError as e:
                log.warning("bitcoind: %s; retrying in %.1f s", e, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.max_retry_delay)
        try:
            self.network = btc.network(str(info.get("chain")))
        except ValueError:
            raise ChainMismatchError(f"bitcoind runs chain {info.get('chain')!r}, which this "
                                     "template provider does not know") from None
        log.info("bitcoind runs %s", self.network.name)
        return self.network

    async def _wait_ready(self) -> None:
        """Until the node answers, runs our chain, and has left initial block download."""
        delay = self.retry_delay
        while True:
            info = await self._chain_info()
            chain = info.get("chain")
            if chain != CHAIN_NAMES[self.network.name]:
                raise ChainMismatchError(
                    f"bitcoind at {self.url} runs chain {chain!r} but this template provider "
                    f"serves {self.network.name!r}; refusing to serve templates (start it with "
                    f"the node's chain, or without --chain to follow the node)")
            if not info.get("initialblockdownload"):
                return
            self.ibd_waits += 1
            log.info("bitcoind is in initial block download (%s blocks); waiting",
                     info.get("blocks"))
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.max_retry_delay)

    async def _refresh(self, longpoll: bool = False, stream: Optional[RpcStream] = None,
                       sent: bool = False) -> None:
        """One getblocktemplate, applied.  ``stream``: through that event-loop connection
        (a new tip's template; ``sent``: its request already written) instead of the pool."""
        req = dict(GBT_REQUEST, longpollid=self._lpid) if longpoll and self._lpid \
            else GBT_REQUEST
        timing: list = []
        try:
            if stream is not None:
                j = await stream.call("getblocktemplate", req, timeout=self.timeout, sent=sent,
                                      read=self._read_gbt)
                timing[:] = (stream.sent_at, stream.last_byte_at, self._gbt_read_at)
            else:
                j = await self.call("getblocktemplate", req,
                                    timeout=self.longpoll_timeout if longpoll else None,
                                    timing=timing)
        except RpcError as e:
            if e.code == RPC_CLIENT_IN_INITIAL_DOWNLOAD:
                await self._wait_ready()
                return
            raise
        if isinstance(j, ScannedGbt):
            self.gbt_reads["scanned"] += 1
        else:
            self.gbt_reads["decoded"] += 1
            if gbt.scanner_built() and self.gbt_reads["decoded"] == 1:
                log.info("a getblocktemplate reply was read by the json module, not the C "
                         "scanner (sv2ffi/native/gbtscan.c declines shapes it does not "
                         "expect): slower, same template")
        tpl = parse_gbt(j, self.network, self._interner)
        self._lpid = j.get("longpollid")
        reorg = False
        if self.sink.tip_relation(tpl.prev_hash, tpl.height) == "older":
            # a template built on a block at or below the tip we serve: a slow answer that
            # the chain has since overtaken, unless the node really reorganised to it
            best = btc.hash_from_hex(await self.call("getbestblockhash"))
            if best != tpl.prev_hash:
                log.debug("getblocktemplate answered for block %s, no longer the node's tip",
                          btc.hash_hex(tpl.prev_hash))
                return
            reorg = True
            self.reorgs += 1
        self._tip, self._tip_height = tpl.prev_hash, tpl.height - 1
        if self._running:
            self.sink.on_template(tpl, reorg=reorg)
            if self._prediction is None or self._prediction[0] != self._tip:
                self._prepare_prediction()
            # after the service's build-and-write, which on_template scheduled first
            asyncio.get_running_loop().call_soon(self._log_full_template, tpl, timing,
                                                 isinstance(j, ScannedGbt))

    def _log_full_template(self, tpl, timing: list, scanned: bool) -> None:
        """Each block's first full template, at INFO: the node's getblocktemplate time
        (request sent to the reply's last byte) beside what the TP added after it (reading
        the reply, building the work, writing it to the clients); issue 10's budget is the
        node's time plus 5 ms.  Later templates on the same block (fee updates): DEBUG."""
        first = tpl.prev_hash != self._templated_tip
        self._templated_tip = tpl.prev_hash
        level = logging.INFO if first else logging.DEBUG
        if len(timing) == 3 and log.isEnabledFor(level):
            sent, last, read = timing
            asked = f", asked {(sent - self._tip_at) * 1000:.1f} ms after the tip went out" \
                if first and self._tip_at and tpl.prev_hash == self._tip else ""
            log.log(level, "%s template on block %s (height %d, %d transactions): the node's "
                    "getblocktemplate %.1f ms%s; then %.1f ms to the clients (%.1f ms of it %s)",
                    "full" if first else "updated", btc.hash_hex(tpl.prev_hash), tpl.height,
                    len(tpl.txs), (last - sent) * 1000, asked, (time.monotonic() - last) * 1000,
                    (read - last) * 1000,
                    "reading it in C" if scanned else "decoding it with json")

    async def _longpoll_loop(self) -> None:
        while self._running:
            try:
                await self._refresh(longpoll=True)
            except RpcTimeout:
                continue

    async def _zmq_loop(self) -> None:
        import zmq
        import zmq.asyncio
        ctx = zmq.asyncio.Context()
        sub = ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        sub.setsockopt(zmq.SUBSCRIBE, b"hashblock")
        sub.connect(self.zmq_hashblock)
        try:
            while self._running:
                if await sub.poll(timeout=int(self.poll_interval * 1000)):
                    parts = await sub.recv_multipart()
                    if len(parts) >= 2 and parts[0] == b"hashblock" and len(parts[1]) == 32:
                        block_hash = parts[1][::-1]
                        if block_hash != self._tip:
                            await self._fast_tip(block_hash)
                await self._refresh_if_changed()
        finally:
            sub.close()
            ctx.term()

    async def _refresh_if_changed(self) -> None:
        """A poll: a new getblocktemplate only when the mempool (size, bytes, fees) or the
        tip moved since the last one, or ``full_refresh`` seconds passed.  A quiet node then
        costs one small call per poll, not a multi-megabyte template to decode."""
        await self._refresh_marked(only_if_changed=True)

    async def _refresh_marked(self, only_if_changed: bool = False) -> None:
        """getblocktemplate with the mempool's mark taken just before it (so a change
        racing the call is seen by the next poll), one poll at a time; none while a new
        tip's getblocktemplate is in flight (``_kicked_refresh``: it brings the newest
        template, and a second 3,000-transaction reply read beside it slowed it 2-3x)."""
        if self._kick is not None and not self._kick.done():
            return
        async with self._refresh_lock:
            try:
                info = await self.call("getmempoolinfo")
                mark = (info.get("size"), info.get("bytes"), str(info.get("total_fee")),
                        self._tip)
            except RpcError as e:
                if e.code is None:
                    raise
                mark = None  # a node without it: always refresh
            now = time.monotonic()
            if only_if_changed and mark is not None and mark == self._mempool_mark and \
                    now - self._refreshed_at < self.full_refresh:
                self.skipped_polls += 1
                return
            await self._refresh()
            self._mempool_mark, self._refreshed_at = mark, now

    def _kick_refresh(self) -> None:
        """A new tip went out: fetch its full template now.  With ZMQ the poll loop would
        fetch it at the next hashblock message, which bitcoind publishes only after its
        wallet has processed the block (up to a second later with a busy wallet), or at
        the next poll.  (Long-poll mode needs no kick: the long-poll returns at the tip.)

        The request is written in the callback that sends the tip, on a connection of
        the event loop's own (``RpcStream.send_now``): through the pool it left 1-3 ms
        after the tip (a task, a thread hop, python-bitcoinrpc's request), all of it on
        the way to the clients' full template.  It is the tip's ``then``: written right
        after the clients' SetNewPrevHash, before the pass's bookkeeping.  Written just
        before the tip instead (until issue 10's stop 24), it cost the tip its write and
        the node's wake-up beside the pass: 0.15-0.2 ms at one client, and the tip's
        bookkeeping (0.3-0.6 ms) used to come before it.  Measured in the same runs, 1
        client, 3,000 transactions: the tip 0.6 ms sooner from the node's notice, the full
        template 0.3 ms later (4 ms later at 100 clients, whose pass comes first).  It
        does not wait for a poll's getblocktemplate in flight either (a poll's answer for
        the old block is then dropped as older; one for the new block is as good as this
        one)."""
        if not self.zmq_hashblock or not self._running or self._refresh_lock is None:
            return
        if self._kick is not None and not self._kick.done():
            self._kick_again = True  # fetched again once the one in flight is in
            return
        sent = self._gbt_stream.send_now("getblocktemplate", GBT_REQUEST)
        self._kick = asyncio.get_running_loop().create_task(self._kicked_refresh(sent))

    async def _kicked_refresh(self, sent: bool) -> None:
        # a tip arriving while this one's getblocktemplate is in flight gets another
        again = True
        while again and self._running:
            try:
                await self._refresh(stream=self._gbt_stream, sent=sent)
            except (RpcError, InvalidTemplateError) as e:  # the poll loop retries, reports
                if isinstance(e, RpcError) and not isinstance(e, RpcTimeout):
                    self.rpc_errors["reply" if e.code is not None else "unreachable"] += 1
                log.debug("template after a new tip: %s", e)
                return
            # the next poll refreshes unconditionally, and takes the mempool's mark then
            self._mempool_mark, self._refreshed_at = None, time.monotonic()
            again, self._kick_again, sent = self._kick_again, False, False

    async def _read_gbt(self, code: int, raw: bytearray, ahead=None):
        """A getblocktemplate reply from the tip's connection.  The C scanner reads it
        here, on the event loop: about 1 ms per 1,000 transactions, once per block, during
        which the loop waits (the scanner releases the interpreter for other threads).
        On a pool thread the two thread hops cost about 0.6 ms more on the way to the
        clients' full template (30 tips, 3,000 transactions: its reading 4.15 -> 3.5 ms
        median), and the scan's matching held the interpreter, hence the loop, anyway.
        The json module, the fallback for replies the scanner declines, runs on a pool
        thread: it would hold the loop for tens of milliseconds.  ``ahead``: the
        transactions the scanner read while the reply arrived (``gbt.read_ahead``)."""
        if code == 200 and items_read_ahead(ahead):
            self.gbt_reads["read ahead"] += 1
        scanned = scan_reply(raw, self._interner, ahead) if code == 200 else None
        if scanned is None:
            scanned = await asyncio.get_running_loop().run_in_executor(
                self._pool, read_reply, "getblocktemplate", code, raw)
        self._gbt_read_at = time.monotonic()
        return scanned

    # ---- fast tip switch ----------------------------------------------------------------

    async def _fast_tip(self, block_hash: bytes, via: str = "zmq",
                        compute=None) -> None:
        """A new block announced (ZMQ, waitfornewblock, or our own accepted block): the
        tip to the service, from the block's header (``compute`` may say how, e.g. from
        our own block's header).  Several signals for one block cost one lookup; the core
        ignores a tip it already has or one that is older."""
        if block_hash == self._tip or block_hash in self._fast_pending:
            return
        self._fast_pending.add(block_hash)
        try:
            loop = asyncio.get_running_loop()
            tip = await loop.run_in_executor(self._pool, compute or (
                lambda: self._tip_info_sync(block_hash)))
            if tip is None and compute is not None:  # not computable locally after all
                tip = await loop.run_in_executor(self._pool, self._tip_info_sync, block_hash)
            if tip is not None and self._running and block_hash != self._tip:
                self._set_tip(tip)
                self.tip_signals[via] += 1
                self.sink.on_tip(tip, then=self._kick_refresh)
                self._prepare_prediction()  # its header is in the chain now
        finally:
            self._fast_pending.discard(block_hash)

    def _set_tip(self, tip: TipInfo) -> None:
        self._tip, self._tip_height = tip.prev_hash, tip.height - 1
        self._tip_at = time.monotonic()
        self.fast_tips += 1

    def _announce_predicted(self, block_hash: bytes, height: int) -> bool:
        """The header-free tip (``_predicted_tip``) straight to the service, then the
        header checked in the background; False when it is not certain enough.  The
        prediction worked out ahead for our tip is used when it is for this height."""
        p = self._prediction
        if p is not None and p[0] == self._tip and p[1] == height:
            tip = self._tip_from(block_hash, height, p[2], p[3])
        else:
            tip = self._predicted_tip(block_hash, height)
        if tip is None or not self._running:
            return False
        self._set_tip(tip)  # its header joins self._chain once _verify_tip has read it
        self.tip_signals["predicted"] += 1
        self.sink.on_tip(tip, then=self._kick_refresh)
        asyncio.get_running_loop().create_task(self._verify_tip(block_hash, tip))
        return True

    async def _verify_tip(self, block_hash: bytes, sent: TipInfo) -> None:
        """The header of a block announced without it: if the tip computed from it has
        another nBits, or a minimum time above the one sent (the block was not on our
        chain after all), the clients are switched again with the header's values."""
        try:
            real = await asyncio.get_running_loop().run_in_executor(
                self._pool, self._tip_info_sync, block_hash)
        except RpcError as e:
            log.warning("could not check block %s against its header: %s",
                        btc.hash_hex(block_hash), e)
            return
        if real is None or not self._running:
            return
        self._prepare_prediction()  # the header read is in the chain now
        if real.bits != sent.bits or sent.time < real.min_time:
            self.tip_signals["corrected"] += 1
            log.warning("block %s: the header says nBits %08x and minimum time %d, the tip "
                        "went out with %08x and %d; correcting", btc.hash_hex(block_hash),
                        real.bits, real.min_time, sent.bits, sent.time)
            self.sink.on_tip_correction(real)

    async def _watch_tips(self) -> None:
        """bitcoind's fastest tip signal, beside ZMQ: a ``waitfornewblock`` long-poll
        (Core's ``Mining::waitTipChanged``) returns as soon as a block connects, while ZMQ
        is published only after the node's wallet has processed the block (hundreds of
        milliseconds late with a busy wallet).  Whichever signal comes first wins."""
        u = urlparse(self._url)
        stream = RpcStream(u.hostname, u.port, u.path, self._auth_header,
                           tls=u.scheme == "https")
        stream.on_reply = self._tip_reply_now
        try:
            await self._watch_loop(stream)
        finally:
            stream.close()

    def _tip_reply_now(self, code: int, raw: bytearray) -> None:
        """A waitfornewblock reply, in the callback that read its last byte: a new block
        that the rules make certain goes to the clients from here, one loop iteration
        before the watch's task resumes with the same reply (which then finds the tip
        already switched).  Anything else is left to the task."""
        if code != 200 or not self._running:
            return
        collecting = gc.isenabled()  # a full collection here would land on every client
        gc.disable()
        try:
            got = read_tip_reply(raw)
            if got is not None:
                h, height = got
            else:  # not in bitcoind's usual form: the json module reads it
                try:
                    r = read_reply("waitfornewblock", code, raw)
                    h = btc.hash_from_hex(r["hash"])
                    height = r["height"]
                except (RpcError, KeyError, TypeError, ValueError):
                    return
            if (h != self._tip and isinstance(height, int)
                    and self._announce_predicted(h, height)):
                self._announced_now = h
        finally:
            if collecting:
                gc.enable()

    async def _watch_loop(self, stream: RpcStream) -> None:
        takes_tip = True  # Core >= 29 accepts current_tip; older nodes get none
        delay = self.retry_delay
        while self._running:
            known = btc.hash_hex(self._tip) if self._tip else None
            params = [int(self.tip_wait * 1000)] + ([known] if known and takes_tip else [])
            try:
                r = await stream.call("waitfornewblock", *params, timeout=self.tip_wait + 15)
            except RpcTimeout:
                continue
            except RpcError as e:
                if not self._running:
                    return
                self.rpc_errors["reply" if e.code is not None else "unreachable"] += 1
                if e.code in (-1, -8) and takes_tip and known:  # no current_tip parameter
                    takes_tip = False
                    continue
                if e.code == -32601:  # the node has no waitfornewblock: ZMQ/polls only
                    log.info("bitcoind has no waitfornewblock; new blocks come from %s",
                             "ZMQ" if self.zmq_hashblock else "long-polls")
                    return
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.max_retry_delay)
                continue
            delay = self.retry_delay
            try:
                h = btc.hash_from_hex(r["hash"])
            except (KeyError, TypeError, ValueError):
                continue
            noticed, self._announced_now = self._announced_now == h, None
            if h != self._tip:  # _tip_reply_now saw this reply and could not predict it
                noticed = True
                await self._fast_tip(h, "waitfornewblock")
            if noticed and log.isEnabledFor(logging.DEBUG):  # the TP's share, for tracing
                log.debug("tip %s noticed: waitfornewblock's last byte read at %.6f "
                          "(CLOCK_MONOTONIC); the watch's task resumed %.3f ms later",
                          r["hash"], stream.last_byte_at,
                          (time.monotonic() - stream.last_byte_at) * 1000)

    def _header(self, block_hash_hex: str) -> dict:
        return self.call_sync("getblockheader", block_hash_hex, True)

    def _remember(self, height: int, block_hash: bytes, t: int, bits: int,
                  prev_hash: Optional[bytes]) -> btc.HeaderInfo:
        """Keep a header of the chain we follow; one whose parent is not the block we
        have below it means a reorganisation: everything we had from there up is dropped.
        (Pool threads and the event loop both use the chain: under ``_chain_lock``.)"""
        with self._chain_lock:
            return self._remember_locked(height, block_hash, t, bits, prev_hash)

    def _remember_locked(self, height: int, block_hash: bytes, t: int, bits: int,
                         prev_hash: Optional[bytes]) -> btc.HeaderInfo:
        below = self._chain.get(height - 1)
        if prev_hash is not None and below is not None and below[0] != prev_hash:
            self._prediction = None  # it stays right for its tip; dropped all the same
            for h in [h for h in self._chain if h >= height - 1]:
                del self._chain[h]
        for h in [h for h in self._chain if h > height]:
            del self._chain[h]
        info = btc.HeaderInfo(height, t, bits)
        self._chain[height] = (block_hash, info)
        for h in [h for h in self._chain if h < height - 2100]:  # a retarget period back
            del self._chain[h]
        return info

    def _ancestor(self, height: int) -> btc.HeaderInfo:
        with self._chain_lock:
            got = self._chain.get(height)
        if got is None:
            hh = self.call_sync("getblockhash", height)
            h = self._header(hh)
            return self._remember(height, btc.hash_from_hex(hh), int(h["time"]),
                                  int(h["bits"], 16), None)
        return got[1]

    def _tip_info_sync(self, block_hash: bytes) -> Optional[TipInfo]:
        """TipInfo for an announced block, from its header: the next nBits by the
        network's rules (retarget boundaries, testnet's minimum-difficulty blocks) and a
        start time above its median time past."""
        h = self._header(btc.hash_hex(block_hash))
        if h.get("confirmations", 1) < 0:  # already reorganised away
            return None
        height, bits = int(h["height"]), int(h["bits"], 16)
        prev = btc.hash_from_hex(h["previousblockhash"]) if h.get("previousblockhash") else None
        info = self._remember(height, block_hash, int(h["time"]), bits, prev)
        return self._tip_above(block_hash, info, int(h["mediantime"]))

    def _tip_above(self, block_hash: bytes, info: btc.HeaderInfo, mtp: int) -> TipInfo:
        """The tip after a block whose header (``info``) and median time past we know:
        the next nBits by the network's rules, a start time above the median time past."""
        new_time = max(mtp + 1, int(time.time()))
        net = self.network
        if net.no_retargeting and info.bits == net.pow_limit_bits:
            next_bits = info.bits  # regtest: every block is at the limit
        else:
            next_bits = btc.next_work_required(net, info, new_time, self._ancestor)
        return TipInfo(block_hash, info.height + 1, next_bits, new_time, mtp + 1)

    def _predicted_tip(self, block_hash: bytes, height: int) -> Optional[TipInfo]:
        """The tip after a block the node announced as ``(hash, height)``, without its
        header, when the rules make it certain from what we know: the block is the one
        right above our tip, its child's nBits cannot differ from our tip's (no retarget
        boundary at either height, and no testnet minimum-difficulty rule), and we hold
        the ten blocks below it, so its median time past is at most the sixth smallest of
        their times whatever its own time.  None otherwise (the header path decides).
        The header is still fetched and checked right after (``_verify_tip``)."""
        with self._chain_lock:
            return self._predicted_tip_locked(block_hash, height)

    def _predicted_tip_locked(self, block_hash: bytes, height: int) -> Optional[TipInfo]:
        p = self._prediction_locked(self._tip, height)
        return None if p is None else self._tip_from(block_hash, height, *p)

    @staticmethod
    def _tip_from(block_hash: bytes, height: int, bits: int, bound: int) -> TipInfo:
        """The tip after block ``block_hash`` at ``height``, from its prediction."""
        return TipInfo(block_hash, height + 1, bits, max(bound + 1, int(time.time())), 0)

    def _prepare_prediction(self) -> None:
        """Our tip's prediction, ahead of the next block (after a tip went out, and once
        its header is read): a waitfornewblock reply then costs a tuple compare on its way
        to the clients instead of a walk of the chain under its lock (0.06-0.09 ms after a
        block, with nothing warm in the caches, issue 10).  Event loop only."""
        tip, height = self._tip, self._tip_height + 1
        with self._chain_lock:
            p = self._prediction_locked(tip, height) if tip is not None else None
            self._prediction = None if p is None else (tip, height) + p

    def _prediction_locked(self, tip: Optional[bytes], height: int) -> Optional[tuple]:
        """(nBits, bound) for the block at ``height`` above ``tip``: its child's nBits
        and the sixth smallest time of the ten blocks below it, which its median time past
        cannot exceed; None when the rules do not make them certain."""
        net = self.network
        prev = self._chain.get(height - 1)
        if prev is None or prev[0] != tip:
            return None
        bits = prev[1].bits
        if net.no_retargeting:
            if bits != net.pow_limit_bits:
                return None
        elif net.allow_min_difficulty or height % net.interval == 0 \
                or (height + 1) % net.interval == 0:
            return None
        times = self._times_below(height)
        if times is None:
            return None
        return bits, sorted(times)[5]

    def _prime_chain_sync(self) -> None:
        """The tip's header and the ten below it, so that the next tip can be computed
        without asking the node (``_predicted_tip``, ``_own_block_tip``)."""
        got = []
        h = self._header(btc.hash_hex(self._tip))
        for _ in range(11):
            got.append(h)
            if not h.get("previousblockhash"):
                break
            h = self._header(h["previousblockhash"])
        for h in reversed(got):
            prev = btc.hash_from_hex(h["previousblockhash"]) if h.get("previousblockhash") \
                else None
            self._remember(int(h["height"]), btc.hash_from_hex(h["hash"]), int(h["time"]),
                           int(h["bits"], 16), prev)

    def _times_below(self, height: int) -> Optional[list]:
        """nTime of the ten blocks below ``height`` on the chain we follow (None if we do not
        hold them all); call with ``_chain_lock`` held."""
        times = []
        for h in range(height - 10, height):
            got = self._chain.get(max(h, 0))
            if got is None:
                return None
            times.append(got[1].time)
        return times

    def _own_block_tip(self, block: bytes) -> Optional[TipInfo]:
        """The tip after our own block, which the node just accepted: from its header and
        the blocks below it we hold (a node call only for a retarget's first block or a
        testnet walk-back we do not hold).  None if it is not the block above our tip."""
        header = btc.BlockHeader.from_bytes(block[:80])
        with self._chain_lock:
            prev = self._chain.get(self._tip_height)
            if prev is None or prev[0] != header.prev_hash or header.prev_hash != self._tip:
                return None
            height = self._tip_height + 1
            below = self._times_below(height)
            if below is None:
                return None
        mtp = btc.median_time_past(sorted(below + [header.time]))
        block_hash = btc.sha256d(block[:80])
        info = self._remember(height, block_hash, header.time, header.bits, header.prev_hash)
        return self._tip_above(block_hash, info, mtp)

    # ---- submitting ---------------------------------------------------------------------

    async def submit_block(self, block: bytes) -> Optional[str]:
        delay = self.retry_delay
        last = None
        for attempt in range(1, self.submit_attempts + 1):
            try:
                result = await self.call("submitblock", block.hex())
            except RpcError as e:
                if e.code is not None and e.code != RPC_IN_WARMUP:
                    return f"submitblock error: {e}"  # the node understood and refused
                last = e
                log.warning("submitblock attempt %d failed: %s; retrying in %.1f s", attempt, e,
                            delay)
                if not self._running:
                    break
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.max_retry_delay)
                continue
            if result is None or result == "duplicate":
                # our own block is the new tip: switch now, not when ZMQ (published after
                # the node's wallet saw the block) or the next poll says so
                if self._running:
                    asyncio.get_running_loop().create_task(self._fast_tip(
                        btc.sha256d(block[:80]), "submitblock",
                        compute=lambda: self._own_block_tip(block)))
                return None
            return str(result)
        return f"submitblock failed after {self.submit_attempts} attempts: {last}"

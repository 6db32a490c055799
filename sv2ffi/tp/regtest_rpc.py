"""bitcoind's JSON-RPC subset over HTTP, served from the built-in regtest test/demo chain.

It exists so the ``rpc`` source (python-bitcoinrpc, ZMQ, long-polling, cookie auth, node
restarts, initial block download) is exercised over real HTTP and real ZMQ, on a fresh
machine without bitcoind.  Method names, parameters, result fields and error codes follow
bitcoind for what a template provider and a test harness use:

    getblocktemplate, submitblock, getbestblockhash, getblockcount, getblockhash,
    getblockheader, getblockchaininfo, getnetworkinfo, getmempoolinfo, getrawmempool,
    sendrawtransaction, generatetoaddress, generate_transactions (ours: fill the mempool)

``ibd = True`` makes it answer like a node in initial block download.  With ``zmq_endpoint``
every new block is published as a ZMQ ``hashblock`` message (hash in RPC byte order, then a
4-byte little-endian sequence number), like ``-zmqpubhashblock``.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import json
import logging
import secrets
from pathlib import Path
from typing import Optional

from .. import bitcoin as btc
from ..durable import private_dir, write_atomic
from ..errors import BitcoinDecodeError
from .regtest import RegtestChain

log = logging.getLogger("sv2ffi.regtest.rpc")

MAX_REQUEST = 8 << 20
COOKIE_USER = "__cookie__"


def _written(reply) -> bytes:
    """A reply as bitcoind writes it: UniValue's compact JSON (no spaces; keys result,
    error, id in that order) and a newline, so that readers of bitcoind's own form
    (``rpc_stream.read_tip_reply``) meet it here too."""
    return json.dumps(reply, separators=(",", ":")).encode() + b"\n"


class RpcFailure(Exception):
    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


class RegtestRpcServer:
    def __init__(self, chain: RegtestChain, *, host: str = "127.0.0.1", port: int = 0,
                 user: Optional[str] = None, password: Optional[str] = None,
                 cookie_file=None, zmq_endpoint: Optional[str] = None,
                 longpoll_mempool_delay: float = 1.0):
        self.chain = chain
        self.host, self._port = host, port
        self.cookie_file = Path(cookie_file) if cookie_file else None
        if user is None and self.cookie_file is None:
            raise ValueError("give user/password or a cookie file path")
        self.user, self.password = user, password
        self.zmq_endpoint = zmq_endpoint
        self.longpoll_mempool_delay = longpoll_mempool_delay
        self.ibd = False
        self.requests = 0
        self._server: Optional[asyncio.AbstractServer] = None
        self._changed: Optional[asyncio.Event] = None
        self._zmq_ctx = None
        self._zmq_sock = None
        self._zmq_seq = 0
        self._zmq_reader: Optional[asyncio.Task] = None
        self.zmq_subscriptions = 0
        #: seconds between a block and its ZMQ hashblock (bitcoind: after the wallet)
        self.zmq_delay = 0.0
        #: answers for the next getblocktemplate calls, before the chain's own (tests: a
        #: slow node answering for a block that the chain has since built on)
        self.queued_templates: list = []
        self._sub_event: Optional[asyncio.Event] = None
        self._conns: set = set()

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    # ---- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        if self.cookie_file is not None:
            # like bitcoind: a fresh random password per start, file readable by us only
            self.user, self.password = COOKIE_USER, secrets.token_hex(32)
            private_dir(self.cookie_file.parent, parents=True)
            write_atomic(self.cookie_file, f"{self.user}:{self.password}".encode(), 0o600)
        self._changed = asyncio.Event()
        if self.zmq_endpoint:
            import zmq
            import zmq.asyncio
            # XPUB rather than PUB: it also tells us when a subscriber has joined, so tests
            # can wait for that instead of sleeping
            self._zmq_ctx = zmq.asyncio.Context()
            self._zmq_sock = self._zmq_ctx.socket(zmq.XPUB)
            self._zmq_sock.setsockopt(zmq.LINGER, 0)
            self._zmq_sock.bind(self.zmq_endpoint)
            self.zmq_endpoint = self._zmq_sock.getsockopt(zmq.LAST_ENDPOINT).decode()
            self._zmq_reader = asyncio.get_running_loop().create_task(self._count_subscribers())
        self.chain.on_block.append(self._on_block)
        self.chain.on_mempool.append(self._on_mempool)
        self._server = await asyncio.start_server(self._client, self.host, self._port)
        self._port = self._server.sockets[0].getsockname()[1]
        log.info("regtest JSON-RPC on %s%s", self.url,
                 f", ZMQ hashblock on {self.zmq_endpoint}" if self.zmq_endpoint else "")

    async def stop(self) -> None:
        """Like a node shutting down: the socket goes away, open connections are cut."""
        for lst, fn in ((self.chain.on_block, self._on_block),
                        (self.chain.on_mempool, self._on_mempool)):
            if fn in lst:
                lst.remove(fn)
        if self._server is not None:
            self._server.close()
            for w in list(self._conns):
                w.close()
            await self._server.wait_closed()
            self._server = None
        if self._zmq_sock is not None:
            self._zmq_reader.cancel()
            await asyncio.gather(self._zmq_reader, return_exceptions=True)
            self._zmq_sock.close()
            self._zmq_ctx.term()
            self._zmq_sock = self._zmq_ctx = None
        if self.cookie_file is not None:
            try:
                self.cookie_file.unlink()
            except FileNotFoundError:
                pass

    def _on_block(self, chain: RegtestChain) -> None:
        if self.zmq_delay:  # bitcoind publishes after its wallet has seen the block
            asyncio.get_running_loop().call_later(self.zmq_delay, self.publish_hashblock,
                                                  chain.tip_hash)
        else:
            self.publish_hashblock(chain.tip_hash)
        self._wake()

    def publish_hashblock(self, block_hash: bytes) -> None:
        """Send a ZMQ ``hashblock`` notification (also for an older block: bitcoind
        publishes after its wallet processed a block, so notifications come late)."""
        if self._zmq_sock is not None:
            import zmq
            try:
                self._zmq_sock.send_multipart(
                    [b"hashblock", block_hash[::-1], self._zmq_seq.to_bytes(4, "little")],
                    flags=zmq.NOBLOCK)
            except zmq.ZMQError as e:  # pragma: no cover - PUB sockets drop, never block
                log.warning("zmq publish failed: %s", e)
            self._zmq_seq = (self._zmq_seq + 1) & 0xFFFFFFFF

    def _on_mempool(self, chain: RegtestChain) -> None:
        self._wake()

    async def _count_subscribers(self) -> None:
        while True:
            msg = await self._zmq_sock.recv()
            if msg[:1] == b"\x01":
                self.zmq_subscriptions += 1
                if self._sub_event is not None:
                    self._sub_event.set()

    async def wait_for_subscriber(self, timeout: float = 10) -> None:
        """Until at least one ZMQ subscriber has joined (since start)."""
        while self.zmq_subscriptions == 0:
            self._sub_event = asyncio.Event()
            await asyncio.wait_for(self._sub_event.wait(), timeout)

    def _wake(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = asyncio.Event()

    # ---- HTTP ----------------------------------------------------------------------------

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._conns.add(writer)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        k, v = line.split(":", 1)
                        headers[k.strip().lower()] = v.strip()
                length = int(headers.get("content-length", "0") or 0)
                if length > MAX_REQUEST:
                    await self._respond(writer, 413, b"")
                    return
                body = await reader.readexactly(length) if length else b""
                if not self._authorized(headers.get("authorization", "")):
                    await self._respond(writer, 401, b"", content_type="text/html")
                    continue
                status, payload = await self._handle_body(body)
                await self._respond(writer, status, payload)
                if headers.get("connection", "").lower() == "close":
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            self._conns.discard(writer)
            writer.close()

    def _authorized(self, header: str) -> bool:
        if not header.startswith("Basic "):
            return False
        try:
            got = base64.b64decode(header[6:], validate=True)
        except ValueError:
            return False
        want = f"{self.user}:{self.password}".encode()
        return hmac.compare_digest(got, want)

    async def _respond(self, writer, status: int, payload: bytes,
                       content_type: str = "application/json") -> None:
        reason = {200: "OK", 401: "Unauthorized", 404: "Not Found", 413: "Payload Too Large",
                  500: "Internal Server Error"}.get(status, "Error")
        writer.write(f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\n"
                     f"Content-Length: {len(payload)}\r\n\r\n".encode() + payload)
        await writer.drain()

    async def _handle_body(self, body: bytes) -> tuple:
        self.requests += 1
        try:
            req = json.loads(body)
        except ValueError:
            return 500, _written({"result": None, "error": {
                "code": -32700, "message": "Parse error"}, "id": None})
        if isinstance(req, list):
            out = [await self._one(r) for r in req]
            return 200, _written(out)
        reply = await self._one(req)
        return (500 if reply["error"] else 200), _written(reply)

    async def _one(self, req) -> dict:
        rid = req.get("id") if isinstance(req, dict) else None
        try:
            if not isinstance(req, dict) or not isinstance(req.get("method"), str):
                raise RpcFailure(-32600, "Invalid Request object")
            params = req.get("params") or []
            if not isinstance(params, list):
                raise RpcFailure(-32600, "Params must be an array")
            fn = getattr(self, "rpc_" + req["method"], None)
            if fn is None:
                raise RpcFailure(-32601, "Method not found")
            result = await fn(*params)
            return {"result": result, "error": None, "id": rid}
        except RpcFailure as e:
            return {"result": None, "error": {"code": e.code, "message": e.message}, "id": rid}
        except TypeError as e:
            return {"result": None, "error": {"code": -1, "message": f"bad parameters: {e}"},
                    "id": rid}

    # ---- RPC methods -----------------------------------------------------------------------

    def _hash_param(self, value) -> bytes:
        try:
            return btc.hash_from_hex(value)
        except (ValueError, TypeError, BitcoinDecodeError):
            raise RpcFailure(-8, "hash must be of length 64 (not hex)") from None

    def _longpollid(self) -> str:
        return f"{btc.hash_hex(self.chain.tip_hash)}{self.chain.mempool_seq}"

    async def rpc_getblockchaininfo(self):
        c = self.chain
        return {"chain": "regtest", "blocks": c.height, "headers": c.height,
                "bestblockhash": btc.hash_hex(c.tip_hash), "bits": f"{c.tip.header.bits:08x}",
                "difficulty": 4.656542373906925e-10, "time": c.tip.header.time,
                "mediantime": c.median_time_past(), "verificationprogress": 1,
                "initialblockdownload": self.ibd, "pruned": False, "warnings": ""}

    async def rpc_getnetworkinfo(self):
        return {"version": 270000, "subversion": "/sv2ffi-regtest-demo-chain/",
                "protocolversion": 70016, "connections": 0, "warnings": ""}

    async def rpc_getbestblockhash(self):
        return btc.hash_hex(self.chain.tip_hash)

    async def rpc_waitfornewblock(self, timeout=0, current_tip=None):
        """Like bitcoind's: returns {hash, height} once the tip differs from
        ``current_tip`` (default: the tip now), or at ``timeout`` milliseconds."""
        want = current_tip or btc.hash_hex(self.chain.tip_hash)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout / 1000 if timeout else None
        while btc.hash_hex(self.chain.tip_hash) == want:
            left = None if deadline is None else deadline - loop.time()
            if left is not None and left <= 0:
                break
            try:
                await asyncio.wait_for(self._changed.wait(), left)
            except asyncio.TimeoutError:
                break
        return {"hash": btc.hash_hex(self.chain.tip_hash), "height": self.chain.height}

    async def rpc_getblockcount(self):
        return self.chain.height

    async def rpc_getblockhash(self, height):
        if not isinstance(height, int) or not 0 <= height <= self.chain.height:
            raise RpcFailure(-8, "Block height out of range")
        return btc.hash_hex(self.chain.blocks[height].hash)

    async def rpc_getblockheader(self, blockhash, verbose=True):
        h = self._hash_param(blockhash)
        height = self.chain.by_hash.get(h)
        if height is None:
            raise RpcFailure(-5, "Block not found")
        blk = self.chain.blocks[height]
        hdr = blk.header
        if not verbose:
            return hdr.serialize().hex()
        out = {"hash": btc.hash_hex(h), "confirmations": self.chain.height - height + 1,
               "height": height, "version": hdr.version, "versionHex": f"{hdr.version:08x}",
               "merkleroot": btc.hash_hex(hdr.merkle_root), "time": hdr.time,
               "mediantime": self.chain.median_time_past(height), "nonce": hdr.nonce,
               "bits": f"{hdr.bits:08x}", "nTx": len(blk.txs)}
        if height:
            out["previousblockhash"] = btc.hash_hex(hdr.prev_hash)
        if height < self.chain.height:
            out["nextblockhash"] = btc.hash_hex(self.chain.blocks[height + 1].hash)
        return out

    async def rpc_getblocktemplate(self, request=None):
        request = request or {}
        if "segwit" not in (request.get("rules") or []):
            raise RpcFailure(-8, 'getblocktemplate must be called with the segwit rule set '
                                 '(call with {"rules": ["segwit"]})')
        if self.ibd:
            raise RpcFailure(-10, "Bitcoin Core is in initial block download…")
        lpid = request.get("longpollid")
        if isinstance(lpid, str):
            await self._longpoll(lpid)
        if self.queued_templates:
            return self.queued_templates.pop(0)
        return self._template_json()

    async def _longpoll(self, lpid: str) -> None:
        """Like bitcoind: return at once if the tip moved, else when it moves, or when the
        mempool changed and ``longpoll_mempool_delay`` seconds have passed."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        while lpid[:64] == btc.hash_hex(self.chain.tip_hash):
            changed = self._longpollid() != lpid
            waited = loop.time() - start
            if changed and waited >= self.longpoll_mempool_delay:
                return
            ev = self._changed
            try:
                await asyncio.wait_for(ev.wait(), max(self.longpoll_mempool_delay - waited, 0.01)
                                       if changed else None)
            except asyncio.TimeoutError:
                pass

    def _template_json(self) -> dict:
        tpl = self.chain.block_template()
        pos = {t.txid: n + 1 for n, t in enumerate(tpl.txs)}
        commitment = btc.witness_commitment_script(
            btc.witness_commitment([t.wtxid for t in tpl.txs]))
        return {
            "capabilities": ["proposal"], "version": tpl.version,
            "rules": ["csv", "!segwit", "taproot"], "vbavailable": {}, "vbrequired": 0,
            "previousblockhash": btc.hash_hex(tpl.prev_hash),
            "transactions": [{"data": t.data.hex(), "txid": btc.hash_hex(t.txid),
                              "hash": btc.hash_hex(t.wtxid), "depends": sorted(pos[p] for p in t.parents if p in pos),
                              "fee": t.fee, "sigops": t.sigops, "weight": t.weight}
                             for t in tpl.txs],
            "coinbaseaux": {}, "coinbasevalue": tpl.coinbase_value,
            "longpollid": self._longpollid(),
            "target": f"{btc.bits_to_target(tpl.bits):064x}", "mintime": tpl.min_time,
            "mutable": ["time", "transactions", "prevblock"], "noncerange": "00000000ffffffff",
            "sigoplimit": btc.MAX_BLOCK_SIGOPS_COST, "sizelimit": btc.MAX_BLOCK_WEIGHT,
            "weightlimit": btc.MAX_BLOCK_WEIGHT, "curtime": tpl.time, "bits": f"{tpl.bits:08x}",
            "height": tpl.height, "default_witness_commitment": commitment.hex(),
        }

    async def rpc_submitblock(self, hexdata, dummy=None):
        try:
            data = bytes.fromhex(hexdata)
        except (ValueError, TypeError):
            raise RpcFailure(-22, "Block decode failed") from None
        reason = self.chain.submit_block(data)
        if reason is not None and reason.startswith("block decode failed"):
            raise RpcFailure(-22, "Block decode failed")
        return reason

    async def rpc_generatetoaddress(self, nblocks, address, maxtries=1000000):
        try:
            script = btc.decode_segwit_address("bcrt", address)
        except BitcoinDecodeError:
            raise RpcFailure(-5, "Error: Invalid address") from None
        return [btc.hash_hex(h) for h in self.chain.generate(int(nblocks), script)]

    async def rpc_generateblock(self, output, transactions=(), submit=True):
        """Like bitcoind's: a block paying ``output`` with exactly ``transactions`` (only an
        empty list here); ``submit=false`` returns it without connecting it (benchmarks
        prepare blocks so that a tip costs only the submit)."""
        try:
            script = btc.decode_segwit_address("bcrt", output)
        except BitcoinDecodeError:
            raise RpcFailure(-5, "Error: Invalid address or descriptor") from None
        if transactions:
            raise RpcFailure(-8, "this endpoint builds empty blocks only")
        tpl = self.chain.block_template()
        tpl.txs, tpl.coinbase_value = [], tpl.subsidy
        blk = self.chain.mine_template(tpl, script)
        if submit:
            reason = self.chain.submit_block(blk.serialize())
            if reason is not None:
                raise RpcFailure(-25, f"generateblock: {reason}")
            return {"hash": btc.hash_hex(blk.hash)}
        return {"hash": btc.hash_hex(blk.hash), "hex": blk.serialize().hex()}

    async def rpc_sendrawtransaction(self, hexstring, maxfeerate=None):
        try:
            tx = btc.Tx.from_bytes(bytes.fromhex(hexstring))
        except (ValueError, BitcoinDecodeError):
            raise RpcFailure(-22, "TX decode failed") from None
        reason = self.chain.accept_transaction(tx)
        if reason is not None:
            raise RpcFailure(-26, reason)
        return btc.hash_hex(tx.txid)

    async def rpc_getmempoolinfo(self):
        m = self.chain.mempool
        return {"loaded": True, "size": len(m), "bytes": sum(e.tx.vsize for e in m.values()),
                "total_fee": sum(e.fee for e in m.values()) / btc.COIN}

    async def rpc_getrawmempool(self, verbose=False):
        return [btc.hash_hex(t) for t in self.chain.mempool]

    async def rpc_generate_transactions(self, count, min_feerate=1, max_feerate=50):
        """Not in bitcoind: fill the demo chain's mempool with fee-paying transactions."""
        return self.chain.add_random_transactions(int(count), min_feerate=int(min_feerate),
                                                  max_feerate=int(max_feerate))

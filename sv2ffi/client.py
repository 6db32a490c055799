"""A Template Distribution client (what a pool or JDC is to a TP) and a tiny CPU miner.

``TdpClient`` connects over Noise, runs SetupConnection and CoinbaseOutputConstraints and
keeps the state a pool keeps: templates by id, the active previous-block hash, the template
being worked on.  The mining helpers (``build_coinbase``, ``solve``) are plain functions:
they turn a NewTemplate + SetNewPrevHash into a block header and a SubmitSolution, which is
only practical at regtest difficulty, but exercises every byte a real pool must get right.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Optional

from . import bitcoin as btc
from .aio import Sv2Stream, connect
from .connection import Connection
from .errors import ProtocolViolationError
from .messages import (CoinbaseOutputConstraints, Message, NewTemplate, RequestTransactionData,
                       RequestTransactionDataError, RequestTransactionDataSuccess,
                       SetNewPrevHash, SetupConnection, SetupConnectionError,
                       SetupConnectionSuccess, SubmitSolution)

log = logging.getLogger("sv2ffi.client")


# ---- mining helpers (sans-I/O) --------------------------------------------------------------


def template_outputs(nt: NewTemplate) -> list:
    """The coinbase outputs a NewTemplate requires, parsed (count checked)."""
    r = btc.Reader(nt.coinbase_tx_outputs)
    outs = [btc.TxOut.read(r) for _ in range(nt.coinbase_tx_outputs_count)]
    if r.remaining:
        raise ProtocolViolationError("coinbase_tx_outputs has bytes beyond its output count")
    return outs


def build_coinbase(nt: NewTemplate, payout_script: bytes = btc.P2WSH_OP_TRUE,
                   extranonce: bytes = b"") -> btc.Tx:
    """The coinbase a pool would build: prefix + extranonce, payout of the whole remaining
    value, then the template's outputs; witness reserved value when there is a commitment."""
    outs = template_outputs(nt)
    segwit = btc.find_witness_commitment(btc.Tx(2, [], outs)) is not None
    script_sig = nt.coinbase_prefix + extranonce
    if len(script_sig) < 2:
        script_sig += b"\x00" * (2 - len(script_sig))
    txin = btc.TxIn(btc.NULL_OUTPOINT_HASH, btc.NULL_OUTPOINT_INDEX, script_sig,
                    nt.coinbase_tx_input_sequence, [btc.WITNESS_RESERVED_VALUE] if segwit else [])
    payout = btc.TxOut(nt.coinbase_tx_value_remaining, payout_script)
    return btc.Tx(nt.coinbase_tx_version, [txin], [payout] + outs, nt.coinbase_tx_locktime)


def solve(nt: NewTemplate, snph: SetNewPrevHash, coinbase: btc.Tx,
          max_tries: int = 1 << 22, time_now: Optional[int] = None) -> Optional[SubmitSolution]:
    """Grind the nonce until the header meets SetNewPrevHash's target (None if not found
    within ``max_tries``: only regtest targets are reachable on a CPU)."""
    root = btc.merkle_root_from_path(coinbase.txid, nt.merkle_path)
    ts = max(snph.header_timestamp, int(time.time()) if time_now is None else time_now)
    header = btc.BlockHeader(nt.version, snph.prev_hash, root, ts, snph.n_bits, 0)
    target = int.from_bytes(snph.target, "little")
    prefix = header.serialize()[:76]
    for nonce in range(max_tries):
        h = hashlib.sha256(hashlib.sha256(prefix + nonce.to_bytes(4, "little")).digest()).digest()
        if int.from_bytes(h, "little") <= target:
            return SubmitSolution(template_id=nt.template_id, version=nt.version,
                                  header_timestamp=ts, header_nonce=nonce,
                                  coinbase_tx=coinbase.serialize(True))
    return None


# ---- the asyncio client ----------------------------------------------------------------------


class TemplateIdNotFound(ProtocolViolationError):
    """What SRI's job store reports when a SetNewPrevHash names no future job it holds:
    SRI's pool shuts down on it, its JDC falls back to another TP."""


@dataclass
class ClientState:
    """A TP's work as SRI's pool and JDC track it (sv2-apps pool/jd-client template
    receivers, channels-sv2 ``JobStore``), so a TP that SRI could not follow fails here:

    - ONE ``last_future`` slot, overwritten by every NewTemplate with future_template=1,
      and ONE ``prev_hash`` (the last SetNewPrevHash);
    - future templates are held as future jobs by id; a SetNewPrevHash must activate one
      of them (``activate_future_job``), else ``TemplateIdNotFound``; it then drops every
      other future job and marks the jobs of the previous tip stale;
    - a non-future NewTemplate becomes the active job for the last SetNewPrevHash, and the
      job it replaces stays valid for shares (and blocks) until the next SetNewPrevHash;
    - a new mining channel can be opened at any moment and is bootstrapped from the pair
      (``bootstrap_channel``): the future job from ``last_future``, activated by
      ``prev_hash``; if their ids differ, SRI's pool shuts down.
    """

    templates: dict = field(default_factory=dict)  # id -> NewTemplate of the current tip
    prev_hash: Optional[SetNewPrevHash] = None
    current: Optional[NewTemplate] = None  # the active job
    last_future: Optional[NewTemplate] = None
    future_jobs: dict = field(default_factory=dict)  # id -> NewTemplate, not yet activated
    tip_changes: int = 0

    def apply(self, msg: Message) -> None:
        if isinstance(msg, NewTemplate):
            if msg.future_template:
                self.last_future = msg
                self.future_jobs[msg.template_id] = msg
            else:
                if self.prev_hash is None:
                    raise ProtocolViolationError(
                        f"non-future NewTemplate {msg.template_id} before any SetNewPrevHash")
                self.templates[msg.template_id] = msg
                self.current = msg
        elif isinstance(msg, SetNewPrevHash):
            nt = self.future_jobs.get(msg.template_id)
            if nt is None:
                raise TemplateIdNotFound(
                    f"SetNewPrevHash references template {msg.template_id}, which is not a "
                    f"future template we hold (holding {sorted(self.future_jobs)})")
            if self.prev_hash is None or msg.prev_hash != self.prev_hash.prev_hash:
                self.templates = {}  # jobs of the previous tip are stale
                self.tip_changes += 1
            self.future_jobs = {}
            self.templates[nt.template_id] = nt
            self.prev_hash = msg
            self.current = nt

    def bootstrap_channel(self) -> NewTemplate:
        """What SRI does when a miner opens a channel: the last future template becomes a
        future job, activated by the last SetNewPrevHash.  Raises TemplateIdNotFound when
        the pair does not match (SRI's pool shuts down)."""
        if self.last_future is None or self.prev_hash is None:
            raise ProtocolViolationError("no future template and SetNewPrevHash yet")
        if self.last_future.template_id != self.prev_hash.template_id:
            raise TemplateIdNotFound(
                f"last future template is {self.last_future.template_id} but the last "
                f"SetNewPrevHash activates {self.prev_hash.template_id}: a new channel cannot "
                "be opened")
        return self.last_future

    @property
    def valid_ids(self) -> set:
        """Templates a solution may still be found on (SRI accepts shares on every job of
        the current tip until the next SetNewPrevHash)."""
        return set(self.templates)


class TdpClient:
    """One Template Distribution session with a TP."""

    def __init__(self, stream: Sv2Stream):
        self.stream = stream
        self.state = ClientState()
        self._responses: asyncio.Queue = asyncio.Queue()

    @classmethod
    async def connect(cls, host: str, port: int, *, authority_pubkey=None,
                      max_additional_size: int = 1000, max_additional_sigops: int = 100,
                      timeout: float = 10, plain: bool = False,
                      legacy_constraints: bool = False) -> "TdpClient":
        conn = Connection.plain() if plain else Connection.initiator(authority_pubkey)
        stream = await connect(host, port, connection=conn, timeout=timeout)
        self = cls(stream)
        try:
            await stream.send(SetupConnection(
                protocol=2, min_version=2, max_version=2, flags=0, endpoint_host=host,
                endpoint_port=port, vendor="sv2ffi", hardware_version="",
                firmware="sv2ffi-client", device_id=""))
            reply = await asyncio.wait_for(stream.recv(), timeout)
            if isinstance(reply, SetupConnectionError):
                raise ProtocolViolationError(f"TP refused the connection: {reply.error_code}")
            if not isinstance(reply, SetupConnectionSuccess):
                raise ProtocolViolationError(f"expected SetupConnection.Success, got "
                                             f"{reply.SPEC.name}")
            if legacy_constraints:
                # SRI <= 1.2.1's 4-byte CoinbaseOutputDataSize: written as a raw frame
                from .framing import Frame
                payload = max_additional_size.to_bytes(4, "little")
                await stream.send_raw(conn.send_frame(Frame(0, 0x70, payload)))
            else:
                await stream.send(CoinbaseOutputConstraints(
                    coinbase_output_max_additional_size=max_additional_size,
                    coinbase_output_max_additional_sigops=max_additional_sigops))
        except BaseException:
            await stream.close()
            raise
        return self

    async def recv(self, timeout: float = 30) -> Message:
        """The next message from the TP, applied to ``state``."""
        msg = await asyncio.wait_for(self.stream.recv(), timeout)
        self.state.apply(msg)
        return msg

    async def wait_for(self, kind, timeout: float = 30, pred=None) -> Message:
        """Receive until a message of ``kind`` (and ``pred``) arrives; earlier ones are
        applied to the state as usual."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise asyncio.TimeoutError(f"no {kind.__name__} within {timeout} s")
            msg = await self.recv(left)
            if isinstance(msg, kind) and (pred is None or pred(msg)):
                return msg

    async def request_transaction_data(self, template_id: int, timeout: float = 30):
        """RequestTransactionData; returns the Success or Error reply (other messages
        arriving meanwhile are applied to the state)."""
        await self.stream.send(RequestTransactionData(template_id=template_id))
        return await self._wait_any((RequestTransactionDataSuccess, RequestTransactionDataError),
                                    template_id, timeout)

    async def _wait_any(self, kinds, template_id, timeout):
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise asyncio.TimeoutError("no RequestTransactionData reply")
            msg = await self.recv(left)
            if isinstance(msg, kinds) and msg.template_id == template_id:
                return msg

    async def submit(self, solution: SubmitSolution) -> None:
        await self.stream.send(solution)

    def mine_current(self, payout_script: bytes = btc.P2WSH_OP_TRUE,
                     max_tries: int = 1 << 22) -> Optional[SubmitSolution]:
        """Solve the template being worked on (regtest difficulty only)."""
        st = self.state
        if st.current is None or st.prev_hash is None:
            return None
        cb = build_coinbase(st.current, payout_script, extranonce=os.urandom(8))
        return solve(st.current, st.prev_hash, cb, max_tries)

    async def close(self) -> None:
        await self.stream.close()


def describe(msg: Message) -> str:
    """One readable line per TP message (CLI and demo transcripts)."""
    if isinstance(msg, NewTemplate):
        kind = "future" if msg.future_template else "active"
        return (f"NewTemplate id={msg.template_id} ({kind}) height={_height(msg)} "
                f"value={msg.coinbase_tx_value_remaining} sat merkle_path={len(msg.merkle_path)}")
    if isinstance(msg, SetNewPrevHash):
        return (f"SetNewPrevHash template={msg.template_id} prev={btc.hash_hex(msg.prev_hash)[:16]}… "
                f"nbits={msg.n_bits:08x} time={msg.header_timestamp}")
    if isinstance(msg, RequestTransactionDataSuccess):
        return (f"RequestTransactionData.Success id={msg.template_id} "
                f"txs={len(msg.transaction_list)} excess_data={msg.excess_data.hex() or '-'}")
    if isinstance(msg, RequestTransactionDataError):
        return f"RequestTransactionData.Error id={msg.template_id} {msg.error_code}"
    return f"{msg.SPEC.name}"


def _height(nt: NewTemplate) -> str:
    try:
        return str(btc.parse_bip34_height(nt.coinbase_prefix))
    except Exception:
        return "?"


# ---- `sv2ffi client` -----------------------------------------------------------------------


async def client_main(args, out=None) -> int:
    """Print templates as they arrive; optionally request their transactions and mine."""
    import sys
    out = out or sys.stdout
    payout = btc.P2WSH_OP_TRUE
    if args.payout_address:
        payout = btc.decode_segwit_address("bcrt", args.payout_address)
    c = await TdpClient.connect(args.host, args.port, authority_pubkey=args.authority_pubkey,
                                max_additional_size=args.max_additional_size,
                                max_additional_sigops=args.max_additional_sigops,
                                timeout=args.timeout)
    verified = "verified" if args.authority_pubkey else "NOT verified (no --authority-pubkey)"
    print(f"connected to {args.host}:{args.port} over Noise; certificate {verified}", file=out,
          flush=True)
    mined = 0
    last_tip = None

    async def show(msg):
        print("<- " + describe(msg), file=out, flush=True)
        # a future template's transactions are asked for once its SetNewPrevHash
        # activated it: that is the first template of every tip and of the connection
        tid = None
        if isinstance(msg, NewTemplate) and not msg.future_template:
            tid = msg.template_id
        elif isinstance(msg, SetNewPrevHash):
            tid = msg.template_id
        if args.request_tx_data and tid is not None:
            reply = await c.request_transaction_data(tid, args.timeout)
            print("<- " + describe(reply), file=out, flush=True)

    try:
        while True:
            await show(await c.recv(args.timeout))
            tip = c.state.prev_hash
            if not args.mine or tip is None or tip.prev_hash == last_tip:
                continue
            # one block per tip, paced by --interval; take in what arrived meanwhile (the
            # full template usually follows SetNewPrevHash within milliseconds)
            await asyncio.sleep(args.interval)
            while True:
                try:
                    await show(await c.recv(0.05))
                except asyncio.TimeoutError:
                    break
            if c.state.prev_hash.prev_hash != tip.prev_hash:
                continue  # the tip moved while we waited: start over on the new one
            sol = c.mine_current(payout)
            if sol is None:
                print("   (target out of CPU reach; not mining)", file=out, flush=True)
                last_tip = tip.prev_hash
                continue
            await c.submit(sol)
            last_tip = tip.prev_hash
            mined += 1
            print(f"-> SubmitSolution template={sol.template_id} nonce={sol.header_nonce}",
                  file=out, flush=True)
            if args.blocks and mined >= args.blocks:
                return 0
    except asyncio.TimeoutError:
        print(f"no message for {args.timeout} s; exiting", file=out)
        return 1
    finally:
        await c.close()


def run_client(args) -> int:
    import sys
    from .errors import Sv2Error
    try:
        return asyncio.run(client_main(args))
    except (Sv2Error, OSError, ValueError) as e:
        print(f"sv2ffi client: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # pragma: no cover
        return 0

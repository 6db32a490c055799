"""A regtest **test/demo chain** held in memory: the TP's default template source.

This is not a node: no peers, no reorganisations, and it only spends the scripts it
creates itself (P2WSH(OP_TRUE) coins, which need no keys).  Every block it is given is
judged by Bitcoin Core's own validation engine (``kernel.CoreValidator``, libbitcoinkernel
through py-bitcoinkernel, installed by ``make demo`` / ``make test``): a block is connected
only if Core connects it too, and a refusal carries Core's reason.  Its own checks (proof
of work against nBits 0x207fffff, the merkle root, BIP34 heights, the coinbase amount with
the 150-block regtest halving, the BIP141 witness commitment, spent and missing inputs,
coinbase maturity, weight and sigops) keep its UTXO set and mempool, and still run when
py-bitcoinkernel is absent (set ``SV2FFI_NO_KERNEL=1`` to skip Core on purpose).  Its mempool is fed with real segwit
transactions paying fees (some chained on unconfirmed parents) so fee-driven template
updates and parent/child trimming happen as they would against bitcoind.

Sans-I/O like the TP core: the caller passes the clock; listeners are plain callables.
"""

from __future__ import annotations

import heapq
import logging
import random
import time as _time
from dataclasses import dataclass
from typing import Callable, Optional

from .. import bitcoin as btc
from ..errors import BitcoinDecodeError
from . import kernel
from .template import BlockTemplate, TemplateTx, TxInterner

log = logging.getLogger("sv2ffi.tp.regtest")

# Bitcoin Core's regtest genesis block (same coinbase as mainnet's, regtest header).
_GENESIS_COINBASE = bytes.fromhex(
    "01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff4d04"
    "ffff001d0104455468652054696d65732030332f4a616e2f32303039204368616e63656c6c6f72206f6e20"
    "6272696e6b206f66207365636f6e64206261696c6f757420666f722062616e6b73ffffffff0100f2052a01"
    "000000434104678afdb0fe5548271967f1a67130b7105cd6a828e03909a67962e0ea1f61deb649f6bc3f4c"
    "ef38c4f35504e51ec112de5c384df7ba0b8d578a4c702b6bf11d5fac00000000")
GENESIS_TIME = 1296688602
VERSION = 0x20000000
#: Like bitcoind's default -blockreservedweight: room kept for the coinbase.
DEFAULT_RESERVED_WEIGHT = 8000


def genesis_block() -> btc.Block:
    cb = btc.Tx.from_bytes(_GENESIS_COINBASE)
    header = btc.BlockHeader(1, bytes(32), cb.txid, GENESIS_TIME, 0x207FFFFF, 2)
    return btc.Block(header, [cb])


@dataclass(slots=True)
class Coin:
    value: int
    script: bytes
    height: int  # 0x7fffffff: unconfirmed (in the mempool)
    coinbase: bool


@dataclass(slots=True)
class MempoolEntry:
    tx: btc.Tx
    txid: bytes
    fee: int
    weight: int
    sigops: int
    parents: frozenset  # txids of in-mempool parents
    seq: int


MEMPOOL = 0x7FFFFFFF


def _mine(header: btc.BlockHeader) -> btc.BlockHeader:
    """Grind the nonce (about two tries at regtest difficulty)."""
    target = btc.bits_to_target(header.bits)
    while not btc.hash_meets_target(header.hash, target):
        header.nonce += 1
        if header.nonce > 0xFFFFFFFF:
            header.nonce = 0
            header.time += 1
    return header


class RegtestChain:
    """The chain, its UTXO set and mempool.  Listeners: ``on_block(chain)`` after a
    block connects, ``on_mempool(chain)`` after transactions enter the mempool."""

    def __init__(self, *, seed: int = 0, clock: Callable[[], float] = _time.time,
                 premine: int = 101, block_max_weight: int = btc.MAX_BLOCK_WEIGHT,
                 validator=None):
        self.network = btc.NETWORKS["regtest"]
        #: Bitcoin Core's validation (``kernel.CoreValidator``) judging every block, when
        #: py-bitcoinkernel is installed; None: this module's own checks only
        if validator is None and kernel.available():
            validator = kernel.CoreValidator()
        self.validator = validator
        self.clock = clock
        self.rng = random.Random(seed)
        self.block_max_weight = block_max_weight
        self.blocks: list = []  # list[Block], index = height
        self.by_hash: dict = {}
        self.utxo: dict = {}  # (txid, index) -> Coin
        self.mempool: dict = {}  # txid -> MempoolEntry
        self.spent_in_mempool: dict = {}  # (txid, index) -> spending txid
        self.mempool_seq = 0
        self.on_block: list = []
        self.on_mempool: list = []
        self._interner = TxInterner()  # one TemplateTx per mempool transaction
        self._connect(genesis_block(), notify=False)
        if premine:
            self.generate(premine, notify=False)

    # ---- chain state ---------------------------------------------------------------------

    @property
    def height(self) -> int:
        return len(self.blocks) - 1

    @property
    def tip(self) -> btc.Block:
        return self.blocks[-1]

    @property
    def tip_hash(self) -> bytes:
        return self.tip.hash

    def median_time_past(self, height: Optional[int] = None) -> int:
        h = self.height if height is None else height
        return btc.median_time_past([b.header.time for b in self.blocks[max(0, h - 10):h + 1]])

    def next_bits(self) -> int:
        tip = self.tip.header
        return btc.next_work_required(
            self.network, btc.HeaderInfo(self.height, tip.time, tip.bits),
            self.next_time(), lambda h: btc.HeaderInfo(h, self.blocks[h].header.time,
                                                       self.blocks[h].header.bits))

    def next_time(self) -> int:
        return max(self.median_time_past() + 1, int(self.clock()))

    def header_info(self, height: int) -> btc.HeaderInfo:
        h = self.blocks[height].header
        return btc.HeaderInfo(height, h.time, h.bits)

    # ---- templates -------------------------------------------------------------------------

    def _selected(self, max_weight: int) -> list:
        """Mempool entries in block order: best fee rate first among those whose parents
        are already in (Kahn's algorithm with a heap), within the weight and sigops limits."""
        entries = self.mempool
        waiting = {txid: set(e.parents) for txid, e in entries.items()}
        children: dict = {}
        for txid, e in entries.items():
            for p in e.parents:
                children.setdefault(p, []).append(txid)
        heap = [(-e.fee / e.weight, e.seq, txid) for txid, e in entries.items() if not e.parents]
        heapq.heapify(heap)
        out, weight, sigops = [], 0, 0
        while heap:
            _, _, txid = heapq.heappop(heap)
            e = entries[txid]
            if weight + e.weight > max_weight or sigops + e.sigops > btc.MAX_BLOCK_SIGOPS_COST - 400:
                continue  # its descendants never become ready either
            out.append(e)
            weight += e.weight
            sigops += e.sigops
            for c in children.get(txid, ()):
                w = waiting[c]
                w.discard(txid)
                if not w:
                    ce = entries[c]
                    heapq.heappush(heap, (-ce.fee / ce.weight, ce.seq, c))
        return out

    def block_template(self) -> BlockTemplate:
        height = self.height + 1
        chosen = self._selected(self.block_max_weight - DEFAULT_RESERVED_WEIGHT)
        txs = [self._interner.get(e.tx.wtxid, e.fee, e.sigops, parents,
                                  lambda e=e, parents=parents: TemplateTx(
                                      e.tx.serialize(True), e.txid, e.tx.wtxid, e.weight,
                                      e.sigops, e.fee, parents))
               for e in chosen for parents in (tuple(sorted(e.parents)),)]
        fees = sum(e.fee for e in chosen)
        return BlockTemplate(self.network, height, self.tip_hash, VERSION, self.next_bits(),
                             self.next_time(), btc.block_subsidy(height, self.network) + fees, txs,
                             min_time=self.median_time_past() + 1)

    def mine_template(self, tpl: BlockTemplate, script: bytes = btc.P2WSH_OP_TRUE,
                      extra: bytes = b"") -> btc.Block:
        """Solve ``tpl`` the way a miner would (coinbase paying ``script``)."""
        outs = [btc.TxOut(tpl.coinbase_value, script)]
        if tpl.txs or tpl.segwit:
            outs.append(btc.witness_commitment_output([t.wtxid for t in tpl.txs]))
        cb = btc.coinbase_tx(tpl.height, outs, extra=extra, sequence=tpl.coinbase_sequence,
                             locktime=tpl.locktime)
        txs = [cb] + [btc.Tx.from_bytes(t.data) for t in tpl.txs]
        root = btc.merkle_root([t.txid for t in txs])
        header = _mine(btc.BlockHeader(tpl.version, tpl.prev_hash, root, tpl.time, tpl.bits, 0))
        return btc.Block(header, txs)

    def generate(self, n: int, script: bytes = btc.P2WSH_OP_TRUE, *, notify: bool = True) -> list:
        """Mine ``n`` blocks on the tip (with the mempool's transactions), like
        ``generatetoaddress``.  Returns their hashes."""
        hashes = []
        for _ in range(n):
            blk = self.mine_template(self.block_template(), script,
                                     extra=self.rng.randbytes(4))
            reason = self.submit_block(blk.serialize(), notify=notify)
            if reason is not None:
                raise AssertionError(f"the chain refused its own block: {reason}")
            hashes.append(blk.hash)
        return hashes

    # ---- validation ----------------------------------------------------------------------

    def submit_block(self, data: bytes, *, notify: bool = True) -> Optional[str]:
        """Validate and connect a block; None when accepted, else bitcoind's reason string
        (``duplicate``, ``inconclusive``, ``high-hash``, ``bad-txnmrklroot``, ...)."""
        try:
            blk = btc.Block.from_bytes(data)
        except BitcoinDecodeError as e:
            return f"block decode failed: {e}"
        h = blk.hash
        if h in self.by_hash:
            return "duplicate"
        if blk.header.prev_hash != self.tip_hash:
            return "prev-blk-not-found" if blk.header.prev_hash not in self.by_hash else "inconclusive"
        reason = self._check(blk)
        if self.validator is not None:
            core = self.validator.process_block(data)
            if core is not None or reason is not None:
                if reason is None:
                    log.error("Bitcoin Core rejected a block the built-in chain's own checks "
                              "accepted: %s", core)
                elif core is None:
                    log.error("Bitcoin Core accepted a block the built-in chain refused (%s); "
                              "the built-in chain cannot follow it", reason)
                return core or reason
        elif reason is not None:
            return reason
        self._connect(blk, notify=notify)
        return None

    def _check(self, blk: btc.Block) -> Optional[str]:
        height = self.height + 1
        hdr = blk.header
        if hdr.bits != self.next_bits():
            return "bad-diffbits"
        if not btc.hash_meets_target(blk.hash, btc.bits_to_target(hdr.bits)):
            return "high-hash"
        if hdr.time <= self.median_time_past():
            return "time-too-old"
        if hdr.time > self.clock() + 2 * 60 * 60:
            return "time-too-new"
        if btc.merkle_root([t.txid for t in blk.txs]) != hdr.merkle_root:
            return "bad-txnmrklroot"
        if blk.weight > btc.MAX_BLOCK_WEIGHT:
            return "bad-blk-weight"
        cb = blk.txs[0]
        if not cb.is_coinbase:
            return "bad-cb-missing"
        if any(t.is_coinbase for t in blk.txs[1:]):
            return "bad-cb-multiple"
        ss = cb.vin[0].script_sig
        if not 2 <= len(ss) <= 100:
            return "bad-cb-length"
        if not ss.startswith(btc.bip34_height_push(height)):
            return "bad-cb-height"
        if not self._final(cb, height):
            return "bad-txns-nonfinal"
        if sum(t.legacy_sigops_cost() for t in blk.txs) > btc.MAX_BLOCK_SIGOPS_COST:
            return "bad-blk-sigops"
        view: dict = {}
        spent: set = set()
        fees = 0
        for tx in blk.txs[1:]:
            fee, reason = self._check_tx(tx, height, view, spent, in_block=True)
            if reason:
                return reason
            fees += fee
            for i, o in enumerate(tx.vout):
                view[(tx.txid, i)] = Coin(o.value, o.script_pubkey, height, False)
        if sum(o.value for o in cb.vout) > btc.block_subsidy(height, self.network) + fees:
            return "bad-cb-amount"
        idx = btc.find_witness_commitment(cb)
        if idx is not None:
            wit = cb.vin[0].witness
            if len(wit) != 1 or len(wit[0]) != 32:
                return "bad-witness-nonce-size"
            want = btc.witness_commitment([t.wtxid for t in blk.txs[1:]], wit[0])
            if cb.vout[idx].script_pubkey[6:38] != want:
                return "bad-witness-merkle-match"
        elif any(t.has_witness for t in blk.txs):
            return "unexpected-witness"
        return None

    def _final(self, tx: btc.Tx, height: int) -> bool:
        if tx.locktime == 0 or all(i.sequence == btc.SEQUENCE_FINAL for i in tx.vin):
            return True
        return tx.locktime < 500_000_000 and tx.locktime < height

    def _coin(self, key, view: dict, in_block: bool) -> Optional[Coin]:
        c = view.get(key)
        if c is not None:
            return c
        c = self.utxo.get(key)
        if c is not None:
            return c
        if not in_block and key[0] in self.mempool:
            o = self.mempool[key[0]].tx.vout
            if key[1] < len(o):
                return Coin(o[key[1]].value, o[key[1]].script_pubkey, MEMPOOL, False)
        return None

    def _check_tx(self, tx: btc.Tx, height: int, view: dict, spent: set,
                  in_block: bool) -> tuple:
        if not tx.vin or not tx.vout:
            return 0, "bad-txns-vin-empty" if not tx.vin else "bad-txns-vout-empty"
        if not self._final(tx, height):
            return 0, "bad-txns-nonfinal"
        total_in = 0
        for i in tx.vin:
            key = (i.prev_txid, i.prev_index)
            if key in spent:
                return 0, "bad-txns-inputs-missingorspent"
            c = self._coin(key, view, in_block)
            if c is None:
                return 0, "bad-txns-inputs-missingorspent"
            if c.coinbase and height - c.height < btc.COINBASE_MATURITY:
                return 0, "bad-txns-premature-spend-of-coinbase"
            # the only script this chain can evaluate: P2WSH(OP_TRUE), witness [OP_TRUE]
            if c.script != btc.P2WSH_OP_TRUE or i.script_sig or i.witness != [btc.OP_TRUE_SCRIPT]:
                return 0, "mandatory-script-verify-flag-failed"
            spent.add(key)
            total_in += c.value
        out = sum(o.value for o in tx.vout)
        if any(o.value < 0 for o in tx.vout) or out > total_in:
            return 0, "bad-txns-in-belowout"
        return total_in - out, None

    def _connect(self, blk: btc.Block, *, notify: bool) -> None:
        height = len(self.blocks)
        self.blocks.append(blk)
        self.by_hash[blk.hash] = height
        for n, tx in enumerate(blk.txs):
            txid = tx.txid
            if n:
                for i in tx.vin:
                    self.utxo.pop((i.prev_txid, i.prev_index), None)
            for k, o in enumerate(tx.vout):
                if not o.script_pubkey.startswith(bytes((btc.OP_RETURN,))):
                    self.utxo[(txid, k)] = Coin(o.value, o.script_pubkey, height, n == 0)
        self._evict_confirmed(blk)
        if notify:
            for cb in list(self.on_block):
                cb(self)

    def _evict_confirmed(self, blk: btc.Block) -> None:
        """Drop mined transactions and everything that now conflicts or lost its inputs."""
        mined = {t.txid for t in blk.txs[1:]}
        for txid in mined:
            e = self.mempool.pop(txid, None)
            if e is not None:
                for i in e.tx.vin:
                    self.spent_in_mempool.pop((i.prev_txid, i.prev_index), None)
        changed = True
        while changed:
            changed = False
            for txid, e in list(self.mempool.items()):
                ok = all((i.prev_txid, i.prev_index) in self.utxo or i.prev_txid in self.mempool
                         for i in e.tx.vin)
                if not ok:
                    self._remove(txid)
                    changed = True
                else:
                    e.parents = frozenset(p for p in e.parents if p in self.mempool)

    def _remove(self, txid: bytes) -> None:
        e = self.mempool.pop(txid)
        for i in e.tx.vin:
            self.spent_in_mempool.pop((i.prev_txid, i.prev_index), None)

    # ---- mempool ---------------------------------------------------------------------------

    def accept_transaction(self, tx: btc.Tx, *, notify: bool = True) -> Optional[str]:
        """Add a transaction to the mempool; None when accepted, else the reason."""
        txid = tx.txid
        if txid in self.mempool:
            return "txn-already-in-mempool"
        if any((i.prev_txid, i.prev_index) in self.spent_in_mempool for i in tx.vin):
            return "txn-mempool-conflict"
        fee, reason = self._check_tx(tx, self.height + 1, {}, set(), in_block=False)
        if reason:
            return reason
        if fee <= 0:
            return "min relay fee not met"
        if tx.weight > 400_000:
            return "tx-size"
        self.mempool_seq += 1
        parents = frozenset(i.prev_txid for i in tx.vin if i.prev_txid in self.mempool)
        self.mempool[txid] = MempoolEntry(tx, txid, fee, tx.weight, tx.legacy_sigops_cost(),
                                          parents, self.mempool_seq)
        for i in tx.vin:
            self.spent_in_mempool[(i.prev_txid, i.prev_index)] = txid
        if notify:
            for cb in list(self.on_mempool):
                cb(self)
        return None

    def spendable(self) -> list:
        """Outpoints this chain can spend (P2WSH(OP_TRUE)), mature, not spent in the mempool:
        confirmed ones and outputs of mempool transactions."""
        height = self.height + 1
        out = [(k, c.value) for k, c in self.utxo.items()
               if c.script == btc.P2WSH_OP_TRUE and k not in self.spent_in_mempool
               and (not c.coinbase or height - c.height >= btc.COINBASE_MATURITY)]
        for txid, e in self.mempool.items():
            for n, o in enumerate(e.tx.vout):
                if o.script_pubkey == btc.P2WSH_OP_TRUE and (txid, n) not in self.spent_in_mempool:
                    out.append(((txid, n), o.value))
        return out

    def add_random_transactions(self, n: int, *, min_feerate: int = 1, max_feerate: int = 50,
                                sigops_every: int = 0, pad: int = 0) -> int:
        """Create and accept up to ``n`` fee-paying transactions spending this chain's coins
        (random fee rates in sat/vB; every ``sigops_every``-th gets a bare-multisig output
        worth 20 sigops, ``pad`` bytes of OP_RETURN make transactions bigger).  Returns how
        many were accepted."""
        coins = [c for c in self.spendable() if c[1] > 100_000]
        self.rng.shuffle(coins)
        made = 0
        for k in range(n):
            if not coins:
                break
            (txid, idx), value = coins.pop()
            rate = self.rng.randint(min_feerate, max_feerate)
            outs = [btc.TxOut(0, btc.P2WSH_OP_TRUE), btc.TxOut(0, btc.P2WSH_OP_TRUE)]
            if sigops_every and (made + 1) % sigops_every == 0:
                multisig = bytes((btc.OP_1,)) + btc.push_data(b"\x02" + bytes(32)) + bytes(
                    (btc.OP_1, btc.OP_CHECKMULTISIG))
                outs.append(btc.TxOut(1000, multisig))
            if pad:
                outs.append(btc.TxOut(0, bytes((btc.OP_RETURN,)) + btc.push_data(
                    self.rng.randbytes(pad))))
            tx = btc.Tx(2, [btc.TxIn(txid, idx, b"", 0xFFFFFFFD, [btc.OP_TRUE_SCRIPT])], outs, 0)
            fee = rate * tx.vsize
            rest = value - fee - sum(o.value for o in outs)
            if rest < 2000:
                continue
            outs[0].value = rest // 2
            outs[1].value = rest - rest // 2
            tx.invalidate()
            if self.accept_transaction(tx, notify=False) is None:
                made += 1
                new = tx.txid
                coins.insert(self.rng.randrange(len(coins) + 1), ((new, 0), outs[0].value))
                coins.insert(self.rng.randrange(len(coins) + 1), ((new, 1), outs[1].value))
        if made:
            for cb in list(self.on_mempool):
                cb(self)
        return made

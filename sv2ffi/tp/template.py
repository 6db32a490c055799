"""Block templates: what a source offers and what the TP serves to each client.

A ``BlockTemplate`` is the node's view of the next block (from getblocktemplate, the
built-in regtest chain, or a serialized block pushed by an embedding node).  The TP turns
it into ``Work`` (the NewTemplate fields plus the transactions behind them), one per
distinct set of client constraints, trimmed so each client's coinbase additions still fit.
A ``ServedTemplate`` is that work under one template id, together with the SetNewPrevHash
values the client mines it with; it turns a SubmitSolution back into the full block, so
everything a template id promises lives in one object.

Memory: a TP keeps every template of the current tip (a pool accepts shares, and so
blocks, on any job of the tip), which is hundreds of templates an hour.  They share
everything that is the same: ``ServedTemplate`` objects for one piece of work share its
``Work``; ``Work`` objects for one source template share its transaction list when nothing
was trimmed; and sources hand in transactions through a ``TxInterner``, so the same
mempool transaction is one ``TemplateTx`` (one copy of its bytes) in every template.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

from .. import bitcoin as btc
from ..errors import (BitcoinDecodeError, BlockRejectedError, InvalidTemplateError,
                      ProtocolViolationError)
from ..messages import NewTemplate, SetNewPrevHash

#: Weight of everything in a SegWit block outside the transactions and the client's
#: coinbase outputs (spec 7.1: header 320 + tx count 12 + coinbase fixed fields 236 +
#: 100-byte scriptSig 400 + output count 12 + witness commitment output 188).
SEGWIT_FIXED_WEIGHT = 1168
#: Bitcoin Core never reserves less than this for the coinbase (-blockreservedweight floor).
MIN_RESERVED_WEIGHT = 2000
#: Bytes of the largest coinbase we build before the client's outputs: version 4, marker
#: and flag 2, input count 1, input 32+4+1+100+4, output count 3, commitment output 47,
#: witness 34, locktime 4.  SubmitSolution carries the coinbase as a B0_64K, so the client's
#: additions must leave the whole coinbase under 65535 bytes.
COINBASE_FIXED_BYTES = 4 + 2 + 1 + 141 + 3 + 47 + 34 + 4
MAX_COINBASE_BYTES = 65535
MAX_ADDITIONAL_SIZE = MAX_COINBASE_BYTES - COINBASE_FIXED_BYTES


@dataclass(slots=True, weakref_slot=True, eq=False)
class TemplateTx:
    """One non-coinbase transaction of a template, with what selection needs to know.

    Parents are named by txid, not by position, so one object serves every template the
    transaction appears in (positions shift as the mempool changes)."""

    data: bytes  # witness serialization, as RequestTransactionData.Success carries it
    txid: bytes
    wtxid: bytes
    weight: int
    sigops: int  # sigops cost
    fee: Optional[int]  # None: unknown (pushed templates)
    parents: tuple = ()  # txids of in-template parents

    @classmethod
    def from_tx(cls, tx: btc.Tx, fee: Optional[int], parents: Sequence[bytes] = (),
                sigops: Optional[int] = None) -> "TemplateTx":
        return cls(tx.serialize(True), tx.txid, tx.wtxid, tx.weight,
                   tx.legacy_sigops_cost() if sigops is None else sigops, fee, tuple(parents))


class _Held(weakref.ref):
    """The interner's weak reference, carrying its key: every entry shares one callback
    instead of a closure each (a template after a block makes thousands of entries)."""

    __slots__ = ("key",)


class TxInterner:
    """One ``TemplateTx`` per (wtxid, fee, sigops, parents) among live templates.

    Sources look a transaction up before building it (``get``), so a getblocktemplate
    poll of an unchanged mempool decodes no hex and allocates no transaction, and a
    thousand cached templates hold one copy of each transaction.  Entries vanish with the
    last template that uses them (weak references); the memo of the last scanned
    getblocktemplate (``memo``) holds that one template's transactions until the next."""

    def __init__(self):
        #: wtxid -> weak reference to the live TemplateTx.  A plain dict, not a
        #: WeakValueDictionary, so a hot loop (``gbt._scanned_txs``: 3,000 lookups per
        #: template) reads it directly: 0.5 us a lookup less, 1.5 ms a template
        self.refs: dict = {}
        refs = self.refs

        def gone(ref: _Held) -> None:
            if refs.get(ref.key) is ref:  # not a newer entry for the same wtxid
                del refs[ref.key]
        self._gone = gone
        #: counts ``add``: a memo is good only while nothing was added since it was kept
        self.generation = 0
        #: the last scanned getblocktemplate's rows (sources/gbt.py), as (memo, that
        #: template's transactions, generation): the next scan matches against it in C
        self.memo: Optional[tuple] = None

    def get(self, wtxid: bytes, fee: Optional[int], sigops: int, parents: tuple,
            make: Callable[[], TemplateTx]) -> TemplateTx:
        t = self.find(wtxid, fee, sigops, parents)
        return t if t is not None else self.add(make())

    def find(self, wtxid: bytes, fee: Optional[int], sigops: Optional[int],
             parents: tuple) -> Optional[TemplateTx]:
        """The live transaction with these values, or None (then build it and ``add``).
        ``sigops`` None: whatever the transaction was counted at (same bytes, same count)."""
        r = self.refs.get(wtxid)
        t = r() if r is not None else None
        if t is not None and t.fee == fee and (sigops is None or t.sigops == sigops) \
                and t.parents == parents:
            return t
        return None

    def add(self, t: TemplateTx) -> TemplateTx:
        self.generation += 1
        ref = _Held(t, self._gone)
        ref.key = t.wtxid
        self.refs[t.wtxid] = ref
        return t

    def __len__(self) -> int:
        return len(self.refs)


@dataclass(slots=True)
class BlockTemplate:
    """The next block as a source proposes it (before any per-client trimming)."""

    network: btc.Network
    height: int
    prev_hash: bytes  # internal byte order
    version: int
    bits: int
    time: int  # header nTime to start with
    coinbase_value: int  # subsidy + fees of ``txs``: what the coinbase may claim
    txs: list  # list[TemplateTx], block order (parents before children)
    min_time: int = 0
    coinbase_tx_version: int = 2
    coinbase_sequence: int = btc.COINBASE_SEQUENCE
    coinbase_locktime: Optional[int] = None
    fees_known: bool = True
    #: required coinbase outputs other than the witness commitment (e.g. a pushed
    #: template's extra OP_RETURNs); they are sent as-is before the commitment
    extra_outputs: list = field(default_factory=list)
    #: whether the template's coinbase had a witness (pushed templates may not)
    segwit: bool = True
    #: the untrimmed block's (coinbase merkle path, witness root or None), when a source
    #: already has them (``sv2ffi._gbtscan`` makes them in the RPC thread); None: hashed
    #: when needed
    full_trees: Optional[tuple] = field(default=None, repr=False, compare=False)
    #: the node's witness commitment output script for the untrimmed block (bitcoind's
    #: ``default_witness_commitment``, sources/gbt.py); None: made from the wtxids
    node_commitment: Optional[bytes] = field(default=None, repr=False, compare=False)
    #: (weight, sigops cost, fees) summed over ``txs``, when a source already has them
    totals: Optional[tuple] = field(default=None, repr=False, compare=False)
    #: the untrimmed Work, computed once and shared by every group that keeps all txs
    _full_work: Optional["Work"] = field(default=None, repr=False, compare=False)

    @property
    def subsidy(self) -> int:
        return btc.block_subsidy(self.height, self.network)

    @property
    def fees(self) -> int:
        return self.coinbase_value - self.subsidy

    @property
    def locktime(self) -> int:
        return max(self.height - 1, 0) if self.coinbase_locktime is None else self.coinbase_locktime

    def depends(self, i: int) -> list:
        """0-based positions of the in-template parents of ``txs[i]`` (getblocktemplate's
        ``depends`` minus one)."""
        pos = {t.txid: n for n, t in enumerate(self.txs[:i])}
        return sorted(pos[p] for p in self.txs[i].parents if p in pos)

    def sums(self) -> tuple:
        """(weight, sigops cost, fees or None) over ``txs``: summed once per template, not
        once per group and step (every group's selection and work read them)."""
        if self.totals is None:
            self.totals = (sum(t.weight for t in self.txs), sum(t.sigops for t in self.txs),
                           sum(t.fee for t in self.txs) if self.fees_known else None)
        return self.totals

    def work(self, keep: Optional[Sequence[int]] = None) -> "Work":
        """The template's Work with only ``keep`` (positions; None or all = untrimmed)."""
        if keep is None or len(keep) == len(self.txs):
            if self._full_work is None:
                self._full_work = Work.build(self, None)
            return self._full_work
        return Work.build(self, keep)


@dataclass(frozen=True, slots=True)
class Constraints:
    """Coinbase room a client asked for, as the weight and sigops cost kept free.

    ``max_additional_sigops`` is a sigops *cost* (legacy sigops count four each): that is
    what SRI's pool and JDC put in CoinbaseOutputConstraints (they multiply by the witness
    scale factor before sending) and what Bitcoin Core's ``coinbase_output_max_additional_sigops``
    option means, so it is reserved as-is."""

    max_additional_size: int
    max_additional_sigops: int

    @property
    def reserved_weight(self) -> int:
        return max(MIN_RESERVED_WEIGHT, SEGWIT_FIXED_WEIGHT + 4 * self.max_additional_size)

    @property
    def reserved_sigops_cost(self) -> int:
        return self.max_additional_sigops

    def check(self, block_max_weight: int) -> None:
        """Refuse constraints no block can satisfy (the client is then disconnected)."""
        if self.max_additional_size > MAX_ADDITIONAL_SIZE:
            raise ProtocolViolationError(
                f"coinbase_output_max_additional_size {self.max_additional_size} cannot fit: "
                f"SubmitSolution carries at most a {MAX_COINBASE_BYTES}-byte coinbase "
                f"(at most {MAX_ADDITIONAL_SIZE} bytes of additional outputs)")
        if self.reserved_weight >= block_max_weight:
            raise ProtocolViolationError(
                f"coinbase_output_max_additional_size {self.max_additional_size} leaves no room "
                f"in a block of {block_max_weight} weight units")
        if self.reserved_sigops_cost > btc.MAX_BLOCK_SIGOPS_COST:
            raise ProtocolViolationError(
                f"coinbase_output_max_additional_sigops {self.max_additional_sigops} exceeds the "
                f"block limit of {btc.MAX_BLOCK_SIGOPS_COST} sigops cost")


def select_transactions(txs: Sequence[TemplateTx], constraints: Constraints,
                        block_max_weight: int = btc.MAX_BLOCK_WEIGHT,
                        max_sigops_cost: int = btc.MAX_BLOCK_SIGOPS_COST,
                        sums: Optional[tuple] = None) -> Optional[list]:
    """Positions of ``txs`` to keep so the client's reservation stays free; None when all
    of them fit (the common case, which then shares the untrimmed work).

    Lowest-priority transactions go first (lowest fee rate; when fees are unknown, the
    last in block order, since a block assembler adds the best packages first), and a
    transaction always leaves together with all its descendants, so a child is never kept
    without its parent.  ``sums``: ``BlockTemplate.sums()`` of ``txs``, when known.
    """
    weight_budget = block_max_weight - constraints.reserved_weight
    sigops_budget = max_sigops_cost - constraints.reserved_sigops_cost
    if sums is not None:
        total_w, total_s = sums[0], sums[1]
    else:
        total_w = sum(t.weight for t in txs)
        total_s = sum(t.sigops for t in txs)
    if total_w <= weight_budget and total_s <= sigops_budget:
        return None
    pos = {t.txid: i for i, t in enumerate(txs)}
    children: list = [[] for _ in txs]
    for i, t in enumerate(txs):
        for p in t.parents:
            j = pos.get(p)
            if j is not None and j < i:
                children[j].append(i)
    if all(t.fee is not None for t in txs):
        order = sorted(range(len(txs)), key=lambda i: (txs[i].fee / max(txs[i].weight, 1), -i))
    else:
        order = list(range(len(txs) - 1, -1, -1))
    removed = [False] * len(txs)
    for i in order:
        if total_w <= weight_budget and total_s <= sigops_budget:
            break
        if removed[i]:
            continue
        stack = [i]
        while stack:
            j = stack.pop()
            if removed[j]:
                continue
            removed[j] = True
            total_w -= txs[j].weight
            total_s -= txs[j].sigops
            stack.extend(children[j])
    return [i for i in range(len(txs)) if not removed[i]]


@dataclass(frozen=True, slots=True, eq=False)
class Work:
    """What a NewTemplate promises, without an id: the coinbase fields, the required
    outputs, the merkle path and the transactions behind it.  Immutable and shared."""

    height: int
    version: int
    coinbase_prefix: bytes
    coinbase_tx_version: int
    coinbase_sequence: int
    coinbase_locktime: int
    value_remaining: int
    outputs: tuple  # TxOut: required coinbase outputs (witness commitment last)
    outputs_bytes: bytes
    merkle_path: tuple
    txs: Sequence[TemplateTx]
    fees: int
    has_commitment: bool

    @classmethod
    def build(cls, tpl: BlockTemplate, keep: Optional[Sequence[int]]) -> "Work":
        full = keep is None
        txs = tpl.txs if full else [tpl.txs[i] for i in keep]
        if tpl.fees_known:
            fees = tpl.sums()[2] if full else sum(t.fee for t in txs)
        elif full:
            fees = tpl.fees
        else:
            # A pushed block does not say what each transaction pays; after trimming, only
            # the subsidy is certainly still claimable.
            fees = 0
        trees = tpl.full_trees if full else None
        outputs = list(tpl.extra_outputs)
        commitment = tpl.segwit or any(t.txid != t.wtxid for t in txs)
        if commitment:
            if full and tpl.node_commitment is not None:
                outputs.append(btc.TxOut(0, tpl.node_commitment))
            elif trees is not None and trees[1] is not None:
                outputs.append(btc.witness_commitment_output_from_root(trees[1]))
            else:
                outputs.append(btc.witness_commitment_output([t.wtxid for t in txs]))
        path = tuple(btc.coinbase_merkle_path([t.txid for t in txs])) if trees is None \
            else trees[0]
        return cls(tpl.height, tpl.version, btc.bip34_height_push(tpl.height),
                   tpl.coinbase_tx_version, tpl.coinbase_sequence, tpl.locktime,
                   tpl.subsidy + fees - sum(o.value for o in outputs), tuple(outputs),
                   b"".join(o.serialize() for o in outputs), path, txs, fees, commitment)

    @classmethod
    def empty(cls, height: int, like: BlockTemplate) -> "Work":
        """The empty block at ``height``, built before its previous block exists (only
        the header fields and the coinbase's form are taken from ``like``)."""
        tpl = BlockTemplate(like.network, height, bytes(32), like.version, like.bits, like.time,
                            btc.block_subsidy(height, like.network), [],
                            coinbase_tx_version=like.coinbase_tx_version,
                            coinbase_sequence=like.coinbase_sequence, segwit=True)
        return cls.build(tpl, None)

    @property
    def weight(self) -> int:
        return sum(t.weight for t in self.txs)


@dataclass(slots=True, eq=False)
class ServedTemplate:
    """A piece of work under one template id, and the SetNewPrevHash values (previous
    block, nBits, start time) it was sent with: a block is only ever rebuilt with the
    values its miner had.  A future template gets them from the SetNewPrevHash that
    activates it; a non-future one from the SetNewPrevHash it applies to."""

    template_id: int
    work: Work
    created: float
    prev_hash: Optional[bytes] = None
    bits: Optional[int] = None
    time: Optional[int] = None

    def with_id(self, template_id: int, now: float) -> "ServedTemplate":
        """The same work and activation under a new id (ids must increase per client)."""
        return ServedTemplate(template_id, self.work, now, self.prev_hash, self.bits, self.time)

    def activate(self, prev_hash: bytes, bits: int, time: int) -> "ServedTemplate":
        self.prev_hash, self.bits, self.time = prev_hash, bits, time
        return self

    # the work's fields, for logs and callers that only read
    height = property(lambda self: self.work.height)
    txs = property(lambda self: self.work.txs)
    fees = property(lambda self: self.work.fees)
    weight = property(lambda self: self.work.weight)
    value_remaining = property(lambda self: self.work.value_remaining)
    has_commitment = property(lambda self: self.work.has_commitment)

    @property
    def target(self) -> int:
        return btc.bits_to_target(self.bits)

    def new_template(self, future: bool) -> NewTemplate:
        w = self.work
        return NewTemplate(
            template_id=self.template_id, future_template=future, version=w.version,
            coinbase_tx_version=w.coinbase_tx_version, coinbase_prefix=w.coinbase_prefix,
            coinbase_tx_input_sequence=w.coinbase_sequence,
            coinbase_tx_value_remaining=w.value_remaining,
            coinbase_tx_outputs_count=len(w.outputs), coinbase_tx_outputs=w.outputs_bytes,
            coinbase_tx_locktime=w.coinbase_locktime, merkle_path=list(w.merkle_path))

    def set_new_prev_hash(self) -> SetNewPrevHash:
        return SetNewPrevHash(template_id=self.template_id, prev_hash=self.prev_hash,
                              header_timestamp=self.time, n_bits=self.bits,
                              target=btc.target_le(self.target))

    def build_block(self, version: int, timestamp: int, nonce: int, coinbase: bytes) -> bytes:
        """Rebuild the block a SubmitSolution describes and check its proof of work.

        The coinbase witness is set to what a witness commitment in it was computed with
        (the spec's 32-byte zero reserved value), or removed when the coinbase carries no
        commitment: either mismatch makes a block with valid proof of work invalid
        (``bad-witness-nonce-size``, ``unexpected-witness``), and the witness is not part
        of the txid, so the header stays the one the miner solved.

        Raises BlockRejectedError (bad coinbase, wrong prefix, too much value, or a hash
        above the target); the caller logs it, the session goes on.
        """
        w = self.work
        if self.prev_hash is None:
            raise BlockRejectedError(f"template {self.template_id} was never activated by a "
                                     "SetNewPrevHash")
        try:
            cb = btc.Tx.from_bytes(coinbase)
        except BitcoinDecodeError as e:
            raise BlockRejectedError(f"coinbase does not parse: {e}") from None
        if not cb.is_coinbase:
            raise BlockRejectedError("coinbase_tx is not a coinbase transaction")
        if not cb.vin[0].script_sig.startswith(w.coinbase_prefix):
            raise BlockRejectedError("coinbase scriptSig does not start with the template's "
                                     "coinbase_prefix (BIP34 height)")
        claimed = sum(o.value for o in cb.vout)
        allowed = w.value_remaining + sum(o.value for o in w.outputs)
        if claimed > allowed:
            raise BlockRejectedError(f"coinbase claims {claimed} sat, the template allows {allowed}")
        witness = [btc.WITNESS_RESERVED_VALUE] if btc.find_witness_commitment(cb) is not None \
            else []
        if cb.vin[0].witness != witness:
            cb.vin[0].witness = witness
            cb.invalidate()
        root = btc.merkle_root_from_path(cb.txid, w.merkle_path)
        header = btc.BlockHeader(version, self.prev_hash, root, timestamp, self.bits, nonce)
        h = header.hash
        if not btc.hash_meets_target(h, self.target):
            raise BlockRejectedError(f"block {btc.hash_hex(h)} does not meet the target")
        return (header.serialize() + btc.compact_size(1 + len(w.txs)) + cb.serialize(True)
                + b"".join(t.data for t in w.txs))


def block_template_txs(pieces: list, interner: "TxInterner", what: str, fees=None,
                       sigops=None) -> list:
    """The transactions after the coinbase of a block handed over whole (a node's
    template, a pushed one), as ``btc.block_transactions`` found them, to TemplateTx with
    their in-template parents.  Most were in the previous template: one whose bytes the
    interner already holds (same wtxid) is not parsed again; any other is parsed in full
    and must match what the scan found.  ``fees`` and ``sigops`` per transaction as the
    node gave them; None: fees unknown, sigops counted from the transaction."""
    seen: set = set()
    out = []
    for i, (raw, spends, wtxid) in enumerate(pieces):
        parents = tuple(dict.fromkeys(p for p in spends if p in seen))
        fee = None if fees is None else int(fees[i])
        sig = None if sigops is None else int(sigops[i])
        t = interner.find(wtxid, fee, sig, parents)
        if t is None or t.data != raw:
            try:
                tx = btc.Tx.from_bytes(raw)
            except BitcoinDecodeError as e:
                raise InvalidTemplateError(f"{what}: transaction {i + 1}: {e}") from None
            if tx.is_coinbase:
                raise InvalidTemplateError(f"{what}: a second coinbase")
            if [x.prev_txid for x in tx.vin] != spends:  # the scan and the parse disagree
                raise InvalidTemplateError(f"{what}: transaction {i + 1} does not parse as "
                                           "it scans")
            t = interner.add(TemplateTx.from_tx(tx, fee, parents, sigops=sig))
        out.append(t)
        seen.add(t.txid)
    return out


def parse_pushed_block(block: bytes, network: btc.Network, min_time: int = 0,
                       interner: Optional[TxInterner] = None) -> BlockTemplate:
    """A serialized block template as a node's block assembler makes it -> BlockTemplate.

    Expected shape (design.md, sv2_tp_push_template): placeholder coinbase whose scriptSig
    starts with the BIP34 height, exactly one non-OP_RETURN output worth subsidy + fees, any
    OP_RETURN outputs (the witness commitment is recomputed, others are kept), then the
    transactions in block order.  The header's nonce and merkle root are ignored.
    """
    try:
        header = btc.BlockHeader.from_bytes(block[:80])
        pieces = btc.block_transactions(block)
        if not pieces:
            raise BitcoinDecodeError("block without transactions")
        cb = btc.Tx.from_bytes(pieces[0][0])
    except BitcoinDecodeError as e:
        raise InvalidTemplateError(f"pushed template is not a serialized block: {e}") from None
    if not cb.is_coinbase:
        raise InvalidTemplateError("pushed template: first transaction is not a coinbase")
    try:
        height = btc.parse_bip34_height(cb.vin[0].script_sig)
    except BitcoinDecodeError as e:
        raise InvalidTemplateError(f"pushed template: {e}") from None
    rewards = [o for o in cb.vout if not o.script_pubkey.startswith(bytes((btc.OP_RETURN,)))]
    if len(rewards) != 1:
        raise InvalidTemplateError(
            f"pushed template: coinbase needs exactly one reward output, has {len(rewards)}")
    commit_idx = btc.find_witness_commitment(cb)
    extra = [o for i, o in enumerate(cb.vout)
             if o.script_pubkey.startswith(bytes((btc.OP_RETURN,))) and i != commit_idx]
    value = rewards[0].value + sum(o.value for o in extra)
    subsidy = btc.block_subsidy(height, network)
    if value < subsidy:
        raise InvalidTemplateError(
            f"pushed template: reward {value} sat is below the subsidy {subsidy} at height {height}")
    txs = block_template_txs(pieces[1:], interner if interner is not None else TxInterner(),
                             "pushed template")
    if header.bits:
        try:
            btc.bits_to_target(header.bits)
        except BitcoinDecodeError as e:
            raise InvalidTemplateError(f"pushed template: {e}") from None
    else:
        raise InvalidTemplateError("pushed template: nBits is zero")
    return BlockTemplate(network, height, header.prev_hash, header.version,
                         header.bits, header.time, value, txs, min_time=min_time,
                         coinbase_tx_version=cb.version, coinbase_sequence=cb.vin[0].sequence,
                         coinbase_locktime=cb.locktime, fees_known=False, extra_outputs=extra,
                         segwit=commit_idx is not None or bool(cb.vin[0].witness))


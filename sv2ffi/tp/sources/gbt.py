"""bitcoind's getblocktemplate reply -> ``BlockTemplate``, two ways to one result.

- ``parse_gbt``: from the reply as the json module decodes it (the reference, and the
  road for anything unusual: it says precisely what is malformed).
- ``scan_reply`` + ``parse_gbt``: from the reply's bytes read by ``sv2ffi._gbtscan``
  (sv2ffi/native/gbtscan.c) with the interpreter released, merkle
  trees included, when that module is built and the reply has the common shape; the
  scanner declines anything else, and the caller then takes the json road.  With 3,000
  transactions this is what keeps a tip's full template within a few milliseconds of the
  node's own getblocktemplate time (issue 10): the json road spends about 25 ms holding
  the interpreter between the reply's last byte and the clients' NewTemplate.

Both trust bitcoind's fee, weight, sigops, txid and wtxid for each transaction (the
transactions are not re-parsed), and its ``default_witness_commitment`` for the untrimmed
block (Core's commitment to those wtxids, which sv2-tp's templates carry as the node makes
them too): one merkle tree less to hash after the reply (0.35 ms in place for 3,000
transactions); a template trimmed for a client hashes its own.  Both reuse a transaction
a live template already holds (``TxInterner``) without decoding its hex again, and
tests/test_gbt_scan.py holds them to the same ``BlockTemplate`` for the same reply.
"""

from __future__ import annotations

from typing import Optional, Union

from ... import bitcoin as btc
from ...errors import InvalidTemplateError
from ..template import BlockTemplate, TemplateTx, TxInterner

try:  # sv2ffi/native/gbtscan.c, built with OpenSSL; the json road without it
    from ... import _gbtscan
except ImportError:  # pragma: no cover - depends on the build
    _gbtscan = None


class ScannedGbt:
    """A getblocktemplate result as ``sv2ffi._gbtscan`` read it: the header fields, one
    row per transaction (hashes, fee, sigops, weight, parent positions, where its hex
    is in the reply), and the merkle trees of the untrimmed block."""

    __slots__ = ("raw", "fields", "rows", "merkle_path", "witness_root", "totals", "matched",
                 "memo", "taken")

    def __init__(self, raw: Union[bytes, bytearray], scanned: tuple,
                 taken: Optional[tuple] = None):
        self.raw = raw
        #: (the interner matched against, its generation when the scan began)
        self.taken = taken
        (self.fields, self.rows, self.merkle_path, self.witness_root, self.totals,
         self.matched, self.memo) = scanned

    def get(self, key: str, default=None):
        """A header field, as ``dict.get`` on the decoded result (longpollid, ...)."""
        return self.fields.get(key, default)


def scanner_built() -> bool:
    """Whether ``sv2ffi._gbtscan`` is there (built with OpenSSL's headers)."""
    return _gbtscan is not None


def describe() -> str:
    """Which road the rpc source reads getblocktemplate replies on (``sv2ffi config``)."""
    if _gbtscan is None:
        return ("json (sv2ffi._gbtscan was not built: no OpenSSL libcrypto headers when the "
                "package was built)")
    return ("C (sv2ffi._gbtscan: the reply and its merkle trees, a new tip's read as it "
            "arrives; json for unusual shapes)")


def read_ahead(raw: bytearray, state, got: int):
    """A reply still arriving, its first ``got`` bytes in ``raw`` (its buffer of its whole
    length): its transactions read in C as far as they go, for ``scan_reply(...,
    ahead=state)`` to take over; ``state`` is None at first, then what the last call
    returned (``RpcStream.read_ahead``).  A 3,000-transaction reply takes 1-2 ms to
    arrive, and its scan after the last byte took as long again, on the way to the
    clients' full template (issue 10); read ahead, 0.4-0.6 ms is left after it.  None
    when the scanner is not built."""
    return None if _gbtscan is None else _gbtscan.ahead(raw, state, got)


def items_read_ahead(state) -> int:
    """How many transactions a ``read_ahead`` state holds for the scan (0 once taken)."""
    return 0 if state is None or _gbtscan is None else _gbtscan.ahead_read(state)


def scan_reply(raw: Union[bytes, bytearray],
               interner: Optional[TxInterner] = None, ahead=None) -> Optional[ScannedGbt]:
    """The JSON-RPC reply's bytes read in C, or None: module not built, an error reply, or
    a shape the scanner leaves to the json module.  With the ``interner`` the template
    will be parsed with, its live transactions are matched in C too (``matched``): against
    the last scanned template's rows where they still say what the interner holds
    (nothing added to it since: ``TxInterner.memo``), against the objects otherwise.
    ``ahead``: what ``read_ahead`` read of this very buffer as it arrived (its items are
    taken over, not read again; used up by this call)."""
    if _gbtscan is None:
        return None
    if interner is None:
        scanned, taken = _gbtscan.scan(raw, None, None, None, None, ahead), None
    else:
        memo, taken = interner.memo, (interner, interner.generation)
        if memo is not None and memo[2] == interner.generation:
            scanned = _gbtscan.scan(raw, interner.refs, None, memo[0], memo[1], ahead)
        else:
            scanned = _gbtscan.scan(raw, interner.refs, None, None, None, ahead)
    return None if scanned is None else ScannedGbt(raw, scanned, taken)


def parse_gbt(j: Union[dict, ScannedGbt], network: btc.Network,
              interner: Optional[TxInterner] = None) -> BlockTemplate:
    """A getblocktemplate result (decoded, or scanned) -> BlockTemplate.  With an
    ``interner``, a transaction already held by a live template is reused without
    decoding its hex again."""
    if interner is None:
        interner = TxInterner()
    scanned = isinstance(j, ScannedGbt)
    head = j.fields if scanned else j
    try:
        if scanned:
            txs, rows_hold = _scanned_txs(j, interner)
        else:
            txs = _decoded_txs(j["transactions"], interner)
        tpl = BlockTemplate(network, int(head["height"]),
                            btc.hash_from_hex(head["previousblockhash"]), int(head["version"]),
                            int(head["bits"], 16), int(head["curtime"]),
                            int(head["coinbasevalue"]), txs, min_time=int(head.get("mintime", 0)))
    except (KeyError, TypeError, ValueError) as e:
        raise InvalidTemplateError(f"getblocktemplate result is malformed: {e!r}") from None
    if tpl.coinbase_value < tpl.subsidy:
        raise InvalidTemplateError("getblocktemplate: coinbasevalue below the subsidy "
                                   "(wrong --chain?)")
    tpl.node_commitment = node_commitment(head.get("default_witness_commitment"))
    if scanned and rows_hold:  # the untrimmed block's trees and sums, already made in C
        tpl.full_trees = (tuple(j.merkle_path), j.witness_root)
        tpl.totals = j.totals
        # the rows, for the next scan, when each of their wtxids maps to tpl's object: the
        # scan matched against this interner, which took nothing since but this parse's
        # new objects (a poll's scan on a pool thread can meet a tip's parse on the loop)
        if j.memo is not None and j.taken is not None and j.taken[0] is interner and \
                interner.generation == j.taken[1] + len(j.matched[1]):
            interner.memo = (j.memo, tpl.txs, interner.generation)
    return tpl


def node_commitment(value) -> Optional[bytes]:
    """getblocktemplate's ``default_witness_commitment`` as the witness commitment output's
    script, when it has the form Core writes (OP_RETURN, push of 36, aa21a9ed, 32 bytes;
    hex, lowercase, as sv2ffi/native/gbtscan.c takes it); None otherwise, and the TP
    hashes the witness tree itself."""
    if not isinstance(value, str) or len(value) != 76 or not value.startswith("6a24aa21a9ed"):
        return None
    try:
        script = bytes.fromhex(value)
    except ValueError:
        return None
    return script if value == script.hex() else None


def _decoded_txs(rows: list, interner: TxInterner) -> list:
    txs: list = []
    # per transaction this runs thousands of times a poll: a warm mempool costs a
    # lookup each, no hex decoded and no object built
    for n, t in enumerate(rows):
        deps = t.get("depends")
        if deps:
            found = []
            for d in deps:
                d = int(d) - 1
                if not 0 <= d < n:
                    raise InvalidTemplateError(f"getblocktemplate: transaction {n} "
                                               "depends on a later one")
                found.append(txs[d].txid)
            parents = tuple(sorted(found))
        else:
            parents = ()
        wtxid = bytes.fromhex(t.get("hash") or t["txid"])[::-1]
        if len(wtxid) != 32:
            raise ValueError(f"transaction {n}: a hash is 32 bytes")
        fee, sigops = int(t["fee"]), int(t.get("sigops", 0))
        tx = interner.find(wtxid, fee, sigops, parents)
        txs.append(tx if tx is not None else interner.add(_decoded_tx(t, wtxid, parents)))
    return txs


def _decoded_tx(t: dict, wtxid: bytes, parents: tuple) -> TemplateTx:
    data = bytes.fromhex(t["data"])
    weight = t.get("weight")
    if weight is None:
        weight = btc.Tx.from_bytes(data).weight
    return TemplateTx(data, btc.hash_from_hex(t["txid"]), wtxid, int(weight),
                      int(t.get("sigops", 0)), int(t["fee"]), parents)


def _scanned_txs(j: ScannedGbt, interner: TxInterner) -> tuple:
    """The scanner's rows as TemplateTx: what ``_decoded_txs`` does, with every value
    already checked and converted in C (parents as positions).  Written for speed (3,000
    rows per template): the interner's table read in place, one parent without a sort.
    Also whether the scanner's trees and sums hold for the result: not if a reused
    transaction was held with another txid or weight than this reply gives for its wtxid
    (a node contradicting itself; the json road reuses it just the same, so trees and sums
    are then made from the objects, as for a decoded reply)."""
    add = interner.add
    if j.matched is not None:  # the held ones matched in C: only the others are made
        held, misses = j.matched
        txs = list(held)  # the scan may be parsed again (benchmarks): its list stays as is
        rows = j.rows
        for i in misses:
            txid, wtxid, fee, sigops, weight, deps, data = rows[i]
            parents = (txs[deps[0]].txid,) if len(deps) == 1 else \
                tuple(sorted([txs[d].txid for d in deps]))
            txs[i] = add(TemplateTx(data, txid, wtxid, weight, sigops, fee, parents))
        return txs, True
    txs: list = []
    rows_hold = True
    append = txs.append
    refs = interner.refs
    for txid, wtxid, fee, sigops, weight, deps, data in j.rows:
        if deps:
            parents = (txs[deps[0]].txid,) if len(deps) == 1 else \
                tuple(sorted([txs[d].txid for d in deps]))
        else:
            parents = ()
        r = refs.get(wtxid)
        tx = r() if r is not None else None
        if tx is None or tx.fee != fee or tx.sigops != sigops or tx.parents != parents:
            tx = add(TemplateTx(data, txid, wtxid, weight, sigops, fee, parents))
        elif tx.weight != weight or tx.txid != txid:
            rows_hold = False
        append(tx)
    return txs, rows_hold

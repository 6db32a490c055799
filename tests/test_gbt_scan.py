"""sv2ffi._gbtscan (getblocktemplate replies read in C) against the json road.

The rule the scanner lives by (sv2ffi/native/gbtscan.c): for any bytes, either it
declines (None, and the caller decodes with the json module) or its template is the one
the json road gives for the same bytes; it never raises for the reply's content and never
crashes.  Checked here on the built-in chain's replies (the shape of bitcoind's own:
sv2ffi/tp/regtest_rpc.py mirrors Core's getblocktemplate fields), on generated replies
written every way JSON allows, and on replies with bytes broken at random.  Real Core's
bytes: tests/test_rpc_real_node.py (the source must read them with the scanner).
"""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sv2ffi import bitcoin as btc
from sv2ffi.errors import InvalidTemplateError
from sv2ffi.tp.regtest import RegtestChain
from sv2ffi.tp.regtest_rpc import RegtestRpcServer
from sv2ffi.tp.sources.gbt import (ScannedGbt, items_read_ahead, parse_gbt, read_ahead,
                                   scan_reply)
from sv2ffi.tp.template import TxInterner

_gbtscan = pytest.importorskip("sv2ffi._gbtscan", reason="sv2ffi._gbtscan not built (no "
                               "OpenSSL libcrypto headers): the json road is the only one")

REGTEST = btc.NETWORKS["regtest"]
TX_FIELDS = ("data", "txid", "wtxid", "weight", "sigops", "fee", "parents")


def reply(result, **kw) -> bytes:
    return json.dumps({"result": result, "error": None, "id": 1}, **kw).encode()


def chain_result(n_txs: int, seed: int = 3) -> dict:
    chain = RegtestChain(seed=seed)
    made = 0
    while made < n_txs:
        made += chain.add_random_transactions(n_txs - made)
    return RegtestRpcServer(chain, user="u", password="p")._template_json()


def same_template(a, b) -> None:
    for f in ("height", "prev_hash", "version", "bits", "time", "coinbase_value", "min_time"):
        assert getattr(a, f) == getattr(b, f), f
    assert [tuple(getattr(t, f) for f in TX_FIELDS) for t in a.txs] == \
        [tuple(getattr(t, f) for f in TX_FIELDS) for t in b.txs]
    wa, wb = a.work(None), b.work(None)  # b's trees came from C, a's from bitcoin.py
    assert (wa.merkle_path, wa.outputs, wa.fees, wa.value_remaining) == \
        (wb.merkle_path, wb.outputs, wb.fees, wb.value_remaining)
    assert a.sums() == b.sums()


def json_road(raw: bytes):
    """What the source does when the scanner declines: the json module, then parse_gbt;
    a template, or the typed error the TP would log."""
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError):
        return "undecodable"
    if not isinstance(doc, dict) or doc.get("error") is not None or "result" not in doc:
        return "not-a-result"
    try:
        return parse_gbt(doc["result"], REGTEST)
    except (InvalidTemplateError, AttributeError, TypeError):
        return "invalid"


def test_a_chain_reply_is_read_in_c_and_equals_the_json_road():
    result = chain_result(400)
    raw = reply(result)
    s = scan_reply(raw)
    assert isinstance(s, ScannedGbt)
    assert s.get("longpollid") == result["longpollid"]
    same_template(parse_gbt(result, REGTEST), parse_gbt(s, REGTEST))
    # the witness commitment is the node's own (bitcoind's default_witness_commitment)
    work = parse_gbt(s, REGTEST).work(None)
    assert work.outputs[-1].script_pubkey == bytes.fromhex(result["default_witness_commitment"])


def test_the_reply_buffer_itself_is_scanned_and_reads_as_its_bytes():
    """The rpc source hands over the bytearray the reply was read into (no copy to bytes,
    sources/rpc_stream.py); it is held for the scan, so it cannot be resized under it.
    Anything else is a TypeError."""
    result = chain_result(50, seed=4)
    raw = reply(result)
    buf = bytearray(raw)
    a, b = scan_reply(raw), scan_reply(buf)
    assert isinstance(b, ScannedGbt)
    same_template(parse_gbt(a, REGTEST), parse_gbt(b, REGTEST))
    buf.extend(b"x")  # not held any more once the scan returned
    for bad in (memoryview(raw), raw.decode(), None):
        with pytest.raises(TypeError):
            _gbtscan.scan(bad)


@pytest.mark.parametrize("kw", [{}, {"indent": 2}, {"separators": (",", ":")},
                                {"sort_keys": True}, {"indent": "\t"}])
def test_every_layout_json_allows_reads_the_same(kw):
    result = chain_result(30, seed=5)
    s = scan_reply(reply(result, **kw))
    assert s is not None
    same_template(parse_gbt(result, REGTEST), parse_gbt(s, REGTEST))


def test_empty_mempool_and_the_trees_of_one_transaction():
    for n in (0, 1, 2, 3):
        result = chain_result(n, seed=9)
        s = scan_reply(reply(result))
        assert len(s.rows) == n
        same_template(parse_gbt(result, REGTEST), parse_gbt(s, REGTEST))


def test_a_warm_interner_reuses_objects_on_both_roads():
    result = chain_result(50, seed=11)
    interner = TxInterner()
    first = parse_gbt(scan_reply(reply(result)), REGTEST, interner)
    again = parse_gbt(scan_reply(reply(result)), REGTEST, interner)
    decoded = parse_gbt(result, REGTEST, interner)
    assert all(a is b is c for a, b, c in zip(first.txs, again.txs, decoded.txs))
    # a fee change for one transaction (prioritisetransaction) makes a new object
    result["transactions"][7]["fee"] += 1
    changed = parse_gbt(scan_reply(reply(result)), REGTEST, interner)
    assert changed.txs[7] is not first.txs[7] and changed.txs[8] is first.txs[8]
    assert changed.txs[7].fee == first.txs[7].fee + 1


@pytest.mark.parametrize("n", [0, 1, 2, 3, 255, 256, 257, 700])
def test_the_trees_hashed_on_a_helper_thread_or_not_read_the_same(n):
    """The trees go to a helper thread only on machines of four CPUs or more (gbtscan.c,
    HELPER_MIN_CPUS: on two, shared with the node, one thread measured faster in place);
    ``helper`` forces either way, so both are checked on any machine, held objects too."""
    result = chain_result(n, seed=13)
    raw = reply(result)
    interner = TxInterner()
    held = parse_gbt(scan_reply(raw), REGTEST, interner)  # its transactions stay live
    got = [_gbtscan.scan(raw, interner.refs, helper) for helper in (None, False, True)]
    for fields, rows, path, root, totals, matched, _ in got[1:]:
        assert (fields, rows, path, root, totals) == got[0][:5]
        assert [t is u for t, u in zip(matched[0], got[0][5][0])] == [True] * n
        assert matched[1] == got[0][5][1] == []
    assert [t is u for t, u in zip(got[0][5][0], held.txs)] == [True] * n
    same_template(parse_gbt(result, REGTEST), parse_gbt(scan_reply(raw), REGTEST))
    with pytest.raises(TypeError):
        _gbtscan.scan(raw, None, 1)  # a bool or None, nothing else


def test_the_nodes_witness_commitment_is_taken_on_both_roads_for_the_untrimmed_block():
    """bitcoind's ``default_witness_commitment`` commits to the wtxids of the very
    transactions it lists (Core's GenerateCoinbaseCommitment); like sv2-tp, which puts the
    node's commitment in its NewTemplate, the TP takes it for the untrimmed block instead
    of hashing the witness tree (sources/gbt.py).  Shown with a commitment that is not the
    wtxids' (a stand-in value of the same form): both roads carry it; a trimmed block has
    other transactions, so its commitment is hashed from them."""
    result = chain_result(40, seed=21)
    own = bytes.fromhex(result["default_witness_commitment"])
    result["default_witness_commitment"] = "6a24aa21a9ed" + "ab" * 32
    raw = reply(result)
    s = scan_reply(raw)
    assert s.witness_root is None  # no witness tree hashed in C
    for tpl in (parse_gbt(s, REGTEST), parse_gbt(result, REGTEST)):
        assert tpl.work(None).outputs[-1].script_pubkey == bytes.fromhex(
            result["default_witness_commitment"])
        keep = list(range(len(tpl.txs) - 1))
        assert tpl.work(keep).outputs[-1].script_pubkey == btc.witness_commitment_script(
            btc.witness_commitment([tpl.txs[i].wtxid for i in keep]))
    assert own != s.get("default_witness_commitment")


@pytest.mark.parametrize("value", [
    None, "", "6a24aa21a9ed" + "ab" * 31, "6a24aa21a9ed" + "ab" * 33, "6a24aa21a9ee" + "ab" * 32,
    "6A24AA21A9ED" + "ab" * 32, "6a24aa21a9ed" + "AB" * 32, "6a24aa21a9ed" + "zz" * 32])
def test_a_commitment_of_another_form_is_hashed_from_the_wtxids_instead(value):
    """Anything but the form Core writes (a missing member, another length or head,
    uppercase or non-hex digits) is not taken: the witness tree is hashed, the same on
    both roads, and the scanner still reads the reply."""
    result = chain_result(40, seed=22)
    want = bytes.fromhex(result["default_witness_commitment"])
    if value is None:
        del result["default_witness_commitment"]
    else:
        result["default_witness_commitment"] = value
    s = scan_reply(reply(result))
    assert s is not None and s.witness_root is not None
    for tpl in (parse_gbt(s, REGTEST), parse_gbt(result, REGTEST)):
        assert tpl.node_commitment is None
        assert tpl.work(None).outputs[-1].script_pubkey == want


def _good() -> dict:
    return {"version": 536870912, "previousblockhash": "11" * 32, "transactions": [
        {"data": "00" * 10, "txid": "22" * 32, "hash": "33" * 32, "depends": [], "fee": 5,
         "sigops": 4, "weight": 40},
        {"data": "ab" * 10, "txid": "44" * 32, "hash": "", "depends": [1], "fee": 7,
         "weight": 40}],
        "coinbasevalue": 5_000_000_012, "longpollid": "x", "mintime": 3, "curtime": 4,
        "bits": "207fffff", "height": 1}


@pytest.mark.parametrize("case, raw", [
    ("an error reply", b'{"result": null, "error": {"code": -10, "message": "IBD"}, "id": 1}'),
    ("a duplicate member", reply(_good()).replace(b'"curtime": 4', b'"curtime": 4, "curtime": 5')),
    ("an escaped string", reply(_good()).replace(b'"bits": "207fffff"', b'"bits": "207\\u0066ffff"')),
    ("a fraction where an integer is read", reply(_good()).replace(b'"fee": 5,', b'"fee": 5.0,')),
    ("an exponent", reply(_good()).replace(b'"fee": 7,', b'"fee": 7e0,')),
    ("a forward depends", reply(_good()).replace(b'"depends": []', b'"depends": [2]')),
    ("depends on itself", reply(_good()).replace(b'"depends": [1]', b'"depends": [2]')),
    ("odd hex", reply(_good()).replace(b'"data": "' + b"ab" * 10, b'"data": "' + b"ab" * 9 + b"a")),
    ("a short hash", reply(_good()).replace(b'"txid": "' + b"22" * 32, b'"txid": "' + b"22" * 31)),
    ("no weight", reply(_good()).replace(b', "weight": 40}]', b"}]")),
    ("no transactions", reply({k: v for k, v in _good().items() if k != "transactions"})),
    ("a string height", reply(dict(_good(), height="1"))),
    ("a null mintime", reply(dict(_good(), mintime=None))),
    ("a number past 64 bits", reply(dict(_good(), curtime=2**64))),
    ("non-ASCII", reply(dict(_good(), longpollid="\u00e9"), ensure_ascii=False)),
    ("deep nesting", reply(dict(_good(), rules=json.loads("[" * 100 + "]" * 100)))),
    ("trailing bytes", reply(_good()) + b" x"),
    ("not an object", b'[1, 2]'),
])
def test_unusual_shapes_are_declined_and_the_json_road_decides(case, raw):
    assert scan_reply(raw) is None, case
    json_road(raw)  # whatever it says (a template or a typed error), it says it alone


def test_what_the_scanner_accepts_matches_the_json_road_exactly():
    raw = reply(_good())
    s = scan_reply(raw)
    assert s is not None
    a, b = json_road(raw), parse_gbt(s, REGTEST)
    same_template(a, b)
    assert b.txs[1].wtxid == b.txs[1].txid  # "hash": "" means the txid, as json reads it
    assert b.txs[1].parents == (b.txs[0].txid,) and b.txs[1].sigops == 0


# ---- generated replies ----------------------------------------------------------------

hexes = st.binary(min_size=1, max_size=40).map(bytes.hex)
hash_hex = st.binary(min_size=32, max_size=32).map(bytes.hex)
small = st.integers(min_value=0, max_value=10**6)
extra = st.dictionaries(st.text(max_size=5), st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=4), kids,
                                                               max_size=3), max_leaves=8),
    max_size=3)


@st.composite
def results(draw):
    n = draw(st.integers(min_value=0, max_value=12))
    txs = []
    for i in range(n):
        t = {"data": draw(hexes), "txid": draw(hash_hex), "fee": draw(small),
             "weight": draw(small)}
        if draw(st.booleans()):
            t["hash"] = draw(hash_hex | st.just(""))
        if draw(st.booleans()):
            t["sigops"] = draw(small)
        if i and draw(st.booleans()):
            t["depends"] = draw(st.lists(st.integers(min_value=1, max_value=i), max_size=3))
        t.update({k: v for k, v in draw(extra).items() if k not in t})
        txs.append(t)
    r = {"transactions": txs, "height": draw(st.integers(min_value=1, max_value=10**6)),
         "previousblockhash": draw(hash_hex), "version": draw(st.integers(0, 2**32 - 1)),
         "bits": "207fffff", "curtime": draw(small), "coinbasevalue": 50 * 10**8 + 10**9}
    if draw(st.booleans()):
        r["mintime"] = draw(small)
    r.update({k: v for k, v in draw(extra).items() if k not in r})
    return r


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(results(), st.sampled_from([{}, {"indent": 1}, {"separators": (",", ":")}]))
def test_generated_replies_read_the_same_both_roads(result, kw):
    raw = reply(result, **kw)
    s = scan_reply(raw)
    if s is None:  # only for shapes outside Core's: floats/escapes in extra members
        return
    same_template(json_road(raw), parse_gbt(s, REGTEST))


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_broken_bytes_never_crash_and_never_read_differently(data):
    raw = bytearray(reply(_good()))
    for _ in range(data.draw(st.integers(min_value=1, max_value=4))):
        kind = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        at = data.draw(st.integers(min_value=0, max_value=len(raw) - 1))
        if kind == "flip":
            raw[at] = data.draw(st.integers(min_value=0, max_value=255))
        elif kind == "cut":
            del raw[at:at + data.draw(st.integers(min_value=1, max_value=20))]
        else:
            raw[at:at] = data.draw(st.binary(min_size=1, max_size=4))
        if not raw:
            raw = bytearray(b"{")
    raw = bytes(raw)
    s = scan_reply(raw)
    if s is None:
        return
    try:
        got = parse_gbt(s, REGTEST)
    except InvalidTemplateError:
        got = "invalid"
    want = json_road(raw)
    if isinstance(want, str) or isinstance(got, str):
        assert got == want
    else:
        same_template(want, got)


# ---- transactions already held: matched in C (``scan_reply(raw, interner)``) ------------

def reuse_pattern(first, second) -> list:
    """For each transaction of ``second``: the position in ``first`` of the very object it
    reuses, or None for a new one."""
    where = {id(t): i for i, t in enumerate(first.txs)}
    return [where.get(id(t)) for t in second.txs]


def test_held_transactions_are_matched_in_c_as_the_interner_would():
    result = chain_result(60, seed=13)
    interner = TxInterner()
    first = parse_gbt(scan_reply(reply(result), interner), REGTEST, interner)
    s = scan_reply(reply(result), interner)
    assert s.matched is not None and s.matched[1] == []  # every one held: no row made
    assert all(r is None for r in s.rows)
    again = parse_gbt(s, REGTEST, interner)
    assert all(a is b for a, b in zip(first.txs, again.txs))
    same_template(parse_gbt(result, REGTEST), again)
    # a fee changed (prioritisetransaction), the last one gone: only the changed one is
    # made, and its children (their parents' object changed: the same txid, so held)
    result["transactions"][7]["fee"] += 1
    del result["transactions"][-1]
    s = scan_reply(reply(result), interner)
    assert s.matched is not None and s.matched[1] == [7]
    changed = parse_gbt(s, REGTEST, interner)
    assert changed.txs[7] is not first.txs[7] and changed.txs[8] is first.txs[8]
    same_template(parse_gbt(result, REGTEST), changed)


def test_a_node_contradicting_itself_is_matched_by_the_python_reader():
    result = chain_result(20, seed=17)
    interner = TxInterner()
    first = parse_gbt(scan_reply(reply(result), interner), REGTEST, interner)
    result["transactions"][3]["weight"] += 4  # same wtxid, another weight
    s = scan_reply(reply(result), interner)
    assert s.matched is None
    again = parse_gbt(s, REGTEST, interner)
    assert again.txs[3] is first.txs[3]  # reused, as the json road reuses it
    assert again.full_trees is None  # trees and sums then made from the objects
    dup = dict(result, transactions=result["transactions"] + [result["transactions"][0]])
    assert scan_reply(reply(dup), interner).matched is None  # a wtxid twice


def test_the_last_scans_rows_match_as_the_held_objects_do():
    """After a scanned template the interner keeps that scan's rows (``TxInterner.memo``):
    the next scan matches against them in C instead of reading each held object's
    attributes (gbtscan.c, MEMO_SAVES); the same decisions and the same objects."""
    result = chain_result(300, seed=23)
    interner = TxInterner()
    first = parse_gbt(scan_reply(reply(result), interner), REGTEST, interner)
    memo, txs, generation = interner.memo
    assert txs is first.txs and generation == interner.generation
    result["transactions"][7]["fee"] += 1  # one made anew, the others held
    raw = reply(result)
    with_memo = _gbtscan.scan(raw, interner.refs, None, memo, txs)
    without = _gbtscan.scan(raw, interner.refs)
    assert with_memo[:5] == without[:5]
    assert [a is b for a, b in zip(with_memo[5][0], without[5][0])] == [True] * 300
    assert with_memo[5][1] == without[5][1] == [7]
    again = parse_gbt(scan_reply(raw, interner), REGTEST, interner)
    assert again.txs[7] is not first.txs[7] and again.txs[8] is first.txs[8]
    assert interner.memo[1] is again.txs  # the newest scan's rows from here on


def test_a_memo_is_not_used_once_the_interner_took_anything_since():
    """A memo says what the interner holds only until the next ``add``: here the json
    road makes a new object for a fee change in between, and the scan after it must
    decide against that object, as the Python reader does, not against the memo."""
    result = chain_result(30, seed=24)
    interner = TxInterner()
    first = parse_gbt(scan_reply(reply(result), interner), REGTEST, interner)
    changed = json.loads(json.dumps(result))
    changed["transactions"][7]["fee"] += 1
    second = parse_gbt(changed, REGTEST, interner)
    assert second.txs[7] is not first.txs[7] and interner.memo[2] != interner.generation
    third = parse_gbt(scan_reply(reply(result), interner), REGTEST, interner)
    # the object held for tx 7 now pays more: a new one (an out-of-date memo would have
    # handed back first's), the rest as held
    assert third.txs[7] is not first.txs[7] and third.txs[7] is not second.txs[7]
    assert all(a is b for i, (a, b) in enumerate(zip(first.txs, third.txs)) if i != 7)


def test_a_memo_comes_with_its_templates_transactions_and_refs():
    result = chain_result(10, seed=25)
    interner = TxInterner()
    parse_gbt(scan_reply(reply(result), interner), REGTEST, interner)
    memo, txs, _ = interner.memo
    raw = reply(result)
    for args in ((interner.refs, None, memo), (interner.refs, None, memo, txs[:-1]),
                 (None, None, memo, txs), (interner.refs, None, b"x", txs),
                 (interner.refs, None, memo, tuple(txs))):
        with pytest.raises(TypeError):
            _gbtscan.scan(raw, *args)


def test_wtxids_alike_in_their_first_bytes_are_not_taken_for_the_same():
    """The scanner's duplicate check keys a set by each wtxid's first 8 bytes (internal
    order: the last 16 hex digits) and compares whole wtxids only when those meet."""
    result = chain_result(6, seed=5)
    interner = TxInterner()
    parse_gbt(scan_reply(reply(result), interner), REGTEST, interner)
    a, b = result["transactions"][1], result["transactions"][4]
    b["hash"] = b["hash"][:48] + a["hash"][48:]  # a new wtxid sharing a's first 8 bytes
    s = scan_reply(reply(result), interner)
    assert s.matched is not None and 4 in s.matched[1]  # matched, b made anew
    same_template(parse_gbt(result, REGTEST), parse_gbt(s, REGTEST, interner))


@st.composite
def changed_results(draw):
    """A result, and the next one: fees changed, transactions dropped (with their
    descendants' dependencies rewritten) or weights contradicted, a wtxid repeated."""
    first = draw(results())
    txs = [dict(t) for t in first["transactions"]]
    for t in txs:
        if draw(st.integers(0, 4)) == 0:
            t["fee"] += draw(st.integers(1, 5))
        if draw(st.integers(0, 12)) == 0:
            t["weight"] += 4
    if txs and draw(st.booleans()):
        txs.append(dict(txs[draw(st.integers(0, len(txs) - 1))], depends=[]))
    return first, dict(first, transactions=txs)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(changed_results())
def test_matching_in_c_reuses_exactly_what_the_python_reader_reuses(pair):
    first, second = pair
    raw1, raw2 = reply(first), reply(second)
    if scan_reply(raw1) is None or scan_reply(raw2) is None:
        return
    a, b = TxInterner(), TxInterner()  # the same holdings, reached both ways
    a1 = parse_gbt(scan_reply(raw1), REGTEST, a)
    b1 = parse_gbt(scan_reply(raw1, b), REGTEST, b)
    a2 = parse_gbt(scan_reply(raw2), REGTEST, a)  # rows matched in Python
    b2 = parse_gbt(scan_reply(raw2, b), REGTEST, b)  # matched in C where it can
    same_template(a2, b2)
    assert reuse_pattern(a1, a2) == reuse_pattern(b1, b2)
    decoded = TxInterner()
    d1 = parse_gbt(json.loads(raw1)["result"], REGTEST, decoded)
    d2 = parse_gbt(json.loads(raw2)["result"], REGTEST, decoded)
    assert reuse_pattern(d1, d2) == reuse_pattern(b1, b2)  # the json road's reuse too


# ---- read ahead: the transactions read while the reply arrives (``read_ahead``) ---------

def arrived(raw: bytes, cuts) -> tuple:
    """``raw`` arriving into its buffer in pieces ending at ``cuts``, read ahead after each
    piece as the rpc source's reader does: (the buffer, the last state)."""
    buf, state, got = bytearray(len(raw)), None, 0
    for cut in sorted({c for c in cuts if 0 < c <= len(raw)}):
        buf[got:cut] = raw[got:cut]
        got = cut
        state = read_ahead(buf, state, got)
    buf[got:] = raw[got:]
    return buf, state


def scanned_as(s):
    return None if s is None else (s.fields, s.rows, s.merkle_path, s.witness_root, s.totals)


def test_a_reply_read_ahead_in_pieces_scans_as_the_whole_reply():
    raw = reply(chain_result(300))
    want = scanned_as(scan_reply(raw))
    for step in (1 << 10, 1 << 14, 1 << 16, len(raw) - 1, len(raw)):
        buf, state = arrived(raw, range(step, len(raw) + step, step))
        assert state is not None
        assert scanned_as(scan_reply(buf, None, state)) == want, step
    interner = TxInterner()
    first = parse_gbt(scan_reply(raw, interner), REGTEST, interner)
    buf, state = arrived(raw, range(4096, len(raw), 4096))
    again = parse_gbt(scan_reply(buf, interner, state), REGTEST, interner)
    same_template(first, again)
    assert all(a is b for a, b in zip(first.txs, again.txs))  # matched as without it


def test_the_scan_takes_the_items_read_ahead_over_once_and_only_from_their_buffer():
    """The items read ahead are not read again (a byte changed behind them after they were
    read shows through only once the state is used up), and a state from another buffer
    is not used at all."""
    raw = reply(chain_result(50))
    fee = json.loads(raw)["result"]["transactions"][0]["fee"]
    at = raw.index(b'"fee": %d' % fee) + len(b'"fee": ')
    buf, state = arrived(raw, [len(raw) // 2])
    assert 0 < items_read_ahead(state) < 50
    other = bytearray(buf)
    for b in (buf, other):
        b[at:at + 1] = b"9" if raw[at:at + 1] != b"9" else b"8"
    changed = int(bytes(buf[at:at + len(str(fee))]))
    assert scan_reply(other, None, state).rows[0][2] == changed  # another buffer: ignored
    assert scan_reply(buf, None, state).rows[0][2] == fee  # read ahead: taken over
    assert items_read_ahead(state) == 0
    assert scan_reply(buf, None, state).rows[0][2] == changed  # used up: read afresh


def test_read_ahead_says_what_it_wants():
    raw = reply(chain_result(20))
    buf, state = arrived(raw, [len(raw) * 3 // 4])
    held = items_read_ahead(state)
    assert held and read_ahead(buf, state, 10) is state and items_read_ahead(state) == held
    assert scanned_as(scan_reply(buf, None, state)) == scanned_as(scan_reply(raw))
    buf = bytearray(reply(_good()))
    with pytest.raises(TypeError):
        read_ahead(buf, object(), 5)
    with pytest.raises(ValueError):
        read_ahead(buf, None, len(buf) + 1)
    with pytest.raises(TypeError):
        scan_reply(buf, None, object())


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_generated_and_broken_replies_read_ahead_scan_as_without(data):
    """Whatever the bytes (generated replies, laid out every way, then some broken at
    random) and wherever they are cut as they arrive, the scan with what was read ahead
    says exactly what the scan of the whole reply says, declines included."""
    raw = bytearray(reply(data.draw(results()),
                          **data.draw(st.sampled_from([{}, {"indent": 1},
                                                       {"separators": (",", ":")}]))))
    for _ in range(data.draw(st.integers(min_value=0, max_value=3))):
        at = data.draw(st.integers(min_value=0, max_value=len(raw) - 1))
        if data.draw(st.booleans()):
            raw[at] = data.draw(st.integers(min_value=0, max_value=255))
        else:
            del raw[at:at + data.draw(st.integers(min_value=1, max_value=20))]
        if not raw:
            raw = bytearray(b"{")
    raw = bytes(raw)
    cuts = data.draw(st.lists(st.integers(min_value=1, max_value=len(raw)), max_size=8))
    buf, state = arrived(raw, cuts)
    assert scanned_as(scan_reply(buf, None, state)) == scanned_as(scan_reply(raw))

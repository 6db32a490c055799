"""A getblocktemplate reply read while it arrives (``sv2ffi._gbtscan.Scanner``).

The rpc source feeds the tip's getblocktemplate reply to a Scanner as its body fills
(sources/rpc_stream.py ``progress``), so the transactions, their matching against the
held ones and the merkle trees are mostly done when the last byte comes (issue 10: the
full template within the node's getblocktemplate time plus 5 ms).  The rule: whatever the
pieces, ``finish`` gives exactly what ``scan`` gives for the whole reply, the same held
objects included, and declines exactly what ``scan`` declines.
"""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sv2ffi.tp.sources.gbt import parse_gbt, reply_scanner, scan_reply
from sv2ffi.tp.template import TxInterner

from test_gbt_scan import REGTEST, _good, chain_result, changed_results, reply, results, \
    same_template

_gbtscan = pytest.importorskip("sv2ffi._gbtscan", reason="sv2ffi._gbtscan not built (no "
                               "OpenSSL libcrypto headers): the json road is the only one")


def same_scan(a, b) -> None:
    """Two scan results alike: the same values, and the very same held objects."""
    if a is None or b is None:
        assert a is b
        return
    fa, ra, pa, wa, ta, ma = a
    fb, rb, pb, wb, tb, mb = b
    assert (fa, ra, pa, wa, ta) == (fb, rb, pb, wb, tb)
    if ma is None or mb is None:
        assert ma is mb
        return
    assert ma[1] == mb[1]
    assert len(ma[0]) == len(mb[0]) and all(x is y for x, y in zip(ma[0], mb[0]))


def fed(raw: bytes, cuts, refs=None):
    """``raw`` arriving in a bytearray in pieces ending at ``cuts``, fed as it fills."""
    buf = bytearray(len(raw))
    scanner = _gbtscan.Scanner(refs)
    done = 0
    for cut in sorted(cuts):
        buf[done:cut] = raw[done:cut]
        done = cut
        scanner.feed(buf, done)
    buf[done:] = raw[done:]
    return scanner.finish(buf)


def test_a_chain_reply_in_pieces_reads_as_a_whole_one():
    raw = reply(chain_result(300, seed=21))
    rnd = random.Random(1)
    want = _gbtscan.scan(raw)
    for pieces in (1, 2, 7, 50, 400):
        same_scan(fed(raw, rnd.sample(range(1, len(raw)), pieces - 1)), want)
    same_scan(fed(raw, range(1, len(raw), 97)), want)  # cut inside every token in turn


def test_held_transactions_matched_ahead_are_the_ones_scan_matches():
    result = chain_result(120, seed=22)
    interner = TxInterner()
    first = parse_gbt(scan_reply(reply(result), interner), REGTEST, interner)
    result["transactions"][5]["fee"] += 1  # made anew, and only it
    raw = reply(result)
    want = _gbtscan.scan(raw, interner.refs)
    assert want[5] is not None and want[5][1] == [5]
    got = fed(raw, range(500, len(raw), 4000), interner.refs)
    same_scan(got, want)
    # through the source's helpers: the template is the one the json road gives
    scanner = reply_scanner(interner)
    buf = bytearray(raw)
    for n in range(1000, len(raw), 3000):
        scanner.feed(buf, n)
    tpl = parse_gbt(scan_reply(buf, interner, scanner), REGTEST, interner)
    same_template(parse_gbt(result, REGTEST), tpl)
    assert tpl.txs[6] is first.txs[6] and tpl.txs[5] is not first.txs[5]


def test_a_node_contradicting_itself_after_the_matching_began():
    """A held transaction with another weight (a node contradicting itself) after others
    were matched ahead, or a wtxid repeated late in the reply: nothing is matched, as
    ``scan`` decides once it has the whole reply."""
    result = chain_result(40, seed=23)
    interner = TxInterner()
    kept = parse_gbt(scan_reply(reply(result), interner), REGTEST, interner)  # noqa: F841
    contradicting = json.loads(json.dumps(result))
    contradicting["transactions"][30]["weight"] += 4
    repeated = dict(result, transactions=result["transactions"] + [result["transactions"][2]])
    for r in (contradicting, repeated):
        raw = reply(r)
        want = _gbtscan.scan(raw, interner.refs)
        assert want is not None and want[5] is None
        same_scan(fed(raw, range(200, len(raw), 1500), interner.refs), want)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(results(), st.sampled_from([{}, {"indent": 1}, {"separators": (",", ":")}]),
       st.data())
def test_generated_replies_in_any_pieces_read_as_scan_reads_them(result, kw, data):
    raw = reply(result, **kw)
    cuts = data.draw(st.lists(st.integers(1, max(1, len(raw) - 1)), max_size=12))
    same_scan(fed(raw, cuts), _gbtscan.scan(raw))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(changed_results(), st.data())
def test_matching_ahead_reuses_what_scan_reuses(pair, data):
    first, second = pair
    interner = TxInterner()
    s1 = scan_reply(reply(first), interner)
    if s1 is None:
        return
    held = parse_gbt(s1, REGTEST, interner)  # noqa: F841 - keeps the objects alive
    raw = reply(second)
    cuts = data.draw(st.lists(st.integers(1, len(raw) - 1), max_size=10))
    same_scan(fed(raw, cuts, interner.refs), _gbtscan.scan(raw, interner.refs))


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_broken_or_cut_replies_are_declined_as_scan_declines_them(data):
    raw = bytearray(reply(_good()))
    for _ in range(data.draw(st.integers(min_value=1, max_value=3))):
        at = data.draw(st.integers(min_value=0, max_value=len(raw) - 1))
        if data.draw(st.booleans()):
            raw[at] = data.draw(st.integers(min_value=0, max_value=255))
        else:
            del raw[at:at + data.draw(st.integers(min_value=1, max_value=20))]
        if not raw:
            raw = bytearray(b"{")
    raw = bytes(raw)
    cuts = data.draw(st.lists(st.integers(1, max(1, len(raw) - 1)), max_size=8))
    same_scan(fed(raw, cuts), _gbtscan.scan(raw))


def test_a_long_head_or_another_member_order_only_costs_the_head_start():
    """bitcoind writes the transactions within the first few hundred bytes; a Scanner
    that has not found them in 64 KiB stops reading ahead, and one that never finds them
    (they come last) reads the reply whole at the end, with the same result."""
    result = chain_result(30, seed=24)
    long_head = {"comment": "x" * 70_000, **result}
    last = {k: v for k, v in result.items() if k != "transactions"}
    last["transactions"] = result["transactions"]
    for r in (long_head, last):
        raw = reply(r)
        want = _gbtscan.scan(raw)
        assert want is not None
        same_scan(fed(raw, range(1000, len(raw), 1000)), want)


def test_the_buffer_is_held_until_the_end_and_another_one_starts_over():
    raw = reply(chain_result(20, seed=25))
    buf = bytearray(raw)
    scanner = _gbtscan.Scanner()
    scanner.feed(buf, len(raw) // 2)
    with pytest.raises(BufferError):  # read ahead in place: it cannot move meanwhile
        buf.extend(b"x")
    other = bytearray(raw)  # another reply (the call sent again): read from its start
    scanner.feed(other, len(raw) - 10)
    buf.extend(b"x")  # the first one let go
    same_scan(scanner.finish(other), _gbtscan.scan(raw))
    other.extend(b"x")  # finished: let go
    # spent: a later finish reads the reply whole, with the same result
    same_scan(scanner.finish(bytes(raw)), _gbtscan.scan(raw))
    # finishing another buffer than the one fed, or one never fed: read whole
    scanner = _gbtscan.Scanner()
    scanner.feed(buf, 100)
    same_scan(scanner.finish(raw), _gbtscan.scan(raw))
    same_scan(_gbtscan.Scanner().finish(raw), _gbtscan.scan(raw))
    # the count is clamped to the buffer; bad arguments are TypeErrors
    scanner = _gbtscan.Scanner()
    scanner.feed(buf, 10**9)
    scanner.feed(buf, -5)
    for bad in ((memoryview(raw), 3), (raw.decode(), 3), (buf, "3"), (buf,)):
        with pytest.raises(TypeError):
            _gbtscan.Scanner().feed(*bad)
    with pytest.raises(TypeError):
        _gbtscan.Scanner(refs=[])

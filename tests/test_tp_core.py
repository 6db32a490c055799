"""The sans-I/O TP core driven with plain message objects, a fake clock and the built-in
regtest chain as the template source (no sockets here; test_tp_network.py does those)."""

import pytest

from sv2ffi import bitcoin as btc
from sv2ffi.client import ClientState, build_coinbase, solve
from sv2ffi.codec import decode_payload
from sv2ffi.framing import encode_message
from sv2ffi.messages import (CoinbaseOutputConstraints, NewTemplate, RequestTransactionData,
                             RequestTransactionDataError, RequestTransactionDataSuccess,
                             SetNewPrevHash, SetupConnection, SetupConnectionError,
                             SetupConnectionSuccess, SubmitSolution)
from sv2ffi.tp.core import TemplateProviderCore, TipInfo, TpConfig
from sv2ffi.tp.regtest import RegtestChain
from sv2ffi.tp.template import Constraints, TemplateTx, select_transactions


def setup_msg(protocol=2, lo=2, hi=2):
    return SetupConnection(protocol=protocol, min_version=lo, max_version=hi, flags=0,
                           endpoint_host="127.0.0.1", endpoint_port=18447, vendor="t",
                           hardware_version="", firmware="", device_id="")


class Harness:
    """Core + chain + per-session inboxes, as an adapter would wire them."""

    def __init__(self, **cfg):
        self.now = 1000.0
        self.chain = RegtestChain(seed=7, clock=lambda: 1_700_000_000 + self.now)
        self.core = TemplateProviderCore(TpConfig(**cfg))
        self.inbox = {}
        self.closed = {}
        self.solutions = []
        self.states = {}

    def apply(self, eff):
        for mid, frame in eff.frames.items():  # encoded ahead: the very bytes of its message
            msg = {id(m): m for _, m in eff.sends}[mid]
            assert frame == encode_message(msg), msg
        for sid, msg in eff.sends:
            self.inbox.setdefault(sid, []).append(msg)
            if sid in self.states:
                self.states[sid].apply(msg)
        for sid, reason in eff.closes:
            self.closed[sid] = reason
        self.solutions += eff.solutions
        return eff

    def connect(self, size=1000, sigops=100):
        sid = self.core.open_session(self.now)
        self.states[sid] = ClientState()
        self.apply(self.core.receive(sid, setup_msg(), self.now))
        self.apply(self.core.receive(sid, CoinbaseOutputConstraints(
            coinbase_output_max_additional_size=size,
            coinbase_output_max_additional_sigops=sigops), self.now))
        return sid

    def send(self, sid, msg):
        return self.apply(self.core.receive(sid, msg, self.now))

    def publish(self):
        return self.apply(self.core.new_template(self.chain.block_template(), self.now))

    def take(self, sid):
        msgs, self.inbox[sid] = self.inbox.get(sid, []), []
        return msgs

    def tick(self, dt):
        self.now += dt
        return self.apply(self.core.tick(self.now))


def test_setup_connection_checks():
    h = Harness()
    sid = h.core.open_session(h.now)
    h.send(sid, setup_msg(protocol=0))
    assert isinstance(h.inbox[sid][0], SetupConnectionError)
    assert h.inbox[sid][0].error_code == "unsupported-protocol" and sid in h.closed
    sid = h.core.open_session(h.now)
    h.send(sid, setup_msg(lo=3, hi=4))
    assert h.inbox[sid][0].error_code == "protocol-version-mismatch" and sid in h.closed
    sid = h.core.open_session(h.now)
    h.send(sid, RequestTransactionData(template_id=1))
    assert "before SetupConnection" in h.closed[sid]
    sid = h.core.open_session(h.now)
    h.send(sid, setup_msg(lo=1, hi=3))
    assert isinstance(h.inbox[sid][0], SetupConnectionSuccess) and h.inbox[sid][0].used_version == 2
    h.send(sid, setup_msg())
    assert "second SetupConnection" in h.closed[sid]


def tip_of(chain):
    return TipInfo(chain.tip_hash, chain.height + 1, chain.next_bits(), chain.next_time())


def kinds(msgs):
    return [(type(m).__name__, getattr(m, "future_template", None)) for m in msgs]


def test_first_tip_is_a_future_template_immediately_activated_then_the_full_one():
    h = Harness()
    h.chain.add_random_transactions(20)
    sid = h.connect()
    assert h.take(sid)[1:] == []  # nothing to mine on before the first tip
    h.publish()
    msgs = h.take(sid)
    assert kinds(msgs) == [("NewTemplate", True), ("SetNewPrevHash", None), ("NewTemplate", False)]
    fut, snph, full = msgs
    assert snph.template_id == fut.template_id and snph.prev_hash == h.chain.tip_hash
    assert snph.n_bits == 0x207FFFFF and snph.target == btc.target_le(btc.bits_to_target(0x207FFFFF))
    assert btc.parse_bip34_height(fut.coinbase_prefix) == h.chain.height + 1
    assert fut.merkle_path == [] and fut.coinbase_tx_locktime == h.chain.height
    assert full.merkle_path and full.coinbase_tx_value_remaining > fut.coinbase_tx_value_remaining
    assert fut.template_id < full.template_id
    assert h.states[sid].bootstrap_channel().template_id == fut.template_id


def test_a_tips_future_template_is_encoded_ahead_and_only_its_id_written_in():
    """At a tip the future NewTemplate is the empty work built after the last tip
    (``prepare_next_tip``); its frame is encoded then too, and the tip only writes the new
    template id into it (``Effects.frames``; encoding it on the way to the clients cost
    0.10-0.15 ms of a tip at one client, issue 10).  Work rebuilt since (a new header
    version) is not matched to an old frame: it is encoded as before.  The SetNewPrevHash
    beside it is always framed by the core, from its fields in one struct call
    (``framing.fixed_frame_packer``: ``encode_message`` took 0.04-0.05 ms there)."""
    h = Harness()
    sid = h.connect()
    h.publish()

    def tip():
        h.chain.generate(1, notify=False)
        return h.apply(h.core.new_tip(TipInfo(h.chain.tip_hash, h.chain.height + 1,
                                              h.chain.next_bits(), h.chain.next_time()),
                                      h.now))
    h.core.prepare_next_tip()
    eff = tip()
    fut, snph = (m for _, m in eff.sends)
    # Harness.apply: the same bytes as encode_message's
    assert fut.future_template and list(eff.frames) == [id(fut), id(snph)]
    assert eff.frames[id(fut)][6:14] == fut.template_id.to_bytes(8, "little")
    eff = tip()  # no prepare_next_tip since: the work is built and encoded at the tip
    assert eff.sends and list(eff.frames) == [id(eff.sends[1][1])]
    h.core.prepare_next_tip()
    tpl = h.chain.block_template()
    tpl.version |= 1 << 4  # the node's version changed: the next empty work is rebuilt
    h.apply(h.core.new_template(tpl, h.now))
    eff = tip()
    fut = eff.sends[0][1]
    assert fut.version == tpl.version and list(eff.frames) == [id(eff.sends[1][1])]
    h.core.prepare_next_tip()
    eff = tip()
    assert eff.sends[0][1].version == tpl.version
    assert list(eff.frames) == [id(m) for _, m in eff.sends]
    assert kinds(h.take(sid))[-2:] == [("NewTemplate", True), ("SetNewPrevHash", None)]


def test_late_joiner_gets_its_work_as_one_pair_and_nothing_ahead_of_the_next_tip():
    """SRI bootstraps a new channel from (last future template, last SetNewPrevHash); a
    future template announced ahead of its block would break that (sv2-apps pool
    message_handler.rs, channels-sv2 JobStore::activate_future_job)."""
    h = Harness()
    h.chain.add_random_transactions(10)
    h.publish()
    sid = h.connect()
    msgs = h.take(sid)[1:]  # after SetupConnection.Success
    assert kinds(msgs) == [("NewTemplate", True), ("SetNewPrevHash", None)]
    assert msgs[0].merkle_path and msgs[1].template_id == msgs[0].template_id
    st = h.states[sid]
    assert st.bootstrap_channel() is msgs[0] and st.current is msgs[0]
    h.chain.generate(1)
    h.apply(h.core.new_tip(tip_of(h.chain), h.now))
    msgs = h.take(sid)
    assert kinds(msgs) == [("NewTemplate", True), ("SetNewPrevHash", None)]
    assert msgs[1].template_id == msgs[0].template_id > st.templates[msgs[0].template_id].template_id - 1
    # the empty template of the new tip is a real one: mined, it extends the chain
    _mine_and_submit(h, sid)
    assert h.solutions[-1].template_id == msgs[0].template_id
    assert h.chain.submit_block(h.solutions[-1].block) is None


def _mine_and_submit(h, sid):
    st = h.states[sid]
    cb = build_coinbase(st.current, extranonce=b"\x01\x02\x03\x04")
    sol = solve(st.current, st.prev_hash, cb, time_now=int(1_700_000_000 + h.now))
    assert sol is not None
    h.send(sid, sol)
    return sol


def test_eight_clients_each_get_every_tip_as_a_pair():
    h = Harness()
    h.chain.add_random_transactions(30)
    sids = [h.connect(size=100 * (i % 3), sigops=40) for i in range(8)]
    h.publish()
    for sid in sids:
        h.take(sid)
    for block in range(5):
        # a block found elsewhere (or by one of the clients): the chain's tip moves
        if block % 2:
            n = len(h.solutions)
            _mine_and_submit(h, sids[block])
            assert len(h.solutions) == n + 1
            assert h.chain.submit_block(h.solutions[-1].block) is None
        else:
            h.chain.generate(1)
        h.apply(h.core.new_tip(tip_of(h.chain), h.now))
        for sid in sids:
            msgs = h.take(sid)
            assert kinds(msgs) == [("NewTemplate", True), ("SetNewPrevHash", None)]
            assert msgs[1].template_id == msgs[0].template_id
            assert msgs[1].prev_hash == h.chain.tip_hash
            h.states[sid].bootstrap_channel()
        h.chain.add_random_transactions(5)
        h.publish()
        for sid in sids:
            assert kinds(h.take(sid)) == [("NewTemplate", False)]
    assert h.chain.height == 101 + 5


def test_a_tip_is_one_fan_entry_for_every_client_not_one_send_each():
    """A tip's effects name the pair once with the clients' ids (``Effects.fan``), so the
    adapter does nothing per client before its one write pass (issue 10: 200 separate
    sends cost 0.1-0.2 ms of the tip's way to 100 clients); spelled out (``sends``) they
    are the same per-client pairs in the same order, and what follows the fan in one
    Effects goes after it for every client."""
    from sv2ffi.tp.core import Effects
    h = Harness()
    sids = [h.connect() for _ in range(3)]
    h.publish()
    for sid in sids:
        h.take(sid)
    h.chain.generate(1, notify=False)
    eff = h.core.new_tip(tip_of(h.chain), h.now)
    fan_sids, msgs = eff.fan
    assert fan_sids == tuple(sids) and kinds(msgs) == [("NewTemplate", True), ("SetNewPrevHash", None)]
    assert eff.unicasts == [] and eff.sends == [(sid, m) for sid in sids for m in msgs]
    assert eff.receivers_of(SetNewPrevHash) == set(sids) and eff.receivers_of(RequestTransactionData) == set()
    h.apply(eff)
    for sid in sids:
        assert kinds(h.take(sid)) == [("NewTemplate", True), ("SetNewPrevHash", None)]

    a, b, c = (object() for _ in range(3))
    later = Effects()
    later.send(2, c)
    later.send_all((1, 2), (a,))  # a fan after a unicast is spelled out, in order
    assert later.fan is None and later.unicasts == [(2, c), (1, a), (2, a)]
    first = Effects()
    first.send_all((1, 2), (b,))
    first.send(2, c)
    first.extend(later)
    assert first.fan == ((1, 2), (b,)) and first.unicasts == [(2, c), (2, c), (1, a), (2, a)]
    first.send(1, c)
    assert first.sends == [(1, b), (2, b), (2, c), (2, c), (1, a), (2, a), (1, c)]
    empty = Effects()
    assert not empty and empty.extend(first).fan == first.fan and empty


def test_a_templates_log_line_is_a_note_for_after_the_clients_write(caplog):
    """The core does not log a built template itself: its INFO line is a note in the
    effects (``Effects.notes``), which the service writes once the clients' NewTemplate is
    sent (issue 10: formatted and written to the log's stream first, the line held a full
    template back 0.1-0.4 ms); notes travel with ``extend``, and ``write_notes`` logs them
    once."""
    import logging
    from sv2ffi.tp.core import Effects
    h = Harness()
    sid = h.connect()
    h.chain.add_random_transactions(5)
    with caplog.at_level(logging.INFO, logger="sv2ffi.tp"):
        eff = h.core.new_template(h.chain.block_template(), h.now)
        assert eff.sends and not [r for r in caplog.records if "template id=" in r.message]
        merged = Effects().extend(eff)
        assert len(merged.notes) == 1 and merged.notes[0][0] == logging.INFO
        merged.write_notes()
        merged.write_notes()
    lines = [r.message for r in caplog.records if "template id=" in r.message]
    assert len(lines) == 1 and "clients=1" in lines[0]
    assert merged.notes == []
    h.apply(eff)
    assert sid in h.inbox


def test_equal_constraints_share_templates_and_trimming_respects_each_client():
    h = Harness(block_max_weight=60_000)
    h.chain.add_random_transactions(80, sigops_every=4)
    small = [h.connect(size=100, sigops=10) for _ in range(2)]
    big = h.connect(size=8000, sigops=10)
    heavy_sigops = h.connect(size=100, sigops=65_000)  # sigops cost, as SRI sends it
    h.publish()
    tpl = h.chain.block_template()
    by_txid = {t.txid: i for i, t in enumerate(tpl.txs)}

    def current(sid):
        return h.core.cache[h.core.sessions[sid].current_id]

    a, b = current(small[0]), current(small[1])
    assert a.template_id == b.template_id
    for sid in (small[0], big, heavy_sigops):
        st = current(sid)
        c = h.core.sessions[sid].constraints
        assert st.weight <= 60_000 - c.reserved_weight
        assert sum(t.sigops for t in st.txs) <= btc.MAX_BLOCK_SIGOPS_COST - c.reserved_sigops_cost
        kept = {t.txid for t in st.txs}
        for t in st.txs:  # never a child without its parent
            for p in tpl.depends(by_txid[t.txid]):
                assert tpl.txs[p].txid in kept
    assert len(current(big).txs) < len(a.txs)
    # a U16 sigops cost can reserve at most 65,535 of the block's 80,000: this mempool's
    # sigops fit either way; trimming by sigops is covered below
    assert sum(t.sigops for t in current(heavy_sigops).txs) > 0
    assert current(big).value_remaining < a.value_remaining


def test_select_drops_lowest_fee_rate_with_descendants():
    ids = [bytes([i]) * 32 for i in range(4)]
    txs = [TemplateTx(b"", ids[i], ids[i], 1000, 0, fee, tuple(ids[d] for d in deps))
           for i, (fee, deps) in enumerate([(5000, ()), (100, ()), (9000, (1,)), (4000, ())])]
    keep = select_transactions(txs, Constraints(0, 0), block_max_weight=2000 + 2000)
    # budget 2000 WU: tx1 has the lowest rate, its child tx2 goes with it; then tx3
    assert keep == [0, 3]


def test_select_trims_by_sigops_cost_children_with_parents():
    ids = [bytes([i]) * 32 for i in range(4)]
    txs = [TemplateTx(b"", ids[i], ids[i], 400, sig, fee, tuple(ids[d] for d in deps))
           for i, (sig, fee, deps) in enumerate([(80, 5000, ()), (80, 100, ()), (0, 9000, (1,)),
                                                 (80, 4000, ())])]
    keep = select_transactions(txs, Constraints(0, 200), max_sigops_cost=400)
    # 200 sigops cost left for 240: the lowest fee rate (tx1) goes, with its child tx2
    assert keep == [0, 3]


@pytest.mark.parametrize("size,sigops", [(70_000, 10), (999_000, 10)])
def test_impossible_constraints_disconnect_clearly(size, sigops):
    h = Harness()
    h.publish()
    sid = h.core.open_session(h.now)
    h.send(sid, setup_msg())
    h.send(sid, CoinbaseOutputConstraints(coinbase_output_max_additional_size=size,
                                          coinbase_output_max_additional_sigops=sigops))
    assert "impossible CoinbaseOutputConstraints" in h.closed[sid]
    assert sid not in h.core.sessions


def test_legacy_four_byte_constraints_are_accepted():
    h = Harness()
    h.publish()
    sid = h.core.open_session(h.now)
    h.send(sid, setup_msg())
    msg = decode_payload(0, 0x70, (5000).to_bytes(4, "little"))
    h.send(sid, msg)
    assert sid not in h.closed
    assert h.core.sessions[sid].constraints == Constraints(5000, 400)


def test_sigops_are_reserved_as_cost_as_sri_sends_them():
    """SRI multiplies by the witness scale factor before sending (sv2-apps
    template_receiver), and Core's option of the same name is a cost too."""
    assert Constraints(100, 400).reserved_sigops_cost == 400
    assert Constraints(100, 80_000).reserved_sigops_cost == btc.MAX_BLOCK_SIGOPS_COST


def test_every_constraints_message_is_answered_with_a_fresh_pair():
    h = Harness()
    h.chain.add_random_transactions(10)
    h.publish()
    sid = h.connect(size=100)
    first = h.take(sid)
    for size in (200, 200, 100):  # the JDC re-sends once its declarator confirmed outputs
        h.send(sid, CoinbaseOutputConstraints(coinbase_output_max_additional_size=size,
                                              coinbase_output_max_additional_sigops=4))
        again = h.take(sid)
        assert kinds(again) == [("NewTemplate", True), ("SetNewPrevHash", None)]
        assert again[0].template_id == again[1].template_id
        assert again[0].template_id > max(m.template_id for m in first
                                          if isinstance(m, NewTemplate))
        first = again
        h.states[sid].bootstrap_channel()
    # the next tip names a template the client holds
    h.chain.generate(1)
    h.publish()
    h.states[sid].bootstrap_channel()


def test_constraints_changes_beyond_the_budget_are_coalesced_last_value_wins():
    h = Harness(constraints_rate=0.5, constraints_burst=2)
    h.publish()
    sid = h.connect(size=100)
    h.take(sid)
    for size in range(1000, 1010):
        h.send(sid, CoinbaseOutputConstraints(coinbase_output_max_additional_size=size,
                                              coinbase_output_max_additional_sigops=4))
    answered = [m for m in h.take(sid) if isinstance(m, SetNewPrevHash)]
    assert len(answered) == 2 and sid not in h.closed
    assert h.core.sessions[sid].constraints.max_additional_size == 1001
    h.tick(1)
    assert h.take(sid) == []  # no budget yet
    h.tick(1.1)
    assert kinds(h.take(sid)) == [("NewTemplate", True), ("SetNewPrevHash", None)]
    assert h.core.sessions[sid].constraints.max_additional_size == 1009
    h.states[sid].bootstrap_channel()


def test_fee_updates_follow_delta_and_interval_tips_never_wait():
    h = Harness(fee_delta=10_000, template_interval=5.0)
    h.chain.add_random_transactions(5, min_feerate=1, max_feerate=1)
    sid = h.connect()
    h.publish()
    h.take(sid)
    sent = h.core.cache[h.core.sessions[sid].current_id].fees
    # a small fee increase: below the delta, nothing is sent even after the interval
    h.tick(10)
    h.chain.add_random_transactions(1, min_feerate=2, max_feerate=2)
    assert h.chain.block_template().fees - sent < 10_000
    h.publish()
    assert h.take(sid) == []
    # a large increase right away: held back by the interval ...
    h.chain.add_random_transactions(20, min_feerate=200, max_feerate=300)
    h.tick(1)
    h.core.groups[next(iter(h.core.groups))].last_sent_at = h.now - 1
    h.publish()
    assert h.take(sid) == []
    # ... and sent once the interval has passed
    h.tick(4.5)
    msgs = h.take(sid)
    assert len(msgs) == 1 and not msgs[0].future_template
    assert h.core.cache[msgs[0].template_id].fees >= sent + 10_000
    # a new tip right after an update is not delayed
    h.chain.generate(1)
    h.publish()
    msgs = h.take(sid)
    assert kinds(msgs[:2]) == [("NewTemplate", True), ("SetNewPrevHash", None)]
    assert msgs[1].prev_hash == h.chain.tip_hash


def test_request_transaction_data_success_and_errors():
    h = Harness(stale_grace=10)
    h.chain.add_random_transactions(12)
    sid = h.connect()
    h.publish()
    h.take(sid)
    tid = h.core.sessions[sid].current_id
    h.send(sid, RequestTransactionData(template_id=tid))
    ok = h.take(sid)[0]
    assert isinstance(ok, RequestTransactionDataSuccess)
    assert ok.excess_data == bytes(32)
    st = h.core.cache[tid]
    assert ok.transaction_list == [t.data for t in st.txs] and len(ok.transaction_list) == 12
    assert all(btc.Tx.from_bytes(d).has_witness for d in ok.transaction_list)
    h.send(sid, RequestTransactionData(template_id=10_000))
    err = h.take(sid)[0]
    assert isinstance(err, RequestTransactionDataError) and err.error_code == "template-id-not-found"
    # new tip: the old template is still served during the grace period ...
    h.chain.generate(1)
    h.publish()
    h.take(sid)
    h.tick(5)
    h.send(sid, RequestTransactionData(template_id=tid))
    assert isinstance(h.take(sid)[0], RequestTransactionDataSuccess)
    # ... then only remembered as stale
    h.tick(6)
    h.send(sid, RequestTransactionData(template_id=tid))
    err = h.take(sid)[0]
    assert err.error_code == "stale-template-id"
    assert sid not in h.closed


def test_submit_solution_rebuilds_a_block_the_chain_accepts_and_bad_ones_are_harmless():
    h = Harness()
    h.chain.add_random_transactions(25)
    sid = h.connect()
    h.publish()
    sol = _mine_and_submit(h, sid)
    assert len(h.solutions) == 1
    s = h.solutions[0]
    assert s.template_id == sol.template_id and s.height == h.chain.height + 1
    assert h.chain.submit_block(s.block) is None and h.chain.tip_hash == s.block_hash
    assert h.chain.submit_block(s.block) == "duplicate"
    # unknown id, wrong nonce (high hash), garbage coinbase: ignored, session stays up
    h.send(sid, SubmitSolution(template_id=99_999, version=1, header_timestamp=1, header_nonce=1,
                               coinbase_tx=sol.coinbase_tx))
    bad = SubmitSolution(template_id=sol.template_id, version=sol.version,
                         header_timestamp=sol.header_timestamp, header_nonce=sol.header_nonce,
                         coinbase_tx=b"\x01\x02")
    h.send(sid, bad)
    assert len(h.solutions) == 1 and sid not in h.closed


def test_no_template_of_the_tip_is_forgotten_and_an_old_one_still_mines_a_block():
    """SRI accepts shares (and so blocks) on every job of the current tip until the next
    SetNewPrevHash (channels-sv2 JobStore keeps past jobs until activate_future_job)."""
    h = Harness(fee_delta=1, template_interval=0)
    sid = h.connect()
    h.chain.add_random_transactions(2)
    h.publish()
    oldest = h.states[sid].current
    for _ in range(150):
        h.chain.add_random_transactions(1)
        h.publish()
    sent = [tid for tid in h.states[sid].valid_ids]
    assert len(sent) > 150
    assert all(tid in h.core.cache for tid in sent)
    assert all(isinstance(h.core.transaction_data(tid), RequestTransactionDataSuccess)
               for tid in sent)
    # the transactions are shared, not copied, between those templates
    datas = {id(t.data) for tid in sent for t in h.core.cache[tid].txs}
    assert len(datas) == len({t.data for tid in sent for t in h.core.cache[tid].txs})
    # a block found on the oldest template of the tip is rebuilt and Core accepts it
    cb = build_coinbase(oldest, extranonce=b"old")
    sol = solve(oldest, h.states[sid].prev_hash, cb, time_now=int(1_700_000_000 + h.now))
    h.send(sid, sol)
    assert h.solutions[-1].template_id == oldest.template_id
    assert h.chain.submit_block(h.solutions[-1].block) is None


def test_rate_limit_disconnects_only_the_flooder():
    h = Harness(tx_data_rate=1, tx_data_burst=5)
    h.publish()
    flooder, calm = h.connect(), h.connect()
    for _ in range(6):
        h.send(flooder, RequestTransactionData(template_id=1))
    assert "rate limit" in h.closed[flooder]
    h.send(calm, RequestTransactionData(template_id=1))
    assert calm not in h.closed


def test_max_clients():
    from sv2ffi.errors import ProtocolViolationError
    h = Harness(max_clients=2)
    h.publish()
    h.connect()
    setting_up = h.core.open_session(h.now)  # not yet working: it does not count
    h.connect()
    with pytest.raises(ProtocolViolationError):
        h.core.open_session(h.now)
    # the one still setting up is refused when it would become the third working client
    h.send(setting_up, setup_msg())
    h.send(setting_up, CoinbaseOutputConstraints(coinbase_output_max_additional_size=1,
                                                 coinbase_output_max_additional_sigops=1))
    assert "too many clients" in h.closed[setting_up]


def test_late_template_for_an_old_tip_does_not_switch_back():
    """A slow getblocktemplate can return after ZMQ announced the next block."""
    h = Harness()
    sid = h.connect()
    h.publish()
    stale = h.chain.block_template()
    h.chain.generate(1)
    h.apply(h.core.new_tip(tip_of(h.chain), h.now))
    h.take(sid)
    assert not h.core.is_new_tip(stale)
    assert not h.apply(h.core.new_template(stale, h.now))
    assert h.core.tip.prev_hash == h.chain.tip_hash and h.take(sid) == []


# ---- the SRI invariant over random event sequences -----------------------------------------

from hypothesis import HealthCheck, settings, strategies as hst  # noqa: E402
from hypothesis.stateful import (RuleBasedStateMachine, initialize, invariant,  # noqa: E402
                                 precondition, rule)


class SriConsumers(RuleBasedStateMachine):
    """Clients that follow SRI's rules exactly (``ClientState``: one future slot, new
    channels bootstrapped from the pair at any moment, other futures dropped on
    SetNewPrevHash) must never fail, whatever the TP is put through; and no template a
    client may still mine on is ever unknown to the TP."""

    @initialize()
    def start(self):
        self.h = Harness(fee_delta=1, template_interval=0.5, stale_grace=3,
                         constraints_rate=0.5, constraints_burst=2)
        self.h.chain.add_random_transactions(15)
        self.sids = []

    def _alive(self):
        return [s for s in self.sids if s in self.h.core.sessions]

    @rule(size=hst.sampled_from([0, 100, 5000]), sigops=hst.sampled_from([0, 400, 4000]))
    def connect(self, size, sigops):
        self.sids.append(self.h.connect(size=size, sigops=sigops))

    @precondition(lambda self: self._alive())
    @rule(data=hst.data(), size=hst.sampled_from([0, 100, 5000]))
    def reconfigure(self, data, size):
        sid = data.draw(hst.sampled_from(self._alive()))
        self.h.send(sid, CoinbaseOutputConstraints(coinbase_output_max_additional_size=size,
                                                   coinbase_output_max_additional_sigops=400))

    @rule(n=hst.integers(1, 6))
    def fee_update(self, n):
        self.h.chain.add_random_transactions(n, min_feerate=5, max_feerate=90)
        self.h.publish()

    @rule(dt=hst.sampled_from([0.1, 1.0, 4.0]))
    def tick(self, dt):
        self.h.tick(dt)

    @rule(fast=hst.booleans())
    def tip(self, fast):
        self.h.chain.generate(1)
        if fast:  # the ZMQ-like path: the tip before the template
            self.h.apply(self.h.core.new_tip(tip_of(self.h.chain), self.h.now))
        self.h.publish()

    @precondition(lambda self: self.h.chain.height > 102 and self.h.core.tip is not None)
    @rule()
    def late_old_notification(self):
        c = self.h.chain
        old = TipInfo(c.blocks[-2].hash, c.height, 0x207FFFFF, int(c.next_time()))
        assert not self.h.apply(self.h.core.new_tip(old, self.h.now))

    @precondition(lambda self: self._alive())
    @rule(data=hst.data())
    def disconnect(self, data):
        self.h.core.close_session(data.draw(hst.sampled_from(self._alive())))

    @precondition(lambda self: any(self.h.states[s].prev_hash for s in self._alive()))
    @rule(data=hst.data())
    def mine_any_job_of_the_tip(self, data):
        sid = data.draw(hst.sampled_from([s for s in self._alive() if self.h.states[s].prev_hash]))
        st = self.h.states[sid]
        tid = data.draw(hst.sampled_from(sorted(st.valid_ids)))
        nt = st.templates[tid]
        cb = build_coinbase(nt, extranonce=data.draw(hst.binary(min_size=1, max_size=8)))
        sol = solve(nt, st.prev_hash, cb, time_now=int(1_700_000_000 + self.h.now))
        n = len(self.h.solutions)
        self.h.send(sid, sol)
        assert len(self.h.solutions) == n + 1
        assert self.h.chain.submit_block(self.h.solutions[-1].block) is None
        self.h.publish()

    @invariant()
    def sri_can_follow(self):
        if not hasattr(self, "h"):
            return
        for sid in self._alive():
            st = self.h.states[sid]
            if st.prev_hash is not None:
                st.bootstrap_channel()  # raises TemplateIdNotFound if the pair differs
                for tid in st.valid_ids:  # nothing a client may mine on is forgotten
                    assert tid in self.h.core.cache
                    assert isinstance(self.h.core.transaction_data(tid),
                                      RequestTransactionDataSuccess)


SriConsumers.TestCase.settings = settings(max_examples=25, stateful_step_count=25, deadline=None,
                                          suppress_health_check=[HealthCheck.too_slow])
test_sri_consumers_never_fail = SriConsumers.TestCase


def test_a_late_or_out_of_order_tip_never_takes_the_clients_back():
    """bitcoind publishes ZMQ hashblock after its wallet processed the block, so an older
    block's notification can arrive after a newer one's."""
    h = Harness()
    sid = h.connect()
    h.publish()
    h.chain.generate(1)
    older = tip_of(h.chain)
    h.chain.generate(2)
    h.apply(h.core.new_tip(tip_of(h.chain), h.now))
    h.take(sid)
    assert not h.apply(h.core.new_tip(older, h.now))
    assert h.core.ignored_old_tips == 1 and h.core.tip.prev_hash == h.chain.tip_hash
    # a source that checked the node really reorganised to a lower block may say so
    eff = h.apply(h.core.new_tip(older, h.now, reorg=True))
    assert kinds(eff.sends and h.take(sid)) == [("NewTemplate", True), ("SetNewPrevHash", None)]


def test_nbits_the_clients_were_not_sent_cause_a_new_pair_and_blocks_keep_what_was_mined():
    """The fast tip path computes nBits itself; when the node's template disagrees (e.g. a
    testnet minimum-difficulty block), switch again with the node's values, and rebuild
    each block with the values its miner was sent."""
    h = Harness()
    sid = h.connect()
    h.take(sid)
    h.chain.generate(1)
    h.chain.add_random_transactions(5)
    wrong = TipInfo(h.chain.tip_hash, h.chain.height + 1, 0x2100FFFF, h.chain.next_time())
    h.apply(h.core.new_tip(wrong, h.now))
    first = h.take(sid)
    assert first[1].n_bits == 0x2100FFFF
    empty = h.core.cache[first[0].template_id]
    h.publish()
    again = h.take(sid)
    assert kinds(again) == [("NewTemplate", True), ("SetNewPrevHash", None)]
    assert again[1].n_bits == 0x207FFFFF and again[0].merkle_path
    assert h.core.tip.bits == 0x207FFFFF
    h.states[sid].bootstrap_channel()
    assert empty.bits == 0x2100FFFF  # what that template's miner was sent
    # the reswitched work mines a block Core accepts
    _mine_and_submit(h, sid)
    assert h.chain.submit_block(h.solutions[-1].block) is None


def test_a_coinbase_witness_without_a_commitment_is_removed_so_the_block_stays_valid():
    from sv2ffi.tp.template import BlockTemplate, ServedTemplate, Work
    h = Harness()
    c = h.chain
    tpl = BlockTemplate(c.network, c.height + 1, c.tip_hash, 0x20000000, c.next_bits(),
                        c.next_time(), btc.block_subsidy(c.height + 1, c.network), [],
                        segwit=False)
    st = ServedTemplate(1, Work.build(tpl, None), 0).activate(c.tip_hash, tpl.bits, tpl.time)
    assert not st.has_commitment
    nt = st.new_template(True)
    cb = build_coinbase(nt)
    cb.vin[0].witness = [bytes(32)]  # a client that always adds the reserved value
    cb.invalidate()
    sol = solve(nt, st.set_new_prev_hash(), cb, time_now=c.next_time())
    block = st.build_block(sol.version, sol.header_timestamp, sol.header_nonce, sol.coinbase_tx)
    assert not btc.Block.from_bytes(block).txs[0].has_witness
    assert c.submit_block(block) is None  # Bitcoin Core accepts it
    # and with the commitment but no witness from the client, the reserved value is added
    c.add_random_transactions(3)
    tpl = c.block_template()
    st = ServedTemplate(2, tpl.work(), 0).activate(tpl.prev_hash, tpl.bits, tpl.time)
    nt = st.new_template(True)
    cb = build_coinbase(nt)
    cb.vin[0].witness = []
    cb.invalidate()
    sol = solve(nt, st.set_new_prev_hash(), cb, time_now=c.next_time())
    block = st.build_block(sol.version, sol.header_timestamp, sol.header_nonce, sol.coinbase_tx)
    assert c.submit_block(block) is None


def test_a_tip_sent_before_its_header_is_corrected_when_the_header_disagrees():
    h = Harness()
    sid = h.connect()
    h.publish()
    h.take(sid)
    h.chain.generate(1)
    sent = TipInfo(h.chain.tip_hash, h.chain.height + 1, 0x207FFFFF, 1_000)  # too early
    h.apply(h.core.new_tip(sent, h.now))
    h.take(sid)
    real = TipInfo(h.chain.tip_hash, h.chain.height + 1, 0x207FFFFF, h.chain.next_time(),
                   h.chain.median_time_past() + 1)
    h.apply(h.core.correct_tip(real, h.now))
    msgs = h.take(sid)
    assert kinds(msgs) == [("NewTemplate", True), ("SetNewPrevHash", None)]
    assert msgs[1].header_timestamp >= real.min_time
    h.states[sid].bootstrap_channel()
    # nothing to correct: nothing sent
    assert not h.apply(h.core.correct_tip(real, h.now)).sends
    _mine_and_submit(h, sid)
    assert h.chain.submit_block(h.solutions[-1].block) is None


def test_the_interner_forgets_a_transaction_with_its_last_template():
    """TxInterner's entries are weak: one vanishes when no template holds its transaction,
    and a dying older object never removes the newer entry made for the same wtxid
    (e.g. its fee changed: a new TemplateTx under the same key)."""
    import gc

    from sv2ffi.tp.template import TemplateTx, TxInterner
    interner = TxInterner()
    old = interner.add(TemplateTx(b"\x01", b"t" * 32, b"w" * 32, 400, 4, 1000, ()))
    assert interner.find(b"w" * 32, 1000, 4, ()) is old and len(interner) == 1
    new = interner.add(TemplateTx(b"\x01", b"t" * 32, b"w" * 32, 400, 4, 2000, ()))
    del old
    gc.collect()
    assert len(interner) == 1 and interner.find(b"w" * 32, 2000, 4, ()) is new
    del new
    gc.collect()
    assert len(interner) == 0

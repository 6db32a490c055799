"""The sans-I/O TP core driven with plain message objects, a fake clock and the built-in
regtest chain as the template source (no sockets here; test_tp_network.py does those)."""

import pytest

from sv2ffi import bitcoin as btc
from sv2ffi.client import ClientState, build_coinbase, solve
from sv2ffi.codec import decode_payload
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


def test_first_templates_future_then_prev_hash_then_full():
    h = Harness()
    h.chain.add_random_transactions(20)
    sid = h.connect()
    h.take(sid)
    h.publish()
    msgs = h.take(sid)
    kinds = [(type(m).__name__, getattr(m, "future_template", None)) for m in msgs]
    assert kinds == [("NewTemplate", True), ("SetNewPrevHash", None), ("NewTemplate", True),
                     ("NewTemplate", False)]
    fut, snph, nxt, full = msgs
    assert snph.template_id == fut.template_id and snph.prev_hash == h.chain.tip_hash
    assert snph.n_bits == 0x207FFFFF and snph.target == btc.target_le(btc.bits_to_target(0x207FFFFF))
    assert btc.parse_bip34_height(fut.coinbase_prefix) == h.chain.height + 1
    assert btc.parse_bip34_height(nxt.coinbase_prefix) == h.chain.height + 2
    assert nxt.coinbase_tx_value_remaining == btc.block_subsidy(h.chain.height + 2, h.chain.network)
    assert nxt.coinbase_tx_locktime == h.chain.height + 1 and nxt.merkle_path == []
    assert full.merkle_path and full.coinbase_tx_value_remaining > fut.coinbase_tx_value_remaining
    ids = [m.template_id for m in msgs if isinstance(m, NewTemplate)]
    assert ids == sorted(ids) and len(set(ids)) == 3


def test_late_joiner_gets_current_template_and_held_future_in_increasing_ids():
    h = Harness()
    h.chain.add_random_transactions(10)
    h.publish()
    sid = h.connect()
    msgs = h.take(sid)[1:]  # after SetupConnection.Success
    ids = [m.template_id for m in msgs if isinstance(m, NewTemplate)]
    assert ids == sorted(ids) and len(ids) == 2
    snph = next(m for m in msgs if isinstance(m, SetNewPrevHash))
    st = h.states[sid]
    assert st.current.template_id == snph.template_id and st.current.merkle_path
    # SetNewPrevHash before the next height's future template: SRI-style clients drop
    # every other future template when a SetNewPrevHash activates one
    assert [type(m).__name__ for m in msgs] == ["NewTemplate", "SetNewPrevHash", "NewTemplate"]
    held = msgs[2]
    assert held.future_template and st.held_futures == {held.template_id}
    # the announced future was older than this client's current template, so it holds the
    # same work under a newer id; the next tip must reference exactly that id ...
    assert held.template_id > h.core.future.template_id
    h.chain.generate(1)
    h.apply(h.core.new_tip(TipInfo(h.chain.tip_hash, h.chain.height + 1, h.chain.next_bits(),
                                   h.chain.next_time()), h.now))
    msgs = h.take(sid)
    assert isinstance(msgs[0], SetNewPrevHash) and msgs[0].template_id == held.template_id
    # ... and the re-issued template is a real one: mined, it extends the chain
    _mine_and_submit(h, sid)
    assert h.solutions[-1].template_id == held.template_id
    assert h.chain.submit_block(h.solutions[-1].block) is None


def _mine_and_submit(h, sid):
    st = h.states[sid]
    cb = build_coinbase(st.current, extranonce=b"\x01\x02\x03\x04")
    sol = solve(st.current, st.prev_hash, cb, time_now=int(1_700_000_000 + h.now))
    assert sol is not None
    h.send(sid, sol)
    return sol


def test_eight_clients_each_get_set_new_prev_hash_for_every_block_referencing_held_future():
    h = Harness()
    h.chain.add_random_transactions(30)
    sids = [h.connect(size=100 * (i % 3), sigops=10) for i in range(8)]
    h.publish()
    for sid in sids:
        h.take(sid)
    for block in range(5):
        held = {sid: {i for i, t in h.states[sid].templates.items() if t.future_template
                      and i > (h.states[sid].prev_hash.template_id if h.states[sid].prev_hash else 0)}
                for sid in sids}
        # a block found elsewhere (or by one of the clients): the chain's tip moves
        if block % 2:
            n = len(h.solutions)
            _mine_and_submit(h, sids[block])
            assert len(h.solutions) == n + 1
            assert h.chain.submit_block(h.solutions[-1].block) is None
        else:
            h.chain.generate(1)
        tip = h.chain.tip.header
        h.apply(h.core.new_tip(TipInfo(h.chain.tip_hash, h.chain.height + 1,
                                             h.chain.next_bits(), h.chain.next_time()), h.now))
        for sid in sids:
            msgs = h.take(sid)
            assert isinstance(msgs[0], SetNewPrevHash), msgs[0]  # first thing after the tip
            assert msgs[0].template_id in held[sid]
            assert msgs[0].prev_hash == h.chain.tip_hash
            assert sum(isinstance(m, SetNewPrevHash) for m in msgs) == 1
        h.chain.add_random_transactions(5)
        h.publish()
        for sid in sids:
            h.take(sid)
        assert tip.time  # chain advanced
    assert h.chain.height == 101 + 5


def test_equal_constraints_share_templates_and_trimming_respects_each_client():
    h = Harness(block_max_weight=60_000)
    h.chain.add_random_transactions(80, sigops_every=4)
    small = [h.connect(size=100, sigops=10) for _ in range(2)]
    big = h.connect(size=8000, sigops=10)
    heavy_sigops = h.connect(size=100, sigops=19_800)
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
            for p in tpl.txs[by_txid[t.txid]].depends:
                assert tpl.txs[p].txid in kept
    assert len(current(big).txs) < len(a.txs)
    assert len(current(heavy_sigops).txs) < len(a.txs)
    assert current(big).value_remaining < a.value_remaining


def test_select_drops_lowest_fee_rate_with_descendants():
    txs = [TemplateTx(b"", bytes([i]) * 32, bytes([i]) * 32, 1000, 0, fee, deps)
           for i, (fee, deps) in enumerate([(5000, ()), (100, ()), (9000, (1,)), (4000, ())])]
    keep = select_transactions(txs, Constraints(0, 0), block_max_weight=2000 + 2000)
    # budget 2000 WU: tx1 has the lowest rate, its child tx2 goes with it; then tx3
    assert keep == [0, 3]


@pytest.mark.parametrize("size,sigops", [(70_000, 10), (999_000, 10), (100, 20_001)])
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


def test_second_constraints_resend_a_template_pair_with_higher_ids():
    h = Harness()
    h.chain.add_random_transactions(10)
    h.publish()
    sid = h.connect(size=100)
    first = h.take(sid)
    h.send(sid, CoinbaseOutputConstraints(coinbase_output_max_additional_size=200,
                                          coinbase_output_max_additional_sigops=1))
    again = h.take(sid)
    assert [type(m).__name__ for m in again][:2] == ["NewTemplate", "SetNewPrevHash"]
    assert min(m.template_id for m in again if isinstance(m, NewTemplate)) > \
        max(m.template_id for m in first if isinstance(m, NewTemplate))


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
    assert isinstance(msgs[0], SetNewPrevHash) and msgs[0].prev_hash == h.chain.tip_hash


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


def test_same_tip_templates_are_capped_oldest_dropped_as_stale():
    h = Harness(fee_delta=1, template_interval=0, max_templates_per_tip=4)
    sid = h.connect()
    h.chain.add_random_transactions(2)
    h.publish()
    ids = []
    for _ in range(8):
        h.chain.add_random_transactions(1)
        h.publish()
        ids.append(h.core.sessions[sid].current_id)
    same_tip = [t for t, st in h.core.cache.items() if st.prev_hash == h.chain.tip_hash]
    assert len(same_tip) <= 4 and ids[-1] in same_tip
    assert h.core.transaction_data(ids[0]).error_code == "stale-template-id"


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
    h.core.open_session(h.now)
    h.core.open_session(h.now)
    with pytest.raises(ProtocolViolationError):
        h.core.open_session(h.now)


def test_late_template_for_an_old_tip_does_not_switch_back():
    """A slow getblocktemplate can return after ZMQ announced the next block."""
    h = Harness()
    sid = h.connect()
    h.publish()
    stale = h.chain.block_template()
    h.chain.generate(1)
    h.apply(h.core.new_tip(TipInfo(h.chain.tip_hash, h.chain.height + 1, h.chain.next_bits(),
                                   h.chain.next_time()), h.now))
    h.take(sid)
    assert not h.core.is_new_tip(stale)
    assert not h.apply(h.core.new_template(stale, h.now))
    assert h.core.tip.prev_hash == h.chain.tip_hash and h.take(sid) == []

"""The bitcoind ``rpc`` source over real HTTP (python-bitcoinrpc) and real ZMQ, against the
built-in regtest chain's JSON-RPC endpoint: full SV2 flow, ZMQ fast tip switch, long-poll,
cookie auth, node restart, initial block download, submitblock retries."""

import asyncio
import inspect
import logging
import time

import pytest
from bitcoinrpc.authproxy import AuthServiceProxy

from sv2ffi import bitcoin as btc
from sv2ffi.client import TdpClient
from sv2ffi.errors import InvalidTemplateError, RpcError
from sv2ffi.messages import NewTemplate, RequestTransactionDataSuccess, SetNewPrevHash
from sv2ffi.tp.core import TpConfig
from sv2ffi.tp.regtest import RegtestChain
from sv2ffi.tp.regtest_rpc import RegtestRpcServer
from sv2ffi.tp.runner import BackgroundLoop, TpThread
from sv2ffi.tp.server import TpService
from sv2ffi.tp.sources.gbt import scanner_built
from sv2ffi.tp.sources import rpc as rpc_source
from sv2ffi.tp.sources.rpc import RpcSource, parse_gbt
from sv2ffi.tp.sources.rpc_stream import read_reply

T = 20
REGTEST = btc.NETWORKS["regtest"]


class Node:
    """The demo chain's JSON-RPC endpoint on its own loop thread, restartable on one port."""

    def __init__(self, tmp_path, zmq=False, **kw):
        self.bg = BackgroundLoop("node")
        self.chain = RegtestChain(seed=11)
        self.cookie = tmp_path / "regtest" / ".cookie"
        self.zmq = "tcp://127.0.0.1:*" if zmq else None
        self.kw = kw
        self.port = 0
        self.server = None
        self.start()

    def start(self, ibd=False):
        self.server = RegtestRpcServer(self.chain, port=self.port, cookie_file=self.cookie,
                                       zmq_endpoint=self.zmq, **self.kw)
        self.server.ibd = ibd
        self.bg.run(self.server.start())
        self.port = self.server.port
        if self.zmq:
            self.zmq = self.server.zmq_endpoint  # keep the chosen port across restarts

    def stop(self):
        self.bg.run(self.server.stop())

    def rpc(self):
        user, pw = self.cookie.read_text().split(":")
        return AuthServiceProxy(f"http://{user}:{pw}@127.0.0.1:{self.port}/", timeout=T)

    def do(self, fn, *args):
        return self.bg.call(fn, *args)

    def close(self):
        self.stop()
        self.bg.close()


def make_tp(node, tmp_path, poll_interval=0.2):
    src = RpcSource(node.server.url, network=REGTEST, cookie_file=node.cookie,
                    zmq_hashblock=node.zmq, retry_delay=0.05, max_retry_delay=0.2,
                    poll_interval=poll_interval)
    svc = TpService(src, datadir=tmp_path / "tp", config=TpConfig(stale_grace=1))
    return TpThread(svc).start(), src


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 120))


async def client(tp, **kw):
    return await TdpClient.connect("127.0.0.1", tp.port, authority_pubkey=tp.authority_pubkey,
                                   timeout=T, **kw)


async def empty_block_tip(node, c):
    """An empty block submitted to the node (its mempool stays): the client's
    SetNewPrevHash for it."""
    addr = btc.script_address(btc.P2WSH_OP_TRUE, REGTEST)
    assert node.rpc().submitblock(node.rpc().generateblock(addr, [], False)["hex"]) is None
    snph = await c.wait_for(SetNewPrevHash, T)
    assert snph.prev_hash == node.do(lambda: node.chain.tip_hash)
    return snph


def wait_until(pred, timeout=T):
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        time.sleep(0.02)


async def settled(src, tip_hash, timeout=T):
    """What a node's minutes between blocks give the source: the tip's header read (the
    check after a predicted tip) and its full template fetched.  Blocks mined back to
    back in a test would otherwise race those, and the next tip would take the header
    path because its parent's header is not known yet."""
    deadline = time.monotonic() + timeout
    while True:
        with src._chain_lock:
            known = any(h == tip_hash for h, _ in src._chain.values())
        if known and (src._kick is None or src._kick.done()):
            return
        if time.monotonic() > deadline:
            raise TimeoutError("the source did not settle on the new tip")
        await asyncio.sleep(0.01)


@pytest.mark.parametrize("zmq", [False, True], ids=["longpoll", "zmq"])
def test_full_flow_through_bitcoind_rpc(tmp_path, zmq):
    node = Node(tmp_path, zmq=zmq, longpoll_mempool_delay=0.1)
    node.do(node.chain.add_random_transactions, 25)
    tp, src = make_tp(node, tmp_path)
    try:
        async def main():
            c = await client(tp)
            await c.wait_for(SetNewPrevHash, T)
            while not c.state.current.merkle_path:
                await c.recv(T)
            data = await c.request_transaction_data(c.state.current.template_id, T)
            assert isinstance(data, RequestTransactionDataSuccess)
            assert len(data.transaction_list) == 25 and data.excess_data == bytes(32)
            # our commitment equals bitcoind's default_witness_commitment for the same set
            gbt = node.rpc().getblocktemplate({"rules": ["segwit"]})
            commit = bytes.fromhex(gbt["default_witness_commitment"])
            outs = c.state.current.coinbase_tx_outputs
            assert commit in outs
            h0 = node.do(lambda: node.chain.height)
            await c.submit(c.mine_current())
            snph = await c.wait_for(SetNewPrevHash, T)
            assert node.do(lambda: node.chain.height) == h0 + 1
            assert snph.prev_hash == node.do(lambda: node.chain.tip_hash)
            # a block from elsewhere (generatetoaddress over RPC) is a new tip as well
            addr = btc.script_address(btc.P2WSH_OP_TRUE, REGTEST)
            node.rpc().generatetoaddress(1, addr)
            snph2 = await c.wait_for(SetNewPrevHash, T)
            assert snph2.prev_hash == node.do(lambda: node.chain.tip_hash)
            # fee-paying transactions arrive: a fee-driven update follows (delta 1000 sat)
            node.rpc().generate_transactions(10, 20, 40)
            nt = await c.wait_for(NewTemplate, T, lambda m: not m.future_template)
            assert len(nt.merkle_path) >= 3
            # every reply was read by the C scanner where it is built (the json road is
            # its reference: tests/test_gbt_scan.py)
            reads = src.gbt_reads
            assert (reads["scanned"] > 0 and reads["decoded"] == 0) if scanner_built() else \
                (reads["scanned"] == 0 and reads["decoded"] > 0)
            await c.close()

        run(main())
    finally:
        tp.stop()
        node.close()


def test_zmq_tip_change_sends_the_prebuilt_empty_template_and_its_set_new_prev_hash(tmp_path):
    node = Node(tmp_path, zmq=True)
    # no periodic getblocktemplate during the test: only ZMQ can announce the block
    tp, src = make_tp(node, tmp_path, poll_interval=600)
    try:
        async def main():
            c = await client(tp)
            await c.wait_for(SetNewPrevHash, T)
            node.bg.run(node.server.wait_for_subscriber(T))
            node.do(node.chain.generate, 1)
            fut = await c.wait_for(NewTemplate, T, lambda m: m.future_template)
            snph = await c.recv(T)
            assert isinstance(snph, SetNewPrevHash) and snph.template_id == fut.template_id
            assert snph.prev_hash == node.do(lambda: node.chain.tip_hash)
            assert btc.parse_bip34_height(fut.coinbase_prefix) == node.do(lambda: node.chain.height) + 1
            assert fut.merkle_path == []
            c.state.bootstrap_channel()
            await c.close()

        run(main())
        assert src.fast_tips >= 1
    finally:
        tp.stop()
        node.close()


def test_late_zmq_notification_of_an_older_block_does_not_switch_back(tmp_path):
    """bitcoind publishes hashblock after its wallet processed the block (746-1,119 ms
    late with a busy wallet), so an older block's notification can follow a newer one."""
    node = Node(tmp_path, zmq=True)
    tp, src = make_tp(node, tmp_path, poll_interval=600)
    try:
        async def main():
            c = await client(tp)
            await c.wait_for(SetNewPrevHash, T)
            node.bg.run(node.server.wait_for_subscriber(T))
            node.do(node.chain.generate, 2)
            older = node.do(lambda: node.chain.blocks[-2].hash)
            newest = node.do(lambda: node.chain.tip_hash)
            while c.state.prev_hash.prev_hash != newest:
                await c.recv(T)
            node.do(node.server.publish_hashblock, older)
            with pytest.raises(asyncio.TimeoutError):
                await c.wait_for(SetNewPrevHash, 1.5)
            assert c.state.prev_hash.prev_hash == newest
            await c.close()

        run(main())
        assert tp.service.core.ignored_old_tips >= 1
    finally:
        tp.stop()
        node.close()


def test_a_slow_getblocktemplate_for_an_older_block_is_ignored_on_the_longpoll_path(tmp_path):
    node = Node(tmp_path, longpoll_mempool_delay=0.05)
    tp, src = make_tp(node, tmp_path)
    try:
        async def main():
            c = await client(tp)
            await c.wait_for(SetNewPrevHash, T)
            old = node.do(node.server._template_json)
            node.do(node.chain.generate, 1)
            newest = node.do(lambda: node.chain.tip_hash)
            while c.state.prev_hash.prev_hash != newest:
                await c.recv(T)
            node.server.queued_templates.append(old)
            node.do(node.chain.add_random_transactions, 3)  # wakes the long-poll
            with pytest.raises(asyncio.TimeoutError):
                await c.wait_for(SetNewPrevHash, 1.5)
            assert c.state.prev_hash.prev_hash == newest and not node.server.queued_templates
            await c.close()

        run(main())
    finally:
        tp.stop()
        node.close()


def test_a_node_on_another_chain_is_refused_and_nothing_is_served(tmp_path):
    node = Node(tmp_path)
    src = RpcSource(node.server.url, network=btc.NETWORKS["signet"], cookie_file=node.cookie,
                    retry_delay=0.05)
    svc = TpService(src, datadir=tmp_path / "tp")
    tp = TpThread(svc).start()
    try:
        wait_until(lambda: svc.fatal is not None)
        assert "runs chain 'regtest'" in str(svc.fatal) and "signet" in str(svc.fatal)
        assert svc.core.tip is None and not svc.core.cache
    finally:
        tp.stop()
        node.close()


def test_the_chain_is_learned_from_the_node_when_not_given(tmp_path):
    node = Node(tmp_path)
    src = RpcSource(node.server.url, cookie_file=node.cookie, retry_delay=0.05)
    with BackgroundLoop() as bg:
        assert bg.run(src.learn_network()) is REGTEST
    node.close()


def test_node_restart_with_a_new_cookie_is_survived(tmp_path):
    node = Node(tmp_path, zmq=True)
    tp, src = make_tp(node, tmp_path)
    try:
        async def main():
            c = await client(tp)
            await c.wait_for(SetNewPrevHash, T)
            old_cookie = node.cookie.read_text()
            node.stop()
            await asyncio.sleep(0.3)  # the source notices while the node is down
            node.start()
            assert node.cookie.read_text() != old_cookie
            node.do(node.chain.generate, 1)
            snph = await c.wait_for(SetNewPrevHash, T)
            assert snph.prev_hash == node.do(lambda: node.chain.tip_hash)
            await c.submit(c.mine_current())
            snph = await c.wait_for(SetNewPrevHash, T)
            assert snph.prev_hash == node.do(lambda: node.chain.tip_hash)
            await c.close()

        run(main())
        assert src.reconnects >= 1
    finally:
        tp.stop()
        node.close()


def test_waits_while_the_node_is_in_initial_block_download(tmp_path):
    node = Node(tmp_path)
    node.stop()
    node.start(ibd=True)
    tp, src = make_tp(node, tmp_path)
    try:
        wait_until(lambda: src.ibd_waits >= 1)
        assert tp.service.core.tip is None  # nothing served from a syncing node
        node.server.ibd = False
        wait_until(lambda: tp.service.core.tip is not None)

        async def main():
            c = await client(tp)
            snph = await c.wait_for(SetNewPrevHash, T)
            assert snph.prev_hash == node.do(lambda: node.chain.tip_hash)
            await c.close()

        run(main())
    finally:
        tp.stop()
        node.close()


def test_submitblock_is_retried_until_the_node_is_back(tmp_path):
    node = Node(tmp_path)
    tp, src = make_tp(node, tmp_path)
    src.submit_attempts = 100_000  # never give up within the test, however slow the machine
    try:
        wait_until(lambda: src.ready is not None and src.ready.is_set())
        blk = node.do(lambda: node.chain.mine_template(node.chain.block_template()))
        node.stop()
        result = asyncio.run_coroutine_threadsafe(
            src.submit_block(blk.serialize()), tp.loop)
        time.sleep(0.3)
        assert not result.done()
        node.start()
        assert result.result(T) is None
        assert node.do(lambda: node.chain.tip_hash) == blk.hash
        # a second submission is a duplicate, which counts as accepted
        again = asyncio.run_coroutine_threadsafe(src.submit_block(blk.serialize()), tp.loop)
        assert again.result(T) is None
    finally:
        tp.stop()
        node.close()


def test_wrong_credentials_are_reported_and_retried(tmp_path):
    node = Node(tmp_path)
    src = RpcSource(node.server.url, network=REGTEST, user="__cookie__", password="wrong",
                    retry_delay=0.05, max_retry_delay=0.1)
    svc = TpService(src, datadir=tmp_path / "tp")
    tp = TpThread(svc).start()
    try:
        wait_until(lambda: src.reconnects >= 2)
        assert svc.core.tip is None
        with pytest.raises(RpcError, match="401"):
            src._running = True
            src.call_sync("getblockchaininfo")
    finally:
        tp.stop()
        node.close()


def test_bitcoind_subset_over_http(tmp_path):
    node = Node(tmp_path)
    try:
        rpc = node.rpc()
        info = rpc.getblockchaininfo()
        assert info["chain"] == "regtest" and info["blocks"] == 101
        best = rpc.getbestblockhash()
        hdr = node.rpc().getblockheader(best)
        assert hdr["height"] == 101 and hdr["bits"] == "207fffff"
        assert node.rpc().getblockhash(101) == best
        from bitcoinrpc.authproxy import JSONRPCException
        with pytest.raises(JSONRPCException, match="segwit"):
            node.rpc().getblocktemplate({})
        with pytest.raises(JSONRPCException):
            node.rpc().getblockhash(10_000)
        with pytest.raises(JSONRPCException):
            node.rpc().nosuchmethod()
        with pytest.raises(JSONRPCException, match="Block decode failed"):
            node.rpc().submitblock("00")
        gbt = node.rpc().getblocktemplate({"rules": ["segwit"]})
        tpl = parse_gbt(gbt, REGTEST)
        assert tpl.height == 102 and tpl.bits == 0x207FFFFF and tpl.prev_hash == btc.hash_from_hex(best)
    finally:
        node.close()


def test_malformed_getblocktemplate_results_are_typed_errors():
    with pytest.raises(InvalidTemplateError):
        parse_gbt({"height": 1}, REGTEST)
    good = {"transactions": [], "height": 200, "previousblockhash": "00" * 32, "version": 1,
            "bits": "207fffff", "curtime": 1, "coinbasevalue": 1}
    with pytest.raises(InvalidTemplateError, match="subsidy"):
        parse_gbt(good, REGTEST)
    bad = dict(good, coinbasevalue=10**10, transactions=[
        {"data": "00", "txid": "11" * 32, "fee": 1, "weight": 4, "depends": [1]}])
    with pytest.raises(InvalidTemplateError, match="depends"):
        parse_gbt(bad, REGTEST)


async def predicted_ahead(src, tip_hash, timeout=T):
    """Until the source has worked out the next block's tip for ``tip_hash`` (right after
    the header it reads once a tip is out)."""
    deadline = time.monotonic() + timeout
    while not (src._prediction and src._prediction[0] == tip_hash):
        if time.monotonic() > deadline:
            raise TimeoutError("no prediction for the new tip")
        await asyncio.sleep(0.01)


def test_waitfornewblock_brings_tips_without_zmq_and_without_a_header_lookup(tmp_path,
                                                                            monkeypatch):
    """Core's waitfornewblock returns as the block connects (ZMQ waits for the wallet):
    with our chain's last blocks known, the tip goes out before the header is read, from
    the protocol callback that read the reply's last byte (``RpcStream.on_reply``), not a
    loop iteration later when the watch's task resumes.  On that path the reply is read
    by ``read_tip_reply`` (the built-in endpoint writes bitcoind's form) and the tip comes
    from the prediction worked out after the last block, not from a walk of the chain."""
    node = Node(tmp_path, zmq=True)
    node.server.zmq_delay = 0.3  # as bitcoind with a busy wallet, only later
    tp, src = make_tp(node, tmp_path, poll_interval=600)
    announced = []  # for each predicted tip: whether it left from the read callback
    slow = []  # what took the slow roads on the way: the json module, the chain's walk
    monkeypatch.setattr(rpc_source, "read_reply", lambda method, *a: slow.append(method)
                        or read_reply(method, *a))
    try:
        async def main():
            c = await client(tp)
            first = await c.wait_for(SetNewPrevHash, T)
            await settled(src, first.prev_hash)
            await predicted_ahead(src, first.prev_hash)
            real = src._announce_predicted
            walk = src._predicted_tip
            src._predicted_tip = lambda *a: slow.append("walk") or walk(*a)

            def announce(block_hash, height):
                sent = real(block_hash, height)
                if sent:
                    announced.append(any(f.function == "buffer_updated"
                                         for f in inspect.stack(0)))
                return sent
            src._announce_predicted = announce
            for _ in range(3):
                node.do(node.chain.generate, 1)
                fut = await c.wait_for(NewTemplate, T, lambda m: m.future_template)
                snph = await c.recv(T)
                assert snph.template_id == fut.template_id
                assert snph.prev_hash == node.do(lambda: node.chain.tip_hash)
                assert snph.header_timestamp > node.do(node.chain.median_time_past)
                await settled(src, snph.prev_hash)
                await predicted_ahead(src, snph.prev_hash)
            await c.close()

        run(main())
        # every block after the first found its parent's header known (settled): all
        # three went out predicted, none needed a header lookup first
        assert src.tip_signals["predicted"] == 3, src.tip_signals
        assert src.tip_signals["corrected"] == 0
        assert announced == [True] * 3, announced
        assert "waitfornewblock" not in slow and "walk" not in slow, slow
    finally:
        tp.stop()
        node.close()


def test_the_full_template_follows_a_tip_without_waiting_for_zmq(tmp_path, caplog):
    """bitcoind publishes hashblock after its wallet has processed the block (746-1,119 ms
    with 500 wallet transactions confirmed, issue 10's measurement on Core): the tip's
    full template is fetched as soon as the tip goes out, not at the ZMQ message (held
    back a minute here) or the next poll (ten minutes).  The TP logs that template with
    the node's getblocktemplate time and its own, which issue 10 budgets."""
    caplog.set_level(logging.INFO, logger="sv2ffi.tp.rpc")
    node = Node(tmp_path, zmq=True)
    tp, src = make_tp(node, tmp_path, poll_interval=600)
    calls, sends = [], []
    real_call = src.call_sync
    src.call_sync = lambda method, *a, **k: calls.append(method) or real_call(method, *a, **k)
    try:
        async def main():
            c = await client(tp)
            await c.wait_for(SetNewPrevHash, T)
            node.server.zmq_delay = 60.0
            node.do(node.chain.add_random_transactions, 5)
            calls.clear()
            real_send = src._gbt_stream.send_now
            before = src.sink.core.tip.prev_hash  # the clients' tip when the request left

            def send_now(*a):
                sends.append((real_send(*a), src.sink.core.tip.prev_hash == before))
                return sends[-1][0]
            src._gbt_stream.send_now = send_now

            def empty_block():  # found on the empty work: the mempool stays for the next
                tpl = node.chain.block_template()
                tpl.txs, tpl.coinbase_value = [], tpl.subsidy
                assert node.chain.submit_block(node.chain.mine_template(tpl).serialize()) is None
            node.do(empty_block)
            snph = await c.wait_for(SetNewPrevHash, T)
            assert snph.prev_hash == node.do(lambda: node.chain.tip_hash)
            full = await c.wait_for(NewTemplate, T, lambda m: not m.future_template)
            assert full.merkle_path  # the transactions, well before hashblock or a poll
            assert c.state.current.template_id == full.template_id
            # straight to getblocktemplate (no getmempoolinfo round trip first), written
            # in the callback that sends the tip, right after the tip's pass (the tip's
            # own send first: the request's write cost it 0.15-0.2 ms at one client) and
            # before the pass's bookkeeping, on the tips' own connection (kept open since
            # the first template); the next poll refreshes whatever the mempool says
            assert sends == [(True, False)], sends
            assert "getmempoolinfo" not in calls and "getblocktemplate" not in calls, calls
            assert src._mempool_mark is None
            await c.close()

        run(main())
        assert src.tip_signals["zmq"] == 0, src.tip_signals
        tip = btc.hash_hex(node.do(lambda: node.chain.tip_hash))
        said = [r.getMessage() for r in caplog.records if f"full template on block {tip}" in
                r.getMessage()]
        assert len(said) == 1 and "5 transactions): the node's getblocktemplate" in said[0] \
            and "ms to the clients (" in said[0] and "asked " in said[0], said
    finally:
        tp.stop()
        node.close()


def test_predictions_only_where_the_rules_make_them_certain():
    src = RpcSource("http://127.0.0.1:1/", network=btc.NETWORKS["main"], user="u", password="p")
    tip = b"\x11" * 32
    src._tip, src._tip_height = tip, 100_799
    for h in range(100_789, 100_800):
        src._remember(h, tip if h == 100_799 else bytes([h % 256]) * 32, 1_700_000_000 + h * 7,
                      0x1703E8B3, None)
    got = src._predicted_tip(b"\x22" * 32, 100_800)
    # heights 100,800 and 100,801: no retarget boundary (100,800 = 50 * 2016 is one!)
    assert got is None
    src._tip_height = 100_798
    src._chain = {}
    for h in range(100_788, 100_799):
        src._remember(h, tip if h == 100_798 else bytes([h % 256]) * 32,
                      1_700_000_000 + (h % 11) * 60, 0x1703E8B3, None)
    got = src._predicted_tip(b"\x22" * 32, 100_799)
    assert got is None  # its child (100,800) is at a retarget boundary
    src._tip_height = 100_700
    src._chain = {}
    times = [1_700_000_000 + t for t in (50, 10, 90, 30, 70, 20, 60, 40, 80, 0)]
    for k, h in enumerate(range(100_691, 100_701)):
        src._remember(h, tip if h == 100_700 else bytes([k]) * 32, times[k], 0x1703E8B3, None)
    got = src._predicted_tip(b"\x22" * 32, 100_701)
    assert got.bits == 0x1703E8B3 and got.height == 100_702
    # the block's median time past is at most the sixth smallest of the ten below it
    assert got.time >= sorted(times)[5] + 1
    assert src._predicted_tip(b"\x22" * 32, 100_702) is None  # not above our tip
    # worked out ahead, the same values, kept for our tip only
    src._prepare_prediction()
    assert src._prediction == (tip, 100_701, 0x1703E8B3, sorted(times)[5])
    src._tip_height = 100_701  # the tip moved on, its header not read yet
    src._prepare_prediction()
    assert src._prediction is None
    test = RpcSource("http://127.0.0.1:1/", network=btc.NETWORKS["test"], user="u", password="p")
    test._tip, test._tip_height, test._chain = src._tip, src._tip_height, dict(src._chain)
    assert test._predicted_tip(b"\x22" * 32, 100_701) is None  # min-difficulty rule


def test_our_own_accepted_block_gives_the_next_tip_without_asking_the_node():
    chain = RegtestChain(seed=21)
    src = RpcSource("http://127.0.0.1:1/", network=REGTEST, user="u", password="p")
    for height in range(chain.height - 10, chain.height + 1):
        blk = chain.blocks[height]
        src._remember(height, blk.hash, blk.header.time, blk.header.bits, blk.header.prev_hash)
    src._tip, src._tip_height = chain.tip_hash, chain.height
    blk = chain.mine_template(chain.block_template())
    assert chain.submit_block(blk.serialize()) is None  # the node accepted it
    tip = src._own_block_tip(blk.serialize())  # no call to the node (there is none)
    assert tip.prev_hash == chain.tip_hash and tip.height == chain.height + 1
    assert tip.bits == chain.next_bits() and tip.min_time == chain.median_time_past() + 1
    assert tip.time >= tip.min_time
    # not the block above our tip: the header path decides
    assert src._own_block_tip(chain.blocks[-2].serialize()) is None


def test_a_quiet_mempool_costs_a_small_call_per_poll_not_a_template(tmp_path):
    node = Node(tmp_path, zmq=True)
    node.do(node.chain.add_random_transactions, 40)
    tp, src = make_tp(node, tmp_path, poll_interval=0.1)
    try:
        async def main():
            c = await client(tp)
            await c.wait_for(SetNewPrevHash, T)
            await asyncio.sleep(1.0)
            assert src.skipped_polls >= 3
            node.do(lambda: node.chain.add_random_transactions(20, min_feerate=200,
                                                               max_feerate=300))  # fees rise
            await c.wait_for(NewTemplate, T, lambda m: not m.future_template and
                             len(m.merkle_path) >= 6)
            await c.close()

        run(main())
    finally:
        tp.stop()
        node.close()


def test_replies_are_not_formatted_for_a_debug_line_nobody_reads(monkeypatch):
    """python-bitcoinrpc formats every reply, the whole result through json.dumps, for a
    debug log line before the logger decides to keep it (19 ms for a 3,000-transaction
    getblocktemplate); the source's proxy reads replies without that, with the library's
    Decimal floats and its error for a reply that is not JSON."""
    import decimal

    import bitcoinrpc.authproxy as authproxy

    from test_rpc_stream import http_server, reply

    big = {"transactions": [{"data": "00" * 200, "fee": 1000} for _ in range(500)],
           "feerate": 0.00001}
    answers = iter([reply({"result": big, "error": None, "id": 1}),
                    b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/html\r\n"
                    b"Content-Length: 5\r\n\r\noops!"])
    sizes = []  # what json.dumps makes from here on (the library's module is the stdlib's)
    real_dumps = authproxy.json.dumps
    monkeypatch.setattr(authproxy.json, "dumps",
                        lambda *a, **k: sizes.append(len(out := real_dumps(*a, **k))) or out)
    bg = BackgroundLoop("http")
    server, port, _seen = bg.run(http_server(lambda req, n: next(answers)))
    src = RpcSource(f"http://127.0.0.1:{port}/", network=REGTEST, user="u", password="p")
    src._running = True
    try:
        got = src.call_sync("getblocktemplate")
        assert got["transactions"] == big["transactions"]
        assert got["feerate"] == decimal.Decimal("0.00001")
        assert max(sizes) < 1000, sizes  # the request only, never the 200 kB reply
        with pytest.raises(RpcError, match="non-JSON HTTP response with '500") as e:
            src.call_sync("getblocktemplate")
        assert e.value.code == -342
    finally:
        src._running = False
        bg.call(server.close)
        bg.close()


def test_a_tip_template_the_scanner_declines_is_decoded_by_json_off_the_loop(tmp_path,
                                                                             monkeypatch):
    """The new tip's getblocktemplate reply is scanned in C on the event loop; a reply
    the scanner declines (here: every one, as if bitcoind wrote an unusual shape) goes to
    the json module on a pool thread, and the clients get the same full template."""
    from sv2ffi.tp.sources import rpc as rpc_mod
    monkeypatch.setattr(rpc_mod, "scan_reply", lambda raw, interner=None, ahead=None: None)
    node = Node(tmp_path, zmq=True)
    node.do(node.chain.add_random_transactions, 12)
    tp, src = make_tp(node, tmp_path, poll_interval=30)  # the kick, not a poll, fetches it
    on_a_loop = []
    real_read = rpc_mod.read_reply

    def read_reply(method, code, raw):
        if method == "getblocktemplate":  # (a waitfornewblock reply is read on the loop)
            try:
                asyncio.get_running_loop()
                on_a_loop.append(True)
            except RuntimeError:  # a pool thread: no event loop runs there
                on_a_loop.append(False)
        return real_read(method, code, raw)
    monkeypatch.setattr(rpc_mod, "read_reply", read_reply)
    try:
        async def main():
            c = await client(tp)
            await c.wait_for(SetNewPrevHash, T)
            await empty_block_tip(node, c)  # the next template still carries the 12
            nt = await c.wait_for(NewTemplate, T, lambda m: not m.future_template)
            assert len(nt.merkle_path) == 4  # 13 leaves with the coinbase
            await c.close()

        run(main())
        assert src.gbt_reads["decoded"] > 0 and src.gbt_reads["scanned"] == 0
        assert on_a_loop and not any(on_a_loop)  # never on the TP's event loop
    finally:
        tp.stop()
        node.close()


def test_a_tips_long_template_is_read_ahead_as_it_arrives_and_reads_as_the_nodes(tmp_path):
    """A new tip's getblocktemplate reply of READ_AHEAD_MIN bytes or more has its
    transactions read while the rest of it arrives (``gbt.read_ahead``, in the reply's
    read callback), and the clients' full template is the node's all the same: its
    transactions, in its order (RequestTransactionData)."""
    from sv2ffi.tp.sources.gbt import scanner_built
    node = Node(tmp_path, zmq=True)

    def fill(n):
        made = 0
        while made < n:
            made += node.chain.add_random_transactions(n - made)
    node.do(fill, 700)  # about 0.36 MB of reply
    tp, src = make_tp(node, tmp_path, poll_interval=30)  # the kick, not a poll, fetches it
    try:
        async def main():
            c = await client(tp)
            await c.wait_for(SetNewPrevHash, T)
            snph = await empty_block_tip(node, c)  # its template still carries the 700
            nt = await c.wait_for(NewTemplate, T, lambda m: not m.future_template
                                  and m.template_id > snph.template_id)
            data = await c.request_transaction_data(nt.template_id, T)
            want = node.do(lambda: node.chain.block_template())
            assert list(data.transaction_list) == [t.data for t in want.txs]
            assert len(want.txs) == 700
            await c.close()

        run(main())
        if scanner_built():
            assert src.gbt_reads["read ahead"] > 0 and src.gbt_reads["decoded"] == 0
    finally:
        tp.stop()
        node.close()

"""``--source rpc`` against a real Bitcoin Core ``bitcoind`` (regtest, JSON-RPC + ZMQ).

Runs when ``SV2FFI_BITCOIND`` (else ``bitcoind`` on PATH) is set; skipped with the reason
otherwise (tests/core_node.py).  What the built-in chain's endpoint cannot prove: a
wallet-funded mempool of 500+ transactions in the templates exactly as Core orders them,
a new tip's 0.4 MB reply read ahead as Core writes it (``gbt.read_ahead``), Core's
waitfornewblock reply in the form the tip path reads with one match,
blocks mined through SV2 becoming Core's tip, a block found on a template several fee
updates old accepted by Core, a node restart with a new cookie, a chain mismatch refused.
"""

import asyncio
import base64
import http.client
import json
import subprocess

import pytest

from core_node import BITCOIN_CLI, BITCOIND, NO_BITCOIND, RealNode, free_port
from sv2ffi import bitcoin as btc
from sv2ffi.client import TdpClient, build_coinbase, solve
from sv2ffi.messages import NewTemplate, RequestTransactionDataSuccess, SetNewPrevHash
from sv2ffi.tp.core import TpConfig
from sv2ffi.tp.runner import TpThread
from sv2ffi.tp.server import TpService
from sv2ffi.tp.sources.gbt import ScannedGbt, parse_gbt, scanner_built
from sv2ffi.tp.sources.rpc import RpcSource
from sv2ffi.tp.sources.rpc_stream import read_reply, read_tip_reply
from test_client_cli import SV2FFI, Proc

T = 120
REGTEST = btc.NETWORKS["regtest"]
pytestmark = pytest.mark.skipif(not (BITCOIND and BITCOIN_CLI), reason=NO_BITCOIND)


@pytest.fixture(scope="module")
def node():
    n = RealNode(BITCOIND, zmq=True).start()
    n.fund_wallet()
    yield n
    n.close()


def make_tp(node, tmp_path, **cfg):
    src = RpcSource(node.url, network=REGTEST, cookie_file=node.cookie, zmq_hashblock=node.zmq,
                    retry_delay=0.1, max_retry_delay=1.0, poll_interval=0.5)
    svc = TpService(src, datadir=tmp_path / "tp", config=TpConfig(**cfg))
    return TpThread(svc).start(), src


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 600))


async def client(tp, **kw):
    return await TdpClient.connect("127.0.0.1", tp.port, authority_pubkey=tp.authority_pubkey,
                                   timeout=T, **kw)


async def full_template(c, n_txs):
    """Until the client works on a template of ``n_txs`` transactions (by its merkle path:
    ceil(log2(n_txs + 1)) siblings)."""
    while not (c.state.current and len(c.state.current.merkle_path) == n_txs.bit_length()):
        await c.recv(T)


def test_five_hundred_wallet_transactions_in_core_order_and_a_block_core_accepts(node, tmp_path):
    size = node.fill_mempool(520)
    assert size >= 500
    tp, src = make_tp(node, tmp_path)
    try:
        async def main():
            c = await client(tp)
            snph = await c.wait_for(SetNewPrevHash, T)
            assert snph.prev_hash == node.tip
            await full_template(c, size)
            # an empty block: the new tip's template still carries them all, and Core's
            # reply for it (about 0.4 MB) has its transactions read as it arrives
            node.rpc("generateblock", node.addr, [])
            snph = await c.wait_for(SetNewPrevHash, T)
            assert snph.prev_hash == node.tip
            await full_template(c, size)
            data = await c.request_transaction_data(c.state.current.template_id, T)
            assert isinstance(data, RequestTransactionDataSuccess)
            gbt = node.rpc("getblocktemplate", {"rules": ["segwit"]})
            assert [bytes.fromhex(t["data"]) for t in gbt["transactions"]] == \
                list(data.transaction_list)
            if scanner_built():
                # Core's own reply bytes are read by the C scanner (sv2ffi/native/
                # gbtscan.c), never left to json, and read as json reads them
                assert src.gbt_reads["decoded"] == 0 and src.gbt_reads["scanned"] > 0
                assert src.gbt_reads["read ahead"] > 0
                scanned = src.call_sync("getblocktemplate", {"rules": ["segwit"]})
                assert isinstance(scanned, ScannedGbt)
                a, b = parse_gbt(gbt, src.network), parse_gbt(scanned, src.network)
                assert [(t.txid, t.wtxid, t.fee, t.weight, t.sigops, t.parents, t.data)
                        for t in a.txs] == \
                    [(t.txid, t.wtxid, t.fee, t.weight, t.sigops, t.parents, t.data)
                     for t in b.txs]
                assert a.work(None).merkle_path == b.work(None).merkle_path
                assert a.work(None).outputs[-1].script_pubkey == \
                    bytes.fromhex(gbt["default_witness_commitment"]) == \
                    b.work(None).outputs[-1].script_pubkey
            assert len(data.transaction_list) == size and data.excess_data == bytes(32)
            await c.submit(c.mine_current())
            snph = await c.wait_for(SetNewPrevHash, T)
            assert snph.prev_hash == node.tip
            assert node.rpc("getblock", node.rpc("getbestblockhash"))["nTx"] == size + 1
            await c.close()

        run(main())
    finally:
        tp.stop()
    assert [r for _, _, r in tp.service.solutions] == [None]


def test_a_block_on_a_template_from_several_fee_updates_ago_is_accepted(node, tmp_path):
    """SRI accepts shares on every job of the tip until the next SetNewPrevHash; the TP
    must still know the oldest of them."""
    node.fill_mempool(20)
    tp, src = make_tp(node, tmp_path, fee_delta=1, template_interval=0.2)
    try:
        async def main():
            c = await client(tp)
            await c.wait_for(SetNewPrevHash, T)
            await full_template(c, 20)
            oldest, prev = c.state.current, c.state.prev_hash
            for _ in range(4):
                node.fill_mempool(5, fee_sat=5000)
                await c.wait_for(NewTemplate, T, lambda m: not m.future_template)
            assert c.state.current.template_id > oldest.template_id + 3
            cb = build_coinbase(oldest, extranonce=b"oldest")
            await c.submit(solve(oldest, prev, cb))
            snph = await c.wait_for(SetNewPrevHash, T)
            assert snph.prev_hash == node.tip
            await c.close()

        run(main())
    finally:
        tp.stop()
    sol, _path, result = tp.service.solutions[-1]
    assert result is None and sol.block_hash == node.tip


def test_the_node_restarts_with_a_new_cookie_and_mining_goes_on(node, tmp_path):
    tp, src = make_tp(node, tmp_path)
    try:
        async def main():
            c = await client(tp)
            await c.wait_for(SetNewPrevHash, T)
            old_cookie = node.cookie.read_text()
            node.restart()
            assert node.cookie.read_text() != old_cookie
            node.mine(1)
            while c.state.prev_hash.prev_hash != node.tip:
                await c.recv(T)
            await c.submit(c.mine_current())
            snph = await c.wait_for(SetNewPrevHash, T)
            assert snph.prev_hash == node.tip
            await c.close()

        run(main())
        assert src.reconnects >= 1
    finally:
        tp.stop()
    assert tp.service.solutions[-1][2] is None


def test_processes_tp_and_client_mine_blocks_that_become_cores_tip(node, tmp_path):
    (tmp_path / "tp").mkdir()
    port = free_port()
    node.fill_mempool(30)
    tp = Proc(["tp", "--source", "rpc", "--rpc-url", node.url, "--rpc-cookie-file",
               str(node.cookie), "--zmq-hashblock", node.zmq, "--sv2-port", str(port),
               "--datadir", str(tmp_path / "tp")])
    try:
        first = tp.expect(r"sv2ffi tp: (\w+), listening").group(1)
        assert first == "regtest"  # learned from the node: no --chain given
        key = tp.expect(r"authority public key: (\w+)").group(1)
        h0 = node.rpc("getblockcount")
        out = subprocess.run(SV2FFI + ["client", "--port", str(port), "--authority-pubkey", key,
                                       "--mine", "--blocks", "3", "--interval", "0",
                                       "--request-tx-data", "--timeout", "60"],
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stdout + out.stderr
    finally:
        err = tp.stop()
    assert node.rpc("getblockcount") == h0 + 3, err
    assert err.count("accepted by the rpc source") == 3, err


def test_a_chain_mismatch_is_refused_and_nothing_is_served(node, tmp_path):
    (tmp_path / "tp").mkdir()
    out = subprocess.run(SV2FFI + ["tp", "--source", "rpc", "--chain", "signet", "--rpc-url",
                                   node.url, "--rpc-cookie-file", str(node.cookie),
                                   "--sv2-port", "0", "--datadir", str(tmp_path / "tp")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stdout + out.stderr
    assert "runs chain 'regtest'" in out.stderr and "'signet'" in out.stderr


@pytest.mark.parametrize("version", ["1.0", "2.0"])
def test_cores_own_waitfornewblock_reply_is_read_by_the_fast_reader(node, version):
    """The tip path reads a waitfornewblock reply with one match of bitcoind's own form
    (``read_tip_reply``; anything else goes to the json module, slower).  Core's reply,
    for a JSON-RPC 1.0 request as the TP sends and for a 2.0 one, is that form, and reads
    as the json module reads it (src/rpc/request.cpp JSONRPCReplyObj, httprpc.cpp)."""
    user, pw = node.cookie.read_text().strip().split(":", 1)
    conn = http.client.HTTPConnection("127.0.0.1", node.rpc_port, timeout=T)
    body = json.dumps({"jsonrpc": version, "id": 7, "method": "waitfornewblock",
                       "params": [1]})  # waits 1 ms: the current tip
    conn.request("POST", "/", body, {
        "Authorization": "Basic " + base64.b64encode(f"{user}:{pw}".encode()).decode(),
        "Content-Type": "application/json"})
    resp = conn.getresponse()
    raw = resp.read()
    conn.close()
    assert resp.status == 200, raw
    r = read_reply("waitfornewblock", 200, raw)
    assert read_tip_reply(raw) == (btc.hash_from_hex(r["hash"]), r["height"]), raw
    assert read_tip_reply(raw) == (node.tip, node.rpc("getblockcount"))

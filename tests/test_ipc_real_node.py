"""``--source ipc`` against a real Bitcoin Core ``bitcoin-node`` (regtest, ``-ipcbind=unix``).

Runs when ``SV2FFI_BITCOIN_NODE`` (else ``bitcoin-node`` on PATH) is a bitcoin-node built
with IPC, v31 or later; ``bitcoin-cli`` comes from ``SV2FFI_BITCOIN_CLI``, PATH, or beside
the node.  Skipped, with the reason, otherwise: nothing here builds or ships Core.

Covers what the test double cannot prove: that sv2ffi's schema is Core's on the wire, and
Core's behaviour end to end: a wallet-funded mempool in the templates, blocks mined through
the TP becoming the node's tip, ten clients getting every tip, a node restart.
"""

import asyncio
import subprocess

import pytest

from sv2ffi import bitcoin as btc
from sv2ffi.client import TdpClient
from sv2ffi.errors import IpcError
from sv2ffi.messages import NewTemplate, RequestTransactionDataSuccess, SetNewPrevHash
from sv2ffi.tp.core import TpConfig
from sv2ffi.tp.runner import TpThread
from sv2ffi.tp.server import TpService
from sv2ffi.tp.sources.ipc import IpcSource
from core_node import BITCOIN_CLI, BITCOIN_NODE, NO_BITCOIN_NODE, RealNode
from test_client_cli import SV2FFI, Proc, free_port

T = 60
REGTEST = btc.NETWORKS["regtest"]


pytestmark = pytest.mark.skipif(not (BITCOIN_NODE and BITCOIN_CLI), reason=NO_BITCOIN_NODE)


@pytest.fixture
def node():
    n = RealNode(BITCOIN_NODE, ipc=True).start()
    n.cli("createwallet", "w")
    n.addr = n.cli("getnewaddress", wallet="w")
    n.cli("generatetoaddress", 120, n.addr)  # out of IBD, 20 mature coinbases
    yield n
    n.close()


def fund_mempool(node, count):
    """``count`` wallet transactions (some spending unconfirmed change: parents and
    children)."""
    for _ in range(count):
        node.cli("sendtoaddress", node.cli("getnewaddress", wallet="w"), "0.01", wallet="w")
    return node.cli("getmempoolinfo")["size"]


def make_tp(node, tmp_path, interval=1.0):
    src = IpcSource(node.socket, network=REGTEST, template_interval=interval, retry_delay=0.1,
                    max_retry_delay=1.0)
    svc = TpService(src, datadir=tmp_path / "tp", config=TpConfig(template_interval=interval))
    return TpThread(svc).start(), src


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 300))


async def client(tp, **kw):
    return await TdpClient.connect("127.0.0.1", tp.port, authority_pubkey=tp.authority_pubkey,
                                   timeout=T, **kw)


async def full_template(c):
    while not c.state.current.merkle_path:
        await c.recv(T)


def test_full_flow_with_a_wallet_funded_mempool(node, tmp_path):
    size = fund_mempool(node, 60)
    tp, src = make_tp(node, tmp_path)
    try:
        async def main():
            c = await client(tp)
            snph = await c.wait_for(SetNewPrevHash, T)
            assert snph.prev_hash == node.tip
            await full_template(c)
            data = await c.request_transaction_data(c.state.current.template_id, T)
            assert isinstance(data, RequestTransactionDataSuccess)
            assert len(data.transaction_list) == size and data.excess_data == bytes(32)
            # the same transactions as Core's getblocktemplate, in the same order
            gbt = node.cli("getblocktemplate", '{"rules": ["segwit"]}')
            assert [bytes.fromhex(t["data"]) for t in gbt["transactions"]] == \
                list(data.transaction_list)
            await c.submit(c.mine_current())
            snph = await c.wait_for(SetNewPrevHash, T)
            best = node.cli("getblock", node.cli("getbestblockhash"))
            assert snph.prev_hash == node.tip and best["nTx"] == size + 1
            assert node.cli("getmempoolinfo")["size"] == 0
            # new wallet transactions: a fee-driven update from waitNext
            fund_mempool(node, 10)
            await c.wait_for(NewTemplate, T, lambda m: not m.future_template)
            data = await c.request_transaction_data(c.state.current.template_id, T)
            assert data.transaction_list
            await c.submit(c.mine_current())
            snph = await c.wait_for(SetNewPrevHash, T)
            assert snph.prev_hash == node.tip
            assert node.cli("getblock", node.cli("getbestblockhash"))["nTx"] == \
                len(data.transaction_list) + 1
            # a block found elsewhere, then one mined on the empty future template
            node.cli("generatetoaddress", 1, node.addr)
            snph = await c.wait_for(SetNewPrevHash, T)
            assert snph.prev_hash == node.tip
            await c.submit(c.mine_current())
            snph = await c.wait_for(SetNewPrevHash, T)
            assert snph.prev_hash == node.tip
            await c.close()

        run(main())
    finally:
        tp.stop()
    accepted = [r for _, _, r in tp.service.solutions]
    assert accepted == [None, None, None], accepted


def test_ten_clients_all_get_every_tip(node, tmp_path):
    tp, src = make_tp(node, tmp_path)
    try:
        async def main():
            clients = [await client(tp) for _ in range(10)]
            for c in clients:
                await c.wait_for(SetNewPrevHash, T)
            mined = []
            seen = [[] for _ in clients]

            async def follow(i, c, n):
                while len(seen[i]) < n:
                    m = await c.recv(T)
                    if isinstance(m, SetNewPrevHash):
                        seen[i].append(m.prev_hash)

            for k in range(5):
                node.cli("generatetoaddress", 1, node.addr)
                mined.append(node.tip)
                await asyncio.gather(*(follow(i, c, k + 1) for i, c in enumerate(clients)))
            assert all(s == mined for s in seen), (mined, seen)
            for c in clients:
                await c.close()

        run(main())
    finally:
        tp.stop()


def test_node_restart(node, tmp_path):
    fund_mempool(node, 5)
    tp, src = make_tp(node, tmp_path)
    try:
        async def main():
            c = await client(tp)
            await c.wait_for(SetNewPrevHash, T)
            node.restart(down=1.0)
            node.cli("generatetoaddress", 1, node.addr)
            snph = await c.wait_for(SetNewPrevHash, T)
            assert snph.prev_hash == node.tip
            await c.submit(c.mine_current())
            snph = await c.wait_for(SetNewPrevHash, T)
            assert snph.prev_hash == node.tip
            await c.close()

        run(main())
        assert src.reconnects >= 1
    finally:
        tp.stop()
    assert tp.service.solutions[-1][2] is None


def test_tp_process_on_the_default_socket_with_a_mining_client(node, tmp_path):
    """``--bitcoin-datadir`` + the default ``--ipcconnect unix``, as sv2-tp finds a node."""
    fund_mempool(node, 5)
    port = free_port()
    (tmp_path / "tp").mkdir()
    tp = Proc(["tp", "--source", "ipc", "--bitcoin-datadir", str(node.dir), "--sv2-port",
               str(port), "--datadir", str(tmp_path / "tp"), "--template-interval", "1"])
    try:
        key = tp.expect(r"authority public key: (\w+)").group(1)
        h0 = node.cli("getblockcount")
        out = subprocess.run(SV2FFI + ["client", "--port", str(port), "--authority-pubkey", key,
                                       "--mine", "--blocks", "3", "--interval", "0",
                                       "--request-tx-data", "--timeout", "60"],
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stdout + out.stderr
    finally:
        err = tp.stop()
    assert node.cli("getblockcount") == h0 + 3, err
    assert err.count("accepted by the ipc source") == 3, err


def test_every_call_the_source_makes_answers_on_this_node(node):
    """Each Mining / BlockTemplate method sv2ffi uses, called directly (submitBlock only
    where the node has it: None on v31 and master 31.99)."""
    async def main():
        import capnp
        from sv2ffi.tp.ipc_client import MiningConnection
        async with capnp.kj_loop():
            conn = await MiningConnection.open(node.socket)
            try:
                assert await conn.is_test_chain()
                tip = await conn.get_tip()
                assert tip[0] == node.tip
                tmpl = await conn.template_of(conn.create_new_block(
                    reserved_weight=8000, reserved_sigops=400, cooldown=False))
                block, fees, sigops, cb = await tmpl.contents("template")
                assert cb.lock_time == tip[1] and cb.sequence == 0xFFFFFFFE
                assert len(fees) == len(sigops) == len(btc.Block.from_bytes(block).txs) - 1
                valid, reason, debug = await conn.check_block(block, check_pow=False)
                assert isinstance(reason, str) and isinstance(debug, str)
                assert await tmpl.wait_next(1, 0.1) is None  # no new fees within 100 ms
                await tmpl.destroy()
                try:
                    got = await conn.submit_block(b"")
                except IpcError:  # a node that has submitBlock refuses an empty block
                    got = "refused"
                assert got in (None, "refused")
            finally:
                conn.close()

    run(main())

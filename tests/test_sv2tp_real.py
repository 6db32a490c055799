"""sv2ffi's client against sv2-tp, the C++ template provider pools run today, on a real
``bitcoin-node -ipcbind=unix``: what our side must agree with byte for byte.

Runs when ``SV2FFI_SV2TP`` and ``SV2FFI_BITCOIN_NODE`` point at binaries (tests/core_node.py);
skipped with the reason otherwise.  Covers the Noise handshake and sv2-tp's certificate
(checked against the authority key it prints), its templates as SRI-style clients consume
them (ClientState: the future template + SetNewPrevHash pair), RequestTransactionData, and a
block mined through it that Core accepts as its tip.
"""

import asyncio

import pytest

from core_node import (BITCOIN_CLI, BITCOIN_NODE, NO_SV2TP, SV2TP, RealNode, Sv2Tp,
                       free_port)
from sv2ffi.client import TdpClient
from sv2ffi.messages import NewTemplate, RequestTransactionDataSuccess, SetNewPrevHash

T = 120
pytestmark = pytest.mark.skipif(not (SV2TP and BITCOIN_NODE and BITCOIN_CLI), reason=NO_SV2TP)


@pytest.fixture(scope="module")
def node():
    n = RealNode(BITCOIN_NODE, ipc=True).start()
    n.fund_wallet(coins=250)
    yield n
    n.close()


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 600))


def test_our_client_mines_a_block_through_sv2_tp(node):
    node.fill_mempool(40)
    tp = Sv2Tp(node, free_port())
    try:
        async def main():
            c = await TdpClient.connect("127.0.0.1", tp.port, authority_pubkey=tp.authority,
                                        timeout=T)
            cert = c.stream.connection.certificate
            assert cert is not None and cert.version == 0
            fut = await c.wait_for(NewTemplate, T)
            assert fut.future_template
            snph = await c.recv(T)  # sv2-tp's SendWork: the pair, back to back
            assert isinstance(snph, SetNewPrevHash) and snph.template_id == fut.template_id
            assert snph.prev_hash == node.tip
            c.state.bootstrap_channel()
            data = await c.request_transaction_data(fut.template_id, T)
            assert isinstance(data, RequestTransactionDataSuccess)
            assert len(data.transaction_list) == node.rpc("getmempoolinfo")["size"]
            await c.submit(c.mine_current())
            while c.state.prev_hash.prev_hash == snph.prev_hash:
                await c.recv(T)
            assert c.state.prev_hash.prev_hash == node.tip
            block = node.rpc("getblock", node.rpc("getbestblockhash"))
            assert block["nTx"] == len(data.transaction_list) + 1
            await c.close()

        run(main())
    finally:
        log = tp.stop()
    assert "Template Provider authority key" in log

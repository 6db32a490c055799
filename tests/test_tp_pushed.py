"""The pushed-template source (what the C ABI's sv2_tp_push_template feeds): serialized
blocks from a node's block assembler in, solved blocks out through the callback, after
they are persisted."""

import asyncio
import threading

import pytest

from sv2ffi import bitcoin as btc
from sv2ffi.client import TdpClient
from sv2ffi.errors import InvalidTemplateError
from sv2ffi.messages import SetNewPrevHash
from sv2ffi.tp.regtest import RegtestChain
from sv2ffi.tp.runner import TpThread
from sv2ffi.tp.server import TpService
from sv2ffi.tp.sources.pushed import PushedSource
from sv2ffi.tp.storage import saved_blocks
from sv2ffi.tp.template import parse_pushed_block

REGTEST = btc.NETWORKS["regtest"]
T = 20


def assembled(chain: RegtestChain) -> bytes:
    """A template the way a node's block assembler serializes it: placeholder coinbase with
    the BIP34 height, one reward output (subsidy + fees), the witness commitment."""
    tpl = chain.block_template()
    cb = btc.coinbase_tx(tpl.height, [btc.TxOut(tpl.coinbase_value, b"\x51"),
                                      btc.witness_commitment_output([t.wtxid for t in tpl.txs])])
    txs = [cb] + [btc.Tx.from_bytes(t.data) for t in tpl.txs]
    header = btc.BlockHeader(tpl.version, tpl.prev_hash, btc.merkle_root([t.txid for t in txs]),
                             tpl.time, tpl.bits, 0)
    return btc.Block(header, txs).serialize()


def test_parse_pushed_block_recovers_the_template():
    chain = RegtestChain(seed=4)
    chain.add_random_transactions(15)
    want = chain.block_template()
    got = parse_pushed_block(assembled(chain), REGTEST)
    assert (got.height, got.prev_hash, got.bits, got.coinbase_value) == \
        (want.height, want.prev_hash, want.bits, want.coinbase_value)
    assert [t.txid for t in got.txs] == [t.txid for t in want.txs]
    assert [t.parents for t in got.txs] == [t.parents for t in want.txs]
    assert got.fees == want.fees and got.extra_outputs == []


@pytest.mark.parametrize("mutate,msg", [
    (lambda b: b[:50], "not a serialized block"),
    (lambda b: b + b"\x00", "not a serialized block"),
    (lambda b: b[:80] + b"\x00", "not a serialized block"),
])
def test_malformed_pushes_are_typed_errors(mutate, msg):
    chain = RegtestChain(seed=4)
    with pytest.raises(InvalidTemplateError, match=msg):
        parse_pushed_block(mutate(assembled(chain)), REGTEST)


def test_push_without_reward_or_height_is_refused():
    chain = RegtestChain(seed=4)
    blk = btc.Block.from_bytes(assembled(chain))
    blk.txs[0].vout = [blk.txs[0].vout[1]]  # only the OP_RETURN commitment
    blk.txs[0].invalidate()
    with pytest.raises(InvalidTemplateError, match="reward output"):
        parse_pushed_block(blk.serialize(), REGTEST)
    blk = btc.Block.from_bytes(assembled(chain))
    blk.txs[0].vin[0].script_sig = b"\x6a\x6a"
    blk.txs[0].invalidate()
    with pytest.raises(InvalidTemplateError, match="height"):
        parse_pushed_block(blk.serialize(), REGTEST)


def test_pushed_templates_are_served_and_solutions_come_back_after_persisting(tmp_path):
    chain = RegtestChain(seed=8)
    chain.add_random_transactions(10)
    got = []
    persisted_before_callback = []

    def on_solution(block: bytes):
        persisted_before_callback.append(len(saved_blocks(tmp_path)) > len(got))
        got.append(block)
        done.set()

    done = threading.Event()
    src = PushedSource(REGTEST, on_solution=on_solution)
    src.push_block_template(assembled(chain))  # before start: kept and served on start
    tp = TpThread(TpService(src, datadir=tmp_path)).start()
    try:
        async def main():
            c = await TdpClient.connect("127.0.0.1", tp.port,
                                        authority_pubkey=tp.authority_pubkey, timeout=T)
            await c.wait_for(SetNewPrevHash, T)
            assert len(c.state.current.merkle_path) == 4  # 10 txs + coinbase
            await c.submit(c.mine_current())
            assert await asyncio.get_running_loop().run_in_executor(None, done.wait, T)
            # the node accepts the block, builds the next template and pushes it: a new tip
            assert chain.submit_block(got[0]) is None
            src.push_block_template(assembled(chain))  # from a non-loop thread
            snph = await c.wait_for(SetNewPrevHash, T)
            assert snph.prev_hash == chain.tip_hash
            await c.close()

        asyncio.run(asyncio.wait_for(main(), 60))
        assert persisted_before_callback == [True]
    finally:
        tp.stop()
    # no callback after stop(): pushing now only parses
    src.push_block_template(assembled(chain))
    assert len(got) == 1


def test_a_push_built_on_an_older_tip_never_takes_the_clients_back(tmp_path):
    """A node thread can push a template assembled just before a newer block connected."""
    chain = RegtestChain(seed=12)
    old = assembled(chain)
    chain.generate(1)
    src = PushedSource(REGTEST, on_solution=lambda b: None)
    src.push_block_template(assembled(chain))
    tp = TpThread(TpService(src, datadir=tmp_path)).start()
    try:
        async def main():
            c = await TdpClient.connect("127.0.0.1", tp.port,
                                        authority_pubkey=tp.authority_pubkey, timeout=T)
            snph = await c.wait_for(SetNewPrevHash, T)
            assert snph.prev_hash == chain.tip_hash
            src.push_block_template(old)
            with pytest.raises(asyncio.TimeoutError):
                await c.wait_for(SetNewPrevHash, 1.0)
            assert c.state.prev_hash.prev_hash == chain.tip_hash
            await c.close()

        asyncio.run(asyncio.wait_for(main(), 60))
        assert tp.service.core.ignored_old_tips >= 1
        assert tp.service.core.tip.prev_hash == chain.tip_hash
    finally:
        tp.stop()

"""The built-in regtest test/demo chain refuses what bitcoind would refuse (for the
things a template provider can get wrong) and accepts what a correct miner builds.

Every verdict here is Bitcoin Core's: the chain hands each block to libbitcoinkernel
(``sv2ffi.tp.kernel``), and the reasons asserted are the ones Core gives.  Where the
chain's own checks would name a different first failure, Core's order wins."""

import pytest

from sv2ffi import bitcoin as btc
from sv2ffi.tp import kernel
from sv2ffi.tp.regtest import RegtestChain, genesis_block


@pytest.fixture
def chain():
    c = RegtestChain(seed=3, clock=lambda: 1_700_000_000)
    assert c.validator is not None, "Bitcoin Core's validation must judge the test chain"
    return c


def test_core_validation_is_active_and_agrees_with_the_chain(chain):
    assert kernel.available()
    assert chain.validator.height == chain.height == 101
    assert chain.validator.tip_hash == chain.tip_hash
    chain.add_random_transactions(30)
    chain.generate(2)
    assert chain.validator.tip_hash == chain.tip_hash
    assert chain.validator.accepted == 103 and chain.validator.rejected == 0


def test_genesis_is_bitcoin_cores_regtest_genesis():
    assert btc.hash_hex(genesis_block().hash) == \
        "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206"


def test_premine_heights_bip34_and_pow(chain):
    assert chain.height == 101
    for h in (1, 17, 101):
        blk = chain.blocks[h]
        assert btc.parse_bip34_height(blk.txs[0].vin[0].script_sig) == h
        assert blk.header.bits == 0x207FFFFF
        assert btc.hash_meets_target(blk.hash, btc.bits_to_target(blk.header.bits))


def _block(chain, mutate=None, txs=20):
    chain.add_random_transactions(txs)
    tpl = chain.block_template()
    blk = chain.mine_template(tpl)
    if mutate:
        mutate(blk)
        blk.txs[0].invalidate()
        blk.header.merkle_root = btc.merkle_root([t.txid for t in blk.txs])
        blk.header.nonce = 0
        target = btc.bits_to_target(blk.header.bits)
        while not btc.hash_meets_target(blk.hash, target):
            blk.header.nonce += 1
    return blk


def test_valid_block_with_segwit_transactions_is_accepted(chain):
    blk = _block(chain)
    assert any(t.has_witness for t in blk.txs[1:])
    assert chain.submit_block(blk.serialize()) is None
    assert chain.tip_hash == blk.hash and not chain.mempool
    assert chain.submit_block(blk.serialize()) == "duplicate"


def test_high_hash_is_refused(chain):
    blk = _block(chain)
    target = btc.bits_to_target(blk.header.bits)
    while btc.hash_meets_target(blk.hash, target):
        blk.header.nonce += 1
    assert chain.submit_block(blk.serialize()) == "high-hash"


def test_bad_merkle_root_is_refused(chain):
    blk = _block(chain)
    blk.header.merkle_root = bytes(32)
    target = btc.bits_to_target(blk.header.bits)
    while not btc.hash_meets_target(blk.hash, target):
        blk.header.nonce += 1
    assert chain.submit_block(blk.serialize()) == "bad-txnmrklroot"


def _set_height(blk, h):
    blk.txs[0].vin[0].script_sig = btc.bip34_height_push(h) + b"\x00\x00"


def _overpay(blk):
    blk.txs[0].vout[0].value += 1


def _bad_commitment(blk):
    blk.txs[0].vout[-1].script_pubkey = btc.witness_commitment_script(bytes(32))


def _drop_commitment(blk):
    blk.txs[0].vout.pop()


def _bad_nonce(blk):
    blk.txs[0].vin[0].witness = [b"\x01" * 32]


def _drop_parent(blk):
    """Remove a transaction whose outputs a later one spends (commitment kept right)."""
    spent = {i.prev_txid for t in blk.txs[2:] for i in t.vin}
    blk.txs.pop(next(n for n, t in enumerate(blk.txs) if n and t.txid in spent))
    _fix_commitment(blk)


def _fix_commitment(blk):
    blk.txs[0].vout[-1].script_pubkey = btc.witness_commitment_script(
        btc.witness_commitment([t.wtxid for t in blk.txs[1:]]))


@pytest.mark.parametrize("mutate,reason", [
    (lambda b: _set_height(b, 7), "bad-cb-height"),
    (_overpay, "bad-cb-amount"),
    (_bad_commitment, "bad-witness-merkle-match"),
    (_drop_commitment, "unexpected-witness"),
    (_bad_nonce, "bad-witness-merkle-match"),
    (lambda b: b.txs.pop(1), "bad-witness-merkle-match"),  # Core checks this first
    (_drop_parent, "bad-txns-inputs-missingorspent"),
])
def test_consensus_failures(chain, mutate, reason):
    blk = _block(chain, mutate)
    assert chain.submit_block(blk.serialize()) == reason


def test_block_on_unknown_parent_and_garbage(chain):
    blk = _block(chain)
    blk.header.prev_hash = b"\x11" * 32
    assert chain.submit_block(blk.serialize()) == "prev-blk-not-found"
    assert chain.submit_block(b"\x00" * 50).startswith("block decode failed")


def test_subsidy_halves_every_150_blocks(chain):
    chain.generate(148 - chain.height)
    assert chain.block_template().coinbase_value == 50 * btc.COIN
    chain.generate(1)
    tpl = chain.block_template()
    assert tpl.height == 150 and tpl.coinbase_value == 25 * btc.COIN
    blk = chain.mine_template(tpl)
    blk.txs[0].vout[0].value = 50 * btc.COIN
    blk.txs[0].invalidate()
    blk.header.merkle_root = btc.merkle_root([t.txid for t in blk.txs])
    target = btc.bits_to_target(blk.header.bits)
    while not btc.hash_meets_target(blk.hash, target):
        blk.header.nonce += 1
    assert chain.submit_block(blk.serialize()) == "bad-cb-amount"


def test_mempool_transactions_pay_fees_chain_and_conflicts_are_refused(chain):
    assert chain.add_random_transactions(40) == 40
    tpl = chain.block_template()
    assert all(t.fee > 0 for t in tpl.txs) and tpl.fees == sum(t.fee for t in tpl.txs)
    assert any(tpl.depends(i) for i in range(len(tpl.txs)))
    for i in range(len(tpl.txs)):
        assert all(p < i for p in tpl.depends(i))
    first = btc.Tx.from_bytes(tpl.txs[0].data)
    clone = btc.Tx(2, [btc.TxIn(first.vin[0].prev_txid, first.vin[0].prev_index, b"", 0,
                                [btc.OP_TRUE_SCRIPT])], [btc.TxOut(1000, btc.P2WSH_OP_TRUE)])
    assert chain.accept_transaction(clone) == "txn-mempool-conflict"
    immature = next(k for k, c in chain.utxo.items() if c.coinbase and c.height == chain.height)
    tx = btc.Tx(2, [btc.TxIn(immature[0], immature[1], b"", 0, [btc.OP_TRUE_SCRIPT])],
                [btc.TxOut(1000, btc.P2WSH_OP_TRUE)])
    assert chain.accept_transaction(tx) == "bad-txns-premature-spend-of-coinbase"


def test_listeners_hear_blocks_and_mempool(chain):
    seen = []
    chain.on_block.append(lambda c: seen.append(("block", c.height)))
    chain.on_mempool.append(lambda c: seen.append(("mempool", len(c.mempool))))
    chain.add_random_transactions(3)
    chain.generate(1)
    assert seen == [("mempool", 3), ("block", 102)]

"""Consensus serialization against public facts (mainnet/regtest genesis, Core's pow_tests
retarget cases, the empty-block witness commitment) and properties of merkle paths."""

import json
import pathlib

import pytest
from hypothesis import given, settings, strategies as st

from sv2ffi import bitcoin as b
from sv2ffi.errors import BitcoinDecodeError

GENESIS = bytes.fromhex(
    "01000000" + "00" * 32
    + "3ba3edfd7a7b12b27ac72c3e67768f617fc81bc3888a51323a9fb8aa4b1e5e4a"
    + "29ab5f49" + "ffff001d" + "1dac2b7c" + "01"
    + "01000000" + "01" + "00" * 32 + "ffffffff" + "4d"
    + "04ffff001d0104455468652054696d65732030332f4a616e2f32303039204368616e63656c6c6f72206f6e"
      "206272696e6b206f66207365636f6e64206261696c6f757420666f722062616e6b73"
    + "ffffffff" + "01" + "00f2052a01000000" + "43"
    + "4104678afdb0fe5548271967f1a67130b7105cd6a828e03909a67962e0ea1f61deb649f6bc3f4cef38c4f3"
      "5504e51ec112de5c384df7ba0b8d578a4c702b6bf11d5fac"
    + "00000000")


def test_mainnet_genesis_roundtrip_hash_and_merkle_root():
    blk = b.Block.from_bytes(GENESIS)
    assert b.hash_hex(blk.hash) == "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f"
    assert blk.serialize() == GENESIS
    cb = blk.txs[0]
    assert cb.is_coinbase and not cb.has_witness
    assert b.merkle_root([cb.txid]) == blk.header.merkle_root
    assert cb.vout[0].value == 50 * b.COIN
    assert b.hash_meets_target(blk.hash, b.bits_to_target(blk.header.bits))


def test_regtest_genesis_header_and_pow_limit():
    h = b.BlockHeader(1, bytes(32), b.hash_from_hex(
        "4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b"),
        1296688602, 0x207FFFFF, 2)
    assert b.hash_hex(h.hash) == "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206"
    assert b.NETWORKS["regtest"].pow_limit_bits == 0x207FFFFF
    assert b.NETWORKS["main"].pow_limit_bits == 0x1D00FFFF


def test_truncated_and_trailing_input_are_typed_errors():
    for cut in (0, 1, 80, 81, 100, len(GENESIS) - 1):
        with pytest.raises(BitcoinDecodeError):
            b.Block.from_bytes(GENESIS[:cut])
    with pytest.raises(BitcoinDecodeError):
        b.Block.from_bytes(GENESIS + b"\x00")
    with pytest.raises(BitcoinDecodeError):
        b.Reader(b"\xfd\x10\x00").compact_size()  # non-canonical
    with pytest.raises(BitcoinDecodeError):
        b.Reader(b"\xfe\xff\xff\xff\x7f").compact_size()  # over the limit


@pytest.mark.parametrize("n", [0, 1, 0xFC, 0xFD, 0xFFFF, 0x10000, 0xFFFFFFFF, 0x100000000])
def test_compact_size_roundtrip(n):
    enc = b.compact_size(n)
    assert len(enc) == {True: 1}.get(n < 0xFD, 3 if n <= 0xFFFF else 5 if n <= 0xFFFFFFFF else 9)
    assert b.Reader(enc).compact_size(limit=1 << 64) == n


def _segwit_tx(n_in=2):
    vin = [b.TxIn(bytes([i + 1]) * 32, i, b"", 0xFFFFFFFD, [b.OP_TRUE_SCRIPT]) for i in range(n_in)]
    return b.Tx(2, vin, [b.TxOut(12345, b.P2WSH_OP_TRUE), b.TxOut(0, b"\x6a\x01\x01")], 7)


def test_segwit_transaction_forms():
    tx = _segwit_tx()
    full, stripped = tx.serialize(True), tx.serialize(False)
    assert full[4:6] == b"\x00\x01" and stripped[4:6] != b"\x00\x01"
    assert tx.txid == b.sha256d(stripped) != tx.wtxid == b.sha256d(full)
    assert tx.weight == 3 * len(stripped) + len(full)
    again = b.Tx.from_bytes(full)
    assert again.txid == tx.txid and again.wtxid == tx.wtxid and again.vin[1].witness == [b"\x51"]
    assert b.Tx.from_bytes(stripped).wtxid == tx.txid


def test_empty_block_witness_commitment_matches_the_spec_digest():
    assert b.witness_commitment([]).hex() == \
        "e2f61c3f71d1defd3fa999dfa36953755c690689799962b48bebd836974e8cf9"
    script = b.witness_commitment_output([]).script_pubkey
    assert script[:6].hex() == "6a24aa21a9ed" and len(script) == 38


@settings(max_examples=60, deadline=None)
@given(st.lists(st.binary(min_size=32, max_size=32), max_size=40), st.binary(min_size=32, max_size=32))
def test_coinbase_merkle_path_gives_the_full_tree_root(txids, cb):
    path = b.coinbase_merkle_path(txids)
    assert b.merkle_root_from_path(cb, path) == b.merkle_root([cb] + txids)
    assert len(path) == (len(txids)).bit_length() if txids else path == []


@pytest.mark.parametrize("height,expect", [
    (0, "00"), (1, "51"), (16, "60"), (17, "0111"), (127, "017f"), (128, "028000"),
    (255, "02ff00"), (256, "020001"), (32767, "02ff7f"), (32768, "03008000"),
    (840000, "0340d10c"), (8388608, "0400008000")])
def test_bip34_height_push(height, expect):
    assert b.bip34_height_push(height).hex() == expect
    assert b.parse_bip34_height(bytes.fromhex(expect) + b"extra") == height


def test_parse_bip34_refuses_non_pushes():
    for bad in (b"", b"\x6a", b"\x03\x01"):
        with pytest.raises(BitcoinDecodeError):
            b.parse_bip34_height(bad)


@pytest.mark.parametrize("bits", [0x1D00FFFF, 0x1C05A3F4, 0x207FFFFF, 0x17034219, 0x1B0404CB])
def test_bits_target_roundtrip(bits):
    assert b.target_to_bits(b.bits_to_target(bits)) == bits


def test_negative_bits_refused():
    with pytest.raises(BitcoinDecodeError):
        b.bits_to_target(0x04923456)


# Bitcoin Core src/test/pow_tests.cpp: (first block time, last height, last time, last bits, expected)
CORE_RETARGETS = [
    (1261130161, 32255, 1262152739, 0x1D00FFFF, 0x1D00D86A),
    (1231006505, 2015, 1233061996, 0x1D00FFFF, 0x1D00FFFF),
    (1279008237, 68543, 1279297671, 0x1C05A3F4, 0x1C0168FD),
    (1263163443, 48383, 1269211443, 0x1C387F6F, 0x1D00E1FD),
]


@pytest.mark.parametrize("first_time,height,time,bits,expect", CORE_RETARGETS)
def test_mainnet_retarget_matches_core(first_time, height, time, bits, expect):
    net = b.NETWORKS["main"]
    tip = b.HeaderInfo(height, time, bits)
    first = b.HeaderInfo(height - 2015, first_time, bits)
    assert b.next_work_required(net, tip, time + 600, lambda h: {first.height: first}[h]) == expect


def test_no_retarget_between_boundaries_and_regtest_never_retargets():
    main = b.NETWORKS["main"]
    tip = b.HeaderInfo(100, 1_000_000, 0x1B0404CB)
    assert b.next_work_required(main, tip, 2_000_000, None) == 0x1B0404CB
    reg = b.NETWORKS["regtest"]
    tip = b.HeaderInfo(2015, 1_000_000, 0x207FFFFF)
    assert b.next_work_required(reg, tip, 1_000_001, None) == 0x207FFFFF


def test_testnet_min_difficulty_rule_and_walk_back():
    net = b.NETWORKS["test"]
    limit = net.pow_limit_bits
    chain = {10: b.HeaderInfo(10, 5000, 0x1C00FFFF), 11: b.HeaderInfo(11, 6300, limit),
             12: b.HeaderInfo(12, 7600, limit)}
    tip = chain[12]
    # more than 20 minutes after the tip: a minimum-difficulty block is allowed
    assert b.next_work_required(net, tip, tip.time + 1201, chain.__getitem__) == limit
    # otherwise: the last block that was not a minimum-difficulty one
    assert b.next_work_required(net, tip, tip.time + 60, chain.__getitem__) == 0x1C00FFFF


def test_testnet4_bip94_retargets_from_the_first_block_of_the_period():
    net = b.NETWORKS["testnet4"]
    first = b.HeaderInfo(0, 1_000_000, 0x1C00FFFF)
    tip = b.HeaderInfo(2015, 1_000_000 + 14 * 24 * 3600, net.pow_limit_bits)  # last block min-diff
    assert b.next_work_required(net, tip, tip.time + 1, lambda h: first) == 0x1C00FFFF


def test_subsidy_halvings():
    main, reg = b.NETWORKS["main"], b.NETWORKS["regtest"]
    assert b.block_subsidy(0, main) == 50 * b.COIN
    assert b.block_subsidy(210_000, main) == 25 * b.COIN
    assert b.block_subsidy(840_000, main) == 312_500_000
    assert b.block_subsidy(149, reg) == 50 * b.COIN and b.block_subsidy(150, reg) == 25 * b.COIN
    assert b.block_subsidy(64 * 150, reg) == 0


def test_sigops_counting():
    assert b.legacy_sigops(bytes.fromhex("21" + "02" * 33 + "ac")) == 1
    assert b.legacy_sigops(bytes.fromhex("5121" + "02" * 33 + "51ae")) == 20
    assert b.legacy_sigops(b"\x4c") == 0  # truncated push ends counting


def test_segwit_addresses_bip173_vector_and_roundtrip():
    # BIP173: P2WPKH of 0279be66...f81798 on mainnet
    script = b.decode_segwit_address("bc", "BC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4")
    assert script.hex() == "0014751e76e8199196d454941c45d1b3a323f1433bd6"
    addr = b.script_address(b.P2WSH_OP_TRUE, b.NETWORKS["regtest"])
    assert addr.startswith("bcrt1q") and b.decode_segwit_address("bcrt", addr) == b.P2WSH_OP_TRUE
    with pytest.raises(BitcoinDecodeError):
        b.decode_segwit_address("bcrt", addr[:-1] + ("q" if addr[-1] != "q" else "p"))


# ---- next_work_required against real chains ------------------------------------------------

RETARGET = json.loads((pathlib.Path(__file__).parent / "vectors" / "retarget.json").read_text())
NET = {"mainnet": "main", "testnet3": "test", "testnet4": "testnet4", "signet": "signet"}


def test_signet_pow_limit_is_cores():
    """chainparams.cpp: signet powLimit 00000377ae00..00, the genesis block's nBits."""
    net = b.NETWORKS["signet"]
    assert net.pow_limit_bits == 0x1E0377AE
    assert net.pow_limit == int("00000377ae" + "0" * 54, 16)
    assert not net.allow_min_difficulty


@pytest.mark.parametrize("case", RETARGET["cases"], ids=lambda c: c["id"])
def test_next_work_required_matches_the_real_chain(case):
    net = b.NETWORKS[NET[case["network"]]]
    h = case["height"]
    hx = lambda k: int(case[k], 16)  # noqa: E731
    # the raw headers (where a public source has them) say what the case says
    fields = {"H-1": ("ntime_h_minus_1", "nbits_h_minus_1"), "H": ("ntime_h", "expected_nbits"),
              "H-2016": ("ntime_h_minus_2016", "nbits_h_minus_2016")}
    for which, raw in case.get("headers", {}).items():
        hdr = b.BlockHeader.from_bytes(bytes.fromhex(raw))
        assert b.hash_meets_target(hdr.hash, b.bits_to_target(hdr.bits)), which
        t, n = fields.get(which, ("", ""))
        if t in case:
            assert hdr.time == case[t], which
        if n in case:
            assert hdr.bits == int(case[n], 16), which
    tip = b.HeaderInfo(h - 1, case["ntime_h_minus_1"], hx("nbits_h_minus_1"))
    known = {h - 1: tip}
    if "ntime_h_minus_2016" in case:
        known[h - 2016] = b.HeaderInfo(h - 2016, case["ntime_h_minus_2016"],
                                       hx("nbits_h_minus_2016") if "nbits_h_minus_2016" in case
                                       else 0)
    walk = case.get("walk_back")
    if walk:
        for height, bits, t in walk.get("chain_height_bits_time", []):
            known[height] = b.HeaderInfo(height, t, int(bits, 16))
        lo, hi = walk["min_difficulty_range"]
        for height in range(lo, hi + 1):
            known.setdefault(height, b.HeaderInfo(height, 0, net.pow_limit_bits))
        known.setdefault(walk["stops_at_height"],
                         b.HeaderInfo(walk["stops_at_height"], 0, int(walk["stops_at_bits"], 16)))
    got = b.next_work_required(net, tip, case["ntime_h"], known.__getitem__)
    assert got == hx("expected_nbits"), f"{got:08x} != {case['expected_nbits']}"


def test_block_transactions_finds_what_the_full_parser_finds():
    """The IPC source splits a node's template block by lengths only (known transactions
    are not parsed again): the pieces must be exactly the parser's transactions, legacy
    and segwit, with the txids their inputs spend."""
    from sv2ffi.tp.regtest import RegtestChain
    chain = RegtestChain(seed=11)
    chain.add_random_transactions(60)
    blk = chain.mine_template(chain.block_template())
    legacy = b.Tx(2, [b.TxIn(b"\x42" * 32, 1, b"\x51" * 300, 0xFFFFFFFE)],
                  [b.TxOut(5, b"\x6a" * 260), b.TxOut(6, b"")], 7)
    blk.txs.append(legacy)
    raw = blk.serialize()
    found = b.block_transactions(raw)
    parsed = b.Block.from_bytes(raw).txs
    assert [r for r, _, _ in found] == [t.serialize(True) for t in parsed]
    assert [s for _, s, _ in found] == [[i.prev_txid for i in t.vin] for t in parsed]
    assert [w for _, _, w in found] == [t.wtxid for t in parsed]
    assert any(t.has_witness for t in parsed[1:]) and not parsed[-1].has_witness
    assert len(found) == len(parsed) > 60
    assert b.block_transactions_py(raw) == found  # the C scan, when built, agrees


@pytest.mark.parametrize("cut", [1, 5, 40, 200])
def test_block_transactions_refuses_blocks_whose_lengths_do_not_add_up(cut):
    from sv2ffi.tp.regtest import RegtestChain
    chain = RegtestChain(seed=12)
    chain.add_random_transactions(5)
    raw = chain.mine_template(chain.block_template()).serialize()
    for scan in (b.block_transactions, b.block_transactions_py):
        with pytest.raises(BitcoinDecodeError):
            scan(raw[:-cut])
        with pytest.raises(BitcoinDecodeError):
            scan(raw + bytes(cut))


@pytest.mark.skipif(b._cblockscan is None, reason="sv2ffi._blockscan not built (no OpenSSL "
                    "libcrypto headers)")
@settings(max_examples=300, deadline=None)
@given(st.data())
def test_the_c_block_scan_agrees_with_python_on_damaged_blocks(data):
    """sv2ffi._blockscan against block_transactions_py on a real block with bytes changed,
    cut or added: both give the same transactions, or both refuse the block."""
    raw = bytearray(_SCAN_BLOCK)
    for _ in range(data.draw(st.integers(0, 4))):
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(-3, 3))
    raw = bytes(raw[:cut] if cut < 0 else raw + bytes(cut))
    try:
        want = b.block_transactions_py(raw)
    except BitcoinDecodeError:
        want = None
    try:
        got = b.block_transactions(raw)
    except BitcoinDecodeError:
        got = None
    assert got == want


def _scan_block() -> bytes:
    from sv2ffi.tp.regtest import RegtestChain
    chain = RegtestChain(seed=13)
    chain.add_random_transactions(6)
    return chain.mine_template(chain.block_template()).serialize()


_SCAN_BLOCK = _scan_block()

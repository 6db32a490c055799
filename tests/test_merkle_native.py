"""sv2ffi._merkle (OpenSSL SHA-256) against the hashlib reference in sv2ffi.bitcoin, on
Bitcoin's rules (odd levels pair their last node with itself) and on a real block: the
merkle root in mainnet block 100,000's header, from its four txids."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sv2ffi import bitcoin as btc

_merkle = pytest.importorskip("sv2ffi._merkle", reason="sv2ffi._merkle not built "
                              "(no OpenSSL libcrypto headers)")

hashes = st.lists(st.binary(min_size=32, max_size=32), min_size=1, max_size=70)


@settings(max_examples=200, deadline=None)
@given(hashes)
def test_root_and_coinbase_path_match_the_reference(hs):
    assert btc.merkle_root(hs) == btc.merkle_root_py(hs)
    assert btc.coinbase_merkle_path(hs) == btc.coinbase_merkle_path_py(hs)
    assert btc.merkle_root_from_path(hs[0], btc.coinbase_merkle_path(hs[1:])) == \
        btc.merkle_root_py(hs)


def test_mainnet_block_100000():
    txids = [btc.hash_from_hex(h) for h in (
        "8c14f0db3df150123e6f3dbbf30f8b955a8249b62ac1d1ff16284aefa3d06d87",
        "fff2525b8931402dd09222c50775608f75787bd2b87e56995a7bdd30f79702c4",
        "6359f0868171b1d194cbee1af2f16ea598ae8fad666d9b012c8ed2b79a236ec4",
        "e9a66845e05d5abc0ad04ec80f774a7e585c6e8db975962d069a522137b80c1d")]
    root = btc.hash_from_hex("f3e94742aca4b5ef85488dc37c06c3282295ffec960994b2c0d5ac2a25a95766")
    assert btc.merkle_root(txids) == root
    assert btc.merkle_root_from_path(txids[0], btc.coinbase_merkle_path(txids[1:])) == root


def test_empty_and_bad_input_are_typed_errors():
    with pytest.raises(ValueError, match="nothing"):
        btc.merkle_root([])
    assert btc.coinbase_merkle_path([]) == []
    with pytest.raises(ValueError, match="32-byte"):
        _merkle.merkle_root(b"x" * 33, 1)
    with pytest.raises(ValueError, match="32-byte"):
        _merkle.coinbase_merkle_path(b"x" * 64, -2)
    with pytest.raises(TypeError):
        _merkle.merkle_root("not bytes", 1)
    with pytest.raises(TypeError):
        _merkle.merkle_root(b"x" * 32)


_BOTH_ROADS = """
import hashlib, random, sys
from sv2ffi import _merkle
from sv2ffi import bitcoin as btc
rng = random.Random(11)
for n in list(range(1, 40)) + [255, 256, 257, 3001]:
    hs = [rng.randbytes(32) for _ in range(n)]
    assert _merkle.merkle_root(b"".join(hs), n) == btc.merkle_root_py(hs), n
    assert _merkle.coinbase_merkle_path(b"".join(hs), n) == btc.coinbase_merkle_path_py(hs), n
print(_merkle.sha256d_road())
"""


@pytest.mark.parametrize("no_shani", [False, True])
def test_each_hashing_road_matches_hashlib(no_shani):
    """sha256d.h hashes a level's nodes two at a time with the CPU's SHA extensions when it
    has them, one at a time through OpenSSL otherwise (SV2FFI_NO_SHANI=1 forces that road):
    both against hashlib on trees whose levels are odd and even, in a fresh interpreter
    each (the road is chosen when the module loads)."""
    import os
    import subprocess
    import sys
    env = dict(os.environ)
    env.pop("SV2FFI_NO_SHANI", None)
    if no_shani:
        env["SV2FFI_NO_SHANI"] = "1"
    out = subprocess.run([sys.executable, "-c", _BOTH_ROADS], env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    road = out.stdout.strip()
    if no_shani:
        assert road == "openssl"
    else:
        assert road in ("openssl", "sha-ni, two at a time")

"""examples/cpp/embedded_node.cpp: a C++ regtest node embedding the template provider,
mined end to end by `sv2ffi client --mine` (what `sv2ffi interop` runs); its whole chain
(the premine it mines at start-up, then the SV2-mined blocks) replayed through Bitcoin
Core's validation (libbitcoinkernel), and proof that the checks catch a bad block."""

from __future__ import annotations

import asyncio
import shutil

import pytest

from sv2ffi import bitcoin as btc
from sv2ffi.capi import interop
from sv2ffi.tp import kernel
from sv2ffi.tp.storage import saved_blocks

pytestmark = pytest.mark.skipif(not (shutil.which("cmake") and shutil.which("g++")),
                                reason="cmake and a C++ compiler are needed")

PREMINE = 110  # embedded_node's default --premine


@pytest.fixture(scope="module")
def node_binary():
    return interop.build_examples(None, lambda line: None)["embedded_node"]


@pytest.fixture(scope="module")
def mined(node_binary, tmp_path_factory):
    """One run, three blocks: (run, datadir, transcript lines)."""
    lines: list[str] = []
    datadir = tmp_path_factory.mktemp("embedded") / "node"
    run = asyncio.run(interop.run_embedded_node(node_binary, interop.Transcript(lines.append),
                                                blocks=3, datadir=datadir))
    return run, datadir, lines


@pytest.fixture
def copy(mined, tmp_path):
    """A copy of the run's data directory to tamper with."""
    run, datadir, _ = mined
    dst = tmp_path / "node"
    shutil.copytree(datadir, dst)
    return run, dst


def test_blocks_are_mined_through_the_cpp_node_and_validated_by_core(mined):
    run, datadir, lines = mined
    node_lines = run.node_lines
    assert node_lines[0].startswith(f"premine height={PREMINE} ")
    assert len((datadir / interop.PREMINE_FILE).read_text().splitlines()) == PREMINE
    accepted = [ln for ln in node_lines if ln.startswith("accepted block ")]
    assert [ln.split()[2] for ln in accepted] == [f"height={PREMINE + i}" for i in (1, 2, 3)]
    assert all("pow=ok merkle=ok" in ln for ln in accepted)
    # each template the node pushed after a block was a new tip the pool mined on
    templates = [ln for ln in node_lines if ln.startswith("template ")]
    assert len(templates) == 4 and all(" txs=8 " in ln for ln in templates)
    assert any(ln.startswith("    pool | -> SubmitSolution") for ln in lines)
    assert node_lines[-1].startswith(f"done: 3 blocks accepted, 0 stale, chain height {PREMINE + 3}")
    # Bitcoin Core connected every block: the premine (coinbases, the wallet's splits of
    # mature coinbases) and the three mined through SV2 (spending those splits)
    assert kernel.available(), "make test installs py-bitcoinkernel"
    assert run.check == interop.ChainCheck(premine=PREMINE, mined=3,
                                           core_connected=PREMINE + 3, stale=0)
    assert any(f"libbitcoinkernel) connected all {PREMINE + 3} blocks" in ln for ln in lines)


def test_an_altered_solved_block_is_caught_by_core_and_by_the_python_recheck(copy, monkeypatch):
    run, datadir = copy
    victim = saved_blocks(datadir)[1]  # the second block mined through SV2
    blk = btc.Block.from_bytes(victim.read_bytes())
    blk.txs[-1].locktime ^= 1
    blk.txs[-1].invalidate()
    victim.write_bytes(blk.serialize())
    t = interop.Transcript(lambda s: None)
    with pytest.raises(interop.Mismatch, match=rf"Bitcoin Core rejected block {PREMINE + 2} "
                                               rf"\([0-9a-f]{{64}}\): bad-txnmrklroot$"):
        interop.check_embedded_chain(run.node_lines, datadir, 3, t)
    monkeypatch.setenv(kernel.DISABLE_ENV, "1")  # the Python re-check alone
    lines: list[str] = []
    with pytest.raises(interop.Mismatch, match=rf"^block {PREMINE + 2}: merkle root$"):
        interop.check_embedded_chain(run.node_lines, datadir, 3, interop.Transcript(lines.append))
    assert any("Core did not judge these blocks" in ln for ln in lines)


def test_a_premine_block_overpaying_its_coinbase_is_refused_by_core(copy, monkeypatch):
    """What only Core knows: the Python re-check has no UTXO set and no fees for the
    premine, so a re-mined premine block paying itself 1 sat too much passes it (only the
    next block's link breaks); Core refuses the block itself."""
    run, datadir = copy
    path = datadir / interop.PREMINE_FILE
    hexes = path.read_text().split()
    blk = btc.Block.from_bytes(bytes.fromhex(hexes[-1]))
    blk.txs[0].vout[0].value += 1
    blk.txs[0].invalidate()
    blk.header.merkle_root = btc.merkle_root([tx.txid for tx in blk.txs])
    while not btc.hash_meets_target(blk.hash, btc.bits_to_target(blk.header.bits)):
        blk.header.nonce += 1
    hexes[-1] = blk.serialize().hex()
    path.write_text("\n".join(hexes) + "\n")
    lines = [ln.replace(run.node_lines[0].split()[2], f"tip={btc.hash_hex(blk.hash)}")
             for ln in run.node_lines]  # the node's premine line names the new tip
    with pytest.raises(interop.Mismatch, match=rf"Bitcoin Core rejected block {PREMINE} "
                                               rf"\([0-9a-f]{{64}}\): bad-cb-amount$"):
        interop.check_embedded_chain(lines, datadir, 3, interop.Transcript(lambda s: None))
    monkeypatch.setenv(kernel.DISABLE_ENV, "1")
    with pytest.raises(interop.Mismatch, match=rf"^block {PREMINE + 1} does not extend block "
                                               rf"{PREMINE}$"):
        interop.check_embedded_chain(lines, datadir, 3, interop.Transcript(lambda s: None))

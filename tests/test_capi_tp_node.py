"""examples/cpp/embedded_node.cpp: a C++ regtest node embedding the template provider,
mined end to end by `sv2ffi client --mine` (what `sv2ffi interop` runs), and proof that
the Python re-check of its blocks catches a bad one."""

from __future__ import annotations

import asyncio
import shutil

import pytest

from sv2ffi import bitcoin as btc
from sv2ffi.capi import interop
from sv2ffi.tp.storage import saved_blocks

pytestmark = pytest.mark.skipif(not (shutil.which("cmake") and shutil.which("g++")),
                                reason="cmake and a C++ compiler are needed")


@pytest.fixture(scope="module")
def node_binary():
    return interop.build_examples(None, lambda line: None)["embedded_node"]


def test_blocks_are_mined_through_the_cpp_node_and_rechecked(node_binary, tmp_path):
    lines: list[str] = []
    datadir = tmp_path / "node"
    node_lines = asyncio.run(interop.run_embedded_node(node_binary, interop.Transcript(lines.append),
                                                       blocks=3, datadir=datadir))
    accepted = [ln for ln in node_lines if ln.startswith("accepted block ")]
    assert [ln.split()[2] for ln in accepted] == ["height=1", "height=2", "height=3"]
    assert all("pow=ok merkle=ok" in ln for ln in accepted)
    # each template the node pushed after a block was a new tip the pool mined on
    templates = [ln for ln in node_lines if ln.startswith("template ")]
    assert len(templates) == 4 and all(" txs=8 " in ln for ln in templates)
    assert any(ln.startswith("    pool | -> SubmitSolution") for ln in lines)
    assert node_lines[-1].startswith("done: 3 blocks accepted, 0 stale, chain height 3")

    # the re-check is real: a persisted block whose transactions were altered fails it
    victim = saved_blocks(datadir)[1]
    blk = btc.Block.from_bytes(victim.read_bytes())
    blk.txs[-1].locktime ^= 1
    blk.txs[-1].invalidate()
    victim.write_bytes(blk.serialize())
    with pytest.raises(interop.Mismatch, match="block 2: merkle root"):
        interop.check_embedded_chain(node_lines, datadir, 3, interop.Transcript(lines.append))

"""Solved blocks on disk, written before anyone is told about them.

A block that reaches the node only through memory is lost if the node or the TP crashes
at the wrong moment; writing it first (fsync'd, atomically renamed) means a solved block
can always be resubmitted by hand (``xxd -p FILE | tr -d '\\n' | bitcoin-cli -stdin
submitblock``: through stdin, as a large block's hex exceeds an argument's size limit).
"""

from __future__ import annotations

from pathlib import Path

from .. import bitcoin as btc
from ..durable import write_atomic

BLOCKS_DIR = "solved-blocks"


def save_block(datadir, height: int, block: bytes) -> Path:
    d = Path(datadir) / BLOCKS_DIR
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = d / f"{height:08d}-{btc.hash_hex(btc.sha256d(block[:80]))}.blk"
    write_atomic(path, block, 0o600)
    return path


def saved_blocks(datadir) -> list:
    d = Path(datadir) / BLOCKS_DIR
    return sorted(d.glob("*.blk")) if d.is_dir() else []

"""Solved blocks on disk, written before anyone is told about them.

A block that reaches the node only through memory is lost if the node or the TP crashes
at the wrong moment; writing it first (fsync'd, atomically renamed) means a solved block
can always be resubmitted by hand (``xxd -p FILE | tr -d '\\n' | bitcoin-cli -stdin
submitblock``: through stdin, as a large block's hex exceeds an argument's size limit).
"""

from __future__ import annotations

import errno
from pathlib import Path

from .. import bitcoin as btc
from ..durable import private_dir, probe_writable, write_atomic
from ..errors import DatadirError

BLOCKS_DIR = "solved-blocks"
_WHY = ("a solved block is saved there before it is submitted, so the template provider "
        "does not start without it")


def prepare_blocks_dir(datadir) -> Path:
    """Make sure a solved block could be saved now: ``datadir`` and its ``solved-blocks/``
    exist (created 0700) and a file can be written there.  DatadirError otherwise.

    Run before the TP listens: a block must be on disk before it is submitted, and a TP
    that would find out only at its first solved block has been serving work it cannot
    keep its promise for.  Writability is tried, not read from the mode bits, which
    do not stop root.
    """
    d = Path(datadir) / BLOCKS_DIR
    try:
        private_dir(d.parent)
        private_dir(d)
    except DatadirError as e:
        raise DatadirError(f"{e}; {_WHY}") from None
    except OSError as e:
        raise DatadirError(f"cannot create {e.filename or d}: {e.strerror or e}; {_WHY}") from None
    try:
        probe_writable(d)
    except OSError as e:
        what = ("is not writable" if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS)
                else "cannot take a file")
        raise DatadirError(f"{d} {what} ({e.strerror or e}); {_WHY}") from None
    return d


def save_block(datadir, height: int, block: bytes) -> Path:
    """Persist ``block`` (fsync'd, atomically renamed); OSError if it cannot be."""
    d = Path(datadir) / BLOCKS_DIR
    try:
        private_dir(d, parents=True)  # again: it may have been removed since the start
    except DatadirError as e:  # the caller still submits the block, and logs this
        raise OSError(str(e)) from None
    path = d / f"{height:08d}-{btc.hash_hex(btc.sha256d(block[:80]))}.blk"
    write_atomic(path, block, 0o600)
    return path


def saved_blocks(datadir) -> list:
    d = Path(datadir) / BLOCKS_DIR
    return sorted(d.glob("*.blk")) if d.is_dir() else []

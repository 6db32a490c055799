"""Bitcoin Core's own validation, as a library: the judge of every block the built-in
regtest chain accepts.

The built-in chain (``regtest.py``) is a test/demo source, and its own checks were
written here; a block that passes them proves little.  ``CoreValidator`` hands each block
to libbitcoinkernel (Bitcoin Core's consensus engine, through PyPI's ``py-bitcoinkernel``)
on a private regtest chainstate, so "the chain accepted the block" means Core accepted
it, and a refusal carries Core's own reject reason (``bad-cb-amount``, ``high-hash``, ...).

The kernel reports reasons only in its log (``BlockChecked: block hash=... state=...``),
so one process-wide log connection collects them by block hash.  The validator's
chainstate lives in memory; block files go to a temporary directory removed with it.
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import shutil
import tempfile
import threading
import weakref
from collections import OrderedDict
from typing import Optional

from .. import bitcoin as btc

log = logging.getLogger("sv2ffi.kernel")

try:  # optional: `pip install sv2ffi[kernel]` (make demo / make test install it)
    import pbk
except ImportError:  # pragma: no cover - exercised only without the extra
    pbk = None

#: the environment variable that turns Core's validation off for the built-in chain
DISABLE_ENV = "SV2FFI_NO_KERNEL"

_CHECKED = re.compile(r"BlockChecked: block hash=([0-9a-f]{64}) state=(.*)")


def available() -> bool:
    """Whether Bitcoin Core's validation can be used here (and is not turned off)."""
    return pbk is not None and not os.environ.get(DISABLE_ENV)


class _ReasonLog:
    """Kernel log lines -> reject reason per block hash (bounded)."""

    _create_lock = threading.Lock()
    _instance: Optional["_ReasonLog"] = None

    def __init__(self):
        self.states: OrderedDict[str, str] = OrderedDict()
        # the connection replays buffered lines at once, from inside its constructor
        self._lock = threading.Lock()
        self._conn = pbk.LoggingConnection(self._on_line)
        pbk.enable_log_category(pbk.LogCategory.VALIDATION)
        pbk.set_log_level_category(pbk.LogCategory.VALIDATION, pbk.LogLevel.DEBUG)

    @classmethod
    def get(cls) -> "_ReasonLog":
        with cls._create_lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    def _on_line(self, line: str) -> None:
        m = _CHECKED.search(line)
        if m:
            with self._lock:
                self.states[m.group(1)] = m.group(2).strip()
                while len(self.states) > 4096:
                    self.states.popitem(last=False)
        elif "[error]" in line or "ERROR" in line:
            log.debug("kernel: %s", line.strip())

    def pop(self, block_hash_hex: str) -> Optional[str]:
        with self._lock:
            return self.states.pop(block_hash_hex, None)


#: kernel objects of validators that are gone, destroyed at the next safe point.  The
#: garbage collector may run inside a kernel call (a log callback, during process_block,
#: holds Core's validation lock); destroying a chainstate there deadlocks, so finalizers
#: only park the objects here and ``_reap`` destroys them between kernel calls.
_graveyard: list = []
_graveyard_lock = threading.Lock()


def _bury(*objects) -> None:
    with _graveyard_lock:
        _graveyard.append(objects)


def _reap() -> None:
    with _graveyard_lock:
        dead = _graveyard[:]
        _graveyard.clear()
    for objects in dead:
        for obj in objects:  # chainstate manager first, then its context
            if hasattr(obj, "__exit__"):
                obj.__del__()
        for path in objects:
            if isinstance(path, str):
                shutil.rmtree(path, ignore_errors=True)


atexit.register(_reap)


class CoreValidator:
    """A regtest chainstate in Bitcoin Core's validation engine.

    ``process_block(raw)`` returns None when Core connected the block as its new tip,
    ``"duplicate"`` for a block it already has, else Core's reason.  Not thread-safe for
    concurrent calls on one validator (the built-in chain calls it from one thread)."""

    def __init__(self):
        if pbk is None:
            raise RuntimeError("py-bitcoinkernel is not installed (pip install 'sv2ffi[kernel]')")
        _reap()
        self._reasons = _ReasonLog.get()
        self._dir = tempfile.mkdtemp(prefix="sv2ffi-kernel-")
        opts = pbk.ContextOptions()
        opts.set_chainparams(pbk.ChainParameters(pbk.ChainType.REGTEST))
        # with a BlockChecked listener registered, the kernel logs every block's final
        # state ("BlockChecked: block hash=... state=..."), which is where reasons appear
        self._callbacks = pbk.ValidationInterfaceCallbacks(block_checked=lambda *a: None)
        opts.set_validation_interface(self._callbacks)
        self._context = pbk.Context(opts)
        cmo = pbk.ChainstateManagerOptions(self._context, self._dir,
                                           os.path.join(self._dir, "blocks"))
        cmo.update_block_tree_db_in_memory(True)
        cmo.update_chainstate_db_in_memory(True)
        self._chainman = pbk.ChainstateManager(cmo)
        self.accepted = 0
        self.rejected = 0
        self._finalizer = weakref.finalize(self, _bury, self._chainman, self._context,
                                           self._callbacks, self._dir)

    def close(self) -> None:
        """Release the chainstate and remove its files (also done, later, when collected)."""
        self._finalizer()
        _reap()

    @property
    def height(self) -> int:
        return self._chainman.get_active_chain().height

    @property
    def tip_hash(self) -> bytes:
        return bytes(self._chainman.best_entry.block_hash)

    def process_block(self, raw: bytes) -> Optional[str]:
        _reap()
        try:
            block = pbk.Block(raw)
        except Exception as e:  # the kernel's deserializer refused it
            self.rejected += 1
            return f"block decode failed ({e})"
        h = btc.hash_hex(btc.sha256d(raw[:80]))
        try:
            new = self._chainman.process_block(block)
        except pbk.ProcessBlockException:
            new = None
        state = self._reasons.pop(h)
        if new is False and state is None:
            return "duplicate"
        if state is not None and state != "Valid":
            self.rejected += 1
            return state.split(",")[0].strip()
        if new is None:
            self.rejected += 1
            return "rejected by Bitcoin Core (no reason logged)"
        tip = self._chainman.get_active_chain()
        entry = self._chainman.best_entry
        if btc.hash_hex(bytes(entry.block_hash)) != h and entry.height == tip.height:
            # valid, but not on the best chain (e.g. a side branch): bitcoind says so too
            return "inconclusive"
        self.accepted += 1
        return None

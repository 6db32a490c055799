"""Opaque C handles (Sv2Decoder *, Sv2Connection *, ...) mapped to Python objects.

A handle is a counter value and a kind tag cast to a pointer, never the address of
anything: a C caller that passes a freed, foreign or garbage pointer gets
SV2_ERR_INVALID_ARGUMENT from a dictionary miss instead of a crash, and values are never
reused, so a stale handle cannot reach a newer object.  The tag names the kind, so a
decoder passed where a connection is expected is refused with a message that says so.

Threads: the contract lets any thread use a handle, one thread at a time.  The table is
shared by all threads (the template provider of issue 6 calls in from the node's threads
while its own thread runs the network), so insertion and removal take a lock; lookups
are single dict reads, atomic under the GIL.
"""

from __future__ import annotations

import itertools
import threading
from typing import Any

from .. import errors

_STRIDE = 16
#: the low 4 bits of a handle name its kind; Sv2Decoder handles (1) live in C
#: (handles.c), whose lookups use the same tags to name a handle of the wrong kind
TAGS = {"Sv2Decoder": 1, "Sv2Connection": 2, "Sv2Tp": 3}
_KIND_OF_TAG = {tag: kind for kind, tag in TAGS.items()}


class HandleTable:
    def __init__(self) -> None:
        self._entries: dict[int, tuple[str, Any]] = {}
        self._lock = threading.Lock()
        self._ids = itertools.count(1)

    def add(self, kind: str, obj: Any) -> int:
        with self._lock:
            handle = next(self._ids) * _STRIDE + TAGS.get(kind, 0)
            self._entries[handle] = (kind, obj)
        return handle

    def get(self, kind: str, handle: int) -> Any:
        entry = self._entries.get(handle)
        if entry is None or entry[0] != kind:
            raise self._invalid(kind, handle, entry)
        return entry[1]

    def remove(self, kind: str, handle: int) -> Any:
        with self._lock:
            entry = self._entries.get(handle)
            if entry is None or entry[0] != kind:
                raise self._invalid(kind, handle, entry)
            del self._entries[handle]
        return entry[1]

    def count(self, kind: str | None = None) -> int:
        """Live handles (of one kind): lets tests prove that _free really frees."""
        entries = list(self._entries.values())
        return len(entries) if kind is None else sum(1 for k, _ in entries if k == kind)

    @staticmethod
    def _invalid(kind: str, handle: int, entry) -> errors.InvalidArgumentError:
        if handle == 0:
            return errors.InvalidArgumentError(f"{kind} handle is NULL")
        other = entry[0] if entry is not None else _KIND_OF_TAG.get(handle % _STRIDE)
        if other is not None and other != kind:
            return errors.InvalidArgumentError(
                f"0x{handle:x} is a {other} handle, not a {kind}")
        return errors.InvalidArgumentError(
            f"0x{handle:x} is not a live {kind} handle (freed, or never returned by libsv2)")


#: the one table of the process; every export uses it
TABLE = HandleTable()

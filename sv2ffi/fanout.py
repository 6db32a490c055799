"""One message set, many Noise clients: the TP's pass at a new tip, sealed and written in C.

At a new block every client gets the same plaintext (a future NewTemplate and the
SetNewPrevHash that activates it), each under its own key and nonce.  Python spends about
20 us a client on that (four AEAD calls, joins, an asyncio transport write) where the
kernel's loopback send is about 5 us; ``sv2ffi._fanout`` (``native/fanout.c``, OpenSSL's
ChaCha20-Poly1305 and send(2)) does the whole pass in one call.  The bytes on the wire are
the same as ``noise.encrypt_frames`` makes (tests/test_fanout.py checks them against it).

Without the compiled module (no OpenSSL headers at build time) or with
``SV2FFI_NATIVE_FANOUT=0`` in the environment (to compare both in one benchmark run), the
service keeps its Python path; ``sv2ffi config`` says which one is in use.

A pass over many clients (48 or more per thread: a second thread from 96 clients) is
shared by up to four threads, no more than the CPUs the process may use: from 100
clients the pass is mostly the kernel's loopback sends (25-35 us a client on a 2-core
VM), which one core does no faster; at 100 clients beside a real node a second thread
took the p99 from 7.8-9.9 to 5.9-7.5 ms (``native/fanout.c``, PAR_MIN).
``SV2FFI_FANOUT_THREADS=N`` caps them (1: the calling thread only, to compare in one
benchmark run).
"""

from __future__ import annotations

import os
from typing import Optional

from .noise import MAX_PT_CHUNK

try:
    from . import _fanout
except ImportError:  # a pure-Python install
    _fanout = None

#: the compiled module is importable
AVAILABLE = _fanout is not None


def thread_limit() -> int:
    """The most threads a pass may use (``SV2FFI_FANOUT_THREADS``; 0: the C module's own
    limit, four, and the CPUs the process may use)."""
    try:
        return max(0, int(os.environ.get("SV2FFI_FANOUT_THREADS", "0")))
    except ValueError:
        return 0


def enabled() -> bool:
    """Whether a new service fans out in C: built, and not switched off by the environment."""
    return AVAILABLE and os.environ.get("SV2FFI_NATIVE_FANOUT", "1") != "0"


def units(frames) -> Optional[tuple]:
    """The AEAD messages of frames split as (6-byte header, payload), in wire order: a
    header, then its payload unless empty.  None when a payload needs more than one Noise
    message (only small tip frames take the C pass; the rest keep ``encrypt_frame``)."""
    out = []
    for header, payload in frames:
        if len(payload) > MAX_PT_CHUNK:
            return None
        out.append(header)
        if payload:
            out.append(payload)
    return tuple(out)


def seal_send(unit_tuple: tuple, targets: list, threads: int = 0) -> list:
    """Seal ``unit_tuple`` for each ``(fd, key, first_nonce)`` and send it on ``fd``
    (non-blocking, whose transport has nothing queued), on at most ``threads`` threads (0:
    as many as pay).  Per target: None (all sent), bytes (the rest, for the transport to
    queue) or an errno (the socket failed)."""
    return _fanout.seal_send(unit_tuple, targets, threads)


def describe() -> str:
    """Which tip pass a TP started now would use, and why (``sv2ffi config``, the TP's log)."""
    if not AVAILABLE:
        return ("Python (sv2ffi._fanout was not built: no OpenSSL libcrypto headers when "
                "the package was built)")
    if not enabled():
        return "Python (SV2FFI_NATIVE_FANOUT=0)"
    limit = thread_limit()
    return ("C (sv2ffi._fanout: OpenSSL ChaCha20-Poly1305 + send(2), one pass per tip, "
            + (f"at most {limit} thread{'s' if limit != 1 else ''}"
               f" (SV2FFI_FANOUT_THREADS={limit}))" if limit
               else "on up to 4 threads from 96 clients, no more than the CPUs)"))

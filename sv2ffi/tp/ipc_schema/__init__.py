"""Bitcoin Core's IPC interfaces (Cap'n Proto), as far as a template provider uses them.

The ``.capnp`` files here are written for sv2ffi from the facts of Core's schema: file
ids (every interface id is derived from its file id and its name), names, method
ordinals, field types and defaults.  A Cap'n Proto call names only the interface id and
the method ordinal, and a struct field is stored XOR its default, so those facts are the
whole wire contract; ``tests/vectors/core_ipc_wire.json`` pins them to Core's own files.

Supported: Bitcoin Core v31 and master 31.99.  Core v30 served an incompatible Mining
interface (``Init.makeMining`` at ordinal 2, a different ``BlockTemplate``); it is detected
and refused (see ``sources/ipc.py``).
"""

from __future__ import annotations

import functools
from pathlib import Path
from types import SimpleNamespace

SCHEMA_DIR = Path(__file__).resolve().parent
FILES = ("proxy", "common", "echo", "mining", "init")
SUPPORTED_CORE = "Bitcoin Core v31 and master (31.99)"


@functools.lru_cache(maxsize=None)
def load() -> SimpleNamespace:
    """The compiled schema: ``.proxy``, ``.common``, ``.mining``, ``.init`` modules.

    A parser of our own, not pycapnp's global one, so another schema with the same file
    ids (Core's files in a conformance check, a test double's older Init) cannot collide.
    """
    import capnp  # imported lazily: only --source ipc needs pycapnp

    parser = capnp.SchemaParser()
    return SimpleNamespace(**{name: parser.load(str(SCHEMA_DIR / f"{name}.capnp"))
                              for name in FILES})

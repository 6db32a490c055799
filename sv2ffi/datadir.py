"""The data directory, laid out like Bitcoin Core's.

::

    ~/.sv2ffi/                 the root (--datadir); holds sv2ffi.conf
        main/  testnet3/  testnet4/  signet/  regtest/
            sv2_authority_key  sv2_authority_key.pub  sv2_static_key   (mode 0600)
            solved-blocks/<height>-<hash>.blk

Why it is strict about existing directories: the authority key is what pools pin.  A
mistyped ``--datadir`` that silently created a fresh directory would mint a new authority
key, and every pool would refuse the TP until someone noticed.  So, as Core does with
``-datadir``, a root given explicitly must already exist; only the default root
(``~/.sv2ffi``) and the per-network subdirectories are created.

Unlike Core, mainnet has its own subdirectory too (``main/``): the root then holds only
configuration, and no network's keys can be mistaken for another's.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from . import bitcoin as btc
from .durable import not_a_directory, private_dir
from .errors import DatadirError  # noqa: F401  (defined with the other typed errors)
from .keys import AUTHORITY_KEY_FILE, STATIC_KEY_FILE

CONF_FILE = "sv2ffi.conf"
#: per-network subdirectory names (Core's, with main/ for mainnet)
NET_DIRS = {"main": "main", "test": "testnet3", "testnet4": "testnet4", "signet": "signet",
            "regtest": "regtest"}


def default_root() -> Path:
    return Path.home() / ".sv2ffi"


def net_dir_name(chain: str) -> str:
    return NET_DIRS[btc.network(chain).name]


def resolve_root(root=None) -> Path:
    """The root directory: as given (expanded), else the default."""
    return Path(root).expanduser() if root is not None else default_root()


def net_dir(root, chain: str, *, create: bool = True) -> Path:
    """``root/<network>``: where keys and solved blocks of ``chain`` live.

    ``root=None`` is the default root, created if missing (mode 0700).  A root given
    explicitly must exist: DatadirError otherwise, as for a file where a directory
    belongs.  The network subdirectory is created (mode 0700) when ``create``.
    """
    explicit = root is not None
    base = resolve_root(root)
    if not base.is_dir():
        if base.exists() or base.is_symlink():
            raise DatadirError(not_a_directory(base))
        if explicit:
            raise DatadirError(
                f"data directory {base} does not exist; create it first (a mistyped "
                "--datadir must not silently create a new authority key that no pool has "
                "pinned)")
        if create:
            if not base.parent.is_dir():
                raise DatadirError(f"cannot create the data directory {base}: "
                                   f"{base.parent} does not exist")
            private_dir(base)
    d = base / net_dir_name(chain)
    _refuse_flat_layout(base, d)
    if create:
        private_dir(d)
    elif (d.exists() or d.is_symlink()) and not d.is_dir():
        raise DatadirError(not_a_directory(d))
    return d


def _refuse_flat_layout(base: Path, d: Path) -> None:
    """Keys directly in the root (``sv2ffi keygen --datadir`` before per-network
    subdirectories, or sv2-tp's files copied there) and none in the network directory:
    starting would mint a new key beside the one pools know."""
    if (d / AUTHORITY_KEY_FILE).exists():
        return
    if (base / AUTHORITY_KEY_FILE).exists() or (base / STATIC_KEY_FILE).exists():
        raise DatadirError(
            f"{base / AUTHORITY_KEY_FILE} is in the data directory's root, but keys live in "
            f"its per-network subdirectory ({d}); move them there (mv {base}/sv2_* {d}/), "
            "or convert sv2-tp's key files with `sv2ffi keygen --import-sv2tp FILE`")


def conf_path(root=None) -> Path:
    """Where the configuration file is looked for by default: ``<root>/sv2ffi.conf``."""
    return resolve_root(root) / CONF_FILE


def is_private(path: Path) -> Optional[bool]:
    """Whether only the owner can read ``path`` (None if it cannot be checked)."""
    try:
        return not (os.stat(path).st_mode & 0o077)
    except OSError:
        return None

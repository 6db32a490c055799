"""Log output of ``sv2ffi tp``: plain text lines on stderr an operator can grep.

- One timestamp per line, and none at all when stderr goes to journald, which stamps
  every line itself (systemd sets ``JOURNAL_STREAM`` to the device and inode of the
  stream it connected; matching it against stderr tells journald from a redirect).
- ``--log-level debug`` must stay readable on a real node: python-bitcoinrpc logs every
  call's arguments, and the rpc source every reply, at DEBUG on the "BitcoinRPC" logger,
  which for getblocktemplate means every mempool transaction in hex (megabytes per
  call).  Those records are cut to their first ``RPC_LOG_CHARS`` characters, enough to
  see which call was made and how it started.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Optional

LOG_ENV = "SV2FFI_LOG_LEVEL"
RPC_LOGGER = "BitcoinRPC"
RPC_LOG_CHARS = 300
FORMAT = "%(levelname)-7s %(name)s: %(message)s"


def under_journald(stream=None) -> bool:
    """Whether ``stream`` (default stderr) is the journald stream systemd set up."""
    value = os.environ.get("JOURNAL_STREAM", "")
    try:
        dev, ino = (int(x) for x in value.split(":"))
        st = os.fstat((stream or sys.stderr).fileno())
    except (ValueError, OSError, AttributeError):
        return False
    return (st.st_dev, st.st_ino) == (dev, ino)


class TruncateRpcPayloads(logging.Filter):
    """Shortens python-bitcoinrpc's request/response dumps (see the module docstring)."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        if len(msg) > RPC_LOG_CHARS:
            record.msg = f"{msg[:RPC_LOG_CHARS]}... ({len(msg)} characters, truncated)"
            record.args = None
        return True


_rpc_filter = TruncateRpcPayloads()


def setup_logging(level: Optional[str]) -> None:
    """Configure the root logger for the ``sv2ffi tp`` process."""
    name = (level or os.environ.get(LOG_ENV) or "info").upper()
    fmt = FORMAT if under_journald() else "%(asctime)s " + FORMAT
    logging.basicConfig(level=getattr(logging, name, logging.INFO), stream=sys.stderr,
                        format=fmt, force=True)
    rpc = logging.getLogger(RPC_LOGGER)
    if _rpc_filter not in rpc.filters:
        rpc.addFilter(_rpc_filter)

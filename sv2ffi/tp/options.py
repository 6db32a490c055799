"""What an operator may write for ``sv2ffi tp``: value types with their ranges, listen
addresses, and sv2-tp's spellings.

The same checks serve the command line and the configuration file (``config_file``), so a
value refused in one is refused in the other with the same words.
"""

from __future__ import annotations

import argparse
import ipaddress
import re
from typing import Optional

from .. import bitcoin as btc

#: sv2-tp (and Bitcoin Core) option names -> our flag, for hints on the command line and as
#: keys accepted in sv2ffi.conf.  Values: (our flag, the chain a boolean option selects).
SV2TP_NAMES = {
    "sv2port": ("--sv2-port", None),
    "sv2bind": ("--sv2-bind", None),
    "sv2feedelta": ("--fee-delta", None),
    "templateinterval": ("--template-interval", None),
    "chain": ("--chain", None),
    "datadir": ("--datadir", None),
    "conf": ("--conf", None),
    "testnet": ("--chain", "test"),
    "testnet3": ("--chain", "test"),
    "testnet4": ("--chain", "testnet4"),
    "signet": ("--chain", "signet"),
    "regtest": ("--chain", "regtest"),
    "debug": ("--log-level", "debug"),
    "loglevel": ("--log-level", None),
    "version": ("--version", None),
    "ipcconnect": ("--ipcconnect", None),  # with --source ipc
}
#: sv2-tp options with no counterpart here: named in hints, ignored (with a warning) in
#: sv2ffi.conf so an sv2-tp configuration can be carried over line by line.
SV2TP_WITHOUT_COUNTERPART = {
    "pid": "run it under systemd or another supervisor (contrib/sv2ffi-tp.service)",
    "debuglogfile": "sv2ffi logs to stderr (journald under systemd)",
    "printtoconsole": "sv2ffi logs to stderr (journald under systemd)",
    "logtimestamps": "timestamps are on unless journald adds its own",
    "shrinkdebugfile": "sv2ffi writes no debug log file",
    "debugexclude": "sv2ffi has no log categories; --log-level applies to all",
    "loglevelalways": "sv2ffi always prints the level",
    "logips": "client addresses are always logged",
    "logsourcelocations": "not available",
    "logthreadnames": "not available",
    "logtimemicros": "timestamps have milliseconds",
}


# ---- value types (argparse ``type=`` callables) -------------------------------------------


def _number(kind, text: str, what: str):
    try:
        return kind(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"{what} expected, got {text!r}") from None


def port(text: str) -> int:
    """A TCP port; 0 asks the system for a free one (printed at start)."""
    n = _number(int, text, "a port number")
    if not 0 <= n <= 65535:
        raise argparse.ArgumentTypeError(f"port {n} is not in 0..65535")
    return n


def nonnegative_int(text: str) -> int:
    n = _number(int, text, "a whole number")
    if n < 0:
        raise argparse.ArgumentTypeError(f"{n} is negative")
    return n


def positive_int(text: str) -> int:
    n = _number(int, text, "a whole number")
    if n < 1:
        raise argparse.ArgumentTypeError(f"{n} is not at least 1")
    return n


def nonnegative_seconds(text: str) -> float:
    x = _number(float, text, "a number of seconds")
    if not 0 <= x < float("inf"):  # also refuses nan
        raise argparse.ArgumentTypeError(f"{text} seconds is not a non-negative duration")
    return x


def positive_seconds(text: str) -> float:
    x = _number(float, text, "a number of seconds")
    if not 0 < x < float("inf"):
        raise argparse.ArgumentTypeError(f"{text} seconds is not a positive duration")
    return x


def chain(text: str) -> str:
    """A chain as bitcoind and sv2-tp name it -> our network name."""
    try:
        return btc.network(text.strip()).name
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


LOG_LEVELS = ("debug", "info", "warning", "error")


def log_level(text: str) -> str:
    t = text.strip().lower()
    if t not in LOG_LEVELS:
        raise argparse.ArgumentTypeError(f"log level {text!r} is not one of "
                                         f"{', '.join(LOG_LEVELS)}")
    return t


# ---- listen addresses ------------------------------------------------------------------------


def split_host_port(text: str) -> tuple[str, Optional[int]]:
    """``addr``, ``addr:port``, ``[v6]`` or ``[v6]:port`` (and a bare IPv6 address) ->
    (host, port or None), the forms sv2-tp's -sv2bind takes."""
    t = text.strip()
    if not t:
        raise argparse.ArgumentTypeError("empty address")
    if t.startswith("["):
        m = re.fullmatch(r"\[([^\]]+)\](?::(\d+))?", t)
        if not m:
            raise argparse.ArgumentTypeError(f"{text!r}: expected [IPv6] or [IPv6]:port")
        host, p = m.group(1), m.group(2)
        _check_ipv6(host, text)
    elif t.count(":") == 1:
        host, p = t.split(":")
        if not p.isdigit():
            raise argparse.ArgumentTypeError(f"{text!r}: the port must be a number")
    elif ":" in t:  # a bare IPv6 address, no port
        host, p = t, None
        _check_ipv6(host, text)
    else:
        host, p = t, None
    if not host:
        raise argparse.ArgumentTypeError(f"{text!r}: no address before the port")
    return host, (port(p) if p is not None else None)


def _check_ipv6(host: str, text: str) -> None:
    try:
        ipaddress.IPv6Address(host)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: {host!r} is not an IPv6 address") from None


def bind_address(text: str) -> tuple[str, Optional[int]]:
    """``--sv2-bind``: an address, optionally with a port (which then wins over
    ``--sv2-port``, as in sv2-tp)."""
    return split_host_port(text)


def metrics_address(text: str) -> tuple[str, int]:
    """``--metrics-bind``: ``PORT`` (on 127.0.0.1), ``ADDR:PORT`` or ``[IPv6]:PORT``."""
    t = text.strip()
    if t.isdigit():
        return "127.0.0.1", port(t)
    host, p = split_host_port(t)
    if p is None:
        raise argparse.ArgumentTypeError(f"{text!r}: give a port (PORT, ADDR:PORT or "
                                         "[IPv6]:PORT)")
    return host, p


def format_host_port(host: str, p: int) -> str:
    return f"[{host}]:{p}" if ":" in host else f"{host}:{p}"


# ---- sv2-tp spellings on the command line ------------------------------------------------------

_DASHED = re.compile(r"^(-{1,2})([A-Za-z0-9]+)(?:=(.*))?$", re.S)


def sv2tp_hint(token: str, our_flags: set) -> Optional[str]:
    """A hint if ``token`` is an sv2-tp/Core-style option (``-sv2port=8442``, ``-regtest``,
    ``--sv2feedelta=500``) rather than one of ours; None otherwise."""
    m = _DASHED.match(token)
    if not m:
        return None
    dashes, name, value = m.groups()
    if f"--{name}" in our_flags and dashes == "--":
        return None
    key = name.lower()
    if key in SV2TP_WITHOUT_COUNTERPART:
        return (f"{token} is an sv2-tp option with no counterpart here: "
                f"{SV2TP_WITHOUT_COUNTERPART[key]}")
    if key not in SV2TP_NAMES:
        return None
    flag, implied = SV2TP_NAMES[key]
    if implied is not None:
        ours = f"{flag} {implied}"
    elif value:
        ours = f"{flag} {value}"
    else:
        ours = f"{flag} VALUE" if flag != "--version" else flag
    return (f"{token} is sv2-tp's spelling; here it is {ours} "
            "(sv2-tp's names are accepted in sv2ffi.conf; see `sv2ffi tp --help`)")

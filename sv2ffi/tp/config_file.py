"""``sv2ffi.conf``: the template provider's configuration file.

Format, as bitcoin.conf and sv2-tp.conf::

    # a comment (a line starting with #; a # later in a line is part of the value)
    sv2-bind=0.0.0.0          our long flag names, without the dashes
    sv2port=8442              or sv2-tp's names: sv2port, sv2bind, sv2feedelta,
    templateinterval=10       templateinterval, chain / testnet4=1 / signet=1 / regtest=1,
    signet=1                  datadir
    [signet]                  a section applies only to that chain and wins over the
    rpc-cookie-file=/var/lib/bitcoind/signet/.cookie      lines above it

The command line wins over the file.  Values go through the same checks as the flags
(``options``), and mistakes name the file and line: an unknown key is an error rather than
something silently ignored, except sv2-tp options with no counterpart here (``ipcconnect``,
``pid``, ...), which are ignored with a warning so an sv2-tp configuration carries over.
Unlike Core, lines before any section apply to every chain, including ``sv2port`` and
``sv2bind``.
"""

from __future__ import annotations

import argparse
import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from .. import bitcoin as btc
from .options import SV2TP_NAMES, SV2TP_WITHOUT_COUNTERPART, log_level

#: keys that only make sense on the command line
NOT_IN_FILE = {"conf", "help", "version"}


class ConfigFileError(ValueError):
    """A configuration file that cannot be used; the message names the file and line."""


@dataclass(frozen=True)
class Entry:
    path: str
    line: int
    section: Optional[str]  # canonical chain name, None before any section
    key: str
    value: str

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"


def parse(text: str, path: str = "sv2ffi.conf") -> list[Entry]:
    """Lines -> entries (syntax only; ``resolve`` gives them meaning)."""
    out = []
    section = None
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            if not line.endswith("]"):
                raise ConfigFileError(f"{path}:{n}: a section is [chain], got {line!r}")
            name = line[1:-1].strip()
            canonical = btc.CHAIN_ALIASES.get(name)
            if canonical is None:
                raise ConfigFileError(f"{path}:{n}: unknown section [{name}] (sections are "
                                      "chains: main, test, testnet4, signet, regtest)")
            section = canonical
            continue
        if "=" not in line:
            raise ConfigFileError(f"{path}:{n}: expected key=value, got {line!r} (a chain is "
                                  f"selected with e.g. regtest=1 or chain=regtest)")
        key, value = line.split("=", 1)
        key = key.strip().lstrip("-").lower()
        if not key:
            raise ConfigFileError(f"{path}:{n}: no key before '='")
        out.append(Entry(path, n, section, key, value.strip()))
    return out


def load(path) -> list[Entry]:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigFileError(f"{p}: not a text file (UTF-8)") from None
    except OSError as e:
        raise ConfigFileError(f"cannot read configuration file {p}: {e.strerror or e}") from None
    return parse(text, str(p))


def _flag_table(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """Every spelling a key may take -> the parser's action."""
    table = {}
    for action in parser._actions:
        for opt in action.option_strings:
            if opt.startswith("--"):
                name = opt[2:]
                table[name] = action
                table[name.replace("-", "_")] = action
    return table


def _to_bool(e: Entry) -> bool:
    v = e.value.lower()
    if v in ("1", "true", "yes", "on", ""):
        return True
    if v in ("0", "false", "no", "off"):
        return False
    raise ConfigFileError(f"{e.where}: {e.key}={e.value!r}: expected 1 or 0")


def _convert(e: Entry, action: argparse.Action):
    if isinstance(action, argparse._StoreTrueAction):
        return _to_bool(e)
    value = e.value
    try:
        if action.type is not None:
            value = action.type(value)
    except (argparse.ArgumentTypeError, ValueError) as err:
        raise ConfigFileError(f"{e.where}: {e.key}={e.value}: {err}") from None
    if action.choices is not None and value not in action.choices:
        raise ConfigFileError(f"{e.where}: {e.key}={e.value}: not one of "
                              f"{', '.join(map(str, action.choices))}")
    return value


def resolve(entries: list[Entry], parser: argparse.ArgumentParser, *,
            chain: Optional[str] = None, source: Optional[str] = None,
            warn: Callable[[str], None] = lambda msg: None) -> dict:
    """The file's settings as ``{argparse dest: value}`` for the chain in use.

    ``chain`` is the command line's ``--chain`` if given; otherwise the file's top-level
    chain selection (``chain=`` or ``regtest=1``...) decides which section applies.
    """
    table = _flag_table(parser)
    chain_action = table["chain"]

    def settle(e: Entry) -> Optional[tuple[str, object]]:
        if e.key in NOT_IN_FILE:
            if e.key == "conf":
                raise ConfigFileError(f"{e.where}: conf cannot be set inside a configuration "
                                      "file; use --conf on the command line")
            warn(f"{e.where}: {e.key} belongs on the command line; ignored")
            return None
        if e.key in SV2TP_WITHOUT_COUNTERPART:
            warn(f"{e.where}: sv2-tp's {e.key} has no counterpart in sv2ffi "
                 f"({SV2TP_WITHOUT_COUNTERPART[e.key]}); ignored")
            return None
        if e.key in table:
            action = table[e.key]
            return action.dest, _convert(e, action)
        if e.key in SV2TP_NAMES:
            flag, implied = SV2TP_NAMES[e.key]
            action = table[flag[2:]]
            if implied is None and e.key == "loglevel":  # sv2-tp: [category:]level
                level = e.value.rsplit(":", 1)[-1].strip().lower()
                try:  # sv2-tp's trace is finer than anything here: debug is the closest
                    return action.dest, log_level("debug" if level == "trace" else level)
                except argparse.ArgumentTypeError as err:
                    raise ConfigFileError(f"{e.where}: {e.key}={e.value}: {err}") from None
            if implied is None:
                return action.dest, _convert(e, action)
            # debug=<category> turns debug logging on (sv2-tp: debug=sv2); 0/none leaves it
            enabled = e.value.lower() not in ("0", "none") if e.key == "debug" else _to_bool(e)
            return (action.dest, implied) if enabled else None
        close = difflib.get_close_matches(e.key, list(table) + list(SV2TP_NAMES), n=1)
        raise ConfigFileError(f"{e.where}: unknown option {e.key!r}"
                              + (f" (did you mean {close[0]!r}?)" if close else ""))

    top: dict = {}
    chain_lines: dict = {}
    for e in entries:
        if e.section is not None:
            continue
        got = settle(e)
        if got is None:
            continue
        dest, value = got
        if dest == chain_action.dest:
            if dest in top and top[dest] != value:
                raise ConfigFileError(
                    f"{e.where}: selects chain {value!r}, but {chain_lines[dest]} already "
                    f"selected {top[dest]!r}")
            chain_lines[dest] = e.where
        top[dest] = value
    named = chain if chain is not None else top.get(chain_action.dest, chain_action.default)
    if named is None and (source if source is not None else top.get("source", "regtest")) != "rpc":
        named = "regtest"  # the built-in chain
    out = dict(top)
    if named is None:  # --source rpc follows the node's chain, learned later
        sections = [e for e in entries if e.section is not None]
        if sections:
            warn(f"{sections[0].where}: [chain] sections are ignored when the chain is not "
                 "given (--chain or chain=): with --source rpc it is learned from the node")
        return out
    use_chain = btc.network(named).name
    for e in entries:
        if e.section != use_chain:  # top-level lines are done; other chains' sections unused
            continue
        got = settle(e)
        if got is None:
            continue
        dest, value = got
        if dest == chain_action.dest:
            raise ConfigFileError(f"{e.where}: the chain cannot be selected inside the "
                                  f"[{e.section}] section")
        out[dest] = value
    return out

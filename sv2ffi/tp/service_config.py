"""``TpService``'s arguments, checked when it is built.

A template provider misconfigured in Python (a port out of range, a negative fee delta, a
data directory under a parent that does not exist) should fail where the mistake is
written, with the argument named, not later on the service's thread or at the first
solved block.
"""

from __future__ import annotations

import math
from pathlib import Path

from .. import bitcoin as btc
from .core import TpConfig


def _need(cond: bool, msg: str) -> None:
    if not cond:
        raise ValueError(msg)


def _number(name: str, value, *, minimum: float, integer: bool = False,
            strict: bool = False) -> None:
    kinds = (int,) if integer else (int, float)
    _need(isinstance(value, kinds) and not isinstance(value, bool),
          f"{name} must be a{'n integer' if integer else ' number'}, got {value!r}")
    _need(not math.isnan(value) and (value > minimum if strict else value >= minimum),
          f"{name} must be {'>' if strict else '>='} {minimum}, got {value!r}")


def check_tp_config(config: TpConfig) -> None:
    _need(isinstance(config, TpConfig), f"config must be a TpConfig, got {type(config).__name__}")
    _need(isinstance(config.network, btc.Network),
          f"config.network must be a bitcoin.Network (bitcoin.network('main'), ...), got "
          f"{config.network!r}")
    _number("config.fee_delta", config.fee_delta, minimum=0, integer=True)
    _number("config.template_interval", config.template_interval, minimum=0)
    _number("config.stale_grace", config.stale_grace, minimum=0)
    _number("config.block_max_weight", config.block_max_weight, minimum=4000, integer=True)
    _need(config.block_max_weight <= btc.MAX_BLOCK_WEIGHT,
          f"config.block_max_weight must be <= {btc.MAX_BLOCK_WEIGHT}")
    _number("config.max_clients", config.max_clients, minimum=1, integer=True)
    for name in ("msg_rate", "tx_data_rate", "constraints_rate"):
        _number(f"config.{name}", getattr(config, name), minimum=0, strict=True)
    for name in ("msg_burst", "tx_data_burst", "constraints_burst"):
        _number(f"config.{name}", getattr(config, name), minimum=1, integer=True)


def check_service_args(source, config, host, port, datadir, keys, tick_interval,
                       handshake_timeout, setup_timeout, write_timeout, max_pending,
                       max_pending_per_source) -> None:
    from .sources import Source

    _need(isinstance(source, Source), "source must be a template source (RegtestSource, "
          f"RpcSource, PushedSource...), got {type(source).__name__}")
    if config is not None:
        check_tp_config(config)
    _need(isinstance(host, str) and bool(host), f"host must be an address, got {host!r}")
    _number("port", port, minimum=0, integer=True)
    _need(port <= 65535, f"port must be <= 65535, got {port}")
    _need(datadir is not None, "datadir is needed: solved blocks are written there before "
          "they are submitted (and keys are kept there unless keys= is given)")
    d = Path(datadir)
    _need(d.is_dir() or d.parent.is_dir(),
          f"datadir {d}: its parent directory {d.parent} does not exist (a mistyped path must "
          "not silently create a new authority key)")
    _need(not d.exists() or d.is_dir(), f"datadir {d} exists and is not a directory")
    if keys is not None:
        from ..keys import DatadirKeys
        _need(isinstance(keys, DatadirKeys), f"keys must be DatadirKeys, got {type(keys).__name__}")
    _number("tick_interval", tick_interval, minimum=0, strict=True)
    _number("handshake_timeout", handshake_timeout, minimum=0, strict=True)
    _number("setup_timeout", setup_timeout, minimum=0, strict=True)
    _number("write_timeout", write_timeout, minimum=0, strict=True)
    _number("max_pending", max_pending, minimum=1, integer=True)
    _number("max_pending_per_source", max_pending_per_source, minimum=1, integer=True)

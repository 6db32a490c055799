"""Where templates come from.

A source produces two kinds of events for the TP service (``sink``):
``sink.on_tip(TipInfo)`` as soon as a new best block is known (the fast path: only
SetNewPrevHash depends on it; its ``then`` runs once the clients are written to, for a
source's own request that must not delay them) and ``sink.on_template(BlockTemplate)`` whenever a full
template is available.  ``submit_block`` hands a solved, already persisted block back to
the node.  Sources run on the service's event loop; sinks are plain methods.

The tip only moves forward: the core ignores a tip at or below its height, because node
notifications arrive late and out of order.  A source that has checked with the node that
it really reorganised to such a block passes ``reorg=True``; ``sink.tip_relation`` tells a
source whether it needs to check (``"older"``).  A source that finds it must not serve at all (the node
runs another chain than configured) calls ``sink.on_fatal(error)``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Callable, Optional, Protocol

from ..core import TipInfo
from ..template import BlockTemplate


class Sink(Protocol):
    def on_tip(self, tip: TipInfo, *, reorg: bool = False,
               then: Optional[Callable[[], None]] = None) -> None: ...

    def on_template(self, tpl: BlockTemplate, *, reorg: bool = False) -> None: ...

    def is_newer(self, prev_hash: bytes, height: int) -> bool: ...

    def tip_relation(self, prev_hash: bytes, height: int) -> str: ...

    def on_fatal(self, error: BaseException) -> None: ...

    def on_tip_correction(self, tip: TipInfo) -> None: ...


class Source(ABC):
    """Base class: subclasses implement start/stop/submit_block."""

    name = "source"
    sink: Optional[Sink] = None

    def attach(self, sink: Sink) -> None:
        self.sink = sink

    async def start(self) -> None:
        """Begin producing events (returns quickly; work continues in tasks)."""

    async def stop(self) -> None:
        """Stop producing events; no sink call happens after this returns."""

    def on_constraints(self, constraints: frozenset) -> None:
        """The set of distinct client constraints (``template.Constraints``) changed.

        Called by the service on its loop.  A source whose node selects transactions per
        reservation (``ipc``) asks the node for room for the largest; others ignore it.
        """

    @abstractmethod
    async def submit_block(self, block: bytes) -> Optional[str]:
        """Give a solved block to the node: None when accepted (``duplicate`` counts as
        accepted), else the node's reason."""

    def describe(self) -> str:
        return self.name

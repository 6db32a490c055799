"""The template provider's brain, sans-I/O: sessions, template cache and update policy.

Adapters feed it events (a client message, a new chain tip, a new template from the
source, the passage of time) together with the current time, and get back ``Effects``:
messages to send, connections to close, solved blocks to persist and submit.  Nothing here
touches a socket, a thread or an event loop, so every rule below is tested by calling
methods with plain message objects and a fake clock, and the same object serves the
asyncio server and the C ABI.

Rules (design.md, "Template provider behaviour"):
- clients with equal constraints share one template (one id);
- a template is cached before any message naming it is emitted;
- the empty template for the next height is announced ahead of time, so a new tip costs
  each client one SetNewPrevHash referencing a future template it already holds; the full
  template follows when the source has it;
- fee-driven updates need the fee delta *and* the minimum interval; new tips never wait;
- old-tip templates stay servable for a grace period, then only their ids are remembered
  (``stale-template-id``); ids never issued are ``template-id-not-found``; same-tip
  templates are capped by count.
"""

from __future__ import annotations

import enum
import logging
import time as _time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Optional

from .. import bitcoin as btc
from ..errors import BlockRejectedError, ProtocolViolationError
from ..messages import (CoinbaseOutputConstraints, Message, RequestTransactionData,
                        RequestTransactionDataError, RequestTransactionDataSuccess,
                        SetupConnection, SetupConnectionError, SetupConnectionSuccess,
                        SubmitSolution)
from ..schema import ERROR_CODES, PROTOCOL_VERSION
from .template import BlockTemplate, Constraints, ServedTemplate, select_transactions

log = logging.getLogger("sv2ffi.tp")

TEMPLATE_DISTRIBUTION = 2
DEFAULT_VERSION = 0x20000000


@dataclass
class TpConfig:
    """Policy knobs; names follow sv2-tp's options where one exists."""

    network: btc.Network = field(default_factory=lambda: btc.NETWORKS["regtest"])
    fee_delta: int = 1000  #: sat a fee-driven update must add (-sv2feedelta)
    template_interval: float = 5.0  #: min seconds between fee-driven updates (-templateinterval)
    stale_grace: float = 10.0  #: seconds old-tip templates stay servable
    max_templates_per_tip: int = 32  #: same-tip templates kept before the oldest are dropped
    block_max_weight: int = btc.MAX_BLOCK_WEIGHT  #: like bitcoind's -blockmaxweight
    max_clients: int = 1000
    msg_rate: float = 20.0  #: sustained client messages per second
    msg_burst: int = 100
    tx_data_rate: float = 4.0  #: sustained RequestTransactionData per second
    tx_data_burst: int = 20
    tombstone_limit: int = 100_000  #: ids remembered as stale after their data is dropped


@dataclass(frozen=True)
class TipInfo:
    """A new best block as far as mining is concerned: what SetNewPrevHash needs."""

    prev_hash: bytes  # hash of the new best block (internal order)
    height: int  # height of the block to mine on top of it
    bits: int  # nBits of that block
    time: int  # header nTime to start with


@dataclass
class Solution:
    """A rebuilt block with valid proof of work: persist it, then submit it."""

    session: int
    template_id: int
    height: int
    block: bytes
    block_hash: bytes


class Effects:
    """What the adapter must do after an event, in order."""

    __slots__ = ("sends", "closes", "solutions")

    def __init__(self):
        self.sends: list = []  # (session id, Message)
        self.closes: list = []  # (session id, reason)
        self.solutions: list = []  # Solution

    def send(self, sid: int, msg: Message) -> None:
        self.sends.append((sid, msg))

    def extend(self, other: "Effects") -> "Effects":
        self.sends += other.sends
        self.closes += other.closes
        self.solutions += other.solutions
        return self

    def __bool__(self) -> bool:
        return bool(self.sends or self.closes or self.solutions)


class SessionState(enum.Enum):
    AWAIT_SETUP = "await-setup"
    AWAIT_CONSTRAINTS = "await-constraints"
    ACTIVE = "active"
    CLOSED = "closed"


class TokenBucket:
    """Rate limit on what one client may ask for; refilled from the caller's clock."""

    __slots__ = ("rate", "capacity", "tokens", "stamp")

    def __init__(self, rate: float, capacity: int, now: float):
        self.rate, self.capacity, self.tokens, self.stamp = rate, capacity, float(capacity), now

    def take(self, now: float) -> bool:
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


@dataclass
class Session:
    sid: int
    state: SessionState
    msgs: TokenBucket
    tx_data: TokenBucket
    constraints: Optional[Constraints] = None
    last_sent_id: int = 0
    held_future: Optional[int] = None  # id of an announced, not yet activated template
    current_id: Optional[int] = None  # template the client works on for the current tip
    peer: str = ""


@dataclass
class Group:
    """Sessions with equal constraints: they share templates and the update policy."""

    constraints: Constraints
    members: set = field(default_factory=set)
    current: Optional[ServedTemplate] = None
    sent_fees: int = 0
    last_sent_at: float = float("-inf")
    pending: bool = False
    fresh_tip: bool = True  # the tip's first full template is still to come


class TemplateProviderCore:
    def __init__(self, config: Optional[TpConfig] = None):
        self.config = config or TpConfig()
        self._next_id = 1
        self._next_sid = 1
        self.tip: Optional[TipInfo] = None
        self.template: Optional[BlockTemplate] = None  # newest source template for the tip
        self._like: Optional[BlockTemplate] = None  # newest template of any tip
        self.future: Optional[ServedTemplate] = None  # announced empty next-height template
        #: the same empty future work re-issued under newer ids for clients that joined
        #: after it was announced (ids must increase per connection); activated with it
        self.future_clones: dict[int, ServedTemplate] = {}
        self.cache: dict[int, ServedTemplate] = {}
        self.stale_since: dict[int, float] = {}
        self.tombstones: OrderedDict[int, None] = OrderedDict()
        self.groups: dict[Constraints, Group] = {}
        self.sessions: dict[int, Session] = {}
        self._old_tips: OrderedDict[bytes, None] = OrderedDict()
        self._empty_current: Optional[ServedTemplate] = None  # activated empty template
        self.solutions_seen = 0

    # ---- ids and cache -------------------------------------------------------------------

    def _new_id(self) -> int:
        tid = self._next_id
        self._next_id += 1
        return tid

    def _cache(self, st: ServedTemplate) -> ServedTemplate:
        self.cache[st.template_id] = st
        return st

    def _drop(self, tid: int) -> None:
        self.cache.pop(tid, None)
        self.stale_since.pop(tid, None)
        self.tombstones[tid] = None
        while len(self.tombstones) > self.config.tombstone_limit:
            self.tombstones.popitem(last=False)

    # ---- sessions --------------------------------------------------------------------------

    def open_session(self, now: float, peer: str = "") -> int:
        """Register a connection; refuses beyond ``max_clients``."""
        if len(self.sessions) >= self.config.max_clients:
            raise ProtocolViolationError(f"too many clients ({self.config.max_clients})")
        sid = self._next_sid
        self._next_sid += 1
        c = self.config
        self.sessions[sid] = Session(sid, SessionState.AWAIT_SETUP,
                                     TokenBucket(c.msg_rate, c.msg_burst, now),
                                     TokenBucket(c.tx_data_rate, c.tx_data_burst, now), peer=peer)
        return sid

    def close_session(self, sid: int) -> None:
        s = self.sessions.pop(sid, None)
        if s is None:
            return
        s.state = SessionState.CLOSED
        self._leave_group(s)

    def _leave_group(self, s: Session) -> None:
        if s.constraints is None:
            return
        g = self.groups.get(s.constraints)
        if g is not None:
            g.members.discard(s.sid)
            if not g.members:
                del self.groups[s.constraints]

    def _violation(self, s: Session, reason: str, eff: Effects) -> Effects:
        log.warning("client %d%s: %s; disconnecting", s.sid, f" ({s.peer})" if s.peer else "", reason)
        eff.closes.append((s.sid, reason))
        self.close_session(s.sid)
        return eff

    @property
    def active_sessions(self) -> list:
        return [s for s in self.sessions.values() if s.state is SessionState.ACTIVE]

    def receive(self, sid: int, msg: Message, now: float) -> Effects:
        """One message from a client."""
        eff = Effects()
        s = self.sessions.get(sid)
        if s is None:
            return eff
        if not s.msgs.take(now):
            return self._violation(s, "message rate limit exceeded", eff)
        if isinstance(msg, SetupConnection):
            return self._on_setup(s, msg, eff)
        if s.state is SessionState.AWAIT_SETUP:
            return self._violation(s, f"{msg.SPEC.name} before SetupConnection", eff)
        if isinstance(msg, CoinbaseOutputConstraints):
            return self._on_constraints(s, msg, now, eff)
        if isinstance(msg, RequestTransactionData):
            if not s.tx_data.take(now):
                return self._violation(s, "RequestTransactionData rate limit exceeded", eff)
            eff.send(sid, self.transaction_data(msg.template_id))
            return eff
        if isinstance(msg, SubmitSolution):
            self._on_solution(s, msg, eff)
            return eff
        return self._violation(s, f"unexpected {msg.SPEC.name} from a client", eff)

    def _on_setup(self, s: Session, msg: SetupConnection, eff: Effects) -> Effects:
        if s.state is not SessionState.AWAIT_SETUP:
            return self._violation(s, "second SetupConnection", eff)
        code = None
        if msg.protocol != TEMPLATE_DISTRIBUTION:
            code = ERROR_CODES["UNSUPPORTED_PROTOCOL"]
        elif not msg.min_version <= PROTOCOL_VERSION <= msg.max_version:
            code = ERROR_CODES["PROTOCOL_VERSION_MISMATCH"]
        if code is not None:
            eff.send(s.sid, SetupConnectionError(flags=msg.flags, error_code=code))
            return self._violation(s, code, eff)
        eff.send(s.sid, SetupConnectionSuccess(used_version=PROTOCOL_VERSION, flags=0))
        s.state = SessionState.AWAIT_CONSTRAINTS
        return eff

    def _on_constraints(self, s: Session, msg: CoinbaseOutputConstraints, now: float,
                        eff: Effects) -> Effects:
        c = Constraints(msg.coinbase_output_max_additional_size,
                        msg.coinbase_output_max_additional_sigops)
        try:
            c.check(self.config.block_max_weight)
        except ProtocolViolationError as e:
            return self._violation(s, f"impossible CoinbaseOutputConstraints: {e}", eff)
        self._leave_group(s)
        s.constraints = c
        g = self.groups.get(c)
        if g is None:
            g = self.groups[c] = Group(c)
            if self.tip is not None:
                g.fresh_tip = self.template is None
        g.members.add(s.sid)
        s.state = SessionState.ACTIVE
        if self.tip is not None:
            self._send_initial(s, g, now, eff)
        return eff

    # ---- sending templates -------------------------------------------------------------------

    def _fresh_for(self, s: Session, st: ServedTemplate, now: float) -> ServedTemplate:
        """``st`` or, if this client already saw a higher id, the same work under a new id."""
        if st.template_id > s.last_sent_id:
            return st
        return self._cache(st.clone(self._new_id(), now))

    def _emit_template(self, s: Session, st: ServedTemplate, future: bool, eff: Effects) -> None:
        eff.send(s.sid, st.new_template(future))
        s.last_sent_id = max(s.last_sent_id, st.template_id)

    def _send_initial(self, s: Session, g: Group, now: float, eff: Effects) -> None:
        """A (re)configured client: the current work as future + SetNewPrevHash, then the
        announced next-height template, in increasing id order.

        The next-height template must come *after* the SetNewPrevHash: clients such as
        SRI's pool and JDC forget every other future template when a SetNewPrevHash
        activates one, so announcing it first would break the client's next tip switch.
        """
        cur = self._group_current(g, now)
        fut = self.future
        send_future = fut is not None and s.held_future != fut.template_id
        cur2 = self._fresh_for(s, cur, now)
        if cur2 is not cur and g.current is cur:
            g.current = cur2
        self._emit_template(s, cur2, True, eff)
        eff.send(s.sid, cur2.set_new_prev_hash())
        s.current_id = cur2.template_id
        if send_future:
            fut2 = self._fresh_for(s, fut, now)
            if fut2 is not fut:
                self.future_clones[fut2.template_id] = fut2
            self._emit_template(s, fut2, True, eff)
            s.held_future = fut2.template_id

    def _group_current(self, g: Group, now: float) -> ServedTemplate:
        tip = self.tip
        if g.current is not None and g.current.prev_hash == tip.prev_hash:
            return g.current
        if self.template is not None:
            st = self._build_for(g, self.template, now)
            g.sent_fees, g.last_sent_at, g.fresh_tip = st.fees, now, False
        else:
            st = self._empty_current
        g.current = st
        return st

    def _build_for(self, g: Group, tpl: BlockTemplate, now: float) -> ServedTemplate:
        t0 = _time.perf_counter()
        keep = select_transactions(tpl.txs, g.constraints, self.config.block_max_weight)
        st = self._cache(ServedTemplate.build(self._new_id(), tpl, keep, now))
        ms = (_time.perf_counter() - t0) * 1000
        log.info("template id=%d height=%d fees=%d sat txs=%d build=%.1fms clients=%d%s",
                 st.template_id, st.height, st.fees, len(st.txs), ms, len(g.members),
                 "" if len(keep) == len(tpl.txs) else f" (trimmed {len(tpl.txs) - len(keep)})")
        return st

    # ---- chain events ------------------------------------------------------------------------

    def _make_future(self, height: int, now: float) -> ServedTemplate:
        like = self._like or BlockTemplate(self.config.network, height, bytes(32),
                                           DEFAULT_VERSION, self.config.network.pow_limit_bits,
                                           0, 0, [])
        return self._cache(ServedTemplate.empty_future(self._new_id(), height, like, now))

    def _announce_future(self, height: int, now: float, eff: Effects) -> None:
        """Send every client the empty template for ``height`` ahead of its tip."""
        fut = self.future = self._make_future(height, now)
        self.future_clones = {}
        msg = fut.new_template(True)
        for s in self.active_sessions:
            eff.send(s.sid, msg)
            s.last_sent_id = fut.template_id
            s.held_future = fut.template_id

    def new_tip(self, tip: TipInfo, now: float) -> Effects:
        """A new best block: SetNewPrevHash to every client, referencing the future template
        it holds; then the empty template for the height after is announced."""
        eff = Effects()
        if self.tip is not None and tip.prev_hash == self.tip.prev_hash:
            return eff
        if self.tip is not None:
            self._old_tips[self.tip.prev_hash] = None
            while len(self._old_tips) > 16:
                self._old_tips.popitem(last=False)
        self._old_tips.pop(tip.prev_hash, None)
        self.tip = tip
        self.template = None
        fut = self.future
        if fut is None or fut.height != tip.height:
            if fut is not None:
                self.stale_since.setdefault(fut.template_id, now)
            self._announce_future(tip.height, now, eff)
            fut = self.future
        fut.activate(tip.prev_hash, tip.bits, tip.time)
        for clone in self.future_clones.values():
            clone.activate(tip.prev_hash, tip.bits, tip.time)
        clones, self.future_clones = self.future_clones, {}
        self.future = None
        self._empty_current = fut
        for tid, st in self.cache.items():
            if st.prev_hash != tip.prev_hash and tid not in self.stale_since:
                self.stale_since[tid] = now
        snph = fut.set_new_prev_hash()
        for s in self.active_sessions:
            if s.held_future == fut.template_id:
                eff.send(s.sid, snph)
                s.current_id = fut.template_id
            elif s.held_future in clones:
                eff.send(s.sid, clones[s.held_future].set_new_prev_hash())
                s.current_id = s.held_future
            else:  # cannot happen for a client active before the tip; kept for safety
                st = self._fresh_for(s, fut, now)
                self._emit_template(s, st, True, eff)
                eff.send(s.sid, st.set_new_prev_hash())
                s.current_id = st.template_id
            s.held_future = None
        for g in self.groups.values():
            g.current, g.sent_fees, g.pending, g.fresh_tip = fut, 0, False, True
        log.info("new tip %s: height %d, SetNewPrevHash(template %d) to %d clients",
                 btc.hash_hex(tip.prev_hash), tip.height - 1, fut.template_id,
                 len(self.active_sessions))
        self._announce_future(tip.height + 1, now, eff)
        return eff

    def is_new_tip(self, tpl: BlockTemplate) -> bool:
        """Whether ``tpl`` builds on a block we have not switched to yet (and not on one we
        already left: a slow getblocktemplate can return after a ZMQ-announced tip)."""
        if self.tip is None:
            return True
        if tpl.prev_hash == self.tip.prev_hash:
            return False
        return not (tpl.prev_hash in self._old_tips and tpl.height <= self.tip.height)

    def new_template(self, tpl: BlockTemplate, now: float) -> Effects:
        """A template from the source: a new tip if its previous block changed, else a
        candidate fee-driven update."""
        eff = Effects()
        if self.tip is None or tpl.prev_hash != self.tip.prev_hash:
            if not self.is_new_tip(tpl):
                log.debug("ignoring a template for an old tip (height %d)", tpl.height)
                return eff
            eff.extend(self.new_tip(TipInfo(tpl.prev_hash, tpl.height, tpl.bits, tpl.time), now))
        elif tpl.height != self.tip.height:
            log.warning("template height %d does not follow the tip (%d); ignored", tpl.height,
                        self.tip.height)
            return eff
        self.template = self._like = tpl
        for g in list(self.groups.values()):
            self._update_group(g, now, eff)
        self._enforce_cap()
        return eff

    def _update_group(self, g: Group, now: float, eff: Effects) -> None:
        tpl = self.template
        if tpl is None:
            return
        c = self.config
        if not g.fresh_tip:
            keep = select_transactions(tpl.txs, g.constraints, c.block_max_weight)
            if tpl.fees_known:
                fees = sum(tpl.txs[i].fee for i in keep)
            else:
                fees = tpl.fees if len(keep) == len(tpl.txs) else 0
            if fees < g.sent_fees + c.fee_delta:
                g.pending = False
                return
            if now - g.last_sent_at < c.template_interval:
                g.pending = True
                return
        elif not tpl.txs:
            return  # the empty template the clients already have is this block
        st = self._build_for(g, tpl, now)
        g.current, g.sent_fees, g.last_sent_at, g.pending, g.fresh_tip = st, st.fees, now, False, False
        msg = st.new_template(False)
        for sid in g.members:
            s = self.sessions.get(sid)
            if s is None or s.state is not SessionState.ACTIVE:
                continue
            eff.send(sid, msg)
            s.last_sent_id = max(s.last_sent_id, st.template_id)
            s.current_id = st.template_id

    def tick(self, now: float) -> Effects:
        """Time passed: drop old-tip templates past the grace period, send fee updates
        the minimum interval was holding back."""
        eff = Effects()
        grace = self.config.stale_grace
        for tid in [t for t, since in self.stale_since.items() if now - since >= grace]:
            self._drop(tid)
        for g in list(self.groups.values()):
            if g.pending and now - g.last_sent_at >= self.config.template_interval:
                self._update_group(g, now, eff)
        if eff and self.tip is not None:
            self._enforce_cap()
        return eff

    def _enforce_cap(self) -> None:
        tip = self.tip
        keep = {g.current.template_id for g in self.groups.values() if g.current is not None}
        same = [tid for tid, st in self.cache.items()
                if st.prev_hash == tip.prev_hash and tid not in keep]
        excess = len(same) + len(keep) - self.config.max_templates_per_tip
        for tid in sorted(same)[:max(excess, 0)]:
            self._drop(tid)

    # ---- requests ----------------------------------------------------------------------------

    def transaction_data(self, template_id: int) -> Message:
        st = self.cache.get(template_id)
        if st is None:
            code = ERROR_CODES["STALE_TEMPLATE_ID" if template_id in self.tombstones
                               else "TEMPLATE_ID_NOT_FOUND"]
            return RequestTransactionDataError(template_id=template_id, error_code=code)
        return RequestTransactionDataSuccess(
            template_id=template_id,
            excess_data=st.witness_reserved_value if st.has_commitment else b"",
            transaction_list=[t.data for t in st.txs])

    def _on_solution(self, s: Session, msg: SubmitSolution, eff: Effects) -> None:
        st = self.cache.get(msg.template_id)
        if st is None:
            what = "stale" if msg.template_id in self.tombstones else "unknown"
            log.warning("client %d: SubmitSolution for %s template id %d ignored", s.sid, what,
                        msg.template_id)
            return
        try:
            block = st.build_block(msg.version, msg.header_timestamp, msg.header_nonce,
                                   msg.coinbase_tx)
        except BlockRejectedError as e:
            log.warning("client %d: SubmitSolution for template %d rejected: %s", s.sid,
                        msg.template_id, e)
            return
        self.solutions_seen += 1
        h = btc.sha256d(block[:80])
        log.info("client %d solved template %d: block %s at height %d", s.sid, msg.template_id,
                 btc.hash_hex(h), st.height)
        eff.solutions.append(Solution(s.sid, msg.template_id, st.height, block, h))

"""The template provider's brain, sans-I/O: sessions, template cache and update policy.

Adapters feed it events (a client message, a new chain tip, a new template from the
source, the passage of time) together with the current time, and get back ``Effects``:
messages to send, connections to close, solved blocks to persist and submit.  Nothing here
touches a socket, a thread or an event loop, so every rule below is tested by calling
methods with plain message objects and a fake clock, and the same object serves the
asyncio server and the C ABI.

How the work reaches a client is shaped by what real consumers do (digest section 4.9).
SRI's pool and JDC keep ONE "last future template" slot and ONE "last SetNewPrevHash", and
bootstrap every new mining channel from that pair: the SetNewPrevHash must activate the
future template by id (channels-sv2 ``JobStore::activate_future_job``), or the pool shuts
down.  So:

- a future NewTemplate is only ever sent immediately followed by the SetNewPrevHash that
  references it (as sv2-tp's ``SendWork`` does); at every moment, for every client, the
  last future template's id equals the last SetNewPrevHash's id;
- a new tip is one such pair built from the next height's empty block, which is prepared
  ahead of time (no node round trip), under an id allocated at the tip so that ids keep
  increasing on every connection; the full template follows as a non-future NewTemplate;
- every CoinbaseOutputConstraints, first or repeated, is answered with a fresh pair for
  the client's current work;
- if the node's template for the tip has an nBits (or a minimum time) the clients were not
  sent, they get a new pair with the node's values: a block is never rebuilt with values
  its miner did not use.

Other rules (design.md, "Template provider behaviour"):
- clients with equal constraints share one template (one id), built once per source
  template and kept for the rest of the tip even when the group empties;
- a template is cached before any message naming it is emitted, and every template of the
  current tip stays cached until the next tip (SRI accepts shares, and so blocks, on any job
  of the tip), then for a grace period; afterwards its id is remembered as stale;
- fee-driven updates need the fee delta *and* the minimum interval; new tips never wait;
- the tip only moves forward: a notification for a block at or below the current height is
  ignored unless the source vouches that the node reorganised to it;
- every client message costs a token of a rate limit; repeated constraints are also rate
  limited and, beyond their budget, coalesced (the last value wins) rather than refused.
"""

from __future__ import annotations

import enum
import logging
import time as _time
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from typing import Optional

from .. import bitcoin as btc
from ..errors import BlockRejectedError, ProtocolViolationError
from ..framing import encode_message, fixed_frame_packer
from ..messages import (CoinbaseOutputConstraints, Message, RequestExtensions,
                        RequestExtensionsError, RequestTransactionData,
                        RequestTransactionDataError, RequestTransactionDataSuccess,
                        SetNewPrevHash, SetupConnection, SetupConnectionError,
                        SetupConnectionSuccess, SubmitSolution)
from ..schema import ERROR_CODES, FRAME_HEADER_SIZE, PROTOCOL_VERSION
from .template import BlockTemplate, Constraints, ServedTemplate, Work, select_transactions

#: where a NewTemplate's template_id (its first field, U64) sits in its frame
_ID_AT = FRAME_HEADER_SIZE
#: a tip's SetNewPrevHash frame from its fields in the schema's order (all fixed-size)
_SNPH_FRAME = fixed_frame_packer(SetNewPrevHash)

log = logging.getLogger("sv2ffi.tp")

TEMPLATE_DISTRIBUTION = 2
DEFAULT_VERSION = 0x20000000


@dataclass
class TpConfig:
    """Policy knobs; names follow sv2-tp's options where one exists.  Checked when a
    ``TpService`` is built (``service_config.check_tp_config``)."""

    network: btc.Network = field(default_factory=lambda: btc.NETWORKS["regtest"])
    fee_delta: int = 1000  #: sat a fee-driven update must add (-sv2feedelta)
    template_interval: float = 5.0  #: min seconds between fee-driven updates (-templateinterval)
    stale_grace: float = 10.0  #: seconds old-tip templates stay servable (sv2-tp: 10)
    block_max_weight: int = btc.MAX_BLOCK_WEIGHT  #: like bitcoind's -blockmaxweight
    max_clients: int = 1000
    msg_rate: float = 20.0  #: sustained client messages per second
    msg_burst: int = 100
    tx_data_rate: float = 4.0  #: sustained RequestTransactionData per second
    tx_data_burst: int = 20
    #: sustained CoinbaseOutputConstraints changes per second after the first; beyond the
    #: burst, changes are coalesced (the last one is applied when the budget allows)
    constraints_rate: float = 0.1
    constraints_burst: int = 4
    tombstone_limit: int = 100_000  #: ids remembered as stale after their data is dropped


@dataclass(frozen=True)
class TipInfo:
    """A new best block as far as mining is concerned: what SetNewPrevHash needs."""

    prev_hash: bytes  # hash of the new best block (internal order)
    height: int  # height of the block to mine on top of it
    bits: int  # nBits of that block
    time: int  # header nTime to start with
    min_time: int = 0  # lowest valid nTime (median time past + 1), when known


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

    __slots__ = ("fan", "_sends", "closes", "solutions", "frames", "notes")

    def __init__(self):
        #: (session ids, messages): each of those sessions gets those messages, in order,
        #: before anything in ``sends`` (a tip: every client the same pair).  One entry
        #: for all of them, so that nothing is done per client before the tip's one
        #: write pass; ``sends`` lists them one by one for everything else
        self.fan: Optional[tuple] = None
        self._sends: list = []  # (session id, Message), after the fan
        self.closes: list = []  # (session id, reason)
        self.solutions: list = []  # Solution
        #: id(message) -> its whole plaintext frame, for messages the core encoded ahead
        #: of time (a tip's future NewTemplate); adapters encode the rest
        self.frames: dict = {}
        #: (level, message, args): log lines for once the clients are written
        #: (``write_notes``).  A full template's INFO line, formatted and written to the
        #: log's stream before the clients' write, held their NewTemplate back 0.1-0.4 ms
        #: (issue 10, profiled in a TP beside a real node)
        self.notes: list = []

    @property
    def sends(self) -> list:
        """Every (session id, Message) in the order written, the fan spelled out."""
        if self.fan is None:
            return self._sends
        sids, msgs = self.fan
        return [(sid, m) for sid in sids for m in msgs] + self._sends

    @property
    def unicasts(self) -> list:
        """The (session id, Message) pairs that are not part of the fan."""
        return self._sends

    def send(self, sid: int, msg: Message) -> None:
        self._sends.append((sid, msg))

    def send_all(self, sids: tuple, msgs: tuple) -> None:
        """``msgs`` to each of ``sids``: the fan, when nothing was sent yet."""
        if self.fan is None and not self._sends:
            self.fan = (sids, msgs)
        else:
            self._sends += [(sid, m) for sid in sids for m in msgs]

    def note(self, level: int, msg: str, *args) -> None:
        self.notes.append((level, msg, args))

    def write_notes(self) -> None:
        """The notes logged (the adapter calls this after its writes), then forgotten."""
        for level, msg, args in self.notes:
            log.log(level, msg, *args)
        self.notes.clear()

    def receivers_of(self, cls) -> set:
        """The sessions that get a message of class ``cls``."""
        out = {sid for sid, m in self._sends if m.__class__ is cls}
        if self.fan is not None and any(m.__class__ is cls for m in self.fan[1]):
            out.update(self.fan[0])
        return out

    def extend(self, other: "Effects") -> "Effects":
        if other.fan is not None:
            self.send_all(*other.fan)
        self._sends += other._sends
        self.closes += other.closes
        self.solutions += other.solutions
        if other.frames:
            self.frames.update(other.frames)
        self.notes += other.notes
        return self

    def __bool__(self) -> bool:
        return bool(self.fan or self._sends or self.closes or self.solutions)


class SessionState(enum.Enum):
    AWAIT_SETUP = "await-setup"
    AWAIT_CONSTRAINTS = "await-constraints"
    ACTIVE = "active"
    CLOSED = "closed"


#: a module constant: an enum member looked up through its class costs about 0.1 us a
#: client on a tip's loop over the sessions
_ACTIVE = SessionState.ACTIVE


class TokenBucket:
    """Rate limit on what one client may ask for; refilled from the caller's clock."""

    __slots__ = ("rate", "capacity", "tokens", "stamp")

    def __init__(self, rate: float, capacity: int, now: float):
        self.rate, self.capacity, self.tokens, self.stamp = rate, capacity, float(capacity), now

    def _refill(self, now: float) -> None:
        self.tokens = min(self.capacity, self.tokens + max(now - self.stamp, 0) * self.rate)
        self.stamp = now

    def take(self, now: float) -> bool:
        self._refill(now)
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True

    def ready(self, now: float) -> bool:
        self._refill(now)
        return self.tokens >= 1


@dataclass
class Session:
    sid: int
    state: SessionState
    msgs: TokenBucket
    tx_data: TokenBucket
    constraints_budget: TokenBucket
    constraints: Optional[Constraints] = None
    #: a constraints change that arrived beyond the budget; applied by ``tick``
    pending_constraints: Optional[Constraints] = None
    last_sent_id: int = 0
    current_id: Optional[int] = None  # template the client works on for the current tip
    peer: str = ""
    setup: Optional[SetupConnection] = None


@dataclass
class Group:
    """Sessions with equal constraints: they share templates and the update policy."""

    constraints: Constraints
    members: set = field(default_factory=set)
    current: Optional[ServedTemplate] = None
    #: the source template ``current`` was built from (a group that rejoins reuses it)
    built_from: Optional[BlockTemplate] = None
    sent_fees: int = 0
    last_sent_at: float = float("-inf")
    pending: bool = False
    fresh_tip: bool = True  # the tip's first full template is still to come


class TemplateProviderCore:
    def __init__(self, config: Optional[TpConfig] = None):
        self.config = config or TpConfig()
        self._next_id = 1
        self._next_sid = 1
        #: the tip as the clients were told it (SetNewPrevHash fields)
        self.tip: Optional[TipInfo] = None
        self.template: Optional[BlockTemplate] = None  # newest source template for the tip
        self._like: Optional[BlockTemplate] = None  # newest template of any tip
        #: the empty block for the height after the tip, built ahead of the next tip
        self._next_empty: Optional[Work] = None
        #: (that work, its future NewTemplate's frame with template id 0): at the tip only
        #: the id is written in, not the whole message encoded on the way to the clients
        self._next_empty_frame: Optional[tuple] = None
        self._tip_empty: Optional[ServedTemplate] = None  # the tip's empty template
        self.cache: dict[int, ServedTemplate] = {}
        self.stale_since: dict[int, float] = {}
        #: ids cached since the last tip: the templates the next tip makes stale (the
        #: others already are), so a tip does not walk the whole cache
        self._fresh_ids: list = []
        self.tombstones: OrderedDict[int, None] = OrderedDict()
        self.groups: dict[Constraints, Group] = {}
        self.sessions: dict[int, Session] = {}
        self.solutions_seen = 0
        self.ignored_old_tips = 0
        self.active_count = 0  # sessions that finished setting up

    # ---- ids and cache -------------------------------------------------------------------

    def _new_id(self) -> int:
        tid = self._next_id
        self._next_id += 1
        return tid

    def _cache(self, st: ServedTemplate) -> ServedTemplate:
        self.cache[st.template_id] = st
        self._fresh_ids.append(st.template_id)
        return st

    def _drop(self, tid: int) -> None:
        self.cache.pop(tid, None)
        self.stale_since.pop(tid, None)
        self.tombstones[tid] = None
        while len(self.tombstones) > self.config.tombstone_limit:
            self.tombstones.popitem(last=False)

    # ---- sessions --------------------------------------------------------------------------

    def open_session(self, now: float, peer: str = "") -> int:
        """Register a connection; refuses when ``max_clients`` clients are working (those
        still setting up are bounded by the adapter's admission budget)."""
        if self.active_count >= self.config.max_clients:
            raise ProtocolViolationError(f"too many clients ({self.config.max_clients})")
        sid = self._next_sid
        self._next_sid += 1
        c = self.config
        self.sessions[sid] = Session(sid, SessionState.AWAIT_SETUP,
                                     TokenBucket(c.msg_rate, c.msg_burst, now),
                                     TokenBucket(c.tx_data_rate, c.tx_data_burst, now),
                                     TokenBucket(c.constraints_rate, c.constraints_burst, now),
                                     peer=peer)
        return sid

    def close_session(self, sid: int) -> None:
        s = self.sessions.pop(sid, None)
        if s is None:
            return
        if s.state is SessionState.ACTIVE:
            self.active_count -= 1
        s.state = SessionState.CLOSED
        self._leave_group(s)

    def _leave_group(self, s: Session) -> None:
        if s.constraints is None:
            return
        g = self.groups.get(s.constraints)
        if g is not None:
            g.members.discard(s.sid)
            if not g.members and self.tip is None:
                del self.groups[s.constraints]
            # otherwise kept (with its templates) until the next tip: a client that comes
            # back to these constraints costs no new build

    def _violation(self, s: Session, reason: str, eff: Effects) -> Effects:
        log.warning("client %d%s: %s; disconnecting", s.sid, f" ({s.peer})" if s.peer else "", reason)
        eff.closes.append((s.sid, reason))
        self.close_session(s.sid)
        return eff

    @property
    def active_sessions(self) -> list:
        return [s for s in self.sessions.values() if s.state is _ACTIVE]

    def count_frames(self, sid: int, n: int, now: float) -> Effects:
        """``n`` frames that carried no message the core handles (unknown types, unknown
        extensions) still cost a token each: no kind of input is free."""
        eff = Effects()
        s = self.sessions.get(sid)
        if s is None:
            return eff
        for _ in range(n):
            if not s.msgs.take(now):
                return self._violation(s, "message rate limit exceeded (frames of unknown "
                                          "messages count too)", eff)
        return eff

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
        if isinstance(msg, RequestExtensions):
            # extension negotiation (spec extensions/0x0001): this TP speaks none, and says
            # so rather than leave the client waiting
            eff.send(sid, RequestExtensionsError(request_id=msg.request_id,
                                                 unsupported_extensions=list(
                                                     msg.requested_extensions),
                                                 required_extensions=[]))
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
        s.setup = msg
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
        if s.state is not SessionState.ACTIVE and self.active_count >= self.config.max_clients:
            return self._violation(s, f"too many clients ({self.config.max_clients})", eff)
        if s.state is SessionState.ACTIVE and not s.constraints_budget.take(now):
            if s.pending_constraints is None:
                log.info("client %d: CoinbaseOutputConstraints faster than %.2g/s; coalescing",
                         s.sid, self.config.constraints_rate)
            s.pending_constraints = c
            return eff
        s.pending_constraints = None
        self._apply_constraints(s, c, now, eff)
        return eff

    def _apply_constraints(self, s: Session, c: Constraints, now: float, eff: Effects) -> None:
        self._leave_group(s)
        s.constraints = c
        g = self.groups.get(c)
        if g is None:
            g = self.groups[c] = Group(c)
        g.members.add(s.sid)
        if s.state is not SessionState.ACTIVE:
            self.active_count += 1
        s.state = SessionState.ACTIVE
        if self.tip is not None:
            self._send_pair(s, self._group_current(g, now, eff), now, eff)

    # ---- sending templates -------------------------------------------------------------------

    def _fresh_for(self, s: Session, st: ServedTemplate, now: float) -> ServedTemplate:
        """``st`` or, if this client already saw a higher id, the same work under a new id."""
        if st.template_id > s.last_sent_id:
            return st
        return self._cache(st.with_id(self._new_id(), now))

    def _send_pair(self, s: Session, st: ServedTemplate, now: float, eff: Effects) -> None:
        """``st`` as a future NewTemplate immediately followed by the SetNewPrevHash that
        activates it: the only way this TP ever sends a future template."""
        st = self._fresh_for(s, st, now)
        eff.send(s.sid, st.new_template(True))
        eff.send(s.sid, st.set_new_prev_hash())
        s.last_sent_id = st.template_id
        s.current_id = st.template_id

    def _group_current(self, g: Group, now: float, eff: Effects) -> ServedTemplate:
        """The group's work for the tip, built from the newest source template if the group
        has none yet (or only an older tip's)."""
        cur = g.current
        if cur is not None and cur.prev_hash == self.tip.prev_hash and cur.bits == self.tip.bits:
            return cur
        if self.template is not None:
            st = self._build_for(g, self.template, now, eff)
            g.sent_fees, g.last_sent_at, g.fresh_tip = st.fees, now, False
        else:
            st = self._tip_empty
        g.current = st
        return st

    def _build_for(self, g: Group, tpl: BlockTemplate, now: float,
                   eff: Effects) -> ServedTemplate:
        """Cache the group's trimmed work from ``tpl`` under a new id, applying to the tip's
        SetNewPrevHash; its log line is a note, written after the clients' write."""
        t0 = _time.perf_counter()
        keep = select_transactions(tpl.txs, g.constraints, self.config.block_max_weight,
                                   sums=tpl.sums())
        tip = self.tip
        st = self._cache(ServedTemplate(self._new_id(), tpl.work(keep), now).activate(
            tip.prev_hash, tip.bits, tip.time))
        g.built_from = tpl
        if log.isEnabledFor(logging.INFO):
            ms = (_time.perf_counter() - t0) * 1000
            eff.note(logging.INFO,
                     "template id=%d height=%d fees=%d sat txs=%d build=%.1fms clients=%d%s",
                     st.template_id, st.height, st.fees, len(st.txs), ms, len(g.members),
                     "" if keep is None else f" (trimmed {len(tpl.txs) - len(keep)})")
        return st

    # ---- chain events ------------------------------------------------------------------------

    def is_newer(self, prev_hash: bytes, height: int) -> bool:
        """Whether a block at ``height - 1`` with hash ``prev_hash`` moves the tip forward.

        Notifications arrive late and out of order (bitcoind publishes ZMQ after its wallet
        has processed the block; a slow getblocktemplate can return after a newer tip), so
        only a higher block is a new tip by itself.  A source that verified with the node
        that it really reorganised to a block at or below our height says so (``reorg``)."""
        return self.tip_relation(prev_hash, height) == "newer"

    def tip_relation(self, prev_hash: bytes, height: int) -> str:
        """``"current"``, ``"newer"`` or ``"older"`` (at or below our height, another block)."""
        if self.tip is None:
            return "newer"
        if prev_hash == self.tip.prev_hash:
            return "current"
        return "newer" if height > self.tip.height else "older"

    def new_tip(self, tip: TipInfo, now: float, *, reorg: bool = False) -> Effects:
        """A new best block: every client gets the empty template for the next block as a
        future NewTemplate, immediately followed by the SetNewPrevHash that activates it."""
        eff = Effects()
        if self.tip is not None and tip.prev_hash == self.tip.prev_hash:
            return eff
        if not reorg and not self.is_newer(tip.prev_hash, tip.height):
            self.ignored_old_tips += 1
            log.info("ignoring a late notification of block %s (height %d): already at height %d",
                     btc.hash_hex(tip.prev_hash), tip.height - 1, self.tip.height - 1)
            return eff
        if reorg:
            log.warning("the node reorganised to block %s (height %d)",
                        btc.hash_hex(tip.prev_hash), tip.height - 1)
        self.tip = tip
        self.template = None
        cache, stale = self.cache, self.stale_since
        for tid in self._fresh_ids:
            if tid in cache:
                stale.setdefault(tid, now)
        self._fresh_ids = []
        work = self._next_empty
        if work is None or work.height != tip.height:
            work = Work.empty(tip.height, self._like_template(tip.height))
        st = self._tip_empty = self._cache(
            ServedTemplate(self._new_id(), work, now).activate(tip.prev_hash, tip.bits, tip.time))
        tid, active, sids = st.template_id, _ACTIVE, []
        for s in self.sessions.values():
            if s.state is active:
                s.last_sent_id = s.current_id = tid
                sids.append(s.sid)
        if sids:
            nt, snph = st.new_template(True), st.set_new_prev_hash()
            pre = self._next_empty_frame
            if pre is not None and pre[0] is work:
                frame = pre[1]
                eff.frames[id(nt)] = b"".join((frame[:_ID_AT], tid.to_bytes(8, "little"),
                                               frame[_ID_AT + 8:]))
            eff.frames[id(snph)] = _SNPH_FRAME(snph.template_id, snph.prev_hash,
                                               snph.header_timestamp, snph.n_bits, snph.target)
            eff.send_all(tuple(sids), (nt, snph))
        for c in [c for c, g in self.groups.items() if not g.members]:
            del self.groups[c]
        for g in self.groups.values():
            g.current, g.built_from, g.sent_fees, g.pending, g.fresh_tip = st, None, 0, False, True
        if log.isEnabledFor(logging.DEBUG):  # the service logs the tip once it is written
            log.debug("new tip %s: height %d, SetNewPrevHash(template %d) to %d clients",
                      btc.hash_hex(tip.prev_hash), tip.height - 1, st.template_id, len(sids))
        return eff

    def prepare_next_tip(self) -> None:
        """Build the next height's empty work now, so that at the next tip only its header
        fields are new.  Adapters call this once a tip's messages are written (it is not
        part of ``new_tip``: nothing on the way to the clients' sockets should be)."""
        tip = self.tip
        if tip is not None and (self._next_empty is None
                                or self._next_empty.height != tip.height + 1):
            self._next_empty = Work.empty(tip.height + 1, self._like_template(tip.height + 1))
        work = self._next_empty
        if work is not None and (self._next_empty_frame is None
                                 or self._next_empty_frame[0] is not work):
            self._next_empty_frame = (work, encode_message(
                ServedTemplate(0, work, 0.0).new_template(True)))

    def _like_template(self, height: int) -> BlockTemplate:
        """Header version and coinbase form for empty work: the newest source template's."""
        return self._like or BlockTemplate(self.config.network, height, bytes(32),
                                           DEFAULT_VERSION, self.config.network.pow_limit_bits,
                                           0, 0, [])

    def is_new_tip(self, tpl: BlockTemplate) -> bool:
        """Whether ``tpl`` builds on a block the clients have not switched to yet."""
        return self.is_newer(tpl.prev_hash, tpl.height)

    def new_template(self, tpl: BlockTemplate, now: float, *, reorg: bool = False) -> Effects:
        """A template from the source: a new tip if its previous block is newer, the
        clients' tip re-sent if it disagrees with the node's values, else a candidate
        fee-driven update."""
        eff = Effects()
        if self.tip is None or tpl.prev_hash != self.tip.prev_hash:
            if not reorg and not self.is_newer(tpl.prev_hash, tpl.height):
                self.ignored_old_tips += 1
                log.debug("ignoring a template for an old tip (height %d)", tpl.height)
                return eff
            eff.extend(self.new_tip(TipInfo(tpl.prev_hash, tpl.height, tpl.bits, tpl.time,
                                            tpl.min_time), now, reorg=reorg))
        elif tpl.height != self.tip.height:
            log.warning("template height %d does not follow the tip (%d); ignored", tpl.height,
                        self.tip.height)
            return eff
        self.template = self._like = tpl
        if self._next_empty is not None and self._next_empty.version != tpl.version:
            self._next_empty = Work.empty(tpl.height + 1, tpl)
        tip = self.tip
        if tpl.bits != tip.bits or tip.time < tpl.min_time:
            self._reswitch(tpl, now, eff)
            return eff
        for g in list(self.groups.values()):
            if g.members:
                self._update_group(g, now, eff)
        return eff

    def _reswitch(self, tpl: BlockTemplate, now: float, eff: Effects) -> None:
        """The node's template disagrees with the SetNewPrevHash the clients have (its
        nBits differs, e.g. a testnet minimum-difficulty block, or our start time is below
        its minimum): switch again with the node's values, as a new future + SetNewPrevHash
        pair per group, built from this template."""
        old = self.tip
        log.warning("the node's template for height %d has nBits %08x and minimum time %d; "
                    "clients were sent %08x and %d: switching them again", tpl.height, tpl.bits,
                    tpl.min_time, old.bits, old.time)
        self._switch_again(tpl.bits, max(tpl.time, tpl.min_time), tpl.min_time, now, eff)

    def correct_tip(self, tip: TipInfo, now: float) -> Effects:
        """A source learned the current tip's true values after announcing it (a tip sent
        before the block's header was read): if its nBits differs from what the clients
        were sent, or their start time is below the block's minimum, switch them again."""
        eff = Effects()
        cur = self.tip
        if cur is None or tip.prev_hash != cur.prev_hash:
            return eff
        if tip.bits == cur.bits and cur.time >= tip.min_time:
            return eff
        log.warning("tip %s: nBits %08x / minimum time %d, clients were sent %08x / %d: "
                    "switching them again", btc.hash_hex(tip.prev_hash), tip.bits,
                    tip.min_time, cur.bits, cur.time)
        self._switch_again(tip.bits, max(tip.time, tip.min_time), tip.min_time, now, eff)
        return eff

    def _switch_again(self, bits: int, t: int, min_time: int, now: float, eff: Effects) -> None:
        """Same previous block, new SetNewPrevHash values: a new pair for every client."""
        old = self.tip
        self.tip = replace(old, bits=bits, time=t, min_time=min_time)
        empty = self._tip_empty
        if empty is not None:
            self._tip_empty = self._cache(ServedTemplate(self._new_id(), empty.work, now).activate(
                old.prev_hash, bits, t))
        for g in self.groups.values():
            g.current = None
            if not g.members:
                continue
            st = self._group_current(g, now, eff)
            g.pending = False
            for sid in g.members:
                s = self.sessions.get(sid)
                if s is not None and s.state is SessionState.ACTIVE:
                    self._send_pair(s, st, now, eff)

    def _update_group(self, g: Group, now: float, eff: Effects) -> None:
        tpl = self.template
        if tpl is None or g.built_from is tpl:
            return
        c = self.config
        keep = select_transactions(tpl.txs, g.constraints, c.block_max_weight, sums=tpl.sums())
        if not g.fresh_tip:
            if tpl.fees_known:
                fees = tpl.fees if keep is None else sum(tpl.txs[i].fee for i in keep)
            else:
                fees = tpl.fees if keep is None else 0
            if fees < g.sent_fees + c.fee_delta:
                g.pending = False
                return
            if now - g.last_sent_at < c.template_interval:
                g.pending = True
                return
        elif not tpl.txs:
            return  # the empty template the clients already have is this block
        st = self._build_for(g, tpl, now, eff)
        g.current, g.sent_fees, g.last_sent_at, g.pending, g.fresh_tip = st, st.fees, now, False, False
        msg = st.new_template(False)
        for sid in g.members:
            s = self.sessions.get(sid)
            if s is None or s.state is not SessionState.ACTIVE:
                continue
            eff.send(sid, msg)  # a new id: higher than any this client has seen
            s.last_sent_id = s.current_id = st.template_id

    def tick(self, now: float) -> Effects:
        """Time passed: drop old-tip templates past the grace period, send fee updates
        the minimum interval was holding back, apply coalesced constraints changes."""
        eff = Effects()
        grace = self.config.stale_grace
        for tid in [t for t, since in self.stale_since.items() if now - since >= grace]:
            self._drop(tid)
        for g in list(self.groups.values()):
            if g.pending and g.members and now - g.last_sent_at >= self.config.template_interval:
                self._update_group(g, now, eff)
        for s in list(self.sessions.values()):
            if s.pending_constraints is not None and s.constraints_budget.take(now):
                c, s.pending_constraints = s.pending_constraints, None
                self._apply_constraints(s, c, now, eff)
        return eff

    # ---- requests ----------------------------------------------------------------------------

    def transaction_data(self, template_id: int) -> Message:
        st = self.cache.get(template_id)
        if st is None:
            code = ERROR_CODES["STALE_TEMPLATE_ID" if template_id in self.tombstones
                               else "TEMPLATE_ID_NOT_FOUND"]
            return RequestTransactionDataError(template_id=template_id, error_code=code)
        return RequestTransactionDataSuccess(
            template_id=template_id,
            excess_data=btc.WITNESS_RESERVED_VALUE if st.has_commitment else b"",
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

    # ---- introspection (tests, metrics) ------------------------------------------------------

    def templates_of_tip(self) -> list:
        """Cached templates that build on the current tip."""
        tip = self.tip
        return [st for st in self.cache.values() if tip is not None and st.prev_hash == tip.prev_hash]

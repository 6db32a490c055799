"""What the template provider did, for operators: counters, the tip latency, and the log
lines about clients and tips; served to Prometheus on request.

The service reports events through six hooks (``TpMetrics.on_*``); they run on the event
loop, only count and remember, and never block.  The Prometheus endpoint
(``MetricsServer``, prometheus-client's HTTP server on its own thread) reads those
numbers when scraped, so nothing Prometheus-specific sits on the path of a template.

Metrics (all prefixed ``sv2ffi_tp_``):

=================================================  ========================================
``clients``                                        clients connected (setup done)
``handshakes_total{result=ok|failed}``             Noise handshakes
``templates_sent_total{future=true|false}``        NewTemplate messages written to clients
``set_new_prev_hash_sent_total``                   SetNewPrevHash messages written
``tip_latency_seconds`` (histogram)                from the service learning of a new block
                                                   to SetNewPrevHash written to the last
                                                   client
``request_transaction_data_total{result,reason}``  served, or refused with the error code
``solutions_total{result,reason}``                 accepted / rejected (node's or our
                                                   reason) / stale (stale-template-id,
                                                   template-id-not-found)
``node_rpc_errors_total{kind=reply|unreachable}``  bitcoind JSON-RPC errors (rpc source)
``node_reconnects_total``                          waits for bitcoind to come back
``rate_limit_disconnects_total{limit}``            clients cut off by a rate limit
``tip_height``                                     height of the block being mined
``up``                                             1 if the service's event loop answered
                                                   the scrape within 2 s (health checks)
``loop_lag_seconds``                               how long that answer took
=================================================  ========================================
"""

from __future__ import annotations

import bisect
import logging
import re
import threading
import time
from collections import Counter
from typing import Optional

from .. import bitcoin as btc
from ..messages import (CoinbaseOutputConstraints, NewTemplate, RequestTransactionData,
                        RequestTransactionDataError, RequestTransactionDataSuccess,
                        SetNewPrevHash, SetupConnection, SetupConnectionError,
                        SetupConnectionSuccess, SubmitSolution)

log = logging.getLogger("sv2ffi.tp")

PREFIX = "sv2ffi_tp_"
#: tip latency buckets (seconds): a new tip normally reaches every client in well under 10 ms
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


def format_peer(peer) -> str:
    if isinstance(peer, tuple) and len(peer) >= 2:
        host, port = peer[0], peer[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(peer)


def reason_label(text: Optional[str]) -> str:
    """A short, bounded label from a reason (node reasons such as ``high-hash`` stay as
    they are; free text becomes ``other``), so label values cannot grow without bound."""
    if not text:
        return "other"
    head = re.split(r"[:\s(]", text.strip(), maxsplit=1)[0].lower()
    return head if re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,39}", head) else "other"


class Histogram:
    """Cumulative buckets as Prometheus wants them, without a lock: only the event loop
    writes, and a scrape reads plain numbers."""

    def __init__(self, buckets=LATENCY_BUCKETS):
        self.bounds = tuple(buckets)
        self.counts = [0] * (len(self.bounds) + 1)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value
        self.count += 1

    def cumulative(self) -> list:
        out, total = [], 0
        for bound, n in zip(self.bounds + (float("inf"),), list(self.counts)):
            total += n
            out.append((bound, total))
        return out


class _Client:
    __slots__ = ("peer", "setup", "constraints", "since", "active")

    def __init__(self, peer: str, now: float):
        self.peer = peer
        self.setup: Optional[SetupConnection] = None
        self.constraints: Optional[tuple] = None
        self.since = now
        self.active = False

    def describe(self) -> str:
        s = self.setup
        if s is None:
            return f"{self.peer}, no SetupConnection"
        return (f"{self.peer}, vendor {s.vendor!r}, hardware {s.hardware_version!r}, "
                f"firmware {s.firmware!r}, device {s.device_id!r}, "
                f"versions {s.min_version}..{s.max_version}")


class _TipFanout:
    """One new tip on its way to the clients: who still has to receive SetNewPrevHash.
    Only the set of waiting clients is built before the writes start; who got which
    template is worked out from the effects once the last write is done."""

    __slots__ = ("prev_hash", "height", "started", "pending", "effects", "dropped")

    def __init__(self, prev_hash: bytes, height: int, started: float, pending: set,
                 effects):
        self.prev_hash, self.height, self.started = prev_hash, height, started
        self.pending = pending
        self.effects = effects  # spelled out per client only once the tip is written
        self.dropped: set = set()  # clients gone before their SetNewPrevHash was written


class TpMetrics:
    """Counters and operator log lines, fed by the service's hooks."""

    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self.service = None  # set by TpService: the collector reads its server and source
        self.clients: dict[int, _Client] = {}
        self.active_clients = 0
        self.clients_served = 0
        self.templates_sent = {True: 0, False: 0}
        self.set_new_prev_hash_sent = 0
        self.tip_latency = Histogram()
        self.tx_data: Counter = Counter()  # (result, reason)
        self.solutions: Counter = Counter()  # (result, reason)
        self.rate_limit_disconnects: Counter = Counter()  # limit
        self.tip_height = 0
        self._tip: Optional[_TipFanout] = None

    # ---- hooks (called by TpService on its event loop) -------------------------------------

    def on_client_message(self, sid: int, peer, msg, eff) -> None:
        """A client's message and what the core answered (``eff``, not yet sent)."""
        c = self.clients.get(sid)
        if c is None:
            c = self.clients[sid] = _Client(format_peer(peer), self.clock())
        if isinstance(msg, SetupConnection):
            c.setup = msg
            for _sid, out in eff.sends:
                if isinstance(out, SetupConnectionSuccess):
                    log.info("client %d connected: %s", sid, c.describe())
                elif isinstance(out, SetupConnectionError):
                    log.info("client %d refused (%s): %s", sid, out.error_code, c.describe())
        elif isinstance(msg, CoinbaseOutputConstraints):
            c.constraints = (msg.coinbase_output_max_additional_size,
                             msg.coinbase_output_max_additional_sigops)
            if not c.active and not eff.closes:
                c.active = True
                self.active_clients += 1
                self.clients_served += 1
        elif isinstance(msg, RequestTransactionData):
            for _sid, out in eff.sends:
                if isinstance(out, RequestTransactionDataSuccess):
                    self.tx_data["served", ""] += 1
                elif isinstance(out, RequestTransactionDataError):
                    self.tx_data["refused", out.error_code] += 1
        elif isinstance(msg, SubmitSolution) and not eff.solutions and not eff.closes:
            result, reason = self._classify_unusable_solution(msg.template_id)
            self.solutions[result, reason] += 1
        for _sid, why in eff.closes:
            if "rate limit" in str(why):
                limit = "transaction-data" if "RequestTransactionData" in str(why) else "messages"
                self.rate_limit_disconnects[limit] += 1

    def on_new_tip(self, tip, eff, started: float) -> None:
        """The effects of a new tip, as soon as the clients were written to (before
        ``on_written`` counts them): every client that gets a SetNewPrevHash in them is
        waited for, from ``started`` (this clock when the tip reached the service).  None
        of it runs before the writes: after a block, with nothing in the caches, it took
        0.02-0.03 ms on the way to the first client (issue 10)."""
        self._finish_tip(incomplete=True)
        self.tip_height = tip.height
        pending = eff.receivers_of(SetNewPrevHash)
        self._tip = (_TipFanout(tip.prev_hash, tip.height, started, pending, eff)
                     if pending else None)
        if not pending:  # nothing to wait for: the tip's line now (else once it is written)
            log.info("new tip %s: block height %d, no clients to send it to",
                     btc.hash_hex(tip.prev_hash), tip.height - 1)

    def on_written(self, eff, unwritten: set) -> None:
        """Messages were written to clients' sockets: the effects' ``fan`` and
        ``unicasts``, except to the clients in ``unwritten`` (gone, or their write failed).
        Called once per event after all the writes, so counting never delays a client's
        write."""
        snph = future = other = 0
        t = self._tip
        done: list = []

        def count(msg, sids) -> None:
            nonlocal snph, future, other
            cls = msg.__class__
            if cls is SetNewPrevHash:
                snph += len(sids)
                if t is not None and msg.prev_hash == t.prev_hash:
                    done.extend(sids)
            elif cls is NewTemplate:
                if msg.future_template:
                    future += len(sids)
                else:
                    other += len(sids)

        if eff.fan is not None:
            sids, msgs = eff.fan
            if unwritten:
                sids = [sid for sid in sids if sid not in unwritten]
            for msg in msgs:
                count(msg, sids)
        for sid, msg in eff.unicasts:
            if sid not in unwritten:
                count(msg, (sid,))
        self.set_new_prev_hash_sent += snph
        self.templates_sent[True] += future
        self.templates_sent[False] += other
        if done and t.pending:
            t.pending.difference_update(done)
            if not t.pending:
                self._finish_tip()

    def on_client_closed(self, sid: int) -> None:
        c = self.clients.pop(sid, None)
        t = self._tip
        if t is not None and sid in t.pending:
            t.pending.remove(sid)
            t.dropped.add(sid)
            if not t.pending:
                self._finish_tip()
        if c is None:
            return
        if c.active:
            self.active_clients -= 1
        log.info("client %d disconnected after %.1f s: %s", sid, self.clock() - c.since,
                 c.describe())

    def on_solution_result(self, sol, result: Optional[str]) -> None:
        """A solved block was submitted: ``result`` None (accepted) or the reason."""
        if result is None:
            self.solutions["accepted", ""] += 1
        else:
            self.solutions["rejected", reason_label(result)] += 1

    # ---- internals -------------------------------------------------------------------------

    def _classify_unusable_solution(self, template_id: int) -> tuple[str, str]:
        core = getattr(self.service, "core", None)
        if core is not None and template_id in getattr(core, "cache", {}):
            return "rejected", "invalid-solution"  # the template exists: the block did not
        if core is not None and template_id in getattr(core, "tombstones", {}):
            return "stale", "stale-template-id"
        return "stale", "template-id-not-found"

    def _finish_tip(self, incomplete: bool = False) -> None:
        t, self._tip = self._tip, None
        if t is None:
            return
        elapsed = self.clock() - t.started
        templates: Counter = Counter()  # (template id, constraints) -> clients written to
        waiting = t.pending | t.dropped
        for sid, m in t.effects.sends:
            if m.__class__ is SetNewPrevHash and sid not in waiting:
                c = self.clients.get(sid)
                templates[m.template_id, c.constraints if c else None] += 1
        written = sum(templates.values())
        groups = ", ".join(
            f"template {tid} to {n} client{'s' if n != 1 else ''}"
            + (f" [{c[0]} B, {c[1]} sigops]" if c else "")
            for (tid, c), n in sorted(templates.items(), key=lambda kv: (kv[0][0], str(kv[0]))))
        if incomplete:
            log.warning("new tip %s (block height %d): %d clients still had no SetNewPrevHash "
                        "when the next tip came; %s", btc.hash_hex(t.prev_hash), t.height - 1,
                        len(t.pending), groups or "none written")
            return
        self.tip_latency.observe(elapsed)
        log.info("new tip %s: block height %d, SetNewPrevHash written to %d clients in "
                 "%.2f ms: %s", btc.hash_hex(t.prev_hash), t.height - 1, written,
                 elapsed * 1000, groups)

    # ---- reading --------------------------------------------------------------------------

    def snapshot(self) -> dict:
        """The numbers a scrape reports, as a plain dict (tests, the shutdown line)."""
        svc = self.service
        server = getattr(svc, "server", None)
        source = getattr(svc, "source", None)
        rpc_errors = getattr(source, "rpc_errors", None)
        return {
            "clients": self.active_clients,
            "clients_served": self.clients_served,
            "handshakes": {"ok": getattr(server, "handshakes_ok", 0),
                           "failed": getattr(server, "handshakes_failed", 0)},
            "templates_sent": {"future": self.templates_sent[True],
                               "non_future": self.templates_sent[False]},
            "set_new_prev_hash_sent": self.set_new_prev_hash_sent,
            "tip_latency": {"count": self.tip_latency.count, "sum": self.tip_latency.sum},
            "request_transaction_data": dict(self.tx_data),
            "solutions": dict(self.solutions),
            "node_rpc_errors": dict(rpc_errors) if isinstance(rpc_errors, dict) else {},
            "node_reconnects": getattr(source, "reconnects", 0),
            "rate_limit_disconnects": dict(self.rate_limit_disconnects),
            "tip_height": self.tip_height,
        }


class TpCollector:
    """prometheus-client collector: reads a TpMetrics when scraped (on the HTTP server's
    thread), and asks the service's event loop for a sign of life."""

    LIVENESS_TIMEOUT = 2.0

    def __init__(self, metrics: TpMetrics, loop=None):
        self.metrics = metrics
        self.loop = loop

    def _loop_lag(self) -> Optional[float]:
        """Seconds the event loop took to run a callback posted from here; None if it did
        not within LIVENESS_TIMEOUT (stuck, or stopped)."""
        loop = self.loop
        if loop is None or loop.is_closed() or not loop.is_running():
            return None
        done = threading.Event()
        t0 = time.monotonic()
        try:
            loop.call_soon_threadsafe(done.set)
        except RuntimeError:  # closed meanwhile
            return None
        return time.monotonic() - t0 if done.wait(self.LIVENESS_TIMEOUT) else None

    def collect(self):
        from prometheus_client.core import (CounterMetricFamily, GaugeMetricFamily,
                                            HistogramMetricFamily)
        m = self.metrics
        lag = self._loop_lag()
        yield GaugeMetricFamily(PREFIX + "up", "1 if the template provider's event loop "
                                "answered this scrape in time", value=0 if lag is None else 1)
        if lag is not None:
            yield GaugeMetricFamily(PREFIX + "loop_lag_seconds", "Time the event loop took "
                                    "to answer this scrape", value=lag)
        snap = m.snapshot()
        yield GaugeMetricFamily(PREFIX + "clients", "Clients connected (SetupConnection and "
                                "CoinbaseOutputConstraints done)", value=snap["clients"])
        yield GaugeMetricFamily(PREFIX + "tip_height", "Height of the block being mined",
                                value=snap["tip_height"])
        c = CounterMetricFamily(PREFIX + "handshakes", "Noise handshakes", labels=["result"])
        for result, n in snap["handshakes"].items():
            c.add_metric([result], n)
        yield c
        c = CounterMetricFamily(PREFIX + "templates_sent", "NewTemplate messages written to "
                                "clients", labels=["future"])
        c.add_metric(["true"], snap["templates_sent"]["future"])
        c.add_metric(["false"], snap["templates_sent"]["non_future"])
        yield c
        yield CounterMetricFamily(PREFIX + "set_new_prev_hash_sent", "SetNewPrevHash messages "
                                  "written to clients", value=snap["set_new_prev_hash_sent"])
        h = m.tip_latency
        yield HistogramMetricFamily(
            PREFIX + "tip_latency_seconds", "From the template provider learning of a new "
            "block to SetNewPrevHash written to the last client",
            buckets=[(repr(b) if b != float("inf") else "+Inf", n) for b, n in h.cumulative()],
            sum_value=h.sum)
        c = CounterMetricFamily(PREFIX + "request_transaction_data", "RequestTransactionData "
                                "answered", labels=["result", "reason"])
        for key in (("served", ""), ("refused", "stale-template-id"),
                    ("refused", "template-id-not-found")):
            c.add_metric(list(key), snap["request_transaction_data"].get(key, 0))
        for key, n in snap["request_transaction_data"].items():
            if key[0] == "refused" and key[1] not in ("stale-template-id",
                                                     "template-id-not-found"):
                c.add_metric(list(key), n)
        yield c
        c = CounterMetricFamily(PREFIX + "solutions", "SubmitSolution outcomes",
                                labels=["result", "reason"])
        sols = dict(snap["solutions"])
        sols.setdefault(("accepted", ""), 0)
        for key, n in sorted(sols.items()):
            c.add_metric(list(key), n)
        yield c
        c = CounterMetricFamily(PREFIX + "node_rpc_errors", "bitcoind JSON-RPC calls that "
                                "failed: an error reply, or the node unreachable",
                                labels=["kind"])
        for kind in ("reply", "unreachable"):
            c.add_metric([kind], snap["node_rpc_errors"].get(kind, 0))
        yield c
        yield CounterMetricFamily(PREFIX + "node_reconnects", "Times the template provider "
                                  "lost bitcoind and waited for it", value=snap["node_reconnects"])
        c = CounterMetricFamily(PREFIX + "rate_limit_disconnects", "Clients disconnected by a "
                                "rate limit", labels=["limit"])
        for limit in ("messages", "transaction-data"):
            c.add_metric([limit], snap["rate_limit_disconnects"].get(limit, 0))
        yield c


class MetricsServer:
    """The /metrics HTTP endpoint on its own thread (prometheus-client's server)."""

    def __init__(self, metrics: TpMetrics, host: str = "127.0.0.1", port: int = 0, *,
                 loop=None):
        from prometheus_client import CollectorRegistry, start_http_server

        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(TpCollector(metrics, loop))
        self._httpd, self._thread = start_http_server(port, addr=host, registry=self.registry)
        self.host = host
        self.port = self._httpd.server_port

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(10)

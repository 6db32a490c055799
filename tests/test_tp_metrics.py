"""Operators' view of a running TP: the Prometheus endpoint scraped over HTTP after real
blocks were mined through SV2, the log lines about clients and tips, journald-friendly
output, and debug logs that do not dump getblocktemplate."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from sv2ffi.client import TdpClient
from sv2ffi.messages import (NewTemplate, RequestTransactionData, RequestTransactionDataError,
                             RequestTransactionDataSuccess, SetNewPrevHash, SubmitSolution)
from sv2ffi.tp import TemplateProvider, run
from sv2ffi.tp.core import TpConfig
from sv2ffi.tp.metrics import TpMetrics
from sv2ffi.tp.server import TpService
from sv2ffi.tp.sources.regtest import RegtestSource

T = 20
SV2FFI = [sys.executable, "-m", "sv2ffi"]


def scrape(url: str) -> dict:
    """{(name, frozenset(labels)): value} from a real HTTP GET of the endpoint."""
    with urllib.request.urlopen(url, timeout=T) as resp:
        assert resp.status == 200
        text = resp.read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[s.name, frozenset(s.labels.items())] = s.value
    return out


def value(samples: dict, name: str, **labels) -> float:
    return samples[name, frozenset(labels.items())]


@pytest.fixture
def tp(tmp_path):
    src = RegtestSource(mempool_interval=0, initial_txs=10, seed=3)
    svc = TpService(src, datadir=tmp_path, metrics=TpMetrics(),
                    config=TpConfig(tx_data_burst=3, tx_data_rate=0.001))
    provider = TemplateProvider(svc, tmp_path, ("127.0.0.1", 0))
    yield provider
    provider.stop()


def test_scrape_after_mined_blocks_reports_what_happened(tp, caplog):
    chain = tp.source.chain
    start = tp.call(lambda: chain.height)

    async def clients():
        c = await TdpClient.connect("127.0.0.1", tp.port, authority_pubkey=tp.authority_pubkey,
                                    timeout=T)
        await c.wait_for(SetNewPrevHash, T)
        while not (c.state.current and c.state.current.merkle_path):
            await c.recv(T)
        ok = await c.request_transaction_data(c.state.current.template_id, T)
        assert isinstance(ok, RequestTransactionDataSuccess)
        bad = await c.request_transaction_data(987_654, T)
        assert isinstance(bad, RequestTransactionDataError)
        await c.submit(SubmitSolution(template_id=55_555, version=1, header_timestamp=1,
                                      header_nonce=0, coinbase_tx=b"\x00" * 10))
        for _ in range(2):  # two blocks mined through SV2
            await c.submit(c.mine_current())
            await c.wait_for(SetNewPrevHash, T)
            # new mempool transactions: the tip's first full template (non-future) follows
            tp.call(chain.add_random_transactions, 5)
            await c.wait_for(NewTemplate, T, lambda m: not m.future_template)
        # a second client asks for transaction data too fast (burst 3 here): cut off
        greedy = await TdpClient.connect("127.0.0.1", tp.port,
                                         authority_pubkey=tp.authority_pubkey, timeout=T)
        await greedy.wait_for(SetNewPrevHash, T)
        for _ in range(5):
            await greedy.stream.send(RequestTransactionData(999_999))
        with pytest.raises(Exception):
            while True:
                await greedy.recv(T)
        # a connection that never completes the Noise handshake
        r, w = await asyncio.open_connection("127.0.0.1", tp.port)
        w.write(b"\x00" * 64 + b"\xff" * 64)
        await w.drain()
        await r.read()
        w.close()
        deadline = time.monotonic() + T
        while time.monotonic() < deadline:  # until the service finished its bookkeeping
            m = await asyncio.to_thread(scrape, tp.metrics_url)
            if value(m, "sv2ffi_tp_handshakes_total", result="failed") >= 1 and \
                    value(m, "sv2ffi_tp_clients") == 1:
                break
            await asyncio.sleep(0.05)
        await c.close()  # scraped while this client was still connected
        return m

    with caplog.at_level("INFO", logger="sv2ffi.tp"):
        m = asyncio.run(asyncio.wait_for(clients(), 120))
        deadline = time.monotonic() + T
        while "client 1 disconnected" not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.05)
    assert tp.call(lambda: chain.height) == start + 2

    assert value(m, "sv2ffi_tp_up") == 1
    assert value(m, "sv2ffi_tp_clients") == 1  # the greedy one is gone
    assert value(m, "sv2ffi_tp_handshakes_total", result="ok") == 2
    assert value(m, "sv2ffi_tp_handshakes_total", result="failed") == 1
    assert value(m, "sv2ffi_tp_templates_sent_total", future="true") >= 3
    assert value(m, "sv2ffi_tp_templates_sent_total", future="false") >= 1
    assert value(m, "sv2ffi_tp_set_new_prev_hash_sent_total") >= 4
    assert value(m, "sv2ffi_tp_tip_latency_seconds_count") == 2  # one per mined block
    assert 0 < value(m, "sv2ffi_tp_tip_latency_seconds_sum") < 10
    assert value(m, "sv2ffi_tp_tip_latency_seconds_bucket", le="+Inf") == 2
    assert value(m, "sv2ffi_tp_request_transaction_data_total", result="served", reason="") == 1
    assert value(m, "sv2ffi_tp_request_transaction_data_total", result="refused",
                 reason="template-id-not-found") >= 1
    assert value(m, "sv2ffi_tp_solutions_total", result="accepted", reason="") == 2
    assert value(m, "sv2ffi_tp_solutions_total", result="stale",
                 reason="template-id-not-found") == 1
    assert value(m, "sv2ffi_tp_rate_limit_disconnects_total", limit="transaction-data") == 1
    assert value(m, "sv2ffi_tp_rate_limit_disconnects_total", limit="messages") == 0
    assert value(m, "sv2ffi_tp_tip_height") == start + 3
    assert value(m, "sv2ffi_tp_node_reconnects_total") == 0

    # the operator's log lines
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert re.search(r"client \d+ connected: 127\.0\.0\.1:\d+, vendor 'sv2ffi', hardware '', "
                     r"firmware 'sv2ffi-client', device '', versions 2\.\.2", text), text
    assert re.search(r"new tip [0-9a-f]{64}: block height \d+, SetNewPrevHash written to 1 "
                     r"clients in [\d.]+ ms: template \d+ to 1 client \[1000 B, 100 sigops\]",
                     text), text
    assert re.search(r"client \d+ disconnected after [\d.]+ s: 127\.0\.0\.1:\d+, vendor "
                     r"'sv2ffi'", text), text


def test_metrics_endpoint_is_off_by_default_and_loopback_when_on(tmp_path):
    with run(datadir=tmp_path, port=0, mempool_interval=0) as tp:
        assert tp.metrics_url is None
    with run(datadir=tmp_path, port=0, mempool_interval=0, metrics_bind="0") as tp:
        assert tp.metrics_url.startswith("http://127.0.0.1:")
        assert value(scrape(tp.metrics_url), "sv2ffi_tp_up") == 1
    with pytest.raises(ValueError, match="metrics_bind"):
        run(datadir=tmp_path, metrics_bind="0.0.0.0")


def test_node_errors_and_reconnects_are_counted(tmp_path):
    """The rpc source pointed at a port where no bitcoind listens."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    cookie = tmp_path / ".cookie"
    cookie.write_text("__cookie__:x")
    with run(datadir=tmp_path, port=0, source="rpc", rpc_url=f"http://127.0.0.1:{dead}/",
             rpc_cookie_file=cookie, metrics_bind="0") as tp:
        deadline = time.monotonic() + T
        while time.monotonic() < deadline:
            m = scrape(tp.metrics_url)
            if value(m, "sv2ffi_tp_node_reconnects_total") >= 2:
                break
            time.sleep(0.1)
    assert value(m, "sv2ffi_tp_node_reconnects_total") >= 2
    assert value(m, "sv2ffi_tp_node_rpc_errors_total", kind="unreachable") >= 2
    assert value(m, "sv2ffi_tp_node_rpc_errors_total", kind="reply") == 0


class Stderr:
    """A child's stderr through a pipe we own (so JOURNAL_STREAM can name it)."""

    def __init__(self):
        self.r, self.w = os.pipe()
        st = os.fstat(self.w)
        self.journal_stream = f"{st.st_dev}:{st.st_ino}"
        self.chunks: list[bytes] = []
        self.thread = threading.Thread(target=self._pump, daemon=True)
        self.thread.start()

    def _pump(self):
        while chunk := os.read(self.r, 65536):
            self.chunks.append(chunk)

    def text(self) -> str:
        self.thread.join(30)
        return b"".join(self.chunks).decode(errors="replace")


def test_debug_logs_under_journald_have_no_timestamps_and_no_template_dumps(tmp_path):
    """A TP at --log-level debug reading getblocktemplate (40 transactions) from another
    TP's built-in chain: python-bitcoinrpc's payload lines are cut short, and with
    JOURNAL_STREAM pointing at its stderr no line carries a timestamp."""
    from test_client_cli import Proc, free_port

    node_port, rpc_port, tp_port = free_port(), free_port(), free_port()
    (tmp_path / "node").mkdir()
    (tmp_path / "tp").mkdir()
    node = Proc(["tp", "--sv2-port", str(node_port), "--datadir", str(tmp_path / "node"),
                 "--regtest-rpc-port", str(rpc_port), "--mempool-interval", "0.2",
                 "--log-level", "warning"])
    err = Stderr()
    tp = None
    try:
        cookie = node.expect(r"cookie (\S+)").group(1)
        env = dict(os.environ, JOURNAL_STREAM=err.journal_stream)
        tp = subprocess.Popen(SV2FFI + ["tp", "--source", "rpc", "--sv2-port", str(tp_port),
                                        "--datadir", str(tmp_path / "tp"), "--rpc-url",
                                        f"http://127.0.0.1:{rpc_port}/", "--rpc-cookie-file",
                                        cookie, "--log-level", "debug"],
                              stdout=subprocess.DEVNULL, stderr=err.w, env=env)
        os.close(err.w)
        deadline = time.monotonic() + T
        # the first cut line is getblockchaininfo's (the chain is learned from the node)
        while time.monotonic() < deadline and b"".join(err.chunks).count(b"truncated") < 3:
            time.sleep(0.1)
    finally:
        if tp is not None:
            tp.terminate()
            tp.wait(30)
        node.stop()
    text = err.text()
    lines = text.splitlines()
    assert "listening on" in text, text[-3000:]
    rpc = [ln for ln in lines if "BitcoinRPC" in ln]
    assert any("getblocktemplate" in ln for ln in rpc)
    assert any("truncated" in ln for ln in rpc), rpc[:5]
    assert max(len(ln) for ln in lines) < 600
    assert all(re.match(r"(DEBUG|INFO|WARNING|ERROR) ", ln) for ln in lines if ln), lines[:5]

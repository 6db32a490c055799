"""`sv2ffi tp` and `sv2ffi client` as real processes: the regtest source, and the rpc source
pointed at another `sv2ffi tp`'s built-in-chain JSON-RPC endpoint (with ZMQ)."""

import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

SV2FFI = [sys.executable, "-m", "sv2ffi"]
T = 60


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Proc:
    """A child process whose stdout lines are read with a deadline."""

    def __init__(self, args, env=None):
        self.p = subprocess.Popen(SV2FFI + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True, env=env)
        self.lines = []
        self._q = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self):
        for line in self.p.stdout:
            self._q.put(line)
        self._q.put(None)

    def expect(self, pattern, timeout=T):
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._q.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                line = None
            if line is None:
                break
            self.lines.append(line)
            m = re.search(pattern, line)
            if m:
                return m
        raise AssertionError(f"{pattern!r} not seen; stdout so far:\n{''.join(self.lines)}"
                             f"\nstderr:\n{self._stderr()}")

    def _stderr(self):
        if self.p.poll() is None:
            return "(running)"
        return self.p.stderr.read()

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGINT)
            try:
                self.p.wait(20)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        err = self.p.stderr.read()
        self.p.stderr.close()
        return err


def test_tp_and_client_processes_mine_blocks(tmp_path):
    port = free_port()
    tp = Proc(["tp", "--sv2-port", str(port), "--datadir", str(tmp_path), "--log-level", "info",
               "--mempool-interval", "0.2"])
    try:
        key = tp.expect(r"authority public key: (\w+)").group(1)
        out = subprocess.run(SV2FFI + ["client", "--port", str(port), "--authority-pubkey", key,
                                       "--mine", "--blocks", "2", "--interval", "0",
                                       "--request-tx-data", "--timeout", "30"],
                             capture_output=True, text=True, timeout=T)
        assert out.returncode == 0, out.stdout + out.stderr
        assert "certificate verified" in out.stdout
        assert out.stdout.count("-> SubmitSolution") == 2
        assert "RequestTransactionData.Success" in out.stdout
        assert "SetNewPrevHash" in out.stdout
        # the very first template arrives flagged future (activated by the SetNewPrevHash
        # right after it): its transactions are asked for too
        lines = out.stdout.splitlines()
        first = next(ln for ln in lines if ln.startswith("<- NewTemplate"))
        first_id = re.search(r"id=(\d+)", first).group(1)
        assert "(future)" in first
        assert any(ln.startswith(f"<- RequestTransactionData.Success id={first_id} ")
                   for ln in lines), out.stdout
    finally:
        err = tp.stop()
    assert tp.p.returncode == 0, err
    assert len(list((tmp_path / "regtest" / "solved-blocks").glob("*.blk"))) == 2
    # one status line per template: id, fees, tx count, build time, clients
    assert re.search(r"template id=\d+ height=\d+ fees=\d+ sat txs=\d+ build=[\d.]+ms clients=\d+",
                     err), err
    assert "accepted by the regtest source" in err


def test_tp_rpc_source_against_the_built_in_chain_endpoint(tmp_path):
    node_port, rpc_port, tp_port = free_port(), free_port(), free_port()
    zmq = f"tcp://127.0.0.1:{free_port()}"
    (tmp_path / "node").mkdir()
    (tmp_path / "tp").mkdir()
    node = Proc(["tp", "--sv2-port", str(node_port), "--datadir", str(tmp_path / "node"),
                 "--regtest-rpc-port", str(rpc_port), "--regtest-zmq-hashblock", zmq,
                 "--log-level", "warning"])
    tp = None
    try:
        cookie = node.expect(r"cookie (\S+)").group(1)
        tp = Proc(["tp", "--source", "rpc", "--sv2-port", str(tp_port), "--datadir",
                   str(tmp_path / "tp"), "--rpc-url", f"http://127.0.0.1:{rpc_port}/",
                   "--rpc-cookie-file", cookie, "--zmq-hashblock", zmq, "--log-level", "info"])
        key = tp.expect(r"authority public key: (\w+)").group(1)
        out = subprocess.run(SV2FFI + ["client", "--port", str(tp_port), "--authority-pubkey", key,
                                       "--mine", "--blocks", "3", "--interval", "0",
                                       "--timeout", "30"],
                             capture_output=True, text=True, timeout=T)
        assert out.returncode == 0, out.stdout + out.stderr
        assert out.stdout.count("-> SubmitSolution") == 3
    finally:
        err = tp.stop() if tp else ""
        node.stop()
    assert len(list((tmp_path / "tp" / "regtest" / "solved-blocks").glob("*.blk"))) == 3
    assert "accepted by the rpc source" in err, err


def test_tp_refuses_regtest_source_on_another_chain(tmp_path):
    out = subprocess.run(SV2FFI + ["tp", "--chain", "main", "--datadir", str(tmp_path)],
                         capture_output=True, text=True, timeout=T)
    assert out.returncode == 2 and "regtest" in out.stderr


def test_log_level_from_environment(tmp_path):
    port = free_port()
    env = dict(os.environ, SV2FFI_LOG_LEVEL="debug")
    tp = Proc(["tp", "--sv2-port", str(port), "--datadir", str(tmp_path)], env=env)
    try:
        tp.expect(r"authority public key")
    finally:
        err = tp.stop()
    assert "DEBUG" in err


def test_client_reports_unreachable_tp():
    out = subprocess.run(SV2FFI + ["client", "--port", str(free_port()), "--timeout", "5"],
                         capture_output=True, text=True, timeout=T)
    assert out.returncode == 2 and "sv2ffi client:" in out.stderr


@pytest.mark.parametrize("cmd", [["tp", "--help"], ["client", "--help"]])
def test_help_names_sv2_tp_flags(cmd):
    out = subprocess.run(SV2FFI + cmd, capture_output=True, text=True, timeout=T)
    assert out.returncode == 0
    if cmd[0] == "tp":
        for flag in ("--sv2-bind", "--sv2-port", "--template-interval", "--fee-delta", "--datadir",
                     "--chain", "--source", "--rpc-url", "--rpc-user", "--rpc-password",
                     "--rpc-cookie-file", "--zmq-hashblock", "--log-level"):
            assert flag in out.stdout

"""Real Bitcoin Core processes for the tests that are about a node.

Nothing here builds or ships Core: the binaries come from the environment (as Core-based
projects take ``BITCOIND``), and the tests that need them skip with the reason otherwise:

- ``SV2FFI_BITCOIND``       bitcoind (JSON-RPC + ZMQ tests), else ``bitcoind`` on PATH;
- ``SV2FFI_BITCOIN_NODE``   bitcoin-node built with IPC (v31+), else on PATH;
- ``SV2FFI_BITCOIN_CLI``    bitcoin-cli, else on PATH or beside either of the above;
- ``SV2FFI_SV2TP``          sv2-tp (stratum-mining/sv2-tp), else on PATH.

``RealNode`` runs one regtest node in a short temporary directory (a unix socket path
holds at most 107 bytes), with cookie authentication, optionally ZMQ ``hashblock`` and
``-ipcbind=unix``; the tests talk to it over JSON-RPC (python-bitcoinrpc, fast enough to
fund a 500-transaction mempool) and with bitcoin-cli where a test is about the CLI.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Optional

from bitcoinrpc.authproxy import AuthServiceProxy, JSONRPCException

T = 60


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def binary(env: str, name: str, *beside: Optional[str]) -> Optional[str]:
    path = os.environ.get(env) or shutil.which(name)
    for b in beside:
        if not path and b:
            cand = Path(b).parent / name
            path = str(cand) if cand.exists() else None
    return path


BITCOIND = binary("SV2FFI_BITCOIND", "bitcoind")
BITCOIN_NODE = binary("SV2FFI_BITCOIN_NODE", "bitcoin-node")
BITCOIN_CLI = binary("SV2FFI_BITCOIN_CLI", "bitcoin-cli", BITCOIND, BITCOIN_NODE)
SV2TP = binary("SV2FFI_SV2TP", "sv2-tp")

NO_BITCOIND = "no bitcoind: set SV2FFI_BITCOIND (and SV2FFI_BITCOIN_CLI unless bitcoin-cli " \
              "is beside it or on PATH)"
NO_BITCOIN_NODE = "no bitcoin-node with IPC: set SV2FFI_BITCOIN_NODE (and SV2FFI_BITCOIN_CLI " \
                  "unless bitcoin-cli is beside it or on PATH)"
NO_SV2TP = "no sv2-tp: set SV2FFI_SV2TP (and SV2FFI_BITCOIN_NODE for the node it talks to)"


class RealNode:
    """A regtest bitcoind or bitcoin-node; ``start()`` returns once RPC answers."""

    def __init__(self, exe: str, *, zmq: bool = False, ipc: bool = False,
                 extra: tuple = ()):
        self.exe = exe
        self.dir = Path(tempfile.mkdtemp(prefix="sv2n-"))
        self.rpc_port, self.p2p_port = free_port(), free_port()
        self.zmq = f"tcp://127.0.0.1:{free_port()}" if zmq else None
        self.ipc = ipc
        self.extra = tuple(extra)
        self.proc: Optional[subprocess.Popen] = None
        self.socket = self.dir / "regtest" / "node.sock"
        self.cookie = self.dir / "regtest" / ".cookie"
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.rpc_port}/"

    def start(self) -> "RealNode":
        args = [self.exe, "-regtest", f"-datadir={self.dir}", "-server",
                f"-rpcport={self.rpc_port}", f"-port={self.p2p_port}", "-listen=0",
                "-fallbackfee=0.0002", "-printtoconsole=0", "-txindex=0",
                "-maxtxfee=1", "-logtimemicros", *self.extra]
        if self.zmq:
            args.append(f"-zmqpubhashblock={self.zmq}")
        if self.ipc:
            args += ["-ipcbind=unix", "-debug=ipc"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.starts += 1
        deadline = time.monotonic() + T
        while True:
            try:
                self.rpc("getblockcount")
                break
            except (OSError, JSONRPCException, ValueError):
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{self.exe} did not start: "
                                       + self.proc.stderr.read().decode(errors="replace"))
                time.sleep(0.1)
        while self.ipc and not self.socket.exists():
            time.sleep(0.05)
        return self

    def rpc(self, method: str, *params, wallet: Optional[str] = None, timeout: float = T):
        """One JSON-RPC call with the current cookie (a restart writes a new one)."""
        user, pw = self.cookie.read_text().strip().split(":", 1)
        path = f"/wallet/{wallet}" if wallet else "/"
        proxy = AuthServiceProxy(f"http://{user}:{pw}@127.0.0.1:{self.rpc_port}{path}",
                                 timeout=timeout)
        return getattr(proxy, method)(*params)

    def cli(self, *args, wallet: Optional[str] = None):
        cmd = [BITCOIN_CLI, "-regtest", f"-datadir={self.dir}", f"-rpcport={self.rpc_port}"]
        if wallet:
            cmd.append(f"-rpcwallet={wallet}")
        out = subprocess.run(cmd + [str(a) for a in args], capture_output=True, text=True,
                             timeout=T, check=True).stdout.strip()
        try:
            return json.loads(out)
        except ValueError:
            return out

    # ---- a wallet and a mempool -----------------------------------------------------------

    def fund_wallet(self, blocks: int = 120, coins: int = 1000) -> str:
        """A wallet "w" with ``coins`` confirmed 0.01 BTC outputs (and the node out of IBD),
        so each later payment can spend a confirmed coin: chains of unconfirmed change
        stop at Core's ancestor limit."""
        from decimal import Decimal
        self.rpc("createwallet", "w")
        self.addr = self.rpc("getnewaddress", wallet="w")
        self.rpc("generatetoaddress", blocks, self.addr, timeout=300)
        for _ in range(0, coins, 250):
            outs = {self.rpc("getnewaddress", wallet="w"): Decimal("0.01") for _ in range(250)}
            self.rpc("sendmany", "", outs, wallet="w")
        self.mine(1)
        return self.addr

    def fill_mempool(self, count: int, fee_sat: int = 1000) -> int:
        """``count`` wallet transactions, each spending one confirmed 0.01 BTC coin (every
        fifth instead spends the previous one's output: a child of an unconfirmed parent),
        with fees rising from ``fee_sat``; returns the mempool size.  Built explicitly
        (create, sign, send) rather than with the wallet's coin selection."""
        from decimal import Decimal
        if not hasattr(self, "_coins"):
            self._coins = []
        if len(self._coins) < count:
            seen = {(c["txid"], c["vout"]) for c in self._coins}
            self._coins += [c for c in self.rpc("listunspent", 1, 9999999, [], False,
                                                {"minimumAmount": Decimal("0.01"),
                                                 "maximumAmount": Decimal("0.01")}, wallet="w")
                            if (c["txid"], c["vout"]) not in seen]
        last = None
        for k in range(count):
            if last is not None and k % 5 == 4:
                prev, value = last
            else:
                coin = self._coins.pop()
                prev, value = (coin["txid"], coin["vout"]), int(coin["amount"] * 10**8)
            fee = fee_sat + 37 * k
            out = self.rpc("getnewaddress", wallet="w")
            raw = self.rpc("createrawtransaction", [{"txid": prev[0], "vout": prev[1]}],
                           {out: Decimal(value - fee) / 10**8})
            signed = self.rpc("signrawtransactionwithwallet", raw, wallet="w")["hex"]
            txid = self.rpc("sendrawtransaction", signed)
            last = ((txid, 0), value - fee)
        return self.rpc("getmempoolinfo")["size"]

    def mine(self, n: int = 1) -> list:
        return self.rpc("generatetoaddress", n, self.addr, timeout=300)

    @property
    def tip(self) -> bytes:
        return bytes.fromhex(self.rpc("getbestblockhash"))[::-1]

    # ---- lifecycle --------------------------------------------------------------------------

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() not in (None, 0):
            log = self.dir / "regtest" / "debug.log"
            tail = "".join(log.read_text(errors="replace").splitlines(True)[-40:]) \
                if log.exists() else ""
            print(f"{self.exe} exited with {self.proc.returncode}; debug.log ends:\n{tail}")
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.rpc("stop")
            except (OSError, JSONRPCException, ValueError):
                self.proc.terminate()
            try:
                self.proc.wait(T)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self, down: float = 2.0) -> None:
        """Stop, stay down ``down`` seconds, start again: bitcoind writes a new cookie,
        loads the wallet again."""
        self.stop()
        time.sleep(down)
        self.start()
        try:
            self.rpc("loadwallet", "w")
        except JSONRPCException:  # loaded on startup already
            pass

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class Sv2Tp:
    """stratum-mining/sv2-tp on a RealNode's IPC socket, its own data directory beside."""

    def __init__(self, node: RealNode, port: int, *extra: str):
        self.node = node
        self.port = port
        self.dir = node.dir / "sv2tp"
        self.dir.mkdir(exist_ok=True)
        (self.dir / "regtest").mkdir(exist_ok=True)
        self.proc = subprocess.Popen(
            [SV2TP, "-regtest", f"-datadir={self.dir}", f"-ipcconnect=unix:{node.socket}",
             f"-sv2port={port}", "-sv2bind=127.0.0.1", "-printtoconsole=1", "-debug=sv2",
             *extra], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: list = []
        self.authority = self._wait_for_key()
        self._wait_for_port()

    def _wait_for_port(self) -> None:
        """sv2-tp logs its key before it listens (and waits out the node's IBD first)."""
        deadline = time.monotonic() + T
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("sv2-tp exited:\n" + "".join(self.lines))
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"sv2-tp does not listen on {self.port}")

    def _pump(self) -> None:
        """Collect sv2-tp's output on a thread (select + readline on a buffered pipe
        would miss lines already read into Python's buffer)."""
        for line in self.proc.stdout:
            self.lines.append(line)
            self._seen.set()

    def _wait_for_key(self) -> str:
        import re
        import threading
        self._seen = threading.Event()
        threading.Thread(target=self._pump, daemon=True).start()
        deadline = time.monotonic() + T
        while time.monotonic() < deadline:
            for line in list(self.lines):
                m = re.search(r"authority (?:public )?key[^:]*:\s*(\w{40,})", line, re.I)
                if m:
                    return m.group(1)
            if self.proc.poll() is not None:
                break
            self._seen.wait(0.2)
            self._seen.clear()
        raise RuntimeError("sv2-tp printed no authority key:\n" + "".join(self.lines))

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(T)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        time.sleep(0.2)  # the pump thread reads what is left
        return "".join(self.lines)

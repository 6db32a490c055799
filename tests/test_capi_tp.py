"""The embedded template provider through the C ABI (sv2_tp_*), driven from C.

tests/capi/tp_embed.c is a tiny C "node": it starts a provider, pushes the templates this
test hands it (serialized blocks built by the Python regtest chain, the way a node's block
assembler serializes them) and reports every solution callback.  A Python TdpClient plays
the pool over Noise and mines at regtest difficulty, so every byte crosses a real socket,
Noise, the TP core and the C boundary.
"""

from __future__ import annotations

import asyncio
import os
import queue
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

from sv2ffi import bitcoin as btc
from sv2ffi.client import TdpClient
from sv2ffi.messages import NewTemplate, SetNewPrevHash
from sv2ffi.tp.regtest import RegtestChain
from sv2ffi.tp.storage import saved_blocks

pytestmark = pytest.mark.skipif(not (shutil.which("cmake") and shutil.which("gcc")),
                                reason="cmake and a C compiler are needed to build libsv2")

T = 30  # bound on every wait


@pytest.fixture(scope="module")
def capi():
    from sv2ffi.capi import devbuild

    return devbuild.build_once()


def assembled(chain: RegtestChain) -> bytes:
    """The chain's next template serialized as a node's block assembler does: placeholder
    coinbase (BIP34 height, reward = subsidy + fees, witness commitment), transactions."""
    tpl = chain.block_template()
    cb = btc.coinbase_tx(tpl.height, [btc.TxOut(tpl.coinbase_value, b"\x51"),
                                      btc.witness_commitment_output([t.wtxid for t in tpl.txs])])
    txs = [cb] + [btc.Tx.from_bytes(t.data) for t in tpl.txs]
    header = btc.BlockHeader(tpl.version, tpl.prev_hash, btc.merkle_root([t.txid for t in txs]),
                             tpl.time, tpl.bits, 0)
    return btc.Block(header, txs).serialize()


class TpEmbed:
    """tests/capi/tp_embed running, with its output lines in a queue."""

    def __init__(self, program: Path, datadir: Path, *args: str, wrapper: tuple = (),
                 env: dict | None = None, startup_timeout: float = T):
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("SV2FFI_")}
        full_env.update(env or {})
        self.proc = subprocess.Popen([*wrapper, str(program), str(datadir), *args],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=full_env)
        self.lines: queue.Queue = queue.Queue()
        self.seen: list[str] = []
        self.stderr = ""
        threading.Thread(target=self._read, daemon=True).start()
        self.port = int(self.expect("listening ", startup_timeout))
        self.authority = self.expect("authority ", startup_timeout)

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def expect(self, prefix: str, timeout: float = T) -> str:
        """The rest of the next line starting with prefix (other lines are kept in seen)."""
        while True:
            try:
                line = self.lines.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"no '{prefix}' line within {timeout} s; saw {self.seen}")
            if line is None:
                raise AssertionError(f"tp_embed exited ({self.proc.wait(10)}) before '{prefix}'; saw {self.seen}; "
                                     f"stderr: {self.proc.stderr.read()[-3000:]}")
            self.seen.append(line)
            if line.startswith(prefix):
                return line[len(prefix):]

    def send(self, *commands: str) -> None:
        for c in commands:
            self.proc.stdin.write(c + "\n")
        self.proc.stdin.flush()

    def push(self, block: bytes, timeout: float = T) -> str:
        self.send("push " + block.hex())
        return self.expect("push ", timeout)

    def finish(self, timeout: float = T) -> tuple[int, str]:
        self.send("quit")
        self.proc.stdin.close()
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise
        self.stderr = self.proc.stderr.read()
        self.rest = []
        while True:
            line = self.lines.get(timeout=5)
            if line is None:
                break
            self.rest.append(line)
        return code, self.stderr

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def run_embed(capi, tmp_path):
    started: list[TpEmbed] = []

    def start(*args: str, **kw) -> TpEmbed:
        p = TpEmbed(capi.test_program("tp_embed"), tmp_path / "datadir", *args, **kw)
        started.append(p)
        return p

    yield start
    for p in started:
        p.kill()


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 120))


async def connect(tp: TpEmbed, timeout: float = T) -> TdpClient:
    return await TdpClient.connect("127.0.0.1", tp.port, authority_pubkey=tp.authority,
                                   timeout=timeout)


async def wait_for_full_template(c: TdpClient, timeout: float = T) -> NewTemplate:
    """Messages until the client works on a template with transactions (every template
    these tests push has some; the empty one sent at a new tip has none)."""
    while c.state.prev_hash is None or c.state.current is None or \
            not c.state.current.merkle_path:
        await c.recv(timeout)
    return c.state.current


def parse_solution(line: str) -> dict:
    """'N len=L header=HEX persisted=K' -> fields."""
    n, *pairs = line.split()
    out = dict(p.split("=", 1) for p in pairs)
    out["n"] = int(n)
    return out


# ---- the flow: push, serve, mine, callback, next tip ------------------------------------------


def test_pushed_templates_are_mined_and_each_solution_is_persisted_before_the_callback(
        run_embed, tmp_path):
    chain = RegtestChain(seed=21)
    chain.add_random_transactions(12)
    tp = run_embed()
    assert tp.push(assembled(chain)) == "ok"
    start = chain.height

    async def main():
        c = await connect(tp)
        try:
            for mined in (1, 2, 3):
                nt = await wait_for_full_template(c)
                assert btc.parse_bip34_height(nt.coinbase_prefix) == start + mined
                await c.submit(c.mine_current())
                sol = parse_solution(await asyncio.to_thread(tp.expect, "solution "))
                # the block the node got is the one on disk, and it was there first
                blocks = saved_blocks(tmp_path / "datadir")
                assert int(sol["persisted"]) == sol["n"] == len(blocks) == mined
                on_disk = {p.read_bytes()[:80].hex(): p.read_bytes() for p in blocks}
                block = on_disk[sol["header"]]
                assert int(sol["len"]) == len(block)
                assert sol["sigpipe_blocked"] == "1"  # a client hanging up can't kill the host
                assert chain.submit_block(block) is None  # valid: the node's chain takes it
                # the node pushes its next template: a new tip for the client
                chain.add_random_transactions(5)
                assert await asyncio.to_thread(tp.push, assembled(chain)) == "ok"
                snph = await c.wait_for(SetNewPrevHash, T)
                assert snph.prev_hash == chain.tip_hash
                # the new tip came first, for the empty template announced in advance
                assert c.state.templates[snph.template_id].future_template
                assert c.state.current.template_id == snph.template_id
        finally:
            await c.close()

    run(main())
    tp.send("free")
    tp.expect("freed")
    code, err = tp.finish()
    assert code == 0, err
    assert chain.height == start + 3


def test_a_malformed_template_is_an_error_code_with_a_clear_message(run_embed):
    chain = RegtestChain(seed=5)
    chain.add_random_transactions(3)
    good = assembled(chain)
    blk = btc.Block.from_bytes(good)
    no_reward = btc.Block.from_bytes(good)
    no_reward.txs[0].vout = [no_reward.txs[0].vout[1]]
    no_reward.txs[0].invalidate()
    no_height = btc.Block.from_bytes(good)
    no_height.txs[0].vin[0].script_sig = b"\x6a\x6a"
    no_height.txs[0].invalidate()
    not_coinbase = btc.Block(blk.header, blk.txs[1:])
    cases = [
        (b"\x00" * 10, "pushed template is not a serialized block: truncated"),
        (good[:-7], "pushed template is not a serialized block"),
        (good + b"\x00", "pushed template is not a serialized block"),
        (no_reward.serialize(), "coinbase needs exactly one reward output, has 0"),
        (no_height.serialize(), "does not start with a height push"),
        (not_coinbase.serialize(), "first transaction is not a coinbase"),
    ]
    tp = run_embed()
    for block, message in cases:
        reply = tp.push(block)
        assert reply.startswith("error SV2_ERR_INVALID_ARGUMENT "), reply
        assert message in reply, reply
    assert tp.push(good) == "ok"  # the provider is unharmed

    async def main():
        c = await connect(tp)
        nt = await wait_for_full_template(c)
        assert len(nt.merkle_path) == 2  # 3 transactions + coinbase
        await c.close()

    run(main())
    code, err = tp.finish()
    assert code == 0, err


def test_misuse_gives_status_codes_and_messages(run_embed):
    tp = run_embed()
    tp.send("misuse")
    got = {}
    while True:
        line = tp.expect("misuse ")
        if line == "done":
            break
        name, rest = line.split(" ", 1)
        got[name] = rest
    assert got["new_null"] == "NULL cfg is NULL"
    assert got["new_no_network"] == "NULL cfg->network is NULL"
    assert got["new_bad_network"].startswith("NULL network: unknown chain 'bitcoin'")
    assert got["new_no_datadir"] == "NULL cfg->datadir is NULL"
    assert got["new_bad_datadir"].startswith("NULL cannot use datadir /proc/self/nonexistent")
    assert got["start_twice"] == "SV2_ERR_INVALID_ARGUMENT the template provider is already started"
    assert got["start_busy_port"].startswith(
        f"SV2_ERR_INVALID_ARGUMENT cannot listen on 127.0.0.1:{tp.port}: ")
    assert got["start_after_failure"].startswith("SV2_ERR_CLOSED ")
    assert "not a live Sv2Tp handle" in got["push_freed_handle"]
    assert got["push_null_handle"] == "SV2_ERR_INVALID_ARGUMENT Sv2Tp handle is NULL"
    assert got["push_null_block"] == "SV2_ERR_INVALID_ARGUMENT data is NULL but len is 5"
    assert got["push_empty"] == "SV2_ERR_INVALID_ARGUMENT block is empty (len 0)"
    assert got["pubkey_small_buffer"] == "SV2_ERR_INVALID_ARGUMENT out needs 52 bytes, cap is 8"
    assert got["pubkey_null_out"] == "SV2_ERR_INVALID_ARGUMENT out is NULL"
    assert got["stop_null"] == "SV2_ERR_INVALID_ARGUMENT Sv2Tp handle is NULL"
    assert got["port_null"] == "0"
    assert "not a live Sv2Tp handle" in got["push_dangling"]
    assert "is a Sv2Decoder handle, not a Sv2Tp" in got["push_decoder_handle"]
    # the first provider still serves after all that
    chain = RegtestChain(seed=1)
    assert tp.push(assembled(chain)) == "ok"
    tp.send("stop")
    assert tp.expect("stopped ").startswith("SV2_OK")
    assert tp.push(assembled(chain)) == ("error SV2_ERR_CLOSED the template provider was "
                                         "stopped; pushes are refused")
    code, err = tp.finish()
    assert code == 0, err


# ---- callbacks and stop ------------------------------------------------------------------------


def solve_many(tp: TpEmbed, count: int) -> None:
    """Connect, mine the current template count times (distinct extranonces), submit all."""
    async def main():
        c = await connect(tp)
        await wait_for_full_template(c)
        for _ in range(count):
            await c.submit(c.mine_current())
        await asyncio.sleep(0.2)  # let the frames leave before the socket closes
        await c.close()

    run(main())


def test_no_callback_runs_after_stop_returns(run_embed, tmp_path):
    """Three solutions, each callback slow (0.4 s); stop while the first one runs.  stop
    must wait for it (and deliver what was already persisted), and nothing may enter the
    callback afterwards.  The C side flags any violation; see the control test below."""
    chain = RegtestChain(seed=7)
    chain.add_random_transactions(4)
    tp = run_embed("--callback-sleep-ms", "400")
    assert tp.push(assembled(chain)) == "ok"
    solve_many(tp, 3)
    tp.send("wait-callback", "stop")
    assert tp.expect("callback ") == "entered"
    stopped = tp.expect("stopped ")
    status, running, callbacks = stopped.split()
    assert status == "SV2_OK"
    assert running == "running_at_return=0"
    tp.send("sleep 1000")  # a late callback would show up now
    code, err = tp.finish()
    assert code == 0, f"{tp.seen + tp.rest}\n{err}"
    assert not [ln for ln in tp.seen + tp.rest if ln.startswith("VIOLATION")]
    # every block persisted before the stop reached the node, none after
    assert int(callbacks.split("=")[1]) == len(saved_blocks(tmp_path / "datadir")) >= 1


def test_the_after_stop_check_fires_when_stop_does_not_wait(run_embed):
    """Control for the test above: with --fake-stop the program only *marks* the provider
    stopped, so the callback still running is caught: the check can fail."""
    chain = RegtestChain(seed=7)
    chain.add_random_transactions(2)
    tp = run_embed("--callback-sleep-ms", "400", "--fake-stop")
    assert tp.push(assembled(chain)) == "ok"
    solve_many(tp, 1)
    tp.send("wait-callback", "stop", "sleep 1000", "free")
    tp.expect("freed")
    code, _ = tp.finish()
    assert code == 3
    assert "VIOLATION callback still running after sv2_tp_stop returned" in tp.seen + tp.rest


def test_the_gil_is_released_while_the_callback_runs(run_embed):
    """The callback blocks until the node's main thread managed a sv2_tp_push_template
    (which needs Python): a library calling back with the GIL held would deadlock here
    (the C side gives up after 20 s and reports it)."""
    chain = RegtestChain(seed=9)
    chain.add_random_transactions(2)
    tp = run_embed("--gil-check")
    assert tp.push(assembled(chain)) == "ok"
    solve_many(tp, 1)
    chain.add_random_transactions(2)
    tp.send("push-during-callback " + assembled(chain).hex())
    assert tp.expect("push ") == "ok"
    tp.expect("callback saw the other thread's push complete")
    code, err = tp.finish()
    assert code == 0, err


def test_the_callback_may_push_but_not_stop(run_embed, tmp_path):
    """From inside on_solution, sv2_tp_push_template works (here: the next tip, as a node
    that connects the block right in the callback would) and sv2_tp_stop / sv2_tp_free are
    refused with a message instead of waiting for themselves."""
    chain = RegtestChain(seed=11)
    chain.add_random_transactions(2)
    first = assembled(chain)
    # the node's next template, built on the block the client will find: we cannot know
    # that block in advance, so build on another block at the same height instead; the
    # provider treats it as a new tip all the same
    other = RegtestChain(seed=11)
    other.submit_block(other.mine_template(other.block_template()).serialize())
    nxt = assembled(other)
    hexfile = tmp_path / "next.hex"
    hexfile.write_text(nxt.hex())
    tp = run_embed("--stop-in-callback", "--push-from-callback", str(hexfile))
    assert tp.push(first) == "ok"

    async def main():
        c = await connect(tp)
        await wait_for_full_template(c)
        await c.submit(c.mine_current())
        snph = await c.wait_for(SetNewPrevHash, T, pred=lambda m: m.prev_hash == other.tip_hash)
        assert c.state.templates[snph.template_id].future_template
        await c.close()

    run(main())
    refused = tp.expect("stop-in-callback ")
    assert refused.startswith("SV2_ERR_INVALID_ARGUMENT sv2_tp_stop/sv2_tp_free called from "
                              "inside the solution callback")
    assert tp.expect("free-in-callback port=") == str(tp.port)  # the handle is alive
    assert tp.expect("push-from-callback ").strip() == "SV2_OK"
    tp.send("free")
    tp.expect("freed")
    code, err = tp.finish()
    assert code == 0, err


def test_a_new_tip_goes_out_before_the_rest_of_the_template_is_parsed(run_embed):
    """The tip is taken from the header and the coinbase first (what SetNewPrevHash needs);
    a template whose transactions then fail to parse is still an error for the caller,
    while the clients already switched to the (valid) empty template of the new tip."""
    chain = RegtestChain(seed=13)
    chain.add_random_transactions(3)
    tp = run_embed()
    assert tp.push(assembled(chain)) == "ok"
    other = RegtestChain(seed=13)
    other.submit_block(other.mine_template(other.block_template()).serialize())
    other.add_random_transactions(3)
    broken = assembled(other) + b"\x00"  # header and coinbase fine, a byte too many

    async def main():
        c = await connect(tp)
        await wait_for_full_template(c)
        reply = await asyncio.to_thread(tp.push, broken)
        assert reply.startswith("error SV2_ERR_INVALID_ARGUMENT pushed template is not a "
                                "serialized block"), reply
        snph = await c.wait_for(SetNewPrevHash, T, pred=lambda m: m.prev_hash == other.tip_hash)
        assert not c.state.templates[snph.template_id].merkle_path  # the empty template
        await c.close()

    run(main())
    code, err = tp.finish()
    assert code == 0, err

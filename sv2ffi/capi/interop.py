"""``sv2ffi interop``: the C++ examples against their Python counterparts.

Builds libsv2 and the examples (from a source checkout with CMake; from an installed
wheel, the examples shipped inside the package against the installed library), then
runs each example against a Python peer built on ``sv2ffi.aio``:

  template_provider (C++, plain framing, codec API)  <-  Python client, three connections:
      a good setup, an unsupported protocol, a version mismatch
  noise_server (C++, Noise responder)                <-  Python Noise client
  noise_client (C++, Noise initiator)                ->  Python Noise server
  embedded_node (C++ regtest node embedding the TP:  <-  `sv2ffi client --mine` (a separate
      sv2_tp_push_template, solution callback)            process): blocks mined end to end,
                                                          then the node's whole chain replayed
                                                          through Bitcoin Core's validation

Every field the C++ side builds is checked against an independent Python computation
(e.g. SetNewPrevHash.target against ``bitcoin.bits_to_target(n_bits)``) and every field
the Python side sends must come back in the C++ client's printout.  A transcript goes to
stdout; any mismatch, crash or timeout makes the command exit 1.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from .. import bitcoin, errors
from . import devbuild
from ..messages import (CoinbaseOutputConstraints, Message, NewTemplate, RequestTransactionData,
                        RequestTransactionDataError, RequestTransactionDataSuccess,
                        SetNewPrevHash, SetupConnection, SetupConnectionError,
                        SetupConnectionSuccess)

TIMEOUT = 10.0
EXAMPLES = ("template_provider", "noise_server", "noise_client", "embedded_node")
EMBEDDED_BLOCKS = 3
#: embedded_node's start-up chain in its data directory: one block hex per line, heights 1..N
PREMINE_FILE = "premine.hex"

# what examples/cpp/mini_tp.hpp builds, computed here independently
MINI_TP_HEIGHT = 840000
MINI_TP_VALUE = 312500000
MINI_TP_NBITS = 0x1D00FFFF


class Mismatch(Exception):
    """The C++ side did or said something other than what the protocol requires."""


@dataclass
class Transcript:
    out: Callable[[str], None] = print
    failures: list = field(default_factory=list)

    def say(self, line: str) -> None:
        self.out(line)

    def msg(self, direction: str, m: Message) -> None:
        self.out(f"    {direction} {describe(m)}")


def describe(m: Message) -> str:
    parts = []
    for name, v in m.fields().items():
        if isinstance(v, (bytes, bytearray)):
            v = v.hex() if len(v) <= 12 else f"{v[:6].hex()}..({len(v)} B)"
        elif isinstance(v, list):
            v = f"[{len(v)} items]"
        parts.append(f"{name}={v}")
    return f"{m.SPEC.name}({', '.join(parts)})"


def expect(cond: bool, what: str) -> None:
    if not cond:
        raise Mismatch(what)


# ---- the C++ template provider's messages, checked field by field -------------------------


def mini_tp_expected_template(template_id: int) -> dict:
    outputs = bytes(8) + bytes.fromhex("266a24aa21a9ed") + b"\x5a" * 32
    return dict(template_id=template_id, future_template=True, version=0x20000000,
                coinbase_tx_version=2,
                coinbase_prefix=b"\x03" + MINI_TP_HEIGHT.to_bytes(3, "little"),
                coinbase_tx_input_sequence=0xFFFFFFFF, coinbase_tx_value_remaining=MINI_TP_VALUE,
                coinbase_tx_outputs_count=1, coinbase_tx_outputs=outputs,
                coinbase_tx_locktime=0,
                merkle_path=[bytes(range(i * 32, i * 32 + 32)) for i in range(3)])


def check_fields(m: Message, expected: dict) -> None:
    for name, want in expected.items():
        got = getattr(m, name)
        expect(got == want, f"{m.SPEC.name}.{name}: got {got!r}, expected {want!r}")


async def _recv(stream, t: Transcript, cls: type) -> Message:
    try:
        m = await asyncio.wait_for(stream.recv(), TIMEOUT)
    except errors.ConnectionClosed:
        raise Mismatch(f"the C++ side closed the connection; expected {cls.SPEC.name}") from None
    except asyncio.TimeoutError:
        raise Mismatch(f"no {cls.SPEC.name} within {TIMEOUT:.0f} s") from None
    t.msg("c++ >", m)
    expect(isinstance(m, cls), f"expected {cls.SPEC.name}, got {m.SPEC.name}")
    return m


async def _send(stream, t: Transcript, m: Message) -> None:
    t.msg("py  >", m)
    await stream.send(m)


def _setup(protocol: int = 2, min_version: int = 2, max_version: int = 2) -> SetupConnection:
    return SetupConnection(protocol, min_version, max_version, 0, "127.0.0.1", 0,
                           "sv2ffi-interop", "", "", "")


async def mini_tp_session(stream, t: Transcript) -> None:
    """The good path against mini_tp.hpp: setup, template, tip, transaction data."""
    await _send(stream, t, _setup())
    ok = await _recv(stream, t, SetupConnectionSuccess)
    check_fields(ok, dict(used_version=2, flags=0))
    await _send(stream, t, CoinbaseOutputConstraints(100, 4))
    nt = await _recv(stream, t, NewTemplate)
    check_fields(nt, mini_tp_expected_template(nt.template_id))
    snph = await _recv(stream, t, SetNewPrevHash)
    target = bitcoin.target_le(bitcoin.bits_to_target(MINI_TP_NBITS))
    check_fields(snph, dict(template_id=nt.template_id,
                            prev_hash=bytes(0xFF - j for j in range(32)),
                            header_timestamp=1700000000, n_bits=MINI_TP_NBITS, target=target))
    await _send(stream, t, RequestTransactionData(nt.template_id))
    txs = await _recv(stream, t, RequestTransactionDataSuccess)
    check_fields(txs, dict(template_id=nt.template_id, excess_data=bytes(32),
                           transaction_list=[b"\x01" * 100, b"\x02" * 1000]))
    await _send(stream, t, RequestTransactionData(nt.template_id + 5))
    err = await _recv(stream, t, RequestTransactionDataError)
    check_fields(err, dict(template_id=nt.template_id + 5, error_code="template-id-not-found"))


async def refused_setup(stream, t: Transcript, setup: SetupConnection, code: str) -> None:
    await _send(stream, t, setup)
    err = await _recv(stream, t, SetupConnectionError)
    check_fields(err, dict(flags=0, error_code=code))
    try:
        extra = await asyncio.wait_for(stream.recv(), TIMEOUT)
    except errors.ConnectionClosed:
        t.say("    (closed by the C++ side, as the spec requires)")
        return
    raise Mismatch(f"the connection stayed open after SetupConnection.Error ({describe(extra)})")


# ---- running the examples ------------------------------------------------------------------


class Example:
    """A running example program: its first lines, then its transcript.

    Its output (stdout and stderr, merged) always ends up in the transcript: ``finish``
    prints it after a normal exit, ``stop`` prints whatever was not printed yet when a
    run fails, so a failure never hides what the C++ side said."""

    def __init__(self, proc: asyncio.subprocess.Process, name: str):
        self.proc = proc
        self.name = name
        self.seen: list[str] = []  # lines consumed by line() before finish()
        self.printed = False

    @classmethod
    async def start(cls, binary: Path, *args: str) -> "Example":
        proc = await asyncio.create_subprocess_exec(
            str(binary), *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        return cls(proc, binary.name)

    async def line(self, prefix: str) -> str:
        """The first output line starting with prefix (the rest of it)."""
        while True:
            try:
                raw = await asyncio.wait_for(self.proc.stdout.readline(), TIMEOUT)
            except asyncio.TimeoutError:
                raise Mismatch(f"{self.name} printed no '{prefix}' line") from None
            if not raw:
                raise Mismatch(f"{self.name} exited before printing '{prefix}'")
            text = raw.decode(errors="replace").rstrip("\n")
            self.seen.append(text)
            if text.startswith(prefix):
                return text[len(prefix):].strip()

    async def finish(self, t: Transcript, *, expect_exit: bool = True) -> tuple[int, str]:
        """Wait for the exit (or end it), print its output, return (exit code, output)."""
        try:
            out, _ = await asyncio.wait_for(self.proc.communicate(), TIMEOUT if expect_exit else 0.5)
        except asyncio.TimeoutError:
            self.proc.kill()
            out, _ = await self.proc.communicate()
            if expect_exit:
                raise Mismatch(f"{self.name} did not exit within {TIMEOUT:.0f} s") from None
        text = out.decode(errors="replace")
        self.printed = True
        for ln in text.splitlines():
            t.say(f"    c++ | {ln}")
        return self.proc.returncode, text

    async def stop(self, t: Transcript | None = None) -> None:
        """Kill it if still running and reap it (no transport outlives the loop); with a
        transcript, print the output ``finish`` did not (a failed run)."""
        if self.proc.returncode is None:
            self.proc.kill()
        out = b""
        with contextlib.suppress(asyncio.TimeoutError, ProcessLookupError, ValueError):
            out, _ = await asyncio.wait_for(self.proc.communicate(), TIMEOUT)
        if t is not None and not self.printed:
            self.printed = True
            lines = self.seen + (out or b"").decode(errors="replace").splitlines()
            t.say(f"    {self.name} output ({'exit code ' + str(self.proc.returncode)}):")
            for ln in lines or ["(nothing)"]:
                t.say(f"    c++ | {ln}")


async def run_template_provider(binary: Path, t: Transcript, *extra: str) -> None:
    from ..connection import Connection
    from ..aio import connect

    ex = await Example.start(binary, "--connections", "3", *extra)
    try:
        port = int((await ex.line("listening ")).rsplit(":", 1)[1])
        t.say(f"  template_provider listening on 127.0.0.1:{port} (plain framing)")
        scenarios = [
            ("supported setup", lambda s: mini_tp_session(s, t)),
            ("protocol 0 (mining)",
             lambda s: refused_setup(s, t, _setup(protocol=0), "unsupported-protocol")),
            ("versions 3..4",
             lambda s: refused_setup(s, t, _setup(min_version=3, max_version=4),
                                     "protocol-version-mismatch")),
        ]
        for title, body in scenarios:
            t.say(f"  - {title}")
            stream = await connect("127.0.0.1", port, connection=Connection.plain(),
                                   timeout=TIMEOUT)
            try:
                await body(stream)
            finally:
                await stream.close()
        code, _ = await ex.finish(t)
        expect(code == 0, f"template_provider exited with {code}")
    finally:
        await ex.stop(t)


async def run_noise_server(binary: Path, t: Transcript) -> None:
    from ..connection import Connection
    from ..aio import connect

    ex = await Example.start(binary, "--connections", "1")
    try:
        authority = await ex.line("authority ")
        port = int((await ex.line("listening ")).rsplit(":", 1)[1])
        t.say(f"  noise_server on 127.0.0.1:{port}, authority {authority}")
        stream = await connect("127.0.0.1", port, connection=Connection.initiator(authority),
                               timeout=TIMEOUT)
        try:
            t.say("    handshake done: the certificate verifies against that authority key")
            await mini_tp_session(stream, t)
        finally:
            await stream.close()
        code, _ = await ex.finish(t)
        expect(code == 0, f"noise_server exited with {code}")
    finally:
        await ex.stop(t)


def python_template() -> tuple[NewTemplate, SetNewPrevHash, RequestTransactionDataSuccess]:
    """What the Python server sends the C++ client (values unlike mini_tp's)."""
    nt = NewTemplate(template_id=77, future_template=True, version=0x20000004,
                     coinbase_tx_version=2, coinbase_prefix=bytes.fromhex("03a0bb0d"),
                     coinbase_tx_input_sequence=0xFFFFFFFE, coinbase_tx_value_remaining=625000000,
                     coinbase_tx_outputs_count=1,
                     coinbase_tx_outputs=bytes(8) + bytes.fromhex("266a24aa21a9ed") + bytes(range(32)),
                     coinbase_tx_locktime=0,
                     merkle_path=[bytes([i]) * 32 for i in range(1, 6)])
    bits = 0x207FFFFF
    snph = SetNewPrevHash(77, bytes(range(100, 132)), 1710000000, bits,
                          bitcoin.target_le(bitcoin.bits_to_target(bits)))
    txs = RequestTransactionDataSuccess(77, b"\x00" * 32, [b"\x10" * 150, b"", b"\x20" * 4000])
    return nt, snph, txs


async def run_noise_client(binary: Path, t: Transcript) -> None:
    from ..aio import serve
    from ..connection import Connection
    from ..keys import Keypair, encode_authority_pubkey

    authority, static = Keypair.generate(), Keypair.generate()
    nt, snph, txs = python_template()
    seen: list[Message] = []
    problems: list[str] = []

    async def handler(stream) -> None:
        try:
            setup = await _recv(stream, t, SetupConnection)
            seen.append(setup)
            await _send(stream, t, SetupConnectionSuccess(2, 0))
            seen.append(await _recv(stream, t, CoinbaseOutputConstraints))
            await _send(stream, t, nt)
            await _send(stream, t, snph)
            req = await _recv(stream, t, RequestTransactionData)
            seen.append(req)
            await _send(stream, t, txs)
            await asyncio.wait_for(stream.recv(), TIMEOUT)  # until the client hangs up
        except errors.ConnectionClosed:
            pass
        except Exception as e:  # reported below, in the caller's task
            problems.append(f"{type(e).__name__}: {e}")

    server = await serve(handler, "127.0.0.1", 0,
                         connection_factory=lambda: Connection.responder_from_authority(
                             static, authority))
    try:
        key_text = encode_authority_pubkey(authority.xonly)
        t.say(f"  Python Noise server on 127.0.0.1:{server.port}, authority {key_text}")
        ex = await Example.start(binary, "--port", str(server.port), "--authority", key_text)
        try:
            code, text = await ex.finish(t)
        finally:
            await ex.stop(t)
    finally:
        await server.close()
    if problems:
        raise Mismatch("; ".join(problems))
    expect(code == 0, f"noise_client exited with {code}")
    expect(len(seen) == 3, f"the Python server saw {len(seen)} of 3 client messages")
    setup, constraints, req = seen
    check_fields(setup, dict(protocol=2, min_version=2, max_version=2, vendor="sv2ffi-cpp",
                             endpoint_host="127.0.0.1", endpoint_port=server.port))
    check_fields(constraints, dict(coinbase_output_max_additional_size=100,
                                   coinbase_output_max_additional_sigops=4))
    check_fields(req, dict(template_id=nt.template_id))
    printed = _key_values(text)
    want = {
        "handshake.server_static": static.xonly.hex(),
        "SetupConnection.Success.used_version": "2",
        "NewTemplate.template_id": str(nt.template_id),
        "NewTemplate.future_template": "1",
        "NewTemplate.version": str(nt.version),
        "NewTemplate.coinbase_prefix": nt.coinbase_prefix.hex(),
        "NewTemplate.coinbase_tx_value_remaining": str(nt.coinbase_tx_value_remaining),
        "NewTemplate.coinbase_tx_outputs": nt.coinbase_tx_outputs.hex(),
        "NewTemplate.merkle_path_len": str(len(nt.merkle_path)),
        "NewTemplate.merkle_path_last": nt.merkle_path[-1].hex(),
        "SetNewPrevHash.template_id": str(snph.template_id),
        "SetNewPrevHash.prev_hash": snph.prev_hash.hex(),
        "SetNewPrevHash.n_bits": str(snph.n_bits),
        "SetNewPrevHash.target": snph.target.hex(),
        "RequestTransactionData.Success.transactions": str(len(txs.transaction_list)),
    }
    for i, tx in enumerate(txs.transaction_list):
        want[f"RequestTransactionData.Success.tx{i}_len"] = str(len(tx))
    for key, value in want.items():
        expect(printed.get(key) == value,
               f"noise_client printed {key}={printed.get(key)!r}, the server sent {value!r}")


# ---- the embedded template provider: a C++ node, mined by `sv2ffi client --mine` ------------


async def _pump(stream, prefix: str, t: Transcript, lines: list, first: dict) -> None:
    """Copy a process's output into the transcript as it arrives; remember lines."""
    while True:
        raw = await stream.readline()
        if not raw:
            return
        text = raw.decode(errors="replace").rstrip("\n")
        lines.append(text)
        t.say(f"    {prefix} | {text}")
        for key, fut in first.items():
            if text.startswith(key) and not fut.done():
                fut.set_result(text[len(key):].strip())


@dataclass
class EmbeddedRun:
    """One run of embedded_node mined by `sv2ffi client --mine`: the node's output lines and
    what ``check_embedded_chain`` found."""

    node_lines: list
    check: "ChainCheck"


@dataclass
class ChainCheck:
    """The embedded node's chain as ``check_embedded_chain`` found it."""

    premine: int  # blocks the node mined itself at start-up: heights 1..premine
    mined: int  # blocks mined through SV2 on top: premine+1..premine+mined
    #: blocks Bitcoin Core's validation connected (premine + mined), None when
    #: py-bitcoinkernel is not available and only the Python re-check ran
    core_connected: Optional[int]
    stale: int = 0  # persisted solutions the node refused as stale (Core: side branches)


async def run_embedded_node(binary: Path, t: Transcript, blocks: int = EMBEDDED_BLOCKS,
                            datadir: Path | None = None) -> EmbeddedRun:
    """Run the node and `sv2ffi client --mine` until ``blocks`` blocks are accepted, then
    check the node's chain (``check_embedded_chain``).  The node's data directory is
    temporary unless given."""
    import tempfile

    if datadir is None:
        with tempfile.TemporaryDirectory(prefix="sv2ffi-embedded-") as tmp:
            return await run_embedded_node(binary, t, blocks, Path(tmp) / "node")
    node = await asyncio.create_subprocess_exec(
        str(binary), "--datadir", str(datadir), "--blocks", str(blocks),
        "--timeout", str(int(TIMEOUT * 3)),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    pool = None
    node_lines: list[str] = []
    pool_lines: list[str] = []
    loop = asyncio.get_running_loop()
    first = {"authority ": loop.create_future(), "listening ": loop.create_future()}
    pumps = [loop.create_task(_pump(node.stdout, "node", t, node_lines, first))]
    try:
        try:
            key = await asyncio.wait_for(first["authority "], TIMEOUT)
            port = (await asyncio.wait_for(first["listening "], TIMEOUT)).rsplit(":", 1)[1]
        except asyncio.TimeoutError:
            raise Mismatch("embedded_node printed no authority key / port") from None
        t.say(f"  embedded_node serves SV2 on 127.0.0.1:{port}; starting "
              f"`sv2ffi client --mine --blocks {blocks}`")
        pool = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "sv2ffi", "client", "--port", port, "--authority-pubkey",
            key, "--mine", "--blocks", str(blocks), "--interval", "0.2", "--timeout",
            str(int(TIMEOUT * 2)),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        pumps.append(loop.create_task(_pump(pool.stdout, "pool", t, pool_lines, {})))
        try:
            node_code, pool_code = await asyncio.wait_for(
                asyncio.gather(node.wait(), pool.wait()), TIMEOUT * 6)
            await asyncio.wait_for(asyncio.gather(*pumps), TIMEOUT)
        except asyncio.TimeoutError:
            raise Mismatch(f"mining {blocks} blocks did not finish within "
                           f"{TIMEOUT * 6:.0f} s") from None
    finally:
        for proc in (node, pool):
            if proc is not None and proc.returncode is None:
                proc.kill()
                await proc.wait()
        for p in pumps:
            p.cancel()
        await asyncio.gather(*pumps, return_exceptions=True)
    expect(pool_code == 0, f"sv2ffi client exited with {pool_code}")
    expect(node_code == 0, f"embedded_node exited with {node_code}")
    submitted = [ln for ln in pool_lines if ln.startswith("-> SubmitSolution")]
    expect(len(submitted) == blocks, f"the pool submitted {len(submitted)} solutions, "
                                     f"expected {blocks}")
    return EmbeddedRun(node_lines, check_embedded_chain(node_lines, datadir, blocks, t))


def check_embedded_chain(node_lines: list, datadir: Path, blocks: int,
                         t: Transcript) -> ChainCheck:
    """The node's whole chain, judged again from its files: the premine it wrote to
    DATADIR/premine.hex, then the blocks it accepted, from the copies the library persisted
    in DATADIR/solved-blocks.

    First Bitcoin Core's validation (libbitcoinkernel, ``tp.kernel.CoreValidator``, a fresh
    regtest chainstate) replays them in height order and must connect every one; a refusal
    is a Mismatch carrying Core's reason.  Persisted solutions the node refused as stale
    must be valid side branches to Core.  Without py-bitcoinkernel the transcript says
    Core did not judge them.  Then the Python re-check, which also knows what Core cannot
    (what the node printed): chained from regtest genesis, nBits, proof of work, merkle
    root, BIP34 height, witness commitment, and for the SV2-mined blocks the height, tx
    count and coinbase value (subsidy + the fees the node reported)."""
    from ..tp.regtest import genesis_block
    from ..tp.storage import saved_blocks

    premine = _read_premine(datadir)
    summary = next((ln for ln in node_lines if ln.startswith("premine ")), None)
    expect(summary is not None, "embedded_node printed no 'premine' line")
    info = _key_values(summary)
    expect(info.get("premine.height") == str(len(premine)),
           f"embedded_node reported a premine to height {info.get('premine.height')}, "
           f"{PREMINE_FILE} holds {len(premine)} blocks")
    expect(info.get("premine.tip") == bitcoin.hash_hex(premine[-1][2].hash),
           f"embedded_node's premine tip {info.get('premine.tip')} is not the last block of "
           f"{PREMINE_FILE}")

    accepted = [_key_values("accepted " + ln[len("accepted "):])
                for ln in node_lines if ln.startswith("accepted block ")]
    expect(len(accepted) == blocks, f"embedded_node accepted {len(accepted)} blocks, "
                                    f"expected {blocks}")
    files = {p.name.split("-", 1)[1][:-4]: p for p in saved_blocks(datadir)}
    mined = []  # (height, raw, block, accepted line)
    for height, acc in enumerate(accepted, start=len(premine) + 1):
        h = acc["accepted.hash"]
        expect(acc["accepted.height"] == str(height), f"accepted block {h}: height "
                                                      f"{acc['accepted.height']}, expected {height}")
        expect(h in files, f"block {h} was not persisted in {datadir}/solved-blocks")
        raw = files.pop(h).read_bytes()
        mined.append((height, raw, _parse_block(raw, f"persisted block {height}"), acc))
    # solutions the node refused as stale build on a block of its chain; anything else
    # in solved-blocks is left from another run in the same directory
    on_chain = {blk.hash for _, _, blk in premine} | {m[2].hash for m in mined}
    on_chain.add(genesis_block().hash)
    stale, foreign = [], 0
    for p in files.values():
        raw = p.read_bytes()
        if raw[4:36] in on_chain:
            stale.append((int(p.name.split("-", 1)[0]), raw))
        else:
            foreign += 1
    stale.sort()
    if foreign:
        t.say(f"  ignored {foreign} persisted blocks that do not build on this node's chain "
              f"(left from an earlier run in {datadir})")

    chain = [(height, raw) for height, raw, _ in premine] + [(m[0], m[1]) for m in mined]
    core = _core_replay(chain, stale, t)

    regtest = bitcoin.NETWORKS["regtest"]
    prev = genesis_block().hash
    for height, _, blk in premine:
        _recheck_block(blk, height, prev, regtest)
        prev = blk.hash
    for height, _, blk, acc in mined:
        _recheck_block(blk, height, prev, regtest)
        h = acc["accepted.hash"]
        expect(bitcoin.hash_hex(blk.hash) == h, f"persisted block {h} hashes to "
                                                f"{bitcoin.hash_hex(blk.hash)}")
        claimed = sum(o.value for o in blk.txs[0].vout)
        allowed = bitcoin.block_subsidy(height, regtest) + int(acc["accepted.fees"])
        expect(claimed == allowed, f"block {height}: coinbase pays {claimed}, node allowed "
                                   f"{allowed}")
        expect(int(acc["accepted.txs"]) == len(blk.txs) - 1, f"block {height}: tx count")
        prev = blk.hash
    t.say(f"  checked in Python: the premine (1..{len(premine)}) and the {blocks} persisted "
          f"blocks chain from regtest genesis with nBits 0x207fffff, valid proof of work, "
          f"merkle roots, BIP34 heights and witness commitments; the {blocks} mined through "
          f"SV2 pay the subsidy + fees the node reported")
    return ChainCheck(len(premine), blocks, core, len(stale))


def _read_premine(datadir: Path) -> list:
    """DATADIR/premine.hex -> [(height, raw, Block)], heights from 1."""
    path = Path(datadir) / PREMINE_FILE
    try:
        lines = path.read_text().split()
    except FileNotFoundError:
        raise Mismatch(f"embedded_node wrote no {path}") from None
    expect(bool(lines), f"{path} is empty")
    out = []
    for height, text in enumerate(lines, start=1):
        try:
            raw = bytes.fromhex(text)
        except ValueError:
            raise Mismatch(f"{path} line {height} is not hex") from None
        out.append((height, raw, _parse_block(raw, f"premine block {height}")))
    return out


def _parse_block(raw: bytes, what: str) -> bitcoin.Block:
    try:
        return bitcoin.Block.from_bytes(raw)
    except errors.BitcoinDecodeError as e:
        raise Mismatch(f"{what} does not parse: {e}") from None


def _core_replay(chain: list, stale: list, t: Transcript) -> Optional[int]:
    """Replay [(height, raw)] through a fresh Core chainstate; how many it connected
    (None: Core's validation is not available here)."""
    from ..tp import kernel

    if not kernel.available():
        t.say("  Bitcoin Core's validation is NOT available (py-bitcoinkernel not importable "
              f"or {kernel.DISABLE_ENV} set): Core did not judge these blocks; Python "
              "re-check only")
        return None
    v = kernel.CoreValidator()
    try:
        for height, raw in chain:
            reason = v.process_block(raw)
            if reason is not None:
                raise Mismatch(f"Bitcoin Core rejected block {height} "
                               f"({bitcoin.hash_hex(bitcoin.sha256d(raw[:80]))}): {reason}")
        for height, raw in stale:
            reason = v.process_block(raw)
            if reason not in ("inconclusive", "duplicate"):
                raise Mismatch(f"Bitcoin Core judged the stale solution at height {height} "
                               f"({bitcoin.hash_hex(bitcoin.sha256d(raw[:80]))}): "
                               f"{reason or 'it became the tip'}")
        expect(v.height == chain[-1][0], f"Bitcoin Core's tip is at height {v.height}, "
                                         f"the node's at {chain[-1][0]}")
        connected = v.accepted
    finally:
        v.close()
    side = f"; {len(stale)} stale solutions are valid side branches" if stale else ""
    t.say(f"  Bitcoin Core's validation (libbitcoinkernel) connected all {connected} blocks: "
          f"the premine and the blocks mined through SV2, tip height {chain[-1][0]}{side}")
    return connected


def _recheck_block(blk: bitcoin.Block, height: int, prev: bytes, net) -> None:
    """The consensus facts Python can check about one block without a UTXO set."""
    hdr = blk.header
    expect(hdr.prev_hash == prev, f"block {height} does not extend block {height - 1}")
    expect(hdr.bits == net.pow_limit_bits, f"block {height}: nBits {hdr.bits:#x}, regtest "
                                           f"uses {net.pow_limit_bits:#x}")
    expect(bitcoin.hash_meets_target(blk.hash, bitcoin.bits_to_target(hdr.bits)),
           f"block {height}: proof of work")
    expect(hdr.merkle_root == bitcoin.merkle_root([tx.txid for tx in blk.txs]),
           f"block {height}: merkle root")
    cb = blk.txs[0]
    expect(bitcoin.parse_bip34_height(cb.vin[0].script_sig) == height,
           f"block {height}: BIP34 height")
    idx = bitcoin.find_witness_commitment(cb)
    expect(idx is not None, f"block {height}: no witness commitment")
    want = bitcoin.witness_commitment_script(bitcoin.witness_commitment(
        [tx.wtxid for tx in blk.txs[1:]], cb.vin[0].witness[0]))
    expect(cb.vout[idx].script_pubkey == want, f"block {height}: witness commitment")


def _key_values(text: str) -> dict[str, str]:
    """'Name k=v k=v' lines -> {'Name.k': 'v'}."""
    out = {}
    for line in text.splitlines():
        head, *pairs = line.split()
        for pair in pairs:
            if "=" in pair:
                k, v = pair.split("=", 1)
                out[f"{head}.{k}"] = v
    return out


# ---- building -----------------------------------------------------------------------------


def build_examples(build_dir: Path | None, log: Callable[[str], None]) -> dict[str, Path]:
    """Build libsv2 (from source when possible) and the examples as a standalone project
    consuming the installed library; return example name -> binary."""
    from .. import config

    root = devbuild.source_root()
    if root is not None:
        log("building libsv2, its tests and the examples (CMake, build/capi)")
        b = devbuild.build(build_dir, log=log)
        prefix, sources = b.stage, root / "examples" / "cpp"
        out = b.build_dir / "examples-standalone"
    else:
        inst = config.find()
        prefix, sources = inst.prefix, inst.prefix / "share" / "examples" / "cpp"
        out = (build_dir or cache_dir(prefix)).resolve()
    log(f"building examples/cpp as a standalone project against {prefix} in {out}")
    _cmake(["cmake", "-S", str(sources), "-B", str(out), *devbuild.generator_args(),
            f"-DCMAKE_PREFIX_PATH={prefix}", "-DCMAKE_BUILD_TYPE=RelWithDebInfo"])
    _cmake(["cmake", "--build", str(out)])
    return {name: out / name for name in EXAMPLES}


def cache_dir(prefix: Path) -> Path:
    """Where an installed package builds the examples: the user's cache directory
    ($XDG_CACHE_HOME/sv2ffi, else ~/.cache/sv2ffi), one build per installation, never the
    current directory (which may be anything, read-only included)."""
    import hashlib
    import os

    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "sv2ffi"
    tag = hashlib.sha256(str(prefix).encode()).hexdigest()[:12]
    return base / f"interop-{tag}"


def _cmake(cmd: list[str]) -> None:
    """Run CMake; on failure the error carries the tail of its output (compiler errors)."""
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=600)
    if proc.returncode != 0:
        raise devbuild.BuildError(f"{' '.join(cmd)} failed ({proc.returncode}):\n"
                                  f"{proc.stdout[-6000:]}")


async def run_all(binaries: dict[str, Path], t: Transcript, only: list[str] | None) -> None:
    runs = {
        "template_provider": run_template_provider,
        "noise_server": run_noise_server,
        "noise_client": run_noise_client,
        "embedded_node": run_embedded_node,
    }
    for name, fn in runs.items():
        if only and name not in only:
            continue
        t.say(f"== {name} ==")
        try:
            await fn(binaries[name], t)
            t.say(f"PASS {name}")
        except (Mismatch, errors.Sv2Error, OSError) as e:
            t.failures.append(f"{name}: {e}")
            t.say(f"FAIL {name}: {e}")


def main(build_dir: str | None = None, only: list[str] | None = None,
         out: Callable[[str], None] = print) -> int:
    t = Transcript(out)
    try:
        binaries = build_examples(Path(build_dir) if build_dir else None, t.say)
    except (subprocess.CalledProcessError, RuntimeError, OSError) as e:
        t.say(f"FAIL build: {e}")
        return 1
    asyncio.run(run_all(binaries, t, only))
    total = len(only) if only else len(EXAMPLES)
    t.say(f"{total - len(t.failures)} passed, {len(t.failures)} failed")
    return 1 if t.failures else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

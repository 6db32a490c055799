"""``sv2ffi demo``: what README's first command runs.

A template provider on the built-in regtest test/demo chain and a pool-side client, in one
process, talking Stratum V2 over a real TCP socket through Noise.  The transcript follows
one session: setup, the first template pair, the block's transactions, a block mined on a
CPU and submitted, the chain advancing, the next templates (the next height's empty
template, built ahead of time and sent with its SetNewPrevHash at the tip; a fee-driven
update), and a second and third block.  Bitcoin Core's validation judges every block.
Exit code 0 only if every step checked out.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import time
from typing import TextIO

from . import bitcoin as btc
from .client import TdpClient
from .examples.pingpong import memory_keys
from .messages import NewTemplate, RequestTransactionDataSuccess, SetNewPrevHash
from .tp.core import TpConfig
from .tp.server import TpService
from .tp.sources.regtest import RegtestSource
from .tp.storage import saved_blocks

T = 15  # bound on every wait


class _Transcript:
    def __init__(self, out: TextIO):
        self.out = out
        self.t0 = time.monotonic()

    def __call__(self, who: str, text: str) -> None:
        print(f"{time.monotonic() - self.t0:6.3f}s  {who:<7} {text}", file=self.out, flush=True)


def _nt(m: NewTemplate) -> str:
    kind = "future" if m.future_template else "active"
    return (f"NewTemplate id={m.template_id} ({kind}) height={btc.parse_bip34_height(m.coinbase_prefix)}"
            f" coinbase value={m.coinbase_tx_value_remaining / btc.COIN:.8f} BTC"
            f" merkle_path={len(m.merkle_path)}")


async def _demo(say: _Transcript, datadir: str) -> bool:
    source = RegtestSource(mempool_interval=0, seed=2026, initial_txs=12)
    chain = source.chain
    # throwaway keys: the demo's datadir is temporary, so no pool could have pinned any
    service = TpService(source, datadir=datadir, keys=memory_keys(),
                        config=TpConfig(template_interval=0.2, fee_delta=1000))
    say("chain", f"built-in regtest test/demo chain (in memory, not a node) at height "
                 f"{chain.height}, nBits 0x207fffff, halving every 150 blocks")
    judge = ("Bitcoin Core's validation (libbitcoinkernel) judges every block"
             if chain.validator is not None else
             "its own checks only (py-bitcoinkernel not installed: Core does not judge blocks)")
    say("chain", judge)
    await service.start()
    ok = True
    try:
        say("chain", f"mempool: {len(chain.mempool)} fee-paying segwit transactions "
                     f"({sum(e.fee for e in chain.mempool.values())} sat in fees)")
        say("tp", f"listening on 127.0.0.1:{service.port}; authority key "
                  f"{service.authority_pubkey}")
        c = await TdpClient.connect("127.0.0.1", service.port,
                                    authority_pubkey=service.authority_pubkey, timeout=T,
                                    max_additional_size=100, max_additional_sigops=10)
        say("client", "Noise handshake done; TP certificate signed by the authority key")
        say("client", "-> SetupConnection(protocol=2, version 2)  <- SetupConnection.Success")
        say("client", "-> CoinbaseOutputConstraints(max_additional_size=100, sigops=10)")
        start_height = chain.height
        # the opening: the current work as a future template immediately activated by its
        # SetNewPrevHash (the pair SRI pools bootstrap every new channel from)
        while c.state.prev_hash is None or not c.state.current.merkle_path:
            m = await c.recv(T)
            if isinstance(m, NewTemplate):
                say("client", "<- " + _nt(m))
            elif isinstance(m, SetNewPrevHash):
                say("client", f"<- SetNewPrevHash template={m.template_id} prev="
                              f"{btc.hash_hex(m.prev_hash)[:16]}… nBits={m.n_bits:08x}")
        c.state.bootstrap_channel()
        cur = c.state.current
        r = await c.request_transaction_data(cur.template_id, T)
        ok &= isinstance(r, RequestTransactionDataSuccess)
        say("client", f"-> RequestTransactionData({cur.template_id})  <- Success: "
                      f"{len(r.transaction_list)} witness-serialized transactions, excess_data = "
                      f"{len(r.excess_data)}-byte witness reserved value")
        ok &= len(r.transaction_list) == 12 and r.excess_data == bytes(32)
        for n in range(3):
            cur = c.state.current
            t0 = time.perf_counter()
            sol = c.mine_current()
            say("client", f"mined template {cur.template_id} on a CPU in "
                          f"{(time.perf_counter() - t0) * 1000:.1f} ms (nonce {sol.header_nonce}) "
                          f"-> SubmitSolution")
            before = chain.height
            await c.submit(sol)
            fut = await c.wait_for(NewTemplate, T, lambda m: m.future_template)
            snph = await c.wait_for(SetNewPrevHash, T)
            ok &= chain.height == before + 1 and snph.prev_hash == chain.tip_hash
            ok &= snph.template_id == fut.template_id and not fut.merkle_path
            blk = chain.tip
            by = "Bitcoin Core" if chain.validator is not None else "the chain"
            say("tp", f"block {btc.hash_hex(chain.tip_hash)[:16]}… rebuilt, proof of work "
                      f"checked, persisted, accepted by {by}: height {chain.height}, "
                      f"{len(blk.txs)} transactions")
            say("client", "<- " + _nt(fut) + "  (empty, built before this block existed)")
            say("client", f"<- SetNewPrevHash template={snph.template_id}  (activates it at once:"
                          " the new tip costs no node round trip)")
            if n == 0:
                added = chain.add_random_transactions(8, min_feerate=20, max_feerate=40)
                say("chain", f"{added} transactions paying 20-40 sat/vB enter the mempool")
                m = await c.wait_for(NewTemplate, T, lambda m: not m.future_template)
                fees = m.coinbase_tx_value_remaining - btc.block_subsidy(chain.height + 1,
                                                                         chain.network)
                say("client", "<- " + _nt(m) + f"  (the full template follows: {fees} sat fees)")
                added = chain.add_random_transactions(5, min_feerate=100, max_feerate=150)
                say("chain", f"{added} more paying 100-150 sat/vB")
                m2 = await c.wait_for(NewTemplate, T, lambda m: not m.future_template)
                fees2 = m2.coinbase_tx_value_remaining - btc.block_subsidy(chain.height + 1,
                                                                           chain.network)
                say("client", "<- " + _nt(m2) + f"  (fee-driven update: +{fees2 - fees} sat, "
                                                f"over the 1000 sat fee delta)")
                ok &= fees2 - fees >= 1000
        ok &= chain.height == start_height + 3
        ok &= len(saved_blocks(datadir)) == 3
        say("chain", f"height {start_height} -> {chain.height}: 3 blocks mined through Stratum V2"
                     f" ({len(saved_blocks(datadir))} solved blocks persisted in the data directory)")
        await c.close()
    finally:
        await service.stop()
    return ok


def run_demo(out: TextIO) -> int:
    logging.getLogger("sv2ffi").setLevel(logging.WARNING)
    say = _Transcript(out)
    with tempfile.TemporaryDirectory(prefix="sv2ffi-demo-") as datadir:
        ok = asyncio.run(asyncio.wait_for(_demo(say, datadir), 60))
    print("demo: OK" if ok else "demo: FAILED", file=out)
    return 0 if ok else 1

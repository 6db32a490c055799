"""The embedded template provider under valgrind memcheck: stopping and freeing it while
Noise clients are connected (and after a solution went through the C callback) leaves no
definitely lost block and no invalid read or write.

Same harness as tests/test_capi_valgrind.py (PYTHONMALLOC=malloc, the suppressions in
tests/capi/valgrind.supp keyed on the interpreter and its extension modules, never on
libsv2); tests/test_capi_valgrind.py::test_a_leak_in_libsv2_is_reported shows those
suppressions do not hide libsv2's own blocks.  Each run takes a few seconds to a minute.
"""

from __future__ import annotations

import asyncio
import os
import shutil

import pytest

from test_capi_tp import TpEmbed, assembled, connect, wait_for_full_template
from test_capi_valgrind import SUPP, assert_clean
from sv2ffi.tp.regtest import RegtestChain

pytestmark = pytest.mark.skipif(
    not (shutil.which("valgrind") and shutil.which("cmake") and shutil.which("gcc")),
    reason="valgrind, cmake and a C compiler are needed")

T = 180  # valgrind makes everything slow; still bounded


@pytest.fixture(scope="module")
def capi():
    from sv2ffi.capi import devbuild

    return devbuild.build_once()


def memcheck_embed(capi, tmp_path) -> tuple[TpEmbed, os.PathLike]:
    log = tmp_path / "memcheck.log"
    wrapper = ("valgrind", f"--suppressions={SUPP}", "--leak-check=full",
               "--errors-for-leak-kinds=definite", "--error-exitcode=99", "--num-callers=30",
               f"--log-file={log}")
    tp = TpEmbed(capi.test_program("tp_embed"), tmp_path / "datadir", wrapper=wrapper,
                 env={"PYTHONMALLOC": "malloc"}, startup_timeout=T)
    return tp, log


@pytest.mark.parametrize("how", ["stop then free", "free only"])
def test_stop_and_free_with_clients_connected_are_clean(capi, tmp_path, how):
    chain = RegtestChain(seed=31)
    chain.add_random_transactions(6)
    tp, log = memcheck_embed(capi, tmp_path)
    try:
        assert tp.push(assembled(chain), timeout=T) == "ok"

        async def main():
            clients = [await connect(tp, timeout=T) for _ in range(3)]
            for c in clients:
                await wait_for_full_template(c, timeout=T)
            await clients[0].submit(clients[0].mine_current())  # through the C callback
            await asyncio.to_thread(tp.expect, "solution ", T)
            if how == "stop then free":
                tp.send("stop")
                stopped = await asyncio.to_thread(tp.expect, "stopped ", T)
                assert stopped.startswith("SV2_OK running_at_return=0 callbacks=1")
            tp.send("free")
            await asyncio.to_thread(tp.expect, "freed", T)
            for c in clients:  # the provider hung up on them
                await c.close()

        asyncio.run(asyncio.wait_for(main(), 2 * T))
        code, _ = tp.finish(T)
    finally:
        tp.kill()
    assert_clean(code, log.read_text())

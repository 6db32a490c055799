"""No client can hurt another (issue 15): each attack of tests/hostile.py against a real
``sv2ffi tp`` process over loopback, reduced in size, while honest observer clients
(from another address) must get every tip.  benchmarks/hostile.py runs the same at full
size and prints latency, CPU and memory next to the idle run's."""

import asyncio

import pytest

import hostile
from hostile import Observers, TpProcess

pytestmark = pytest.mark.skipif(not hostile.loopback_alias_works(),
                                reason="cannot bind 127.0.0.66 (no loopback /8 here)")


@pytest.fixture(scope="module")
def tp(tmp_path_factory):
    p = TpProcess(tmp_path_factory.mktemp("tp"), "--max-clients", "12", "--write-timeout", "2",
                  "--max-pending", "32", "--max-pending-per-source", "6", mempool=1500)
    yield p
    p.close()


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 180))


def with_observers(tp, attack, tips=3):
    async def main():
        obs = Observers()
        await obs.start(tp, 3)
        result: dict = {}
        task = asyncio.create_task(attack(result))
        await asyncio.sleep(0.5)
        measured = await obs.tips(tp, tips, gap=0.3)
        await task
        await obs.close()
        return measured, result
    return run(main())


def test_a_client_that_never_reads_is_aborted_and_its_slot_freed(tp):
    measured, result = with_observers(tp, lambda r: hostile.non_reader(tp, 8, r))
    assert measured["missed"] == 0
    assert result["aborted"], result  # within --write-timeout 2 s of backing up


def test_frames_of_unknown_messages_count_against_the_rate_limit(tp):
    measured, result = with_observers(tp, lambda r: hostile.unknown_flood(tp, 4, r))
    assert measured["missed"] == 0
    assert result["disconnected"], result


def test_constraints_churn_is_coalesced_and_others_keep_their_tips(tp):
    async def churn(r):
        await asyncio.gather(*(hostile.constraints_churn(tp, 4, {}) for _ in range(3)))
    measured, _ = with_observers(tp, churn)
    assert measured["missed"] == 0


def test_honest_clients_get_in_during_a_storm_of_idle_connections(tp):
    async def storm(r):
        await asyncio.gather(hostile.handshake_storm(tp, 300, r),
                             hostile.honest_during(tp, 8, r),
                             hostile.slowloris(tp, 20, 3, r), hostile.garbage(tp, 50, r))
    measured, result = with_observers(tp, storm)
    assert measured["missed"] == 0
    assert result["honest_ok"] == 8, result
    # the storm's connections beyond its address's pending budget were dropped at once
    assert result["still_open_after_1s"] <= 6, result


def test_silent_clients_do_not_keep_slots_once_they_block(tp):
    async def silent_then_honest(r):
        await asyncio.gather(*(hostile.silent(tp, 3, {}) for _ in range(6)))
        await hostile.honest_during(tp, 8, r)
    measured, result = with_observers(tp, silent_then_honest)
    assert measured["missed"] == 0 and result["honest_ok"] == 8

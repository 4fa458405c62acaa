"""Report reads paced at a rate: turns are spaced, concurrent askers included; 0 is unpaced."""

import asyncio
import time

from acme.api.pacing import ReadPacer


def elapsed(pacer: ReadPacer, askers: int) -> float:
    async def ask() -> float:
        started = time.monotonic()
        await asyncio.gather(*(pacer.turn() for _ in range(askers)))
        return time.monotonic() - started

    return asyncio.run(ask())


def test_turns_are_spaced_at_the_rate_even_for_concurrent_askers():
    assert elapsed(ReadPacer(100), 10) >= 0.09  # the first at once, then nine 10 ms apart


def test_a_rate_of_zero_leaves_reads_unpaced():
    pacer = ReadPacer(0)
    assert elapsed(pacer, 1000) < 0.5 and pacer.next_turn == 0.0

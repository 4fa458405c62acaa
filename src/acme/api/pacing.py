"""Report reads paced so that they never starve the sync sharing their process.

`acme serve` answers reports and applies batches on the same two cores (and one GIL). Readers
asking as fast as they are answered took most of the CPU: at 1M orders, 16 such clients at
1,500 requests/s stretched a batch's apply from about 0.2 to 0.4 s, and freshness p99 to
1.3 s. Spaced to one answer every 1/rate seconds, the same clients wait a few more milliseconds
each and the apply keeps its pace. A rate of 0 leaves reads unpaced.
"""

import asyncio
import time


class ReadPacer:
    """Hands out turns at most `per_second` a second, in the order asked (one event loop)."""

    def __init__(self, per_second: float):
        self.interval = 1 / per_second if per_second > 0 else 0.0
        self.next_turn = 0.0

    async def turn(self) -> None:
        if not self.interval:
            return
        now = time.monotonic()
        turn = max(now, self.next_turn)
        self.next_turn = turn + self.interval
        if turn > now:
            await asyncio.sleep(turn - now)

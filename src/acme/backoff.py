"""How long to wait before reconnecting: doubling from 1 s to 30 s, starting over after a
healthy stretch (a fresh outage should not wait as long as the end of the last one)."""

import time
from dataclasses import dataclass, field

FIRST_SECONDS = 1.0
MOST_SECONDS = 30.0


@dataclass
class Backoff:
    first: float = FIRST_SECONDS
    most: float = MOST_SECONDS
    attempt_started: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.delay = self.first

    def attempt(self) -> None:
        """A connection attempt starts now."""
        self.attempt_started = time.monotonic()

    def next_delay(self) -> float:
        """The wait before the next attempt (after the current one failed)."""
        if time.monotonic() - self.attempt_started > self.most:
            self.delay = self.first  # it had been healthy: a fresh outage
        delay, self.delay = self.delay, min(self.delay * 2, self.most)
        return delay

"""How far the warehouse is behind the source, sampled from the source on a thread.

- bytes: the source's WAL write position minus the slot's confirmed position (the pipeline
  confirms a position only once everything before it is committed in DuckDB);
- seconds: the source's WAL position is sampled every second; the warehouse holds everything
  the source had written at the latest sample its confirmed position has reached, so the lag
  is that sample's age (0 when it has reached the position read now). It grows while the
  pipeline stalls or falls behind, and stays near 0 while it keeps up, even with idle tables
  (the pipeline then confirms the server's position too). Resolution: the sampling interval;
- the WAL the slot retains: the source's position minus the slot's restart position.
"""

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg

from acme.capture.catalog import source_position
from acme.errors import AcmeError
from acme.source.connect import connect

SAMPLE_SECONDS = 1.0
MAX_SAMPLES = 24 * 3600  # a day behind at one sample a second; older ones are thinned


@dataclass(frozen=True)
class LagSample:
    at: datetime
    source_lsn: int
    confirmed_lsn: int | None  # None: the slot does not exist
    lag_bytes: int | None
    lag_seconds: float | None
    retained_wal_bytes: int | None


class LagClock:
    """Turns (time, source position, confirmed position) readings into seconds behind."""

    def __init__(self) -> None:
        self.samples: deque[tuple[float, int]] = deque()
        self.reached_at: float | None = None

    def seconds_behind(self, now: float, source_lsn: int, confirmed_lsn: int) -> float:
        self.samples.append((now, source_lsn))
        while self.samples and self.samples[0][1] <= confirmed_lsn:
            self.reached_at = self.samples.popleft()[0]
        if not self.samples:
            return 0.0
        if len(self.samples) > MAX_SAMPLES:
            del self.samples[1]  # keep the oldest unreached one: the lag stays an upper bound
        # Nothing reached since we started: at least as old as our first sample.
        since = self.reached_at if self.reached_at is not None else self.samples[0][0]
        return max(now - since, 0.0)


class SourceLagPoller:
    """Samples the source every `interval` seconds on a daemon thread and hands each sample
    (or error) on; one connection, reopened after a failure."""

    def __init__(self, dsn: str, slot: str, on_sample: Callable[[LagSample], None],
                 on_error: Callable[[Exception], None], interval: float = SAMPLE_SECONDS):
        self.dsn, self.slot, self.interval = dsn, slot, interval
        self.on_sample, self.on_error = on_sample, on_error
        self.clock = LagClock()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name="lag-poller", daemon=True)
        self.conn: psycopg.Connection | None = None

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=10)

    def _run(self) -> None:
        while not self.stopped.is_set():
            try:
                self.on_sample(self.sample())
            except (AcmeError, psycopg.Error) as error:
                self.on_error(error)
                self._close()
            self.stopped.wait(self.interval)
        self._close()

    def sample(self) -> LagSample:
        if self.conn is None:
            # A short statement timeout: a sick source must not pile up waiting samples.
            self.conn = connect(self.dsn, autocommit=True, application_name="acme-lag",
                                options="-c statement_timeout=2000")
        position = source_position(self.conn, self.slot)
        now = datetime.now(UTC)
        retained = (None if position.slot_restart_lsn is None
                    else max(position.current_lsn - position.slot_restart_lsn, 0))
        confirmed = position.slot_confirmed_lsn
        if confirmed is None:
            return LagSample(now, position.current_lsn, None, None, None, retained)
        seconds = self.clock.seconds_behind(now.timestamp(), position.current_lsn, confirmed)
        return LagSample(now, position.current_lsn, confirmed,
                         max(position.current_lsn - confirmed, 0), seconds, retained)

    def _close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

"""How streamed transactions are batched and reported (what freshness is measured from)."""

import time

import psycopg

from acme.observe.observer import BatchStats, SyncObserver
from tests.fix_sync import BackgroundSync, sync_once, sync_options


class _Batches(SyncObserver):
    def __init__(self):
        self.batches: list[BatchStats] = []

    def batch_applied(self, stats: BatchStats) -> None:
        self.batches.append(stats)


def test_every_streamed_transaction_is_reported_with_its_commit_time(source_db,
                                                                     warehouse_path):
    sync_once(source_db, warehouse_path)
    observer = _Batches()
    with psycopg.connect(source_db.app_dsn, autocommit=True) as conn, \
            BackgroundSync(sync_options(source_db, warehouse_path, once=False), observer):
        time.sleep(0.5)
        started = time.time()
        for number in range(40):
            conn.execute("INSERT INTO operations.orders (status) VALUES (%s)", (f"S{number}",))
            if number % 10 == 0:
                time.sleep(0.05)  # some alone, some together
        deadline = time.monotonic() + 20
        while sum(b.transactions for b in observer.batches) < 40 \
                and time.monotonic() < deadline:
            time.sleep(0.05)
    commit_times = [t for batch in observer.batches for t in batch.commit_times]
    assert len(commit_times) == sum(b.transactions for b in observer.batches) == 40
    assert commit_times == sorted(commit_times)
    for batch in observer.batches:
        assert len(batch.commit_times) == batch.transactions
        assert batch.commit_times[0] == batch.first_commit_time
        assert batch.commit_times[-1] == batch.last_commit_time
        # Committed in DuckDB after the source committed, within this test's run.
        assert started - 1 < batch.commit_times[-1].timestamp() <= batch.applied_at

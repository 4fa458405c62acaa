"""CDC engine benchmark: snapshot, streaming apply, freshness and memory, each beside a raw
baseline measured in the same run.

    python benchmarks/cdc.py [--orders 1000000] [--changes 1000000] [--seconds 30]

- snapshot rows/s vs the C-level raw COPY of baselines.py (best of two runs bracketing it);
  `benchmarks.snapshot` adds peers and the first sync's own peak RSS;
- streaming apply changes/s on a backlog vs raw receive of the same backlog on another slot
  through psycopg2 `consume_stream`, with our plugin options (nothing decoded or applied);
- freshness p50/p99 (source commit -> visible in DuckDB) under steady simulated traffic;
- peak RSS of this process (snapshot and apply run in it).
"""

import argparse
import tempfile
import threading
import time
from pathlib import Path

import psycopg

from acme.lsn import parse_lsn
from acme.pipeline import BatchStats, SyncObserver, SyncOptions, run_sync
from acme.source.provision import TABLES
from acme.source.simulate import run_traffic
from benchmarks.baselines import copy_seconds, receive_seconds
from benchmarks.common import BenchSource, peak_rss_mb, percentile, report, start_source

COPIED_TABLES = [f"operations.{table}" for table in TABLES]


def source_rows(source: BenchSource) -> int:
    with psycopg.connect(source.address.cdc_dsn) as conn:
        return sum(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                   for table in COPIED_TABLES)


class Recorder(SyncObserver):
    def __init__(self):
        self.snapshot = (0, 0.0)
        self.batches: list[BatchStats] = []

    def snapshot_done(self, rows: int, seconds: float) -> None:
        self.snapshot = (rows, seconds)

    def batch_applied(self, stats: BatchStats) -> None:
        self.batches.append(stats)


def make_backlog(source: BenchSource, changes: int) -> int:
    """Update `changes` item rows in transactions of 50k; returns the WAL position after."""
    with psycopg.connect(source.address.app_dsn, autocommit=True) as conn:
        top = conn.execute("SELECT max(order_item_id) FROM operations.order_items").fetchone()[0]
        done = 0
        while done < changes:
            step = min(50_000, changes - done)
            low = done % top
            conn.execute("UPDATE operations.order_items SET quanity = quanity + 1 "
                         "WHERE order_item_id > %s AND order_item_id <= %s",
                         (low, low + step))
            done += step
        return parse_lsn(conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--changes", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--rate", type=float, default=200, help="simulated transactions/s")
    args = parser.parse_args()

    source = start_source(args.orders, with_slot=False)
    warehouse = Path(tempfile.mkdtemp(prefix="acme-bench-wh-")) / "bench.duckdb"
    try:
        raw_rows = source_rows(source)
        copy_before = copy_seconds(source.address.cdc_dsn, COPIED_TABLES)
        recorder = Recorder()
        options = SyncOptions(dsn=source.address.cdc_dsn, warehouse=warehouse, once=True)
        run_sync(options, observer=recorder)
        snap_rows, snap_seconds = recorder.snapshot
        # The baseline brackets the snapshot; the faster run counts.
        raw_seconds = min(copy_before, copy_seconds(source.address.cdc_dsn, COPIED_TABLES))
        print(f"raw COPY: {raw_rows:,} rows in {raw_seconds:.2f}s; "
              f"snapshot: {snap_rows:,} rows in {snap_seconds:.2f}s")

        with psycopg.connect(source.admin_dsn, autocommit=True) as admin:
            admin.execute("SELECT pg_create_logical_replication_slot('bench_raw', 'pgoutput')")
        make_backlog(source, args.changes)
        raw_messages = args.changes
        raw_stream_seconds = receive_seconds(source.address.cdc_dsn, "bench_raw",
                                             "cdc_publication", raw_messages)
        print(f"raw stream: {raw_messages:,} changes in {raw_stream_seconds:.1f}s")
        recorder.batches.clear()
        started = time.monotonic()
        run_sync(options, observer=recorder)
        apply_seconds = time.monotonic() - started
        applied = sum(batch.changes for batch in recorder.batches)
        print(f"apply: {applied:,} changes in {apply_seconds:.1f}s")

        recorder.batches.clear()
        stop = threading.Event()
        follower = threading.Thread(target=run_sync, args=(
            SyncOptions(dsn=source.address.cdc_dsn, warehouse=warehouse), stop, recorder))
        follower.start()
        time.sleep(1)
        recorder.batches.clear()
        traffic = run_traffic(source.address.app_dsn, rate=args.rate, duration=args.seconds, seed=3)
        time.sleep(1)
        stop.set()
        follower.join()
        lags = [b.applied_at - b.first_commit_time.timestamp() for b in recorder.batches]
        steady_changes = sum(b.changes for b in recorder.batches) / args.seconds
        print(f"traffic: {traffic.rate:.0f} transactions/s, {steady_changes:.0f} changes/s")

        report("cdc", [
            ("snapshot rows/s (vs raw COPY csv, C-level)", snap_rows / snap_seconds,
             raw_rows / raw_seconds, "rows/s"),
            ("streaming apply changes/s (vs raw receive)", applied / apply_seconds,
             raw_messages / raw_stream_seconds, "changes/s"),
            ("freshness p50 (oldest commit in batch)", percentile(lags, 0.5) * 1000, None, "ms"),
            ("freshness p99", percentile(lags, 0.99) * 1000, None, "ms"),
            ("steady traffic", steady_changes, None, "changes/s"),
            ("peak RSS", peak_rss_mb(), None, "MB"),
        ], {"orders": args.orders, "backlog_changes": args.changes,
            "snapshot_rows": snap_rows, "applied_changes": applied})
    finally:
        source.server.down(purge=True)


if __name__ == "__main__":
    main()

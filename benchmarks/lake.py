"""Lake benchmark: how far the Iceberg lake trails DuckDB under steady traffic, what a lake
commit costs, and the lake's file count before and after compaction.

    python -m benchmarks.lake [--orders 1000000] [--seconds 180] [--rate 200] [--interval 10]

- initial load: the snapshot's history (every row) into the lake, one commit;
- lag p50/p99: each DuckDB batch, from its DuckDB commit (and from its oldest source commit)
  to the lake commit that holds it, with commits every --interval seconds;
- write cost per commit: seconds and rows per steady-state lake commit (all four tables);
- DuckDB freshness p50/p99 with the lake writer running beside the apply;
- files: data files in the tables' current snapshots, and all files on disk, before and after
  `acme lake compact` (snapshots expired, small files merged).
"""

import argparse
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path

from acme.lake.catalog import open_lake
from acme.lake.maintenance import data_file_count, maintain_lake
from acme.observe.observer import BatchStats, SyncObserver
from acme.pipeline import run_sync
from acme.source.simulate import run_traffic
from acme.sync_options import SyncOptions
from benchmarks.common import peak_rss_mb, percentile, report, start_source


class Recorder(SyncObserver):
    def __init__(self):
        self.batches: list[BatchStats] = []
        self.lake_commits = []
        self.failures: list[str] = []

    def batch_applied(self, stats: BatchStats) -> None:
        self.batches.append(stats)

    def lake_committed(self, commit) -> None:
        self.lake_commits.append(commit)

    def lake_failed(self, reason: str) -> None:
        self.failures.append(reason)


def file_counts(lake_dir: Path) -> tuple[int, int]:
    """(data files in the current snapshots, files on disk under the warehouse)."""
    lake = open_lake(str(lake_dir))
    data = sum(data_file_count(lake.table(name)) for name in lake.table_names())
    on_disk = sum(1 for path in (lake_dir / "warehouse").rglob("*") if path.is_file())
    return data, on_disk


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=180)
    parser.add_argument("--rate", type=float, default=200, help="simulated transactions/s")
    parser.add_argument("--interval", type=float, default=10, help="seconds between commits")
    args = parser.parse_args()

    source = start_source(args.orders, with_slot=False)
    try:
        # The warehouse and the lake are deleted afterwards.
        with tempfile.TemporaryDirectory(prefix="acme-bench-lake-") as work:
            warehouse, lake_dir = Path(work) / "bench.duckdb", Path(work) / "lake"
            initial = Recorder()
            started = time.monotonic()
            run_sync(SyncOptions(dsn=source.address.cdc_dsn, warehouse=warehouse, once=True,
                                 lake=str(lake_dir)), observer=initial)
            load = initial.lake_commits[-1]
            print(f"snapshot + initial lake load: {time.monotonic() - started:.1f}s; lake load "
                  f"{load.versions:,} rows in {load.seconds:.1f}s")

            recorder = Recorder()
            stop = threading.Event()
            options = SyncOptions(dsn=source.address.cdc_dsn, warehouse=warehouse,
                                  lake=str(lake_dir), lake_interval=args.interval)
            follower = threading.Thread(target=run_sync, args=(options, stop, recorder))
            follower.start()
            time.sleep(2)
            traffic = run_traffic(source.address.app_dsn, rate=args.rate, duration=args.seconds,
                                  seed=5)
            time.sleep(2)
            stop.set()
            follower.join()
            assert not recorder.failures, recorder.failures

            commits = sorted(recorder.lake_commits, key=lambda c: c.lsn)
            lags, source_lags = [], []
            for batch in recorder.batches:
                holder = next(c for c in commits if c.lsn >= batch.end_lsn)
                lags.append(holder.committed_at - batch.applied_at)
                source_lags.append(holder.committed_at - batch.first_commit_time.timestamp())
            freshness = [b.applied_at - b.first_commit_time.timestamp() for b in recorder.batches]
            steady = commits[:-1]  # the last one is the stop's
            cost = [c.seconds for c in steady]
            rows = [c.versions + c.tombstones for c in steady]
            changes = sum(b.changes for b in recorder.batches)
            print(f"traffic: {traffic.rate:.0f} transactions/s, {changes / args.seconds:.0f} "
                  f"changes/s; {len(commits)} lake commits")

            data_before, disk_before = file_counts(lake_dir)
            compact_started = time.monotonic()
            results = maintain_lake(open_lake(str(lake_dir)), keep=timedelta(0))
            compact_seconds = time.monotonic() - compact_started
            data_after, disk_after = file_counts(lake_dir)

            report("lake", [
                ("initial lake load (snapshot history)", load.versions / load.seconds, None,
                 "rows/s"),
                ("lake lag behind DuckDB p50", percentile(lags, 0.5), None, "s"),
                ("lake lag behind DuckDB p99", percentile(lags, 0.99), None, "s"),
                ("source commit -> lake p50", percentile(source_lags, 0.5), None, "s"),
                ("source commit -> lake p99", percentile(source_lags, 0.99), None, "s"),
                ("write cost per lake commit p50", percentile(cost, 0.5) * 1000, None, "ms"),
                ("write cost per lake commit p99", percentile(cost, 0.99) * 1000, None, "ms"),
                ("rows per lake commit (mean)", sum(rows) / max(len(rows), 1), None, "rows"),
                ("DuckDB freshness p50 (lake running)", percentile(freshness, 0.5) * 1000, None,
                 "ms"),
                ("DuckDB freshness p99 (lake running)", percentile(freshness, 0.99) * 1000, None,
                 "ms"),
                ("data files before compaction", data_before, None, "files"),
                ("data files after compaction", data_after, None, "files"),
                ("files on disk before compaction", disk_before, None, "files"),
                ("files on disk after compaction", disk_after, None, "files"),
                ("compaction + expiry", compact_seconds, None, "s"),
                ("steady traffic", changes / args.seconds, None, "changes/s"),
                ("peak RSS", peak_rss_mb(), None, "MB"),
            ], {"orders": args.orders, "seconds": args.seconds, "interval": args.interval,
                "lake_commits": len(commits), "initial_load_rows": load.versions,
                "initial_load_seconds": load.seconds,
                "maintenance": [r.__dict__ for r in results]})
    finally:
        source.server.down(purge=True)


if __name__ == "__main__":
    main()

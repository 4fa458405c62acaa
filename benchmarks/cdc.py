"""CDC engine benchmark: snapshot, streaming apply, freshness and memory, each beside a raw
baseline measured in the same run.

    python -m benchmarks.cdc [--orders 1000000] [--changes 1000000] [--rate 1000] [--seconds 30]

- snapshot rows/s vs the C-level raw COPY of baselines.py (best of two runs bracketing it);
  `benchmarks.snapshot` adds peers and the first sync's own peak RSS;
- streaming apply changes/s on a backlog vs raw receive of the same backlog on another slot
  through psycopg2 `consume_stream`, with our plugin options (nothing decoded or applied), for
  two shapes: 1,000-row transactions and 4-row transactions (`benchmarks.streaming`);
- freshness per transaction (source commit -> visible in reports), p50/p90/p99/max, under
  steady traffic at `--rate` transactions/s (`benchmarks.freshness`);
- peak RSS of this process (snapshot and apply run in it).
"""

import argparse
import os
import time

import psycopg

from acme.observe.observer import SyncObserver
from acme.pipeline import run_sync
from acme.source.provision import TABLES
from acme.sync_options import SyncOptions
from benchmarks.baselines import copy_seconds
from benchmarks.common import BenchSource, peak_rss_mb, report, start_source, warehouse_file
from benchmarks.freshness import measure_freshness
from benchmarks.streaming import SHAPES, measure_shape

COPIED_TABLES = [f"operations.{table}" for table in TABLES]


def source_rows(source: BenchSource) -> int:
    with psycopg.connect(source.address.cdc_dsn) as conn:
        return sum(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                   for table in COPIED_TABLES)


class Recorder(SyncObserver):
    def __init__(self):
        self.snapshot = (0, 0.0)

    def snapshot_done(self, rows: int, seconds: float) -> None:
        self.snapshot = (rows, seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--changes", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--rate", type=float, default=1000, help="traffic transactions/s")
    args = parser.parse_args()

    source = start_source(args.orders, with_slot=False)
    loads = {"start": os.getloadavg()}
    try:
        with warehouse_file() as warehouse:
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
            loads["snapshot"] = os.getloadavg()

            shapes = [measure_shape(source, options, shape, args.changes) for shape in SHAPES]
            loads["streaming"] = os.getloadavg()
            freshness = measure_freshness(source, warehouse, args.rate, args.seconds)
            loads["freshness"] = os.getloadavg()

        report("cdc", [
            ("snapshot rows/s (vs raw COPY csv, C-level)", snap_rows / snap_seconds,
             raw_rows / raw_seconds, "rows/s"),
            *(figure for shape in shapes for figure in (shape.figure, shape.cpu_figure)),
            *freshness.figures(),
            ("peak RSS", peak_rss_mb(), None, "MB"),
        ], {"orders": args.orders, "backlog_changes": args.changes,
            "snapshot_rows": snap_rows, "freshness_transactions": len(freshness.lags_ms),
            "freshness_batches": freshness.batches,
            "load_average_1_5_15": loads,
            "measured_on": f"{os.cpu_count()} cores", "run_at": time.strftime("%Y-%m-%d")})
    finally:
        source.server.down(purge=True)


if __name__ == "__main__":
    main()

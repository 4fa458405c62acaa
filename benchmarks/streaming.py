"""Streaming apply beside raw receive, for two transaction shapes of the same backlog.

    python -m benchmarks.streaming [--orders 1000000] [--changes 1000000] [--source-dir DIR]

- bulk: item updates in transactions of 1,000 rows (a batch job);
- oltp: item updates in transactions of 4 rows (an order's items, one click at a time).
For each shape a raw slot is created at the same position as ours, the backlog is written, the
raw slot is drained through psycopg2 `consume_stream` with our plugin options (nothing decoded
or applied: the baseline), then `acme sync --once` applies the same backlog from our slot into
a warehouse that holds the whole source. `benchmarks.cdc` runs the same two shapes.
"""

import argparse
import os
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg

from acme.observe.observer import BatchStats, SyncObserver
from acme.pipeline import run_sync
from acme.sync_options import SyncOptions
from benchmarks.baselines import receive_seconds
from benchmarks.common import BenchSource, report, start_source, warehouse_file

RAW_SLOT = "bench_raw"


@dataclass(frozen=True)
class Shape:
    name: str
    rows_per_transaction: int

    @property
    def label(self) -> str:
        return f"{self.rows_per_transaction}-row transactions"


SHAPES = (Shape("bulk", 1000), Shape("oltp", 4))


@dataclass(frozen=True)
class ShapeResult:
    shape: Shape
    changes: int
    seconds: float
    raw_seconds: float
    cpu_seconds: float  # this process, every thread (the server's share is not counted)
    raw_cpu_seconds: float

    @property
    def figure(self) -> tuple[str, float, float, str]:
        return (f"streaming apply, {self.shape.label} (vs raw receive)",
                self.changes / self.seconds, self.changes / self.raw_seconds, "changes/s")

    @property
    def cpu_figure(self) -> tuple[str, float, float, str]:
        """Client CPU per change, which a loaded machine disturbs less than the wall clock."""
        return (f"  client CPU per change, {self.shape.label} (vs raw receive)",
                self.cpu_seconds / self.changes * 1e6,
                self.raw_cpu_seconds / self.changes * 1e6, "µs")


class _Counter(SyncObserver):
    def __init__(self):
        self.changes = 0

    def batch_applied(self, stats: BatchStats) -> None:
        self.changes += stats.changes


def write_backlog(app_dsn: str, changes: int, rows_per_transaction: int) -> None:
    """Update `changes` item rows, `rows_per_transaction` per committed transaction, in one
    server-side loop (so the source is not the bottleneck of writing it)."""
    with psycopg.connect(app_dsn, autocommit=True) as conn:
        conn.execute("SET synchronous_commit = off")
        top = conn.execute("SELECT max(order_item_id) FROM operations.order_items").fetchone()[0]
        conn.execute(f"""
            DO $$
            DECLARE low bigint := 0;
            BEGIN
              FOR step IN 1..{changes // rows_per_transaction} LOOP
                UPDATE operations.order_items SET quanity = quanity + 1
                 WHERE order_item_id > low AND order_item_id <= low + {rows_per_transaction};
                COMMIT;
                low := (low + {rows_per_transaction}) % ({top} - {rows_per_transaction});
              END LOOP;
            END $$""")


def drop_raw_slot(source: BenchSource) -> None:
    """Drop the raw slot once its walsender has let go of it (it exits after the client)."""
    with psycopg.connect(source.admin_dsn, autocommit=True) as admin:
        deadline = time.monotonic() + 30
        while admin.execute("SELECT active FROM pg_replication_slots WHERE slot_name = %s",
                            (RAW_SLOT,)).fetchone()[0] and time.monotonic() < deadline:
            time.sleep(0.1)
        admin.execute("SELECT pg_drop_replication_slot(%s)", (RAW_SLOT,))


def measure_shape(source: BenchSource, options: SyncOptions, shape: Shape,
                  changes: int) -> ShapeResult:
    """Raw receive and our apply of the same backlog; the warehouse must be caught up."""
    changes -= changes % shape.rows_per_transaction
    with psycopg.connect(source.admin_dsn, autocommit=True) as admin:
        admin.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (RAW_SLOT,))
    try:
        started = time.monotonic()
        write_backlog(source.address.app_dsn, changes, shape.rows_per_transaction)
        print(f"{shape.name}: wrote {changes:,} changes in {shape.label} "
              f"in {time.monotonic() - started:.1f}s")
        cpu = time.process_time()
        raw_seconds = receive_seconds(source.address.cdc_dsn, RAW_SLOT, options.publication,
                                      changes)
        raw_cpu = time.process_time() - cpu
        print(f"{shape.name}: raw receive {raw_seconds:.2f}s")
    finally:
        drop_raw_slot(source)
    counter = _Counter()
    started, cpu = time.monotonic(), time.process_time()
    run_sync(options, observer=counter)
    seconds, cpu = time.monotonic() - started, time.process_time() - cpu
    print(f"{shape.name}: applied {counter.changes:,} changes in {seconds:.2f}s "
          f"(load average {os.getloadavg()[0]:.1f})")
    assert counter.changes == changes, (counter.changes, changes)
    return ShapeResult(shape, changes, seconds, raw_seconds, cpu, raw_cpu)


def main() -> None:
    from benchmarks.snapshot import kept_source

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--changes", type=int, default=1_000_000)
    parser.add_argument("--source-dir", type=Path, help="keep the seeded source here")
    parser.add_argument("--warehouse", type=Path, help="keep the warehouse here (caught up)")
    parser.add_argument("--shapes", default=",".join(s.name for s in SHAPES))
    args = parser.parse_args()

    source = (kept_source(args.source_dir, args.orders, keep_slots=bool(args.warehouse))
              if args.source_dir else start_source(args.orders, with_slot=False))
    try:
        with warehouse_file(args.warehouse) as warehouse:
            options = SyncOptions(dsn=source.address.cdc_dsn, warehouse=warehouse, once=True)
            run_sync(options)  # the initial copy (or catching up a kept warehouse)
            load_before = os.getloadavg()
            results = [measure_shape(source, options, shape, args.changes)
                       for shape in SHAPES if shape.name in args.shapes.split(",")]
        report("streaming", [figure for result in results
                             for figure in (result.figure, result.cpu_figure)],
               {"orders": args.orders, "changes": args.changes,
                "load_average_before": load_before, "load_average_after": os.getloadavg()})
    finally:
        if not args.source_dir:
            source.server.down(purge=True)


if __name__ == "__main__":
    main()

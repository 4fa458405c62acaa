"""Snapshot benchmark: the first sync's copy against the raw C-level COPY, peers beside it,
and the first sync's peak memory.

    python -m benchmarks.snapshot [--orders 1000000] [--source-dir DIR]

- baseline: `COPY ... TO STDOUT (FORMAT csv)` of the four tables through psycopg2
  `copy_expert` into a null sink (see baselines.py), run before and after everything else;
  the faster of the two counts, so background load cannot flatter the ratio;
- ours: `run_sync(once=True)` on a new warehouse, in a fresh process, so its peak RSS is the
  first sync's alone (snapshot, then catching up with the stream);
- peers: ADBC -> DuckDB, connectorx -> DuckDB when installed.
`--source-dir` keeps the seeded source there, running, and reuses it on the next run (10M
orders take minutes to seed; `acme source down --data-dir DIR` stops it).
"""

import argparse
import multiprocessing
import resource
import time
from pathlib import Path

import psycopg

from acme.config import SourceAddress
from acme.observe.observer import SyncObserver
from acme.pipeline import run_sync
from acme.source.embedded import EmbeddedServer
from acme.source.provision import TABLES
from acme.sync_options import SyncOptions
from benchmarks.baselines import copy_seconds, snapshot_peers
from benchmarks.common import BenchSource, report, start_source, warehouse_file

SPLIT_KEYS = {"operations.orders": "order_id", "operations.order_items": "order_item_id"}


class _Timer(SyncObserver):
    def __init__(self):
        self.rows, self.seconds = 0, 0.0

    def snapshot_done(self, rows: int, seconds: float) -> None:
        self.rows, self.seconds = rows, seconds


def first_sync(dsn: str, warehouse: str, results: multiprocessing.Queue) -> None:
    """In a fresh process: sync once into a new warehouse; report rows, seconds, peak RSS."""
    timer = _Timer()
    started = time.monotonic()
    run_sync(SyncOptions(dsn=dsn, warehouse=Path(warehouse), once=True), observer=timer)
    results.put((timer.rows, timer.seconds, time.monotonic() - started,
                 resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))


def measure_first_sync(dsn: str) -> tuple[int, float, float, float]:
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    with warehouse_file() as warehouse:
        child = context.Process(target=first_sync, args=(dsn, str(warehouse), results))
        child.start()
        outcome = results.get()
        child.join()
    return outcome


def kept_source(directory: Path, orders: int, keep_slots: bool = False) -> BenchSource:
    """The source kept in `directory`, seeded the first time (left running); its slots are
    dropped unless a kept warehouse still follows one."""
    server = EmbeddedServer(directory)
    if server.state().port is None:
        source = start_source(orders, with_slot=False, server=server)
    else:
        server.up(None)
        source = BenchSource(server, SourceAddress(server.state().port))
    with psycopg.connect(source.admin_dsn, autocommit=True) as admin:
        admin.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                      "WHERE %s OR slot_name = 'bench_raw'", (not keep_slots,))
    return source


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--source-dir", type=Path, help="keep the seeded source here")
    parser.add_argument("--skip-peers", action="store_true")
    args = parser.parse_args()

    source = (kept_source(args.source_dir, args.orders) if args.source_dir
              else start_source(args.orders, with_slot=False))
    dsn = source.address.cdc_dsn
    tables = [f"operations.{table}" for table in TABLES]
    try:
        with psycopg.connect(dsn) as conn:
            rows = sum(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                       for table in tables)
        before = copy_seconds(dsn, tables)
        print(f"raw COPY csv (before): {rows:,} rows in {before:.2f}s")
        copied, snapshot_seconds, sync_seconds, peak_mb = measure_first_sync(dsn)
        assert copied == rows, (copied, rows)
        print(f"snapshot: {copied:,} rows in {snapshot_seconds:.2f}s "
              f"(first sync {sync_seconds:.2f}s, peak RSS {peak_mb:,.0f} MB)")
        peers = [] if args.skip_peers else snapshot_peers(dsn, tables, rows, SPLIT_KEYS)
        after = copy_seconds(dsn, tables)
        print(f"raw COPY csv (after): {after:.2f}s")
        baseline = rows / min(before, after)
        figures = [("snapshot rows/s (vs raw COPY csv, C-level)", rows / snapshot_seconds,
                    baseline, "rows/s")]
        for peer in peers:
            if peer.rows_per_second is None:
                print(f"peer {peer.name}: {peer.note}")
            else:
                figures.append((f"peer: {peer.name}", peer.rows_per_second, baseline,
                                "rows/s"))
        figures += [("first sync peak RSS", peak_mb, None, "MB"),
                    ("first sync time", sync_seconds, None, "s")]
        report(f"snapshot-{args.orders // 1_000_000}m" if args.orders >= 1_000_000
               else "snapshot", figures,
               {"orders": args.orders, "rows": rows,
                "baseline_seconds": [before, after],
                "peers_skipped": [p.name for p in peers if p.rows_per_second is None]})
    finally:
        if not args.source_dir:
            source.server.down(purge=True)


if __name__ == "__main__":
    main()

"""Freshness under steady traffic: per transaction, from its source commit to visible in reports.

    python -m benchmarks.freshness [--orders 1000000] [--rate 1000] [--seconds 30]
                                   [--source-dir DIR]

The traffic runs inside the source (one PL/pgSQL loop, paced to `--rate` committed
transactions/s, each committed with the server's default synchronous commit), so a client's
own CPU does not compete with the pipeline on a small machine. Its mix: 30% new orders with
three items, 40% order status moves, 30% item quantity edits (on random existing rows).
`acme sync` follows meanwhile; every transaction's lag is the time its batch's DuckDB commit
returned (from then on every report sees it) minus its commit time on the source.
`benchmarks.cdc` runs the same measurement.
"""

import argparse
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg

from acme.observe.observer import BatchStats, SyncObserver
from acme.pipeline import run_sync
from acme.sync_options import SyncOptions
from benchmarks.common import BenchSource, percentile, report, start_source, warehouse_file

TRAFFIC = """
DO $$
DECLARE
  started timestamptz := clock_timestamp();
  top_order bigint := (SELECT max(order_id) FROM operations.orders);
  top_item bigint := (SELECT max(order_item_id) FROM operations.order_items);
  top_customer bigint := (SELECT max(customer_id) FROM operations.customers);
  top_product bigint := (SELECT max(product_id) FROM operations.products);
  target bigint;
  roll float8;
BEGIN
  FOR i IN 1..{count} LOOP
    roll := random();
    IF roll < 0.3 THEN
      INSERT INTO operations.orders (order_date, delivery_date, customer_id, status,
                                     created_at, created_by, updated_at, updated_by)
      VALUES (current_date, current_date + 1 + (random() * 13)::int,
              1 + (random() * (top_customer - 1))::bigint, 'PENDING',
              localtimestamp(3), 1, localtimestamp(3), 1)
      RETURNING order_id INTO target;
      INSERT INTO operations.order_items (order_id, product_id, quanity,
                                          created_at, created_by, updated_at, updated_by)
      SELECT target, 1 + (random() * (top_product - 1))::bigint, 1 + (random() * 4)::int,
             localtimestamp(3), 1, localtimestamp(3), 1
      FROM generate_series(1, 3);
    ELSIF roll < 0.7 THEN
      target := 1 + (random() * (top_order - 1))::bigint;
      UPDATE operations.orders
         SET status = (ARRAY['CONFIRMED', 'PROCESSING', 'SHIPPED', 'DELIVERED'])
                      [1 + (random() * 3)::int],
             updated_at = localtimestamp(3), updated_by = 2
       WHERE order_id = target;
    ELSE
      target := 1 + (random() * (top_item - 1))::bigint;
      UPDATE operations.order_items
         SET quanity = 1 + (random() * 7)::int, updated_at = localtimestamp(3), updated_by = 5
       WHERE order_item_id = target;
    END IF;
    COMMIT;
    PERFORM pg_sleep(greatest(0, extract(epoch FROM
        started + i * interval '1 second' / {rate} - clock_timestamp())));
  END LOOP;
END $$"""


@dataclass(frozen=True)
class Freshness:
    rate: float  # committed transactions/s achieved by the traffic
    lags_ms: list[float]  # one per transaction
    batches: int

    def figures(self) -> list[tuple[str, float, float | None, str]]:
        rate = f"{self.rate:,.0f} tx/s"
        return [(f"freshness p50 at {rate} (per transaction)", self.p(0.5), None, "ms"),
                (f"freshness p90 at {rate}", self.p(0.9), None, "ms"),
                (f"freshness p99 at {rate}", self.p(0.99), None, "ms"),
                (f"freshness max at {rate}", max(self.lags_ms), None, "ms"),
                ("traffic achieved", self.rate, None, "tx/s")]

    def p(self, fraction: float) -> float:
        return percentile(self.lags_ms, fraction)


class _Lags(SyncObserver):
    def __init__(self):
        self.batches: list[BatchStats] = []

    def batch_applied(self, stats: BatchStats) -> None:
        self.batches.append(stats)


def measure_freshness(source: BenchSource, warehouse: Path, rate: float,
                      seconds: float) -> Freshness:
    """Lags of every transaction of `seconds` of traffic at `rate`, with sync following."""
    observer = _Lags()
    stop = threading.Event()
    follower = threading.Thread(target=run_sync, args=(
        SyncOptions(dsn=source.address.cdc_dsn, warehouse=warehouse), stop, observer))
    follower.start()
    try:
        time.sleep(2)  # caught up and idle
        observer.batches.clear()
        with psycopg.connect(source.address.app_dsn, autocommit=True) as conn:
            started = time.monotonic()
            conn.execute(TRAFFIC.format(count=int(rate * seconds), rate=rate))
            elapsed = time.monotonic() - started
        time.sleep(2)
    finally:
        stop.set()
        follower.join()
    lags = [(batch.applied_at - committed.timestamp()) * 1000
            for batch in observer.batches for committed in batch.commit_times]
    print(f"traffic: {len(lags):,} transactions in {elapsed:.1f}s "
          f"({len(observer.batches):,} batches; load average {os.getloadavg()[0]:.1f})")
    return Freshness(len(lags) / elapsed, lags, len(observer.batches))


def main() -> None:
    from benchmarks.snapshot import kept_source

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--rate", type=float, default=1000)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--source-dir", type=Path, help="keep the seeded source here")
    parser.add_argument("--warehouse", type=Path, help="keep the warehouse here (caught up)")
    args = parser.parse_args()

    source = (kept_source(args.source_dir, args.orders, keep_slots=bool(args.warehouse))
              if args.source_dir else start_source(args.orders, with_slot=False))
    try:
        with warehouse_file(args.warehouse) as warehouse:
            run_sync(SyncOptions(dsn=source.address.cdc_dsn, warehouse=warehouse, once=True))
            load_before = os.getloadavg()
            result = measure_freshness(source, warehouse, args.rate, args.seconds)
        report("freshness", result.figures(),
               {"orders": args.orders, "rate_asked": args.rate, "seconds": args.seconds,
                "transactions": len(result.lags_ms), "batches": result.batches,
                "load_average_before": load_before, "load_average_after": os.getloadavg()})
    finally:
        if not args.source_dir:
            source.server.down(purge=True)


if __name__ == "__main__":
    main()

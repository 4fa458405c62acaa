"""Report latency benchmark: p50/p99 of each report, current and as of a past time, at scale,
beside a raw baseline measured in the same run (a plain DuckDB scan of the same tables).

    python -m benchmarks.reports [--orders 1000000] [--runs 50]
"""

import argparse
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from acme.classification import StatusClassification
from acme.pipeline import SyncOptions, run_sync
from acme.reports.definitions import REPORTS
from acme.reports.engine import run_report
from acme.source.simulate import run_traffic
from benchmarks.common import peak_rss_mb, percentile, report, start_source

RAW_SCAN = "SELECT count(*), sum(quanity) FROM current.order_items JOIN current.orders USING " \
           "(order_id)"


def timed(action, runs: int) -> list[float]:
    action()  # warm-up
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--traffic-seconds", type=float, default=20)
    args = parser.parse_args()

    source = start_source(args.orders, with_slot=False)
    warehouse = Path(tempfile.mkdtemp(prefix="acme-bench-wh-")) / "reports.duckdb"
    try:
        options = SyncOptions(dsn=source.address.cdc_dsn, warehouse=warehouse, once=True)
        run_sync(options)
        run_traffic(source.address.app_dsn, rate=200, duration=args.traffic_seconds / 2, seed=1)
        as_of = datetime.now(UTC)
        run_traffic(source.address.app_dsn, rate=200, duration=args.traffic_seconds / 2, seed=2)
        run_sync(options)

        rules = StatusClassification()
        rows = []
        with duckdb.connect(str(warehouse), read_only=True) as db:
            raw = timed(lambda: db.execute(RAW_SCAN).fetchall(), args.runs)
            raw_p99 = percentile(raw, 0.99)
            print(f"raw scan p99 {raw_p99:.1f} ms")
            for name, definition in REPORTS.items():
                limit = definition.default_limit
                for label, moment in (("current", None), ("as-of", as_of)):
                    samples = timed(lambda n=name, m=moment, lim=limit:
                                    run_report(db, n, rules, lim, m), args.runs)
                    rows.append((f"{name} {label} p50", percentile(samples, 0.5), None, "ms"))
                    rows.append((f"{name} {label} p99 (vs raw scan p99)",
                                 percentile(samples, 0.99), raw_p99, "ms"))
        rows.append(("peak RSS", peak_rss_mb(), None, "MB"))
        report("reports", rows, {"orders": args.orders, "runs": args.runs,
                                 "raw_scan_sql": RAW_SCAN})
    finally:
        source.server.down(purge=True)


if __name__ == "__main__":
    main()

"""Prometheus metrics (names prefixed `acme_`), fed by the pipeline's observer hooks, the lag
poller and the API's request timing; `render()` is what `GET /metrics` answers.

Each instance has its own registry, so several servers (or tests) in one process never share
counters.
"""

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from acme.observe.lag import LagSample
from acme.observe.observer import BatchStats, SyncObserver
from acme.warehouse.store import Warehouse

CONTENT_TYPE = CONTENT_TYPE_LATEST
OP_NAMES = {"I": "insert", "U": "update", "D": "delete", "T": "truncate"}
APPLY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


class PipelineMetrics(SyncObserver):
    """The sync pipeline, the source's lag and the API, as Prometheus metrics."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.lag: LagSample | None = None
        self._snapshot_table = ""
        into = {"registry": self.registry}
        self.lag_seconds = Gauge("acme_replication_lag_seconds",
                                 "Age of the newest source WAL position the warehouse holds "
                                 "everything before (0 when caught up)", **into)
        self.lag_bytes = Gauge("acme_replication_lag_bytes",
                               "Source WAL position minus the slot's confirmed position", **into)
        self.retained_wal = Gauge("acme_slot_retained_wal_bytes",
                                  "WAL the replication slot makes the source keep", **into)
        self.last_commit = Gauge("acme_last_applied_commit_timestamp_seconds",
                                 "Source commit time of the last applied transaction (Unix)",
                                 **into)
        self.checkpoint_lsn = Gauge("acme_checkpoint_lsn",
                                    "End LSN of the last applied transaction", **into)
        self.changes = Counter("acme_changes_applied", "Row changes applied",
                               ["table", "op"], **into)
        self.transactions = Counter("acme_transactions_applied",
                                    "Source transactions applied", **into)
        self.batch_seconds = Histogram("acme_batch_apply_duration_seconds",
                                       "Time to apply and commit one micro-batch",
                                       buckets=APPLY_BUCKETS, **into)
        self.snapshot_copied = Counter("acme_snapshot_rows_copied",
                                     "Rows copied by the initial snapshot", ["table"], **into)
        self.snapshot_estimated = Gauge("acme_snapshot_rows_estimated",
                                        "Rows the source estimates per table at snapshot",
                                        ["table"], **into)
        self.snapshot_running = Gauge("acme_snapshot_running",
                                      "1 while the initial snapshot copies", **into)
        self.reconnects = Counter("acme_reconnects", "Replication reconnect attempts", **into)
        self.errors = Counter("acme_errors", "Errors met, by kind (error class)", ["kind"],
                              **into)
        self.requests = Histogram("acme_api_request_duration_seconds",
                                  "HTTP API request duration, by route template",
                                  ["route", "method", "status"], buckets=REQUEST_BUCKETS,
                                  **into)

    def render(self) -> bytes:
        return generate_latest(self.registry)

    # --- the pipeline's hooks
    def warehouse_opened(self, warehouse: Warehouse) -> None:
        checkpoint = warehouse.checkpoint()
        if checkpoint is not None:
            self._checkpoint(checkpoint.end_lsn, checkpoint.commit_time)

    def snapshot_started(self, tables: list[str], estimated_rows: int) -> None:
        # The copy interleaves its tables (parts on several connections): one series for all.
        self._snapshot_table = "all"
        self.snapshot_running.set(1)
        self.snapshot_estimated.labels(self._snapshot_table).set(estimated_rows)

    def snapshot_rows(self, rows: int) -> None:
        self.snapshot_copied.labels(self._snapshot_table).inc(rows)

    def snapshot_done(self, rows: int, seconds: float) -> None:
        self.snapshot_running.set(0)

    def batch_applied(self, stats: BatchStats) -> None:
        self.transactions.inc(stats.transactions)
        for (table, op), count in stats.changes_by_table.items():
            self.changes.labels(table, OP_NAMES.get(op, op)).inc(count)
        self.batch_seconds.observe(stats.seconds)
        self._checkpoint(stats.end_lsn, stats.last_commit_time)

    def connection_lost(self, reason: str, retry_in: float) -> None:
        self.reconnects.inc()

    def error(self, error: Exception) -> None:
        self.errors.labels(type(error).__name__).inc()

    # --- the lag poller and the API
    def lag_sampled(self, sample: LagSample) -> None:
        self.lag = sample
        if sample.lag_seconds is not None:
            self.lag_seconds.set(sample.lag_seconds)
            self.lag_bytes.set(sample.lag_bytes)
        if sample.retained_wal_bytes is not None:
            self.retained_wal.set(sample.retained_wal_bytes)

    def request_done(self, route: str, method: str, status: int, started: float) -> None:
        self.requests.labels(route, method, str(status)).observe(time.perf_counter() - started)

    def _checkpoint(self, end_lsn: int, commit_time) -> None:
        self.checkpoint_lsn.set(end_lsn)
        if commit_time is not None:
            self.last_commit.set(commit_time.timestamp())

"""What the sync pipeline tells its watchers: a hook per event, and each batch's figures."""

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from acme.warehouse.store import Warehouse


@dataclass(frozen=True)
class BatchStats:
    transactions: int
    changes: int
    end_lsn: int
    first_commit_time: datetime  # the batch's oldest transaction: it waited longest
    last_commit_time: datetime
    applied_at: float  # time.time() when the DuckDB commit returned: visible to reports
    seconds: float
    # (table, op) -> changes, op one of I, U, D, T (truncate); for metrics and logs
    changes_by_table: Mapping[tuple[str, str], int] = field(default_factory=dict)
    commit_times: tuple[datetime, ...] = ()  # every transaction's source commit time


class SyncObserver:
    """What the pipeline reports as it goes; every hook does nothing unless overridden."""

    def warehouse_opened(self, warehouse: Warehouse) -> None: ...
    def snapshot_started(self, tables: list[str], estimated_rows: int) -> None: ...
    def snapshot_rows(self, rows: int) -> None: ...
    def snapshot_done(self, rows: int, seconds: float) -> None: ...
    # a table's open versions rewritten in key order (`warehouse/cluster.py`), and why
    def table_ordering(self, table: str, groups_read_per_key: float) -> None: ...
    def batch_applied(self, stats: BatchStats) -> None: ...
    def connection_lost(self, reason: str, retry_in: float) -> None: ...
    def lake_committed(self, commit) -> None: ...  # an acme.lake.writer.LakeCommit
    def lake_failed(self, reason: str) -> None: ...
    def error(self, error: Exception) -> None: ...  # a failure retried (then connection_lost)

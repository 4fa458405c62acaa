"""Snapshot load: copied rows (Arrow batches) become each key's first version."""

from collections.abc import Callable, Iterable
from datetime import datetime

import pyarrow as pa

from acme.warehouse.merge import current_from_history_sql, snapshot_insert_sql
from acme.warehouse.store import Warehouse
from acme.warehouse.tables import TableSpec


def load_table(warehouse: Warehouse, known: dict[str, TableSpec], spec: TableSpec,
               batches: Iterable[pa.RecordBatch], valid_from: datetime, lsn: int,
               progress: Callable[[int], None] = lambda rows: None) -> int:
    """Load one table's copy inside the caller's transaction; returns the rows loaded."""
    spec = warehouse.ensure_table(spec, known)
    insert = snapshot_insert_sql(spec)
    rows = 0
    for batch in batches:
        with warehouse.staged("snapshot_raw", batch):
            warehouse.db.execute(insert, [valid_from, lsn])
        rows += batch.num_rows
        progress(batch.num_rows)
    warehouse.db.execute(current_from_history_sql(spec))
    warehouse.recount(spec.name)
    return rows

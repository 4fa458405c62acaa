"""One lake commit: what the warehouse's history gained since the lake's recorded checkpoint,
appended to each Iceberg table with that checkpoint's LSN in the snapshot summary.

Exactly once: every table records, in each snapshot it commits, the warehouse checkpoint it
reflects; the next commit reads from DuckDB only what lies past it, inside one DuckDB read
transaction (history and checkpoint from one snapshot). A crash anywhere (before, between or
during the tables' commits) leaves each table at its last committed checkpoint, and the next
commit catches it up from DuckDB: nothing lost, nothing twice. Every table commits at every
lake commit (an empty append still records the LSN), so readers can cut all tables at one LSN.
"""

import time
from dataclasses import dataclass
from datetime import datetime

import duckdb
import pyarrow as pa

from acme.errors import LakeError
from acme.lake.catalog import Lake
from acme.lake.changes import CLOSE_MARGIN, closed_without_successor_sql, events_sql
from acme.lake.layout import (
    COMMIT_TIME_PROPERTY,
    LSN_PROPERTY,
    iceberg_layout,
    summary,
    table_properties,
)
from acme.lsn import format_lsn
from acme.warehouse.store import Warehouse
from acme.warehouse.tables import TableSpec

CHUNK_ROWS = 1_000_000  # a big first commit is appended in chunks of this many rows


@dataclass(frozen=True)
class TablePosition:
    """The warehouse checkpoint a lake table reflects (its current snapshot's summary)."""

    lsn: int
    commit_time: datetime | None


@dataclass(frozen=True)
class LakeCommit:
    lsn: int
    commit_time: datetime | None
    versions: int
    tombstones: int
    tables: int  # tables that had to move
    seconds: float
    committed_at: float  # time.time() when the last table committed


def table_position(table) -> TablePosition | None:
    snapshot = table.current_snapshot() if table is not None else None
    if snapshot is None:
        return None
    properties = snapshot.summary.additional_properties
    if LSN_PROPERTY not in properties:
        return None
    when = properties.get(COMMIT_TIME_PROPERTY) or None
    return TablePosition(int(properties[LSN_PROPERTY]),
                         datetime.fromisoformat(when) if when else None)


class LakeWriter:
    """Commits the warehouse's new history to the lake; owns one DuckDB cursor (use it from one
    thread at a time)."""

    def __init__(self, lake: Lake, db: duckdb.DuckDBPyConnection):
        self.lake = lake
        self.db = db
        self.db.execute("SET TimeZone = 'UTC'")

    def commit(self, only: set[str] | None = None) -> LakeCommit | None:
        """Bring every table (or `only` these) up to the warehouse checkpoint; None when the
        warehouse has no checkpoint yet or the lake already reflects it."""
        started = time.monotonic()
        self.db.execute("BEGIN TRANSACTION")
        try:
            warehouse = Warehouse(self.db, None)
            checkpoint = warehouse.checkpoint()
            if checkpoint is None:
                return None
            versions = tombstones = moved = 0
            for spec in warehouse.tables().values():
                if only is not None and spec.name not in only:
                    continue
                written = self._table(spec, checkpoint.end_lsn, checkpoint.commit_time)
                if written is not None:
                    versions, tombstones, moved = (versions + written[0],
                                                   tombstones + written[1], moved + 1)
        finally:
            self.db.execute("ROLLBACK")  # read only
        if not moved:
            return None
        return LakeCommit(checkpoint.end_lsn, checkpoint.commit_time, versions, tombstones,
                          moved, time.monotonic() - started, time.time())

    def _table(self, spec: TableSpec, lsn: int,
               commit_time: datetime | None) -> tuple[int, int] | None:
        table = self.lake.table(spec.name)
        position = table_position(table)
        if position is not None and position.lsn == lsn:
            return None
        if position is not None and position.lsn > lsn:
            raise LakeError(
                f"the lake table {self.lake.identifier(spec.name)} reflects LSN "
                f"{format_lsn(position.lsn)}, past this warehouse's checkpoint "
                f"{format_lsn(lsn)}: it was built from another warehouse; use a new lake")
        tombstones = self._new_tombstones(spec, table, position)
        params = {"checkpoint": lsn}
        if position is not None:
            params["since"] = position.lsn
        self.db.register("new_tombstones", tombstones)
        try:
            reader = self.db.sql(events_sql(spec, position is None), params=params) \
                .to_arrow_reader(CHUNK_ROWS)
            properties = summary(lsn, commit_time.isoformat() if commit_time else None)
            versions = self._append(spec, table, reader, properties) - tombstones.num_rows
        finally:
            self.db.unregister("new_tombstones")
        return versions, tombstones.num_rows

    def _new_tombstones(self, spec: TableSpec, table,
                        position: TablePosition | None) -> pa.Table:
        bounded = position is not None and position.commit_time is not None
        params = {"low": position.commit_time - CLOSE_MARGIN} if bounded else {}
        candidates = self.db.sql(closed_without_successor_sql(spec, bounded),
                                 params=params).to_arrow_table()
        if not bounded or candidates.num_rows == 0:
            return candidates
        from pyiceberg.expressions import And, EqualTo, GreaterThanOrEqual

        held = table.scan(
            row_filter=And(EqualTo("_op", "delete"),
                           GreaterThanOrEqual("_valid_from", params["low"].isoformat())),
            selected_fields=(*spec.key, "_valid_from")).to_arrow()
        held = held.cast(candidates.schema)
        return candidates.join(held, keys=[*spec.key, "_valid_from"], join_type="left anti")

    def _append(self, spec: TableSpec, table, reader: pa.RecordBatchReader,
                properties: dict[str, str]) -> int:
        """Append the events in one Iceberg commit (an empty one still records the LSN)."""
        schema = reader.schema
        if table is None:
            iceberg, partitioning, order = iceberg_layout(schema, spec.key)
            table = self.lake.catalog.create_table(
                self.lake.reference(spec.name), schema=iceberg, partition_spec=partitioning,
                sort_order=order, properties=table_properties(spec.key))
        known = {field.name for field in table.schema().fields}
        missing = [field.name for field in schema if field.name not in known]
        rows = 0
        with table.transaction() as transaction:
            if missing:  # the source gained columns (ALTER TABLE ADD COLUMN)
                with transaction.update_schema() as update:
                    update.union_by_name(schema)
            batches = iter(reader)
            while True:
                chunk = pa.Table.from_batches(_take(batches, CHUNK_ROWS), schema=schema)
                rows += chunk.num_rows
                if chunk.num_rows or rows == 0:
                    transaction.append(chunk, snapshot_properties=properties)
                if chunk.num_rows == 0:
                    break
        return rows


def _take(batches, rows: int) -> list[pa.RecordBatch]:
    taken, count = [], 0
    for batch in batches:
        taken.append(batch)
        count += batch.num_rows
        if count >= rows:
            break
    return taken

"""Questions about the warehouse itself: where it stands, and one order's story."""

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import duckdb

from acme.lsn import format_lsn
from acme.warehouse.stopped import SyncStopped, read_stopped
from acme.warehouse.store import furthest_position, warehouse_cursor


@dataclass(frozen=True)
class LayerCounts:
    layer: str
    table: str
    rows: int


@dataclass(frozen=True)
class WarehouseStatus:
    checkpoint_lsn: str | None
    source_commit_time: datetime | None
    seconds_behind_commit: float | None  # now - last applied source commit
    counts: tuple[LayerCounts, ...]
    stopped: SyncStopped | None = None  # sync stopped at a change it cannot apply
    # The furthest position applied or confirmed to the slot (None: unknown); a slot confirmed
    # beyond it was consumed by another reader.
    confirmed_lsn: str | None = None


@dataclass(frozen=True)
class OrderStory:
    order_id: int
    versions: tuple[dict[str, Any], ...]
    status_moves: tuple[dict[str, Any], ...]
    items: tuple[dict[str, Any], ...]


def warehouse_status(db: duckdb.DuckDBPyConnection) -> WarehouseStatus:
    """Where the warehouse stands: the checkpoint and the row counters every apply keeps, so
    this costs the same whatever the table sizes."""
    cursor = warehouse_cursor(db)
    try:
        cursor.execute("BEGIN TRANSACTION")  # counters and checkpoint from one snapshot
        row = cursor.execute(
            "SELECT end_lsn, commit_time, confirmed_lsn FROM _acme.checkpoint").fetchone()
        counts = tuple(LayerCounts(*count) for count in cursor.execute(
            """SELECT layer, name, row_count FROM _acme.row_counts
               ORDER BY layer, name""").fetchall())
        stopped = read_stopped(cursor)
        cursor.execute("COMMIT")
    finally:
        cursor.close()
    if row is None:
        return WarehouseStatus(None, None, None, counts, stopped)
    end_lsn, commit_time, confirmed = row
    behind = (datetime.now(UTC) - commit_time).total_seconds() if commit_time else None
    furthest = furthest_position(end_lsn, confirmed)
    return WarehouseStatus(format_lsn(end_lsn), commit_time, behind, counts, stopped,
                           None if furthest is None else format_lsn(furthest))


def _records(cursor: duckdb.DuckDBPyConnection) -> tuple[dict[str, Any], ...]:
    columns = [column[0] for column in cursor.description]
    return tuple(dict(zip(columns, row, strict=True)) for row in cursor.fetchall())


def order_story(db: duckdb.DuckDBPyConnection, order_id: int) -> OrderStory:
    cursor = warehouse_cursor(db)
    try:
        versions = _records(cursor.execute(
            """SELECT status, order_date, delivery_date, customer_id, _op AS operation,
                      _valid_from AS valid_from, _valid_to AS valid_to
               FROM history.orders WHERE order_id = $1 ORDER BY _valid_from""", [order_id]))
        moves = _records(cursor.execute(
            """SELECT from_status, to_status, changed_at, time_in_previous_status
               FROM model.fact_order_status_change WHERE order_id = $1 ORDER BY changed_at""",
            [order_id]))
        items = _records(cursor.execute(
            """SELECT order_item_id, product_id, quanity AS quantity, _op AS operation,
                      _valid_from AS valid_from, _valid_to AS valid_to
               FROM history.order_items WHERE order_id = $1
               ORDER BY order_item_id, _valid_from""", [order_id]))
    finally:
        cursor.close()
    return OrderStory(order_id, versions, moves, items)

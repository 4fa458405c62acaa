"""The initial copy's plan: one shared snapshot, and the queries that read it.

The copy runs in a REPEATABLE READ snapshot imported by name (the one a new slot exported, or
one exported by the transaction that recorded the snapshot's xids), so it sees exactly what the
hand-off expects. Several connections import the same snapshot and share the work
(`copy_readers`): each table is one part, and a large one is cut into ranges of its physical
blocks (PostgreSQL 14+ reads a `ctid` range with a TID range scan, at sequential-scan cost and
whatever the key type), so the server's COPY work and the driver's decoding spread over the
cores.
"""

from dataclasses import dataclass
from datetime import datetime

import psycopg

from acme.capture.catalog import SourceTable
from acme.capture.visibility import SnapshotVisibility
from acme.warehouse.tables import copy_select_list

PART_PAGES = 4096  # 32 MB of heap per part: enough parts to balance, few enough queries
TID_RANGE_SCAN_VERSION = 140000


@dataclass(frozen=True)
class SnapshotPoint:
    """Where a copy stands in the source's history."""

    taken_at: datetime
    wal_lsn: int
    visibility: SnapshotVisibility
    name: str  # the exported snapshot the copy imports


@dataclass(frozen=True)
class CopyPart:
    """One query of the copy: a table, or a range of its blocks."""

    table: SourceTable
    first_page: int | None = None  # None: from the start
    end_page: int | None = None  # None: to the end (rows the snapshot sees can lie past
    #                              the size measured, if the table grew meanwhile)
    pages: int = 0  # size, to hand out the largest parts first

    def query(self) -> str:
        """Integers, booleans and floats as binary values, and dates and timestamps where the
        driver and DuckDB read them exactly; every other value as PostgreSQL's text, the form
        the stream sends, so both paths cast alike (and infinite or out-of-range values reach
        the warehouse's checks instead of failing the driver): `tables.copy_select_list`."""
        columns = copy_select_list(self.table.spec)
        bounds = []
        if self.first_page is not None:
            bounds.append(f"ctid >= '({self.first_page},0)'::tid")
        if self.end_page is not None:
            bounds.append(f"ctid < '({self.end_page},0)'::tid")
        where = f" WHERE {' AND '.join(bounds)}" if bounds else ""
        return f"SELECT {columns} FROM {self.table.qualified}{where}"


def begin_snapshot(conn: psycopg.Connection, exported: str | None) -> SnapshotPoint:
    """Open the REPEATABLE READ transaction that pins the copy's snapshot (kept open by the
    caller until the copy is done) and describe it."""
    conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
    if exported is not None:
        conn.execute(f"SET TRANSACTION SNAPSHOT '{exported}'")  # a name the server gave us
    row = conn.execute(
        # clock_timestamp(), not now(): the snapshot is taken by this statement, after the
        # transaction began, and the copy must never be valid from before a commit it holds.
        """SELECT clock_timestamp(), pg_current_wal_lsn() - '0/0'::pg_lsn,
                  pg_snapshot_xmin(s)::text::bigint, pg_snapshot_xmax(s)::text::bigint,
                  ARRAY(SELECT x::text::bigint FROM pg_snapshot_xip(s) AS x),
                  pg_export_snapshot()
           FROM pg_current_snapshot() AS s""").fetchone()
    taken_at, lsn, xmin, xmax, xip, name = row
    return SnapshotPoint(taken_at, int(lsn), SnapshotVisibility(xmin, xmax, frozenset(xip)),
                         name)


def estimated_rows(conn: psycopg.Connection, table: SourceTable) -> int:
    estimate = conn.execute("SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass",
                            (table.qualified,)).fetchone()[0]
    return max(int(estimate), 0)


def plan_parts(conn: psycopg.Connection, tables: list[SourceTable],
               part_pages: int = PART_PAGES) -> list[CopyPart]:
    """The copy's queries, largest first: a table per part, or ranges of its blocks."""
    split = conn.info.server_version >= TID_RANGE_SCAN_VERSION
    parts = []
    for table in tables:
        pages = conn.execute(
            "SELECT pg_relation_size(%s::regclass) / current_setting('block_size')::bigint",
            (table.qualified,)).fetchone()[0]
        if not split or pages <= part_pages:
            parts.append(CopyPart(table, pages=pages))
            continue
        starts = range(0, pages, part_pages)
        for number, start in enumerate(starts):
            last = number == len(starts) - 1
            parts.append(CopyPart(table, start if number else None,
                                  None if last else start + part_pages,
                                  min(part_pages, pages - start)))
    return sorted(parts, key=lambda part: part.pages, reverse=True)

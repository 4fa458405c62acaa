"""The initial copy: one table at a time, COPY (csv) -> Arrow record batches of text.

A reader thread pulls COPY data from PostgreSQL into a pipe while pyarrow's streaming CSV
reader parses it into bounded batches, so memory stays flat whatever the table size and the
network read overlaps the parse and the load. Values stay text here; the warehouse casts them
with the same rules it uses for streamed changes.
"""

import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv

from acme.capture.catalog import SourceTable
from acme.capture.visibility import SnapshotVisibility

BLOCK_BYTES = 8 << 20


@dataclass(frozen=True)
class SnapshotPoint:
    """Where a copy stands in the source's history."""

    taken_at: datetime
    wal_lsn: int
    visibility: SnapshotVisibility


def begin_snapshot(conn: psycopg.Connection, exported: str | None) -> SnapshotPoint:
    """Open the REPEATABLE READ transaction the copy runs in (an exported one, if given)."""
    conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
    if exported is not None:
        conn.execute(f"SET TRANSACTION SNAPSHOT '{exported}'")  # a name the server gave us
    row = conn.execute(
        """SELECT now(), pg_current_wal_lsn() - '0/0'::pg_lsn,
                  pg_snapshot_xmin(s)::text::bigint, pg_snapshot_xmax(s)::text::bigint,
                  ARRAY(SELECT x::text::bigint FROM pg_snapshot_xip(s) AS x)
           FROM pg_current_snapshot() AS s""").fetchone()
    taken_at, lsn, xmin, xmax, xip = row
    return SnapshotPoint(taken_at, int(lsn), SnapshotVisibility(xmin, xmax, frozenset(xip)))


def estimated_rows(conn: psycopg.Connection, table: SourceTable) -> int:
    estimate = conn.execute("SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass",
                            (table.qualified,)).fetchone()[0]
    return max(int(estimate), 0)


def copy_batches(conn: psycopg.Connection, table: SourceTable) -> Iterator[pa.RecordBatch]:
    """Yield the table's rows as Arrow batches of text columns (NULL kept apart from '')."""
    names = list(table.spec.column_names)
    columns = ", ".join(f'"{name}"' for name in names)
    query = f"COPY (SELECT {columns} FROM {table.qualified}) TO STDOUT (FORMAT csv)"
    read_fd, write_fd = os.pipe()
    failure: list[BaseException] = []

    def pump() -> None:
        try:
            with os.fdopen(write_fd, "wb") as sink, conn.cursor().copy(query) as copy:
                for chunk in copy:
                    sink.write(chunk)
        except BaseException as error:  # handed to the consumer below
            failure.append(error)

    reader_thread = threading.Thread(target=pump, name=f"copy-{table.spec.name}", daemon=True)
    reader_thread.start()
    try:
        with os.fdopen(read_fd, "rb") as source:
            reader = pacsv.open_csv(
                source,
                read_options=pacsv.ReadOptions(column_names=names, block_size=BLOCK_BYTES),
                parse_options=pacsv.ParseOptions(newlines_in_values=True),
                convert_options=pacsv.ConvertOptions(
                    column_types={name: pa.string() for name in names},
                    strings_can_be_null=True, null_values=[""],
                    quoted_strings_can_be_null=False),
            )
            yield from reader
    except pa.ArrowInvalid as error:
        # An empty table is an empty CSV, which pyarrow refuses rather than reads as no rows.
        if not failure and "Empty CSV" not in str(error):
            raise
    finally:
        reader_thread.join()
    if failure:
        raise failure[0]

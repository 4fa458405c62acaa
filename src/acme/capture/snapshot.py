"""The initial copy: every published table as Arrow record batches, in one shared snapshot.

ADBC's PostgreSQL driver runs a binary COPY and builds typed Arrow arrays in C++. The copy runs
in a REPEATABLE READ snapshot imported by name (the one a new slot exported, or one exported by
the transaction that recorded the snapshot's xids), so it sees exactly what the hand-off
expects. Several connections import the same snapshot and share the work: each table is one
part, and a large one is cut into ranges of its physical blocks (PostgreSQL 14+ reads a
`ctid` range with a TID range scan, at sequential-scan cost and whatever the key type), so
the server's COPY work and the driver's decoding spread over the cores. Parts go to whichever
connection is free, largest first; batches are bounded (the driver's hint) and a bounded
queue hands them to the loader, so memory stays flat whatever the table size.
"""

import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

import adbc_driver_postgresql.dbapi as adbc
import psycopg
import pyarrow as pa

from acme.capture.catalog import SourceTable
from acme.capture.visibility import SnapshotVisibility
from acme.config import mask_dsn
from acme.errors import SourceUnreachable
from acme.source.connect import DEFAULT_APPLICATION, conninfo
from acme.warehouse.tables import copy_select_list

BATCH_BYTES = 16 << 20
PART_PAGES = 4096  # 32 MB of heap per part: enough parts to balance, few enough queries
QUEUED_BATCHES_PER_CONNECTION = 2
TID_RANGE_SCAN_VERSION = 140000
_DONE = object()


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


@dataclass(frozen=True)
class CopiedBatch:
    table: str
    batch: pa.RecordBatch
    reader: int = 0  # the connection that read it: its batches follow the table's pages


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


class CopyReaders:
    """Connections inside the exported snapshot, reading the parts as Arrow batches (in the
    process of `copy_process.ParallelCopy`).

    Iterating yields each part's batches (parts interleave); closing stops the readers and
    ends their transactions. Use it as a context manager.
    """

    def __init__(self, dsn: str, snapshot_name: str, parts: list[CopyPart], connections: int,
                 application_name: str = DEFAULT_APPLICATION):
        self.dsn = dsn
        self.parts: queue.SimpleQueue[CopyPart] = queue.SimpleQueue()
        for part in parts:
            self.parts.put(part)
        count = max(1, min(connections, len(parts)))
        self.batches: queue.Queue = queue.Queue(maxsize=count * QUEUED_BATCHES_PER_CONNECTION)
        self.stopping = threading.Event()
        self.lost = threading.Event()  # a reader failed: the copy will be redone
        self.connections: list[adbc.Connection] = []
        try:
            for _ in range(count):
                self.connections.append(
                    _snapshot_connection(dsn, snapshot_name, application_name))
        except BaseException:
            self._close_connections()
            raise
        self.threads = [threading.Thread(target=self._read, args=(conn, number), daemon=True,
                                         name=f"snapshot-reader-{number}")
                        for number, conn in enumerate(self.connections)]
        for thread in self.threads:
            thread.start()

    def __enter__(self) -> "CopyReaders":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __iter__(self) -> Iterator[CopiedBatch]:
        running = len(self.threads)
        while running:
            item = self.batches.get()
            if item is _DONE:
                running -= 1
            elif isinstance(item, adbc.Error | OSError | pa.ArrowException):
                # A dropped (or, through the TCP timeouts, silently dead) copy connection:
                # worth copying again.
                lines = [line.strip() for line in str(item).splitlines() if line.strip()]
                raise SourceUnreachable(
                    f"copy connection to {mask_dsn(self.dsn)} lost: "
                    f"{lines[0] if lines else type(item).__name__}") from None
            elif isinstance(item, BaseException):
                raise item
            else:
                yield item

    def _read(self, conn: adbc.Connection, reader: int) -> None:
        try:
            with conn.cursor() as cursor:
                cursor.adbc_statement.set_options(
                    **{"adbc.postgresql.batch_size_hint_bytes": str(BATCH_BYTES)})
                # No new part once another reader failed: its connection may be cut too, and
                # the ADBC driver (1.8) aborts its process on a query started over a dead one.
                while not self.stopping.is_set() and not self.lost.is_set():
                    try:
                        part = self.parts.get_nowait()
                    except queue.Empty:
                        break
                    cursor.execute(part.query())
                    for batch in cursor.fetch_record_batch():
                        copied = CopiedBatch(part.table.spec.name, _plain(batch), reader)
                        if not self._hand_over(copied):
                            return
            self._hand_over(_DONE)
        except BaseException as error:  # handed to the consumer
            self.lost.set()
            self._hand_over(error)

    def _hand_over(self, item) -> bool:
        """Queue an item for the consumer unless the copy is being closed."""
        while not self.stopping.is_set():
            try:
                self.batches.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def close(self) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join()
        self._close_connections()

    def _close_connections(self) -> None:
        # Closed without a COMMIT: their transactions only read, and the ADBC driver (1.8)
        # aborts its process on a query sent over a connection that was reset.
        for conn in self.connections:
            conn.close()


def _snapshot_connection(dsn: str, snapshot_name: str,
                         application_name: str) -> adbc.Connection:
    """An ADBC connection in a read-only transaction that imported the snapshot."""
    try:
        conn = adbc.connect(conninfo(dsn, application_name), autocommit=True)
    except adbc.Error as error:
        raise SourceUnreachable(f"cannot open the copy connection to {mask_dsn(dsn)}: "
                                f"{str(error).splitlines()[0]}") from None
    try:
        with conn.cursor() as cursor:
            cursor.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            cursor.execute(f"SET TRANSACTION SNAPSHOT '{snapshot_name}'")
    except BaseException:
        conn.close()
        raise
    return conn


def _plain(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Opaque (extension) columns such as numeric as their text."""
    arrays = [column.storage if isinstance(column, pa.ExtensionArray) else column
              for column in batch.columns]
    return pa.RecordBatch.from_arrays(arrays, names=batch.schema.names)

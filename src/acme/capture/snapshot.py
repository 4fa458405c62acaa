"""The initial copy: each published table as Arrow record batches, in one shared snapshot.

ADBC's PostgreSQL driver runs a binary COPY and builds typed Arrow arrays in C++, which here
is faster than even a plain `COPY ... (FORMAT csv)` read into a null sink. The copy runs in a
REPEATABLE READ snapshot imported by name (the one a new slot exported, or one exported by the
transaction that recorded the snapshot's xids), so it sees exactly what the hand-off expects.
A reader thread keeps a couple of batches in flight while the warehouse loads the previous
ones; batches are bounded (the driver's hint), so memory stays flat whatever the table size.
If no batch arrives for a while the path is taken for dead: the copy fails as a transient
error (and is retried), abandoning the stuck connection rather than waiting on it forever.
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

BATCH_BYTES = 64 << 20
PREFETCH_BATCHES = 2
DEFAULT_STALL_SECONDS = 60.0
_END = object()


@dataclass(frozen=True)
class SnapshotPoint:
    """Where a copy stands in the source's history."""

    taken_at: datetime
    wal_lsn: int
    visibility: SnapshotVisibility
    name: str  # the exported snapshot the copy imports


def begin_snapshot(conn: psycopg.Connection, exported: str | None) -> SnapshotPoint:
    """Open the REPEATABLE READ transaction that pins the copy's snapshot (kept open by the
    caller until the copy is done) and describe it."""
    conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
    if exported is not None:
        conn.execute(f"SET TRANSACTION SNAPSHOT '{exported}'")  # a name the server gave us
    row = conn.execute(
        """SELECT now(), pg_current_wal_lsn() - '0/0'::pg_lsn,
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


class SnapshotReader:
    """An ADBC connection inside the exported snapshot, reading tables as Arrow."""

    def __init__(self, dsn: str, snapshot_name: str,
                 application_name: str = DEFAULT_APPLICATION,
                 stall_seconds: float = DEFAULT_STALL_SECONDS):
        self.dsn, self.stall_seconds, self.stalled = dsn, stall_seconds, False
        try:
            self.conn = adbc.connect(conninfo(dsn, application_name), autocommit=True)
            self.cursor = self.conn.cursor()
            self.cursor.adbc_statement.set_options(
                **{"adbc.postgresql.batch_size_hint_bytes": str(BATCH_BYTES)})
            self.cursor.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            self.cursor.execute(f"SET TRANSACTION SNAPSHOT '{snapshot_name}'")
        except (adbc.Error, OSError) as error:
            raise self._lost("cannot open the copy connection", error) from None

    def batches(self, table: SourceTable) -> Iterator[pa.RecordBatch]:
        """The table's rows, with opaque (extension) columns such as numeric as their text."""
        columns = ", ".join(f'"{name}"' for name in table.spec.column_names)
        try:
            self.cursor.execute(f"SELECT {columns} FROM {table.qualified}")
            reader = self.cursor.fetch_record_batch()
            for batch in _prefetched(reader, self.stall_seconds):
                yield _plain(batch)
        except _Stalled:
            self.stalled = True
            raise SourceUnreachable(
                f"the copy connection to {mask_dsn(self.dsn)} sent nothing for "
                f"{self.stall_seconds:.0f} s; taking it for dead") from None
        except (adbc.Error, OSError, pa.ArrowException) as error:
            raise self._lost(f"copy of {table.spec.name} interrupted", error) from None

    def close(self) -> None:
        if self.stalled:
            return  # its reader thread is stuck inside the driver: leave both to the kernel
        for step in (lambda: self.cursor.execute("COMMIT"), self.conn.close):
            try:
                step()
            except (adbc.Error, OSError):
                pass  # a read-only transaction on a dead connection: nothing is lost with it

    def _lost(self, what: str, error: Exception) -> SourceUnreachable:
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        return SourceUnreachable(f"{what} ({mask_dsn(self.dsn)}): "
                                 f"{lines[0] if lines else type(error).__name__}")


class _Stalled(Exception):
    """No batch within the stall deadline."""


def _plain(batch: pa.RecordBatch) -> pa.RecordBatch:
    arrays = [column.storage if isinstance(column, pa.ExtensionArray) else column
              for column in batch.columns]
    return pa.RecordBatch.from_arrays(arrays, names=batch.schema.names)


def _prefetched(reader: pa.RecordBatchReader,
                stall_seconds: float) -> Iterator[pa.RecordBatch]:
    """Read ahead in a thread so the network and decoding overlap the load."""
    buffer: queue.Queue = queue.Queue(maxsize=PREFETCH_BATCHES)

    def pump() -> None:
        try:
            for batch in reader:
                buffer.put(batch)
            buffer.put(_END)
        except BaseException as error:  # handed to the consumer
            buffer.put(error)

    thread = threading.Thread(target=pump, name="snapshot-reader", daemon=True)
    thread.start()
    while True:
        try:
            item = buffer.get(timeout=stall_seconds)
        except queue.Empty:
            raise _Stalled from None
        if item is _END:
            break
        if isinstance(item, BaseException):
            raise item
        yield item
    thread.join()

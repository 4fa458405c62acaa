"""The initial copy's readers: the child process of `copy_process.ParallelCopy`.

ADBC's PostgreSQL driver runs a binary COPY and builds typed Arrow arrays in C++. Several
connections import the same exported snapshot and share the work: each query (a table, or a
range of its blocks: `snapshot.plan_parts`) goes to whichever connection is free, largest
first; batches are bounded (the driver's hint) and a bounded queue hands them on, so memory
stays flat whatever the table size.

This module is the child's whole program (run as `__main__`, numpy kept out:
`copy_process.CHILD_PROGRAM`), so it imports only what reading needs: the parent plans the
queries and builds the connection string, and the child starts its copy about 0.2 s sooner than
with psycopg and pydantic loaded too; and it uses ADBC's low-level API, as the DB-API layer
also loads `pyarrow.dataset` and `pyarrow.compute` (0.07 s of a 0.18 s start, which the copy
waits for when the slot is quickly made). It is told where to connect first (`CopySource`) and
opens its connections at once, together (each ADBC connection reads the server's type catalog
first), while the parent creates the slot and plans the copy; then it is told the snapshot and
the queries (`CopyWork`), and reads while the parent creates the tables. It answers on stdout
with length-prefixed messages; each batch is one Arrow IPC stream, so at most a pipe's worth
and the readers' bounded queue are in flight. An error of ours reaches the parent as the same
exception; a driver's error as `SourceUnreachable` (the copy is redone).
"""

import os
import pickle
import queue
import struct
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import BinaryIO

import adbc_driver_manager as adbc
import adbc_driver_postgresql
import pyarrow as pa

from acme.errors import AcmeError, SourceUnreachable

BATCH_BYTES = 16 << 20
QUEUED_BATCHES_PER_CONNECTION = 2
_DONE = object()

READY, BATCH, DONE, ERROR = b"R", b"B", b"D", b"E"
# A message is its length, then its kind padded to 8 bytes, so that a batch's Arrow buffers
# keep their 8-byte alignment (DuckDB's Arrow scan copies, and warns about, misaligned ones).
LENGTH = struct.Struct("<Q")
KIND_BYTES = 8
TABLE_KEY, READER_KEY = b"acme.table", b"acme.reader"


@dataclass(frozen=True)
class CopyQuery:
    table: str  # the warehouse table its rows go to
    sql: str


@dataclass(frozen=True)
class CopySource:
    """Where the child connects: the parent's first message."""

    conninfo: str
    source: str  # the DSN as errors show it (password masked)
    connections: int


@dataclass(frozen=True)
class CopyWork:
    """What the child copies: the parent's second message."""

    snapshot_name: str
    queries: list[CopyQuery]  # largest first


@dataclass(frozen=True)
class _Connection:
    """An ADBC connection and the database handle it was opened through."""

    database: adbc.AdbcDatabase
    connection: adbc.AdbcConnection

    def execute(self, sql: str) -> None:
        with adbc.AdbcStatement(self.connection) as statement:
            statement.set_sql_query(sql)
            statement.execute_update()

    def close(self) -> None:
        self.connection.close()
        self.database.close()


@dataclass(frozen=True)
class CopiedBatch:
    table: str
    batch: pa.RecordBatch
    reader: int = 0  # the connection that read it: its batches follow the table's pages


class CopyReaders:
    """Connections inside the exported snapshot, reading the queries as Arrow batches.

    Iterating yields each query's batches (queries interleave); closing stops the readers and
    closes every connection it was given. Use it as a context manager.
    """

    def __init__(self, source: str, connections: list[_Connection], work: CopyWork):
        self.source = source
        self.queries: queue.SimpleQueue[CopyQuery] = queue.SimpleQueue()
        for query in work.queries:
            self.queries.put(query)
        self.connections = connections
        self.stopping = threading.Event()
        self.lost = threading.Event()  # a reader failed: the copy will be redone
        try:
            reading = connections[:max(1, len(work.queries))]
            for conn in reading:
                _import_snapshot(conn, work.snapshot_name)
        except BaseException:
            self._close_connections()
            raise
        self.batches: queue.Queue = queue.Queue(
            maxsize=len(reading) * QUEUED_BATCHES_PER_CONNECTION)
        self.threads = [threading.Thread(target=self._read, args=(conn, number), daemon=True,
                                         name=f"snapshot-reader-{number}")
                        for number, conn in enumerate(reading)]
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
                    f"copy connection to {self.source} lost: "
                    f"{lines[0] if lines else type(item).__name__}") from None
            elif isinstance(item, BaseException):
                raise item
            else:
                yield item

    def _read(self, conn: _Connection, reader: int) -> None:
        try:
            with adbc.AdbcStatement(conn.connection) as statement:
                statement.set_options(
                    **{"adbc.postgresql.batch_size_hint_bytes": str(BATCH_BYTES)})
                # No new query once another reader failed: its connection may be cut too, and
                # the ADBC driver (1.8) aborts its process on a query started over a dead one.
                while not self.stopping.is_set() and not self.lost.is_set():
                    try:
                        query = self.queries.get_nowait()
                    except queue.Empty:
                        break
                    statement.set_sql_query(query.sql)
                    stream, _ = statement.execute_query()
                    with pa.RecordBatchReader.from_stream(stream) as batches:
                        for batch in batches:
                            if not self._hand_over(
                                    CopiedBatch(query.table, _plain(batch), reader)):
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


def _open_connections(source: CopySource) -> list[_Connection]:
    """The copy's connections, opened together; if any fails, none is left open."""
    count = max(1, source.connections)
    with ThreadPoolExecutor(max_workers=count) as pool:
        opening = [pool.submit(_connect, source.conninfo) for _ in range(count)]
    failed = [future.exception() for future in opening if future.exception() is not None]
    if failed:
        for future in opening:
            if future.exception() is None:
                future.result().close()
        if isinstance(failed[0], adbc.Error):
            raise SourceUnreachable(f"cannot open the copy connection to {source.source}: "
                                    f"{str(failed[0]).splitlines()[0]}") from None
        raise failed[0]
    return [future.result() for future in opening]


def _connect(conninfo: str) -> _Connection:
    """A connection in autocommit (ADBC's default), through a database handle of its own (the
    driver reads the server's type catalog there), as the DB-API's `connect` opens one."""
    database = adbc_driver_postgresql.connect(conninfo)
    try:
        return _Connection(database, adbc.AdbcConnection(database))
    except BaseException:
        database.close()
        raise


def _import_snapshot(conn: _Connection, snapshot_name: str) -> None:
    """Put the connection in a read-only transaction that imported the snapshot."""
    conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
    conn.execute(f"SET TRANSACTION SNAPSHOT '{snapshot_name}'")


def _plain(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Opaque (extension) columns such as numeric as their text."""
    arrays = [column.storage if isinstance(column, pa.ExtensionArray) else column
              for column in batch.columns]
    return pa.RecordBatch.from_arrays(arrays, names=batch.schema.names)


def _send(out: BinaryIO, kind: bytes, payload: bytes = b"") -> None:
    out.write(LENGTH.pack(KIND_BYTES + len(payload)) + kind.ljust(KIND_BYTES, b"\0") + payload)
    out.flush()


def _send_batch(out: BinaryIO, pipe: pa.NativeFile, batch: pa.RecordBatch) -> None:
    """A batch as one Arrow IPC stream, written straight into the pipe (no copy of it in
    between: a tenth of the child's work), after its size, counted without writing it."""
    counted = pa.MockOutputStream()
    _write_stream(counted, batch)
    out.write(LENGTH.pack(KIND_BYTES + counted.size()) + BATCH.ljust(KIND_BYTES, b"\0"))
    _write_stream(pipe, batch)
    out.flush()


def _write_stream(sink: pa.NativeFile, batch: pa.RecordBatch) -> None:
    with pa.ipc.new_stream(sink, batch.schema) as stream:
        stream.write_batch(batch)


def serve(out: BinaryIO) -> None:
    """The child: connect where stdin's first message says, copy what its second one says,
    send the batches to `out`. A failure to connect is told once the work has come."""
    source: CopySource = pickle.load(sys.stdin.buffer)
    try:
        connections, failure = _open_connections(source), None
    except BaseException as error:  # noqa: BLE001 -- told once the work has come
        connections, failure = [], error
    work: CopyWork = pickle.load(sys.stdin.buffer)
    try:
        if failure is not None:
            raise failure
        with CopyReaders(source.source, connections, work) as readers:
            _send(out, READY)
            pipe = pa.PythonFile(out, mode="w")
            for copied in readers:
                _send_batch(out, pipe, copied.batch.replace_schema_metadata(
                    {TABLE_KEY: copied.table.encode(), READER_KEY: str(copied.reader).encode()}))
        _send(out, DONE)
    except BaseException as error:  # noqa: BLE001 -- every failure goes to the parent
        if not isinstance(error, AcmeError):  # a driver's error: the copy is redone
            lines = str(error).strip().splitlines() or [type(error).__name__]
            error = SourceUnreachable(f"copy connection to {source.source} lost: {lines[0]}")
        _send(out, ERROR, pickle.dumps(error))


if __name__ == "__main__":
    # The messages get stdout to themselves: anything else printed goes to stderr.
    messages = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    # Served by the module under its own name, the one the pickled work's classes name.
    from acme.capture import copy_readers
    copy_readers.serve(messages)

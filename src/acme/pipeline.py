"""The sync pipeline: snapshot hand-off, then stream -> transactions -> micro-batches -> DuckDB.

Exactly once: a batch and its checkpoint (end LSN of its last transaction) commit together in
DuckDB, and only then is the slot confirmed. On restart the server resends from the slot's
confirmed position; transactions at or below the checkpoint, or already seen by the initial
copy's snapshot, are skipped.
"""

import threading
import time
from collections import Counter, deque
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from acme.capture.catalog import check_source, published_tables
from acme.capture.pgoutput import Begin, decode
from acme.capture.replication import CreatedSlot, ReplicationStream
from acme.capture.snapshot import ParallelCopy, begin_snapshot, estimated_rows, plan_parts
from acme.capture.transactions import Committed, RowChange, TableTruncate, TransactionAssembler
from acme.capture.visibility import SnapshotVisibility
from acme.classification import StatusClassification
from acme.errors import SlotInUse, TransientError
from acme.source.connect import connect
from acme.warehouse.apply import BatchApplier
from acme.warehouse.load import load_snapshot
from acme.warehouse.model import ensure_model
from acme.warehouse.report_state import ReportState
from acme.warehouse.stage import ChangeStager
from acme.warehouse.store import Checkpoint, Warehouse

ROW_MESSAGE_KINDS = (b"I", b"U", b"D", b"T")
IDLE_POLL_SECONDS = 0.05
RETRY_FIRST_SECONDS = 1.0
RETRY_MAX_SECONDS = 30.0
KEEPALIVE_ASK_SECONDS = 1.0
MAX_QUEUED_CHUNKS = 4  # staging tasks waiting for the apply thread: bounds memory


@dataclass(frozen=True)
class SyncOptions:
    dsn: str
    warehouse: Path
    slot: str = "cdc_pgoutput"
    publication: str = "cdc_publication"
    once: bool = False
    create_slot: bool = True
    batch_changes: int = 100_000
    batch_seconds: float = 0.25
    snapshot_connections: int = 2
    classification: StatusClassification = StatusClassification()
    lake: str | None = None  # an Iceberg lake following the warehouse (acme.lake)
    lake_interval: float = 10.0


@dataclass(frozen=True)
class BatchStats:
    transactions: int
    changes: int
    end_lsn: int
    first_commit_time: datetime  # the batch's oldest transaction: it waited longest
    last_commit_time: datetime
    applied_at: float  # time.time() when the DuckDB commit returned
    seconds: float
    # (table, op) -> changes, op one of I, U, D, T (truncate); for metrics and logs
    changes_by_table: Mapping[tuple[str, str], int] = field(default_factory=dict)


class SyncObserver:
    """What the pipeline reports as it goes; every hook does nothing unless overridden."""

    def warehouse_opened(self, warehouse: Warehouse) -> None: ...
    def snapshot_started(self, tables: list[str], estimated_rows: int) -> None: ...
    def snapshot_rows(self, rows: int) -> None: ...
    def snapshot_done(self, rows: int, seconds: float) -> None: ...
    def batch_applied(self, stats: BatchStats) -> None: ...
    def connection_lost(self, reason: str, retry_in: float) -> None: ...
    def lake_committed(self, commit) -> None: ...  # an acme.lake.writer.LakeCommit
    def lake_failed(self, reason: str) -> None: ...
    def error(self, error: Exception) -> None: ...  # a failure retried (then connection_lost)


def run_sync(options: SyncOptions, stop: threading.Event | None = None,
             observer: SyncObserver | None = None) -> Checkpoint:
    """Snapshot if needed, then stream; returns the last checkpoint when stopped or caught up."""
    stop = stop or threading.Event()
    observer = observer or SyncObserver()
    with connect(options.dsn, autocommit=True) as conn:
        slot = check_source(conn, options.dsn, options.slot, options.publication,
                            options.create_slot)
        target_lsn = int(conn.execute("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn")
                         .fetchone()[0])
        lake = _open_lake(options)  # before the warehouse: a bad lake writes nothing
        warehouse = Warehouse.open(options.warehouse)
        stream = ReplicationStream(options.dsn, options.slot, options.publication)
        follower = None
        try:
            ensure_model(warehouse, options.classification)
            observer.warehouse_opened(warehouse)
            if lake is not None:
                from acme.lake.follower import LakeFollower

                follower = LakeFollower(lake, warehouse, options.lake_interval,
                                        observer.lake_committed, observer.lake_failed).start()
            if warehouse.checkpoint() is None:
                # Rows of the copy are valid from before the new slot's first transaction.
                before_slot = conn.execute("SELECT clock_timestamp()").fetchone()[0]
                exported = None if slot.exists else stream.create_slot()
                _snapshot(conn, warehouse, options, exported,
                          before_slot if exported else None, observer)
            checkpoint = _follow(stream, warehouse, options, observer, stop,
                                 target_lsn if options.once else None)
            if follower is not None:
                follower, running = None, follower
                running.stop()  # a last lake commit of all the warehouse holds
            return checkpoint
        finally:
            if follower is not None:
                follower.stop(final_commit=False)
            stream.close()
            warehouse.close()


def _open_lake(options: SyncOptions):
    if options.lake is None:
        return None
    from acme.lake.catalog import open_lake

    return open_lake(options.lake, create=True)


def _follow(stream: ReplicationStream, warehouse: Warehouse, options: SyncOptions,
            observer: SyncObserver, stop: threading.Event, target_lsn: int | None) -> Checkpoint:
    """Stream until stopped (or caught up), reconnecting with backoff when the connection drops.

    A reconnect resumes from the slot's confirmed position and the warehouse checkpoint, so
    nothing is lost or applied twice. After a network cut the server may still hold the slot
    for the dead connection for a while: that is retried too.
    """
    delay = RETRY_FIRST_SECONDS
    reconnecting = False
    while True:
        connected_at = time.monotonic()
        try:
            if reconnecting:
                stream = ReplicationStream(options.dsn, options.slot, options.publication)
            stream.start()
            return _Streamer(stream, warehouse, options, warehouse.checkpoint(), observer).run(
                stop, target_lsn)
        except (TransientError, SlotInUse) as error:
            if isinstance(error, SlotInUse) and not reconnecting:
                raise
            if time.monotonic() - connected_at > RETRY_MAX_SECONDS:
                delay = RETRY_FIRST_SECONDS  # it had been healthy: a fresh outage
            observer.error(error)
            observer.connection_lost(str(error), delay)
            if stop.wait(delay):
                return warehouse.checkpoint()
            delay = min(delay * 2, RETRY_MAX_SECONDS)
            reconnecting = True
        finally:
            stream.close()


def _snapshot(conn, warehouse: Warehouse, options: SyncOptions, exported: CreatedSlot | None,
              valid_from: datetime | None, observer: SyncObserver) -> None:
    """Copy every published table; the hand-off checkpoint commits with the last of it."""
    started = time.monotonic()
    point = begin_snapshot(conn, exported.snapshot_name if exported else None)
    valid_from = valid_from or point.taken_at
    # A new slot streams exactly what follows its exported snapshot: start after its
    # consistent point. An older slot replays from its confirmed position: skip by xid.
    end_lsn = exported.consistent_lsn if exported else 0
    checkpoint = Checkpoint(end_lsn, valid_from, point.visibility)
    tables = published_tables(conn, options.publication)
    observer.snapshot_started([table.spec.name for table in tables],
                              sum(estimated_rows(conn, table) for table in tables))
    parts = plan_parts(conn, tables)

    def finish() -> None:
        for table in tables:
            warehouse.recount(table.spec.name)
        ensure_model(warehouse, options.classification)
        ReportState(warehouse.db, options.classification).ensure(set(warehouse.tables()))
        warehouse.write_checkpoint(checkpoint)

    with ParallelCopy(options.dsn, point.name, parts, options.snapshot_connections) as copy:
        rows = load_snapshot(warehouse, [table.spec for table in tables], copy, valid_from,
                             point.wal_lsn, finish, observer.snapshot_rows)
    conn.execute("COMMIT")
    observer.snapshot_done(rows, time.monotonic() - started)


@dataclass(frozen=True)
class _InFlight:
    """A batch whose commit was handed to the apply thread, not yet known to be committed."""

    done: Future
    checkpoint: Checkpoint
    transactions: int
    changes: int
    first_commit_time: datetime | None
    last_commit_time: datetime | None
    started: float
    changes_by_table: Counter[tuple[str, str]]


@dataclass
class _Streamer:
    """Reads and decodes the stream while the apply thread stages and merges (DuckDB releases
    the GIL), so decoding and applying overlap on two cores. Row changes go to the apply
    thread in bounded chunks as they arrive: no batch or transaction is held here."""

    stream: ReplicationStream
    warehouse: Warehouse
    options: SyncOptions
    checkpoint: Checkpoint
    observer: SyncObserver
    begin: Begin | None = None
    batch_transactions: int = 0
    batch_changes: int = 0
    batch_by_table: Counter[tuple[str, str]] = field(default_factory=Counter)
    batch_started: float = 0.0
    first_commit_time: datetime | None = None
    seen_end_lsn: int = 0
    seen_commit_time: datetime | None = None
    skipping: bool = False
    in_flight: _InFlight | None = None
    queued: deque = field(default_factory=deque)
    failed: bool = False

    def __post_init__(self) -> None:
        self.applier = BatchApplier(self.warehouse, self.options.classification)
        self.assembler = TransactionAssembler()
        self.stager = ChangeStager()
        self.visibility: SnapshotVisibility | None = self.checkpoint.visibility
        self.seen_end_lsn = self.checkpoint.end_lsn
        self.seen_commit_time = self.checkpoint.commit_time

    def run(self, stop: threading.Event, target_lsn: int | None) -> Checkpoint:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="apply") as apply_thread:
            self.apply_thread = apply_thread
            try:
                return self._loop(stop, target_lsn)
            finally:
                for task in [*self.queued, *([self.in_flight.done] if self.in_flight else [])]:
                    task.exception()  # let it finish before the file closes
                if self.failed or self.applier.in_batch:
                    apply_thread.submit(self.applier.abort).result()

    def _loop(self, stop: threading.Event, target_lsn: int | None) -> Checkpoint:
        last_ask = 0.0
        while True:
            between_transactions = not self.assembler.in_transaction
            if stop.is_set() and between_transactions:
                self._flush()
                self._settle()
                return self.checkpoint
            message = self.stream.read()
            if message is not None:
                # Rows of a transaction we already hold are not worth decoding.
                if self.skipping and message.payload[:1] in ROW_MESSAGE_KINDS:
                    continue
                decoded = decode(message.payload)
                if isinstance(decoded, Begin):
                    self.begin = decoded
                    self.skipping = self._already_held(decoded.xid, decoded.final_lsn)
                for event in self.assembler.feed(decoded):
                    if isinstance(event, RowChange):
                        self._stage_row(event)
                    elif isinstance(event, Committed):
                        if self._committed(event):
                            self._flush()
                    else:
                        self._truncate(event)
                continue
            if not between_transactions:
                self.stream.wait(IDLE_POLL_SECONDS)
                continue
            self._flush()
            self._settle()
            # Everything received is applied: the server's sent position is safe to confirm.
            sent = self.stream.server_sent_lsn
            if target_lsn is not None and max(sent, self.seen_end_lsn) >= target_lsn:
                return self.checkpoint
            now = time.monotonic()
            ask = now - last_ask >= KEEPALIVE_ASK_SECONDS
            if ask:
                last_ask = now
            if sent > self.stream.flushed or ask:
                self.stream.confirm(max(sent, self.seen_end_lsn), ask_reply=ask)
            self.stream.wait(IDLE_POLL_SECONDS)

    def _already_held(self, xid: int, commit_lsn: int) -> bool:
        """Applied by an earlier batch, or contained in the initial copy."""
        if commit_lsn < self.checkpoint.end_lsn:
            return True
        return self.visibility is not None and self.visibility.saw(xid)

    def _stage_row(self, change: RowChange) -> None:
        if not self.batch_changes:
            self.batch_started = time.monotonic()
        self.batch_changes += 1
        self.batch_by_table[(change.relation.name, change.op)] += 1
        chunk = self.stager.add(change, self.begin.commit_time, self.begin.final_lsn)
        if chunk is not None:
            self._submit(self.applier.stage, chunk)

    def _truncate(self, truncate: TableTruncate) -> None:
        for chunk in self.stager.drain():
            self._submit(self.applier.stage, chunk)
        self._submit(self.applier.truncate, truncate.relations, self.begin.commit_time)
        self.batch_changes += 1
        self.batch_by_table.update((relation.name, "T") for relation in truncate.relations)

    def _committed(self, commit: Committed) -> bool:
        """Note a committed transaction; returns whether the batch is due."""
        self.seen_end_lsn = max(self.seen_end_lsn, commit.end_lsn)
        self.seen_commit_time = commit.commit_time
        if self.skipping:
            self.skipping = False
            return False
        if not self.batch_changes:
            return False
        self.batch_transactions += 1
        self.first_commit_time = self.first_commit_time or commit.commit_time
        return (self.batch_changes >= self.options.batch_changes
                or time.monotonic() - self.batch_started >= self.options.batch_seconds)

    def _submit(self, task, *args) -> Future:
        """Run `task` on the apply thread after what is queued; nothing runs after a failure
        (a later commit must never land without the batch before it)."""
        def guarded():
            if self.failed:
                raise RuntimeError("an earlier apply step failed")
            try:
                return task(*args)
            except BaseException:
                self.failed = True
                raise

        future = self.apply_thread.submit(guarded)
        self.queued.append(future)
        while self.queued and (self.queued[0].done() or len(self.queued) > MAX_QUEUED_CHUNKS):
            self.queued.popleft().result()  # bounded memory; raises the first failure
        return future

    def _flush(self) -> None:
        """Hand the batch's commit to the apply thread (after the previous one committed)."""
        if self.seen_end_lsn <= max(self.stream.flushed, self.checkpoint.end_lsn) \
                and not self.batch_changes:
            return
        self._settle()
        for chunk in self.stager.drain():
            self._submit(self.applier.stage, chunk)
        # Even a batch of only skipped transactions moves the checkpoint, so a restart
        # resumes past them without decoding them again.
        checkpoint = Checkpoint(self.seen_end_lsn, self.seen_commit_time, self.visibility)
        done = self._submit(self.applier.commit, checkpoint)
        self.in_flight = _InFlight(done, checkpoint, self.batch_transactions, self.batch_changes,
                                   self.first_commit_time, self.seen_commit_time,
                                   time.monotonic(), self.batch_by_table)
        self.batch_transactions = self.batch_changes = 0
        self.batch_by_table = Counter()
        self.first_commit_time = None

    def _settle(self) -> None:
        """Wait for the batch in flight; once committed in DuckDB, confirm it to the slot."""
        batch, self.in_flight = self.in_flight, None
        if batch is None:
            return
        changes = batch.done.result()
        self.checkpoint = batch.checkpoint
        if batch.transactions:
            self.observer.batch_applied(BatchStats(
                batch.transactions, changes, batch.checkpoint.end_lsn,
                batch.first_commit_time, batch.last_commit_time,
                time.time(), time.monotonic() - batch.started, batch.changes_by_table))
        self.stream.confirm(batch.checkpoint.end_lsn)

"""Following the stream: messages -> transactions -> micro-batches, applied on their own thread.

A batch is handed to the apply thread whenever the stream drains and the batch before it has
committed (never on a timer); once it is committed in DuckDB, it is confirmed to the slot.
"""

import threading
import time
from collections import Counter, deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime

from acme.capture.catalog import PrimaryKeys
from acme.capture.pgoutput import (
    Begin,
    Origin,
    Relation,
    TypeInfo,
    decode,
    decode_begin,
    decode_commit,
)
from acme.capture.replication import ReplicationStream
from acme.capture.transactions import Committed, RowChange, TableTruncate, TransactionAssembler
from acme.capture.visibility import SnapshotVisibility
from acme.errors import TransientError
from acme.observe.observer import BatchStats, SyncObserver
from acme.sync_options import SyncOptions
from acme.table_changes import TableChanges
from acme.warehouse.apply import BatchApplier
from acme.warehouse.stage import ChangeStager
from acme.warehouse.store import Checkpoint, Warehouse
from acme.warehouse.tables import warehouse_name

_ROWS = frozenset(b"IUD")
_BEGIN, _COMMIT, _TRUNCATE = ord("B"), ord("C"), ord("T")
IDLE_POLL_SECONDS = 0.05
BUSY_POLL_SECONDS = 0.002  # drained while a batch commits: look again this soon
KEEPALIVE_ASK_SECONDS = 1.0
RECORD_CONFIRMED_SECONDS = 1.0  # how often an idle warehouse may write its confirmed position
MAX_QUEUED_CHUNKS = 4  # staging tasks waiting for the apply thread: bounds memory
PUBLICATION_CHECK_SECONDS = 5.0  # how often an idle stream looks for tables joining
PUBLICATION_CHECK_TIMEOUT = 2  # seconds to connect for that look; a failed look waits


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
    commit_times: list[datetime]
    # Set once `done` is: the stream looks at every commit, and a Future's `done()` takes a
    # lock (a third of a microsecond) where an Event's flag is a read.
    finished: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.done.add_done_callback(lambda _: self.finished.set())


@dataclass
class Streamer:
    """Reads and decodes the stream while the apply thread stages and merges (DuckDB releases
    the GIL), so decoding and applying overlap on two cores. Row changes go to the apply
    thread in bounded chunks as they arrive: no batch or transaction is held here."""

    stream: ReplicationStream
    warehouse: Warehouse
    options: SyncOptions
    checkpoint: Checkpoint
    observer: SyncObserver
    big_batch_memory: str | None = None  # the applier's limit for a big batch, when not its own
    begin: Begin | None = None
    batch_transactions: int = 0
    batch_changes: int = 0
    # The batch's truncates; its rows are counted by the stager (`take_counts`) at the flush.
    batch_by_table: Counter[tuple[str, str]] = field(default_factory=Counter)
    batch_commit_times: list[datetime] = field(default_factory=list)
    batch_started: float = 0.0
    first_commit_time: datetime | None = None
    seen_end_lsn: int = 0
    seen_commit_time: datetime | None = None
    skipping: bool = False
    pending_counted: int = 0  # the stager's pending rows already counted in the batch
    in_flight: _InFlight | None = None
    queued: deque = field(default_factory=deque)
    failed: BaseException | None = None  # the first apply step that failed

    def __post_init__(self) -> None:
        self.applier = BatchApplier(self.warehouse, self.options.classification,
                                    self.big_batch_memory, self.observer.table_ordering)
        self.assembler = TransactionAssembler(PrimaryKeys(self.options.dsn))
        self.stager = ChangeStager()
        self.visibility: SnapshotVisibility | None = self.checkpoint.visibility
        self.seen_end_lsn = self.checkpoint.end_lsn
        self.seen_commit_time = self.checkpoint.commit_time
        self.recorded_confirmed = self.warehouse.confirmed_position() or 0
        self.recorded_at = 0.0
        self.table_changes = TableChanges(self.options, self.warehouse, self.applier)
        # Tables copied after streaming began: their transactions those copies saw are skipped.
        self.copies = self.table_changes.pending_copies(self.checkpoint.end_lsn)
        self.publication_checked = 0.0

    def run(self, stop: threading.Event, target_lsn: int | None) -> Checkpoint:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="apply") as apply_thread:
            self.apply_thread = apply_thread
            try:
                self._check_publication()
                return self._loop(stop, target_lsn)
            finally:
                for task in [*self.queued, *([self.in_flight.done] if self.in_flight else [])]:
                    task.exception()  # let it finish before the file closes
                if self.failed or self.applier.in_batch:
                    apply_thread.submit(self.applier.abort).result()

    def _loop(self, stop: threading.Event, target_lsn: int | None) -> Checkpoint:
        last_ask = 0.0
        while True:
            if self._receive(stop):
                self._flush()
                self._settle()
                return self.checkpoint
            if self.assembler.in_transaction:  # the rest of it is on its way
                self.stream.wait(IDLE_POLL_SECONDS)
                continue
            if target_lsn is not None and self.seen_end_lsn >= target_lsn:
                # Caught up with what was asked, even if the source never pauses.
                self._flush()
                self._settle()
                return self.checkpoint
            # Drained: hand on what is pending as soon as the batch before it has committed
            # (never on a timer), and meanwhile keep reading into the next one.
            if self.in_flight is not None and not self.in_flight.finished.is_set():
                self.stream.wait(BUSY_POLL_SECONDS)
                continue
            self._settle()
            self._flush()
            if self.in_flight is not None:
                continue
            if time.monotonic() - self.publication_checked >= PUBLICATION_CHECK_SECONDS:
                try:
                    self._check_publication(PUBLICATION_CHECK_TIMEOUT)
                except TransientError:
                    pass  # the stream's own deadline tells a dead path; try again later
            # Everything received is applied: the server's sent position is safe to confirm.
            sent = self.stream.server_sent_lsn
            if target_lsn is not None and max(sent, self.seen_end_lsn) >= target_lsn:
                return self.checkpoint
            now = time.monotonic()
            ask = now - last_ask >= KEEPALIVE_ASK_SECONDS
            if ask:
                last_ask = now
            position = self._recorded(max(sent, self.seen_end_lsn))
            if position > self.stream.flushed or ask:
                self.stream.confirm(position, ask_reply=ask)
            self.stream.wait(IDLE_POLL_SECONDS)

    def _receive(self, stop: threading.Event) -> bool:
        """Handle every message that has arrived; True when stopped between transactions.

        The hot loop of streaming: a row message of an open transaction is only appended to
        the stager's pending rows (decoded there a chunk at a time), and a transaction's Begin
        and Commit are decoded straight from their bytes, so it is kept to a few local
        operations per message."""
        assembler, read, stager = self.assembler, self.stream.read, self.stager
        pending, chunk_rows = stager.pending, stager.chunk_rows
        while True:
            if assembler.begin is None and stop.is_set():
                return True
            payload = read()
            if payload is None:
                return False
            kind = payload[0]
            if kind in _ROWS:
                if self.skipping:  # rows of a transaction we already hold
                    continue
                # While a table's copy may hold them, rows are looked at one by one.
                if assembler.begin is not None and not self.copies:
                    pending.append(payload)
                    if len(pending) >= chunk_rows:
                        self._stage_pending()
                    continue
            elif kind == _BEGIN:
                begin = self.begin = decode_begin(payload)
                assembler.began(begin)
                stager.transaction_began(begin.commit_time, begin.final_lsn)
                if self.copies:
                    self._forget_passed_copies(begin.final_lsn)
                self.skipping = self._already_held(begin.xid, begin.final_lsn)
                continue
            elif kind == _COMMIT:
                self._count_pending()
                if self._committed(assembler.committed(decode_commit(payload))):
                    self._flush()
                continue
            elif kind == _TRUNCATE and self.skipping:
                continue
            decoded = decode(payload)
            if not isinstance(decoded, Origin | TypeInfo):  # those change nothing we keep
                self._stage_pending()  # what follows comes after the rows before it
            if isinstance(decoded, Relation):
                self._described(decoded)
            for event in assembler.feed(decoded):  # Begin and Commit never come here
                if isinstance(event, RowChange):
                    self._stage_row(event)
                else:
                    self._truncate(event)

    def _count_pending(self) -> None:
        """Count the rows appended to the pending ones since last counted in the batch."""
        new = len(self.stager.pending) - self.pending_counted
        if new:
            if not self.batch_changes:
                self.batch_started = time.monotonic()
            self.batch_changes += new
            self.pending_counted += new

    def _stage_pending(self) -> None:
        self._count_pending()
        self.pending_counted = 0
        for chunk in self.stager.stage_pending(self.assembler):
            self._submit(self.applier.stage, chunk)

    def _stage_all(self) -> None:
        """Hand every row received so far to the apply thread."""
        self._stage_pending()
        for chunk in self.stager.drain():
            self._submit(self.applier.stage, chunk)

    def _recorded(self, position: int) -> int:
        """How far may be confirmed: the warehouse records a position beyond its checkpoint
        before it is confirmed (at most once a second), so a slot found further along later
        can only mean another reader."""
        now = time.monotonic()
        if position > self.recorded_confirmed and now - self.recorded_at >= \
                RECORD_CONFIRMED_SECONDS:
            # On the apply thread, which owns the connection (idle here: all is settled).
            self.apply_thread.submit(self.warehouse.record_confirmed, position).result()
            self.recorded_confirmed, self.recorded_at = position, now
        return min(position, max(self.recorded_confirmed, self.checkpoint.end_lsn))

    def _already_held(self, xid: int, commit_lsn: int) -> bool:
        """Applied by an earlier batch, or contained in the initial copy."""
        if commit_lsn < self.checkpoint.end_lsn:
            return True
        return self.visibility is not None and self.visibility.saw(xid)

    def _described(self, relation: Relation) -> None:
        """A table's (new) description: its DDL, or its joining, reach the warehouse before
        its rows, between the transactions staged so far and this one."""
        self._stage_all()
        lsn = self.begin.final_lsn if self.begin is not None else 0
        copy = self._submit(self.table_changes.described, relation, lsn).result()
        if copy is not None:
            self.copies[copy.table] = copy
            if not self.batch_changes:
                self.batch_started = time.monotonic()
            self.batch_changes += 1  # the batch holding the copy must commit

    def _check_publication(self, timeout: float | None = None) -> None:
        """Copy tables that joined the publication (between batches: nothing in flight)."""
        self.publication_checked = time.monotonic()
        copies = self._submit(self.table_changes.check_publication, timeout).result()
        if self.applier.in_batch:
            self._submit(self.applier.commit, self.checkpoint).result()
        self.copies.update((copy.table, copy) for copy in copies)

    def _forget_passed_copies(self, commit_lsn: int) -> None:
        """Copies whose snapshot the stream has passed hold no transaction from this one on
        (commit LSNs only grow)."""
        self.copies = {name: copy for name, copy in self.copies.items()
                       if copy.wal_lsn > commit_lsn}

    def _held_by_copy(self, relation: Relation) -> bool:
        copy = self.copies.get(warehouse_name(relation.namespace, relation.name))
        return copy is not None and copy.holds(self.begin.xid, self.begin.final_lsn)

    def _stage_row(self, change: RowChange) -> None:
        if self.copies and self._held_by_copy(change.relation):
            return
        if not self.batch_changes:
            self.batch_started = time.monotonic()
        self.batch_changes += 1
        chunk = self.stager.add(change, self.begin.commit_time, self.begin.final_lsn)
        if chunk is not None:
            self._submit(self.applier.stage, chunk)

    def _truncate(self, truncate: TableTruncate) -> None:
        relations = tuple(r for r in truncate.relations if not self._held_by_copy(r))
        if not relations:
            return
        truncate = TableTruncate(relations)
        self._stage_all()
        self._submit(self.applier.truncate, truncate.relations, self.begin.commit_time,
                     self.begin.final_lsn)
        self.batch_changes += 1
        self.batch_by_table.update((warehouse_name(relation.namespace, relation.name), "T")
                                  for relation in truncate.relations)

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
        self.batch_commit_times.append(commit.commit_time)
        self.first_commit_time = self.first_commit_time or commit.commit_time
        # Due when large, or whenever the apply thread is free: batches size themselves to
        # what arrived during the apply before (a few transactions under light traffic, up to
        # `batch_changes` in a backlog), and no transaction waits longer than that apply.
        return (self.batch_changes >= self.options.batch_changes
                or self.in_flight is None or self.in_flight.finished.is_set())

    def _submit(self, task, *args) -> Future:
        """Run `task` on the apply thread after what is queued; nothing runs after a failure
        (a later commit must never land without the batch before it)."""
        def guarded():
            if self.failed:
                # Whoever waits on a later step learns the cause: a storage failure is retried.
                raise self.failed
            try:
                return task(*args)
            except BaseException as error:
                self.failed = error
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
        self._stage_all()
        self.batch_by_table.update(self.stager.take_counts())
        # Even a batch of only skipped transactions moves the checkpoint, so a restart
        # resumes past them without decoding them again.
        checkpoint = Checkpoint(self.seen_end_lsn, self.seen_commit_time, self.visibility)
        done = self._submit(self._commit, checkpoint)
        self.in_flight = _InFlight(done, checkpoint, self.batch_transactions, self.batch_changes,
                                   self.first_commit_time, self.seen_commit_time,
                                   time.monotonic(), self.batch_by_table,
                                   self.batch_commit_times)
        self.batch_transactions = self.batch_changes = 0
        self.batch_by_table = Counter()
        self.batch_commit_times = []
        self.first_commit_time = None

    def _commit(self, checkpoint: Checkpoint) -> tuple[int, float]:
        """On the apply thread: the batch's changes, and when its commit returned."""
        changes = self.applier.commit(checkpoint)
        return changes, time.time()

    def _settle(self) -> None:
        """Wait for the batch in flight; once committed in DuckDB, confirm it to the slot."""
        batch, self.in_flight = self.in_flight, None
        if batch is None:
            return
        changes, committed_at = batch.done.result()
        self.checkpoint = batch.checkpoint
        if batch.transactions:
            self.observer.batch_applied(BatchStats(
                batch.transactions, changes, batch.checkpoint.end_lsn,
                batch.first_commit_time, batch.last_commit_time,
                committed_at, time.monotonic() - batch.started, batch.changes_by_table,
                tuple(batch.commit_times)))
        self.stream.confirm(batch.checkpoint.end_lsn)

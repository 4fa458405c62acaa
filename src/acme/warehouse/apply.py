"""Micro-batch apply: staged row changes -> one DuckDB transaction (data + state + checkpoint).

Chunks of row changes are staged per table as they arrive (`table_stage.py`), inside the
batch's DuckDB transaction, so neither a large batch nor a large source transaction is ever
held in Python (DuckDB spills beyond its memory limit). At the batch's end the stages are merged
set-based (`merge.py`), the report state takes the batch's boundaries (`report_state.py`), the
row counters move, and the checkpoint is written: all in one commit, so a crash leaves all of
a batch or none of it. A TRUNCATE first merges what was staged before it.

One thread owns an applier: DuckDB transactions belong to a connection.
"""

import time
from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

import duckdb
import pyarrow as pa

from acme.capture.pgoutput import Relation
from acme.classification import StatusClassification
from acme.errors import UnstorableValue
from acme.warehouse.cluster import order_scattered
from acme.warehouse.deferred import DeferringConnection
from acme.warehouse.merge import (
    STAGE_BOOKKEEPING,
    Part,
    add_touched_sql,
    before_sql,
    before_table,
    context_sql,
    find_key_sql,
    key_change_carry_sql,
    merge_sql,
    net_sql,
    net_table,
    stage_table,
    take_touched_sql,
    truncate_sql,
    unstorable_error,
    unstorable_sql,
)
from acme.warehouse.report_state import ReportState
from acme.warehouse.stage import StageChunk
from acme.warehouse.stopped import clear_stopped, read_stopped
from acme.warehouse.store import MEMORY_LIMIT, Checkpoint, Warehouse
from acme.warehouse.table_stage import TableStage
from acme.warehouse.tables import TableSpec, warehouse_name

T = TypeVar("T")
# A batch of this many staged rows or more runs on one DuckDB thread, with a little more memory:
# DuckDB's joins and sorts hold memory per thread, and the merge of a 10M-row transaction failed
# to pin a block at the warehouse's limit on two threads (once in two runs). What it cannot spill
# is mostly its hash joins' directories (8 bytes a slot, two slots a build row), so it looks its
# keys up in parts (KEYS_PER_PART); should a batch still run out, it is applied again with the
# retry's limit.
# DuckDB's allocator (jemalloc) returns freed pages to the system only as later allocations come
# by, unless its background threads do it, which a big batch turns on: without them a 10M-row
# batch held some 600 MB beyond its limit. They stay off otherwise: pages handed back are
# faulted in again, and streaming spent more CPU per change with them on.
BIG_BATCH_ROWS = 1_000_000
BIG_BATCH_MEMORY = "512MB"
BIG_BATCH_RETRY_MEMORY = "1536MB"
# A batch of at most this many staged rows takes its touched open versions with one DELETE ...
# RETURNING, whose scan reads the key column alone; it fetches each deleted row on its own
# (about 16 us a row), so a larger batch reads them with a scan of every column, then deletes.
RETURNING_ROWS = 5_000
# A batch looks its keys up in parts of about this many (`merge.in_part`): a hash join's
# directory then stays near 32 MB, where 10M keys at once took 256 MB.
KEYS_PER_PART = 2_000_000
# A batch of at most this many staged rows runs each window over one ordered partition: DuckDB
# pays some 20 us a partition, and a batch's windows are partitioned by key or group. More rows
# take partitions: over one, a 10M-row batch ran out of memory (`merge.window_sql`).
ONE_WINDOW_ROWS = 50_000
# A batch of at most this many staged rows keeps its chunks (Arrow) until it ends, and looks in
# them for a value its column cannot hold only once a statement failed: a look before every
# merge cost some 4 ms a table, mostly DuckDB's planning, and 40 ms for 100,000 rows. A batch
# of the default size (`SyncOptions.batch_changes`) and the transaction that ends it keep some
# 30 MB. A larger batch keeps nothing and looks first.
KEPT_ROWS = 300_000
# A stage begun by a chunk of at least this many rows (a backlog: the stager hands out full
# chunks) reads its chunks where they lie (`TableStage.in_place`) while the batch keeps them
# and none needs a statement to change the stage (a row found by its identity, an unchanged
# TOAST value). Smaller chunks are appended to a table: every statement reading a view over
# registered chunks sets up their scans, which cost a batch of a few hundred rows more than
# appending saved (freshness p50 at 1,000 transactions/s 10-30 ms later).
IN_PLACE_ROWS = 10_000
# The versions a batch appends hold the keys it touched, scattered over the key range, so a
# table streamed into drifts out of the key order the first sync left (`cluster.py`). The
# applier looks when it starts (a warehouse that drifted before a restart), before any batch
# waits on it, then a batch looks every this many seconds, and rewrites a table gone
# scattered within its own transaction: at 10M orders, 0.3 s to look; a rewrite of the 10M
# orders about 6 s, which that batch waits.
ORDER_CHECK_SECONDS = 600


def _parts(keys: int) -> list[Part]:
    """Parts to look `keys` keys up in, of about KEYS_PER_PART each."""
    count = max(1, -(-keys // KEYS_PER_PART))
    return [(index, count) for index in range(count)]


class BatchApplier:
    """Applies batches to one warehouse, remembering its table layout between batches."""

    def __init__(self, warehouse: Warehouse, classification: StatusClassification,
                 big_batch_memory: str | None = None,
                 ordering: Callable[[str, float], None] = lambda table, groups: None):
        self.warehouse = warehouse
        self.ordering = ordering  # told of a table rewritten in key order, and why
        self.big_batch_memory = big_batch_memory or BIG_BATCH_MEMORY
        self.db = warehouse.db
        self.tables = warehouse.tables()
        # The merge's statements go through `statements`; nothing waits there between calls.
        self.statements = DeferringConnection(self.db)
        self.state = ReportState(self.statements, classification)
        with warehouse.transaction():
            self.state_active = self.state.ensure(set(self.tables))
            order_scattered(self.db, self.tables.values(), self.ordering)
        self.staged: dict[str, TableStage] = {}
        self.in_batch = False
        self.applied = 0
        self.was_stopped = read_stopped(self.db) is not None  # cleared by the next commit
        self.big = False  # the open batch runs as a big one (BIG_BATCH_ROWS)
        # The open batch's chunks as staged, with the table each went to (KEPT_ROWS); None
        # once there were too many to keep.
        self.kept: list[tuple[TableSpec, pa.Table]] | None = []
        self.order_check_at = time.monotonic() + ORDER_CHECK_SECONDS

    def stage(self, chunk: StageChunk) -> None:
        """Add a chunk of row changes to the open batch."""
        self._begin()
        spec = self._spec_for(chunk.relations)
        unchanged, by = chunk.rows.column("_unchanged"), chunk.rows.column("_by")
        has_unchanged, by_identity = unchanged.null_count < len(unchanged), by.null_count < len(by)
        changes_stage = has_unchanged or by_identity
        staged = self.staged.get(spec.name)
        if staged is None:
            in_place = (not changes_stage and self.kept is not None
                        and chunk.rows.num_rows >= IN_PLACE_ROWS)
            staged = self.staged[spec.name] = TableStage.begin(self.db, spec, in_place)
        elif staged.spec != spec:  # the table gained columns within the batch
            staged.add_columns(spec)
        elif changes_stage:
            staged.materialize()
        rows = chunk.rows
        names = [name for name, _ in STAGE_BOOKKEEPING] + list(spec.column_names)
        columns = [rows.column(name) if name in rows.column_names
                   else pa.nulls(rows.num_rows, pa.string()) for name in names]
        table = pa.table(columns, names=names)
        staged.add(table)
        if self.kept is not None:
            self.kept.append((spec, table))
            if sum(len(rows) for _, rows in self.kept) > KEPT_ROWS:
                self.kept = None
                for each in self.staged.values():
                    each.materialize()
        if not self.big and self._batch_rows() >= BIG_BATCH_ROWS:
            # Set back when the batch ends (a failed statement refuses any other), even if
            # setting the limit fails: DuckDB may be unable to evict down to it.
            self.big = True
            self.db.execute("SET threads = 1")
            self.db.execute("SET allocator_background_threads = true")
            self.db.execute(f"SET memory_limit = '{self.big_batch_memory}'")
        staged.has_unchanged |= has_unchanged
        if by_identity:
            staged.identities.update(tuple(names) for names in by.to_pylist() if names)

    def truncate(self, relations: tuple[Relation, ...], commit_time: datetime,
                 lsn: int | None = None) -> None:
        """A TRUNCATE inside the open batch: what earlier transactions staged is merged first.

        Rows of the truncating transaction itself (`lsn`) are not merged yet, so that
        transaction still nets to one version per row: its rows of the truncated tables
        that precede the TRUNCATE were never visible and are dropped; those of other tables
        stay staged for the batch's merge."""
        self._begin()
        held = self._hold(lsn, {warehouse_name(r.namespace, r.name) for r in relations}) \
            if lsn is not None else {}
        self._merge()
        self._restore(held)
        for relation in relations:
            spec = self._spec_for((relation,))
            close_versions, empty_open = truncate_sql(spec)
            self.db.execute(close_versions, [commit_time])
            removed = self.db.execute(empty_open).fetchone()[0]
            self.warehouse.add_rows({("current", spec.name): -removed})
            if self.state_active:
                self.state.truncated(spec.name, commit_time)

    def between_transactions(self, lsn: int, task: Callable[[], T]) -> T:
        """Run `task` (DDL, a table's copy) in the open batch, after merging what the
        transactions before `lsn` staged (the rows of transaction `lsn` stay staged)."""
        self._begin()
        held = self._hold(lsn, set())
        self._merge()
        try:
            return task()
        finally:
            self.tables = self.warehouse.tables()
            self._restore(held)

    def _hold(self, lsn: int, truncated: set[str]) -> dict[str, TableStage]:
        """Set aside the staged rows of transaction `lsn` (dropping those of `truncated`
        tables) as stages of their own, left out of the next merge."""
        held = {}
        for name, staged in self.staged.items():
            if name in truncated:
                staged.remove(lsn)
            elif (aside := staged.set_aside(lsn)) is not None:
                held[name] = aside
        return held

    def _restore(self, held: dict[str, TableStage]) -> None:
        for name, staged in held.items():
            staged.restore()
            self.staged[name] = staged

    def commit(self, checkpoint: Checkpoint) -> int:
        """Merge the open batch, write the checkpoint and commit; returns row changes applied."""
        self._begin()
        self._merge()
        if self.big:  # it appended many versions in no order: the next batch looks
            self.order_check_at = 0.0
        elif time.monotonic() >= self.order_check_at:
            self.order_check_at = time.monotonic() + ORDER_CHECK_SECONDS
            order_scattered(self.db, self.tables.values(), self.ordering)
        self.warehouse.write_checkpoint(checkpoint)
        if self.was_stopped:
            clear_stopped(self.db)
        self.db.execute("COMMIT")
        self._end_big()
        self.kept = []
        self.was_stopped = False
        self.in_batch = False
        applied, self.applied = self.applied, 0
        return applied

    def abort(self) -> None:
        """Forget the open batch (after a failure): nothing of it stays."""
        forgotten = list(self.staged.values())
        self.staged.clear()
        self.kept = []
        self.statements.discard()
        self.applied = 0
        if self.in_batch:
            self.in_batch = False
            try:
                self.db.execute("ROLLBACK")
            except duckdb.TransactionException:
                pass  # a COMMIT that failed (disk full) has already rolled back
        try:
            self._end_big()
            for staged in forgotten:
                staged.release()  # their views went with the transaction
        except duckdb.Error:
            pass  # an invalidated connection: the warehouse reopens it with its settings
        self.tables = self.warehouse.tables()  # DDL of the failed batch was rolled back

    def _end_big(self) -> None:
        if self.big:
            self.db.execute("RESET threads")
            self.db.execute("RESET allocator_background_threads")
            self.db.execute(f"SET memory_limit = '{MEMORY_LIMIT}'")
            self.big = False

    def _begin(self) -> None:
        if not self.in_batch:
            self.db.execute("BEGIN TRANSACTION")
            self.in_batch = True

    def _spec_for(self, relations: tuple[Relation, ...]) -> TableSpec:
        spec = None
        for relation in relations:
            spec = self.warehouse.ensure_table(TableSpec.from_relation(relation), self.tables)
        return spec

    def _batch_rows(self) -> int:
        """Rows staged and not yet merged."""
        return sum(staged.rows for staged in self.staged.values())

    def _check_values(self, spec: TableSpec) -> None:
        """Stop (the batch rolls back) at the first staged value a column cannot hold."""
        query = unstorable_sql(spec, stage_table(spec))
        found = self.statements.execute(query).fetchone() if query else None
        if found is not None:
            raise unstorable_error(spec, found)

    def _unstorable_kept(self) -> UnstorableValue | None:
        """The first value of the kept chunks a column cannot hold, if any. Looked for in a
        database of its own: the batch's transaction has failed."""
        checker = duckdb.connect()
        try:
            checker.execute("SET TimeZone = 'UTC'")
            for spec, rows in self.kept or ():  # each chunk holds its spec's columns
                query = unstorable_sql(spec, "kept_rows")
                if query is None:
                    continue
                checker.register("kept_rows", rows)
                found = checker.execute(query).fetchone()
                checker.unregister("kept_rows")
                if found is not None:
                    return unstorable_error(spec, found)
            return None
        finally:
            checker.close()

    def _take_before(self) -> tuple[list[TableSpec], dict[str, int]]:
        """Take each staged table's touched open versions out of the open ones into
        `before_<table>`, then add the rows the report state needs around them, in the order it
        needs them. Returns the tables read and how many open versions each lost."""
        contexts = self.state.contexts(set(self.staged)) if self.state_active else {}
        batch_rows = self._batch_rows()
        returning = batch_rows <= RETURNING_ROWS
        dropped = {}
        for name, staged in self.staged.items():
            spec = staged.spec
            if returning:
                self.statements.flush()  # the registered relation runs on the connection
                self.db.register("taken_rows", self.db.sql(f"{take_touched_sql(spec)} RETURNING *"))
                try:
                    dropped[name] = self.statements.execute(
                        before_sql(spec, "taken_rows")).fetchone()[0]
                finally:
                    self.db.unregister("taken_rows")
            else:
                self.statements.later(before_sql(spec))
                dropped[name] = 0
                for part in _parts(staged.rows):
                    self.statements.later(add_touched_sql(spec, part))
                    dropped[name] += self.statements.execute(
                        take_touched_sql(spec, part)).fetchone()[0]
        taken = [staged.spec for staged in self.staged.values()]
        for name, (column, keys, columns) in contexts.items():
            if name in self.staged:
                spec = self.staged[name].spec
            else:  # read for the state only
                spec = self.tables[name]
                self.statements.later(before_sql(spec))
                taken.append(spec)
            for part in _parts(batch_rows) if keys else ():
                self.statements.later(context_sql(spec, column, keys, columns, part))
        return taken, dropped

    def _merge(self) -> None:
        """Merge everything staged so far into history, current and the report state."""
        if not self.staged:
            return
        try:
            self._merge_staged()
        except duckdb.Error:
            unstorable = self._unstorable_kept()
            if unstorable is not None:
                raise unstorable from None
            raise

    def _merge_staged(self) -> None:
        for staged in self.staged.values():
            if self.kept is None:
                self._check_values(staged.spec)
            for identity in staged.identities:
                for statement in find_key_sql(staged.spec, identity):
                    self.statements.later(statement)
        taken, dropped = self._take_before()
        partitioned = self._batch_rows() > ONE_WINDOW_ROWS
        for staged in self.staged.values():
            if staged.has_unchanged:
                self.statements.later(key_change_carry_sql(staged.spec))
            self.statements.later(net_sql(staged.spec, staged.has_unchanged, partitioned))
        if self.state_active:
            self.state.apply_batch(set(self.staged), partitioned)
        moves: dict[tuple[str, str], int] = {}
        for name, staged in self.staged.items():
            close_open, add_closed, add_open = merge_sql(staged.spec)
            self.statements.later(close_open)
            closed = self.statements.execute(add_closed).fetchone()[0]
            opened = self.statements.execute(add_open).fetchone()[0]
            moves[("history", name)] = closed + opened
            moves[("current", name)] = opened - dropped[name]
            self.statements.later(staged.drop_sql())
            self.statements.later(f"DROP TABLE {net_table(staged.spec)}")
            self.applied += staged.rows
        for spec in taken:
            self.statements.later(f"DROP TABLE {before_table(spec)}")
        self.statements.flush()
        for staged in self.staged.values():
            staged.release()
        self.warehouse.add_rows(moves)
        self.staged.clear()
        if not self.state_active:
            self.state_active = self.state.ensure(set(self.tables))

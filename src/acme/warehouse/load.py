"""Snapshot load: copied rows (Arrow batches) become each key's first (open) version.

Each batch is written once, to `open_versions` (valid from the copy's time), straight from the
Arrow batch: `history` and `current` are views over it. The batches are shared out between two
DuckDB connections (DuckDB runs a statement without the GIL), each appending on its own thread
in its own transaction: appends split over DuckDB's worker threads leave a partial row group
per thread and statement, which the commit compresses a second time. Each copy connection's
batches go to one writer: a connection reads a range of pages at a time, so each row group
holds rows that were neighbours in the source table, in key order where the table grew by its
key. The streamed batches' lookups of a few keys then skip the row groups whose key range
(DuckDB's zone maps) holds none of them (`store.py`).

Each of the two commits on its own thread when its last batch is in; then a table whose rows
came scattered is rewritten in key order (`cluster.py`), and the model and the checkpoint
commit. A crash before that leaves tables without a checkpoint: the next sync
drops such leftovers and copies again.

A batch is read by DuckDB's replacement scan of a local Python variable named like the table in
the SQL, not registered as a view nor wrapped in a relation: in DuckDB 1.x both of those keep
its Arrow data alive until the transaction ends (the catalog entry is kept for rollback),
which made the copy hold every batch it had loaded.
"""

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime

import duckdb

from acme.capture.copy_readers import CopiedBatch
from acme.warehouse.cluster import order_scattered
from acme.warehouse.merge import unstorable_error, unstorable_sql
from acme.warehouse.store import OPEN, Warehouse, warehouse_cursor
from acme.warehouse.tables import (
    TableSpec,
    column_list,
    copied_values_sql,
    literal,
    quote,
    split_columns,
    text_columns,
)

BATCH_NAME = "snapshot_raw"
WRITERS = 2
QUEUED_BATCHES = 2
_END = object()
_ABORT = object()
# DuckDB keeps the blocks it wrote cached up to its memory limit; the copy never reads them
# back, so a lower limit during the load keeps this process and the copy's reader process
# (about 250 MB) under 1 GB together at any table size.
# Each row group is compressed and written as soon as it is full (DuckDB buffers five by
# default), so less is left for the commits at the end and less is held in memory.
MEMORY_LIMIT = "288MB"


def versions_sql(spec: TableSpec, valid_from: datetime, lsn: int) -> str:
    """Insert one copied batch (`snapshot_raw`) as first versions, cast to the column types
    (`tables.copied_values_sql`: binary values as they are, text cast). Their `_op` stays
    NULL, which `history` reads as 'snapshot' (`store.create_views`): writing that constant
    string on every row took DuckDB a quarter of the copy's writing."""
    since = f"CAST({literal(valid_from.isoformat())} AS TIMESTAMPTZ)"
    return f"""
        INSERT INTO {OPEN}.{quote(spec.name)} ({column_list(spec)}, _valid_from, _lsn)
        SELECT {', '.join(copied_values_sql(spec))}, {since}, {int(lsn)}
        FROM {BATCH_NAME}"""


def unstorable_check_sql(spec: TableSpec, lsn: int) -> str | None:
    """The first value of a copied batch its column cannot hold, as (column, value, lsn):
    only values copied as text can be one."""
    as_text, split = text_columns(spec), split_columns(spec)
    kinds = dict(spec.columns)
    checked = TableSpec(spec.name, tuple((name, kinds[name]) for name in (*as_text, *split)),
                        spec.key)
    texts = [quote(name) for name in as_text]
    texts += [f"{quote(companion)} AS {quote(name)}" for name, companion in split.items()]
    if not texts:
        return None
    return unstorable_sql(
        checked, f"(SELECT {', '.join(texts)}, {int(lsn)}::UBIGINT AS _lsn FROM {BATCH_NAME})",
        "_lsn")


def load_snapshot(warehouse: Warehouse, specs: list[TableSpec],
                  batches: Iterable[CopiedBatch], valid_from: datetime, lsn: int,
                  created: Callable[[], None], finish: Callable[[], None],
                  progress: Callable[[int], None] = lambda rows: None,
                  ordering: Callable[[str, float], None] = lambda table, groups: None) -> int:
    """Replace any leftovers with the copied rows, each table in key order if its rows were
    scattered (`cluster.py`; `ordering` is told the table and the row groups a key's lookup
    read), and count them. `created` runs in the transaction that creates the tables, before
    any row is copied; `finish` in the transaction that commits last, once the versions are
    committed: as little as can be is left for then, when the copy no longer keeps both
    cores busy. Returns the rows loaded."""
    with warehouse.transaction():
        warehouse.drop_tables()
        known: dict[str, TableSpec] = {}
        specs = [warehouse.ensure_table(spec, known) for spec in specs]
        created()
    loaded = dict.fromkeys((spec.name for spec in specs), 0)
    with _settings(warehouse, threads=1, memory_limit=MEMORY_LIMIT,
                   write_buffer_row_group_count=1):
        statements = {spec.name: versions_sql(spec, valid_from, lsn) for spec in specs}
        writers = [_Writer(warehouse, statements, f"snapshot-{n}") for n in range(WRITERS)]
        checks = _ValueChecks(warehouse, specs, lsn)
        try:
            for copied in batches:
                writers[copied.reader % WRITERS].put(copied)
                loaded[copied.table] += copied.batch.num_rows
                progress(copied.batch.num_rows)
            for writer in writers:
                writer.end()  # each commits on its own thread as soon as it is done
            for writer in writers:
                writer.wait()
        except duckdb.Error:
            # A cast failed: name the value (table, column, LSN) if one cannot be held.
            for writer in writers:
                if writer.failed is not None:
                    checks.check(writer.failed)
            raise
        finally:
            for writer in writers:
                writer.close()
    with warehouse.transaction():
        order_scattered(warehouse.db, specs, ordering)
        warehouse.add_rows({(layer, name): rows for name, rows in loaded.items()
                            for layer in ("history", "current")})
        finish()
    return sum(loaded.values())


class _ValueChecks:
    """Finds the first value of a copied batch its column cannot hold (asked once a write
    failed: nothing to pay while every value fits)."""

    def __init__(self, warehouse: Warehouse, specs: list[TableSpec], lsn: int):
        self.db = warehouse_cursor(warehouse.db)
        self.checks = {spec.name: (spec, unstorable_check_sql(spec, lsn)) for spec in specs}

    def check(self, copied: CopiedBatch) -> None:
        spec, check = self.checks[copied.table]
        if check is None:
            return
        snapshot_raw = copied.batch  # noqa: F841 -- found by name (see module doc)
        found = self.db.execute(check).fetchone()
        if found is not None:
            raise unstorable_error(spec, found)


@contextmanager
def _settings(warehouse: Warehouse, **values) -> Iterator[None]:
    """DuckDB settings for the duration of the load, then back to what they were."""
    before = {name: warehouse.db.execute("SELECT current_setting($1)", [name]).fetchone()[0]
              for name in values}
    for name, value in values.items():
        warehouse.db.execute(f"SET {name} = {literal(str(value))}")
    try:
        yield
    finally:
        for name, value in before.items():
            warehouse.db.execute(f"SET {name} = {literal(str(value))}")


class _Writer:
    """A thread writing the batches it is given, in its own connection and transaction, and
    committing when the batches end."""

    def __init__(self, warehouse: Warehouse, statements: dict[str, str], name: str):
        self.db = warehouse_cursor(warehouse.db)
        self.statements = statements
        self.batches: queue.Queue = queue.Queue(maxsize=QUEUED_BATCHES)
        self.error: BaseException | None = None
        self.failed: CopiedBatch | None = None  # the batch a statement failed on
        self.committed = False
        self.db.execute("BEGIN TRANSACTION")
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            while (copied := self.batches.get()) not in (_END, _ABORT):
                snapshot_raw = copied.batch  # noqa: F841 -- found by name (see module doc)
                self.failed = copied
                self.db.execute(self.statements[copied.table])
                self.failed = None
            if copied is _END:
                self.db.execute("COMMIT")
                self.committed = True
        except BaseException as error:  # raised in the loading thread
            self.error = error
            while self.batches.get() not in (_END, _ABORT):
                pass  # keep the producer from blocking until it stops

    def put(self, copied: CopiedBatch) -> None:
        self._check()
        self.batches.put(copied)

    def end(self) -> None:
        self.batches.put(_END)

    def wait(self) -> None:
        self.thread.join()
        self._check()

    def close(self) -> None:
        """Stop the thread; roll back what it had not committed."""
        if self.thread.is_alive():
            self.batches.put(_ABORT)
            self.thread.join()
        if not self.committed:
            self.db.execute("ROLLBACK")
        self.db.close()

    def _check(self) -> None:
        if self.error is not None:
            raise self.error

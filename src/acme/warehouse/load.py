"""Snapshot load: copied rows (Arrow batches) become each key's first version, and current.

Each batch is written once to `history` (as a version valid from the copy's time) and once to
`current`, straight from the Arrow batch: no table is read back to build another. The two
tables are written at the same time by two DuckDB connections (DuckDB runs a statement
without the GIL), each appending on its own thread: appends split over DuckDB's worker
threads leave a partial row group per thread and statement, which the commit compresses a
second time.

History commits first, then current with the model and the checkpoint. A crash in between
leaves history without a checkpoint: the next sync drops such leftovers and copies again.

A batch is scanned through a DuckDB relation rather than a registered view: a view registered
inside a transaction keeps its Arrow data alive until the transaction ends (the dropped
catalog entry is kept for rollback), which made a one-transaction snapshot hold every batch.
"""

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime

from acme.capture.snapshot import CopiedBatch
from acme.warehouse.merge import literal
from acme.warehouse.store import Warehouse
from acme.warehouse.tables import TableSpec, quote

BATCH_NAME = "snapshot_raw"
QUEUED_BATCHES = 2
# DuckDB keeps the blocks it wrote cached up to its memory limit; the copy never reads them
# back, so a lower limit during the load keeps the process under 1 GB at any table size.
MEMORY_LIMIT = "384MB"


def history_sql(spec: TableSpec, valid_from: datetime, lsn: int) -> str:
    """Insert one copied batch (`snapshot_raw`) as first versions, cast to the column types
    (a no-op for typed columns; numeric arrives as its exact text)."""
    since = f"CAST({literal(valid_from.isoformat())} AS TIMESTAMPTZ)"
    return f"""
        INSERT INTO history.{quote(spec.name)} ({_columns(spec)}, _valid_from, _valid_to, _op, _lsn)
        SELECT {_values(spec)}, {since}, NULL, 'snapshot', {int(lsn)} FROM {BATCH_NAME}"""


def current_sql(spec: TableSpec) -> str:
    return f"""
        INSERT INTO current.{quote(spec.name)} ({_columns(spec)})
        SELECT {_values(spec)} FROM {BATCH_NAME}"""


def _columns(spec: TableSpec) -> str:
    return ", ".join(quote(name) for name in spec.column_names)


def _values(spec: TableSpec) -> str:
    return ", ".join(f"CAST({quote(name)} AS {kind})" for name, kind in spec.columns)


def load_snapshot(warehouse: Warehouse, specs: list[TableSpec],
                  batches: Iterable[CopiedBatch], valid_from: datetime, lsn: int,
                  finish: Callable[[], None],
                  progress: Callable[[int], None] = lambda rows: None) -> int:
    """Replace any leftovers with the copied rows; `finish` runs in the transaction that
    commits last (current's). Returns the rows loaded."""
    with warehouse.transaction():
        warehouse.drop_tables()
        known: dict[str, TableSpec] = {}
        specs = [warehouse.ensure_table(spec, known) for spec in specs]
    history = {spec.name: history_sql(spec, valid_from, lsn) for spec in specs}
    current = {spec.name: current_sql(spec) for spec in specs}
    rows = 0
    with _settings(warehouse, threads=1, memory_limit=MEMORY_LIMIT):
        writer = _Writer(warehouse, history)
        try:
            with warehouse.transaction():
                for copied in batches:
                    writer.put(copied)
                    relation = warehouse.db.from_arrow(copied.batch)
                    relation.query(BATCH_NAME, current[copied.table])
                    rows += copied.batch.num_rows
                    progress(copied.batch.num_rows)
                writer.commit()
                finish()
        finally:
            writer.close()
    return rows


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
    """A thread writing each batch to history through its own connection and transaction."""

    def __init__(self, warehouse: Warehouse, statements: dict[str, str]):
        self.db = warehouse.db.cursor()
        self.statements = statements
        self.batches: queue.Queue = queue.Queue(maxsize=QUEUED_BATCHES)
        self.error: BaseException | None = None
        self.committed = False
        self.db.execute("BEGIN TRANSACTION")
        self.thread = threading.Thread(target=self._run, name="snapshot-history", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            while (copied := self.batches.get()) is not None:
                self.db.from_arrow(copied.batch).query(BATCH_NAME,
                                                       self.statements[copied.table])
        except BaseException as error:  # raised in the loading thread
            self.error = error
            while self.batches.get() is not None:
                pass  # keep the producer from blocking until it stops

    def put(self, copied: CopiedBatch) -> None:
        self._check()
        self.batches.put(copied)

    def commit(self) -> None:
        self.batches.put(None)
        self.thread.join()
        self._check()
        self.db.execute("COMMIT")
        self.committed = True

    def close(self) -> None:
        if self.thread.is_alive():
            self.batches.put(None)
            self.thread.join()
        if not self.committed:
            self.db.execute("ROLLBACK")
        self.db.close()

    def _check(self) -> None:
        if self.error is not None:
            raise self.error

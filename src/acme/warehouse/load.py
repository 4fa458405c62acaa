"""Snapshot load: copied rows (Arrow batches) become each key's first version, and current.

Each batch is written once to `history` (as a version valid from the copy's time) and once to
`current`, straight from the Arrow batch: no table is read back to build another. The batch is
scanned through a DuckDB relation rather than a registered view: a view registered inside a
transaction keeps its Arrow data alive until the transaction ends (the dropped catalog entry
is kept for rollback), which made a one-transaction snapshot hold every batch it had copied.
"""

from collections.abc import Callable, Iterable
from datetime import datetime

from acme.capture.snapshot import CopiedBatch
from acme.warehouse.merge import literal
from acme.warehouse.store import Warehouse
from acme.warehouse.tables import TableSpec, quote

BATCH_NAME = "snapshot_raw"


def snapshot_sql(spec: TableSpec, valid_from: datetime, lsn: int) -> list[str]:
    """Statements writing one copied batch (`snapshot_raw`) to history and current, cast to
    the column types (a no-op for typed columns; numeric arrives as its exact text)."""
    columns = ", ".join(quote(name) for name in spec.column_names)
    values = ", ".join(f"CAST({quote(name)} AS {kind})" for name, kind in spec.columns)
    since = f"CAST({literal(valid_from.isoformat())} AS TIMESTAMPTZ)"
    return [
        f"""INSERT INTO history.{quote(spec.name)} ({columns}, _valid_from, _valid_to, _op, _lsn)
            SELECT {values}, {since}, NULL, 'snapshot', {int(lsn)} FROM {BATCH_NAME}""",
        f"""INSERT INTO current.{quote(spec.name)} ({columns})
            SELECT {values} FROM {BATCH_NAME}""",
    ]


def load_snapshot(warehouse: Warehouse, specs: list[TableSpec],
                  batches: Iterable[CopiedBatch], valid_from: datetime, lsn: int,
                  progress: Callable[[int], None] = lambda rows: None) -> int:
    """Load the copy inside the caller's transaction; returns the rows loaded."""
    known = warehouse.tables()
    statements = {}
    for spec in specs:
        spec = warehouse.ensure_table(spec, known)
        statements[spec.name] = snapshot_sql(spec, valid_from, lsn)
    threads = warehouse.db.execute("SELECT current_setting('threads')").fetchone()[0]
    # Appends on several threads leave a partial row group per thread and statement, which
    # the commit compresses again (twice the CPU); the copy's readers use the other cores.
    warehouse.db.execute("SET threads = 1")
    rows = 0
    try:
        for copied in batches:
            relation = warehouse.db.from_arrow(copied.batch)
            for statement in statements[copied.table]:
                relation.query(BATCH_NAME, statement)
            rows += copied.batch.num_rows
            progress(copied.batch.num_rows)
    finally:
        warehouse.db.execute(f"SET threads = {int(threads)}")
    return rows

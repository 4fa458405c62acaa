"""The DuckDB warehouse file: its schemas, the table layout, and the checkpoint.

Layout (a public interface: analysts open this file directly):
- `history.<table>` (a view): source columns + `_valid_from`, `_valid_to` (source commit times,
  UTC), `_op` ('snapshot' | 'insert' | 'update'), `_lsn` (commit LSN of the version);
- `current.<table>` (a view): the source columns, latest state;
- both read two tables, which only the pipeline writes: `open_versions.<table>` (each key's
  open version: the source columns + `_valid_from`, `_op` (NULL for a copied row, cheaper to
  write than a string: `history` reads it as 'snapshot'), `_lsn`) and
  `closed_versions.<table>` (every version that ended, with its `_valid_to`). A change moves a
  version from the first to the second: history is only ever appended to, so applying a batch
  never searches the (ever growing) closed versions, and the copy writes each row once;
- `_acme.checkpoint`: the last applied transaction's end LSN and commit time, written in the
  same DuckDB transaction as the data it covers, plus the snapshot the initial copy used;
- `_acme.tables`: each table's primary key;
- `_acme.source`: the source the warehouse was built from (see `ownership.py`), and in
  `_acme.checkpoint.confirmed_lsn` the furthest position ever confirmed to the slot.
- `_acme.row_counts`: rows per history/current table, kept by every apply (status reads
  these counters instead of counting);
- `_acme.history_begins`: the moment the first checkpoint (the initial copy) reflects: as-of
  questions before it have no answer;
- `_acme.report_state`: the classification the report state (`reports.*`) was built with;
- `_acme.sync_stopped`: why sync stopped at a change it cannot apply (see `stopped.py`).
"""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb

from acme.capture.visibility import SnapshotVisibility
from acme.errors import WarehouseError
from acme.warehouse.ownership import SourceIdentity
from acme.warehouse.stopped import STOPPED_DDL
from acme.warehouse.tables import TableSpec, column_list, literal, quote

OPEN, CLOSED = "open_versions", "closed_versions"
BOOTSTRAP = [
    *(f"CREATE SCHEMA IF NOT EXISTS {schema}"
      for schema in ("history", "current", OPEN, CLOSED)),
    "CREATE SCHEMA IF NOT EXISTS _acme",
    """CREATE TABLE IF NOT EXISTS _acme.checkpoint (
           singleton BOOLEAN PRIMARY KEY DEFAULT true,
           end_lsn UBIGINT NOT NULL,
           commit_time TIMESTAMPTZ,
           snapshot_xmin UBIGINT,
           snapshot_xmax UBIGINT,
           snapshot_xip UBIGINT[],
           updated_at TIMESTAMPTZ NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS _acme.tables (
           name VARCHAR PRIMARY KEY,
           key_columns VARCHAR[] NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS _acme.row_counts (
           layer VARCHAR NOT NULL,
           name VARCHAR NOT NULL,
           row_count BIGINT NOT NULL,
           PRIMARY KEY (layer, name))""",
    """CREATE TABLE IF NOT EXISTS _acme.history_begins (began TIMESTAMPTZ NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS _acme.report_state (
           classification VARCHAR NOT NULL,
           built_at TIMESTAMPTZ NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS _acme.source (
           singleton BOOLEAN PRIMARY KEY DEFAULT true,
           system_identifier VARCHAR NOT NULL,
           database VARCHAR NOT NULL,
           slot VARCHAR NOT NULL,
           publication VARCHAR NOT NULL,
           recorded_at TIMESTAMPTZ NOT NULL)""",
    # Idle confirms move the slot past the last applied commit: each is recorded first.
    "ALTER TABLE _acme.checkpoint ADD COLUMN IF NOT EXISTS confirmed_lsn UBIGINT",
    STOPPED_DDL,
]
MEMORY_LIMIT = "500MB"
CHECKPOINT_WAL = "64MB"
# How DuckDB words a file it cannot write: the disk is full or the file is read-only. These
# pass when the operator fixes the disk; anything else is a bug and must not be retried.
STORAGE_FAILURES = ("no space left", "read-only file system", "operation not permitted",
                    "permission denied", "could not write file", "cannot open file",
                    "disk quota exceeded", "has been invalidated")
SNAPSHOT_OP = "'snapshot'"  # a copied row's `_op` in history (stored as NULL)
OPEN_BOOKKEEPING = (("_valid_from", "TIMESTAMPTZ"), ("_op", "VARCHAR"), ("_lsn", "UBIGINT"))
BOOKKEEPING = (("_valid_from", "TIMESTAMPTZ"), ("_valid_to", "TIMESTAMPTZ"),
               ("_op", "VARCHAR"), ("_lsn", "UBIGINT"))


def furthest_position(end_lsn: int, confirmed_lsn: int | None) -> int | None:
    """Of a checkpoint row: the furthest position applied or confirmed to the slot; None when
    no position was recorded (a warehouse from before positions were)."""
    return None if confirmed_lsn is None else max(end_lsn, confirmed_lsn)


@dataclass(frozen=True)
class Checkpoint:
    end_lsn: int
    commit_time: datetime | None
    visibility: SnapshotVisibility | None


# A writer's row groups hold this many rows (DuckDB's default 122,880). A batch reads every row
# group whose key range holds one of its keys, so smaller ones make its lookups read less:
# replayed batches of 1,000 tx/s at 1.2M orders took about 100 ms instead of 127 (with the
# report state's MERGE, some 7% of it), and 28% less CPU. At 10M orders, with 2,206 row
# groups to check a scan instead of 276, a batch cost the same. The first sync's copy and
# whole-table scans cost the same. DuckDB takes the size only when a file is attached, so a
# writer opens an in-memory database and attaches the file as WAREHOUSE.
ROW_GROUP_ROWS = 16_384
WAREHOUSE = "warehouse"


def warehouse_cursor(db: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """A connection of its own to the database of `db` (for another thread, or a transaction
    of its own), reading the warehouse: a new DuckDB connection starts at the database opened
    first, which for a writer is the in-memory one it attached the file to."""
    new = db.cursor()
    try:
        new.execute(f"USE {WAREHOUSE}")
    except duckdb.CatalogException:
        pass  # a reader's connection: the file is the database it opened
    return new


class Warehouse:
    """One open DuckDB file, owned by this process for writing."""

    def __init__(self, connection: duckdb.DuckDBPyConnection, path: Path):
        self.db = connection
        self.path = path
        self.invalidated = False  # DuckDB refuses this connection after a failed write

    @classmethod
    def open(cls, path: Path, read_only: bool = False) -> "Warehouse":
        if read_only and not path.exists():
            raise WarehouseError(f"no warehouse at {path}; run `acme sync` first")
        try:
            if read_only:
                connection = duckdb.connect(str(path), read_only=True)
            else:
                connection = duckdb.connect()
                connection.execute(f"ATTACH {literal(str(path))} AS {WAREHOUSE} "
                                   f"(ROW_GROUP_SIZE {ROW_GROUP_ROWS})")
                connection.execute(f"USE {WAREHOUSE}")
        except duckdb.IOException as error:
            if "lock" in str(error).lower():
                raise WarehouseError(
                    f"the warehouse {path} is in use by another process; stop it or use "
                    "another --warehouse") from None
            raise WarehouseError(f"cannot open the warehouse {path}: {error}") from None
        connection.execute("SET TimeZone = 'UTC'")
        # DuckDB would otherwise cache up to 80% of RAM; beyond this it spills to disk, which
        # keeps the process's memory bounded whatever the table sizes.
        connection.execute(f"SET memory_limit = '{MEMORY_LIMIT}'")
        # Nothing here relies on the order rows are stored in, and keeping it makes large
        # INSERT ... SELECT and CREATE TABLE AS buffer their input in memory.
        connection.execute("SET preserve_insertion_order = false")
        # A join whose build side holds at most this many distinct keys also filters its scan
        # by them, so a batch looking up a few hundred keys skips the row groups whose key
        # range holds none (default 50: 60 keys in 34M key-ordered rows took 145 ms, 40 with
        # this; at 400 random keys nearly every row group holds one, and it costs no more).
        connection.execute("SET dynamic_or_filter_threshold = 256")
        # DuckDB checkpoints within the commit that takes its WAL past this size, and that batch
        # waits. At 1M orders and 1,000 transactions/s the wait grows far slower than the WAL:
        # 4 MB, about 95 ms every 2 s; DuckDB's default 16 MB, 150 ms every 40 s; 64 MB, 120-240 ms
        # every 150 s. A restart replays at most about a second of WAL.
        connection.execute(f"SET checkpoint_threshold = '{CHECKPOINT_WAL}'")
        warehouse = cls(connection, path)
        if not read_only:
            for statement in BOOTSTRAP:
                connection.execute(statement)
            with warehouse.transaction():
                _ensure_layout(connection)
        return warehouse

    def close(self) -> None:
        self.db.close()

    def reopen(self) -> None:
        """A new connection to the same file (after DuckDB invalidated this one)."""
        try:
            self.db.close()
        except duckdb.Error:
            pass
        self.db = Warehouse.open(self.path).db

    @contextmanager
    def transaction(self) -> Iterator[None]:
        self.db.execute("BEGIN TRANSACTION")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def checkpoint(self) -> Checkpoint | None:
        row = self.db.execute(
            "SELECT end_lsn, commit_time, snapshot_xmin, snapshot_xmax, snapshot_xip "
            "FROM _acme.checkpoint").fetchone()
        if row is None:
            return None
        end_lsn, commit_time, xmin, xmax, xip = row
        visibility = None if xmin is None else SnapshotVisibility(xmin, xmax, frozenset(xip))
        return Checkpoint(end_lsn, commit_time, visibility)

    def write_checkpoint(self, checkpoint: Checkpoint) -> None:
        # After the first, only the scalar columns change (the copy's snapshot stays): an
        # in-place UPDATE. Rewriting the list column would make DuckDB delete and re-insert
        # the row, and it cannot always revert that key-index change when a commit fails on
        # a full disk (it aborts the process).
        updated = self.db.execute(
            "UPDATE _acme.checkpoint SET end_lsn = $1, commit_time = $2, updated_at = now()",
            [checkpoint.end_lsn, checkpoint.commit_time]).fetchone()[0]
        if updated:
            return
        visibility = checkpoint.visibility
        self.db.execute(
            """INSERT INTO _acme.checkpoint (singleton, end_lsn, commit_time, snapshot_xmin,
                                             snapshot_xmax, snapshot_xip, updated_at)
               VALUES (true, $1, $2, $3, $4, $5, now())""",
            [checkpoint.end_lsn, checkpoint.commit_time,
             visibility.xmin if visibility else None, visibility.xmax if visibility else None,
             sorted(visibility.in_progress) if visibility else None])
        if checkpoint.commit_time is not None:
            self.db.execute("INSERT INTO _acme.history_begins SELECT $1 WHERE NOT EXISTS "
                            "(SELECT 1 FROM _acme.history_begins)", [checkpoint.commit_time])

    def confirmed_position(self) -> int | None:
        """The furthest position applied or confirmed to the slot; None when unknown (no
        checkpoint, or a warehouse from before positions were recorded)."""
        row = self.db.execute("SELECT end_lsn, confirmed_lsn FROM _acme.checkpoint").fetchone()
        return None if row is None else furthest_position(*row)

    def record_confirmed(self, lsn: int) -> None:
        """Record, before confirming it, a position about to be confirmed to the slot."""
        self.db.execute("UPDATE _acme.checkpoint SET confirmed_lsn = "
                        "greatest(coalesce(confirmed_lsn, 0), $1)", [lsn])

    def source(self) -> SourceIdentity | None:
        row = self.db.execute("SELECT system_identifier, database, slot, publication "
                              "FROM _acme.source").fetchone()
        return None if row is None else SourceIdentity(*row)

    def record_source(self, identity: SourceIdentity) -> None:
        self.db.execute("INSERT OR REPLACE INTO _acme.source VALUES (true, $1, $2, $3, $4, now())",
                        [identity.system_identifier, identity.database, identity.slot,
                         identity.publication])

    def tables(self) -> dict[str, TableSpec]:
        keys = dict(self.db.execute("SELECT name, key_columns FROM _acme.tables").fetchall())
        return {name: read_spec(self.db, name, tuple(key)) for name, key in keys.items()}

    def drop_tables(self) -> None:
        """Forget every table: what an interrupted first snapshot left (no checkpoint yet)."""
        for name in self.tables():
            for schema in ("history", "current"):
                self.db.execute(f"DROP VIEW IF EXISTS {schema}.{quote(name)}")
            for schema in (OPEN, CLOSED):
                self.db.execute(f"DROP TABLE IF EXISTS {schema}.{quote(name)}")
        self.db.execute("DELETE FROM _acme.tables")

    def ensure_table(self, wanted: TableSpec, known: dict[str, TableSpec]) -> TableSpec:
        """Create the table's versions and views, or add the columns it gained."""
        existing = known.get(wanted.name)
        if existing is None:
            self._create(wanted)
            merged = wanted
        else:
            merged = existing.merged_with(wanted)
            added = merged.columns[len(existing.columns):]
            for name, kind in added:
                for schema in (OPEN, CLOSED):
                    self.db.execute(f"ALTER TABLE {schema}.{quote(wanted.name)} "
                                    f"ADD COLUMN {quote(name)} {kind}")
            if added:
                create_views(self.db, merged)
        known[wanted.name] = merged
        return merged

    def _create(self, spec: TableSpec) -> None:
        source = ", ".join(f"{quote(name)} {kind}" for name, kind in spec.columns)
        for schema, bookkeeping in ((OPEN, OPEN_BOOKKEEPING), (CLOSED, BOOKKEEPING)):
            listed = ", ".join(f"{name} {kind}" for name, kind in bookkeeping)
            self.db.execute(f"CREATE TABLE {schema}.{quote(spec.name)} ({source}, {listed})")
        create_views(self.db, spec)
        self.db.execute("INSERT OR REPLACE INTO _acme.tables VALUES ($1, $2)",
                        [spec.name, list(spec.key)])
        for layer in ("history", "current"):
            self.db.execute("INSERT OR REPLACE INTO _acme.row_counts VALUES ($1, $2, 0)",
                            [layer, spec.name])

    def add_rows(self, moves: dict[tuple[str, str], int]) -> None:
        """Move row counters: (layer, table) -> rows added (negative for rows removed)."""
        moves = {key: rows for key, rows in moves.items() if rows}
        if moves:
            self.db.execute(
                """UPDATE _acme.row_counts AS c SET row_count = c.row_count + m.delta
                   FROM (SELECT unnest($1) AS layer, unnest($2) AS name,
                                unnest($3) AS delta) AS m
                   WHERE c.layer = m.layer AND c.name = m.name""",
                [[layer for layer, _ in moves], [name for _, name in moves],
                 list(moves.values())])

    def recount(self, name: str) -> None:
        """Set the table's counters from a count (after a bulk load)."""
        for layer in ("history", "current"):
            rows = self.db.execute(f"SELECT count(*) FROM {layer}.{quote(name)}").fetchone()[0]
            self.db.execute("INSERT OR REPLACE INTO _acme.row_counts VALUES ($1, $2, $3)",
                            [layer, name, rows])


def read_spec(db: duckdb.DuckDBPyConnection, name: str, key: tuple[str, ...]) -> TableSpec:
    """The table's source columns, as its open versions hold them."""
    bookkeeping = [column for column, _ in OPEN_BOOKKEEPING]
    columns = db.execute(
        """SELECT column_name, data_type FROM information_schema.columns
           WHERE table_schema = $1 AND table_name = $2 AND NOT list_contains($3, column_name)
           ORDER BY ordinal_position""", [OPEN, name, bookkeeping]).fetchall()
    return TableSpec(name, tuple(columns), key)


def create_views(db: duckdb.DuckDBPyConnection, spec: TableSpec) -> None:
    """(Re)create `history.<table>` and `current.<table>` over the versions: after any change
    of the columns, as DuckDB refuses a view whose columns changed under it."""
    name, columns = quote(spec.name), column_list(spec)
    op = f"coalesce(_op, {SNAPSHOT_OP}) AS _op"
    db.execute(f"""CREATE OR REPLACE VIEW history.{name} AS
                   SELECT {columns}, _valid_from, _valid_to, {op}, _lsn FROM {CLOSED}.{name}
                   UNION ALL
                   SELECT {columns}, _valid_from, NULL::TIMESTAMPTZ, {op}, _lsn
                   FROM {OPEN}.{name}""")
    db.execute(f"CREATE OR REPLACE VIEW current.{name} AS SELECT {columns} FROM {OPEN}.{name}")


def refresh_views(db: duckdb.DuckDBPyConnection, name: str) -> None:
    """`create_views` for a table whose columns changed by DDL."""
    key = db.execute("SELECT key_columns FROM _acme.tables WHERE name = $1", [name]).fetchone()[0]
    create_views(db, read_spec(db, name, tuple(key)))


def _ensure_layout(db: duckdb.DuckDBPyConnection) -> None:
    """Give a warehouse from before the versions were split (`history` and `current` were
    tables) the split layout, and refresh every table's views: an operator may have widened a
    column (see `UnstorableValue`), which leaves the views refused until they are rebuilt."""
    for (name,) in db.execute("SELECT table_name FROM duckdb_tables() "
                              "WHERE schema_name = 'history'").fetchall():
        quoted = quote(name)
        db.execute(f"CREATE TABLE {CLOSED}.{quoted} AS "
                   f"SELECT * FROM history.{quoted} WHERE _valid_to IS NOT NULL")
        db.execute(f"CREATE TABLE {OPEN}.{quoted} AS SELECT * EXCLUDE (_valid_to) "
                   f"FROM history.{quoted} WHERE _valid_to IS NULL")
        db.execute(f"DROP TABLE history.{quoted}")
        db.execute(f"DROP TABLE IF EXISTS current.{quoted}")
    tables = db.execute(f"""SELECT t.name FROM _acme.tables AS t JOIN duckdb_tables() AS d
                            ON d.schema_name = '{OPEN}' AND d.table_name = t.name""").fetchall()
    for (name,) in tables:
        refresh_views(db, name)


def storage_failure(error: Exception) -> str | None:
    """The one-line reason when `error` says the warehouse file cannot be written (disk full,
    read-only), else None."""
    text = str(error).strip()
    if not isinstance(error, duckdb.Error | WarehouseError) or \
            not any(marker in text.lower() for marker in STORAGE_FAILURES):
        return None
    return text.splitlines()[0].removeprefix("TransactionContext Error: ")

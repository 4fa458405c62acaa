"""Tables changing under the stream: their DDL, and tables joining or leaving the publication.

Runs on the apply thread, inside the open batch, at a point between two transactions: what
earlier transactions staged is merged first (`BatchApplier.between_transactions`).

- A Relation message (sent after a table's DDL) is checked against the source catalog and
  the warehouse table follows: renames, wider types, added columns' values (`evolve.py`).
- A table that joins the publication (`ALTER PUBLICATION ... ADD TABLE`) is copied in a
  snapshot of its own, like the initial copy with an existing slot: its rows as of the
  snapshot become versions valid from the snapshot's time, and the stream's transactions
  that snapshot already saw (`TableCopy.holds`) are skipped for that table only. A table
  that re-joins is compared with what the warehouse holds: changed rows get a new version.
- A table that leaves is no longer sent by the server: its history and current stay as they
  were, and it is recorded in `_acme.tables_left` so a later re-join copies it again.
"""

from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime

from acme.capture.catalog import published_tables
from acme.capture.columns import CatalogColumn, catalog_columns, column_values
from acme.capture.copy_process import ParallelCopy
from acme.capture.pgoutput import Relation
from acme.capture.snapshot import begin_snapshot, plan_parts
from acme.capture.visibility import SnapshotVisibility
from acme.errors import SourceMisconfigured
from acme.source.connect import connect
from acme.sync_options import SyncOptions
from acme.warehouse.apply import BatchApplier
from acme.warehouse.evolve import SchemaEvolution, plan
from acme.warehouse.load import BATCH_NAME
from acme.warehouse.merge import close_open_sql
from acme.warehouse.model import ensure_model
from acme.warehouse.report_state import NEEDED as REPORT_TABLES
from acme.warehouse.store import OPEN, Warehouse
from acme.warehouse.tables import (
    TableSpec,
    copied_as_text,
    copied_values_sql,
    literal,
    quote,
    warehouse_name,
)

BOOKKEEPING = (
    """CREATE TABLE IF NOT EXISTS _acme.table_copies (
           table_name VARCHAR PRIMARY KEY,
           snapshot_xmin UBIGINT NOT NULL,
           snapshot_xmax UBIGINT NOT NULL,
           snapshot_xip UBIGINT[] NOT NULL,
           wal_lsn UBIGINT NOT NULL,
           copied_at TIMESTAMPTZ NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS _acme.tables_left (
           table_name VARCHAR PRIMARY KEY,
           noticed_at TIMESTAMPTZ NOT NULL)""",
)


@dataclass(frozen=True)
class TableCopy:
    """A table copied after the stream started, and what its snapshot saw."""

    table: str
    visibility: SnapshotVisibility
    wal_lsn: int  # the source's WAL position once the snapshot was taken

    def holds(self, xid: int, commit_lsn: int) -> bool:
        """Whether the copy already holds this transaction's changes to the table: it
        committed before the snapshot (no commit at or after `wal_lsn` can have)."""
        return commit_lsn < self.wal_lsn and self.visibility.saw(xid)


class TableChanges:
    """Owned by the apply thread, like the applier it works through."""

    def __init__(self, options: SyncOptions, warehouse: Warehouse, applier: BatchApplier):
        self.options = options
        self.warehouse = warehouse
        self.applier = applier
        self.db = warehouse.db
        for statement in BOOKKEEPING:
            self.db.execute(statement)
        self.evolution = SchemaEvolution(self.db)

    def pending_copies(self, applied_lsn: int) -> dict[str, TableCopy]:
        """Copies whose snapshot the stream has not passed yet."""
        return {name: TableCopy(name, SnapshotVisibility(xmin, xmax, frozenset(xip)), lsn)
                for name, xmin, xmax, xip, lsn in self.db.execute(
                    "SELECT table_name, snapshot_xmin, snapshot_xmax, snapshot_xip, wal_lsn "
                    "FROM _acme.table_copies WHERE wal_lsn > $1", [applied_lsn]).fetchall()}

    def described(self, relation: Relation, lsn: int) -> TableCopy | None:
        """The stream described a table (transaction `lsn` is about to change it)."""
        name = warehouse_name(relation.namespace, relation.name)
        if name not in self.applier.tables:
            return self.applier.between_transactions(
                lsn, lambda: self._copy(relation.namespace, relation.name))
        with self._source() as conn:
            catalog = catalog_columns(conn, relation.namespace, relation.name)
        if not catalog:
            return None  # dropped since: nothing more will come
        spec = self.applier.tables[name]
        steps = plan(self.evolution.known(name), dict(spec.columns), catalog)
        if steps.changes_layout or steps.refills or steps.constants or \
                steps.record != self.evolution.known(name):
            self.applier.between_transactions(
                lsn, lambda: self._evolve(relation.namespace, relation.name, spec, catalog))
        return None

    def check_publication(self, connect_timeout: float | None = None) -> list[TableCopy]:
        """Copy the tables that joined (or re-joined) the publication; note those that left.
        Call between batches; the caller commits the batch this opens."""
        options = {} if connect_timeout is None else {"connect_timeout": connect_timeout}
        with self._source(**options) as conn:
            published = {t.spec.name: (t.schema, t.name) for t in
                         published_tables(conn, self.options.publication)}
        left = {name for (name,) in self.db.execute(
            "SELECT table_name FROM _acme.tables_left").fetchall()}
        joined = [name for name in published if name not in self.applier.tables or name in left]
        leaving = set(self.applier.tables) - set(published) - left
        if not joined and not leaving:
            return []
        copies = []
        for name in joined:
            copy = self.applier.between_transactions(
                0, lambda name=name: self._copy(*published[name]))
            if copy is not None:
                copies.append(copy)
        self.applier.between_transactions(0, lambda: self._note_left(leaving))
        return copies

    def _note_left(self, names: set[str]) -> None:
        for name in names:
            self.db.execute("INSERT OR REPLACE INTO _acme.tables_left VALUES ($1, now())",
                            [name])

    def _evolve(self, schema: str, source_name: str, spec: TableSpec,
                catalog: list[CatalogColumn]) -> None:
        known = {column.attnum for column in self.evolution.known(spec.name)}

        def read(column: CatalogColumn) -> Iterator[list[tuple]]:
            # An added column: every row's value (one changed since the ALTER almost always
            # kept it). A retyped one: only rows the rewrite wrote (others come streamed, and
            # their open version's value was the old one, cast).
            written_by = column.catalog_xid if column.attnum in known else None
            with self._source(autocommit=False) as conn:
                yield from column_values(conn, schema, source_name, spec.key, column.name,
                                         written_by)

        steps = self.evolution.apply(spec.name, spec.key, dict(spec.columns), catalog, read)
        if steps.renames:
            ensure_model(self.warehouse, self.options.classification)

    def _copy(self, schema: str, source_name: str) -> TableCopy | None:
        name = warehouse_name(schema, source_name)
        with self._source() as conn:
            point = begin_snapshot(conn, None)
            found = [t for t in published_tables(conn, self.options.publication)
                     if t.schema == schema and t.name == source_name]
            if not found:
                conn.execute("COMMIT")
                return None  # left again meanwhile
            table = found[0]
            if not conn.execute("SELECT has_table_privilege(%s, 'SELECT')",
                                (table.qualified,)).fetchone()[0]:
                user = conn.execute("SELECT current_user").fetchone()[0]
                raise SourceMisconfigured(
                    f"{table.qualified} joined publication {self.options.publication} but "
                    f"{user} cannot read it to copy its rows; run GRANT SELECT ON "
                    f"{table.qualified} TO {user}, then start acme sync again")
            catalog = catalog_columns(conn, schema, source_name)
            if name in self.applier.tables:  # a re-join: renames etc. first, values below
                self.evolution.apply(name, table.spec.key, dict(self.applier.tables[name].columns),
                                     catalog, lambda column: ())
                self.applier.tables = self.warehouse.tables()
            spec = self.warehouse.ensure_table(table.spec, self.applier.tables)
            kinds = dict(spec.columns)
            columns = table.spec.column_names
            self.db.execute("CREATE OR REPLACE TEMP TABLE joined ("
                            + ", ".join(f"{quote(c)} {kinds[c]}" for c in columns) + ")")
            read = replace(table, spec=copied_as_text(table.spec, kinds))
            values = ", ".join(copied_values_sql(read.spec, kinds))
            with ParallelCopy(self.options.dsn, 1, self.options.application_name) as copy:
                copy.start(point.name, plan_parts(conn, [read]))
                for copied in copy:
                    snapshot_raw = copied.batch  # noqa: F841 -- found by name (load.py)
                    self.db.execute(f"INSERT INTO joined SELECT {values} FROM {BATCH_NAME}")
            conn.execute("COMMIT")
        self._merge_copy(spec, columns, point.taken_at, point.wal_lsn)
        self.evolution.record_catalog(name, catalog)
        self.db.execute("DELETE FROM _acme.tables_left WHERE table_name = $1", [name])
        visibility = point.visibility
        self.db.execute("INSERT OR REPLACE INTO _acme.table_copies VALUES "
                        "($1, $2, $3, $4, $5, $6)",
                        [name, visibility.xmin, visibility.xmax, sorted(visibility.in_progress),
                         point.wal_lsn, point.taken_at])
        ensure_model(self.warehouse, self.options.classification)
        if name in REPORT_TABLES:
            if self.applier.state_active:
                self.applier.state.rebuild()
            else:
                self.applier.state_active = self.applier.state.ensure(set(self.applier.tables))
        return TableCopy(name, visibility, point.wal_lsn)

    def _merge_copy(self, spec: TableSpec, columns: tuple[str, ...], taken_at: datetime,
                    lsn: int) -> None:
        """The copied rows (`joined`) become the table's state from `taken_at`: a key whose
        row differs (or is gone) has its open version closed there, and a new version
        starts there for each row that is new or differs."""
        open_versions = f"{OPEN}.{quote(spec.name)}"
        same = " AND ".join(f"t.{quote(c)} IS NOT DISTINCT FROM j.{quote(c)}" for c in columns)
        listed = ", ".join(quote(c) for c in columns)
        since = f"CAST({literal(taken_at.isoformat())} AS TIMESTAMPTZ)"
        for statement in close_open_sql(spec, since,
                                        f"NOT EXISTS (SELECT 1 FROM joined AS j WHERE {same})"):
            self.db.execute(statement)
        self.db.execute(f"""
            INSERT INTO {open_versions} ({listed}, _valid_from, _op, _lsn)
            SELECT {listed}, {since}, 'snapshot', {int(lsn)} FROM joined AS j
            WHERE NOT EXISTS (SELECT 1 FROM {open_versions} AS t WHERE {same})""")
        self.db.execute("DROP TABLE joined")
        self.warehouse.recount(spec.name)

    def _source(self, autocommit: bool = True, **options):
        return connect(self.options.dsn, self.options.application_name, autocommit=autocommit,
                       **options)

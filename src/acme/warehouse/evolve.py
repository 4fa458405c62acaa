"""Source DDL carried into the warehouse exactly: renames, wider types, added columns' values.

The stream only shows a table's column names and types (a Relation message) after its DDL.
The source catalog's attribute numbers tell a RENAME (same attnum, new name) from a DROP plus
an ADD (a new attnum), so `_acme.columns` records, per warehouse column, the source attnum it
holds and the xmin of its catalog row (the transaction that last changed the column).

What a change does (`plan` decides, pure; `SchemaEvolution` applies, in the batch):
- RENAME: the column is renamed in history and current; past values stay under the new name;
  the model's views are rebuilt to read it under the name they expect (`model_names`).
- ALTER COLUMN TYPE: the warehouse column takes a type that holds both the old and the new
  values (`widened`), or exact text when none does.
- ADD COLUMN: rows older than the column read, in the source, the value the catalog keeps for
  them (a constant default), or the value the table rewrite wrote (a volatile default).
- Both rewrite cases are read back: the rows whose tuple the DDL transaction wrote (xmin) are
  untouched since, so their value then is their value now; the key's open version (and
  current) takes it. A row changed after the DDL arrives whole in the stream anyway.
- DROP COLUMN: nothing; the column keeps its past values and is NULL from then on.
"""

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import duckdb
import pyarrow as pa

from acme.capture.columns import CatalogColumn
from acme.warehouse.store import CLOSED, OPEN, read_spec, refresh_views
from acme.warehouse.tables import cast_sql, literal, quote

COLUMNS_TABLE = """CREATE TABLE IF NOT EXISTS _acme.columns (
    table_name VARCHAR NOT NULL,
    attnum INTEGER NOT NULL,
    name VARCHAR NOT NULL,
    first_name VARCHAR NOT NULL,
    catalog_xid UBIGINT NOT NULL)"""

_INTEGERS = {"SMALLINT": 5, "INTEGER": 10, "BIGINT": 19, "HUGEINT": 38}
_DECIMAL = re.compile(r"DECIMAL\((\d+),\s*(\d+)\)")
_WIDER = {("REAL", "DOUBLE"): "DOUBLE", ("DATE", "TIMESTAMP"): "TIMESTAMP",
          ("DATE", "TIMESTAMP WITH TIME ZONE"): "TIMESTAMP WITH TIME ZONE",
          ("TIMESTAMP", "TIMESTAMP WITH TIME ZONE"): "TIMESTAMP WITH TIME ZONE"}


def _digits(kind: str) -> tuple[int, int] | None:
    """(integer digits, scale) of an exact numeric type."""
    if kind in _INTEGERS:
        return _INTEGERS[kind], 0
    match = _DECIMAL.fullmatch(kind)
    if match:
        precision, scale = int(match[1]), int(match[2])
        return precision - scale, scale
    return None


# DuckDB's other names for a type: information_schema says FLOAT and TIMESTAMP WITH TIME
# ZONE where the mapping from PostgreSQL says REAL and TIMESTAMPTZ.
_ALIASES = {"FLOAT": "REAL", "FLOAT4": "REAL", "FLOAT8": "DOUBLE", "INT": "INTEGER",
            "INT4": "INTEGER", "INT8": "BIGINT", "INT2": "SMALLINT", "BOOL": "BOOLEAN",
            "TIMESTAMPTZ": "TIMESTAMP WITH TIME ZONE", "TIMETZ": "TIME WITH TIME ZONE",
            "TEXT": "VARCHAR", "STRING": "VARCHAR"}


def widened(old: str, new: str) -> str:
    """A DuckDB type holding every value of both types; VARCHAR (exact text) when none.
    `old` itself when both are the same type under two names."""
    if old == new or _ALIASES.get(old, old) == _ALIASES.get(new, new):
        return old
    old, new = _ALIASES.get(old, old), _ALIASES.get(new, new)
    for pair in ((old, new), (new, old)):
        if pair in _WIDER:
            return _WIDER[pair]
    a, b = _digits(old), _digits(new)
    if a and b:
        if a[1] == b[1] == 0:
            return max(old, new, key=lambda kind: _INTEGERS.get(kind, 0))
        whole, scale = max(a[0], b[0]), max(a[1], b[1])
        if whole + scale <= 38:
            return f"DECIMAL({whole + scale},{scale})"
    return "VARCHAR"


@dataclass(frozen=True)
class Known:
    attnum: int
    name: str
    first_name: str
    catalog_xid: int


@dataclass
class Plan:
    renames: list[tuple[str, str]] = field(default_factory=list)  # (old, new)
    retypes: list[tuple[str, str]] = field(default_factory=list)  # (column, warehouse type)
    adds: list[tuple[str, str]] = field(default_factory=list)  # (column, warehouse type)
    refills: list[CatalogColumn] = field(default_factory=list)  # values to read back
    constants: list[CatalogColumn] = field(default_factory=list)  # older rows' values
    record: list[Known] = field(default_factory=list)  # the columns as they are now

    @property
    def changes_layout(self) -> bool:
        return bool(self.renames or self.retypes or self.adds)


def plan(known: list[Known], warehouse: dict[str, str],
         catalog: list[CatalogColumn]) -> Plan:
    """What to do to the warehouse table (`warehouse`: column -> type) so it holds the
    source table the catalog describes, given what `known` recorded before."""
    result = Plan()
    by_attnum = {column.attnum: column for column in known}
    names = dict(warehouse)
    for column in catalog:
        before = by_attnum.get(column.attnum)
        first_name = before.first_name if before else column.name
        if before is None and column.name in names and not known:
            # First sight of a table recorded before attnums were (or of the initial copy):
            # the columns it has are these.
            before = Known(column.attnum, column.name, column.name, column.catalog_xid)
        if before is not None and before.name != column.name and before.name in names:
            target = column.name
            if target in names:  # the new name is taken by a dropped column: keep it apart
                result.renames.append((target, f"{target}_dropped_{column.attnum}"))
                names[f"{target}_dropped_{column.attnum}"] = names.pop(target)
            result.renames.append((before.name, target))
            names[target] = names.pop(before.name)
        if before is None:
            if column.name in names:  # a dropped column's name reused: one column again
                kind = widened(names[column.name], column.kind)
                if kind != names[column.name]:
                    result.retypes.append((column.name, kind))
                    names[column.name] = kind
            else:
                result.adds.append((column.name, column.kind))
                names[column.name] = column.kind
            if column.has_missing:
                result.constants.append(column)
            elif column.has_default:  # a volatile default: the ALTER rewrote every row
                result.refills.append(column)
        else:
            kind = widened(names[column.name], column.kind)
            if kind != names[column.name]:
                result.retypes.append((column.name, kind))
                names[column.name] = kind
            if column.catalog_xid != before.catalog_xid:
                result.refills.append(column)  # ALTER TYPE ... USING may rewrite values
        result.record.append(Known(column.attnum, column.name, first_name, column.catalog_xid))
    return result


Reader = Callable[[CatalogColumn], Iterable[list[tuple]]]


class SchemaEvolution:
    """Applies plans to one warehouse connection (inside the caller's transaction)."""

    def __init__(self, db: duckdb.DuckDBPyConnection):
        self.db = db
        db.execute(COLUMNS_TABLE)

    def known(self, table: str) -> list[Known]:
        return [Known(*row) for row in self.db.execute(
            "SELECT attnum, name, first_name, catalog_xid FROM _acme.columns "
            "WHERE table_name = $1 ORDER BY attnum", [table]).fetchall()]

    def record(self, table: str, columns: list[Known]) -> None:
        self.db.execute("DELETE FROM _acme.columns WHERE table_name = $1", [table])
        if columns:  # one statement: DuckDB's executemany runs one a row
            self.db.execute(
                "INSERT INTO _acme.columns SELECT $1, unnest($2), unnest($3), unnest($4), "
                "unnest($5)", [table, [c.attnum for c in columns], [c.name for c in columns],
                               [c.first_name for c in columns],
                               [c.catalog_xid for c in columns]])

    def record_catalog(self, table: str, catalog: list[CatalogColumn]) -> None:
        """The columns a fresh copy of the table holds."""
        self.record(table, [Known(c.attnum, c.name, c.name, c.catalog_xid) for c in catalog])

    def apply(self, table: str, key: tuple[str, ...], warehouse: dict[str, str],
              catalog: list[CatalogColumn], read: Reader) -> Plan:
        """Bring the warehouse table in line with the catalog; returns what was done."""
        steps = plan(self.known(table), warehouse, catalog)
        for schema in (OPEN, CLOSED):
            target = f"{schema}.{quote(table)}"
            for old, new in steps.renames:
                self.db.execute(f"ALTER TABLE {target} RENAME COLUMN {quote(old)} "
                                f"TO {quote(new)}")
            for name, kind in steps.retypes:
                self.db.execute(f"ALTER TABLE {target} ALTER COLUMN {quote(name)} "
                                f"TYPE {kind}")
            for name, kind in steps.adds:
                self.db.execute(f"ALTER TABLE {target} ADD COLUMN {quote(name)} {kind}")
        if steps.renames or steps.retypes or steps.adds:
            refresh_views(self.db, table)
        kinds = dict(warehouse) | dict(steps.adds) | dict(steps.retypes)
        for old, new in steps.renames:
            kinds.setdefault(new, kinds.get(old, "VARCHAR"))
        for column in steps.constants:
            value = "NULL" if column.missing is None else \
                cast_sql(literal(column.missing), kinds[column.name])
            self._fill_open(table, f"{quote(column.name)} = {value}", None)
        for column in steps.refills:
            self._refill(table, key, column, kinds[column.name], read(column))
        self.record(table, steps.record)
        return steps

    def _refill(self, table: str, key: tuple[str, ...], column: CatalogColumn, kind: str,
                batches: Iterable[list[tuple]]) -> None:
        names = [*key, column.name]
        self.db.execute(
            "CREATE OR REPLACE TEMP TABLE refill AS SELECT "
            + ", ".join(f"NULL::VARCHAR AS {quote(n)}" for n in names) + " LIMIT 0")
        for rows in batches:
            chunk = pa.table({n: pa.array([row[i] for row in rows], pa.string())
                              for i, n in enumerate(names)})
            self.db.from_arrow(chunk).insert_into("refill")
        kinds = dict(read_spec(self.db, table, key).columns)
        match = " AND ".join(f"t.{quote(k)} = {cast_sql(f'r.{quote(k)}', kinds[k])}" for k in key)
        value = cast_sql(f"r.{quote(column.name)}", kind)
        self._fill_open(table, f"{quote(column.name)} = {value}", f"FROM refill AS r WHERE {match}")
        self.db.execute("DROP TABLE refill")

    def _fill_open(self, table: str, assignment: str, source: str | None) -> None:
        """Set a column in each key's open version (what current shows)."""
        self.db.execute(f"UPDATE {OPEN}.{quote(table)} AS t SET {assignment} {source or ''}")


def model_names(db: duckdb.DuckDBPyConnection) -> dict[str, dict[str, str]]:
    """table -> {name the model expects (the column's first name): its name now}, for the
    renamed columns only."""
    db.execute(COLUMNS_TABLE)
    renamed: dict[str, dict[str, str]] = {}
    for table, first, name in db.execute(
            "SELECT table_name, first_name, name FROM _acme.columns "
            "WHERE first_name <> name").fetchall():
        renamed.setdefault(table, {})[first] = name
    return renamed

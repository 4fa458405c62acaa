"""How a source table looks in the warehouse: its name, columns with DuckDB types, and its key.

Each PostgreSQL type maps to a DuckDB type that holds its values exactly, or to VARCHAR holding
PostgreSQL's own text (exact, whatever the value):
- numeric(p,s) with p <= 38 -> DECIMAL(p,s); unconstrained numeric (and p > 38) -> VARCHAR,
  the exact text: every digit, and NaN/Infinity, kept (DuckDB's DECIMAL stops at 38 digits);
- int2/4/8, oid, bool, float4/8 (NaN and +-Infinity included), uuid -> their DuckDB types;
- date, timestamp, timestamptz, time -> DATE, TIMESTAMP, TIMESTAMPTZ, TIME: BC and +-infinity
  included (PostgreSQL's `... BC` is rewritten to DuckDB's `(BC)` form before the cast);
- everything else (text, varchar, interval, jsonb, bytea, arrays, ...) -> VARCHAR, as text.
Streamed values arrive as PostgreSQL text and copied values (`text_columns`) as their text too,
cast by the same `cast_sql`, so a value reads the same whichever path brought it; only values
both DuckDB and the copy's driver read exactly are copied as binary (integers, booleans,
floats, and dates and timestamps in range: `split_columns`). A value a
column still cannot hold (numeric(p,s)'s NaN; a timestamp past DuckDB's year 294247) is found
by `try_cast_sql` before anything is written, and stops sync with one line.

Tables are keyed by schema and name: `warehouse_name` gives ACME's `operations` tables their
own name and every other table `<schema>.<table>`, a name no other source table can get.
"""

from dataclasses import dataclass
from functools import cache

from acme.capture.pgoutput import Relation

UNCONSTRAINED_NUMERIC = "VARCHAR"
HOME_SCHEMA = "operations"  # ACME's schema: its tables keep their own names
_TYPES = {
    16: "BOOLEAN",
    20: "BIGINT",
    21: "SMALLINT",
    23: "INTEGER",
    26: "UBIGINT",
    700: "REAL",
    701: "DOUBLE",
    1082: "DATE",
    1083: "TIME",
    1114: "TIMESTAMP",
    1184: "TIMESTAMPTZ",
    2950: "UUID",
}
NUMERIC_OID = 1700


def duckdb_type(type_oid: int, type_modifier: int) -> str:
    if type_oid == NUMERIC_OID:
        if type_modifier < 4:
            return UNCONSTRAINED_NUMERIC
        precision = ((type_modifier - 4) >> 16) & 0xFFFF
        scale = (type_modifier - 4) & 0xFFFF
        return f"DECIMAL({precision},{scale})" if precision <= 38 else UNCONSTRAINED_NUMERIC
    return _TYPES.get(type_oid, "VARCHAR")


# Types whose copied (binary) values DuckDB reads exactly; any other column is copied as text.
BINARY_EXACT = frozenset({"BOOLEAN", "BIGINT", "SMALLINT", "INTEGER", "UBIGINT", "REAL",
                          "DOUBLE"})
_DATETIME = frozenset({"DATE", "TIMESTAMP", "TIMESTAMPTZ", "TIMESTAMP WITH TIME ZONE"})
# Dates and timestamps are copied as binary values (no text to print, nor to parse: a third of
# the source's COPY work, and most of the casts) wherever the driver and DuckDB read them
# exactly: any finite date, and a finite timestamp up to DuckDB's last one (where the driver's
# microseconds since 1970 end too). Infinities and later timestamps come as their text too, in
# a companion column: the driver 1.8 wraps them into wrong values without a word, which the
# companion's text overrides (a CASE around the binary value cost the source 5% more).
_LAST_TIMESTAMP = "294247-01-10 04:00:54.775806"
_ZONED_RANGE = f"isfinite({{0}}) AND {{0}} <= '{_LAST_TIMESTAMP}+00'::timestamptz"
_BINARY_RANGES = {
    "DATE": "isfinite({0})",
    "TIMESTAMP": f"isfinite({{0}}) AND {{0}} <= '{_LAST_TIMESTAMP}'::timestamp",
    "TIMESTAMPTZ": _ZONED_RANGE,
    "TIMESTAMP WITH TIME ZONE": _ZONED_RANGE,
}


def _from_postgres_text(text: str, kind: str) -> str:
    if kind.upper() in _DATETIME:  # '0044-03-15 10:00:00 BC' -> '0044-03-15 (BC) 10:00:00'
        return (f"CASE WHEN suffix({text}, ' BC') "
                f"THEN regexp_replace({text}, '^(\\S+)(.*) BC$', '\\1 (BC)\\2') "
                f"ELSE {text} END")
    return text


def cast_sql(text: str, kind: str) -> str:
    """SQL casting PostgreSQL's text of a value (`text`, an expression) to `kind`."""
    if kind.upper() == "VARCHAR":
        return text
    return f"CAST({_from_postgres_text(text, kind)} AS {kind})"


def try_cast_sql(text: str, kind: str) -> str:
    """Like `cast_sql`, but NULL where the value does not fit."""
    return f"TRY_CAST({_from_postgres_text(text, kind)} AS {kind})"


def text_columns(spec: "TableSpec") -> tuple[str, ...]:
    """The columns a copy reads as text (cast by `cast_sql`), not as binary values."""
    return tuple(name for name, kind in spec.columns
                 if kind.upper() not in BINARY_EXACT and _binary_range(kind) is None)


def _binary_range(kind: str) -> str | None:
    """For a date or timestamp type, the PostgreSQL condition (on `{}`) under which a copy
    reads its value as binary; None for any other type."""
    return _BINARY_RANGES.get(kind.upper())


def split_columns(spec: "TableSpec") -> dict[str, str]:
    """The dates and timestamps a copy reads as binary values, each with the name of its
    companion column: the value's text where it is out of range (`_BINARY_RANGES`), which
    then replaces the binary value, cast like a streamed value; NULL otherwise. The names
    never clash."""
    taken = set(spec.column_names)
    companions = {}
    for name, kind in spec.columns:
        if _binary_range(kind) is not None:
            companion = f"{name}:text"
            while companion in taken:
                companion += "_"
            taken.add(companion)
            companions[name] = companion
    return companions


def copy_select_list(spec: "TableSpec") -> str:
    """PostgreSQL's select list of a copy of the table: binary-exact columns as they are,
    dates and timestamps split in two (`split_columns`), the rest as their text."""
    as_text, split = set(text_columns(spec)), split_columns(spec)
    listed = []
    for name, kind in spec.columns:
        column = quote(name)
        if name in split:
            within = _binary_range(kind).format(column)
            listed += [column, f"CASE WHEN NOT ({within}) THEN {column}::text END "
                               f"AS {quote(split[name])}"]
        else:
            listed.append(f"{column}::text AS {column}" if name in as_text else column)
    return ", ".join(listed)


def copied_values_sql(spec: "TableSpec", kinds: dict[str, str] | None = None) -> list[str]:
    """DuckDB expressions of each column's value from a copied batch (`copy_select_list`),
    text cast to the column's type in `kinds` (by default its own)."""
    as_text, split = set(text_columns(spec)), split_columns(spec)
    kinds = kinds or dict(spec.columns)
    values = []
    for name, kind in spec.columns:
        column = quote(name)
        if name in split:
            companion = quote(split[name])
            values.append(f"CASE WHEN {companion} IS NULL THEN {column} "
                          f"ELSE {cast_sql(companion, kind)} END")
        else:
            values.append(cast_sql(column, kinds[name]) if name in as_text else column)
    return values


def copied_as_text(spec: "TableSpec", kinds: dict[str, str]) -> "TableSpec":
    """The table as a copy reads it into columns of other `kinds`: a date or timestamp whose
    column has another type there comes as its text, cast to that type."""
    split = split_columns(spec)
    return TableSpec(spec.name, tuple(
        (name, "VARCHAR" if name in split and _binary_range(kinds[name]) != _binary_range(kind)
         else kind) for name, kind in spec.columns), spec.key)


@cache  # asked for every streamed row
def warehouse_name(schema: str, table: str) -> str:
    """The warehouse's name for a source table: its own name in `operations`, else
    `<schema>.<table>` (a dot or backslash inside either part escaped with a backslash, and an
    `operations` table whose name holds one named the long way too), so two source tables can
    never share a name."""
    if schema == HOME_SCHEMA and not any(c in table for c in ".\\"):
        return table

    def escaped(part: str) -> str:
        return part.replace("\\", "\\\\").replace(".", "\\.")

    return f"{escaped(schema)}.{escaped(table)}"


def quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def column_list(spec: "TableSpec") -> str:
    """SQL: the table's source columns, comma separated."""
    return ", ".join(quote(name) for name in spec.column_names)


def key_match(spec: "TableSpec", left: str, right: str) -> str:
    """SQL: the key columns of `left` equal those of `right`."""
    return " AND ".join(f"{left}.{quote(k)} = {right}.{quote(k)}" for k in spec.key)


def key_list(spec: "TableSpec", alias: str = "") -> str:
    """SQL: the table's key columns, comma separated (each of `alias` when given)."""
    prefix = f"{alias}." if alias else ""
    return ", ".join(f"{prefix}{quote(k)}" for k in spec.key)


@dataclass(frozen=True)
class TableSpec:
    name: str
    columns: tuple[tuple[str, str], ...]  # (column name, DuckDB type)
    key: tuple[str, ...]

    @classmethod
    def from_relation(cls, relation: Relation) -> "TableSpec":
        return cls(
            warehouse_name(relation.namespace, relation.name),
            tuple((c.name, duckdb_type(c.type_oid, c.type_modifier)) for c in relation.columns),
            relation.key_columns,
        )

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.columns)

    def merged_with(self, newer: "TableSpec") -> "TableSpec":
        """This table's columns plus any the newer description adds (dropped ones are kept)."""
        known = set(self.column_names)
        added = tuple(column for column in newer.columns if column[0] not in known)
        return TableSpec(self.name, self.columns + added, self.key or newer.key)

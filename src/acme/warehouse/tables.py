"""How a source table looks in the warehouse: columns with DuckDB types, and its key.

PostgreSQL types map to exact DuckDB types: numeric stays DECIMAL (the declared precision and
scale, or DECIMAL(38,10) when unconstrained), timestamps keep microseconds, text stays text.
Streamed values arrive as PostgreSQL text and copied numerics as their text; DuckDB casts
both with the same rules, so a value reads the same whichever path brought it.
"""

from dataclasses import dataclass

from acme.capture.pgoutput import Relation

UNCONSTRAINED_NUMERIC = "DECIMAL(38,10)"
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


def quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


@dataclass(frozen=True)
class TableSpec:
    name: str
    columns: tuple[tuple[str, str], ...]  # (column name, DuckDB type)
    key: tuple[str, ...]

    @classmethod
    def from_relation(cls, relation: Relation) -> "TableSpec":
        return cls(
            relation.name,
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

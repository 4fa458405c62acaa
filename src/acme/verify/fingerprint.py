"""Row fingerprints that PostgreSQL and DuckDB compute identically: SQL generation, no I/O.

Every value is first written as one canonical text in both engines (decimals without trailing
zeros, rounded to the warehouse's scale; times as `YYYY-MM-DD HH:MM:SS.ffffff`, UTC for
timestamptz; booleans as t/f), each field is length-prefixed (NULL is `~`), and the row's
fingerprint is the first 60 bits of the MD5 of their concatenation. A table's checksum is the
sum of its rows' fingerprints: order-independent, and exact (no overflow in numeric/HUGEINT).
Rows are also spread over buckets by the fingerprint of their key, so a differing table is
narrowed to differing buckets, then to differing keys, without moving the whole table.
"""

import re
from dataclasses import dataclass
from enum import StrEnum

from acme.warehouse.tables import TableSpec, quote

BUCKETS = 1024
_DECIMAL = re.compile(r"(?:DECIMAL|NUMERIC)\s*\(\s*\d+\s*,\s*(\d+)\s*\)", re.IGNORECASE)


class Dialect(StrEnum):
    postgres = "postgres"
    duckdb = "duckdb"


@dataclass(frozen=True)
class Fingerprint:
    """The SQL that fingerprints one table in one engine."""

    spec: TableSpec  # the columns compared, with their warehouse (DuckDB) types
    relation: str  # the table as this engine names it, already quoted
    dialect: Dialect

    @property
    def key_text(self) -> str:
        keys = [canonical(quote(c), self._type(c), self.dialect) for c in self.spec.key]
        return " || ',' || ".join(keys)

    @property
    def row_hash(self) -> str:
        fields = [_field(canonical(quote(name), kind, self.dialect), self.dialect)
                  for name, kind in self.spec.columns]
        return _hash60(" || ',' || ".join(fields), self.dialect)

    def _rows(self) -> str:
        bucket = f"mod({_hash60(self.key_text, self.dialect)}, {BUCKETS})"
        return (f"SELECT {self.key_text} AS key_text, {bucket} AS bucket, "
                f"{self.row_hash} AS row_hash FROM {self.relation}")

    def bucket_sums(self) -> str:
        """bucket, rows, sum of fingerprints: per bucket (empty buckets absent)."""
        return (f"SELECT bucket, count(*), sum(row_hash) FROM ({self._rows()}) AS r "
                "GROUP BY bucket")

    def rows_in_buckets(self, buckets: list[int]) -> str:
        """key_text, row_hash of every row in these buckets (our own integers, inlined)."""
        listed = ", ".join(str(int(bucket)) for bucket in buckets)
        return f"SELECT key_text, row_hash FROM ({self._rows()}) AS r WHERE bucket IN ({listed})"

    def rows_with_keys(self) -> str:
        """key_text, row_hash of the rows whose key text is in the one list parameter."""
        test = "key_text = ANY(%s)" if self.dialect is Dialect.postgres \
            else "list_contains($1, key_text)"
        return (f"SELECT key_text, row_hash FROM (SELECT {self.key_text} AS key_text, "
                f"{self.row_hash} AS row_hash FROM {self.relation}) AS r WHERE {test}")

    def _type(self, column: str) -> str:
        return dict(self.spec.columns)[column]


def canonical(column: str, duckdb_type: str, dialect: Dialect) -> str:
    """SQL for the column's canonical text (NULL stays NULL)."""
    kind = duckdb_type.upper()
    postgres = dialect is Dialect.postgres
    decimal = _DECIMAL.fullmatch(kind)
    if decimal:
        if postgres:
            return f"trim_scale(round({column}, {decimal.group(1)}))::text"
        text = f"CAST({column} AS VARCHAR)"
        return (f"CASE WHEN contains({text}, '.') THEN rtrim(rtrim({text}, '0'), '.') "
                f"ELSE {text} END")
    if kind == "BOOLEAN":
        return f"CASE WHEN {column} THEN 't' WHEN NOT {column} THEN 'f' END"
    if kind == "DATE":
        return f"to_char({column}, 'YYYY-MM-DD')" if postgres \
            else f"strftime({column}, '%Y-%m-%d')"
    if kind in ("TIMESTAMP", "TIMESTAMP WITH TIME ZONE", "TIMESTAMPTZ"):
        value = column if kind == "TIMESTAMP" else f"({column} AT TIME ZONE 'UTC')"
        return f"to_char({value}, 'YYYY-MM-DD HH24:MI:SS.US')" if postgres \
            else f"strftime({value}, '%Y-%m-%d %H:%M:%S.%f')"
    # Integers and text read the same in both; anything else (floats, times, JSON) is each
    # engine's own text, which may differ in form.
    return f"{column}::text" if postgres else f"CAST({column} AS VARCHAR)"


def _field(text: str, dialect: Dialect) -> str:
    length = f"octet_length({text})::text" if dialect is Dialect.postgres \
        else f"CAST(strlen({text}) AS VARCHAR)"
    return f"coalesce({length} || ':' || {text}, '~')"


def _hash60(text: str, dialect: Dialect) -> str:
    digest = f"substr(md5({text}), 1, 15)"
    if dialect is Dialect.postgres:
        return f"('x' || {digest})::bit(60)::bigint"
    return f"CAST('0x' || {digest} AS BIGINT)"

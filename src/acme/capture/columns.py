"""A published table's columns as the source catalog describes them, with what the stream
cannot say: each column's attribute number (stable across a RENAME, never reused after a
DROP), the transaction that last changed its catalog row, and the value rows written before
an ADD COLUMN read (PostgreSQL 11+ keeps a constant default there instead of rewriting).
"""

from dataclasses import dataclass

import psycopg

from acme.warehouse.tables import duckdb_type


@dataclass(frozen=True)
class CatalogColumn:
    attnum: int
    name: str
    kind: str  # DuckDB type
    catalog_xid: int  # xmin of its pg_attribute row: the last DDL that touched the column
    missing: str | None  # the value of rows older than the column (atthasmissing), as text
    has_missing: bool
    has_default: bool = False  # a default, identity or generated value: rows may hold one


def catalog_columns(conn: psycopg.Connection, schema: str, table: str) -> list[CatalogColumn]:
    """The table's live columns in attribute order (empty when the table is gone)."""
    rows = conn.execute(
        """SELECT a.attnum, a.attname, a.atttypid, a.atttypmod, a.xmin::text::bigint,
                  a.atthasmissing, (a.attmissingval::text::text[])[1],
                  a.atthasdef OR a.attidentity <> '' OR a.attgenerated <> ''
           FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
           JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = %s AND c.relname = %s AND a.attnum > 0 AND NOT a.attisdropped
           ORDER BY a.attnum""", (schema, table)).fetchall()
    return [CatalogColumn(attnum, name, duckdb_type(type_oid, modifier), xid,
                          missing if has_missing else None, has_missing, has_default)
            for attnum, name, type_oid, modifier, xid, has_missing, missing, has_default
            in rows]


def column_values(conn: psycopg.Connection, schema: str, table: str, key: tuple[str, ...],
                  column: str, written_by: int | None, batch_rows: int = 50_000):
    """(key values..., column value) as text, in batches, for every row or only for those
    whose live tuple the transaction `written_by` wrote (an ALTER TABLE rewrite writes
    every row: a row with another xmin changed since)."""
    listed = ", ".join(_quote(name) + "::text" for name in (*key, column))
    where = "" if written_by is None else " WHERE xmin = %s::text::xid"
    params = () if written_by is None else (str(written_by % (1 << 32)),)
    with conn.cursor(name="acme_column_values") as cursor:
        cursor.itersize = batch_rows
        cursor.execute(f"SELECT {listed} FROM {_quote(schema)}.{_quote(table)}{where}", params)
        while rows := cursor.fetchmany(batch_rows):
            yield rows


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'

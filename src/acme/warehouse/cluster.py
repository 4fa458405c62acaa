"""Open versions kept in key order, so that a batch's lookups of a few keys read few row groups.

A lookup among the open versions reads every row group whose key range (DuckDB's zone map)
holds one of its keys. The first sync writes row groups of rows that were neighbours in the
source's heap, which is in key order where the table grew by its key. But a heap whose rows
were moved (an update writes the new row wherever there is free space) puts a few far keys
into most row groups, and then nearly every lookup reads nearly the whole table: at 10M orders,
each item key's lookup read about 210 of the 281 row groups, and a batch's read of the items
of touched orders took 222 ms instead of 17. Streaming drifts the same way, more slowly: each
batch appends the versions of the keys it touched, scattered over the key range.

So a table whose lookups read more than SCATTERED_GROUPS row groups a key is rewritten in key
order: once copied, and when a batch finds it so (`apply.ORDER_CHECK_SECONDS`). At 10M orders
the look takes 0.3 s, a rewrite of the 34M items about 9 s.
"""

from collections.abc import Callable, Iterable

import duckdb

from acme.warehouse.store import OPEN, ROW_GROUP_ROWS
from acme.warehouse.tables import TableSpec, key_list, quote

# About a million rows read a key (8 of DuckDB's default row groups): a lookup reads so many
# only once a stream has appended that many versions, and a rewrite of 34M items takes 9 s.
SCATTERED_GROUPS = 60
SAMPLED_KEYS = 1_000
# No table of the source is named so: a warehouse name holds a backslash only before a dot
# or another backslash (`tables.warehouse_name`).
ORDERING = "\\ordering"


def _key(spec: TableSpec) -> str:
    """The key as one comparable value (a composite key as a row)."""
    return key_list(spec) if len(spec.key) == 1 else f"row({key_list(spec)})"


def groups_read_per_key(db: duckdb.DuckDBPyConnection, spec: TableSpec) -> float:
    """How many row groups a lookup of one of the table's keys reads: the mean, over a sample
    of its keys, of the row groups whose key range holds it (1 in key order; their count when
    every row group spans the keys). Two scans of the key column."""
    table, key = f"{OPEN}.{quote(spec.name)}", _key(spec)
    row = db.execute(f"""
        WITH groups AS (SELECT rowid // {ROW_GROUP_ROWS} AS g, min({key}) AS lo, max({key}) AS hi
                        FROM {table} GROUP BY g),
             keys AS (SELECT {key} AS k FROM {table}
                      USING SAMPLE reservoir({SAMPLED_KEYS} ROWS) REPEATABLE (1))
        SELECT count(*) / nullif((SELECT count(*) FROM keys), 0)
        FROM keys JOIN groups ON keys.k >= groups.lo AND keys.k <= groups.hi""").fetchone()
    return row[0] or 0.0


def order_by_key(db: duckdb.DuckDBPyConnection, spec: TableSpec) -> None:
    """Rewrite the table's open versions in key order (inside the caller's transaction)."""
    table, ordering = f"{OPEN}.{quote(spec.name)}", f"{OPEN}.{quote(ORDERING)}"
    db.execute(f"CREATE TABLE {ordering} AS SELECT * FROM {table} ORDER BY {key_list(spec)}")
    db.execute(f"DROP TABLE {table}")
    db.execute(f"ALTER TABLE {ordering} RENAME TO {quote(spec.name)}")


def order_scattered(db: duckdb.DuckDBPyConnection, specs: Iterable[TableSpec],
                    ordering: Callable[[str, float], None]) -> None:
    """Rewrite in key order each table whose lookups read more than SCATTERED_GROUPS row groups
    a key, telling `ordering` the table and that count first."""
    for spec in specs:
        groups = groups_read_per_key(db, spec)
        if groups > SCATTERED_GROUPS:
            ordering(spec.name, groups)
            order_by_key(db, spec)

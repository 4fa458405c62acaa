"""What the lake lacks, read from the DuckDB warehouse as SQL over its history. No Iceberg here.

In DuckDB a version ends when its successor arrives (it moves from the open versions to the
closed ones, gaining its `_valid_to`; a DELETE or a TRUNCATE only ends the last version); the
lake is append-only. Given the checkpoint LSN a lake table last recorded:
- new versions are the history rows with `_lsn >= that LSN` (every transaction of a later batch
  commits at or after the checkpoint's end LSN; every earlier one before it), except the
  initial copy's rows, which only the table's first lake commit takes;
- new tombstones are closed versions that no other version of their key continues at the
  moment they end (a delete, a truncate, the old key of a key change). Their close time is a
  source commit time, so only versions closed after the recorded checkpoint's commit time,
  less CLOSE_MARGIN, can be new (commit times follow LSN order to within milliseconds; the
  margin is ample); candidates the lake already holds are dropped by the caller.
"""

from datetime import timedelta

from acme.warehouse.store import CLOSED, OPEN
from acme.warehouse.tables import TableSpec, column_list, key_list, key_match, quote

CLOSE_MARGIN = timedelta(minutes=5)


def closed_without_successor_sql(spec: TableSpec, bounded: bool) -> str:
    """Tombstone candidates: key and close time of each version nothing continues.

    With `bounded`, only versions closed at or after `$low`. A version can be zero-length
    (a row updated then truncated in one transaction; a copied row a late commit replaced),
    hence "another row" (rowid) rather than "a row starting where this one ends".
    """
    closed, open_versions = f"{CLOSED}.{quote(spec.name)}", f"{OPEN}.{quote(spec.name)}"
    low = " AND _valid_to >= $low" if bounded else ""
    low_next = " AND n._valid_from >= $low" if bounded else ""
    successor = f"n._valid_from = c._valid_to AND {key_match(spec, 'n', 'c')}{low_next}"
    return f"""
        SELECT {key_list(spec, 'c')}, c._valid_to AS _valid_from
        FROM (SELECT rowid AS _row, {key_list(spec)}, _valid_to FROM {closed}
              WHERE true{low}) AS c
        WHERE NOT EXISTS (SELECT 1 FROM {closed} AS n WHERE {successor} AND n.rowid <> c._row)
          AND NOT EXISTS (SELECT 1 FROM {open_versions} AS n WHERE {successor})"""


def events_sql(spec: TableSpec, first: bool) -> str:
    """The new events, in file order: new versions (all rows on a table's `first` commit,
    else `_lsn >= $since`) and the tombstones registered as `new_tombstones`, whose `_lsn`
    is `$checkpoint` (the checkpoint that holds them)."""
    history = f"history.{quote(spec.name)}"
    columns = column_list(spec)
    blanks = ", ".join(f"t.{quote(name)}" if name in spec.key else
                       f"CAST(NULL AS {kind}) AS {quote(name)}" for name, kind in spec.columns)
    where = "" if first else "WHERE _op <> 'snapshot' AND _lsn >= $since"
    return f"""
        SELECT {columns}, _valid_from, _op, CAST(_lsn AS BIGINT) AS _lsn
        FROM {history} {where}
        UNION ALL
        SELECT {blanks}, t._valid_from, 'delete', CAST($checkpoint AS BIGINT)
        FROM new_tombstones AS t
        ORDER BY _valid_from, {key_list(spec)}"""

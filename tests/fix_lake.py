"""Reading the lake back with pyiceberg alone, as an outside user would, and rebuilding each
source table from its append-only events (the rule documented in acme.lake.layout)."""

from collections import Counter
from datetime import datetime

from pyiceberg.catalog.sql import SqlCatalog

from acme.source.provision import TABLES
from tests.fix_workload import KEYS

BOOKKEEPING = {"_valid_from", "_op", "_lsn"}


def open_catalog(directory) -> SqlCatalog:
    return SqlCatalog("acme", uri=f"sqlite:///{directory / 'catalog.db'}",
                      warehouse=(directory / "warehouse").as_uri())


def lake_lsns(directory) -> dict[str, int]:
    """The warehouse LSN each table's current snapshot says it reflects."""
    catalog = open_catalog(directory)
    return {table: int(catalog.load_table(f"acme.{table}").current_snapshot()
                       .summary.additional_properties["acme.lsn"]) for table in TABLES}


def events(directory, table: str) -> list[dict]:
    return open_catalog(directory).load_table(f"acme.{table}").scan().to_arrow().to_pylist()


def rebuild(rows: list[dict], key: str, at: datetime | None) -> list[tuple]:
    """Per key, the last event at or before `at` (snapshot rows first, then by time, a
    tombstone after a version of the same instant, then LSN), unless it is a tombstone."""
    latest: dict = {}
    ordered = sorted(rows, key=lambda r: (r[key], r["_op"] != "snapshot", r["_valid_from"],
                                          r["_op"] == "delete", r["_lsn"]))
    for row in ordered:
        if at is None or row["_valid_from"] <= at:
            latest[row[key]] = row
    columns = [c for c in (rows[0] if rows else {}) if c not in BOOKKEEPING]
    return sorted((tuple(row[c] for c in columns) for row in latest.values()
                   if row["_op"] != "delete"), key=lambda r: r[0])


def lake_state(directory, at: datetime | None = None) -> dict[str, list[tuple]]:
    return {table: rebuild(events(directory, table), KEYS[table], at) for table in TABLES}


def assert_lake_mirrors_history(directory, warehouse) -> None:
    """Every DuckDB history version is in the lake exactly once (key, op, LSN), and every
    version nothing continues has exactly one tombstone: no duplicate, no gap."""
    import duckdb

    from acme.lake.changes import closed_without_successor_sql
    from acme.warehouse.store import Warehouse

    db = duckdb.connect(str(warehouse), read_only=True)
    try:
        specs = Warehouse(db, warehouse).tables()
        for table in TABLES:
            key = KEYS[table]
            lake_rows = events(directory, table)
            versions = Counter((r[key], r["_op"], r["_lsn"]) for r in lake_rows
                               if r["_op"] != "delete")
            history = Counter(db.execute(f"SELECT {key}, _op, _lsn FROM history.{table}")
                              .fetchall())
            assert versions == history, f"{table}: lake versions differ from history"
            tombstones = Counter((r[key], r["_valid_from"]) for r in lake_rows
                                 if r["_op"] == "delete")
            closed = Counter(db.execute(closed_without_successor_sql(specs[table], False))
                             .fetchall())
            assert tombstones == closed, f"{table}: lake tombstones differ from closures"
    finally:
        db.close()

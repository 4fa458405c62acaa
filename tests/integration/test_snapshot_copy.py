"""The parallel initial copy: block ranges over several connections, and restarts."""

import os
import signal
from datetime import UTC, datetime

import duckdb
import psycopg
import pytest

from acme.capture.catalog import published_tables
from acme.capture.copy_process import ParallelCopy
from acme.capture.snapshot import begin_snapshot, plan_parts
from acme.errors import SourceUnreachable
from acme.observe.observer import SyncObserver
from acme.pipeline import run_sync
from acme.source.seed import SeedPlan, seed
from acme.warehouse import cluster
from acme.warehouse.store import Warehouse
from tests.fix_sync import sync_once, sync_options
from tests.fix_workload import (
    assert_history_well_formed,
    assert_same_state,
    source_state,
    warehouse_state,
)


def test_block_ranges_over_several_connections_copy_every_row_once(source_db):
    seed(source_db.app_dsn, SeedPlan.for_orders(3_000, seed=5))
    with psycopg.connect(source_db.cdc_dsn, autocommit=True) as conn:
        point = begin_snapshot(conn, None)
        tables = published_tables(conn, source_db.publication)
        parts = plan_parts(conn, tables, part_pages=4)
        expected = {table.spec.name: sorted(row[0] for row in conn.execute(
            f"SELECT {table.spec.key[0]} FROM {table.qualified}")) for table in tables}
        with psycopg.connect(source_db.app_dsn, autocommit=True) as app:
            app.execute("INSERT INTO operations.orders (status) VALUES ('AFTER THE SNAPSHOT')")
        copied: dict[str, list[int]] = {name: [] for name in expected}
        with ParallelCopy(source_db.cdc_dsn, connections=3) as copy:
            copy.start(point.name, parts)
            for batch in copy:
                key = next(t.spec.key[0] for t in tables if t.spec.name == batch.table)
                copied[batch.table] += batch.batch.column(key).to_pylist()
        conn.execute("COMMIT")

    assert sum(1 for part in parts if part.table.spec.name == "order_items") > 3
    assert {name: sorted(ids) for name, ids in copied.items()} == expected


def test_a_reader_process_that_dies_is_a_lost_copy_connection_not_a_dead_sync(source_db):
    """The readers' child process can die (the ADBC driver aborts on a query over a cut
    connection): the copy fails as a lost connection, which sync retries."""
    seed(source_db.app_dsn, SeedPlan.for_orders(3_000, seed=5))
    with psycopg.connect(source_db.cdc_dsn, autocommit=True) as conn:
        point = begin_snapshot(conn, None)
        parts = plan_parts(conn, published_tables(conn, source_db.publication), part_pages=4)
        with ParallelCopy(source_db.cdc_dsn, connections=2) as copy, \
                pytest.raises(SourceUnreachable, match="the copy process ended") as lost:
            copy.start(point.name, parts)
            for _ in copy:
                os.kill(copy.process.pid, signal.SIGABRT)
        conn.execute("COMMIT")
    assert str(lost.value).startswith("copy connection to ") and "\n" not in str(lost.value)


def test_leftovers_of_an_interrupted_snapshot_are_replaced(source_db, warehouse_path):
    seed(source_db.app_dsn, SeedPlan.for_orders(2_000, seed=6))
    # What a crash between the copy's commits leaves: rows, no checkpoint.
    warehouse = Warehouse.open(warehouse_path)
    with psycopg.connect(source_db.cdc_dsn) as conn:
        for table in published_tables(conn, source_db.publication):
            warehouse.ensure_table(table.spec, {})
    warehouse.db.execute("INSERT INTO open_versions.orders (order_id, status, _op) "
                         "VALUES (1, 'LEFTOVER', 'snapshot'), (-5, 'LEFTOVER', 'snapshot')")
    assert warehouse.checkpoint() is None
    warehouse.close()

    sync_once(source_db, warehouse_path)

    with psycopg.connect(source_db.app_dsn) as conn:
        expected = source_state(conn)
    with duckdb.connect(str(warehouse_path), read_only=True) as store:
        leftovers = store.execute("SELECT count(*) FROM history.orders "
                                  "WHERE status = 'LEFTOVER'").fetchone()[0]
    assert leftovers == 0
    assert_same_state(expected, warehouse_state(warehouse_path), "current")
    assert_same_state(expected, warehouse_state(warehouse_path, datetime.now(UTC)), "history")
    assert_history_well_formed(warehouse_path)


def test_a_source_heap_out_of_key_order_is_copied_in_key_order(source_db, warehouse_path,
                                                                monkeypatch):
    """Updated rows are written wherever the heap has room, so the copy meets their keys
    scattered; the first sync rewrites such a table in key order (row groups of 16 here, so
    that a small table has many)."""
    seed(source_db.app_dsn, SeedPlan.for_orders(2_000, seed=7))
    with psycopg.connect(source_db.app_dsn, autocommit=True) as conn:
        conn.execute("""DO $$ DECLARE id bigint; BEGIN
                            FOR id IN SELECT order_id FROM operations.orders ORDER BY random()
                            LOOP UPDATE operations.orders SET status = status
                                 WHERE order_id = id; END LOOP; END $$""")
        expected = source_state(conn)
    monkeypatch.setattr(cluster, "ROW_GROUP_ROWS", 16)
    told = []

    class Watcher(SyncObserver):
        def table_ordering(self, table: str, groups_read_per_key: float) -> None:
            told.append(table)

    run_sync(sync_options(source_db, warehouse_path), observer=Watcher())

    assert told == ["orders"]  # the items kept the order they were inserted in
    with duckdb.connect(str(warehouse_path), read_only=True) as store:
        descents = store.execute(
            "SELECT count(*) FROM (SELECT order_id < lag(order_id) OVER (ORDER BY rowid) AS d "
            "FROM open_versions.orders) WHERE d").fetchone()[0]
    assert descents == 0
    assert_same_state(expected, warehouse_state(warehouse_path), "current")
    assert_history_well_formed(warehouse_path)

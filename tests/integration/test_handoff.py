"""Snapshot/stream hand-off with writes running during the copy: no lost, no duplicate version."""

import threading
import time

import duckdb
import psycopg
import pytest

from acme.observe.observer import SyncObserver
from acme.pipeline import run_sync
from acme.source.seed import SeedPlan, seed
from tests.fix_source import drop_source_db, make_source_db
from tests.fix_sync import sync_once, sync_options
from tests.fix_workload import (
    assert_history_well_formed,
    assert_same_state,
    source_state,
    warehouse_state,
)


class CounterWriter(threading.Thread):
    """Moves order 1 through statuses V1, V2, ... and inserts an order, one transaction each."""

    def __init__(self, dsn: str):
        super().__init__(daemon=True)
        self.dsn = dsn
        self.stop = threading.Event()
        self.count = 0

    def run(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            while not self.stop.is_set():
                self.count += 1
                with conn.transaction():
                    conn.execute("UPDATE operations.orders SET status = %s WHERE order_id = 1",
                                 (f"V{self.count}",))
                    conn.execute("INSERT INTO operations.orders (status) VALUES (%s)",
                                 (f"new{self.count}",))


class SnapshotWatcher(SyncObserver):
    def __init__(self):
        self.done = threading.Event()

    def snapshot_done(self, rows: int, seconds: float) -> None:
        self.done.set()


@pytest.mark.parametrize("slot", ["none", "before-data", "after-data"])
def test_writes_during_snapshot_are_neither_lost_nor_duplicated(pg_server, warehouse_path, slot):
    db = make_source_db(pg_server, with_slot=slot == "before-data")
    try:
        seed(db.app_dsn, SeedPlan.for_orders(40_000, seed=3))
        if slot == "after-data":
            with psycopg.connect(db.admin_dsn, autocommit=True) as conn:
                conn.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')",
                             (db.slot,))
        writer = CounterWriter(db.app_dsn)
        writer.start()
        time.sleep(0.3)
        watcher = SnapshotWatcher()
        syncing = threading.Thread(target=run_sync,
                                   args=(sync_options(db, warehouse_path), None, watcher))
        syncing.start()
        assert watcher.done.wait(120)
        time.sleep(0.5)
        writer.stop.set()
        writer.join()
        syncing.join()
        sync_once(db, warehouse_path)

        with psycopg.connect(db.app_dsn) as conn:
            assert_same_state(source_state(conn), warehouse_state(warehouse_path), "current")
        assert_history_well_formed(warehouse_path)
        with duckdb.connect(str(warehouse_path), read_only=True) as store:
            versions = store.execute("SELECT status, _op FROM history.orders WHERE order_id = 1 "
                                     "ORDER BY _valid_from, _valid_to NULLS LAST").fetchall()
            inserted = store.execute(
                "SELECT count(*), count(DISTINCT status) FROM history.orders "
                "WHERE status LIKE 'new%'").fetchone()
        first = int(versions[0][0][1:])
        assert versions[0][1] == "snapshot" and first > 1, "writes must precede the copy"
        assert [int(status[1:]) for status, _ in versions] == list(range(first, writer.count + 1))
        assert len(versions) > 2, "writes must follow the copy"
        assert inserted == (writer.count, writer.count)
    finally:
        drop_source_db(db)

"""`verify_warehouse` against a real source and DuckDB: equal after sync (awkward values of
every column type included), the exact keys named after the warehouse is altered behind the
pipeline's back, and no false difference while a pipeline applies steady traffic."""

import threading

import duckdb
import psycopg
import pytest

from acme.observe.observer import SyncObserver
from acme.pipeline import run_sync
from acme.source.seed import SeedPlan, seed
from acme.source.simulate import run_traffic
from acme.verify import VerifyOptions, verify_warehouse
from acme.warehouse.store import Warehouse
from tests.fix_sync import sync_once, sync_options
from tests.fix_workload import RandomWorkload


def options_for(db) -> VerifyOptions:
    return VerifyOptions(db.cdc_dsn, db.slot, db.publication)


def checks_by_table(report) -> dict:
    return {check.table: check for check in report.checks}


@pytest.fixture
def synced(source_db, warehouse_path):
    """A source with seeded rows plus random awkward transactions, synced once."""
    seed(source_db.app_dsn, SeedPlan.for_orders(400, seed=5))
    with psycopg.connect(source_db.app_dsn, autocommit=True) as conn:
        workload = RandomWorkload(conn, 5)
        for _ in range(40):
            workload.transaction()
    sync_once(source_db, warehouse_path)
    return source_db, warehouse_path


def test_synced_warehouse_equals_the_source(synced):
    db, path = synced
    with duckdb.connect(str(path), read_only=True) as warehouse:
        report = verify_warehouse(warehouse, options_for(db))
    assert report.equal, [check.line() for check in report.checks]
    checks = checks_by_table(report)
    assert set(checks) == {"customers", "products", "orders", "order_items"}
    with psycopg.connect(db.app_dsn) as conn:
        for table, check in checks.items():
            rows = conn.execute(f"SELECT count(*) FROM operations.{table}").fetchone()[0]
            assert check.source_rows == check.warehouse_rows == rows
    assert not report.following and report.rounds == 1


def test_rows_deleted_altered_or_added_behind_its_back_are_named(synced):
    db, path = synced
    with duckdb.connect(str(path)) as warehouse:
        order_id = warehouse.execute("SELECT min(order_id) FROM current.orders").fetchone()[0]
        warehouse.execute("DELETE FROM open_versions.orders WHERE order_id = $1", [order_id])
        customer = warehouse.execute("SELECT max(customer_id) FROM current.customers")\
            .fetchone()[0]
        warehouse.execute("UPDATE open_versions.customers SET customer_address = "
                          "coalesce(customer_address, '') || '!' WHERE customer_id = $1",
                          [customer])
        product = warehouse.execute("SELECT min(product_id) FROM current.products").fetchone()[0]
        # A change only a price's last decimal place shows.
        warehouse.execute("UPDATE open_versions.products SET unity_price = CAST(CAST(unity_price "
                          "AS DECIMAL(18,2)) + 0.01 AS VARCHAR) WHERE product_id = $1",
                          [product])
        warehouse.execute("INSERT INTO open_versions.order_items (order_item_id, quanity) "
                          "VALUES (987654321, 1)")
    with duckdb.connect(str(path), read_only=True) as warehouse:
        report = verify_warehouse(warehouse, options_for(db))
    assert not report.equal
    checks = checks_by_table(report)
    assert checks["orders"].differing_keys == (str(order_id),)
    assert checks["orders"].warehouse_rows == checks["orders"].source_rows - 1
    assert checks["customers"].differing_keys == (str(customer),)
    assert checks["products"].differing_keys == (str(product),)
    assert checks["order_items"].differing_keys == ("987654321",)
    assert f"order_id={order_id}" in checks["orders"].line()
    assert report.rounds > 1  # real differences survive every re-check


class LiveConnection(SyncObserver):
    """The running pipeline's warehouse connection, as `acme serve` hands it to its API."""

    def __init__(self):
        self.db = None
        self.copied = threading.Event()

    def warehouse_opened(self, warehouse: Warehouse) -> None:
        self.db = warehouse.db

    def snapshot_done(self, rows: int, seconds: float) -> None:
        self.copied.set()


def test_no_false_difference_while_the_pipeline_applies_steady_traffic(source_db,
                                                                       warehouse_path):
    seed(source_db.app_dsn, SeedPlan.for_orders(2000, seed=6))
    live, stop = LiveConnection(), threading.Event()
    pipeline = threading.Thread(target=run_sync, args=(
        sync_options(source_db, warehouse_path, once=False), stop, live), daemon=True)
    traffic = threading.Thread(target=run_traffic, args=(source_db.app_dsn, 60),
                               kwargs={"seed": 3, "stop": stop}, daemon=True)
    pipeline.start()
    try:
        assert live.copied.wait(60)
        traffic.start()
        reports = [verify_warehouse(live.db, options_for(source_db)) for _ in range(3)]
    finally:
        stop.set()
        traffic.join(timeout=30)
        pipeline.join(timeout=60)
    for report in reports:
        assert report.following
        assert report.equal, [check.line() for check in report.checks]
    with psycopg.connect(source_db.app_dsn) as conn:
        orders = conn.execute("SELECT count(*) FROM operations.orders").fetchone()[0]
    assert orders > 2000  # traffic did run meanwhile

"""`acme verify` as a user runs it: exit 0 on a synced warehouse, exit 1 with one line naming
the table after a row of current is deleted or altered behind its back, and 0 while
`acme serve` holds the warehouse and steady traffic runs."""

import os
import threading

import duckdb

from acme.source.seed import SeedPlan, seed
from acme.source.simulate import run_traffic
from tests.e2e.cli import acme


def env_for(db, warehouse) -> dict:
    return {**os.environ, "ACME_SOURCE_DSN": db.cdc_dsn, "ACME_WAREHOUSE": str(warehouse),
            "ACME_SLOT": db.slot}


def test_exit_0_when_synced_then_1_naming_each_table_changed_behind_its_back(source_db,
                                                                            tmp_path):
    seed(source_db.app_dsn, SeedPlan.for_orders(500, seed=8))
    env = env_for(source_db, tmp_path / "w.duckdb")
    assert acme("sync", "--once", env=env).code == 0
    equal = acme("verify", env=env)
    assert equal.code == 0, equal.stdout + equal.stderr
    assert "equal at source LSN" in equal.stdout
    with duckdb.connect(str(tmp_path / "w.duckdb")) as warehouse:
        warehouse.execute("DELETE FROM open_versions.orders WHERE order_id = 7")
        warehouse.execute("UPDATE open_versions.order_items SET quanity = quanity + 1 "
                          "WHERE order_item_id = 11")
    differs = acme("verify", env=env)
    assert differs.code == 1
    lines = differs.stdout.splitlines()
    assert len(lines) == 2, differs.stdout
    assert lines[0].startswith("order_items: 1 differing rows") and "order_item_id=11" in lines[0]
    assert lines[1].startswith("orders: 1 differing rows") and "order_id=7" in lines[1]
    assert "warehouse 499" in lines[1]


def test_exit_0_through_the_server_while_traffic_runs(served, source_db):
    stop = threading.Event()
    traffic = threading.Thread(target=run_traffic, args=(source_db.app_dsn, 50),
                               kwargs={"seed": 4, "stop": stop}, daemon=True)
    traffic.start()
    try:
        runs = [acme("verify", "--json", env=served.env) for _ in range(2)]
    finally:
        stop.set()
        traffic.join(timeout=30)
    for run in runs:
        assert run.code == 0, run.stdout + run.stderr
        assert '"following": true' in run.stdout  # the server compared with the live stream

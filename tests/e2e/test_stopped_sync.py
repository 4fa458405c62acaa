"""A change the warehouse cannot hold stops sync loudly: one line from `acme sync`, the stopped
state in `acme status` and in the API's /status (which keeps answering from what was applied),
and nothing applied past it (issue 11, What to build 7)."""

import time

import psycopg

from tests.e2e.cli import acme, assert_one_line_error
from tests.fix_serve import serving

BAD = "294276-12-31 23:59:59"  # PostgreSQL holds it; DuckDB's TIMESTAMP ends in 294247


def test_stopped_sync_shows_in_status_and_the_api_keeps_serving(source_db, tmp_path):
    warehouse = tmp_path / "w.duckdb"
    with psycopg.connect(source_db.admin_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE operations.edge (id int PRIMARY KEY, ts timestamp)")
        conn.execute("GRANT SELECT ON operations.edge TO cdc_user")
        conn.execute("ALTER PUBLICATION cdc_publication ADD TABLE operations.edge")
        conn.execute("INSERT INTO operations.orders (status) VALUES ('PENDING')")
        with serving(source_db, warehouse) as served:
            conn.execute("INSERT INTO operations.edge VALUES (1, %s)", [BAD])
            conn.execute("INSERT INTO operations.orders (status) VALUES ('PENDING')")
            deadline = time.monotonic() + 30
            while True:
                status = served.client.get("/status")
                assert status.status_code in (200, 503)  # 503: reopening read-only
                if status.status_code == 200 and status.json()["stopped"] is not None:
                    break
                assert time.monotonic() < deadline, "the stop never showed in /status"
                time.sleep(0.2)
            stopped = status.json()["stopped"]
            assert stopped["reason"].startswith(f"cannot store '{BAD}' in edge.ts (TIMESTAMP)")
            assert served.process.poll() is None  # still serving what was applied
            orders = served.client.get("/analytics/orders", params={"status": "open"})
            assert orders.status_code == 200
            assert sum(row["open_orders"] for row in orders.json()["rows"]) == 1
            code, stderr = served.stop()
    assert code == 1 and "Traceback" not in stderr
    assert f"sync stopped: cannot store '{BAD}'" in stderr

    status = acme("status", "--warehouse", str(warehouse), "--dsn", source_db.cdc_dsn,
                  "--slot", source_db.slot)
    assert status.code == 0
    assert "sync STOPPED since 20" in status.stdout
    assert f"cannot store '{BAD}' in edge.ts" in status.stdout

    run = acme("sync", "--once", "--dsn", source_db.cdc_dsn, "--warehouse", str(warehouse),
               "--slot", source_db.slot, "--publication", source_db.publication)
    assert_one_line_error(run, f"cannot store '{BAD}' in edge.ts (TIMESTAMP) at LSN ",
                          "ALTER TABLE open_versions.\"edge\" ALTER COLUMN \"ts\" TYPE VARCHAR")

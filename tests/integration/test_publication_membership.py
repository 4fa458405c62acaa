"""Tables joining and leaving the publication; where a copy's history starts."""

import threading
import time

import duckdb
import psycopg

from tests.fix_source import drop_source_db, make_source_db
from tests.fix_sync import BackgroundSync, sync_once, sync_options
from tests.fix_workload import record_moment

SHIPMENTS = """CREATE TABLE operations.shipments (
    shipment_id bigserial PRIMARY KEY, carrier text, weight numeric(8,2))"""


def _create_shipments(db, rows: int) -> None:
    """As the application user: the tables it creates are readable by cdc_user."""
    with psycopg.connect(db.app_dsn, autocommit=True) as app:
        app.execute(SHIPMENTS)
        app.execute("INSERT INTO operations.shipments (carrier, weight) "
                    "SELECT 'c' || g, g FROM generate_series(1, %s) AS g", (rows,))


def _shipments(conn) -> list[tuple]:
    return conn.execute("SELECT * FROM operations.shipments ORDER BY 1").fetchall()


def _as_of(path, at=None) -> list[tuple]:
    with duckdb.connect(str(path), read_only=True) as store:
        if at is None:
            return store.execute("SELECT shipment_id, carrier, weight FROM current.shipments "
                                 "ORDER BY 1").fetchall()
        return store.execute(
            "SELECT shipment_id, carrier, weight FROM history.shipments WHERE _valid_from <= $1 "
            "AND (_valid_to IS NULL OR _valid_to > $1) ORDER BY 1", [at]).fetchall()


def test_table_joining_the_publication_is_copied_then_followed_without_duplicates(
        source_db, warehouse_path):
    with psycopg.connect(source_db.admin_dsn, autocommit=True) as admin:
        _create_shipments(source_db, 100)
        admin.execute("UPDATE operations.orders SET status = status")  # nothing to follow
        sync_once(source_db, warehouse_path)
        admin.execute(f"ALTER PUBLICATION {source_db.publication} "
                      "ADD TABLE operations.shipments")
        admin.execute("UPDATE operations.shipments SET carrier = 'moved' "
                      "WHERE shipment_id <= 9")
        admin.execute("INSERT INTO operations.shipments (carrier) VALUES ('late')")
        sync_once(source_db, warehouse_path)
        joined = record_moment(admin)
        moment = (joined.at, _shipments(admin))
        admin.execute("UPDATE operations.shipments SET weight = 0 WHERE shipment_id = 50")
        admin.execute("DELETE FROM operations.shipments WHERE shipment_id = 51")
        sync_once(source_db, warehouse_path)
        now = _shipments(admin)
    assert len(now) == 100
    assert _as_of(warehouse_path) == now
    assert _as_of(warehouse_path, moment[0]) == moment[1]
    with duckdb.connect(str(warehouse_path), read_only=True) as store:
        versions = store.execute("SELECT count(*), count(DISTINCT (shipment_id, _valid_from)) "
                                 "FROM history.shipments").fetchone()
    assert versions == (102, 102), "one version per row, plus the two later changes"


def test_rows_changed_while_the_table_joins_a_running_sync_arrive_once(source_db,
                                                                      warehouse_path):
    with psycopg.connect(source_db.admin_dsn, autocommit=True) as admin:
        _create_shipments(source_db, 100)
        with BackgroundSync(sync_options(source_db, warehouse_path, once=False)):
            time.sleep(1.0)
            admin.execute(f"ALTER PUBLICATION {source_db.publication} "
                          "ADD TABLE operations.shipments")
            for number in range(30):
                admin.execute("UPDATE operations.shipments SET carrier = %s "
                              "WHERE shipment_id = %s", (f"v{number}", number % 7 + 1))
                time.sleep(0.02)
            time.sleep(2.0)
        sync_once(source_db, warehouse_path)
        now = _shipments(admin)
    assert _as_of(warehouse_path) == now
    with duckdb.connect(str(warehouse_path), read_only=True) as store:
        overlapping = store.execute("""
            SELECT count(*) FROM (SELECT _valid_to, lead(_valid_from) OVER w AS next_from
                                  FROM history.shipments
                                  WINDOW w AS (PARTITION BY shipment_id ORDER BY _valid_from))
            WHERE _valid_to IS NULL AND next_from IS NOT NULL OR _valid_to > next_from
            """).fetchone()[0]
    assert overlapping == 0


def test_table_leaving_the_publication_keeps_its_history_and_a_rejoin_catches_up(
        source_db, warehouse_path):
    with psycopg.connect(source_db.admin_dsn, autocommit=True) as admin:
        _create_shipments(source_db, 0)
        admin.execute(f"ALTER PUBLICATION {source_db.publication} "
                      "ADD TABLE operations.shipments")
        admin.execute("INSERT INTO operations.shipments (carrier) VALUES ('a'), ('b')")
        sync_once(source_db, warehouse_path)
        followed = _shipments(admin)
        admin.execute(f"ALTER PUBLICATION {source_db.publication} "
                      "DROP TABLE operations.shipments")
        admin.execute("UPDATE operations.shipments SET carrier = 'unseen' "
                      "WHERE shipment_id = 1")
        sync_once(source_db, warehouse_path)
        assert _as_of(warehouse_path) == followed, "a table that left is not followed"
        admin.execute(f"ALTER PUBLICATION {source_db.publication} "
                      "ADD TABLE operations.shipments")
        sync_once(source_db, warehouse_path)
        now = _shipments(admin)
    assert _as_of(warehouse_path) == now
    with duckdb.connect(str(warehouse_path), read_only=True) as store:
        carriers = store.execute("SELECT carrier FROM history.shipments WHERE shipment_id = 1 "
                                 "ORDER BY _valid_from").fetchall()
    assert carriers == [("a",), ("unseen",)]


def test_copied_rows_are_never_valid_from_before_a_commit_the_copy_holds(pg_server,
                                                                        warehouse_path):
    """With a new slot, rows keep committing while the slot is created: every copied row
    must start at or after its own write (updated_at = clock_timestamp() of its commit)."""
    db = make_source_db(pg_server, with_slot=False)
    try:
        stop = threading.Event()

        def write() -> None:
            with psycopg.connect(db.app_dsn, autocommit=True) as conn:
                while not stop.is_set():
                    conn.execute("INSERT INTO operations.orders (status, updated_at) "
                                 "VALUES ('NEW', clock_timestamp())")

        writer = threading.Thread(target=write, daemon=True)
        writer.start()
        time.sleep(0.3)
        sync_once(db, warehouse_path)
        stop.set()
        writer.join()
        with duckdb.connect(str(warehouse_path), read_only=True) as store:
            early = store.execute(
                "SELECT count(*), count(*) FILTER (WHERE _valid_from < "
                "(CAST(updated_at AS TIMESTAMP) - INTERVAL 1 MILLISECOND) AT TIME ZONE 'UTC') "
                "FROM history.orders "
                "WHERE _op = 'snapshot'").fetchone()
        assert early[0] > 0 and early[1] == 0, early
    finally:
        drop_source_db(db)

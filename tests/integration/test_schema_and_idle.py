"""Source schema changes flow into the warehouse; an idle publication never pins the slot."""

import time

import duckdb
import psycopg

from acme.lsn import parse_lsn
from tests.fix_sync import BackgroundSync, sync_once, sync_options


def test_added_column_appears_and_dropped_column_keeps_its_past_values(source_db,
                                                                       warehouse_path):
    with psycopg.connect(source_db.app_dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO operations.orders (status) VALUES ('PENDING')")
        sync_once(source_db, warehouse_path)
        conn.execute("ALTER TABLE operations.orders ADD COLUMN priority integer")
        conn.execute("ALTER TABLE operations.orders ADD COLUMN weight numeric(8,3)")
        conn.execute("UPDATE operations.orders SET priority = 7, weight = 1.250")
        conn.execute("INSERT INTO operations.orders (status, priority) VALUES ('NEW', 1)")
        sync_once(source_db, warehouse_path)
        conn.execute("ALTER TABLE operations.orders DROP COLUMN priority")
        conn.execute("UPDATE operations.orders SET status = 'SHIPPED' WHERE order_id = 1")
        sync_once(source_db, warehouse_path)
    with duckdb.connect(str(warehouse_path), read_only=True) as store:
        history = store.execute(
            "SELECT order_id, status, priority, weight FROM history.orders "
            "ORDER BY order_id, _valid_from").fetchall()
        types = dict(store.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'current' AND table_name = 'orders'").fetchall())
        current = store.execute("SELECT order_id, status, priority FROM current.orders "
                                "ORDER BY 1").fetchall()
    assert history == [(1, "PENDING", None, None), (1, "PENDING", 7, 1.25),
                       (1, "SHIPPED", None, 1.25), (2, "NEW", 1, None)]
    assert types["priority"] == "INTEGER" and types["weight"] == "DECIMAL(8,3)"
    assert current == [(1, "SHIPPED", None), (2, "NEW", 1)]


def test_slot_keeps_advancing_while_only_unpublished_tables_change(source_db, warehouse_path):
    with psycopg.connect(source_db.admin_dsn, autocommit=True) as admin:
        admin.execute("CREATE TABLE public.audit_log (id bigserial PRIMARY KEY, note text)")

        def confirmed() -> int:
            return parse_lsn(admin.execute(
                "SELECT confirmed_flush_lsn::text FROM pg_replication_slots "
                "WHERE slot_name = %s", (source_db.slot,)).fetchone()[0])

        with BackgroundSync(sync_options(source_db, warehouse_path, once=False)):
            time.sleep(1.5)  # snapshot done, streaming
            start = confirmed()
            for _ in range(20):
                admin.execute("INSERT INTO public.audit_log (note) "
                              "SELECT repeat('x', 200) FROM generate_series(1, 500)")
            written_to = parse_lsn(admin.execute("SELECT pg_current_wal_lsn()::text")
                                   .fetchone()[0])
            deadline = time.monotonic() + 15
            while confirmed() < written_to and time.monotonic() < deadline:
                time.sleep(0.1)
            assert confirmed() >= written_to > start

            # restart_lsn (what WAL the slot retains) moves at the next running-xacts record:
            # written on demand since PostgreSQL 16, by a checkpoint before.
            log_running_xacts = ("SELECT pg_log_standby_snapshot()"
                                 if admin.info.server_version >= 160000 else "CHECKPOINT")

            def retained() -> int:
                admin.execute(log_running_xacts)
                return admin.execute(
                    "SELECT pg_current_wal_lsn() - restart_lsn FROM pg_replication_slots "
                    "WHERE slot_name = %s", (source_db.slot,)).fetchone()[0]

            deadline = time.monotonic() + 15
            while retained() >= written_to - start and time.monotonic() < deadline:
                time.sleep(0.2)
            assert retained() < written_to - start


def test_sync_reconnects_after_the_replication_connection_is_cut(source_db, warehouse_path):
    with psycopg.connect(source_db.admin_dsn, autocommit=True) as admin, \
            psycopg.connect(source_db.app_dsn, autocommit=True) as app:

        def confirmed() -> int:
            return parse_lsn(admin.execute(
                "SELECT confirmed_flush_lsn::text FROM pg_replication_slots "
                "WHERE slot_name = %s", (source_db.slot,)).fetchone()[0])

        def wait_confirmed(lsn: int) -> None:
            deadline = time.monotonic() + 20
            while confirmed() < lsn:
                assert time.monotonic() < deadline, "not confirmed in time"
                time.sleep(0.1)

        def insert(name: str) -> int:
            app.execute("INSERT INTO operations.customers (customer_name) VALUES (%s)", (name,))
            return parse_lsn(app.execute("SELECT pg_current_wal_lsn()::text").fetchone()[0])

        with BackgroundSync(sync_options(source_db, warehouse_path, once=False)):
            wait_confirmed(insert("before the cut"))
            cut = admin.execute(
                "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots "
                "WHERE slot_name = %s AND active", (source_db.slot,)).fetchone()
            assert cut == (True,)
            wait_confirmed(insert("after the cut"))
    with duckdb.connect(str(warehouse_path), read_only=True) as store:
        names = store.execute("SELECT customer_name FROM history.customers "
                              "ORDER BY _valid_from").fetchall()
    assert names == [("before the cut",), ("after the cut",)]

"""Tables are keyed by schema and name: a table of the same name in another published schema
(`archive.orders`) is a table of its own, `"archive.orders"` in the warehouse, through the copy
and the stream, and never touches `operations.orders` (issue 11, case 7)."""

import duckdb
import psycopg

from acme.verify import VerifyOptions, verify_warehouse
from tests.fix_sync import sync_once


def create_archive(conn) -> None:
    conn.execute("""
        CREATE SCHEMA archive;
        CREATE TABLE archive.orders (order_id bigint PRIMARY KEY, archived_note text NOT NULL);
        GRANT USAGE ON SCHEMA archive TO cdc_user;
        GRANT SELECT ON archive.orders TO cdc_user;
        ALTER PUBLICATION cdc_publication ADD TABLE archive.orders;
        INSERT INTO archive.orders SELECT g, 'archived ' || g FROM generate_series(1, 5) AS g;
        INSERT INTO operations.orders (order_id, status)
        SELECT g, 'PENDING' FROM generate_series(1, 5) AS g""")


def change_both(conn, new_id: int) -> None:
    conn.execute(f"""
        UPDATE archive.orders SET archived_note = 'changed' WHERE order_id = 2;
        DELETE FROM archive.orders WHERE order_id IN (3, 4);
        INSERT INTO archive.orders VALUES ({new_id}, 'new');
        UPDATE operations.orders SET status = 'SHIPPED' WHERE order_id = 3;
        DELETE FROM operations.orders WHERE order_id = 5""")


def test_same_table_name_in_another_schema_is_its_own_table(source_db, warehouse_path):
    with psycopg.connect(source_db.admin_dsn, autocommit=True) as conn:
        create_archive(conn)
        sync_once(source_db, warehouse_path)  # copied
        change_both(conn, 9)
        sync_once(source_db, warehouse_path)  # streamed
        change_both(conn, 10)  # again: a second update, deletes of nothing
        conn.execute("TRUNCATE archive.orders")  # a TRUNCATE empties only that table
        conn.execute("INSERT INTO archive.orders VALUES (1, 'after truncate')")
        sync_once(source_db, warehouse_path)
        archive = conn.execute("SELECT * FROM archive.orders ORDER BY 1").fetchall()
        operations = conn.execute("SELECT order_id, status FROM operations.orders "
                                  "ORDER BY 1").fetchall()
    with duckdb.connect(str(warehouse_path), read_only=True) as store:
        stored_archive = store.execute(
            'SELECT * FROM current."archive.orders" ORDER BY 1').fetchall()
        stored_orders = store.execute("SELECT order_id, status FROM current.orders "
                                      "ORDER BY 1").fetchall()
        archive_versions = store.execute(
            'SELECT count(*) FROM history."archive.orders"').fetchone()[0]
        columns = {name for (name,) in store.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = 'current' AND table_name = 'orders'").fetchall()}
        report = verify_warehouse(store, VerifyOptions(source_db.cdc_dsn, source_db.slot,
                                                       source_db.publication))
    assert stored_archive == archive == [(1, "after truncate")]
    assert stored_orders == operations == [(1, "PENDING"), (2, "PENDING"), (3, "SHIPPED"),
                                           (4, "PENDING")]
    # copied, changed twice, two new, after the truncate
    assert archive_versions == 5 + 2 + 2 + 1
    assert "archived_note" not in columns
    assert report.payload()["equal"], report.payload()

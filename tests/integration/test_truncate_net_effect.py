"""A TRUNCATE inside a transaction: every table still keeps only the transaction's net effect."""

import duckdb
import psycopg

from tests.fix_sync import sync_once
from tests.fix_workload import assert_history_well_formed, record_moment, warehouse_state


def test_truncate_of_another_table_mid_transaction_leaves_no_zero_length_versions(
        source_db, warehouse_path):
    with psycopg.connect(source_db.app_dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO operations.orders (status) VALUES ('NEW'), ('NEW')")
        conn.execute("INSERT INTO operations.order_items (order_id, quanity) VALUES (1, 1)")
        sync_once(source_db, warehouse_path)
        with conn.transaction():
            conn.execute("UPDATE operations.orders SET status = 'A' WHERE order_id = 1")
            conn.execute("INSERT INTO operations.order_items (order_id, quanity) "
                         "VALUES (2, 5)")  # gone again at the TRUNCATE: never visible
            conn.execute("TRUNCATE operations.order_items")
            conn.execute("UPDATE operations.orders SET status = 'B' WHERE order_id = 1")
            conn.execute("INSERT INTO operations.order_items (order_id, quanity) "
                         "VALUES (1, 7)")
        moment = record_moment(conn)
        sync_once(source_db, warehouse_path)
    with duckdb.connect(str(warehouse_path), read_only=True) as store:
        empty = store.execute(
            "SELECT (SELECT count(*) FROM history.orders WHERE _valid_to = _valid_from) + "
            "(SELECT count(*) FROM history.order_items WHERE _valid_to = _valid_from)"
        ).fetchone()[0]
        statuses = store.execute("SELECT status FROM history.orders WHERE order_id = 1 "
                                 "ORDER BY _valid_from").fetchall()
        quantities = store.execute("SELECT quanity FROM history.order_items "
                                   "ORDER BY _valid_from").fetchall()
    assert empty == 0
    assert statuses == [("NEW",), ("B",)]
    assert quantities == [(1,), (7,)]
    state = warehouse_state(warehouse_path, moment.at)
    assert state["orders"] == [tuple(r) + state["orders"][i][len(r):]
                               for i, r in enumerate(moment.tables["orders"])]
    assert_history_well_formed(warehouse_path)

"""DDL on a followed table: history equals the source now and at every recorded moment."""

import duckdb
import psycopg

from tests.fix_sync import sync_once
from tests.fix_workload import assert_same_state, record_moment, source_state, warehouse_state


def _orders(conn, count: int) -> None:
    conn.execute("INSERT INTO operations.orders (status, customer_id) "
                 "SELECT 'PENDING', g FROM generate_series(1, %s) AS g", (count,))


def _check(db, warehouse, moments, conn) -> None:
    for number, moment in enumerate(moments):
        assert_same_state(moment.tables, warehouse_state(warehouse, moment.at),
                          f"moment {number}")
    assert_same_state(source_state(conn), warehouse_state(warehouse), "current")


def test_added_columns_with_constant_and_volatile_defaults_hold_the_source_values(
        source_db, warehouse_path):
    with psycopg.connect(source_db.app_dsn, autocommit=True) as conn:
        _orders(conn, 200)
        sync_once(source_db, warehouse_path)
        moments = [record_moment(conn)]
        conn.execute("ALTER TABLE operations.orders ADD COLUMN priority integer DEFAULT 5")
        conn.execute("ALTER TABLE operations.orders ADD COLUMN token integer "
                     "DEFAULT (random() * 1000000)::integer")
        moments.append(record_moment(conn))
        conn.execute("UPDATE operations.orders SET status = 'SHIPPED' WHERE order_id = 3")
        conn.execute("INSERT INTO operations.orders (status) VALUES ('NEW')")
        moments.append(record_moment(conn))
        sync_once(source_db, warehouse_path)
        conn.execute("UPDATE operations.orders SET priority = 1 WHERE order_id = 4")
        moments.append(record_moment(conn))
        sync_once(source_db, warehouse_path)
        _check(source_db, warehouse_path, moments, conn)
        tokens = conn.execute("SELECT count(DISTINCT token) FROM operations.orders").fetchone()
    assert tokens[0] > 100, "the volatile default gives each row its own value"


def test_altered_column_type_widens_the_warehouse_column(source_db, warehouse_path):
    with psycopg.connect(source_db.app_dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO operations.order_items (order_id, product_id, quanity) "
                     "VALUES (1, 1, 2), (1, 2, 3)")
        sync_once(source_db, warehouse_path)
        before = record_moment(conn)
        conn.execute("ALTER TABLE operations.order_items "
                     "ALTER COLUMN quanity TYPE numeric(14,3)")
        conn.execute("UPDATE operations.order_items SET quanity = 1.5 WHERE order_item_id = 1")
        conn.execute("INSERT INTO operations.order_items (order_id, product_id, quanity) "
                     "VALUES (2, 1, 2.499)")
        after = record_moment(conn)
        sync_once(source_db, warehouse_path)
        _check(source_db, warehouse_path, [before, after], conn)
    with duckdb.connect(str(warehouse_path), read_only=True) as store:
        kind = store.execute("SELECT data_type FROM information_schema.columns WHERE "
                             "table_schema = 'history' AND table_name = 'order_items' "
                             "AND column_name = 'quanity'").fetchone()[0]
        quantities = store.execute("SELECT quanity FROM current.order_items "
                                   "ORDER BY order_item_id").fetchall()
    assert kind == "DECIMAL(14,3)"
    assert [str(q) for (q,) in quantities] == ["1.500", "3.000", "2.499"]


def test_alter_type_using_an_expression_rewrites_the_open_versions(source_db, warehouse_path):
    with psycopg.connect(source_db.app_dsn, autocommit=True) as conn:
        _orders(conn, 5)
        sync_once(source_db, warehouse_path)
        conn.execute("ALTER TABLE operations.orders ALTER COLUMN customer_id TYPE numeric(12,1) "
                     "USING customer_id / 2.0")
        moment = record_moment(conn)
        conn.execute("INSERT INTO operations.orders (status, customer_id) VALUES ('X', 7.5)")
        sync_once(source_db, warehouse_path)
        _check(source_db, warehouse_path, [moment], conn)


def test_renamed_column_keeps_its_past_values_and_the_model_still_reads_it(source_db,
                                                                          warehouse_path):
    with psycopg.connect(source_db.app_dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO operations.customers (customer_name, customer_address) "
                     "VALUES ('Ana', 'Rua 1'), ('Rui', 'Rua 2')")
        sync_once(source_db, warehouse_path)
        before = record_moment(conn)
        conn.execute("ALTER TABLE operations.customers "
                     "RENAME COLUMN customer_address TO address")
        conn.execute("UPDATE operations.customers SET address = 'Rua 3' WHERE customer_id = 1")
        after = record_moment(conn)
        sync_once(source_db, warehouse_path)
        _check(source_db, warehouse_path, [before, after], conn)
    with duckdb.connect(str(warehouse_path), read_only=True) as store:
        columns = [c for (c,) in store.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = "
            "'history' AND table_name = 'customers'").fetchall()]
        history = store.execute("SELECT customer_id, address FROM history.customers "
                                "ORDER BY customer_id, _valid_from").fetchall()
        dim = store.execute("SELECT customer_id, customer_address FROM model.dim_customer "
                            "WHERE is_current ORDER BY customer_id").fetchall()
    assert "address" in columns and "customer_address" not in columns
    assert history == [(1, "Rua 1"), (1, "Rua 3"), (2, "Rua 2")]
    assert dim == [(1, "Rua 3"), (2, "Rua 2")]


def test_dropped_then_added_column_is_not_taken_for_a_rename(source_db, warehouse_path):
    with psycopg.connect(source_db.app_dsn, autocommit=True) as conn:
        conn.execute("ALTER TABLE operations.orders ADD COLUMN note text")
        conn.execute("INSERT INTO operations.orders (status, note) VALUES ('A', 'old note')")
        sync_once(source_db, warehouse_path)
        conn.execute("ALTER TABLE operations.orders DROP COLUMN note")
        conn.execute("ALTER TABLE operations.orders ADD COLUMN remark text")
        conn.execute("UPDATE operations.orders SET remark = 'new' WHERE order_id = 1")
        sync_once(source_db, warehouse_path)
    with duckdb.connect(str(warehouse_path), read_only=True) as store:
        history = store.execute("SELECT note, remark FROM history.orders "
                                "ORDER BY _valid_from").fetchall()
    assert history == [("old note", None), (None, "new")]

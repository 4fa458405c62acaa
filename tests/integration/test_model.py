"""The dimensional model follows history: SCD2 dimensions, priced line facts, status moves."""

from decimal import Decimal

import duckdb
import psycopg

from tests.fix_sync import sync_once


def test_model_prices_lines_at_order_time_and_tracks_status_moves(source_db, warehouse_path):
    with psycopg.connect(source_db.app_dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO operations.customers (customer_name) VALUES ('Ana')")
        conn.execute("INSERT INTO operations.products (product_name, barcode, unity_price) "
                     "VALUES ('Tea', '1', 2.50)")
        sync_once(source_db, warehouse_path)
        conn.execute("INSERT INTO operations.orders (customer_id, status, order_date, "
                     "delivery_date, created_at) VALUES (1, 'PENDING', '2026-11-20', "
                     "'2026-11-28', localtimestamp(3))")
        conn.execute("INSERT INTO operations.order_items (order_id, product_id, quanity) "
                     "VALUES (1, 1, 4)")
        conn.execute("UPDATE operations.products SET unity_price = 3.10")
        conn.execute("UPDATE operations.orders SET status = 'SHIPPED'")
        conn.execute("UPDATE operations.orders SET status = 'pending'")
        conn.execute("UPDATE operations.orders SET status = 'Delivered'")
        conn.execute("UPDATE operations.customers SET customer_name = 'Ana Lima'")
        sync_once(source_db, warehouse_path)
    with duckdb.connect(str(warehouse_path), read_only=True) as db:
        line = db.execute("SELECT quantity, unit_price, amount, status, is_open, "
                          "delivery_date_key, customer_key IS NOT NULL, product_key "
                          "FROM model.fact_order_item").fetchall()
        products = db.execute("SELECT product_key, unity_price, is_current FROM "
                              "model.dim_product ORDER BY valid_from").fetchall()
        moves = db.execute("SELECT from_status, to_status, time_in_previous_status "
                           "IS NOT NULL FROM model.fact_order_status_change "
                           "ORDER BY changed_at").fetchall()
        customers = db.execute("SELECT customer_name, is_current FROM model.dim_customer "
                               "ORDER BY valid_from").fetchall()
        statuses = dict(db.execute("SELECT status, is_open FROM model.dim_status").fetchall())
        date = db.execute("SELECT day_name, is_weekend FROM model.dim_date "
                          "WHERE date_key = 20261128").fetchone()
    assert [p[1:] for p in products] == [("2.50", False), ("3.10", True)]
    # the order was created while the price was 2.50: its line keeps that price
    assert line == [(4, Decimal("2.5"), Decimal("10.0"), "Delivered", False, 20261128, True,
                     products[0][0])]
    assert moves == [(None, "PENDING", False), ("PENDING", "SHIPPED", True),
                     ("SHIPPED", "pending", True), ("pending", "Delivered", True)]
    assert customers == [("Ana", False), ("Ana Lima", True)]
    assert statuses == {"PENDING": True, "SHIPPED": True, "pending": True, "Delivered": False}
    assert date == ("Saturday", True)

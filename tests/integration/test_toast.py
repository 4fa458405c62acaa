"""Unchanged TOAST values (issue 11, case 5): a long value the stream leaves out as
"unchanged" keeps its value in every version, across transactions of one batch and when an
update moves the row to a new primary key."""

import random

import duckdb
import psycopg

from tests.fix_sync import sync_once


def _long_text(seed: int) -> str:
    # 500 characters of 4-byte text, too random to compress: stored out of line (TOAST).
    rng = random.Random(seed)
    return "".join(chr(rng.randint(0x1F300, 0x1F5FF)) for _ in range(500))


def test_an_unchanged_long_value_follows_its_row_across_transactions_and_key_changes(
        source_db, warehouse_path):
    first, second = _long_text(1), _long_text(2)
    with psycopg.connect(source_db.app_dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO operations.customers (customer_id, customer_name, "
                     "customer_address) VALUES (900001, 'a', %s), (900002, 'b', %s)",
                     (first, second))
        sync_once(source_db, warehouse_path)
        # One batch: the address is set, then left unchanged by a later transaction; the
        # other row's address stays unchanged while its key changes, twice.
        conn.execute("UPDATE operations.customers SET customer_address = %s "
                     "WHERE customer_id = 900001", (second,))
        conn.execute("UPDATE operations.customers SET customer_name = 'a2' "
                     "WHERE customer_id = 900001")
        conn.execute("UPDATE operations.customers SET customer_id = 900003 "
                     "WHERE customer_id = 900002")
        conn.execute("UPDATE operations.customers SET customer_name = 'b2' "
                     "WHERE customer_id = 900003")
        sync_once(source_db, warehouse_path)
        conn.execute("UPDATE operations.customers SET customer_id = 900004 "
                     "WHERE customer_id = 900003")
        sync_once(source_db, warehouse_path)
        source = conn.execute("SELECT customer_id, customer_name, customer_address "
                              "FROM operations.customers WHERE customer_id > 900000 "
                              "ORDER BY 1").fetchall()
    with duckdb.connect(str(warehouse_path), read_only=True) as store:
        current = store.execute("SELECT customer_id, customer_name, customer_address "
                                "FROM current.customers WHERE customer_id > 900000 "
                                "ORDER BY 1").fetchall()
        versions = store.execute("SELECT customer_id, customer_name, customer_address "
                                  "FROM history.customers WHERE customer_id > 900000 "
                                  "ORDER BY _valid_from, customer_id").fetchall()
    assert current == source == [(900001, "a2", second), (900004, "b2", second)]
    assert versions == [(900001, "a", first), (900002, "b", second),
                        (900001, "a", second), (900001, "a2", second),
                        (900003, "b", second), (900003, "b2", second),
                        (900004, "b2", second)]

"""Open versions in key order (`warehouse/cluster.py`), on a real DuckDB file: how many row
groups a key's lookup reads, and the rewrite in key order that keeps every row."""

import pytest

from acme.warehouse.cluster import (
    ROW_GROUP_ROWS,
    SCATTERED_GROUPS,
    groups_read_per_key,
    order_by_key,
)
from acme.warehouse.store import Warehouse
from acme.warehouse.tables import TableSpec

GROUPS = 72  # past SCATTERED_GROUPS
ROWS = GROUPS * ROW_GROUP_ROWS
ITEMS = TableSpec("items", (("order_id", "BIGINT"), ("line", "INTEGER"), ("note", "VARCHAR")),
                  ("order_id", "line"))


@pytest.fixture
def warehouse(tmp_path):
    store = Warehouse.open(tmp_path / "w.duckdb")
    with store.transaction():
        store.ensure_table(ITEMS, {})
    yield store
    store.close()


def fill(warehouse: Warehouse, order: str) -> None:
    """ROWS items, two lines an order, appended in `order` (an SQL expression of i)."""
    warehouse.db.execute(f"""
        INSERT INTO open_versions.items
        SELECT i // 2, i % 2, 'n' || i, now(), 'snapshot', 0
        FROM (SELECT range AS i FROM range({ROWS}) ORDER BY {order})""")


def rows(warehouse: Warehouse) -> list[tuple]:
    return warehouse.db.execute(
        "SELECT order_id, line, note FROM open_versions.items ORDER BY ALL").fetchall()


def test_rows_in_key_order_are_one_row_group_a_key(warehouse):
    fill(warehouse, "i")
    assert groups_read_per_key(warehouse.db, ITEMS) == pytest.approx(1.0, abs=0.2)


def test_a_few_far_keys_in_every_row_group_make_each_lookup_read_them_all(warehouse):
    # One row in a thousand moved to another place, as a source heap's updated rows do.
    fill(warehouse, f"CASE WHEN i % 1000 = 7 THEN hash(i) % {ROWS} ELSE i END")
    assert groups_read_per_key(warehouse.db, ITEMS) > SCATTERED_GROUPS


def test_ordering_by_key_keeps_every_row_and_makes_lookups_narrow(warehouse):
    fill(warehouse, "hash(i)")
    before = rows(warehouse)
    assert groups_read_per_key(warehouse.db, ITEMS) > GROUPS - 1  # every row group
    with warehouse.transaction():
        order_by_key(warehouse.db, ITEMS)
    assert groups_read_per_key(warehouse.db, ITEMS) == pytest.approx(1.0, abs=0.2)
    assert rows(warehouse) == before
    assert [name for (name,) in warehouse.db.execute(
        "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'open_versions'"
    ).fetchall()] == ["items"]
    # the views over the rewritten table still read it
    assert warehouse.db.execute("SELECT count(*) FROM current.items").fetchone()[0] == ROWS


def test_an_empty_table_reads_nothing(warehouse):
    assert groups_read_per_key(warehouse.db, ITEMS) == 0.0

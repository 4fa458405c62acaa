"""The simulator makes every kind of change it claims, seen through logical decoding."""

import re
from collections import Counter

import psycopg

from acme.source.seed import SeedPlan, seed
from acme.source.simulate import KIND_WEIGHTS, run_traffic


def _decoded_changes(admin_dsn: str, slot: str) -> Counter:
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        rows = conn.execute("SELECT data FROM pg_logical_slot_get_changes(%s, NULL, NULL)",
                            (slot,)).fetchall()
    found = Counter()
    for (data,) in rows:
        match = re.match(r"table operations\.(\w+): (INSERT|UPDATE|DELETE): (.*)", data)
        if match:
            table, op, values = match.groups()
            changed = "price" if "unity_price" in values and op == "UPDATE" else ""
            found[(table, op)] += 1
            if op == "UPDATE" and table == "orders":
                status = re.search(r"status\[character varying\]:'(\w+)'", values).group(1)
                found[("orders", "UPDATE", status)] += 1
            if changed:
                found[("products", "UPDATE", "price")] += 1
    return found


def test_simulator_produces_each_kind_of_change(source_db):
    seed(source_db.app_dsn, SeedPlan.for_orders(2000, seed=5))
    with psycopg.connect(source_db.admin_dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_create_logical_replication_slot('sim_check', 'test_decoding')")
    try:
        report = run_traffic(source_db.app_dsn, rate=10_000, count=400, seed=11)
        changes = _decoded_changes(source_db.admin_dsn, "sim_check")
    finally:
        with psycopg.connect(source_db.admin_dsn, autocommit=True) as conn:
            conn.execute("SELECT pg_drop_replication_slot('sim_check')")
    assert report.transactions == 400
    assert set(report.by_kind) == set(KIND_WEIGHTS)
    assert changes[("orders", "INSERT")] == report.by_kind["new_order"]
    assert changes[("order_items", "INSERT")] >= report.by_kind["new_order"]
    assert changes[("orders", "UPDATE", "CANCELLED")] >= report.by_kind["cancellation"]
    moved = sum(n for key, n in changes.items() if len(key) == 3 and key[0] == "orders"
                and key[2] in ("CONFIRMED", "PROCESSING", "SHIPPED", "DELIVERED"))
    assert moved >= report.by_kind["status_move"]
    assert changes[("products", "UPDATE", "price")] == report.by_kind["price_change"]
    assert changes[("customers", "UPDATE")] == report.by_kind["address_change"]
    assert changes[("order_items", "UPDATE")] == report.by_kind["quantity_edit"]
    assert changes[("orders", "DELETE")] == report.by_kind["order_delete"]
    assert changes[("order_items", "DELETE")] >= report.by_kind["order_delete"]


def test_simulator_respects_duration_and_rate(source_db):
    seed(source_db.app_dsn, SeedPlan.for_orders(500, seed=5))
    report = run_traffic(source_db.app_dsn, rate=20, duration=1.5, seed=1)
    assert 1.4 <= report.seconds < 3
    assert 15 <= report.transactions <= 31

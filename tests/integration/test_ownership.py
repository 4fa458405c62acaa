"""A warehouse owns its slot: another reader, another slot or another source is refused, idle
confirms are recorded first (so they never look like another reader), and `--resnapshot`
rebuilds a warehouse that lost changes."""

import time

import duckdb
import psycopg
import pytest

from acme.lsn import parse_lsn
from acme.warehouse.ownership import ForeignSource, SlotConsumedElsewhere
from tests.e2e.cli import acme
from tests.fix_sync import BackgroundSync, sync_once, sync_options
from tests.fix_workload import assert_same_state, source_state, warehouse_state


def add_customers(db, count: int) -> None:
    with psycopg.connect(db.app_dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO operations.customers (customer_name) "
                     "SELECT 'c' || g FROM generate_series(1, %s) g", (count,))


def slot_confirmed(db) -> int:
    with psycopg.connect(db.admin_dsn) as admin:
        return parse_lsn(admin.execute(
            "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = %s",
            (db.slot,)).fetchone()[0])


def test_second_warehouse_on_the_same_slot_makes_the_first_refuse_then_resnapshot_heals(
        source_db, tmp_path):
    first, second = tmp_path / "first.duckdb", tmp_path / "second.duckdb"
    add_customers(source_db, 5)
    sync_once(source_db, first)
    sync_once(source_db, second)
    add_customers(source_db, 10)
    sync_once(source_db, second)  # consumes the ten inserts from the shared slot

    with pytest.raises(SlotConsumedElsewhere) as refused:
        sync_once(source_db, first)
    message = str(refused.value)
    assert "consumed by another reader" in message and "bytes of WAL" in message
    assert "acme sync --resnapshot" in message and "\n" not in message
    lost = int(message.split(": ")[1].split(" bytes")[0].replace(",", ""))
    assert lost > 0
    # `acme status` says so too, for the first warehouse only.
    for warehouse, flagged in ((first, True), (second, False)):
        status = acme("status", "--warehouse", str(warehouse), "--dsn", source_db.cdc_dsn,
                      "--slot", source_db.slot)
        assert status.code == 0, status.stderr
        assert ("consumed by another reader" in status.stdout) is flagged, status.stdout

    sync_once(source_db, first, resnapshot=True)
    with psycopg.connect(source_db.app_dsn) as conn:
        expected = source_state(conn)
    assert_same_state(expected, warehouse_state(first), "first after --resnapshot")
    assert not (tmp_path / "first.duckdb.resnapshot").exists()
    add_customers(source_db, 3)
    sync_once(source_db, first)  # and it streams on from there
    with psycopg.connect(source_db.app_dsn) as conn:
        assert_same_state(source_state(conn), warehouse_state(first), "first streaming on")


def test_warehouse_refuses_another_slot_or_publication(source_db, warehouse_path):
    sync_once(source_db, warehouse_path)
    with psycopg.connect(source_db.admin_dsn, autocommit=True) as admin:
        admin.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')",
                      (source_db.slot + "_b",))
        admin.execute("CREATE PUBLICATION other_pub FOR TABLE operations.orders")
    try:
        with pytest.raises(ForeignSource, match="slot " + source_db.slot + r" \(asked: "):
            sync_once(source_db, warehouse_path, slot=source_db.slot + "_b")
        with pytest.raises(ForeignSource, match=r"publication cdc_publication \(asked: other"):
            sync_once(source_db, warehouse_path, publication="other_pub")
    finally:
        with psycopg.connect(source_db.admin_dsn, autocommit=True) as admin:
            admin.execute("SELECT pg_drop_replication_slot(%s)", (source_db.slot + "_b",))
    with duckdb.connect(str(warehouse_path), read_only=True) as store:
        recorded = store.execute("SELECT slot, publication, database FROM _acme.source") \
            .fetchall()
    assert recorded == [(source_db.slot, "cdc_publication", source_db.database)]


def test_idle_confirms_are_recorded_first_so_a_restart_is_no_gap(source_db, warehouse_path):
    add_customers(source_db, 2)
    with psycopg.connect(source_db.admin_dsn, autocommit=True) as admin:
        admin.execute("CREATE TABLE public.noise (id bigserial PRIMARY KEY, note text)")
        with BackgroundSync(sync_options(source_db, warehouse_path, once=False)):
            time.sleep(1.5)
            for _ in range(10):  # unpublished WAL: only idle confirms move the slot over it
                admin.execute("INSERT INTO public.noise (note) SELECT repeat('x', 100) "
                              "FROM generate_series(1, 200)")
                time.sleep(0.3)
            time.sleep(2.5)
    with duckdb.connect(str(warehouse_path), read_only=True) as store:
        end_lsn, recorded = store.execute(
            "SELECT end_lsn, confirmed_lsn FROM _acme.checkpoint").fetchone()
    confirmed = slot_confirmed(source_db)
    assert end_lsn < confirmed <= recorded
    add_customers(source_db, 1)
    sync_once(source_db, warehouse_path)  # no gap reported: every confirm was ours
    with psycopg.connect(source_db.app_dsn) as conn:
        assert_same_state(source_state(conn), warehouse_state(warehouse_path), "after restart")


def test_connections_are_named_after_the_command_and_warehouse(source_db, warehouse_path):
    with BackgroundSync(sync_options(source_db, warehouse_path, once=False,
                                     application_name="acme sync w.duckdb")):
        deadline = time.monotonic() + 20
        with psycopg.connect(source_db.admin_dsn, autocommit=True) as admin:
            while True:
                names = [row[0] for row in admin.execute(
                    "SELECT application_name FROM pg_stat_replication").fetchall()]
                if "acme sync w.duckdb" in names or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
    assert "acme sync w.duckdb" in names

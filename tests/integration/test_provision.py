"""Provisioning produces exactly ACME's source, and a second run changes nothing."""

import psycopg
import psycopg2
import psycopg2.extras
import pytest

from acme.source.provision import TABLES, provision

EXPECTED_COLUMNS = {
    "customers": [
        ("customer_id", "bigint", "NO"), ("customer_name", "character varying(500)", "NO"),
        ("is_active", "boolean", "NO"), ("customer_address", "character varying(500)", "YES"),
    ],
    "products": [
        ("product_id", "bigint", "NO"), ("product_name", "character varying(500)", "NO"),
        ("barcode", "character varying(26)", "NO"), ("unity_price", "numeric", "NO"),
        ("is_active", "boolean", "YES"),
    ],
    "orders": [
        ("order_id", "bigint", "NO"), ("order_date", "date", "YES"),
        ("delivery_date", "date", "YES"), ("customer_id", "bigint", "YES"),
        ("status", "character varying", "YES"),
    ],
    "order_items": [
        ("order_item_id", "bigint", "NO"), ("order_id", "bigint", "YES"),
        ("product_id", "bigint", "YES"), ("quanity", "integer", "YES"),
    ],
}
AUDIT = [("updated_at", "timestamp(3) without time zone", "YES"), ("updated_by", "bigint", "YES"),
         ("created_at", "timestamp(3) without time zone", "YES"), ("created_by", "bigint", "YES")]


def test_provisioning_creates_the_exact_tables_and_columns(source_db):
    with psycopg.connect(source_db.admin_dsn) as conn:
        for table in TABLES:
            columns = conn.execute(
                """SELECT attname, format_type(atttypid, atttypmod),
                          CASE WHEN attnotnull THEN 'NO' ELSE 'YES' END
                   FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0
                   AND NOT attisdropped ORDER BY attnum""", (f"operations.{table}",)).fetchall()
            assert columns == EXPECTED_COLUMNS[table] + AUDIT
            key = conn.execute(
                """SELECT a.attname FROM pg_index i JOIN pg_attribute a
                   ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
                   WHERE i.indrelid = %s::regclass AND i.indisprimary""",
                (f"operations.{table}",)).fetchall()
            assert key == [(EXPECTED_COLUMNS[table][0][0],)]
            owner = conn.execute("SELECT tableowner FROM pg_tables WHERE schemaname = "
                                 "'operations' AND tablename = %s", (table,)).fetchone()[0]
            assert owner == "finance_db_user"
        default = conn.execute(
            "SELECT column_default FROM information_schema.columns WHERE table_name = "
            "'customers' AND column_name = 'is_active'").fetchone()[0]
        assert default == "true"


def test_provisioning_creates_users_publication_and_pgoutput_slot(source_db):
    with psycopg.connect(source_db.admin_dsn) as conn:
        roles = dict(conn.execute(
            "SELECT rolname, rolreplication FROM pg_roles WHERE rolname IN "
            "('finance_db_user', 'cdc_user')").fetchall())
        assert roles == {"finance_db_user": False, "cdc_user": True}
        published = conn.execute(
            "SELECT schemaname, tablename FROM pg_publication_tables WHERE pubname = "
            "'cdc_publication' ORDER BY tablename").fetchall()
        assert published == sorted(("operations", t) for t in TABLES)
        slot = conn.execute(
            "SELECT plugin, slot_type, database FROM pg_replication_slots WHERE slot_name = %s",
            (source_db.slot,)).fetchone()
        assert slot == ("pgoutput", "logical", source_db.database)


def test_provisioning_twice_changes_nothing(source_db):
    steps = provision(source_db.server.admin_dsn(), database=source_db.database,
                      slot=source_db.slot)
    assert [step.name for step in steps if step.changed] == []
    assert len(steps) == 11


def test_cdc_user_reads_and_replicates_but_cannot_write(source_db):
    with psycopg.connect(source_db.cdc_dsn) as conn:
        for table in TABLES:
            conn.execute(f"SELECT count(*) FROM operations.{table}").fetchone()
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("INSERT INTO operations.customers (customer_name) VALUES ('x')")
        conn.rollback()
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DELETE FROM operations.orders")
    replication = psycopg2.connect(
        source_db.cdc_dsn, connection_factory=psycopg2.extras.LogicalReplicationConnection)
    try:
        cursor = replication.cursor()
        cursor.execute("IDENTIFY_SYSTEM")
        system_id, timeline, xlogpos, dbname = cursor.fetchone()
        assert dbname == source_db.database and timeline >= 1
    finally:
        replication.close()


def test_app_user_can_write_the_tables(source_db):
    with psycopg.connect(source_db.app_dsn) as conn:
        conn.execute("INSERT INTO operations.customers (customer_name) VALUES ('Ana')")
        assert conn.execute("SELECT is_active FROM operations.customers").fetchone() == (True,)

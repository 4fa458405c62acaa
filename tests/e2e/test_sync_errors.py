"""`acme sync` refuses a broken setup with one clear line, a non-zero exit and no file."""

import os
import signal
import subprocess
import sys
import time

import duckdb
import psycopg
import psycopg2
import psycopg2.extras
import pytest

from acme.lsn import parse_lsn
from acme.ports import free_port
from acme.source.embedded import EmbeddedServer
from tests.e2e.cli import acme, assert_one_line_error
from tests.fix_source import drop_source_db, make_source_db


def sync_once(db, warehouse, *extra, dsn=None):
    return acme("sync", "--once", "--dsn", dsn or db.cdc_dsn, "--warehouse", str(warehouse),
                "--slot", db.slot, "--publication", db.publication, *extra)


@pytest.fixture
def warehouse(tmp_path):
    path = tmp_path / "w.duckdb"
    yield path
    assert not path.exists(), "a refused sync must not create the warehouse"


def test_wal_level_not_logical(tmp_path, warehouse):
    server = EmbeddedServer(tmp_path / "replica", settings={"wal_level": "replica"})
    server.up(free_port())
    try:
        run = acme("sync", "--once", "--dsn", server.admin_dsn(), "--warehouse", str(warehouse))
    finally:
        server.down(purge=True)
    assert_one_line_error(run, "wal_level is 'replica'", "wal_level = logical", "restart")


def test_publication_missing(source_db, warehouse):
    with psycopg.connect(source_db.admin_dsn, autocommit=True) as conn:
        conn.execute("DROP PUBLICATION cdc_publication")
    assert_one_line_error(sync_once(source_db, warehouse),
                          "publication cdc_publication does not exist", "CREATE PUBLICATION")


def test_slot_missing_when_told_not_to_create(pg_server, warehouse):
    db = make_source_db(pg_server, with_slot=False)
    try:
        run = sync_once(db, warehouse, "--no-create-slot")
    finally:
        drop_source_db(db)
    assert_one_line_error(run, f"replication slot {db.slot} does not exist",
                          "pg_create_logical_replication_slot")


def test_slot_in_use_names_the_client_holding_it(source_db, warehouse):
    other = psycopg2.connect(source_db.cdc_dsn, application_name="nightly export",
                             connection_factory=psycopg2.extras.LogicalReplicationConnection)
    try:
        other.cursor().start_replication(
            slot_name=source_db.slot, decode=False,
            options={"proto_version": "1", "publication_names": "cdc_publication"})
        run = sync_once(source_db, warehouse)
    finally:
        other.close()
    assert_one_line_error(run, f"replication slot {source_db.slot} is in use by 'nightly "
                          "export' from 127.0.0.1:", "(server pid ", "--slot")


def test_user_without_replication(source_db, warehouse):
    with psycopg.connect(source_db.admin_dsn, autocommit=True) as conn:
        conn.execute("DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = "
                     "'reader') THEN CREATE ROLE reader LOGIN PASSWORD 'r'; END IF; END $$")
        conn.execute("GRANT USAGE ON SCHEMA operations TO reader")
    dsn = source_db.dsn("reader", "r")
    assert_one_line_error(sync_once(source_db, warehouse, dsn=dsn),
                          "reader lacks the REPLICATION attribute", "ALTER ROLE reader")


def test_wrong_password(source_db, warehouse):
    run = sync_once(source_db, warehouse, dsn=source_db.dsn("cdc_user", "nope"))
    assert_one_line_error(run, "authentication failed", "cdc_user:***")
    assert "nope" not in run.stderr


def test_unreachable_host(source_db, warehouse):
    run = sync_once(source_db, warehouse,
                    dsn=f"postgresql://cdc_user:x@127.0.0.1:{free_port()}/finance_db")
    assert_one_line_error(run, "cannot reach")


def test_published_table_without_primary_key(source_db, warehouse):
    with psycopg.connect(source_db.admin_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE operations.notes (body text)")
        conn.execute("ALTER TABLE operations.notes REPLICA IDENTITY FULL")
        conn.execute("ALTER PUBLICATION cdc_publication ADD TABLE operations.notes")
    assert_one_line_error(sync_once(source_db, warehouse),
                          "operations.notes has no primary key", "ADD PRIMARY KEY")


def test_warehouse_in_use_by_another_process(source_db, tmp_path):
    path = tmp_path / "busy.duckdb"
    holder = subprocess.Popen([sys.executable, "-c", (
        f"import duckdb, time; c = duckdb.connect({str(path)!r}); print('ready', flush=True); "
        "time.sleep(60)")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        run = sync_once(source_db, path)
    finally:
        holder.kill()
        holder.wait()
    assert_one_line_error(run, f"the warehouse {path} is in use by another process")


def test_sigterm_finishes_the_batch_confirms_and_exits_zero(source_db, tmp_path):
    warehouse = tmp_path / "w.duckdb"
    env = {**os.environ, "ACME_SOURCE_DSN": source_db.cdc_dsn, "ACME_WAREHOUSE": str(warehouse),
           "ACME_SLOT": source_db.slot}
    process = subprocess.Popen([sys.executable, "-m", "acme", "sync"], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with psycopg.connect(source_db.app_dsn, autocommit=True) as conn:
        deadline = time.monotonic() + 30
        while not warehouse.exists():
            assert time.monotonic() < deadline
            time.sleep(0.1)
        time.sleep(1)
        conn.execute("INSERT INTO operations.customers (customer_name) VALUES ('last one')")
        time.sleep(1)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert "warehouse" in out and "Traceback" not in err
    with psycopg.connect(source_db.admin_dsn) as conn:
        confirmed = conn.execute("SELECT confirmed_flush_lsn, active FROM pg_replication_slots "
                                 "WHERE slot_name = %s", (source_db.slot,)).fetchone()
    with duckdb.connect(str(warehouse), read_only=True) as db:
        names = db.execute("SELECT customer_name FROM current.customers").fetchall()
        end_lsn = db.execute("SELECT end_lsn FROM _acme.checkpoint").fetchone()[0]
    assert names == [("last one",)]
    assert parse_lsn(str(confirmed[0])) >= end_lsn and confirmed[1] is False

"""Crash test for the lake: SIGKILL `acme sync --lake` at random points (while batches apply,
while the lake writes, and between a DuckDB commit and the lake commit that follows it),
restart each time; the lake ends exact: every version once, every delete once, every moment
rebuilt."""

import os
import random
import signal
import subprocess
import sys
import time

import duckdb
import psycopg
import pytest

from acme.source.seed import SeedPlan, seed
from tests.fix_lake import assert_lake_mirrors_history, lake_lsns, lake_state
from tests.fix_source import drop_source_db, make_source_db
from tests.fix_sync import sync_once
from tests.fix_workload import assert_same_state, record_moment
from tests.integration.test_crash import Traffic, wait_for


def start_sync(db, warehouse, lake, interval: float, log) -> subprocess.Popen:
    env = {**os.environ, "ACME_SOURCE_DSN": db.cdc_dsn, "ACME_WAREHOUSE": str(warehouse),
           "ACME_SLOT": db.slot, "ACME_PUBLICATION": db.publication, "ACME_LAKE": str(lake),
           "ACME_LAKE_INTERVAL": str(interval)}
    return subprocess.Popen([sys.executable, "-m", "acme", "sync"], env=env,
                            stdout=log, stderr=log)


def positions(warehouse, lake) -> tuple[int | None, int | None]:
    """(DuckDB checkpoint LSN, lake LSN) as the kill left them."""
    try:
        with duckdb.connect(str(warehouse), read_only=True) as db:
            row = db.execute("SELECT end_lsn FROM _acme.checkpoint").fetchone()
    except duckdb.Error:
        return None, None
    try:
        lake_lsn = min(lake_lsns(lake).values())
    except Exception:  # no lake table yet
        lake_lsn = None
    return (row[0] if row else None), lake_lsn


@pytest.mark.slow
def test_sigkill_at_random_points_leaves_an_exact_lake_after_restart(pg_server, tmp_path):
    db = make_source_db(pg_server, with_slot=False)
    warehouse, lake = tmp_path / "warehouse.duckdb", tmp_path / "lake"
    rng = random.Random(13)
    traffic = None
    try:
        seed(db.app_dsn, SeedPlan.for_orders(20_000, seed=4))
        traffic = Traffic(db.app_dsn, 17)
        traffic.start()
        admin = psycopg.connect(db.admin_dsn, autocommit=True)

        def slot_idle() -> bool:
            row = admin.execute("SELECT active FROM pg_replication_slots WHERE slot_name = %s",
                                (db.slot,)).fetchone()
            return row is None or not row[0]

        lake_behind = lake_commits_seen = 0
        for attempt in range(10):
            log_path = tmp_path / f"sync-{attempt}.log"
            # Long intervals kill between DuckDB's commits and the lake's; short ones mid-write.
            interval = 60.0 if attempt % 3 == 2 else rng.uniform(0.1, 0.6)
            with open(log_path, "w") as log:
                process = start_sync(db, warehouse, lake, interval, log)
                wait_for(lambda path=log_path: "applied" in path.read_text()
                         or "lake at" in path.read_text(), timeout=120)
                time.sleep(rng.uniform(0.2, 2.5))
                assert process.poll() is None, log_path.read_text()
                process.send_signal(signal.SIGKILL)
                process.wait()
            lake_commits_seen += "lake at" in log_path.read_text()
            wait_for(slot_idle)
            duck_lsn, lake_lsn = positions(warehouse, lake)
            lake_behind += duck_lsn is not None and (lake_lsn is None or lake_lsn < duck_lsn)
        assert lake_behind >= 3 and lake_commits_seen >= 3, (lake_behind, lake_commits_seen)

        traffic.stop.set()
        traffic.join()
        with psycopg.connect(db.app_dsn) as conn:
            final = record_moment(conn)
        admin.close()
        sync_once(db, warehouse, lake=str(lake))

        with duckdb.connect(str(warehouse), read_only=True) as store:
            checkpoint = store.execute("SELECT end_lsn FROM _acme.checkpoint").fetchone()[0]
            copied_at = store.execute("SELECT max(_valid_from) FROM history.orders "
                                      "WHERE _op = 'snapshot'").fetchone()[0]
        assert set(lake_lsns(lake).values()) == {checkpoint}
        assert_lake_mirrors_history(lake, warehouse)
        assert_same_state(final.tables, lake_state(lake), "lake now")
        checked = [m for m in traffic.moments if m.at > copied_at]
        assert len(checked) >= 3, (len(traffic.moments), copied_at)
        for number, moment in enumerate(checked):
            assert_same_state(moment.tables, lake_state(lake, moment.at), f"moment {number}")
    finally:
        if traffic is not None:  # a failed run must not leave it recording the source
            traffic.stop.set()
            traffic.join()
        drop_source_db(db)

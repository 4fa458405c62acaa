"""Crash test: SIGKILL `acme sync` at random points of the snapshot and of streaming, restart
each time; the final history equals the oracle exactly."""

import os
import random
import signal
import subprocess
import sys
import threading
import time

import duckdb
import psycopg
import pytest

from acme.classification import StatusClassification
from acme.source.seed import SeedPlan, seed
from tests.fix_source import drop_source_db, make_source_db
from tests.fix_sync import sync_once
from tests.fix_workload import (
    Moment,
    assert_history_well_formed,
    assert_same_state,
    record_moment,
    warehouse_state,
)
from tests.state_oracle import rebuilt_state, visible_state

# Each moment holds the whole source as Python tuples, and a run records them for as long as it
# lasts: a crash test that failed (and left its traffic running) grew the next test's process
# to 24 GB, and a passing one peaks at 1.8-2.4 GB unthinned (a moment of 60k orders: ~90 MB).
MOMENT_EVERY = 150  # transactions
MAX_MOMENTS = 16


class Traffic(threading.Thread):
    """Random single- and multi-row transactions, recording the source at a few moments (at
    most MAX_MOMENTS: past that, every other one is dropped, so they still span the run)."""

    def __init__(self, dsn: str, seed_value: int):
        super().__init__(daemon=True)
        self.dsn, self.rng = dsn, random.Random(seed_value)
        self.stop = threading.Event()
        self.moments: list[Moment] = []
        self.transactions = 0

    def run(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            top = conn.execute("SELECT max(order_id) FROM operations.orders").fetchone()[0]
            while not self.stop.is_set():
                with conn.transaction():
                    self.change(conn, top)
                self.transactions += 1
                if self.transactions % MOMENT_EVERY == 0:
                    self.moments.append(record_moment(conn))
                    if len(self.moments) > MAX_MOMENTS:
                        del self.moments[::2]
                time.sleep(0.002)

    def change(self, conn, top: int) -> None:
        order = self.rng.randint(1, top)
        kind = self.rng.random()
        if kind < 0.4:
            conn.execute("UPDATE operations.orders SET status = %s, updated_by = %s "
                         "WHERE order_id = %s",
                         (self.rng.choice(["PENDING", "SHIPPED", "DELIVERED"]),
                          self.rng.randint(1, 100), order))
        elif kind < 0.7:
            new = conn.execute("INSERT INTO operations.orders (status, customer_id) VALUES "
                               "('PENDING', %s) RETURNING order_id", (order,)).fetchone()[0]
            conn.execute("INSERT INTO operations.order_items (order_id, product_id, quanity) "
                         "SELECT %s, g, g FROM generate_series(1, %s) g",
                         (new, self.rng.randint(1, 4)))
        elif kind < 0.85:
            conn.execute("UPDATE operations.order_items SET quanity = NULL "
                         "WHERE order_item_id = %s", (order,))
        else:
            conn.execute("DELETE FROM operations.order_items WHERE order_item_id = %s", (order,))


def start_sync(db, warehouse, log) -> subprocess.Popen:
    env = {**os.environ, "ACME_SOURCE_DSN": db.cdc_dsn, "ACME_WAREHOUSE": str(warehouse),
           "ACME_SLOT": db.slot, "ACME_PUBLICATION": db.publication}
    return subprocess.Popen([sys.executable, "-m", "acme", "sync"], env=env,
                            stdout=log, stderr=log)


def wait_for(condition, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.mark.slow
def test_sigkill_at_random_points_then_restart_gives_exact_history(pg_server, tmp_path):
    db = make_source_db(pg_server, with_slot=False)
    warehouse = tmp_path / "warehouse.duckdb"
    rng = random.Random(2026)
    traffic = None
    try:
        seed(db.app_dsn, SeedPlan.for_orders(60_000, seed=9))
        traffic = Traffic(db.app_dsn, 7)
        traffic.start()
        admin = psycopg.connect(db.admin_dsn, autocommit=True)

        def copying() -> bool:
            return admin.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s "
                                 "AND query LIKE 'COPY%%'", (db.database,)).fetchone()[0] > 0

        def slot_idle() -> bool:
            row = admin.execute("SELECT active FROM pg_replication_slots WHERE slot_name = %s",
                                (db.slot,)).fetchone()
            return row is None or not row[0]

        kills = {"snapshot": 0, "streaming": 0}
        for attempt in range(13):
            log_path = tmp_path / f"sync-{attempt}.log"
            with open(log_path, "w") as log:
                process = start_sync(db, warehouse, log)
                in_snapshot = attempt < 5
                if in_snapshot:
                    wait_for(copying)
                    time.sleep(rng.uniform(0, 0.1))
                else:
                    wait_for(lambda path=log_path: "snapshot:" in path.read_text()
                             or "applied" in path.read_text())
                    time.sleep(rng.uniform(0.05, 1.5))
                assert process.poll() is None, log_path.read_text()
                process.send_signal(signal.SIGKILL)
                process.wait()
            kills["snapshot" if in_snapshot and "snapshot:" not in log_path.read_text()
                  else "streaming"] += 1
            wait_for(slot_idle)
        assert kills["snapshot"] >= 3 and kills["streaming"] >= 5, kills

        traffic.stop.set()
        traffic.join()
        with psycopg.connect(db.app_dsn) as conn:
            final = record_moment(conn)
        admin.close()
        sync_once(db, warehouse)

        assert_same_state(final.tables, warehouse_state(warehouse), "current")
        assert_history_well_formed(warehouse)
        with duckdb.connect(str(warehouse), read_only=True) as store:
            copied_at = store.execute("SELECT max(_valid_from) FROM history.orders "
                                      "WHERE _op = 'snapshot'").fetchone()[0]
        checked = [m for m in traffic.moments if m.at > copied_at]
        assert len(checked) >= 3, (len(traffic.moments), copied_at)
        for number, moment in enumerate(checked):
            assert_same_state(moment.tables, warehouse_state(warehouse, moment.at),
                              f"moment {number}")
        assert_same_state(final.tables, warehouse_state(warehouse, final.at), "final moment")
        with duckdb.connect(str(warehouse)) as store:  # the report state survived the kills
            assert visible_state(store, copied_at) == \
                rebuilt_state(store, StatusClassification(), copied_at)
    finally:
        if traffic is not None:  # a failed run must not leave it recording the source
            traffic.stop.set()
            traffic.join()
        drop_source_db(db)

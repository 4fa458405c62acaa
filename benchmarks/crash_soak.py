"""Crash soak: SIGKILL `acme sync` at random points, many times, checking the history oracle
after every kill.

    python -m benchmarks.crash_soak [--kills 100] [--orders 20000] [--seed 2026]

Each round starts `acme sync` (or `acme sync --resnapshot`) in a subprocess while traffic
runs, kills it with SIGKILL at a random point of one of four phases, catches up with
`acme sync --once`, and compares the warehouse with the source: current state, and every
moment recorded since the last rebuild reconstructed from history. Phases, in turn:
- snapshot: a `--resnapshot` killed while it copies (the old warehouse must stay intact);
- streaming: killed while small transactions stream in;
- large transaction: killed while a ~25k-row transaction is received or applied;
- schema change: killed right after an ALTER TABLE ADD COLUMN and writes to the new column.
"""

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import psycopg
from tests.fix_workload import (
    Moment,
    assert_history_well_formed,
    assert_same_state,
    record_moment,
    warehouse_state,
)

from acme.config import SourceAddress

PHASES = ("snapshot", "streaming", "large transaction", "schema change")


class Traffic(threading.Thread):
    """Small random transactions; pausable so a check sees a quiet source."""

    def __init__(self, dsn: str, seed: int):
        super().__init__(daemon=True)
        self.dsn, self.rng = dsn, random.Random(seed)
        self.stop, self.running = threading.Event(), threading.Event()
        self.idle = threading.Event()
        self.moments: list[Moment] = []

    def run(self) -> None:
        # Not prepared: the schema-change phase adds columns, and a prepared `SELECT *` of a
        # table whose columns changed fails ("cached plan must not change result type").
        with psycopg.connect(self.dsn, autocommit=True, prepare_threshold=None) as conn:
            top = conn.execute("SELECT max(order_id) FROM operations.orders").fetchone()[0]
            count = 0
            while not self.stop.is_set():
                if not self.running.is_set():
                    self.idle.set()
                    self.running.wait(0.1)
                    continue
                self.idle.clear()
                order = self.rng.randint(1, top)
                with conn.transaction():
                    if self.rng.random() < 0.5:
                        conn.execute("UPDATE operations.orders SET status = %s WHERE "
                                     "order_id = %s", (self.rng.choice(
                                         ["PENDING", "SHIPPED", "DELIVERED"]), order))
                    else:
                        new = conn.execute("INSERT INTO operations.orders (status, customer_id)"
                                           " VALUES ('PENDING', %s) RETURNING order_id",
                                           (order,)).fetchone()[0]
                        conn.execute("INSERT INTO operations.order_items (order_id, product_id,"
                                     " quanity) SELECT %s, g, g FROM generate_series(1, 3) g",
                                     (new,))
                count += 1
                if count % 100 == 0:
                    self.moments.append(record_moment(conn))
                time.sleep(0.003)

    def pause(self) -> None:
        self.running.clear()
        self.idle.wait(30)


@dataclass
class SoakResult:
    kills: dict[str, int] = field(default_factory=lambda: {phase: 0 for phase in PHASES})
    checks_passed: int = 0
    moments_checked: int = 0
    seconds: float = 0.0


class Soak:
    def __init__(self, address: SourceAddress, admin_dsn: str, workdir: Path, seed: int,
                 slot: str = "cdc_pgoutput", publication: str = "cdc_publication"):
        self.address, self.admin_dsn, self.workdir = address, admin_dsn, workdir
        self.slot = slot
        self.warehouse = workdir / "soak.duckdb"
        self.rng = random.Random(seed)
        self.traffic = Traffic(address.app_dsn, seed)
        self.columns_added = 0
        self.env = {**os.environ, "ACME_SOURCE_DSN": address.cdc_dsn,
                    "ACME_WAREHOUSE": str(self.warehouse), "ACME_SLOT": slot,
                    "ACME_PUBLICATION": publication}

    def run(self, kills: int) -> SoakResult:
        result = SoakResult()
        started = time.monotonic()
        self._acme("sync", "--once")  # the first copy
        self.traffic.start()
        try:
            for round_number in range(kills):
                phase = PHASES[round_number % len(PHASES)]
                self.traffic.running.set()
                self._kill_during(phase)
                result.kills[phase] += 1
                result.moments_checked += self._check(round_number)
                result.checks_passed += 1
                print(f"kill {round_number + 1:>3}/{kills} ({phase}): history exact", flush=True)
        finally:
            self.traffic.stop.set()
            self.traffic.running.set()
            self.traffic.join(timeout=30)
        result.seconds = time.monotonic() - started
        return result

    def _kill_during(self, phase: str) -> None:
        log_path = self.workdir / "sync.log"
        with open(log_path, "w") as log:
            args = ["sync", "--resnapshot"] if phase == "snapshot" else ["sync"]
            process = subprocess.Popen([sys.executable, "-m", "acme", *args], env=self.env,
                                       stdout=log, stderr=log)
            try:
                if phase == "snapshot":
                    self._wait(lambda: self._copying(), process, log_path)
                    time.sleep(self.rng.uniform(0, 0.2))
                else:
                    self._wait(lambda: self._slot_active(), process, log_path)
                    time.sleep(self.rng.uniform(0.05, 0.8))
                    if phase == "large transaction":
                        self._alone(self._large_transaction)
                        time.sleep(self.rng.uniform(0, 1.5))
                    elif phase == "schema change":
                        self._alone(self._schema_change)
                        time.sleep(self.rng.uniform(0, 0.5))
                    else:
                        time.sleep(self.rng.uniform(0, 1.0))
                assert process.poll() is None, log_path.read_text()
            finally:
                process.send_signal(signal.SIGKILL)
                process.wait()
        self._wait(lambda: not self._slot_active(), None, log_path)

    def _check(self, round_number: int) -> int:
        """Quiet the source, catch up, compare current state and every moment since the copy."""
        self.traffic.pause()
        with psycopg.connect(self.address.app_dsn) as conn:
            final = record_moment(conn)
        self._acme("sync", "--once")
        label = f"after kill {round_number + 1}"
        assert_same_state(final.tables, warehouse_state(self.warehouse), f"{label}: current")
        assert_history_well_formed(self.warehouse)
        with duckdb.connect(str(self.warehouse), read_only=True) as store:
            copied_at = store.execute("SELECT max(_valid_from) FROM history.orders "
                                      "WHERE _op = 'snapshot'").fetchone()[0]
        moments = [m for m in [*self.traffic.moments, final] if m.at > copied_at]
        for number, moment in enumerate(moments):
            assert_same_state(moment.tables, warehouse_state(self.warehouse, moment.at),
                              f"{label}: moment {number}")
        self.traffic.moments = [m for m in self.traffic.moments if m.at > copied_at][-5:]
        return len(moments)

    def _alone(self, change) -> None:
        """Run a change while traffic (which records the oracle's moments) waits: a moment's
        snapshot and its timestamp must not straddle another session's commit."""
        self.traffic.pause()
        try:
            change()
        finally:
            self.traffic.running.set()

    def _large_transaction(self) -> None:
        with psycopg.connect(self.address.app_dsn, autocommit=True) as conn:
            conn.execute("UPDATE operations.order_items SET quanity = coalesce(quanity, 0) + 1 "
                         "WHERE order_item_id %% 3 = %s", (self.rng.randint(0, 2),))

    def _schema_change(self) -> None:
        self.columns_added += 1
        column = f"soak_note_{self.columns_added}"
        with psycopg.connect(self.address.app_dsn, autocommit=True) as conn:
            conn.execute(f"ALTER TABLE operations.customers ADD COLUMN {column} integer")
            conn.execute(f"UPDATE operations.customers SET {column} = customer_id % 7 "
                         "WHERE customer_id % 5 = 0")

    def _copying(self) -> bool:
        with psycopg.connect(self.admin_dsn, autocommit=True) as admin:
            return admin.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = "
                                 "current_database() AND query LIKE 'COPY%%order_items%%'"
                                 ).fetchone()[0] > 0

    def _slot_active(self) -> bool:
        with psycopg.connect(self.admin_dsn, autocommit=True) as admin:
            row = admin.execute("SELECT active FROM pg_replication_slots WHERE slot_name = %s",
                                (self.slot,)).fetchone()
        return bool(row and row[0])

    def _wait(self, condition, process: subprocess.Popen | None, log: Path,
              timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if process is not None and process.poll() is not None:
                raise AssertionError(f"sync exited early: {log.read_text()}")
            assert time.monotonic() < deadline, f"timed out; log: {log.read_text()[-500:]}"
            time.sleep(0.01)

    def _acme(self, *args: str) -> None:
        done = subprocess.run([sys.executable, "-m", "acme", *args], env=self.env,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr


def main() -> None:
    from benchmarks.common import report, start_source

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=100)
    parser.add_argument("--orders", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=2026)
    options = parser.parse_args()
    source = start_source(options.orders, with_slot=True)
    workdir = Path(tempfile.mkdtemp(prefix="acme-soak-"))
    try:
        result = Soak(source.address, source.admin_dsn, workdir, options.seed).run(
            options.kills)
    except BaseException:
        print(f"the soak's warehouse and last sync log are kept in {workdir}", file=sys.stderr)
        raise
    finally:
        source.server.down(purge=True)
    shutil.rmtree(workdir)
    total = sum(result.kills.values())
    print(f"\n{result.checks_passed}/{total} kills followed by an exact history "
          f"({result.moments_checked} moments checked) in {result.seconds:.0f} s")
    report("crash_soak", [("kills with exact history", result.checks_passed, total, "kills")],
           {"kills_by_phase": result.kills, "moments_checked": result.moments_checked,
            "seconds": round(result.seconds, 1), "orders": options.orders})


if __name__ == "__main__":
    sys.exit(main())

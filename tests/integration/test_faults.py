"""Faults against real servers: a blackholed path, a cut during the snapshot, a source restart,
a warehouse disk that fills up or turns read-only, and a batch that runs out of memory. Each is
noticed with one line, nothing is lost, and sync carries on by itself once the fault is gone.
Detection and recovery times are printed (`pytest -s`) for the README's table."""

import subprocess
import time
from pathlib import Path

import duckdb
import psycopg
import pytest

from acme.config import SourceAddress
from acme.lsn import parse_lsn
from acme.observe.observer import SyncObserver
from acme.ports import free_port
from acme.source.provision import provision
from acme.source.seed import SeedPlan, seed
from acme.sync_options import SyncOptions
from tests.fix_source import drop_source_db, embedded_server, make_source_db
from tests.fix_sync import BackgroundSync, sync_options
from tests.fix_workload import (
    Moment,
    RandomWorkload,
    assert_history_well_formed,
    assert_same_state,
    record_moment,
    warehouse_state,
)

DETECT_WITHIN = 30.0


class FaultLog(SyncObserver):
    """When and why the pipeline lost its connection (or its disk)."""

    def __init__(self) -> None:
        self.losses: list[tuple[float, str]] = []

    def connection_lost(self, reason: str, retry_in: float) -> None:
        self.losses.append((time.monotonic(), reason))

    def first_loss_after(self, moment: float, timeout: float = 60) -> tuple[float, str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            later = [loss for loss in self.losses if loss[0] >= moment]
            if later:
                return later[0][0] - moment, later[0][1]
            time.sleep(0.05)
        raise AssertionError(f"no loss noticed within {timeout} s")


def wait_caught_up(admin_dsn: str, app: psycopg.Connection, slot: str,
                   timeout: float = 90) -> float:
    """When (monotonic) the slot is confirmed past the source's last commit (applied first)."""
    target = parse_lsn(app.execute("SELECT pg_current_wal_lsn()::text").fetchone()[0])
    started = time.monotonic()
    while True:
        try:
            with psycopg.connect(admin_dsn, autocommit=True) as admin:
                row = admin.execute("SELECT confirmed_flush_lsn::text FROM pg_replication_slots "
                                    "WHERE slot_name = %s", (slot,)).fetchone()
            if row and parse_lsn(row[0]) >= target:
                return time.monotonic()
        except psycopg.OperationalError:
            pass
        assert time.monotonic() - started < timeout, "not caught up in time"
        time.sleep(0.1)


def run_workload(app: psycopg.Connection, workload: RandomWorkload, transactions: int,
                 moments: list) -> None:
    for number in range(transactions):
        workload.transaction()
        if number % 5 == 4:
            moments.append(record_moment(app))


def assert_exact(final: Moment, warehouse: Path, moments: list[Moment]) -> None:
    """Current state and every recorded moment since the copy, rebuilt from history."""
    assert_same_state(final.tables, warehouse_state(warehouse), "current")
    assert_history_well_formed(warehouse)
    with duckdb.connect(str(warehouse), read_only=True) as store:
        copied_at = store.execute("SELECT max(_valid_from) FROM history.orders "
                                  "WHERE _op = 'snapshot'").fetchone()[0]
    checked = [m for m in [*moments, final] if copied_at is None or m.at > copied_at]
    assert len(checked) >= 3
    for number, moment in enumerate(checked):
        assert_same_state(moment.tables, warehouse_state(warehouse, moment.at),
                          f"moment {number}")


def report(fault: str, detected: float, recovered: float) -> None:
    print(f"\nFAULT {fault}: detected in {detected:.1f} s, caught up {recovered:.1f} s "
          "after the fault was removed")


def test_blackholed_path_is_detected_and_caught_up_after_it_heals(source_db, proxy,
                                                                   warehouse_path):
    log, moments = FaultLog(), []
    dsn = SourceAddress(proxy.port, source_db.database).cdc_dsn
    with psycopg.connect(source_db.app_dsn, autocommit=True) as app, \
            BackgroundSync(sync_options(source_db, warehouse_path, once=False, dsn=dsn), log):
        workload = RandomWorkload(app, seed=11)
        run_workload(app, workload, 15, moments)
        wait_caught_up(source_db.admin_dsn, app, source_db.slot)
        broke_at = time.monotonic()
        proxy.blackhole()
        run_workload(app, workload, 15, moments)
        detected, reason = log.first_loss_after(broke_at)
        proxy.heal()
        healed_at = time.monotonic()
        recovered = wait_caught_up(source_db.admin_dsn, app, source_db.slot) - healed_at
        run_workload(app, workload, 10, moments)
        wait_caught_up(source_db.admin_dsn, app, source_db.slot)
        final = record_moment(app)
    assert detected < DETECT_WITHIN and "is dead: nothing received" in reason, reason
    assert "\n" not in reason
    assert_exact(final, warehouse_path, moments)
    report("blackholed path", detected, recovered)


def test_cut_during_the_snapshot_copies_again_and_loses_nothing(pg_server, proxy, tmp_path):
    db = make_source_db(pg_server, with_slot=False)
    warehouse = tmp_path / "w.duckdb"
    log, moments = FaultLog(), []
    try:
        seed(db.app_dsn, SeedPlan.for_orders(60_000, seed=4))
        dsn = SourceAddress(proxy.port, db.database).cdc_dsn
        with psycopg.connect(db.app_dsn, autocommit=True) as app, \
                psycopg.connect(db.admin_dsn, autocommit=True) as admin, \
                BackgroundSync(sync_options(db, warehouse, once=False, dsn=dsn), log):
            deadline = time.monotonic() + 60
            copying = ("SELECT count(*) FROM pg_stat_activity WHERE datname = %s "
                       "AND query LIKE 'COPY%%'")
            # Cut while both copy connections stream rows.
            while admin.execute(copying, (db.database,)).fetchone()[0] < 2:
                assert time.monotonic() < deadline, "the copy never started"
                time.sleep(0.02)
            time.sleep(0.2)
            broke_at = time.monotonic()
            proxy.cut()
            detected, reason = log.first_loss_after(broke_at)
            workload = RandomWorkload(app, seed=12)
            run_workload(app, workload, 20, moments)
            recovered = wait_caught_up(db.admin_dsn, app, db.slot) - broke_at
            final = record_moment(app)
        assert reason.startswith("initial copy interrupted"), reason
        assert_exact(final, warehouse, moments)
    finally:
        drop_source_db(db)
    report("cut during the snapshot", detected, recovered)


def test_source_restart_mid_stream_is_ridden_out(tmp_path, warehouse_path):
    server = embedded_server(tmp_path / "restarting")
    port = free_port()
    server.up(port)
    log, moments = FaultLog(), []
    try:
        provision(server.admin_dsn(), database="finance_db", slot="cdc_pgoutput")
        address, admin_dsn = SourceAddress(port), server.admin_dsn("finance_db")
        with BackgroundSync(SyncOptions(dsn=address.cdc_dsn, warehouse=warehouse_path), log):
            with psycopg.connect(address.app_dsn, autocommit=True) as app:
                workload = RandomWorkload(app, seed=13)
                run_workload(app, workload, 15, moments)
                wait_caught_up(admin_dsn, app, "cdc_pgoutput")
            broke_at = time.monotonic()
            server.down()
            server.up(port)
            back_at = time.monotonic()
            detected, reason = log.first_loss_after(broke_at)
            with psycopg.connect(address.app_dsn, autocommit=True) as app:
                workload.conn = app
                run_workload(app, workload, 15, moments)
                recovered = wait_caught_up(admin_dsn, app, "cdc_pgoutput") - back_at
                final = record_moment(app)
        assert_exact(final, warehouse_path, moments)
    finally:
        server.down(purge=True)
    assert "replication connection" in reason or "cannot reach" in reason, reason
    report("source restart (pg_ctl stop -m fast, start)", detected, recovered)


@pytest.fixture
def small_disk(tmp_path):
    """A 48 MB tmpfs for the warehouse, so the test can fill it (needs root, as here)."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", str(mount_point)],
                   check=True)
    yield mount_point
    subprocess.run(["umount", "-l", str(mount_point)], check=True)


def fill(disk: Path) -> Path:
    filler = disk / "filler"
    with open(filler, "wb") as out:
        try:
            while True:
                out.write(b"\0" * (1 << 16))
                out.flush()
        except OSError:
            pass
    return filler


def set_immutable(paths: list[Path], on: bool) -> None:
    # Root ignores chmod; the immutable attribute stops even root's writes (on ext4, where
    # tmp_path lives; tmpfs does not enforce it on files already open).
    present = [str(path) for path in paths if path.exists()]  # DuckDB drops its WAL file
    subprocess.run(["chattr", "+i" if on else "-i", *present], check=True)


@pytest.mark.parametrize("fault", ["disk full", "read-only"])
def test_warehouse_unwritable_during_apply_says_so_then_resumes(source_db, request, tmp_path,
                                                                fault):
    disk = request.getfixturevalue("small_disk") if fault == "disk full" else tmp_path
    warehouse = disk / "w.duckdb"
    log, moments = FaultLog(), []
    with psycopg.connect(source_db.app_dsn, autocommit=True) as app, \
            BackgroundSync(sync_options(source_db, warehouse, once=False), log):
        workload = RandomWorkload(app, seed=14)
        run_workload(app, workload, 10, moments)
        wait_caught_up(source_db.admin_dsn, app, source_db.slot)
        broke_at = time.monotonic()
        if fault == "disk full":
            filler = fill(disk)
        else:
            locked = [disk, *disk.glob("w.duckdb*")]
            request.addfinalizer(lambda: set_immutable(locked, False))
            set_immutable(locked, True)
        run_workload(app, workload, 10, moments)
        detected, reason = log.first_loss_after(broke_at)
        time.sleep(2)  # a retry or two while still broken
        if fault == "disk full":
            filler.unlink()
        else:
            set_immutable(locked, False)
        fixed_at = time.monotonic()
        recovered = wait_caught_up(source_db.admin_dsn, app, source_db.slot) - fixed_at
        run_workload(app, workload, 5, moments)
        wait_caught_up(source_db.admin_dsn, app, source_db.slot)
        final = record_moment(app)
    assert reason.startswith(f"cannot write the warehouse {warehouse}"), reason
    assert "nothing is lost" in reason and "\n" not in reason
    assert_exact(final, warehouse, moments)
    report(f"warehouse {fault}", detected, recovered)


def test_a_batch_out_of_memory_is_applied_again_with_more(source_db, warehouse_path,
                                                          monkeypatch):
    # Any batch of 10 rows or more runs as a big one, at a limit too small for its merge.
    monkeypatch.setattr("acme.warehouse.apply.BIG_BATCH_ROWS", 10)
    monkeypatch.setattr("acme.warehouse.apply.BIG_BATCH_MEMORY", "1MB")
    log, moments = FaultLog(), []
    with psycopg.connect(source_db.app_dsn, autocommit=True) as app:
        workload = RandomWorkload(app, seed=15)
        run_workload(app, workload, 10, moments)
        with BackgroundSync(sync_options(source_db, warehouse_path, once=False), log):
            run_workload(app, workload, 5, moments)
            wait_caught_up(source_db.admin_dsn, app, source_db.slot)  # streamed, not copied
            updated = app.execute("UPDATE operations.order_items SET quanity = quanity + 1")
            assert updated.rowcount >= 10
            run_workload(app, workload, 10, moments)
            wait_caught_up(source_db.admin_dsn, app, source_db.slot)
            final = record_moment(app)
    reasons = [reason for _, reason in log.losses]
    assert len(reasons) == 1 and reasons[0].startswith("a batch ran out of memory"), reasons
    assert_exact(final, warehouse_path, moments)

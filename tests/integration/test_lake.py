"""The Iceberg lake: after random workloads, its append-only tables rebuild every source table
exactly, now and at recorded past moments; a commit cut short is caught up exactly once."""

from datetime import timedelta
from pathlib import Path

import duckdb
import psycopg
import pytest

from acme.lake.catalog import open_lake
from acme.lake.maintenance import maintain_lake
from acme.lake.writer import LakeWriter
from acme.source.seed import SeedPlan, seed
from tests.fix_lake import assert_lake_mirrors_history, events, lake_lsns, lake_state
from tests.fix_source import drop_source_db, make_source_db
from tests.fix_sync import sync_once
from tests.fix_workload import RandomWorkload, assert_same_state, record_moment, source_state


def checkpoint_lsn(warehouse) -> int:
    with duckdb.connect(str(warehouse), read_only=True) as db:
        return db.execute("SELECT end_lsn FROM _acme.checkpoint").fetchone()[0]


@pytest.mark.parametrize("slot_exists", [True, False], ids=["existing-slot", "new-slot"])
def test_lake_rebuilds_every_table_now_and_at_recorded_moments(pg_server, tmp_path,
                                                               slot_exists):
    db = make_source_db(pg_server, with_slot=slot_exists)
    warehouse, lake = tmp_path / "w.duckdb", tmp_path / "lake"
    try:
        seed(db.app_dsn, SeedPlan.for_orders(300, seed=5))
        moments = []
        with psycopg.connect(db.app_dsn, autocommit=True) as conn:
            workload = RandomWorkload(conn, 11, truncate_weight=1)
            for _ in range(15):
                workload.transaction()
            sync_once(db, warehouse, lake=str(lake))
            for round_ in range(4):
                for _ in range(25):
                    workload.transaction()
                    if workload.rng.random() < 0.25:
                        moments.append(record_moment(conn))
                if round_ % 2:
                    sync_once(db, warehouse, lake=str(lake))
            final = source_state(conn)
        sync_once(db, warehouse, lake=str(lake))

        assert set(lake_lsns(lake).values()) == {checkpoint_lsn(warehouse)}
        assert_lake_mirrors_history(lake, warehouse)
        assert_same_state(final, lake_state(lake), "lake now")
        assert len(moments) >= 5
        for number, moment in enumerate(moments):
            assert_same_state(moment.tables, lake_state(lake, moment.at), f"moment {number}")
        kinds = {row["_op"] for row in events(lake, "order_items")}
        assert {"snapshot", "insert", "update", "delete"} <= kinds, kinds
    finally:
        drop_source_db(db)


def test_a_lake_commit_cut_short_is_caught_up_without_duplicates(source_db, tmp_path):
    """Some tables committed, others not (a crash mid-commit): the next commit completes it."""
    warehouse, lake_dir = tmp_path / "w.duckdb", tmp_path / "lake"
    seed(source_db.app_dsn, SeedPlan.for_orders(200, seed=3))
    with psycopg.connect(source_db.app_dsn, autocommit=True) as conn:
        sync_once(source_db, warehouse, lake=str(lake_dir))
        workload = RandomWorkload(conn, 4)
        for _ in range(30):
            workload.transaction()
        moment = record_moment(conn)
        sync_once(source_db, warehouse)  # DuckDB moves on, the lake does not
        lake = open_lake(str(lake_dir))
        with duckdb.connect(str(warehouse)) as db:
            writer = LakeWriter(lake, db.cursor())
            writer.commit(only={"orders", "customers"})
            partial = lake_lsns(lake_dir)
            assert partial["orders"] != partial["order_items"]
            writer.commit()
            assert writer.commit() is None  # nothing left: exactly once
    assert set(lake_lsns(lake_dir).values()) == {checkpoint_lsn(warehouse)}
    assert_lake_mirrors_history(lake_dir, warehouse)
    assert_same_state(moment.tables, lake_state(lake_dir), "caught up")
    assert_same_state(moment.tables, lake_state(lake_dir, moment.at), "as of")


def test_compaction_and_expiry_bound_the_files_and_keep_the_content(source_db, tmp_path):
    warehouse, lake_dir = tmp_path / "w.duckdb", tmp_path / "lake"
    seed(source_db.app_dsn, SeedPlan.for_orders(200, seed=6))
    moments = []
    with psycopg.connect(source_db.app_dsn, autocommit=True) as conn:
        sync_once(source_db, warehouse, lake=str(lake_dir))
        workload = RandomWorkload(conn, 8)
        for _ in range(12):
            for _ in range(3):
                workload.transaction()
            moments.append(record_moment(conn))
            sync_once(source_db, warehouse, lake=str(lake_dir))
    lake = open_lake(str(lake_dir))
    before = {name: len(lake.table(name).inspect.files()) for name in lake.table_names()}
    files_on_disk = sum(1 for p in (lake_dir / "warehouse").rglob("*") if p.is_file())
    results = maintain_lake(lake, keep=timedelta(0), min_files=4)
    after = {name: len(lake.table(name).inspect.files()) for name in lake.table_names()}
    assert all(after[name] < before[name] for name in ("orders", "order_items")), (before,
                                                                                    after)
    assert sum(r.snapshots_expired for r in results) > 0
    assert sum(r.files_deleted for r in results) > 0
    assert sum(1 for p in (lake_dir / "warehouse").rglob("*") if p.is_file()) < files_on_disk
    data_files = {p.name for p in (lake_dir / "warehouse").rglob("*.parquet")}
    assert data_files == {Path(f).name for name in lake.table_names()
                          for f in lake.table(name).inspect.files()["file_path"].to_pylist()}
    assert set(lake_lsns(lake_dir).values()) == {checkpoint_lsn(warehouse)}
    assert_lake_mirrors_history(lake_dir, warehouse)
    for number, moment in enumerate(moments):
        assert_same_state(moment.tables, lake_state(lake_dir, moment.at), f"moment {number}")

"""`acme report NAME --engine daft` (Daft over the Iceberg lake) gives the DuckDB engine's
answer, payload for payload: now and as of past moments, for all four reports."""

import json
import os

import duckdb
import psycopg

from acme.classification import StatusClassification
from acme.lsn import format_lsn
from acme.reports.access import LocalSource
from acme.reports.definitions import REPORTS
from acme.reports.lake_engine import LakeSource
from acme.warehouse.store import Warehouse
from tests.e2e.cli import acme, assert_one_line_error
from tests.fix_workload import RandomWorkload, record_moment
from tests.integration.test_report_truth import flip_statuses


def test_daft_engine_equals_duckdb_engine_now_and_as_of(source_db, tmp_path):
    warehouse, lake = tmp_path / "w.duckdb", tmp_path / "lake"
    env = {**os.environ, "ACME_SOURCE_DSN": source_db.cdc_dsn, "ACME_WAREHOUSE": str(warehouse),
           "ACME_SLOT": source_db.slot, "ACME_PUBLICATION": source_db.publication,
           "ACME_LAKE": str(lake)}
    moments = []
    with psycopg.connect(source_db.app_dsn, autocommit=True) as conn:
        workload = RandomWorkload(conn, 21)
        for _ in range(5):
            workload.insert_customer()
        for _ in range(3):
            workload.update_product()
        run = acme("sync", "--once", env=env)
        assert run.code == 0, run.stderr
        for round_ in range(4):
            for _ in range(15):
                workload.transaction()
                flip_statuses(conn, workload.rng)
            moments.append(record_moment(conn))
            if round_ == 1:
                assert acme("sync", "--once", env=env).code == 0
    run = acme("sync", "--once", env=env)
    assert run.code == 0, run.stderr
    assert "lake at" in run.stderr

    checked = 0
    for name in REPORTS:
        for as_of in (None, moments[1].at.isoformat()):
            args = ["report", name, "--format", "json"] + (["--as-of", as_of] if as_of else [])
            duck, daft = acme(*args, env=env), acme(*args, "--engine", "daft", env=env)
            assert duck.code == 0 and daft.code == 0, duck.stderr + daft.stderr
            expected = json.loads(duck.stdout)
            assert json.loads(daft.stdout) == expected, (name, as_of)
            checked += bool(expected["rows"])
    assert checked >= 6  # the answers compared are not empty

    rules = StatusClassification()
    local = LocalSource(Warehouse.open(warehouse, read_only=True), rules)
    lake_source = LakeSource.open(str(lake), rules)
    try:
        for moment in (None, *(m.at for m in moments)):
            for name in REPORTS:
                for limit in ((None, 1, 1000) if REPORTS[name].takes_limit else (None,)):
                    assert lake_source.report(name, limit, moment) == \
                        local.report(name, limit, moment), (name, limit, moment)
    finally:
        local.close()
    with duckdb.connect(str(warehouse), read_only=True) as db:
        statuses = db.execute("SELECT count(DISTINCT status) FROM history.orders").fetchone()[0]
    assert statuses >= 5

    # Compaction keeps the answers; status shows every table at the warehouse's checkpoint.
    before = acme("report", "pending-items", "--format", "json", "--engine", "daft", env=env)
    compacted = acme("lake", "compact", "--keep-minutes", "0", "--min-files", "2",
                     env={**env, "COLUMNS": "200"})
    assert compacted.code == 0, compacted.stderr
    assert "order_items" in compacted.stdout
    after = acme("report", "pending-items", "--format", "json", "--engine", "daft", env=env)
    assert json.loads(after.stdout) == json.loads(before.stdout)
    status = acme("lake", "status", env=env)
    assert status.code == 0 and expected_lsn(warehouse) in status.stdout, status.stdout


def expected_lsn(warehouse) -> str:
    with duckdb.connect(str(warehouse), read_only=True) as db:
        return format_lsn(db.execute("SELECT end_lsn FROM _acme.checkpoint").fetchone()[0])


def test_daft_engine_without_a_lake_is_one_line(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "ACME_LAKE"}
    assert_one_line_error(acme("report", "open-orders", "--engine", "daft", env=env),
                          "--lake")
    assert_one_line_error(acme("report", "open-orders", "--engine", "daft", "--lake",
                               str(tmp_path / "nowhere"), env=env), "no lake at")

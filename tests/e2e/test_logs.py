"""`--log-format json` / ACME_LOG_FORMAT=json: every stderr line is one JSON object (snapshot
progress, batches, reconnects, errors), and no password ever appears."""

import json
import os
import time

import psycopg

from acme.source.seed import SeedPlan, seed
from acme.source.simulate import run_traffic
from tests.e2e.cli import acme
from tests.fix_serve import serving


def json_lines(text: str) -> list[dict]:
    lines = [line for line in text.splitlines() if line.strip()]
    assert lines
    return [json.loads(line) for line in lines]  # fails on any line that is not JSON


def test_sync_logs_snapshot_progress_and_batches_as_json(source_db, tmp_path):
    seed(source_db.app_dsn, SeedPlan.for_orders(800, seed=3))
    env = {**os.environ, "ACME_SOURCE_DSN": source_db.cdc_dsn, "ACME_SLOT": source_db.slot,
           "ACME_WAREHOUSE": str(tmp_path / "w.duckdb"), "ACME_LOG_FORMAT": "json"}
    first = acme("sync", "--once", env=env)
    assert first.code == 0, first.stderr
    snapshot = json_lines(first.stderr)
    progress = [line for line in snapshot if line["event"] == "snapshot_progress"]
    # The copy interleaves the tables: progress names all of them.
    assert {line["table"] for line in progress} == {"customers,order_items,orders,products"}
    done = [line for line in snapshot if line["event"] == "snapshot_done"]
    assert len(done) == 1 and done[0]["rows"] > 800
    traffic = run_traffic(source_db.app_dsn, rate=500, count=40, seed=1)
    second = acme("--log-format", "json", "sync", "--once", env={**env, "ACME_LOG_FORMAT": ""})
    assert second.code == 0, second.stderr
    batches = [line for line in json_lines(second.stderr) if line["event"] == "batch_applied"]
    assert sum(line["transactions"] for line in batches) == traffic.transactions
    assert all(line["checkpoint_lsn"].count("/") == 1 for line in batches)
    for run in (first, second):
        assert "cdc_1234" not in run.stderr + run.stdout


def test_wrong_password_is_one_json_error_line_without_the_password(source_db, tmp_path):
    dsn = source_db.dsn("cdc_user", "not-the-Secret")
    run = acme("--log-format", "json", "sync", "--once", "--dsn", dsn, "--warehouse",
               str(tmp_path / "w.duckdb"), "--slot", source_db.slot)
    assert run.code == 1
    [line] = json_lines(run.stderr)
    assert line["event"] == "error" and line["level"] == "error"
    assert line["kind"] == "SourceRejected" and "authentication failed" in line["message"]
    assert "not-the-Secret" not in run.stderr


def test_serve_logs_a_reconnect_and_counts_it_when_the_walsender_is_killed(source_db,
                                                                          tmp_path):
    seed(source_db.app_dsn, SeedPlan.for_orders(300, seed=4))
    with serving(source_db, tmp_path / "w.duckdb", ACME_LOG_FORMAT="json") as served:
        with psycopg.connect(source_db.admin_dsn, autocommit=True) as admin:
            killed = admin.execute(
                "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots "
                "WHERE slot_name = %s AND active", (source_db.slot,)).fetchone()
        assert killed == (True,)
        run_traffic(source_db.app_dsn, rate=200, count=20, seed=2)
        deadline = time.monotonic() + 30
        # The batch after the reconnect is the traffic's: the stream is back.
        while '"batch_applied"' not in served.stderr_path.read_text():
            assert time.monotonic() < deadline, served.stderr_path.read_text()
            time.sleep(0.2)
        metrics = served.client.get("/metrics").text
        code, stderr = served.stop()
    assert code == 0
    lines = json_lines(stderr)
    events = [line["event"] for line in lines]
    assert "reconnect" in events and "error" in events and "batch_applied" in events
    error = next(line for line in lines if line["event"] == "error")
    assert error["kind"] == "SourceUnreachable"
    assert 'acme_errors_total{kind="SourceUnreachable"} 1.0' in metrics
    assert "acme_reconnects_total 1.0" in metrics
    assert "cdc_1234" not in stderr

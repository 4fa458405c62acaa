"""Structured log lines: one JSON object per event, fields kept, passwords never written."""

import io
import json
import logging
from datetime import UTC, datetime

import pytest

from acme.observe.logs import LOGGER, JsonFormatter, LogObserver, redact
from acme.observe.observer import BatchStats


@pytest.mark.parametrize("text, secret", [
    ("cannot reach postgresql://cdc_user:s3cr3t@db:5432/finance_db: refused", "s3cr3t"),
    ("postgres://u:p%40ss@h/db", "p%40ss"),
    ("host=db user=cdc password=s3cr3t dbname=x", "s3cr3t"),
    ("host=db password='two words' dbname=x", "two words"),
])
def test_redact_masks_passwords_in_urls_and_conninfo(text, secret):
    masked = redact(text)
    assert secret not in masked and "***" in masked


def test_redact_leaves_masked_and_plain_text_alone():
    for text in ("postgresql://cdc_user:***@db:5432/finance_db", "applied 12 changes",
                 "http://127.0.0.1:8000/status"):
        assert redact(text) == text


@pytest.fixture
def json_lines():
    """The acme logger's records as parsed JSON objects."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    LOGGER.addHandler(handler)
    level, LOGGER.level = LOGGER.level, logging.INFO
    try:
        yield lambda: [json.loads(line) for line in out.getvalue().splitlines()]
    finally:
        LOGGER.removeHandler(handler)
        LOGGER.setLevel(level)


def test_observer_events_are_one_json_object_per_line_without_secrets(json_lines):
    observer = LogObserver()
    observer.snapshot_started(["orders"], 10)
    observer.snapshot_done(10, 0.5)
    commit = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    observer.batch_applied(BatchStats(2, 5, 0x16B3748, commit, commit, commit.timestamp() + 0.2,
                                      0.01, {("orders", "U"): 3, ("order_items", "I"): 2}))
    lost = "replication connection to postgresql://cdc_user:hunter2@db:5432/x lost: EOF"
    observer.error(ConnectionError(lost))
    observer.connection_lost(lost, 2.0)
    lines = json_lines()
    assert [line["event"] for line in lines] == [
        "snapshot_progress", "snapshot_done", "batch_applied", "error", "reconnect"]
    batch = lines[2]
    assert batch["changes"] == 5 and batch["transactions"] == 2
    assert batch["checkpoint_lsn"] == "0/16B3748" and batch["lag_ms"] == pytest.approx(200)
    assert batch["changes_by_table"] == {"orders.update": 3, "order_items.insert": 2}
    assert lines[3]["kind"] == "ConnectionError" and lines[3]["level"] == "error"
    assert lines[4]["retry_in_seconds"] == 2.0 and lines[4]["level"] == "warning"
    assert all(datetime.fromisoformat(line["time"]).tzinfo for line in lines)
    assert "hunter2" not in json.dumps(lines)

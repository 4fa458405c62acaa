"""`/metrics` of a running `acme serve`: valid Prometheus text, every promised family, and the
numbers move with traffic; the example alert rules only name metrics that exist."""

import re
import time
from pathlib import Path

import yaml
from prometheus_client.parser import text_string_to_metric_families

from acme.source.simulate import run_traffic

ROOT = Path(__file__).resolve().parents[2]
FAMILIES = {
    "acme_replication_lag_seconds", "acme_replication_lag_bytes",
    "acme_slot_retained_wal_bytes", "acme_last_applied_commit_timestamp_seconds",
    "acme_checkpoint_lsn", "acme_changes_applied", "acme_transactions_applied",
    "acme_batch_apply_duration_seconds", "acme_snapshot_rows_copied",
    "acme_snapshot_rows_estimated", "acme_snapshot_running", "acme_reconnects", "acme_errors",
    "acme_api_request_duration_seconds",
}


def scrape(client) -> dict[tuple[str, tuple], float]:
    """Every sample as (name, sorted labels) -> value; the parser raises on invalid text."""
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples, families = {}, set()
    for family in text_string_to_metric_families(response.text):
        families.add(family.name)
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    assert FAMILIES <= families, FAMILIES - families
    return samples


def value(samples, name, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_parse_and_move_with_traffic(served, source_db):
    client = served.client
    before = scrape(client)
    # The copy interleaves its tables: one series for all of them (3000 orders and their
    # items, customers and products).
    assert value(before, "acme_snapshot_rows_copied_total", table="all") > 3000
    assert value(before, "acme_snapshot_running") == 0
    client.get("/analytics/orders/top?limit=3")
    client.get("/analytics/orders/5/history")
    report = run_traffic(source_db.app_dsn, rate=200, count=150, seed=9)
    deadline = time.monotonic() + 30
    while True:
        after = scrape(client)
        applied = (value(after, "acme_transactions_applied_total")
                   - value(before, "acme_transactions_applied_total"))
        lag = value(after, "acme_replication_lag_seconds")
        if applied >= report.transactions and lag < 5:
            break
        assert time.monotonic() < deadline, (applied, report.transactions, lag)
        time.sleep(0.3)
    assert applied == report.transactions
    new_orders = report.by_kind.get("new_order", 0)
    assert value(after, "acme_changes_applied_total", table="orders", op="insert") \
        - value(before, "acme_changes_applied_total", table="orders", op="insert") \
        == new_orders
    assert value(after, "acme_changes_applied_total", table="orders", op="update") > \
        value(before, "acme_changes_applied_total", table="orders", op="update")
    assert value(after, "acme_batch_apply_duration_seconds_count") > \
        value(before, "acme_batch_apply_duration_seconds_count")
    assert value(after, "acme_last_applied_commit_timestamp_seconds") > \
        value(before, "acme_last_applied_commit_timestamp_seconds")
    assert value(after, "acme_checkpoint_lsn") > value(before, "acme_checkpoint_lsn")
    assert value(after, "acme_slot_retained_wal_bytes") > 0
    assert value(after, "acme_replication_lag_bytes") >= 0
    for route in ("/analytics/orders/top", "/analytics/orders/{order_id}/history"):
        assert value(after, "acme_api_request_duration_seconds_count", route=route,
                     method="GET", status="200") >= 1
    status = client.get("/status").json()
    assert status["lag"]["retained_wal_bytes"] > 0 and status["lag"]["seconds"] is not None


def test_alert_rules_cover_lag_and_retained_wal_with_existing_metrics(served):
    rules = [rule for group in yaml.safe_load(
        (ROOT / "deploy/prometheus/acme-alerts.yml").read_text())["groups"]
        for rule in group["rules"]]
    expressions = {rule["alert"]: rule["expr"] for rule in rules}
    assert expressions["AcmeReplicationLagHigh"] == "acme_replication_lag_seconds > 60"
    assert expressions["AcmeSlotRetainsTooMuchWal"] == "acme_slot_retained_wal_bytes > 1e9"
    exported = {name for name, _ in scrape(served.client)}
    for expression in expressions.values():
        for name in re.findall(r"\bacme_\w+", expression):
            assert name in exported, name

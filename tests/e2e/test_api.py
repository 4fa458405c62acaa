"""The HTTP API through a real client against a running `acme serve`, and the CLI's CSV/JSON
answers (asked from another process while it runs) matching the API's."""

import csv
import io
import json
import signal
import time
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from tests.e2e.cli import acme

ENDPOINTS = {
    "open-orders": "/analytics/orders?status=open",
    "top-delivery-dates": "/analytics/orders/top?limit=3",
    "pending-items": "/analytics/orders/product",
    "top-customers": "/analytics/orders/customers?status=pending&limit=3",
}


def test_every_endpoint_answers_with_freshness(served):
    client = served.client
    assert client.get("/health").json() == {"status": "ok"}
    for report, path in ENDPOINTS.items():
        body = client.get(path).json()
        assert body["report"] == report and body["rows"], report
        assert body["freshness"]["commit_lsn"] and body["freshness"]["commit_time"]
    assert len(client.get("/analytics/orders/top?limit=3").json()["rows"]) == 3
    assert len(client.get("/analytics/orders/customers?limit=1").json()["rows"]) == 1
    status = client.get("/status").json()
    assert status["rows"]["current.orders"] == 3000
    assert "/analytics/orders/top" in client.get("/openapi.json").json()["paths"]
    dashboard = client.get("/")
    assert dashboard.status_code == 200 and "text/html" in dashboard.headers["content-type"]
    script = client.get("/static/dashboard.js").text
    assert all(path.split("?")[0] in script for path in ENDPOINTS.values())
    assert client.get("/static/chart.umd.min.js").text.startswith("/*!\n * Chart.js")
    assert client.get("/docs").status_code == 200


def test_answers_travel_compressed_to_clients_that_accept_it(served):
    client = served.client
    for path in ENDPOINTS.values():
        zipped = client.get(path, headers={"Accept-Encoding": "gzip"})
        plain = client.get(path, headers={"Accept-Encoding": "identity"})
        assert zipped.headers["content-encoding"] == "gzip"
        assert "content-encoding" not in plain.headers
        assert int(zipped.headers["content-length"]) < int(plain.headers["content-length"])
        assert zipped.json() == plain.json()


def test_as_of_answers_the_past_while_changes_stream_in(served, source_db):
    client = served.client
    before = client.get("/analytics/orders/top?limit=1").json()
    moment = datetime.now(UTC).isoformat()
    with psycopg.connect(source_db.app_dsn, autocommit=True) as conn:
        date = before["rows"][0]["delivery_date"]
        conn.execute("INSERT INTO operations.orders (delivery_date, status) "
                     "SELECT %s, 'PENDING' FROM generate_series(1, 50)", (date,))
    deadline = time.monotonic() + 10
    while client.get("/analytics/orders/top?limit=1").json()["rows"] == before["rows"]:
        assert time.monotonic() < deadline, "change not visible within 10 s"
        time.sleep(0.1)
    now = client.get("/analytics/orders/top?limit=1").json()
    assert now["rows"][0]["open_orders"] == before["rows"][0]["open_orders"] + 50
    past = client.get("/analytics/orders/top", params={"limit": 1, "as_of": moment}).json()
    assert past["rows"] == before["rows"] and past["as_of"].startswith(moment[:19])


@pytest.mark.parametrize("path, fragment", [
    ("/analytics/orders?status=closed", "status"),
    ("/analytics/orders/customers?status=lost", "status"),
    ("/analytics/orders/top?limit=0", "limit"),
    ("/analytics/orders/top?limit=1001", "limit"),
    ("/analytics/orders/top?limit=abc", "limit"),
    ("/analytics/orders/product?as_of=not-a-time", "not an ISO date/time"),
    (f"/analytics/orders?as_of={(datetime.now(UTC) + timedelta(days=1)).date()}",
     "in the future"),
    ("/analytics/orders?as_of=2001-01-01", "before the history begins"),  # issue 11, case 9
])
def test_bad_parameters_are_422_with_a_clear_message(served, path, fragment):
    client = served.client
    response = client.get(path)
    assert response.status_code == 422
    assert fragment in json.dumps(response.json())


def test_cli_as_of_before_history_begins_says_when_it_begins(served):
    before = acme("report", "open-orders", "--as-of", "2001-01-01", env=served.env)
    assert before.code == 1 and "before the history begins" in before.stderr
    assert len(before.stderr.strip().splitlines()) == 1


def test_cli_csv_and_json_match_the_api_while_serve_runs(served):
    client, env = served.client, served.env
    for report, path in ENDPOINTS.items():
        limit = ["--limit", "3"] if "limit" in path else []
        api = client.get(path).json()
        as_json = acme("report", report, "--format", "json", *limit, env=env)
        assert as_json.code == 0, as_json.stderr
        cli = json.loads(as_json.stdout)
        assert cli["rows"] == api["rows"] and cli["columns"] == api["columns"]
        as_csv = acme("report", report, "--format", "csv", *limit, env=env)
        rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
        assert rows == [{k: "" if v is None else str(v) for k, v in row.items()}
                        for row in api["rows"]]


def test_cli_reads_the_file_directly_once_serve_stops(served):
    client, warehouse, env, process = (served.client, served.warehouse, served.env,
                                       served.process)
    api = client.get(ENDPOINTS["top-customers"]).json()
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=60) == 0
    out_dir = warehouse.parent / "reports"
    done = acme("report", "all", "--output-dir", str(out_dir), env=env)
    assert done.code == 0, done.stderr
    assert sorted(p.name for p in out_dir.iterdir()) == sorted(f"{r}.csv" for r in ENDPOINTS)
    rows = list(csv.DictReader((out_dir / "top-customers.csv").open()))
    assert [r["customer_id"] for r in rows] == [str(r["customer_id"]) for r in api["rows"]]


def test_status_and_history_from_another_terminal_while_serve_runs(served, source_db):
    client, env = served.client, served.env
    with psycopg.connect(source_db.app_dsn, autocommit=True) as conn:
        conn.execute("UPDATE operations.orders SET status = 'SHIPPED' WHERE order_id = 1")
        conn.execute("UPDATE operations.orders SET status = 'DELIVERED' WHERE order_id = 1")
    deadline = time.monotonic() + 10
    while len(client.get("/analytics/orders/1/history").json()["versions"]) < 3:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    status = acme("status", env=env)
    assert status.code == 0, status.stderr
    for fragment in ("checkpoint LSN: 0/", "source commit reflected: 20", "lag: ",
                     f"slot {source_db.slot} retains", "current.orders", "3,000"):
        assert fragment in status.stdout, status.stdout
    story = acme("history", "order", "1", env=env)
    assert story.code == 0, story.stderr
    assert "DELIVERED" in story.stdout and "Status moves" in story.stdout
    moves = client.get("/analytics/orders/1/history").json()["status_moves"]
    assert [(m["from_status"], m["to_status"]) for m in moves][-1] == ("SHIPPED", "DELIVERED")
    assert moves[-1]["time_in_previous_status"] >= 0

"""`acme serve` guards: a second server on the same warehouse is refused without harming the
first, the optional bearer token, 404 for an unknown order, and `status` on customers."""

import json

import httpx
import psycopg
import pytest

from acme.ports import free_port
from acme.reports.access import serve_marker
from acme.source.seed import SeedPlan, seed
from tests.e2e.cli import acme, assert_one_line_error
from tests.fix_serve import serving

TOKEN = "s3cret-token"


@pytest.fixture
def guarded(source_db, tmp_path):
    """`acme serve` with a token and a configured pending list; yields (url, env, warehouse)."""
    seed(source_db.app_dsn, SeedPlan.for_orders(2000, seed=3))
    with serving(source_db, tmp_path / "guarded.duckdb", ACME_API_TOKEN=TOKEN,
                 ACME_PENDING_STATUSES='["PENDING"]') as served:
        yield served.url, served.env, served.warehouse


def test_a_second_serve_is_refused_and_the_first_stays_reachable(guarded):
    url, env, warehouse = guarded
    marker = serve_marker(warehouse)
    recorded = marker.read_text()
    second = acme("serve", "--port", str(free_port()), env=env)
    assert_one_line_error(second, f"the warehouse {warehouse} is already served by pid",
                          url)
    assert "API at" not in second.stdout + second.stderr
    assert second.code == 1
    assert marker.read_text() == recorded
    answer = acme("report", "top-customers", "--format", "json", env=env)
    assert answer.code == 0, answer.stderr
    assert json.loads(answer.stdout)["report"] == "top-customers"


def test_token_is_required_everywhere_but_health(guarded):
    url, env, _ = guarded
    assert httpx.get(f"{url}/health").status_code == 200
    for path in ("/status", "/analytics/orders", "/analytics/orders/1/history", "/"):
        refused = httpx.get(f"{url}{path}")
        assert refused.status_code == 401 and "bearer token" in refused.json()["detail"]
        wrong = httpx.get(f"{url}{path}", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
    assert httpx.get(f"{url}/status", headers={"Authorization": f"Bearer {TOKEN}"}) \
        .status_code == 200
    no_token = acme("status", env={k: v for k, v in env.items() if k != "ACME_API_TOKEN"})
    assert_one_line_error(no_token, "asks for a token", "ACME_API_TOKEN")


def test_unknown_order_is_404_in_the_api_and_not_found_in_the_cli(guarded):
    url, env, _ = guarded
    missing = httpx.get(f"{url}/analytics/orders/999999/history",
                        headers={"Authorization": f"Bearer {TOKEN}"})
    assert missing.status_code == 404
    assert missing.json()["detail"] == "order 999999 is not in the warehouse history"
    assert_one_line_error(acme("history", "order", "999999", env=env),
                          "order 999999 is not in the warehouse history")


def test_customers_status_open_and_pending_follow_the_classification(guarded, source_db):
    url, _, _ = guarded
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with psycopg.connect(source_db.app_dsn) as conn:
        truth = {status: conn.execute(f"""
            SELECT customer_id, count(*) FROM operations.orders WHERE {condition}
            GROUP BY customer_id ORDER BY count(*) DESC, customer_id LIMIT 5""").fetchall()
            for status, condition in (
                ("pending", "upper(trim(status)) = 'PENDING'"),
                ("open", "status IS NULL OR upper(trim(status)) NOT IN ('COMPLETED', "
                         "'DELIVERED', 'CANCELLED', 'CANCELED', 'REJECTED', 'RETURNED')"))}
    answers = {}
    for status in ("open", "pending"):
        body = httpx.get(f"{url}/analytics/orders/customers",
                         params={"status": status, "limit": 5}, headers=headers).json()
        answers[status] = [(r["customer_id"], r[f"{status}_orders"]) for r in body["rows"]]
    assert answers == truth
    assert answers["open"] != answers["pending"]
    default = httpx.get(f"{url}/analytics/orders/customers", params={"limit": 5},
                        headers=headers).json()
    assert [(r["customer_id"], r["pending_orders"]) for r in default["rows"]] == truth["pending"]

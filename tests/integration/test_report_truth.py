"""Report truth: each report, now and as of past moments, equals the same question answered
on the source (SQL, now) or on the recorded source state (past)."""

import json
from collections import Counter, defaultdict

import duckdb
import psycopg
import pytest

from acme.classification import StatusClassification
from acme.reports.engine import run_report
from acme.reports.json_answer import answer_json
from acme.reports.serialize import answer_payload
from tests.fix_sync import sync_once
from tests.fix_workload import RandomWorkload, record_moment, source_state
from tests.state_oracle import rebuilt_state, visible_state

RULES = StatusClassification()
LAST = (1, None)  # sorts after any value: NULLS LAST


def nulls_last(value):
    return LAST if value is None else (0, value)


def oracle(state: dict, report: str, limit: int | None) -> list[tuple]:
    """The report computed in Python from a recorded state of the source tables."""
    orders = state["orders"]
    open_orders = [o for o in orders if RULES.is_open(o[4])]
    pending = {o[0]: o for o in orders if RULES.is_pending(o[4])}
    if report == "open-orders":
        counts = Counter((o[2], o[4]) for o in open_orders)
        return sorted(((d, s, n) for (d, s), n in counts.items()),
                      key=lambda r: (nulls_last(r[0]), nulls_last(r[1])))
    if report == "top-delivery-dates":
        counts = Counter(o[2] for o in open_orders)
        rows = sorted(counts.items(), key=lambda r: (-r[1], nulls_last(r[0])))
        return rows[:limit]
    if report == "pending-items":
        names = {p[0]: p[1] for p in state["products"]}
        lines, totals = Counter(), defaultdict(int)
        for item in state["order_items"]:
            if item[1] in pending:
                lines[item[2]] += 1
                totals[item[2]] += item[3] or 0
        rows = [(pid, names.get(pid), lines[pid], totals[pid]) for pid in lines]
        return sorted(rows, key=lambda r: (-r[3], -r[2], nulls_last(r[0])))
    names = {c[0]: c[1] for c in state["customers"]}
    counts = Counter(o[3] for o in pending.values())
    rows = sorted(((cid, names.get(cid), n) for cid, n in counts.items()),
                  key=lambda r: (-r[2], nulls_last(r[0])))
    return rows[:limit]


SOURCE_SQL = {
    "top-delivery-dates": """
        SELECT delivery_date, count(*) FROM operations.orders
        WHERE status IS NULL OR upper(trim(status)) <> ALL(%(terminal)s)
        GROUP BY 1 ORDER BY 2 DESC, 1 NULLS LAST LIMIT %(limit)s""",
    "top-customers": """
        SELECT o.customer_id, c.customer_name, count(*) FROM operations.orders o
        LEFT JOIN operations.customers c ON c.customer_id = o.customer_id
        WHERE o.status IS NULL OR upper(trim(o.status)) <> ALL(%(terminal)s)
        GROUP BY 1, 2 ORDER BY 3 DESC, 1 NULLS LAST LIMIT %(limit)s""",
}

REPORTS = [("open-orders", None), ("top-delivery-dates", 3), ("top-delivery-dates", 1000),
           ("pending-items", None), ("top-customers", 3), ("top-customers", 1000)]


def answer(warehouse, report, limit, at=None) -> list[tuple]:
    with duckdb.connect(str(warehouse), read_only=True) as db:
        computed = run_report(db, report, RULES, limit, at)
        # The API's JSON (rows rendered by DuckDB where exact) says the same, value for value.
        assert json.loads(answer_json(db, report, RULES, limit, at)) == \
            json.loads(json.dumps(answer_payload(computed))), (report, limit, at)
        return [tuple(row) for row in computed.rows]


def flip_statuses(conn, rng) -> None:
    """Statuses going back and forth between open and closed values."""
    ids = [r[0] for r in conn.execute("SELECT order_id FROM operations.orders").fetchall()]
    for order_id in rng.sample(ids, k=min(5, len(ids))):
        conn.execute("UPDATE operations.orders SET status = %s WHERE order_id = %s",
                     (rng.choice(["PENDING", "delivered", "Cancelled ", "PENDING", None,
                                  "ON HOLD"]), order_id))


@pytest.mark.parametrize("workload_seed", [3, 4])
def test_reports_equal_the_source_now_and_at_past_moments(source_db, warehouse_path,
                                                          workload_seed):
    moments = []
    with psycopg.connect(source_db.app_dsn, autocommit=True) as conn:
        sync_once(source_db, warehouse_path)
        moments.append(record_moment(conn))  # empty source: every report is empty
        workload = RandomWorkload(conn, workload_seed)
        for _ in range(4):
            workload.insert_customer()
        for _ in range(3):
            workload.update_product()
        for round_ in range(5):
            for _ in range(12):
                workload.transaction()
                flip_statuses(conn, workload.rng)
            moments.append(record_moment(conn))
            if round_ % 2 == 0:
                sync_once(source_db, warehouse_path)
        sync_once(source_db, warehouse_path)
        final = source_state(conn)
        terminal = RULES.sql_params()["terminal"]
        for report, limit in REPORTS:
            expected = oracle(final, report, limit)
            assert answer(warehouse_path, report, limit) == expected, report
            if report in SOURCE_SQL:
                on_source = conn.execute(SOURCE_SQL[report],
                                         {"terminal": terminal, "limit": limit}).fetchall()
                assert [tuple(r) for r in on_source] == expected, report

    assert all(answer(warehouse_path, r, n, moments[0].at) == [] for r, n in REPORTS)
    ties = 0
    for moment in moments[1:]:
        for report, limit in REPORTS:
            expected = oracle(moment.tables, report, limit)
            assert answer(warehouse_path, report, limit, moment.at) == expected, \
                (report, moment.at)
            counts = [row[-1] for row in expected]
            ties += len(counts) - len(set(counts))
    assert ties > 0, "the workload must produce ties to test the tie-breaks"
    with duckdb.connect(str(warehouse_path)) as db:
        assert visible_state(db) == rebuilt_state(db, RULES)

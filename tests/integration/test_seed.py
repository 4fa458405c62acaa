"""The generator is deterministic per seed and produces believable distributions."""

import psycopg
import pytest

from acme.errors import SeedError
from acme.source.seed import SeedPlan, seed
from tests.fix_source import drop_source_db, make_source_db

FINGERPRINT = """
    SELECT (SELECT md5(string_agg(c::text, '|' ORDER BY customer_id)) FROM operations.customers c),
           (SELECT md5(string_agg(p::text, '|' ORDER BY product_id)) FROM operations.products p),
           (SELECT md5(string_agg(o::text, '|' ORDER BY order_id)) FROM operations.orders o),
           (SELECT md5(string_agg(i::text, '|' ORDER BY order_item_id))
              FROM operations.order_items i)"""


@pytest.fixture
def second_source_db(pg_server):
    db = make_source_db(pg_server, with_slot=False)
    yield db
    drop_source_db(db)


def _fingerprint(dsn: str) -> tuple:
    with psycopg.connect(dsn) as conn:
        return conn.execute(FINGERPRINT).fetchone()


def test_same_seed_gives_identical_rows(source_db, second_source_db):
    plan = SeedPlan.for_orders(3000, seed=7)
    first = seed(source_db.app_dsn, plan)
    second = seed(second_source_db.app_dsn, plan)
    assert first == second
    assert _fingerprint(source_db.app_dsn) == _fingerprint(second_source_db.app_dsn)


def test_other_seed_gives_other_rows_and_reset_reloads(source_db):
    seed(source_db.app_dsn, SeedPlan.for_orders(2000, seed=1))
    before = _fingerprint(source_db.app_dsn)
    with pytest.raises(SeedError, match="--reset"):
        seed(source_db.app_dsn, SeedPlan.for_orders(2000, seed=2))
    seed(source_db.app_dsn, SeedPlan.for_orders(2000, seed=2), reset=True)
    assert _fingerprint(source_db.app_dsn)[2] != before[2]
    seed(source_db.app_dsn, SeedPlan.for_orders(2000, seed=1), reset=True)
    assert _fingerprint(source_db.app_dsn) == before


def test_seeded_data_is_believable(source_db):
    result = seed(source_db.app_dsn, SeedPlan.for_orders(20_000, seed=3))
    assert result.orders == 20_000 and result.customers == 2000 and result.products == 50
    with psycopg.connect(source_db.app_dsn) as conn:
        per_order = conn.execute(
            "SELECT min(n), max(n), avg(n) FROM (SELECT count(*) n FROM operations.order_items "
            "GROUP BY order_id) s").fetchone()
        assert per_order[0] == 1 and per_order[1] == 10 and 2.5 < per_order[2] < 4
        assert conn.execute("SELECT count(*) FROM operations.orders o WHERE NOT EXISTS "
                            "(SELECT 1 FROM operations.order_items i WHERE i.order_id = "
                            "o.order_id)").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM operations.orders "
                            "WHERE delivery_date <= order_date").fetchone()[0] == 0
        statuses = dict(conn.execute(
            "SELECT status, count(*) FROM operations.orders GROUP BY 1").fetchall())
        assert {"PENDING", "SHIPPED", "DELIVERED", "CANCELLED", "COMPLETED"} <= set(statuses)
        assert statuses["DELIVERED"] > statuses["PENDING"] > 0
        # skew: the most popular product sells far more than the median one
        top, median = conn.execute(
            "SELECT max(n), percentile_disc(0.5) WITHIN GROUP (ORDER BY n) FROM "
            "(SELECT count(*) n FROM operations.order_items GROUP BY product_id) s").fetchone()
        assert top > 5 * median
        cents = conn.execute("SELECT count(*) FROM operations.products "
                             "WHERE unity_price <> trunc(unity_price)").fetchone()[0]
        assert cents > 0
        assert conn.execute("SELECT max(scale(unity_price)) FROM operations.products"
                            ).fetchone()[0] == 2
        next_id = conn.execute("INSERT INTO operations.orders (status) VALUES ('PENDING') "
                               "RETURNING order_id").fetchone()[0]
        assert next_id == 20_001

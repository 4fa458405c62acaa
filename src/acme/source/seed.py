"""Deterministic, realistic data for ACME's source, generated inside PostgreSQL.

Every random choice is a hash of (row number, seed, purpose) -- `hashint8extended` -- rather than
a random stream, so a given seed gives the same rows whatever the chunking or the plan, and the
server does the work set-based: 1M orders with ~3M items load in well under two minutes.
Orders are loaded in chunks (each its own transaction) so progress can be shown.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

import psycopg
from psycopg import sql

from acme.errors import SeedError
from acme.source.connect import connect

DEFAULT_ANCHOR = date(2026, 11, 1)
CHUNK_ORDERS = 50_000

FIRST_NAMES = ["Ana", "Bruno", "Carla", "Diego", "Elena", "Felipe", "Gabriela", "Hugo", "Isabel",
               "João", "Karin", "Lucas", "Marta", "Nuno", "Olivia", "Pedro", "Quinn", "Rita",
               "Sofia", "Tiago", "Ursula", "Vitor", "Wanda", "Xavier", "Yara", "Zeca"]
LAST_NAMES = ["Almeida", "Barros", "Costa", "Dias", "Esteves", "Ferreira", "Gomes", "Henriques",
              "Lima", "Martins", "Nogueira", "Oliveira", "Pereira", "Queiroz", "Ribeiro", "Santos",
              "Teixeira", "Vieira"]
STREETS = ["Rua das Flores", "Avenida Central", "Travessa do Sol", "Rua Nova", "Largo da Praça",
           "Avenida da Liberdade", "Rua do Porto", "Alameda dos Anjos"]
CITIES = ["Lisboa", "Porto", "Coimbra", "Braga", "Faro", "Aveiro", "Évora", "Setúbal"]
ADJECTIVES = ["Fresh", "Organic", "Classic", "Premium", "Smart", "Compact", "Deluxe", "Eco"]
NOUNS = ["Coffee", "Olive Oil", "Rice", "Water", "Charger", "Notebook", "Soap", "Tea", "Bread",
         "Cheese", "Headphones", "Lamp", "Towel", "Juice", "Cereal", "Pasta"]


@dataclass(frozen=True)
class SeedPlan:
    orders: int
    customers: int
    products: int
    seed: int
    anchor: date

    @classmethod
    def for_orders(cls, orders: int, seed: int, anchor: date = DEFAULT_ANCHOR) -> "SeedPlan":
        if orders < 1:
            raise SeedError("--orders must be at least 1")
        return cls(orders, max(100, orders // 10), max(50, orders // 500), seed, anchor)


@dataclass(frozen=True)
class SeedResult:
    customers: int
    products: int
    orders: int
    order_items: int


def uniform(row: str, seed: int, purpose: int) -> str:
    """SQL for a uniform [0, 1) draw that depends only on (row, seed, purpose)."""
    return (f"((hashint8extended(({row})::bigint, {int(seed) * 1000 + purpose})"
            f" & 2147483647)::float8 / 2147483648.0)")


def pick(values: list[str], row: str, seed: int, purpose: int) -> str:
    literal = sql.Literal(values).as_string(None)
    return f"({literal}::text[])[1 + floor({len(values)} * {uniform(row, seed, purpose)})::int]"


def seed(app_dsn: str, plan: SeedPlan, reset: bool = False,
         progress: Callable[[int, int], None] = lambda done, total: None) -> SeedResult:
    """Load the plan's rows; `progress(orders_done, orders_total)` is called after each chunk."""
    with connect(app_dsn) as conn:
        _require_empty(conn, reset)
        conn.execute(_customers_sql(plan))
        conn.execute(_products_sql(plan))
        conn.commit()
        for first in range(1, plan.orders + 1, CHUNK_ORDERS):
            last = min(first + CHUNK_ORDERS - 1, plan.orders)
            conn.execute(_orders_sql(plan), {"first": first, "last": last})
            conn.execute(_items_sql(plan), {"first": first, "last": last})
            conn.commit()
            progress(last, plan.orders)
        for table, key in (("customers", "customer_id"), ("products", "product_id"),
                           ("orders", "order_id")):
            conn.execute(sql.SQL(
                "SELECT setval(pg_get_serial_sequence({}, {}), (SELECT max({}) FROM {}))"
            ).format(sql.Literal(f"operations.{table}"), sql.Literal(key),
                     sql.Identifier(key), sql.Identifier("operations", table)))
        items = conn.execute("SELECT count(*) FROM operations.order_items").fetchone()[0]
        conn.commit()
    return SeedResult(plan.customers, plan.products, plan.orders, items)


def _require_empty(conn: psycopg.Connection, reset: bool) -> None:
    if reset:
        conn.execute("TRUNCATE operations.order_items, operations.orders, operations.products,"
                     " operations.customers RESTART IDENTITY")
        return
    orders = conn.execute("SELECT count(*) FROM operations.orders").fetchone()[0]
    customers = conn.execute("SELECT count(*) FROM operations.customers").fetchone()[0]
    if orders or customers:
        raise SeedError(
            f"the source already holds {orders} orders and {customers} customers; "
            "pass --reset to truncate the four tables first"
        )


def _customers_sql(plan: SeedPlan) -> str:
    s = plan.seed
    return f"""
        INSERT INTO operations.customers (customer_id, customer_name, is_active, customer_address,
                                          updated_at, updated_by, created_at, created_by)
        SELECT i,
               {pick(FIRST_NAMES, 'i', s, 1)} || ' ' || {pick(LAST_NAMES, 'i', s, 2)},
               {uniform('i', s, 3)} < 0.95,
               CASE WHEN {uniform('i', s, 4)} < 0.02 THEN NULL
                    ELSE (1 + floor(400 * {uniform('i', s, 5)}))::int || ' '
                         || {pick(STREETS, 'i', s, 6)} || ', ' || {pick(CITIES, 'i', s, 7)} END,
               c.created_at, 1, c.created_at, 1
        FROM generate_series(1, {plan.customers}) AS i,
             LATERAL (SELECT date '{plan.anchor}' - interval '800 days'
                             + interval '1 second' * floor(60000000 * {uniform('i', s, 8)})
                             AS created_at) AS c"""


def _products_sql(plan: SeedPlan) -> str:
    s = plan.seed
    return f"""
        INSERT INTO operations.products (product_id, product_name, barcode, unity_price, is_active,
                                         updated_at, updated_by, created_at, created_by)
        SELECT i,
               {pick(ADJECTIVES, 'i', s, 11)} || ' ' || {pick(NOUNS, 'i', s, 12)} || ' ' || i,
               lpad((789000000000 + i * 7919)::text, 13, '0'),
               round((0.49 + 299.5 * {uniform('i', s, 13)} ^ 3)::numeric, 2),
               {uniform('i', s, 14)} < 0.9,
               timestamp '{plan.anchor}' - interval '900 days', 1,
               timestamp '{plan.anchor}' - interval '900 days', 1
        FROM generate_series(1, {plan.products}) AS i"""


def _orders_sql(plan: SeedPlan) -> str:
    s = plan.seed
    recent = ["PENDING", "PENDING", "CONFIRMED", "PROCESSING", "PROCESSING", "SHIPPED", "SHIPPED",
              "DELIVERED", "DELIVERED", "CANCELLED"]
    settled = ["DELIVERED"] * 16 + ["COMPLETED", "CANCELLED", "RETURNED", "REJECTED"]
    return f"""
        INSERT INTO operations.orders (order_id, order_date, delivery_date, customer_id, status,
                                       updated_at, updated_by, created_at, created_by)
        SELECT i, d.order_date, d.order_date + 1 + floor(14 * {uniform('i', s, 21)})::int,
               1 + floor({plan.customers} * {uniform('i', s, 22)} ^ 2.5)::bigint,
               CASE WHEN d.age <= 20 THEN {pick(recent, 'i', s, 23)}
                    ELSE {pick(settled, 'i', s, 24)} END,
               d.order_date + interval '1 second' * floor(86400 * {uniform('i', s, 25)})
                            + interval '1 hour' * least(d.age, 20) * 24,
               1 + floor(20 * {uniform('i', s, 26)})::bigint,
               d.order_date + interval '1 second' * floor(86400 * {uniform('i', s, 25)}),
               1 + floor(20 * {uniform('i', s, 27)})::bigint
        FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS i,
             LATERAL (SELECT floor(365 * {uniform('i', s, 28)} ^ 2)::int AS age) AS a,
             LATERAL (SELECT date '{plan.anchor}' - a.age AS order_date, a.age) AS d"""


def _items_sql(plan: SeedPlan) -> str:
    s = plan.seed
    line = "(o.order_id * 16 + k)"
    return f"""
        INSERT INTO operations.order_items (order_id, product_id, quanity,
                                            updated_at, updated_by, created_at, created_by)
        SELECT o.order_id,
               1 + floor({plan.products} * {uniform(line, s, 31)} ^ 3)::bigint,
               1 + floor(6 * {uniform(line, s, 32)} ^ 2)::int,
               o.created_at, o.created_by, o.created_at, o.created_by
        FROM operations.orders AS o,
             generate_series(1, 1 + floor(10 * {uniform('o.order_id', s, 33)} ^ 2.6)::int) AS k
        WHERE o.order_id BETWEEN %(first)s AND %(last)s
        ORDER BY o.order_id, k"""

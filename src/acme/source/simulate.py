"""Transactional traffic against the source, as ACME's order application would produce it.

Each change kind is one transaction: a new order with its items, a status move along the
lifecycle, a product price change, a customer address change, an item quantity edit, a
cancellation, or the delete of an order (one this session created) with its items. The mix is
weighted like a busy shop: mostly new orders and status moves. Bounded by count and/or
duration; Ctrl-C stops between transactions, so a transaction is never left half done.
"""

import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import psycopg

from acme.source.connect import connect

NEXT_STATUS = {
    "PENDING": "CONFIRMED",
    "CONFIRMED": "PROCESSING",
    "PROCESSING": "SHIPPED",
    "SHIPPED": "DELIVERED",
    "DELIVERED": "COMPLETED",
}
OPEN_STATUSES = ("PENDING", "CONFIRMED", "PROCESSING", "SHIPPED")
KIND_WEIGHTS = {
    "new_order": 30,
    "status_move": 40,
    "price_change": 5,
    "address_change": 5,
    "quantity_edit": 10,
    "cancellation": 5,
    "order_delete": 5,
}


@dataclass(frozen=True)
class TrafficReport:
    transactions: int
    seconds: float
    by_kind: dict[str, int]

    @property
    def rate(self) -> float:
        return self.transactions / self.seconds if self.seconds else 0.0


class Traffic:
    """One application session making changes."""

    def __init__(self, conn: psycopg.Connection, seed: int | None = None):
        self.conn = conn
        self.rng = random.Random(seed)
        self.max_ids = {table: self._max_id(table, key) for table, key in
                        (("orders", "order_id"), ("customers", "customer_id"),
                         ("products", "product_id"), ("order_items", "order_item_id"))}
        # Orders this session created, with their item ids: the source has no index on
        # order_items.order_id, so deletes take an order whose items we know.
        self.created: dict[int, list[int]] = {}

    def step(self) -> str:
        """Make one change (one transaction) and return its kind."""
        kind = self.rng.choices(list(KIND_WEIGHTS), weights=list(KIND_WEIGHTS.values()))[0]
        with self.conn.transaction():
            done = getattr(self, kind)()
        # With nothing to change (an empty table), make an order instead so traffic still flows.
        if not done:
            with self.conn.transaction():
                self.new_order()
            kind = "new_order"
        return kind

    def new_order(self) -> bool:
        customer = self._random_id("customers")
        if customer is None or self.max_ids["products"] == 0:
            return False
        lead_days = self.rng.randint(1, 14)
        order_id = self.conn.execute(
            """INSERT INTO operations.orders (order_date, delivery_date, customer_id, status,
                                              created_at, created_by, updated_at, updated_by)
               VALUES (current_date, current_date + %s, %s, 'PENDING',
                       localtimestamp(3), 1, localtimestamp(3), 1)
               RETURNING order_id""",
            (lead_days, customer),
        ).fetchone()[0]
        self.max_ids["orders"] = max(self.max_ids["orders"], order_id)
        items = [(order_id, self._random_id("products"), self.rng.randint(1, 5))
                 for _ in range(self.rng.randint(1, 10))]
        item_ids = [row[0] for row in self.conn.execute(
            """INSERT INTO operations.order_items (order_id, product_id, quanity,
                   created_at, created_by, updated_at, updated_by)
               SELECT %s, product_id, quanity, localtimestamp(3), 1, localtimestamp(3), 1
               FROM unnest(%s::bigint[], %s::int[]) AS t(product_id, quanity)
               RETURNING order_item_id""",
            (order_id, [product for _, product, _ in items], [qty for _, _, qty in items]),
        ).fetchall()]
        self.created[order_id] = item_ids
        self.max_ids["order_items"] = max(self.max_ids["order_items"], *item_ids)
        return True

    def status_move(self) -> bool:
        row = self._open_order()
        if row is None:
            return False
        order_id, status = row
        self.conn.execute(
            """UPDATE operations.orders SET status = %s, updated_at = localtimestamp(3),
                      updated_by = 2 WHERE order_id = %s""",
            (NEXT_STATUS.get(status, "DELIVERED"), order_id),
        )
        return True

    def price_change(self) -> bool:
        product = self._random_id("products")
        factor = self.rng.choice((0.9, 0.95, 1.05, 1.1))
        return self._updated(
            """UPDATE operations.products SET unity_price = round(unity_price * %s::numeric, 2),
                      updated_at = localtimestamp(3), updated_by = 3 WHERE product_id = %s""",
            (factor, product),
        )

    def address_change(self) -> bool:
        customer = self._random_id("customers")
        address = f"{self.rng.randint(1, 999)} Rua Mudada, Lisboa"
        return self._updated(
            """UPDATE operations.customers SET customer_address = %s,
                      updated_at = localtimestamp(3), updated_by = 4 WHERE customer_id = %s""",
            (address, customer),
        )

    def quantity_edit(self) -> bool:
        item = self._random_id("order_items")
        return self._updated(
            """UPDATE operations.order_items SET quanity = %s, updated_at = localtimestamp(3),
                      updated_by = 5 WHERE order_item_id = %s""",
            (self.rng.randint(1, 8), item),
        )

    def cancellation(self) -> bool:
        row = self._open_order()
        if row is None:
            return False
        self.conn.execute(
            """UPDATE operations.orders SET status = 'CANCELLED', updated_at = localtimestamp(3),
                      updated_by = 6 WHERE order_id = %s""",
            (row[0],),
        )
        return True

    def order_delete(self) -> bool:
        if not self.created:
            return False
        order_id = self.rng.choice(list(self.created))
        item_ids = self.created.pop(order_id)
        self.conn.execute("DELETE FROM operations.order_items WHERE order_item_id = ANY(%s)",
                          (item_ids,))
        return self._updated("DELETE FROM operations.orders WHERE order_id = %s", (order_id,))

    def _open_order(self) -> tuple[int, str] | None:
        start = self._random_id("orders")
        if start is None:
            return None
        query = """SELECT order_id, status FROM operations.orders
                   WHERE order_id >= %s AND status = ANY(%s) ORDER BY order_id LIMIT 1"""
        row = self.conn.execute(query, (start, list(OPEN_STATUSES))).fetchone()
        return row or self.conn.execute(query, (0, list(OPEN_STATUSES))).fetchone()

    def _random_id(self, table: str) -> int | None:
        top = self.max_ids[table]
        return self.rng.randint(1, top) if top else None

    def _updated(self, query: str, params: tuple) -> bool:
        return self.conn.execute(query, params).rowcount > 0

    def _max_id(self, table: str, key: str) -> int:
        return self.conn.execute(
            f"SELECT coalesce(max({key}), 0) FROM operations.{table}"  # noqa: S608 -- fixed names
        ).fetchone()[0]


def run_traffic(app_dsn: str, rate: float, duration: float | None = None,
                count: int | None = None, seed: int | None = None,
                tick: Callable[[int], None] = lambda done: None,
                stop: threading.Event | None = None) -> TrafficReport:
    """Make changes at `rate` transactions/s until `duration` seconds, `count` transactions
    or `stop` is set.

    Ctrl-C (KeyboardInterrupt) ends the run between transactions and still returns the report.
    """
    stop = stop or threading.Event()
    by_kind: Counter[str] = Counter()
    with connect(app_dsn, autocommit=True) as conn:
        traffic = Traffic(conn, seed)
        # The clock starts once the session is ready: on a loaded machine connecting took a
        # good part of a short run, and the rate then fell short of what was asked.
        started = time.monotonic()
        try:
            while not stop.is_set() and (count is None or sum(by_kind.values()) < count):
                elapsed = time.monotonic() - started
                if duration is not None and elapsed >= duration:
                    break
                done = sum(by_kind.values())
                ahead = done / rate - elapsed
                if ahead > 0:
                    time.sleep(min(ahead, 0.05))
                    continue
                by_kind[traffic.step()] += 1
                tick(done + 1)
        except KeyboardInterrupt:
            pass
    return TrafficReport(sum(by_kind.values()), time.monotonic() - started, dict(by_kind))

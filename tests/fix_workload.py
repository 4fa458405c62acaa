"""Randomized source workloads and the oracle: what the source held at recorded moments."""

import random
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation

import duckdb
import psycopg
from psycopg.types.string import TextLoader

from acme.source.provision import TABLES

KEYS = {"customers": "customer_id", "products": "product_id", "orders": "order_id",
        "order_items": "order_item_id"}
TEXTS = ["", "plain", "Évora — 北京 🚚", "it's \"quoted\"", "line\nbreak", "tab\there", "NULL",
         "x" * 300]


@dataclass(frozen=True)
class Moment:
    at: datetime
    tables: dict[str, list[tuple]]


def source_state(conn: psycopg.Connection) -> dict[str, list[tuple]]:
    cursor = conn.cursor()
    # The warehouse keeps an unconstrained numeric as PostgreSQL's exact text: compare that.
    cursor.adapters.register_loader("numeric", TextLoader)
    return {table: cursor.execute(f"SELECT * FROM operations.{table} ORDER BY {KEYS[table]}")
            .fetchall() for table in TABLES}


def record_moment(conn: psycopg.Connection) -> Moment:
    """The source's state now; the next transaction commits after `at`."""
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        tables = source_state(conn)
        at = conn.execute("SELECT clock_timestamp()").fetchone()[0]
    return Moment(at, tables)


def warehouse_state(path, at: datetime | None = None) -> dict[str, list[tuple]]:
    """Each table rebuilt from history as of `at` (or read from current when None)."""
    db = duckdb.connect(str(path), read_only=True)
    try:
        state = {}
        for table in TABLES:
            columns = [row[0] for row in db.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = "
                "'current' AND table_name = $1 ORDER BY ordinal_position", [table]).fetchall()]
            listed = ", ".join(f'"{c}"' for c in columns)
            if at is None:
                query, params = f"SELECT {listed} FROM current.{table}", []
            else:
                query = (f"SELECT {listed} FROM history.{table} WHERE _valid_from <= $1 "
                         "AND (_valid_to IS NULL OR _valid_to > $1)")
                params = [at]
            state[table] = sorted(db.execute(query, params).fetchall(), key=lambda r: r[0])
        return state
    finally:
        db.close()


def assert_same_state(expected: dict, actual: dict, label: str) -> None:
    for table in TABLES:
        want, got = expected[table], actual[table]
        assert len(got) == len(want), f"{label}: {table} has {len(got)} rows, want {len(want)}"
        for w, g in zip(want, got, strict=True):
            assert all(_same(a, b) for a, b in zip(w, g[: len(w)], strict=True)), \
                f"{label}: {table} row {w[0]}: {g} != {w}"


def _same(want, got) -> bool:
    """Equal values; a number the source reads as text (every numeric, above) or as an
    integer (a column since widened) equals the warehouse's DECIMAL of the same value."""
    if want == got:
        return True
    if isinstance(got, Decimal) and want is not None:
        try:
            return Decimal(str(want)) == got
        except InvalidOperation:
            return False
    return False


class RandomWorkload:
    """Random transactions over the four tables: inserts, repeated updates of one row in a
    transaction, multi-table transactions, primary-key changes, deletes, NULLs, truncates."""

    def __init__(self, conn: psycopg.Connection, seed: int, truncate_weight: int = 0):
        self.conn = conn
        self.rng = random.Random(seed)
        self.truncate_weight = truncate_weight

    def text(self) -> str | None:
        return None if self.rng.random() < 0.15 else self.rng.choice(TEXTS)

    def ids(self, table: str) -> list[int]:
        return [r[0] for r in self.conn.execute(
            f"SELECT {KEYS[table]} FROM operations.{table}").fetchall()]

    def pick(self, table: str) -> int | None:
        ids = self.ids(table)
        return self.rng.choice(ids) if ids else None

    def transaction(self) -> None:
        actions = [self.insert_order, self.update_many_times, self.multi_table, self.delete_some,
                   self.change_key, self.insert_customer, self.update_product]
        weights = [4, 3, 3, 2, 1, 2, 2]
        if self.truncate_weight:
            actions.append(self.truncate_items)
            weights.append(self.truncate_weight)
        with self.conn.transaction():
            for action in self.rng.choices(actions, weights, k=self.rng.randint(1, 3)):
                action()

    def insert_customer(self) -> None:
        self.conn.execute(
            "INSERT INTO operations.customers (customer_name, is_active, customer_address, "
            "updated_at, created_at) VALUES (%s, %s, %s, clock_timestamp(), NULL)",
            (self.rng.choice(TEXTS) or "n", self.rng.random() < 0.8, self.text()))

    def update_product(self) -> None:
        price = Decimal(self.rng.randint(0, 10**9)) / Decimal(10**6)
        self.conn.execute(
            "INSERT INTO operations.products (product_name, barcode, unity_price, is_active) "
            "VALUES (%s, %s, %s, %s)",
            (self.rng.choice(TEXTS) or "p", str(self.rng.randint(0, 10**12)), price,
             self.rng.choice([True, False, None])))
        target = self.pick("products")
        self.conn.execute("UPDATE operations.products SET unity_price = %s, updated_at = "
                          "'2026-05-06 07:08:09.123' WHERE product_id = %s", (price * 2, target))

    def insert_order(self) -> None:
        order = self.conn.execute(
            "INSERT INTO operations.orders (order_date, delivery_date, customer_id, status) "
            "VALUES (current_date - %s, current_date + %s, %s, %s) RETURNING order_id",
            (self.rng.randint(0, 30), self.rng.randint(0, 30), self.pick("customers"),
             self.rng.choice(["PENDING", "SHIPPED", None, "DELIVERED"]))).fetchone()[0]
        for _ in range(self.rng.randint(0, 4)):
            self.conn.execute(
                "INSERT INTO operations.order_items (order_id, product_id, quanity) "
                "VALUES (%s, %s, %s)",
                (order, self.pick("products"), self.rng.choice([1, 2, 3, None])))

    def update_many_times(self) -> None:
        target = self.pick("orders")
        for status in self.rng.sample(["PENDING", "PACKED", "SHIPPED", "DELIVERED", "PENDING"],
                                      k=3):
            self.conn.execute("UPDATE operations.orders SET status = %s, updated_by = %s "
                              "WHERE order_id = %s", (status, self.rng.randint(1, 9), target))

    def multi_table(self) -> None:
        self.insert_order()
        customer = self.pick("customers")
        self.conn.execute("UPDATE operations.customers SET customer_address = %s "
                          "WHERE customer_id = %s", (self.text(), customer))
        item = self.pick("order_items")
        self.conn.execute("UPDATE operations.order_items SET quanity = quanity + 1 "
                          "WHERE order_item_id = %s", (item,))

    def delete_some(self) -> None:
        item = self.pick("order_items")
        self.conn.execute("DELETE FROM operations.order_items WHERE order_item_id = %s", (item,))
        if self.rng.random() < 0.5:
            order = self.pick("orders")
            self.conn.execute("DELETE FROM operations.order_items WHERE order_id = %s", (order,))
            self.conn.execute("DELETE FROM operations.orders WHERE order_id = %s", (order,))

    def change_key(self) -> None:
        customer = self.pick("customers")
        self.conn.execute("UPDATE operations.customers SET customer_id = customer_id + 1000000, "
                          "customer_name = 'moved' WHERE customer_id = %s AND customer_id < "
                          "1000000", (customer,))

    def truncate_items(self) -> None:
        self.conn.execute("TRUNCATE operations.order_items")


def assert_history_well_formed(path) -> None:
    """No version ends before it starts, no key has two open or overlapping versions."""
    db = duckdb.connect(str(path), read_only=True)
    try:
        for table in TABLES:
            key = KEYS[table]
            backwards = db.execute(f"SELECT count(*) FROM history.{table} "
                                   "WHERE _valid_to < _valid_from").fetchone()[0]
            assert backwards == 0, f"{table}: {backwards} versions end before they start"
            overlaps = db.execute(f"""
                SELECT count(*) FROM (
                    SELECT _valid_to, lead(_valid_from) OVER w AS next_from,
                           count(*) FILTER (WHERE _valid_to IS NULL) OVER (PARTITION BY {key})
                               AS open_versions
                    FROM history.{table}
                    WINDOW w AS (PARTITION BY {key} ORDER BY _valid_from, _valid_to NULLS LAST))
                WHERE open_versions > 1 OR _valid_to IS NULL AND next_from IS NOT NULL
                   OR _valid_to > next_from""").fetchone()[0]
            assert overlaps == 0, f"{table}: {overlaps} overlapping or duplicated versions"
    finally:
        db.close()

"""Report state: each report's aggregates, maintained incrementally and versioned in time.

`reports.open_orders` (delivery date, status -> open orders), `reports.customer_orders`
(customer -> open and pending orders) and `reports.pending_items` (product -> pending item
lines and quantity) each hold one row per group and period, `_valid_from`/`_valid_to` like
history, and only groups with something to count. Like history, each is a view over two
tables: `<name>_now` (the open rows) and `<name>_closed` (the rows that ended, only ever
appended to), so a batch never searches the past. A report now reads `<name>_now`; a report
as of T reads the rows valid at T: both are lookups of O(groups), never scans of the orders.

Every change is an interval boundary. An order version counts from its start to its end; an
item counts for a product while the item version and a pending version of its order overlap.
The state at T is the sum of every interval's +1 at its start and -1 at its end, so a batch
only adds the boundaries it creates: intervals of the keys it touched, built from their state
before the batch (`current`, open since -infinity) and their versions in the batch (`net_*`).
A full rebuild runs the same SQL over all of history: the two must agree, which the tests
check. Changing the open/pending classification rebuilds the state at the next sync.
"""

import json
from datetime import datetime

from acme.classification import StatusClassification
from acme.warehouse.deferred import DeferringConnection
from acme.warehouse.merge import next_in_run, window_sql
from acme.warehouse.store import CLOSED, OPEN
from acme.warehouse.tables import literal

NEEDED = ("orders", "order_items")
INFINITY = "'infinity'::TIMESTAMPTZ"
MINUS_INFINITY = "'-infinity'::TIMESTAMPTZ"


class StateTable:
    """One versioned aggregate: its groups, its measures, and when a group exists."""

    def __init__(self, name: str, groups: tuple[tuple[str, str], ...],
                 measures: tuple[str, ...], exists: str):
        self.name, self.groups, self.measures, self.exists = name, groups, measures, exists

    @property
    def qualified(self) -> str:
        """Every version: the view a report as of a time reads."""
        return f"reports.{self.name}"

    @property
    def now(self) -> str:
        """The open versions only, without `_valid_to`: what a report of now reads."""
        return f"reports.{self.name}_now"

    @property
    def closed(self) -> str:
        return f"reports.{self.name}_closed"

    @property
    def columns(self) -> tuple[str, ...]:
        """Its groups, then its measures: the columns of every version."""
        return tuple(name for name, _ in self.groups) + self.measures

    def create_sql(self) -> tuple[str, str, str]:
        columns = [f"{name} {kind}" for name, kind in self.groups]
        columns += [f"{name} BIGINT NOT NULL" for name in self.measures]
        names = ", ".join(self.columns)
        return (f"CREATE TABLE {self.closed} ({', '.join(columns)}, "
                "_valid_from TIMESTAMPTZ NOT NULL, _valid_to TIMESTAMPTZ NOT NULL)",
                f"CREATE TABLE {self.now} ({', '.join(columns)}, "
                "_valid_from TIMESTAMPTZ NOT NULL)",
                f"""CREATE VIEW {self.qualified} AS
                    SELECT {names}, _valid_from, _valid_to FROM {self.closed}
                    UNION ALL
                    SELECT {names}, _valid_from, NULL::TIMESTAMPTZ FROM {self.now}""")

    def apply_sql(self, events: str, by_group: bool = True) -> tuple[str, ...]:
        """Fold `events` (groups, `_t`, measure deltas) into the versions: build the new
        versions (`state_versions`, left for the caller to drop), append to the closed ones
        the open versions they follow and those that ended with something to count, then set
        each changed group's row of `now` to its last version (none: nothing to count).
        `by_group`: the windows are partitioned by group, else one ordered run (`window_sql`).
        Three statements: each costs a batch some milliseconds whatever its rows.

        A boundary older than the group's open version (commit times are not strictly
        monotonic in commit order) is moved to that version's start."""
        groups = [name for name, _ in self.groups]
        group_list = ", ".join(groups)
        names = ", ".join(self.columns)
        same = " AND ".join(f"s.{g} IS NOT DISTINCT FROM e.{g}" for g in groups)
        same_v = " AND ".join(f"s.{g} IS NOT DISTINCT FROM v.{g}" for g in groups)
        open_version = f"{self.now} AS s ON {same}"  # the open versions, without the rest
        sums = ", ".join(f"sum(e.{m}) AS _delta_{m}" for m in self.measures)
        changed = " OR ".join(f"_delta_{m} <> 0" for m in self.measures)
        # Named after the table: DuckDB refuses a window name defined twice in one call, and
        # the state tables' statements are sent together (`deferred.py`).
        window, group_window = f"w_{self.name}", f"v_{self.name}"
        event_groups = [f"e.{g}" for g in groups]
        other_group = " OR ".join(f"lag({g}) OVER {window} IS DISTINCT FROM {g}"
                                  for g in event_groups)
        # A group's measures run on from its open version. The windows may run over every
        # group in one partition: a run's sums then start from where the group's first row
        # found them.
        running = ", ".join(
            f"coalesce(s.{m}, 0) AS _open_{m}, e._delta_{m}, "
            f"sum(e._delta_{m}) OVER ({window} ROWS UNBOUNDED PRECEDING) AS _sum_{m}"
            for m in self.measures)
        measures = ", ".join(
            f"_open_{m} + _sum_{m} - last_value(CASE WHEN _first THEN _sum_{m} - _delta_{m} END "
            f"IGNORE NULLS) OVER ({group_window} ROWS UNBOUNDED PRECEDING) AS {m}"
            for m in self.measures)
        return (
            f"""
            CREATE OR REPLACE TEMP TABLE state_versions AS
            SELECT {group_list}, _valid_from, _valid_to, {measures}
            FROM (SELECT {', '.join(event_groups)}, e._t AS _valid_from,
                         {next_in_run(event_groups, 'e._t', window)} AS _valid_to,
                         row_number() OVER {window} = 1 OR {other_group} AS _first, {running}
                  FROM (SELECT * FROM (
                            SELECT {', '.join(event_groups)},
                                   greatest(e._t, coalesce(s._valid_from, e._t)) AS _t, {sums}
                            FROM ({events}) AS e LEFT JOIN {open_version}
                            GROUP BY ALL)
                        WHERE {changed}) AS e
                  LEFT JOIN {open_version}
                  WINDOW {window_sql(window, event_groups, 'e._t', by_group)})
            WINDOW {window_sql(group_window, groups, '_valid_from', by_group)}""",
            f"""
            INSERT INTO {self.closed} ({names}, _valid_from, _valid_to)
            SELECT {', '.join(f's.{n}' for n in self.columns)},
                   s._valid_from, v._first
            FROM {self.now} AS s
            JOIN (SELECT {group_list}, min(_valid_from) AS _first FROM state_versions
                  GROUP BY ALL) AS v ON {same_v}
            UNION ALL
            SELECT {names}, _valid_from, _valid_to FROM state_versions
            WHERE _valid_to IS NOT NULL AND ({self.exists})""",
            # A group's last version is the one still open (`_valid_to` NULL): one a group.
            f"""
            MERGE INTO {self.now} AS s
            USING (SELECT *, ({self.exists}) AS _exists FROM state_versions
                   WHERE _valid_to IS NULL) AS v ON {same_v}
            WHEN MATCHED AND v._exists THEN
                UPDATE SET {', '.join(f'{m} = v.{m}' for m in self.measures)},
                           _valid_from = v._valid_from
            WHEN MATCHED THEN DELETE
            WHEN NOT MATCHED AND v._exists THEN
                INSERT ({names}, _valid_from)
                VALUES ({', '.join(f'v.{n}' for n in self.columns)}, v._valid_from)""",
        )

    def start_sql(self, events: str) -> str:
        """The versions of `events` that all fall at one time, none ending (`apply_sql` for a
        first copy): each group's one event is its one open version, with no window to run."""
        names = ", ".join(self.columns)
        return (f"INSERT INTO {self.now} ({names}, _valid_from) "
                f"SELECT {names}, _t FROM ({events}) WHERE {self.exists}")

    def close_all_sql(self) -> tuple[str, str]:
        """Everything stops counting at $1 (a TRUNCATE)."""
        names = ", ".join(self.columns)
        return (f"INSERT INTO {self.closed} ({names}, _valid_from, _valid_to) "
                f"SELECT {names}, _valid_from, greatest($1, _valid_from) FROM {self.now}",
                f"DELETE FROM {self.now}")


OPEN_ORDERS = StateTable("open_orders", (("delivery_date", "DATE"), ("status", "VARCHAR")),
                         ("open_orders",), "open_orders > 0")
CUSTOMER_ORDERS = StateTable("customer_orders", (("customer_id", "BIGINT"),),
                             ("open_orders", "pending_orders"),
                             "open_orders > 0 OR pending_orders > 0")
PENDING_ITEMS = StateTable("pending_items", (("product_id", "BIGINT"),),
                           ("item_lines", "total_quantity"), "item_lines > 0")
STATE_TABLES = (OPEN_ORDERS, CUSTOMER_ORDERS, PENDING_ITEMS)


def _status_sql(classification: StatusClassification, column: str) -> tuple[str, str]:
    """SQL for "open" and "pending" over a status column (case and blanks ignored)."""
    params = classification.sql_params()
    terminal = "[" + ", ".join(literal(s) for s in params["terminal"]) + "]::VARCHAR[]"
    is_open = f"({column} IS NULL OR NOT list_contains({terminal}, upper(trim({column}))))"
    if not params["pending"]:
        return is_open, is_open
    pending = "[" + ", ".join(literal(s) for s in params["pending"]) + "]::VARCHAR[]"
    return is_open, f"coalesce(list_contains({pending}, upper(trim({column}))), false)"


def _boundaries(source: str, groups: str, measures: dict[str, str]) -> str:
    """+measure at each interval's start and -measure at its end, summed per group and time;
    `source` has `_vf`/`_vt` (-infinity: counted before; NULL: still open)."""
    plus = ", ".join(f"{expr} AS {name}" for name, expr in measures.items())
    minus = ", ".join(f"-({expr}) AS {name}" for name, expr in measures.items())
    sums = ", ".join(f"sum({name}) AS {name}" for name in measures)
    return f"""
        SELECT {groups}, _t, {sums} FROM (
            SELECT {groups}, _vf AS _t, {plus} FROM {source} WHERE _vf > {MINUS_INFINITY}
            UNION ALL
            SELECT {groups}, _vt AS _t, {minus} FROM {source}
            WHERE _vt IS NOT NULL AND _vt < {INFINITY})
        GROUP BY ALL"""


def events_sql(classification: StatusClassification, orders: str, items: str,
               pending_orders: str) -> dict[StateTable, str]:
    """Each state's boundary events over interval sources: `orders` (order versions),
    `items` (item versions) and `pending_orders` (order_id, _vf, _vt while pending)."""
    is_open, is_pending = _status_sql(classification, "status")
    pairs = f"""
        (SELECT i.product_id, coalesce(i.quanity, 0) AS quantity,
                greatest(i._vf, o._vf) AS _vf,
                least(coalesce(i._vt, {INFINITY}), coalesce(o._vt, {INFINITY})) AS _vt
         FROM {items} AS i JOIN {pending_orders} AS o ON o.order_id = i.order_id)"""
    return {
        OPEN_ORDERS: _boundaries(f"(SELECT * FROM {orders} WHERE {is_open})",
                                 "delivery_date, status", {"open_orders": "1"}),
        CUSTOMER_ORDERS: _boundaries(
            f"(SELECT * FROM {orders} WHERE {is_open} OR {is_pending})", "customer_id",
            {"open_orders": f"{is_open}::INTEGER", "pending_orders": f"{is_pending}::INTEGER"}),
        PENDING_ITEMS: _boundaries(f"(SELECT * FROM {pairs} WHERE _vf < _vt)", "product_id",
                                   {"item_lines": "1", "total_quantity": "quantity"}),
    }


def pending_orders_sql(classification: StatusClassification, orders: str) -> str:
    _, is_pending = _status_sql(classification, "status")
    return f"(SELECT order_id, _vf, _vt FROM {orders} WHERE {is_pending})"


HISTORY_ORDERS = ("(SELECT order_id, delivery_date, status, customer_id, "
                  "_valid_from AS _vf, _valid_to AS _vt FROM history.orders)")
HISTORY_ITEMS = ("(SELECT order_item_id, order_id, product_id, quanity, "
                 "_valid_from AS _vf, _valid_to AS _vt FROM history.order_items)")

# The touched keys' intervals in one batch, from `net_orders`/`net_order_items` (the batch's
# versions, `_next_ts` their end) and `before_orders`/`before_order_items` (their rows in
# `current` before the batch: open since -infinity, until the key's first change). Items of
# touched orders count too, and the orders of touched items: `contexts` has them read into
# the same tables (only the columns read here), marked not `_touched`.
BATCH_INTERVALS = (
    f"""
    CREATE OR REPLACE TEMP TABLE batch_orders AS
    SELECT b.order_id, b.delivery_date, b.status, b.customer_id,
           {MINUS_INFINITY} AS _vf, f._first AS _vt
    FROM before_orders AS b
    JOIN (SELECT order_id, min(_commit_ts) AS _first FROM net_orders GROUP BY ALL) AS f
      ON f.order_id = b.order_id
    UNION ALL
    SELECT order_id, delivery_date, status, customer_id, _commit_ts, _next_ts
    FROM net_orders WHERE _op <> 'D'""",
    f"""
    CREATE OR REPLACE TEMP TABLE batch_items AS
    SELECT b.order_item_id, b.order_id, b.product_id, b.quanity,
           {MINUS_INFINITY} AS _vf, f._first AS _vt
    FROM before_order_items AS b
    JOIN (SELECT order_item_id, min(_commit_ts) AS _first FROM net_order_items
          GROUP BY ALL) AS f ON f.order_item_id = b.order_item_id
    UNION ALL
    SELECT order_item_id, order_id, product_id, quanity, _commit_ts, _next_ts
    FROM net_order_items WHERE _op <> 'D'
    UNION ALL
    SELECT b.order_item_id, b.order_id, b.product_id, b.quanity, {MINUS_INFINITY}, NULL
    FROM before_order_items AS b
    WHERE NOT b._touched AND b.order_id IN (SELECT order_id FROM net_orders)""",
)


def batch_pending_orders_sql(classification: StatusClassification) -> str:
    _, is_pending = _status_sql(classification, "b.status")
    return f"""
    CREATE OR REPLACE TEMP TABLE batch_pending_orders AS
    SELECT order_id, _vf, _vt FROM {pending_orders_sql(classification, 'batch_orders')}
    UNION ALL
    SELECT b.order_id, {MINUS_INFINITY}, NULL FROM before_orders AS b
    WHERE NOT b._touched AND b.order_id IN (SELECT DISTINCT order_id FROM batch_items)
      AND {is_pending}"""


EMPTY_NET = """
    CREATE OR REPLACE TEMP TABLE "net_{table}" AS
    SELECT NULL::BIGINT AS _seq, NULL::VARCHAR AS _op, NULL::TIMESTAMPTZ AS _commit_ts,
           NULL::UBIGINT AS _lsn, *, NULL::TIMESTAMPTZ AS _next_ts
    FROM current.{table} LIMIT 0"""


class ReportState:
    """Keeps the state tables of one warehouse connection in step with its history."""

    def __init__(self, db: DeferringConnection, classification: StatusClassification):
        self.db = db
        self.classification = classification

    def ensure(self, tables: set[str]) -> bool:
        """Build the state once the tables it needs exist, or rebuild it when the
        classification changed; returns whether it is maintained."""
        if not set(NEEDED) <= tables:
            return False
        wanted = json.dumps(self.classification.sql_params(), sort_keys=True)
        row = self.db.execute("SELECT classification FROM _acme.report_state").fetchone()
        built = self.db.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'reports' "
            "AND table_name IN $1",
            [[t.split(".")[1] for state in STATE_TABLES for t in (state.now, state.closed)]]
        ).fetchone()[0]
        if row is None or row[0] != wanted or built < 2 * len(STATE_TABLES):
            self.rebuild()
            self.db.execute("DELETE FROM _acme.report_state")
            self.db.execute("INSERT INTO _acme.report_state VALUES ($1, now())", [wanted])
        return True

    def rebuild(self) -> None:
        """Recompute every state table from all of history (in an earlier layout too: the
        schema holds nothing else)."""
        self.db.execute("DROP SCHEMA IF EXISTS reports CASCADE")
        self.db.execute("CREATE SCHEMA reports")
        events = events_sql(self.classification, HISTORY_ORDERS, HISTORY_ITEMS,
                            pending_orders_sql(self.classification, HISTORY_ORDERS))
        at_once = self._all_open_since_one_time()
        for table in STATE_TABLES:
            built = (table.start_sql(events[table]),) if at_once else \
                table.apply_sql(events[table])
            for statement in (*table.create_sql(), *built):
                self.db.execute(statement)
        if not at_once:
            self.db.execute("DROP TABLE state_versions")

    def _all_open_since_one_time(self) -> bool:
        """Whether every order and item version is open and began at the same time, as after
        a first copy: then the state is the events at that time (`StateTable.start_sql`), and
        the first sync skips the windows over millions of events (the build of a 1.2M-order
        copy took 0.13 s instead of 0.24)."""
        return bool(self.db.execute(f"""
            SELECT (SELECT count(*) FROM {CLOSED}.orders)
                   + (SELECT count(*) FROM {CLOSED}.order_items) = 0
               AND min(_valid_from) = max(_valid_from) AND isfinite(min(_valid_from))
            FROM (SELECT _valid_from FROM {OPEN}.orders
                  UNION ALL SELECT _valid_from FROM {OPEN}.order_items)""").fetchone()[0])

    def contexts(self, touched: set[str]) -> dict[str, tuple[str, str | None, tuple[str, ...]]]:
        """For a batch touching these tables, once their touched open versions are taken: the
        open versions the state needs beside them, per table, in the order they must be read
        (items of touched orders, then the orders of items read or touched): those whose column
        is among keys (a query of one column over the staged tables `rows_<table>` and the
        `before_<table>` read so far, or None: none), and the columns the state reads of them.

        The items of a touched order count only where it turns pending or stops being so (a
        delete stops it, an insert after none starts it): an order pending throughout ends its
        items' intervals with its old version exactly where its new one starts them again. A
        status left unchanged (TOAST) may have turned: its items are read."""
        if not touched & set(NEEDED):
            return {}
        _, was_pending = _status_sql(self.classification, "b.status")
        _, is_pending = _status_sql(self.classification, "r.status")
        items = None
        if "orders" in touched:
            items = f"""
                SELECT k FROM (
                    SELECT CAST(r.order_id AS BIGINT) AS k,
                           CASE WHEN r._op = 'D' THEN false
                                WHEN list_contains(r._unchanged, 'status') THEN NULL
                                ELSE {is_pending} END AS pending
                    FROM rows_orders AS r
                    UNION ALL
                    SELECT CAST(r.order_id AS BIGINT),
                           CASE WHEN b.order_id IS NULL THEN false ELSE {was_pending} END
                    FROM rows_orders AS r
                    LEFT JOIN before_orders AS b ON b.order_id = CAST(r.order_id AS BIGINT))
                GROUP BY k HAVING count(DISTINCT pending) > 1 OR bool_or(pending IS NULL)"""
        # one IN: an OR of two runs two mark joins. Touched orders are taken already: their
        # keys would only make the scan read their row groups.
        orders = "SELECT order_id FROM before_order_items"
        if "order_items" in touched:
            orders += " UNION ALL SELECT CAST(order_id AS BIGINT) FROM rows_order_items"
        if "orders" in touched:
            orders += " EXCEPT SELECT CAST(order_id AS BIGINT) FROM rows_orders"
        return {"order_items": ("order_id", items,
                                ("order_item_id", "order_id", "product_id", "quanity")),
                "orders": ("order_id", orders,
                           ("order_id", "delivery_date", "status", "customer_id"))}

    def apply_batch(self, touched: set[str], by_group: bool) -> None:
        """Add the boundaries of one batch. Call with the batch's `net_<table>` and
        `before_<table>` (with `contexts`) built; its statements may still wait in `db`.
        `by_group`: windows partitioned by group (a big batch), else one ordered run."""
        if not touched & set(NEEDED):
            return
        for table in NEEDED:
            if table not in touched:
                self.db.later(EMPTY_NET.format(table=table))
        for statement in BATCH_INTERVALS:
            self.db.later(statement)
        self.db.later(batch_pending_orders_sql(self.classification))
        events = events_sql(self.classification, "batch_orders", "batch_items",
                            "batch_pending_orders")
        # Only orders count in open_orders and customer_orders; items move pending_items.
        for table in STATE_TABLES if "orders" in touched else (PENDING_ITEMS,):
            for statement in table.apply_sql(events[table], by_group):
                self.db.later(statement)
        for table in ("state_versions", "batch_orders", "batch_items", "batch_pending_orders",
                      *(f"net_{t}" for t in NEEDED if t not in touched)):
            self.db.later(f"DROP TABLE {table}")

    def truncated(self, table: str, commit_time: datetime) -> None:
        """A TRUNCATE of orders or order_items at `commit_time` ends all they counted."""
        affected = STATE_TABLES if table == "orders" else (PENDING_ITEMS,)
        if table in NEEDED:
            for state in affected:
                close_versions, empty_now = state.close_all_sql()
                self.db.execute(close_versions, [commit_time])
                self.db.execute(empty_now)

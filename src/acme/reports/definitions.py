"""The four business reports, each one SQL text over the maintained report state.

The state tables (`reports.*`, see `warehouse/report_state.py`) already hold each report's
aggregates per group, versioned in time, so a report reads O(groups) rows now or as of a past
time. `{open_orders}`, `{customer_orders}`, `{pending_items}` stand for a state table's rows
valid now or at `$as_of`; `{products}` and `{customers}` for the names as they were then;
`{counted}` for the customer count asked (pending_orders, or open_orders for status=open). They
are filled from this module's own constants, never from user input. Tie-breaks are
deterministic:
- open-orders: delivery date, then status (NULLs last);
- top-delivery-dates: most open orders first, then the earlier delivery date;
- pending-items: largest total quantity first, then more item lines, then product id;
- top-customers: most pending orders first, then the smaller customer id.
"""

from dataclasses import dataclass

from acme.warehouse.report_state import STATE_TABLES


@dataclass(frozen=True)
class Report:
    """`sql` selects the answer's rows; `order` sorts them, by the names of its columns (the
    rows rendered as JSON inside DuckDB are sorted by it again, see `json_answer.py`), and a
    report that takes a limit keeps that many of them."""

    name: str
    title: str
    sql: str
    order: str
    takes_limit: bool
    default_limit: int | None = None

    def query(self, as_of: bool, counted: str) -> str:
        limit = " LIMIT $limit" if self.takes_limit else ""
        return (f"{self.sql} ORDER BY {self.order}{limit}"
                .format(**table_sources(as_of), counted=counted))


REPORTS = {report.name: report for report in (
    Report("open-orders", "Open orders by delivery date and status", """
        SELECT delivery_date, status, open_orders
        FROM {open_orders}""", "delivery_date NULLS LAST, status NULLS LAST", takes_limit=False),
    Report("top-delivery-dates", "Delivery dates with the most open orders", """
        SELECT delivery_date, CAST(sum(open_orders) AS BIGINT) AS open_orders
        FROM {open_orders}
        GROUP BY delivery_date""", "open_orders DESC, delivery_date NULLS LAST",
           takes_limit=True, default_limit=3),
    Report("pending-items", "Open pending items by product", """
        SELECT s.product_id, p.product_name, s.item_lines, s.total_quantity
        FROM {pending_items} AS s
        LEFT JOIN {products} AS p ON p.product_id = s.product_id""",
           "total_quantity DESC, item_lines DESC, product_id NULLS LAST", takes_limit=False),
    Report("top-customers", "Customers with the most pending orders", """
        SELECT s.customer_id, c.customer_name, s.{counted}
        FROM (SELECT customer_id, {counted} FROM {customer_orders}
              WHERE {counted} > 0
              ORDER BY {counted} DESC, customer_id NULLS LAST
              LIMIT $limit) AS s
        LEFT JOIN {customers} AS c ON c.customer_id = s.customer_id""",
           "{counted} DESC, customer_id NULLS LAST", takes_limit=True, default_limit=3),
)}

NAMES = ("products", "customers")


def table_sources(as_of: bool) -> dict[str, str]:
    """SQL for each state table and name table now, or as of the `$as_of` parameter."""
    valid = ("_valid_from <= $as_of AND (_valid_to IS NULL OR _valid_to > $as_of)" if as_of
             else "_valid_to IS NULL")
    sources = {table.name: f"(SELECT * FROM {table.qualified} WHERE {valid})" if as_of
               else table.now for table in STATE_TABLES}
    for name in NAMES:
        sources[name] = (f"(SELECT * FROM history.{name} WHERE {valid})" if as_of
                         else f"current.{name}")
    return sources

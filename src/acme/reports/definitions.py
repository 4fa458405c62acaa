"""The four business reports, each one SQL text over the warehouse's tables.

`{orders}`, `{order_items}`, `{products}`, `{customers}` stand for the table as it is now
(`current.*`) or as it was at `$as_of` (history versions valid then); they are filled from
this module's own constants, never from user input. Tie-breaks are deterministic:
- open-orders: delivery date, then status (NULLs last);
- top-delivery-dates: most open orders first, then the earlier delivery date;
- pending-items: largest total quantity first, then more item lines, then product id;
- top-customers: most pending orders first, then the smaller customer id.
"""

from dataclasses import dataclass

from acme.reports.classification import OPEN_SQL, PENDING_SQL


@dataclass(frozen=True)
class Report:
    name: str
    title: str
    sql: str
    takes_limit: bool
    default_limit: int | None = None


REPORTS = {report.name: report for report in (
    Report("open-orders", "Open orders by delivery date and status", f"""
        SELECT delivery_date, status, count(*) AS open_orders
        FROM {{orders}}
        WHERE ({OPEN_SQL})
        GROUP BY delivery_date, status
        ORDER BY delivery_date NULLS LAST, status NULLS LAST""", takes_limit=False),
    Report("top-delivery-dates", "Delivery dates with the most open orders", f"""
        SELECT delivery_date, count(*) AS open_orders
        FROM {{orders}}
        WHERE ({OPEN_SQL})
        GROUP BY delivery_date
        ORDER BY open_orders DESC, delivery_date NULLS LAST
        LIMIT $limit""", takes_limit=True, default_limit=3),
    Report("pending-items", "Open pending items by product", f"""
        SELECT i.product_id, p.product_name, count(*) AS item_lines,
               coalesce(sum(i.quanity), 0) AS total_quantity
        FROM {{order_items}} AS i
        JOIN (SELECT order_id FROM {{orders}} WHERE ({PENDING_SQL})) AS o
          ON o.order_id = i.order_id
        LEFT JOIN {{products}} AS p ON p.product_id = i.product_id
        GROUP BY i.product_id, p.product_name
        ORDER BY total_quantity DESC, item_lines DESC, i.product_id NULLS LAST""",
           takes_limit=False),
    Report("top-customers", "Customers with the most pending orders", f"""
        SELECT o.customer_id, c.customer_name, count(*) AS pending_orders
        FROM (SELECT customer_id FROM {{orders}} WHERE ({PENDING_SQL})) AS o
        LEFT JOIN {{customers}} AS c ON c.customer_id = o.customer_id
        GROUP BY o.customer_id, c.customer_name
        ORDER BY pending_orders DESC, o.customer_id NULLS LAST
        LIMIT $limit""", takes_limit=True, default_limit=3),
)}

TABLES = ("orders", "order_items", "products", "customers")


def table_sources(as_of: bool) -> dict[str, str]:
    """SQL for each table now, or as of the `$as_of` parameter."""
    if not as_of:
        return {table: f"current.{table}" for table in TABLES}
    return {table: (f"(SELECT * FROM history.{table} WHERE _valid_from <= $as_of "
                    "AND (_valid_to IS NULL OR _valid_to > $as_of))") for table in TABLES}

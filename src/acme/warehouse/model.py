"""The dimensional model: views over history, so every apply transaction keeps it exact.

`model.dim_customer`, `model.dim_product` (SCD type 2: one row per version, surrogate key a
hash of natural key and version start), `model.dim_date` (a calendar table), the status
classification as macros, `model.fact_order_item` (one row per current order line, priced
with the product version valid when the order was created, or the first version known when
the order predates the capture) and
`model.fact_order_status_change` (one row per status move, with time spent in the previous
status). Views are created once the source tables exist and replaced at each sync start, so
a changed status classification takes effect there.
"""

import re

from acme.classification import StatusClassification
from acme.warehouse.evolve import model_names
from acme.warehouse.store import Warehouse
from acme.warehouse.tables import literal, quote

NEEDED = {"customers", "products", "orders", "order_items"}


def _list(values: tuple[str, ...] | list[str]) -> str:
    return "[" + ", ".join(literal(v) for v in values) + "]::VARCHAR[]"


def model_sql(classification: StatusClassification) -> list[str]:
    params = classification.sql_params()
    terminal, pending = _list(params["terminal"]), _list(params["pending"])
    return [
        "CREATE SCHEMA IF NOT EXISTS model",
        f"""CREATE OR REPLACE MACRO model.is_open_status(s) AS
            s IS NULL OR NOT list_contains({terminal}, upper(trim(s)))""",
        f"""CREATE OR REPLACE MACRO model.is_pending_status(s) AS
            CASE WHEN len({pending}) = 0 THEN model.is_open_status(s)
                 ELSE coalesce(list_contains({pending}, upper(trim(s))), false) END""",
        # An unconstrained numeric is kept as PostgreSQL's exact text (`tables.py`); this is
        # its DECIMAL(38,10) value where that holds it exactly, else NULL (NaN, Infinity, more
        # than 28 integer or 10 decimal digits): never a silently rounded number.
        r"""CREATE OR REPLACE MACRO model.exact_decimal(v) AS
            CASE WHEN regexp_full_match(CAST(v AS VARCHAR), '-?[0-9]{1,28}(\.[0-9]{0,10})?')
                 THEN CAST(CAST(v AS VARCHAR) AS DECIMAL(38,10)) END""",
        """CREATE TABLE IF NOT EXISTS model.dim_date AS
           SELECT CAST(strftime(d, '%Y%m%d') AS INTEGER) AS date_key, CAST(d AS DATE) AS date,
                  year(d) AS year, quarter(d) AS quarter, month(d) AS month,
                  monthname(d) AS month_name, day(d) AS day, isodow(d) AS iso_day_of_week,
                  dayname(d) AS day_name, weekofyear(d) AS iso_week,
                  isodow(d) >= 6 AS is_weekend
           FROM range(DATE '2000-01-01', DATE '2041-01-01', INTERVAL 1 DAY) AS t(d)""",
        """CREATE OR REPLACE VIEW model.dim_customer AS
           SELECT hash(customer_id, _valid_from) AS customer_key, customer_id, customer_name,
                  customer_address, is_active, _valid_from AS valid_from, _valid_to AS valid_to,
                  _valid_to IS NULL AS is_current
           FROM history.customers""",
        """CREATE OR REPLACE VIEW model.dim_product AS
           SELECT hash(product_id, _valid_from) AS product_key, product_id, product_name,
                  barcode, unity_price, model.exact_decimal(unity_price) AS unit_price,
                  is_active, _valid_from AS valid_from,
                  _valid_to AS valid_to, _valid_to IS NULL AS is_current
           FROM history.products""",
        """CREATE OR REPLACE VIEW model.dim_status AS
           SELECT status, model.is_open_status(status) AS is_open,
                  model.is_pending_status(status) AS is_pending
           FROM (SELECT DISTINCT status FROM history.orders)""",
        """CREATE OR REPLACE VIEW model.fact_order_item AS
           SELECT i.order_item_id, i.order_id, o.order_date, o.delivery_date,
                  CAST(strftime(o.order_date, '%Y%m%d') AS INTEGER) AS order_date_key,
                  CAST(strftime(o.delivery_date, '%Y%m%d') AS INTEGER) AS delivery_date_key,
                  o.status, model.is_open_status(o.status) AS is_open,
                  model.is_pending_status(o.status) AS is_pending,
                  o.customer_id, c.customer_key, i.product_id, p.product_key,
                  i.quanity AS quantity, p.unit_price,
                  i.quanity * p.unit_price AS amount
           FROM current.order_items AS i
           JOIN current.orders AS o ON o.order_id = i.order_id
           LEFT JOIN (SELECT *, CASE WHEN row_number() OVER (PARTITION BY product_id
                                                             ORDER BY valid_from) = 1
                                     THEN TIMESTAMPTZ '-infinity' ELSE valid_from END
                                AS priced_from
                      FROM model.dim_product) AS p
                ON p.product_id = i.product_id
                AND p.priced_from <= coalesce(o.created_at, now())
                AND (p.valid_to IS NULL OR p.valid_to > coalesce(o.created_at, now()))
           LEFT JOIN model.dim_customer AS c ON c.customer_id = o.customer_id
                AND c.is_current""",
        """CREATE OR REPLACE VIEW model.fact_order_status_change AS
           SELECT order_id, from_status, to_status, changed_at,
                  changed_at - previous_change AS time_in_previous_status
           FROM (SELECT order_id, status AS to_status, _valid_from AS changed_at, _op,
                        lag(status) OVER w AS from_status,
                        lag(_valid_from) OVER w AS previous_change,
                        row_number() OVER w AS version
                 FROM history.orders WINDOW w AS (PARTITION BY order_id ORDER BY _valid_from))
           WHERE (version = 1 AND _op = 'insert')
              OR (version > 1 AND from_status IS DISTINCT FROM to_status)""",
    ]


_SOURCE = re.compile(r"\b(history|current)\.(customers|products|orders|order_items)\b")


def under_model_names(statement: str, renamed: dict[str, dict[str, str]]) -> str:
    """The statement reading renamed source columns under the names the model expects:
    `history.t` becomes `(SELECT * RENAME (now AS expected) FROM history.t)`."""
    def source(match: re.Match) -> str:
        columns = renamed.get(match[2])
        if not columns:
            return match[0]
        renames = ", ".join(f"{quote(now)} AS {quote(expected)}"
                            for expected, now in columns.items())
        return f"(SELECT * RENAME ({renames}) FROM {match[0]})"
    return _SOURCE.sub(source, statement)


def ensure_model(warehouse: Warehouse, classification: StatusClassification) -> bool:
    """(Re)create the model once the four source tables exist; returns whether it did.
    Source columns renamed since the model was written are read under their first names."""
    if not NEEDED <= set(warehouse.tables()):
        return False
    renamed = model_names(warehouse.db)
    for statement in model_sql(classification):
        warehouse.db.execute(under_model_names(statement, renamed))
    return True

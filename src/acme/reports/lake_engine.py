"""The four reports computed by Daft from the lake's Iceberg tables (locally, or on a Ray
cluster when Daft is pointed at one: `DAFT_RUNNER=ray` and `RAY_ADDRESS`).

The same questions, columns, ordering and tie-breaks as the DuckDB engine (see
`acme.reports.definitions`), and the same payload. Each source table is rebuilt from its events
as documented in `acme.lake.layout`: per key, the last event at or before the moment asked,
unless it is a tombstone. All tables are read at one cut: the smallest checkpoint LSN the
tables have reached, each at its snapshot for that LSN, so a lake commit in progress (some
tables done, others not) never mixes two states. Statuses are classified by
`StatusClassification` itself, once per distinct status.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from acme.classification import StatusClassification
from acme.errors import ConfigError, LakeError
from acme.lake.catalog import Lake, open_lake, require_lake_libraries
from acme.lake.layout import COMMIT_TIME_PROPERTY, LSN_PROPERTY, key_of
from acme.lsn import format_lsn
from acme.reports.definitions import REPORTS
from acme.reports.engine import Freshness, ReportAnswer, check_limit
from acme.reports.serialize import answer_payload

if TYPE_CHECKING:
    import daft

TABLES = ("orders", "order_items", "products", "customers")


@dataclass(frozen=True)
class LakeCut:
    """The snapshot of each table that together reflect one warehouse checkpoint."""

    lsn: int
    commit_time: datetime | None
    snapshots: dict[str, int]


def lake_cut(lake: Lake, tables: tuple[str, ...] = TABLES) -> LakeCut:
    positions: dict[str, list[tuple[int, Any]]] = {}
    for name in tables:
        table = lake.table(name)
        if table is None or table.current_snapshot() is None:
            raise LakeError(f"the lake {lake.location} has no table {lake.identifier(name)} "
                            "yet; run `acme sync --lake` until the snapshot is copied")
        positions[name] = [(int(s.summary.additional_properties[LSN_PROPERTY]), s)
                           for s in sorted(table.snapshots(), key=lambda s: s.sequence_number)
                           if LSN_PROPERTY in s.summary.additional_properties]
    lsn = min(entries[-1][0] for entries in positions.values())
    snapshots = {}
    for name, entries in positions.items():
        at_cut = [snapshot for position, snapshot in entries if position <= lsn]
        if not at_cut:
            raise LakeError(f"the lake table {lake.identifier(name)} has no snapshot at "
                            f"{format_lsn(lsn)}; run `acme sync --lake` to catch it up")
        snapshots[name] = at_cut[-1]
    when = snapshots[tables[0]].summary.additional_properties.get(COMMIT_TIME_PROPERTY)
    return LakeCut(lsn, datetime.fromisoformat(when) if when else None,
                   {name: snapshot.snapshot_id for name, snapshot in snapshots.items()})


def table_state(lake: Lake, name: str, snapshot_id: int,
                as_of: datetime | None) -> "daft.DataFrame":
    """The source table as of `as_of` (or as the snapshot has it now), from its events."""
    import daft
    from daft import Window, col, lit
    from daft.functions import row_number

    table = lake.table(name)
    key = list(key_of(table.properties))
    events = daft.read_iceberg(table, snapshot_id=snapshot_id)
    source = [c for c in events.column_names if c not in ("_valid_from", "_op", "_lsn")]
    if as_of is not None:
        events = events.where(col("_valid_from") <= lit(as_of))
    latest_first = Window().partition_by(*key).order_by(
        col("_op") != "snapshot", "_valid_from", col("_op") == "delete", "_lsn",
        desc=[True, True, True, True])
    return (events.with_column("_rank", row_number().over(latest_first))
            .where((col("_rank") == 1) & (col("_op") != "delete"))
            .select(*source))


def _status_filter(orders: "daft.DataFrame", keep) -> "daft.Expression":
    """`status` is one of the values `keep` accepts (NULL included when it accepts None)."""
    from daft import col, lit

    statuses = [row["status"] for row in orders.select("status").distinct().to_pylist()]
    chosen = [s for s in statuses if s is not None and keep(s)]
    expression = col("status").is_in(chosen) if chosen else lit(False)
    if keep(None):
        expression = expression | col("status").is_null()
    return expression.fill_null(False)


def _compute(name: str, states: dict[str, "daft.DataFrame"],
             classification: StatusClassification, limit: int | None) -> "daft.DataFrame":
    from daft import col

    orders = states["orders"]
    if name in ("open-orders", "top-delivery-dates"):
        open_orders = orders.where(_status_filter(orders, classification.is_open))
        if name == "open-orders":
            return (open_orders.groupby("delivery_date", "status")
                    .agg(col("order_id").count("all").alias("open_orders"))
                    .sort(["delivery_date", "status"], nulls_first=[False, False]))
        return (open_orders.groupby("delivery_date")
                .agg(col("order_id").count("all").alias("open_orders"))
                .sort(["open_orders", "delivery_date"], desc=[True, False],
                      nulls_first=[False, False])
                .limit(limit))
    pending = orders.where(_status_filter(orders, classification.is_pending))
    if name == "pending-items":
        products = states["products"].select("product_id", "product_name")
        return (states["order_items"].join(pending.select("order_id"), on="order_id")
                .join(products, on="product_id", how="left")
                .groupby("product_id", "product_name")
                .agg(col("order_item_id").count("all").alias("item_lines"),
                     col("quanity").sum().alias("total_quantity"))
                .with_column("total_quantity", col("total_quantity").fill_null(0))
                .sort(["total_quantity", "item_lines", "product_id"],
                      desc=[True, True, False], nulls_first=[False, False, False])
                .select("product_id", "product_name", "item_lines", "total_quantity"))
    customers = states["customers"].select("customer_id", "customer_name")
    return (pending.select("customer_id").join(customers, on="customer_id", how="left")
            .groupby("customer_id", "customer_name")
            .agg(col("customer_id").count("all").alias("pending_orders"))
            .sort(["pending_orders", "customer_id"], desc=[True, False],
                  nulls_first=[False, False])
            .limit(limit))


def run_lake_report(lake: Lake, name: str, classification: StatusClassification,
                    limit: int | None = None, as_of: datetime | None = None) -> ReportAnswer:
    if name not in REPORTS:
        raise ConfigError(f"unknown report {name!r}; choose one of {', '.join(REPORTS)}")
    check_limit(limit)
    report = REPORTS[name]
    cut = lake_cut(lake)
    needed = {"open-orders": ("orders",), "top-delivery-dates": ("orders",),
              "pending-items": ("orders", "order_items", "products"),
              "top-customers": ("orders", "customers")}[name]
    states = {table: table_state(lake, table, cut.snapshots[table], as_of)
              for table in needed}
    states["orders"] = states["orders"].collect()  # classified, then reused
    result = _compute(name, states, classification,
                      (limit or report.default_limit) if report.takes_limit else None)
    arrow = result.to_arrow()
    rows = tuple(tuple(record.values()) for record in arrow.to_pylist())
    return ReportAnswer(name, report.title, tuple(arrow.column_names), rows, as_of,
                        Freshness(format_lsn(cut.lsn), cut.commit_time))


@dataclass
class LakeSource:
    """Report answers from the lake with Daft (`acme report --engine daft`)."""

    lake: Lake
    classification: StatusClassification

    @classmethod
    def open(cls, location: str, classification: StatusClassification) -> "LakeSource":
        require_lake_libraries()
        try:
            import daft  # noqa: F401
        except ImportError:
            raise LakeError("the daft engine needs Daft; install the lake extra: "
                            "pip install 'acme-analytics[lake]'") from None
        return cls(open_lake(location), classification)

    def report(self, name: str, limit: int | None, as_of: datetime | None) -> dict:
        return answer_payload(run_lake_report(self.lake, name, self.classification,
                                              limit, as_of))

    def status(self) -> dict:
        raise ConfigError("`acme status` reads the DuckDB warehouse; drop --engine daft")

    def order_history(self, order_id: int) -> dict:
        raise ConfigError("`acme history` reads the DuckDB warehouse; drop --engine daft")

    def close(self) -> None:
        pass

"""The incrementally maintained report state equals a full recomputation from history, after
random batches of inserts, updates that move rows between groups, deletes, truncates, status
flips and NULLs (a real DuckDB file, no source)."""

import random
from datetime import UTC, datetime, timedelta

import pytest

from acme.capture.pgoutput import Column, Relation
from acme.capture.transactions import RowChange, TableTruncate
from acme.classification import StatusClassification
from acme.warehouse.apply import BatchApplier
from acme.warehouse.deferred import DeferringConnection
from acme.warehouse.report_state import STATE_TABLES, ReportState
from acme.warehouse.stage import ChangeStager
from acme.warehouse.store import Checkpoint, Warehouse
from tests.state_oracle import rebuilt_state, visible_state

T0 = datetime(2026, 1, 1, tzinfo=UTC)
ORDERS = Relation(1, "operations", "orders", "d", (
    Column("order_id", 20, -1, True), Column("delivery_date", 1082, -1, False),
    Column("customer_id", 20, -1, False), Column("status", 1043, -1, False)))
ITEMS = Relation(2, "operations", "order_items", "d", (
    Column("order_item_id", 20, -1, True), Column("order_id", 20, -1, False),
    Column("product_id", 20, -1, False), Column("quanity", 23, -1, False)))
STATUSES = ["PENDING", "SHIPPED", "DELIVERED", "cancelled ", None, "On Hold"]


class RandomBatches:
    def __init__(self, warehouse: Warehouse, classification, seed: int):
        self.rng = random.Random(seed)
        self.applier = BatchApplier(warehouse, classification)
        self.orders: dict[int, tuple] = {}
        self.items: dict[int, tuple] = {}
        self.second = 0

    def order_row(self, order_id: int) -> tuple:
        day = self.rng.choice([None, "2026-02-01", "2026-02-02", "2026-02-03"])
        return (str(order_id), day, self.rng.choice([None, "1", "2", "3"]),
                self.rng.choice(STATUSES))

    def item_row(self, item_id: int) -> tuple:
        order = self.rng.choice([*self.orders, 999]) if self.orders else 999
        return (str(item_id), str(order), self.rng.choice([None, "10", "11", "12"]),
                self.rng.choice([None, "1", "5"]))

    def change(self) -> RowChange | TableTruncate:
        roll = self.rng.random()
        if roll < 0.02:
            relation = self.rng.choice([ORDERS, ITEMS])
            (self.orders if relation is ORDERS else self.items).clear()
            return TableTruncate((relation,))
        relation, rows, make = ((ORDERS, self.orders, self.order_row) if roll < 0.5
                                else (ITEMS, self.items, self.item_row))
        key = self.rng.randint(1, 12)
        if key in rows and self.rng.random() < 0.25:
            del rows[key]
            return RowChange(relation, "D", (str(key), None, None, None))
        op = "U" if key in rows else "I"
        rows[key] = make(key)
        return RowChange(relation, op, rows[key])

    def batch(self) -> None:
        stager = ChangeStager(chunk_rows=self.rng.randint(1, 5))
        for _ in range(self.rng.randint(1, 6)):
            self.second += self.rng.choice([0, 1, 1, 2])  # equal commit times happen
            at = T0 + timedelta(seconds=self.second)
            for _ in range(self.rng.randint(1, 5)):
                change = self.change()
                if isinstance(change, TableTruncate):
                    for chunk in stager.drain():
                        self.applier.stage(chunk)
                    self.applier.truncate(change.relations, at)
                elif (chunk := stager.add(change, at, self.second * 10)) is not None:
                    self.applier.stage(chunk)
        for chunk in stager.drain():
            self.applier.stage(chunk)
        self.applier.commit(Checkpoint(self.second * 10 + 5, T0, None))


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("classification", [
    StatusClassification(), StatusClassification(pending=("PENDING", "ON HOLD"))])
# How open versions are taken: by DELETE ... RETURNING, by a scan, by scans of parts of the keys;
# and whether windows run over one ordered partition or are partitioned by key and group.
@pytest.mark.parametrize(("returning_rows", "keys_per_part", "one_window_rows"),
                         [(5_000, 10**6, 10**6), (0, 10**6, 0), (0, 3, 10**6)])
def test_incremental_state_equals_a_recomputation_from_history(tmp_path, monkeypatch, seed,
                                                               classification, returning_rows,
                                                               keys_per_part, one_window_rows):
    monkeypatch.setattr("acme.warehouse.apply.RETURNING_ROWS", returning_rows)
    monkeypatch.setattr("acme.warehouse.apply.KEYS_PER_PART", keys_per_part)
    monkeypatch.setattr("acme.warehouse.apply.ONE_WINDOW_ROWS", one_window_rows)
    warehouse = Warehouse.open(tmp_path / "w.duckdb")
    try:
        batches = RandomBatches(warehouse, classification, seed)
        for _ in range(25):
            batches.batch()
            if batches.applier.state_active:  # from the batch where both tables exist
                assert visible_state(warehouse.db) == rebuilt_state(warehouse.db, classification)
        assert batches.applier.state_active
        counts = dict(((layer, name), rows) for layer, name, rows in warehouse.db.execute(
            "SELECT * FROM _acme.row_counts").fetchall())
        assert counts[("current", "orders")] == len(batches.orders)
        assert counts[("current", "order_items")] == len(batches.items)
    finally:
        warehouse.close()


def test_a_state_of_the_earlier_layout_is_rebuilt(tmp_path):
    """Each state used to be one table (`reports.<name>`, its open rows copied in `_now`):
    the next applier rebuilds it as closed and open tables behind that name, and goes on."""
    warehouse = Warehouse.open(tmp_path / "w.duckdb")
    try:
        batches = RandomBatches(warehouse, StatusClassification(), seed=7)
        while not batches.applier.state_active:
            batches.batch()
        for _ in range(5):
            batches.batch()
        expected = visible_state(warehouse.db)
        for table in STATE_TABLES:
            old = f"{table.qualified}_old"
            for statement in (f"CREATE TABLE {old} AS SELECT * FROM {table.qualified}",
                              f"DROP VIEW {table.qualified}", f"DROP TABLE {table.closed}",
                              f"ALTER TABLE {old} RENAME TO {table.name}"):
                warehouse.db.execute(statement)
        assert visible_state(warehouse.db) == expected  # the earlier layout reads the same

        batches.applier = BatchApplier(warehouse, StatusClassification())
        assert warehouse.db.execute(
            "SELECT count(*) FROM duckdb_views() WHERE schema_name = 'reports'"
        ).fetchone()[0] == len(STATE_TABLES)
        assert visible_state(warehouse.db) == expected
        batches.batch()
        assert visible_state(warehouse.db) == rebuilt_state(warehouse.db, StatusClassification())
    finally:
        warehouse.close()


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("classification", [
    StatusClassification(), StatusClassification(pending=("PENDING", "ON HOLD"))])
def test_a_state_built_at_once_equals_the_windowed_build(tmp_path, monkeypatch, seed,
                                                         classification):
    """After a first copy every version is open since one time, and the state is built from
    the events at that time alone (`StateTable.start_sql`): it must equal the windowed build,
    which a version that ended brings back."""
    warehouse = Warehouse.open(tmp_path / "w.duckdb")
    try:
        batches = RandomBatches(warehouse, classification, seed)
        stager = ChangeStager(chunk_rows=7)
        at = T0 + timedelta(seconds=1)
        for relation, rows, make in ((ORDERS, batches.orders, batches.order_row),
                                     (ITEMS, batches.items, batches.item_row)):
            for key in range(1, 60):
                rows[key] = make(key)
                if (chunk := stager.add(RowChange(relation, "I", rows[key]), at, 10)):
                    batches.applier.stage(chunk)
        for chunk in stager.drain():
            batches.applier.stage(chunk)
        batches.applier.commit(Checkpoint(15, T0, None))
        state = ReportState(DeferringConnection(warehouse.db), classification)
        assert state._all_open_since_one_time()
        at_once = rebuilt_state(warehouse.db, classification)
        assert all(at_once.values())  # every report has groups to count
        with monkeypatch.context() as patched:
            patched.setattr(ReportState, "_all_open_since_one_time", lambda self: False)
            assert rebuilt_state(warehouse.db, classification) == at_once

        batches.batch()  # updates and deletes end versions: the windows are needed again
        assert not state._all_open_since_one_time()
    finally:
        warehouse.close()

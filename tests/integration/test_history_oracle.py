"""History oracle: random workloads, the source recorded at moments, history rebuilt as of
each moment must equal it exactly."""

import psycopg
import pytest

from acme.source.seed import SeedPlan, seed
from tests.fix_source import drop_source_db, make_source_db
from tests.fix_sync import sync_once
from tests.fix_workload import (
    RandomWorkload,
    assert_history_well_formed,
    assert_same_state,
    record_moment,
    source_state,
    warehouse_state,
)


@pytest.mark.parametrize("slot_exists", [True, False], ids=["existing-slot", "new-slot"])
@pytest.mark.parametrize("workload_seed", [1, 2])
def test_history_equals_the_source_at_every_recorded_moment(pg_server, warehouse_path,
                                                            slot_exists, workload_seed):
    db = make_source_db(pg_server, with_slot=slot_exists)
    try:
        seed(db.app_dsn, SeedPlan.for_orders(300, seed=workload_seed))
        moments = []
        with psycopg.connect(db.app_dsn, autocommit=True) as conn:
            workload = RandomWorkload(conn, workload_seed, truncate_weight=1)
            for _ in range(20):
                workload.transaction()
            sync_once(db, warehouse_path)
            for round_ in range(4):
                for _ in range(25):
                    workload.transaction()
                    if workload.rng.random() < 0.2:
                        moments.append(record_moment(conn))
                if round_ % 2:
                    sync_once(db, warehouse_path)
            final = source_state(conn)
        sync_once(db, warehouse_path)
        assert len(moments) >= 5
        for number, moment in enumerate(moments):
            assert_same_state(moment.tables, warehouse_state(warehouse_path, moment.at),
                              f"moment {number}")
        assert_same_state(final, warehouse_state(warehouse_path), "current")
        assert_history_well_formed(warehouse_path)
    finally:
        drop_source_db(db)

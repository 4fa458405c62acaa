"""The crash soak (benchmarks/crash_soak.py) in short: four SIGKILLs, one in each phase
(snapshot, streaming, inside a large transaction, around a schema change), the history oracle
checked after each. The 100-kill run is `python -m benchmarks.crash_soak`."""

import pytest
from benchmarks.crash_soak import PHASES, Soak

from acme.source.seed import SeedPlan, seed
from tests.fix_source import drop_source_db, make_source_db


@pytest.mark.slow
def test_sigkill_in_every_phase_leaves_an_exact_history(pg_server, tmp_path):
    db = make_source_db(pg_server)
    try:
        seed(db.app_dsn, SeedPlan.for_orders(20_000, seed=5))
        result = Soak(db.address, db.admin_dsn, tmp_path, seed=8, slot=db.slot).run(kills=4)
    finally:
        drop_source_db(db)
    assert result.kills == {phase: 1 for phase in PHASES}
    assert result.checks_passed == 4 and result.moments_checked >= 4

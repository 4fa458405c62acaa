"""The stager's commit columns: one commit time per transaction (a run of equal commit LSNs)."""

import random
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest

from acme.warehouse.stage import COMMIT_TS, commit_columns


@pytest.mark.parametrize("seed", range(5))
def test_commit_columns_equal_a_conversion_row_by_row(seed: int):
    rng = random.Random(seed)
    times, lsns = [], []
    lsn, at = 1_000, datetime(2026, 11, 27, tzinfo=UTC)
    for _ in range(rng.randint(1, 60)):  # transactions, in commit order
        lsn += rng.randint(1, 1 << 40)
        at += timedelta(microseconds=rng.randint(0, 3))  # equal times happen
        rows = rng.randint(1, 5)
        times += [at] * rows
        lsns += [lsn] * rows
    columns = commit_columns(times, lsns)
    assert columns["_commit_ts"].equals(pa.array(times, COMMIT_TS))
    assert columns["_lsn"].equals(pa.array(lsns, pa.uint64()))


def test_commit_columns_of_no_rows():
    columns = commit_columns([], [])
    assert len(columns["_commit_ts"]) == 0 and columns["_commit_ts"].type == COMMIT_TS
    assert columns["_lsn"].type == pa.uint64()

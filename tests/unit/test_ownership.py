"""Ownership checks: same source or a one-line refusal; a slot consumed past the warehouse's
recorded position is a gap with the bytes lost."""

from pathlib import Path

import pytest

from acme.backoff import Backoff
from acme.warehouse.ownership import (
    ForeignSource,
    SlotConsumedElsewhere,
    SourceIdentity,
    check_no_gap,
    check_same_source,
)

BUILT_FROM = SourceIdentity("7712245879678438874", "finance_db", "cdc_pgoutput", "cdc_pub")


def test_same_source_passes():
    check_same_source(Path("w.duckdb"), BUILT_FROM, SourceIdentity(*vars(BUILT_FROM).values()))


@pytest.mark.parametrize("field, other", [("system_identifier", "1"), ("database", "x"),
                                          ("slot", "other_slot"), ("publication", "p2")])
def test_any_difference_is_refused_naming_it(field, other):
    asked = SourceIdentity(**{**vars(BUILT_FROM), field: other})
    with pytest.raises(ForeignSource) as refused:
        check_same_source(Path("w.duckdb"), BUILT_FROM, asked)
    line = str(refused.value)
    assert f"{field} {getattr(BUILT_FROM, field)} (asked: {other})" in line
    assert "--resnapshot" in line and "\n" not in line


def test_slot_beyond_the_warehouse_is_a_gap_with_the_bytes_lost():
    with pytest.raises(SlotConsumedElsewhere) as refused:
        check_no_gap(Path("w.duckdb"), "cdc_pgoutput", 0x1000_0400, 0x1000_0000)
    assert "1,024 bytes of WAL" in str(refused.value)
    assert "0/10000400" in str(refused.value) and "0/10000000" in str(refused.value)


@pytest.mark.parametrize("slot, warehouse", [(100, 100), (90, 100), (None, 100), (100, None)])
def test_slot_at_or_behind_the_warehouse_or_unknown_is_no_gap(slot, warehouse):
    check_no_gap(Path("w.duckdb"), "s", slot, warehouse)


def test_backoff_doubles_to_the_cap():
    backoff = Backoff(first=1, most=8)
    assert [backoff.next_delay() for _ in range(6)] == [1, 2, 4, 8, 8, 8]


def test_backoff_starts_over_after_a_healthy_stretch():
    backoff = Backoff(first=1, most=8)
    backoff.next_delay(), backoff.next_delay()
    backoff.attempt_started -= 9  # connected longer than the cap ago
    assert backoff.next_delay() == 1

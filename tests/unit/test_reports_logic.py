"""Status classification, as_of parsing and the CSV shape, without a database."""

from datetime import UTC, datetime

import pytest

from acme.classification import StatusClassification
from acme.errors import ConfigError
from acme.reports.engine import check_limit, parse_as_of
from acme.reports.serialize import payload_csv


def test_default_open_is_everything_not_terminal_ignoring_case_and_blanks():
    rules = StatusClassification()
    assert rules.is_open("PENDING") and rules.is_open("weird-new-status") and rules.is_open(None)
    assert not rules.is_open("DELIVERED") and not rules.is_open(" cancelled ")
    assert not rules.is_open("Canceled") and not rules.is_open("RETURNED")
    assert rules.is_pending("SHIPPED") and not rules.is_pending("COMPLETED")


def test_configured_pending_is_a_subset_by_name():
    rules = StatusClassification(terminal=("DONE",), pending=("PENDING", "ON HOLD"))
    assert rules.is_open("DELIVERED")
    assert rules.is_pending("on hold") and not rules.is_pending("SHIPPED")
    assert not rules.is_pending(None)


def test_as_of_accepts_iso_dates_and_times_and_refuses_the_future_and_garbage():
    now = datetime(2026, 11, 25, 12, tzinfo=UTC)
    assert parse_as_of("2026-11-01", now) == datetime(2026, 11, 1, tzinfo=UTC)
    assert parse_as_of("2026-11-25T10:00:00Z", now) == datetime(2026, 11, 25, 10, tzinfo=UTC)
    assert parse_as_of("2026-11-25T11:00:00+01:00", now).hour == 11
    assert parse_as_of(None, now) is None
    with pytest.raises(ConfigError, match="in the future"):
        parse_as_of("2026-11-26", now)
    with pytest.raises(ConfigError, match="not an ISO"):
        parse_as_of("yesterday", now)


@pytest.mark.parametrize("limit", [0, -1, 1001])
def test_limits_outside_1_to_1000_are_refused(limit):
    with pytest.raises(ConfigError, match="between 1 and 1000"):
        check_limit(limit)


def test_csv_has_a_header_and_null_as_empty():
    payload = {"columns": ["a", "b"], "rows": [{"a": 1, "b": None}, {"a": "x,y", "b": 2}]}
    assert payload_csv(payload) == 'a,b\n1,\n"x,y",2\n'

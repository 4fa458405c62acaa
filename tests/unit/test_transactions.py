"""Assembling messages into transactions: net effect per row, key changes, truncates."""

import pytest

from acme.capture.pgoutput import UNCHANGED, decode
from acme.capture.transactions import (
    ProtocolError,
    RowChange,
    TableTruncate,
    TransactionAssembler,
)
from tests.unit import pgoutput_bytes as pg


def run(*payloads):
    assembler = TransactionAssembler()
    done = [assembler.feed(decode(p)) for p in payloads]
    return [t for t in done if t is not None]


def ops(transaction):
    return [(c.op, c.key, c.values) if isinstance(c, RowChange) else ("T",)
            for c in transaction.changes]


REL = pg.relation(7, "orders", pg.ORDERS)


def test_a_transaction_carries_its_xid_lsns_and_changes():
    [t] = run(REL, pg.begin(100, 0, 55), pg.insert(7, ["1", "NEW", None]), pg.commit(100, 120, 0))
    assert (t.xid, t.commit_lsn, t.end_lsn) == (55, 100, 120)
    assert ops(t) == [("I", ("1",), ("1", "NEW", None))]


def test_a_row_touched_three_times_in_one_transaction_keeps_its_last_state():
    [t] = run(REL, pg.begin(1, 0, 1),
              pg.update(7, ["1", "A", "x"]), pg.update(7, ["1", "B", "x"]),
              pg.update(7, ["1", "C", "x"]), pg.commit(1, 2, 0))
    assert ops(t) == [("U", ("1",), ("1", "C", "x"))]


def test_insert_then_update_is_an_insert_and_insert_then_delete_is_nothing():
    [t] = run(REL, pg.begin(1, 0, 1),
              pg.insert(7, ["1", "A", None]), pg.update(7, ["1", "B", None]),
              pg.insert(7, ["2", "A", None]), pg.delete(7, ["2", None, None]),
              pg.commit(1, 2, 0))
    assert ops(t) == [("I", ("1",), ("1", "B", None))]


def test_delete_then_reinsert_of_an_existing_row_is_an_update():
    [t] = run(REL, pg.begin(1, 0, 1), pg.delete(7, ["1", None, None]),
              pg.insert(7, ["1", "again", None]), pg.commit(1, 2, 0))
    assert ops(t) == [("U", ("1",), ("1", "again", None))]


def test_update_that_changes_primary_key_deletes_old_key_and_inserts_new():
    [t] = run(REL, pg.begin(1, 0, 1),
              pg.update(7, ["9", "A", "x"], old=["1", None, None]), pg.commit(1, 2, 0))
    assert ops(t) == [("D", ("1",), None), ("I", ("9",), ("9", "A", "x"))]


def test_unchanged_toast_is_filled_from_an_earlier_image_in_the_transaction():
    [t] = run(REL, pg.begin(1, 0, 1), pg.insert(7, ["1", "A", "big"]),
              pg.update(7, ["1", "B", UNCHANGED]), pg.commit(1, 2, 0))
    assert ops(t) == [("I", ("1",), ("1", "B", "big"))]


def test_unchanged_toast_without_earlier_image_stays_marked():
    [t] = run(REL, pg.begin(1, 0, 1), pg.update(7, ["1", "B", UNCHANGED]), pg.commit(1, 2, 0))
    assert t.changes[0].values[2] is UNCHANGED


def test_unchanged_toast_is_filled_from_a_full_old_row():
    [t] = run(REL, pg.begin(1, 0, 1),
              pg.update(7, ["1", "B", UNCHANGED], old=["1", "A", "big"], key_only=False),
              pg.commit(1, 2, 0))
    assert ops(t) == [("U", ("1",), ("1", "B", "big"))]


def test_truncate_splits_changes_in_order():
    [t] = run(REL, pg.begin(1, 0, 1), pg.insert(7, ["1", "A", None]), pg.truncate([7]),
              pg.insert(7, ["2", "B", None]), pg.commit(1, 2, 0))
    assert ops(t) == [("I", ("1",), ("1", "A", None)), ("T",), ("I", ("2",), ("2", "B", None))]
    assert isinstance(t.changes[1], TableTruncate)
    assert t.changes[1].relations[0].name == "orders"


def test_a_new_relation_message_changes_the_columns_of_later_changes():
    wider = pg.relation(7, "orders", pg.ORDERS + [("priority", 23, -1, False)])
    [first, second] = run(REL, pg.begin(1, 0, 1), pg.insert(7, ["1", "A", None]),
                          pg.commit(1, 2, 0), wider, pg.begin(3, 0, 2),
                          pg.insert(7, ["2", "B", None, "5"]), pg.commit(3, 4, 0))
    assert len(first.changes[0].relation.columns) == 3
    assert second.changes[0].relation.columns[-1].name == "priority"
    assert second.changes[0].values == ("2", "B", None, "5")


def test_changes_outside_a_transaction_or_before_relation_are_protocol_errors():
    with pytest.raises(ProtocolError):
        run(REL, pg.insert(7, ["1", "A", None]))
    with pytest.raises(ProtocolError):
        run(pg.begin(1, 0, 1), pg.insert(8, ["1"]))

"""Messages into events: row changes as they arrive, key changes, TOAST from a full old row,
truncates, commits. The net effect per row is the warehouse's (see test_apply.py)."""

import pytest

from acme.capture.pgoutput import UNCHANGED, decode
from acme.capture.transactions import (
    Committed,
    ProtocolError,
    RowChange,
    TableTruncate,
    TransactionAssembler,
)
from tests.unit import pgoutput_bytes as pg


def run(*payloads):
    assembler = TransactionAssembler()
    return [event for p in payloads for event in assembler.feed(decode(p))]


def ops(events):
    return [(e.op, e.row) if isinstance(e, RowChange) else type(e).__name__ for e in events]


REL = pg.relation(7, "orders", pg.ORDERS)


def test_row_changes_are_handed_on_as_they_arrive_and_the_commit_closes_them():
    assembler = TransactionAssembler()
    for payload in (REL, pg.begin(100, 0, 55)):
        assert assembler.feed(decode(payload)) == ()
    [change] = assembler.feed(decode(pg.insert(7, ["1", "NEW", None])))
    assert (change.op, change.row) == ("I", ("1", "NEW", None))
    assert assembler.in_transaction
    [commit] = assembler.feed(decode(pg.commit(100, 120, 0)))
    assert isinstance(commit, Committed)
    assert (commit.xid, commit.commit_lsn, commit.end_lsn) == (55, 100, 120)
    assert not assembler.in_transaction


def test_every_change_of_a_transaction_is_kept_in_order():
    events = run(REL, pg.begin(1, 0, 1), pg.update(7, ["1", "A", "x"]),
                 pg.update(7, ["1", "B", "x"]), pg.delete(7, ["1", None, None]),
                 pg.commit(1, 2, 0))
    assert ops(events) == [("U", ("1", "A", "x")), ("U", ("1", "B", "x")),
                           ("D", ("1", None, None)), "Committed"]


def test_update_that_changes_primary_key_deletes_old_key_and_inserts_new():
    events = run(REL, pg.begin(1, 0, 1),
                 pg.update(7, ["9", "A", "x"], old=["1", None, None]), pg.commit(1, 2, 0))
    assert ops(events) == [("D", ("1", None, None)), ("I", ("9", "A", "x")), "Committed"]


def test_unchanged_toast_is_filled_from_a_full_old_row():
    events = run(REL, pg.begin(1, 0, 1),
                 pg.update(7, ["1", "B", UNCHANGED], old=["1", "A", "big"], key_only=False),
                 pg.commit(1, 2, 0))
    assert ops(events)[0] == ("U", ("1", "B", "big"))


def test_unchanged_toast_without_an_old_row_stays_marked():
    events = run(REL, pg.begin(1, 0, 1), pg.update(7, ["1", "B", UNCHANGED]), pg.commit(1, 2, 0))
    assert events[0].row[2] is UNCHANGED


def test_truncate_comes_between_the_changes_around_it():
    events = run(REL, pg.begin(1, 0, 1), pg.insert(7, ["1", "A", None]), pg.truncate([7]),
                 pg.insert(7, ["2", "B", None]), pg.commit(1, 2, 0))
    assert ops(events) == [("I", ("1", "A", None)), "TableTruncate", ("I", ("2", "B", None)),
                           "Committed"]
    assert isinstance(events[1], TableTruncate)
    assert events[1].relations[0].name == "orders"


def test_a_new_relation_message_changes_the_columns_of_later_changes():
    wider = pg.relation(7, "orders", pg.ORDERS + [("priority", 23, -1, False)])
    events = run(REL, pg.begin(1, 0, 1), pg.insert(7, ["1", "A", None]), pg.commit(1, 2, 0),
                 wider, pg.begin(3, 0, 2), pg.insert(7, ["2", "B", None, "5"]),
                 pg.commit(3, 4, 0))
    assert len(events[0].relation.columns) == 3
    assert events[2].relation.columns[-1].name == "priority"
    assert events[2].row == ("2", "B", None, "5")


def test_changes_outside_a_transaction_or_before_relation_are_protocol_errors():
    with pytest.raises(ProtocolError):
        run(REL, pg.insert(7, ["1", "A", None]))
    with pytest.raises(ProtocolError):
        run(pg.begin(1, 0, 1), pg.insert(8, ["1"]))


def keyed_run(identity_flags, *payloads):
    """Messages through an assembler that knows `order_id` is the primary key."""
    columns = [(name, oid, mod, flag) for (name, oid, mod, _), flag
               in zip(pg.ORDERS, identity_flags, strict=True)]
    assembler = TransactionAssembler(lambda schema, table: ("order_id",))
    events = []
    for payload in (pg.relation(7, "orders", columns), *payloads):
        events += assembler.feed(decode(payload))
    return events


def test_with_replica_identity_full_an_update_keeps_its_key_and_stays_an_update():
    events = keyed_run((True, True, True), pg.begin(1, 0, 1),
                       pg.update(7, ["1", "B", "x"], old=["1", "A", "x"], key_only=False),
                       pg.delete(7, ["1", "B", "x"], key_only=False), pg.commit(1, 2, 0))
    assert ops(events) == [("U", ("1", "B", "x")), ("D", ("1", None, None)), "Committed"]
    assert events[0].relation.key_columns == ("order_id",)


def test_with_identity_on_other_columns_deletes_and_updates_find_the_row_by_identity():
    events = keyed_run((False, True, False), pg.begin(1, 0, 1),
                       pg.update(7, ["1", "B", "x"], old=[None, "A", None]),
                       pg.update(7, ["2", "B", "y"]),
                       pg.delete(7, [None, "B", None]), pg.commit(1, 2, 0))
    assert [(e.op, e.row, e.by_identity) for e in events[:-1]] == [
        ("D", (None, "A", None), True), ("I", ("1", "B", "x"), False),
        ("D", (None, "B", None), True), ("I", ("2", "B", "y"), False),
        ("D", (None, "B", None), True)]

"""pgoutput decoding from hand-made bytes, including the awkward tuple values."""

import struct
from datetime import UTC, datetime

import pytest

from acme.capture.pgoutput import (
    UNCHANGED,
    Begin,
    Commit,
    DecodeError,
    Delete,
    Insert,
    Origin,
    Relation,
    Truncate,
    TypeInfo,
    Update,
    decode,
)
from tests.unit import pgoutput_bytes as pg


def test_begin_carries_final_lsn_commit_time_and_xid():
    message = decode(pg.begin(0x1_0000_0010, 1_000_000, 4242))
    assert message == Begin(0x1_0000_0010, datetime(2000, 1, 1, 0, 0, 1, tzinfo=UTC), 4242)


def test_commit_carries_commit_and_end_lsn():
    message = decode(pg.commit(100, 180, 86_400_000_000))
    assert message == Commit(100, 180, datetime(2000, 1, 2, tzinfo=UTC))


def test_relation_lists_columns_types_modifiers_and_key():
    message = decode(pg.relation(16384, "orders", [("order_id", 20, -1, True),
                                                   ("unity_price", 1700, 655366, False)]))
    assert isinstance(message, Relation)
    assert (message.oid, message.namespace, message.name) == (16384, "operations", "orders")
    assert message.key_columns == ("order_id",)
    assert message.columns[1].type_modifier == 655366


def test_insert_distinguishes_null_text_and_empty_text():
    message = decode(pg.insert(7, ["1", None, ""]))
    assert message == Insert(7, ("1", None, ""))


def test_unchanged_toast_is_not_null():
    message = decode(pg.update(7, ["1", "SHIPPED", UNCHANGED]))
    assert message.new[2] is UNCHANGED and message.new[1] == "SHIPPED"
    assert message.old is None


def test_update_with_old_key_and_with_full_old_row():
    keyed = decode(pg.update(7, ["2", "A", "x"], old=["1", None, None], key_only=True))
    assert keyed == Update(7, ("2", "A", "x"), ("1", None, None), True)
    full = decode(pg.update(7, ["1", "B", "x"], old=["1", "A", "x"], key_only=False))
    assert full.old == ("1", "A", "x") and not full.old_is_key_only


def test_delete_with_key_and_with_full_old_row():
    assert decode(pg.delete(7, ["5", None, None])) == Delete(7, ("5", None, None), True)
    assert decode(pg.delete(7, ["5", "A", "y"], key_only=False)).old_is_key_only is False


def test_truncate_lists_relations_and_options():
    assert decode(pg.truncate([7, 8], options=3)) == Truncate((7, 8), True, True)


def test_origin_and_type_messages():
    assert decode(b"O" + struct.pack("!q", 55) + b"upstream\0") == Origin(55, "upstream")
    assert decode(b"Y" + struct.pack("!I", 9) + b"public\0mood\0") == TypeInfo(9, "public", "mood")


def test_multibyte_text_round_trips_exactly():
    text = "Évora — 北京 🚚 'quoted' \"double\"\nnewline"
    assert decode(pg.insert(7, ["1", text, None])).new[1] == text


@pytest.mark.parametrize("payload", [b"", b"Z", b"B\0\0", pg.insert(7, ["1"])[:-1]])
def test_garbage_is_a_decode_error(payload):
    with pytest.raises(DecodeError):
        decode(payload)

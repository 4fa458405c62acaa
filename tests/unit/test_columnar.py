"""The chunk-at-a-time decoder (capture.columnar, via ChangeStager.stage_pending) against the
reference: the same random messages staged undecoded and staged after `decode` + `feed` give
the same Arrow chunk."""

import random
from collections import Counter
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from acme.capture.columnar import NEW_TUPLE_AT, RowMessages, new_tuples_as_columns
from acme.capture.pgoutput import UNCHANGED, decode
from acme.capture.transactions import RowChange, TransactionAssembler
from acme.warehouse.stage import ChangeStager
from tests.unit import pgoutput_bytes as wire

ITEMS = [("order_item_id", 20, -1, True), ("order_id", 20, -1, False),
         ("quanity", 23, -1, False), ("note", 25, -1, False)]
WIDER = [*ITEMS, ("added", 25, -1, False)]
ALPHABET = "aZ09 ,'\"\\\n\t-é€😀\u0000"[:-1] + "ß"


def random_value(rng: random.Random, toast: bool):
    roll = rng.random()
    if roll < 0.15:
        return None
    if toast and roll < 0.2:
        return UNCHANGED
    if roll < 0.25:
        return ""
    return "".join(rng.choice(ALPHABET) for _ in range(rng.randint(1, 40)))


def random_stream(rng: random.Random, rows: int, toast: bool) -> list[bytes]:
    """Insert / update (some with an old key or whole old row) / delete messages of one table,
    in transactions, with a schema change midway."""
    messages = [wire.begin(100, 0, 1), wire.relation(7, "order_items", ITEMS)]
    columns = ITEMS
    for number in range(rows):
        if number == rows // 2:
            columns = WIDER
            messages.append(wire.relation(7, "order_items", WIDER))
        if rng.random() < 0.1:
            messages += [wire.commit(100, 101, 0), wire.begin(200 + number, number, number)]
        values = [str(rng.randint(1, 50)), *(random_value(rng, toast) for _ in columns[1:])]
        kind = rng.random()
        if kind < 0.4:
            messages.append(wire.insert(7, [v if v is not UNCHANGED else None for v in values]))
        elif kind < 0.8:
            messages.append(wire.update(7, values))
        elif kind < 0.9:
            old = [str(rng.randint(1, 50))] + [None] * (len(columns) - 1)
            messages.append(wire.update(7, values, old=old, key_only=True))
        else:
            messages.append(wire.delete(7, [values[0]] + [None] * (len(columns) - 1)))
    return [*messages, wire.commit(100, 101, 0)]


def stage(messages: list[bytes], chunk_rows: int, undecoded: bool):
    """Every chunk staged from the messages, as Python rows sorted by `_seq`; the stager's
    count of them by table and op must match them."""
    assembler = TransactionAssembler()
    stager = ChangeStager(chunk_rows)
    chunks = []
    commit_time, lsn = datetime(2026, 11, 25, tzinfo=UTC), 100
    for payload in messages:
        if payload[:1] == b"B":  # as the stream stages: each transaction its time and LSN
            commit_time += timedelta(seconds=1)
            lsn += 1
            stager.transaction_began(commit_time, lsn)
        if undecoded and payload[:1] in (b"I", b"U", b"D"):  # as the stream does
            stager.pending.append(payload)
            if len(stager.pending) >= chunk_rows:
                chunks += stager.stage_pending(assembler)
            continue
        chunks += stager.stage_pending(assembler)
        message = decode(payload)
        for event in assembler.feed(message):
            if isinstance(event, RowChange):
                chunks.append(stager.add(event, commit_time, lsn))
    chunks += stager.stage_pending(assembler)
    chunks += stager.drain()
    rows = [row for chunk in chunks if chunk is not None for row in chunk.rows.to_pylist()]
    assert stager.take_counts() == Counter(("order_items", row["_op"]) for row in rows)
    assert stager.take_counts() == Counter()  # taken: counting starts again
    # `_seq` orders the changes (the undecoded path numbers them two apart: a key change
    # takes two); their order is what must agree.
    ordered = sorted(rows, key=lambda row: row["_seq"])
    assert len({row["_seq"] for row in ordered}) == len(ordered)
    return [{**row, "_seq": number} for number, row in enumerate(ordered)]


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("toast", [False, True])
def test_undecoded_rows_stage_exactly_like_decoded_ones(seed: int, toast: bool):
    rng = random.Random(seed)
    messages = random_stream(rng, rng.randint(1, 400), toast)
    chunk_rows = rng.choice([1, 3, 50, 1000])
    expected = stage(messages, chunk_rows, undecoded=False)
    got = stage(messages, chunk_rows, undecoded=True)
    # Rows absent from a chunk's columns (the narrower relation) read as NULL either way.
    names = {name for row in expected + got for name in row}
    assert [{n: row.get(n) for n in names} for row in got] == \
        [{n: row.get(n) for n in names} for row in expected]
    assert len(got) >= sum(1 for m in messages if m[:1] in b"IUD")  # a key change: D + I


def decoded(payloads: list[bytes]):
    """`new_tuples_as_columns` of every message (all of relation 7)."""
    return new_tuples_as_columns(RowMessages(payloads), np.arange(len(payloads)), len(ITEMS))


def test_plain_messages_decode_into_columns_like_the_reference():
    rng = random.Random(5)
    rows = [[random_value(rng, toast=False) for _ in ITEMS] for _ in range(300)]
    payloads = [wire.insert(7, row) if i % 2 else wire.update(7, row)
                for i, row in enumerate(rows)]
    columns = decoded(payloads)
    assert [list(row) for row in zip(*(c.to_pylist() for c in columns), strict=True)] == \
        [list(decode(p).new) for p in payloads]


@pytest.mark.parametrize("payload", [
    wire.update(7, ["1", UNCHANGED, None, "x"]),  # unchanged TOAST
    wire.insert(7, ["1", "2", "3"]),  # narrower than the relation
    wire.insert(7, ["1", "2", "3", "4", "5"]),  # wider
    wire.insert(7, ["1", "2", "3", "4"])[:-1],  # cut short
    wire.insert(7, ["1", "2", "3", "4"]) + b"x",  # trailing bytes
    wire.insert(7, ["1", "2", "3", "\u00e9"])[:-1] + b"\xff",  # not UTF-8
    wire.insert(7, ["1", "2", "3"])[:-6] + b"b" + b"\0\0\0\1x" + wire.tuple_data(["4"])[3:],
])
def test_anything_but_the_plain_case_is_left_to_the_reference(payload: bytes):
    plain = wire.insert(7, ["9", None, "", "ok"])
    assert decoded([plain, payload, plain]) is None
    assert decoded([plain]) is not None


@pytest.mark.parametrize("seed", range(4))
def test_damaged_messages_are_refused_or_decoded_like_the_reference(seed: int):
    """Bytes changed, cut or added anywhere in a chunk's messages: the chunk decoder either
    leaves the chunk to the reference decoder or gives exactly what the reference gives."""
    rng = random.Random(seed)
    for _ in range(300):
        payloads = [wire.insert(7, [random_value(rng, toast=False) for _ in ITEMS])
                    for _ in range(rng.randint(1, 6))]
        damaged = rng.randrange(len(payloads))
        data = bytearray(payloads[damaged])
        for _ in range(rng.randint(1, 3)):
            at = rng.randrange(NEW_TUPLE_AT, len(data) + 1)
            action = rng.random()
            if action < 0.5 and at < len(data):
                data[at] = rng.choice([0, 1, 4, 0x6E, 0x74, 0x75, 0x80, 0xFF, rng.randrange(256)])
            elif action < 0.75:
                del data[at:at + rng.randint(1, 4)]
            else:
                data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 4)))
        payloads[damaged] = bytes(data)
        columns = decoded(payloads)
        if columns is not None:
            assert [list(row) for row in zip(*(c.to_pylist() for c in columns), strict=True)] \
                == [list(decode(p).new) for p in payloads]

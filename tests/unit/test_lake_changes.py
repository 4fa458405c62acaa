"""What the lake takes from DuckDB's history: new versions past a checkpoint LSN, and a
tombstone for every version nothing continues (hand-made histories, no Postgres)."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from acme.lake.changes import closed_without_successor_sql, events_sql
from acme.warehouse.store import BOOTSTRAP, Warehouse
from acme.warehouse.tables import TableSpec

SPEC = TableSpec("t", (("id", "BIGINT"), ("v", "VARCHAR")), ("id",))
T0 = datetime(2026, 11, 25, 12, tzinfo=UTC)


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


# (id, v, valid_from, valid_to, op, lsn)
HISTORY = [
    (1, "copied", at(0), at(5), "snapshot", 100),    # then updated: continued, no tombstone
    (1, "updated", at(5), None, "update", 205),
    (2, "gone", at(1), at(6), "insert", 110),        # deleted at 6
    (3, "a", at(1), at(7), "insert", 120),           # updated then truncated in one txn at 7:
    (3, "b", at(7), at(7), "update", 307),           # a zero-length version, then nothing
    (4, "copied", at(3), at(3), "snapshot", 100),    # a late commit replaced the copied row
    (4, "late", at(3), None, "update", 90),
    (5, "copied", at(2), at(2), "snapshot", 100),    # a late commit deleted the copied row
    (6, "first", at(1), at(4), "insert", 115),       # deleted at 4, inserted again at 8
    (6, "again", at(8), None, "insert", 408),
]


@pytest.fixture
def db():
    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'UTC'")
    for statement in BOOTSTRAP:
        connection.execute(statement)
    Warehouse(connection, Path("memory")).ensure_table(SPEC, {})
    connection.executemany("INSERT INTO closed_versions.t VALUES (?, ?, ?, ?, ?, ?)",
                           [row for row in HISTORY if row[3] is not None])
    connection.executemany("INSERT INTO open_versions.t VALUES (?, ?, ?, ?, ?)",
                           [row[:3] + row[4:] for row in HISTORY if row[3] is None])
    yield connection
    connection.close()


def test_every_version_nothing_continues_gets_one_tombstone(db):
    rows = db.execute(closed_without_successor_sql(SPEC, bounded=False)).fetchall()
    assert sorted(rows) == [(2, at(6)), (3, at(7)), (5, at(2)), (6, at(4))]


def test_bounded_tombstones_only_look_at_recent_closes(db):
    rows = db.execute(closed_without_successor_sql(SPEC, bounded=True),
                      {"low": at(5)}).fetchall()
    assert sorted(rows) == [(2, at(6)), (3, at(7))]


def test_first_commit_takes_every_row_then_only_past_the_checkpoint(db):
    db.register("new_tombstones", pa.table({"id": pa.array([2], pa.int64()),
                                            "_valid_from": [at(6)]}))
    first = db.execute(events_sql(SPEC, first=True), {"checkpoint": 500}).fetchall()
    assert len(first) == len(HISTORY) + 1
    assert first[-1] == (6, "again", at(8), "insert", 408)  # ordered by time, then key
    assert (2, None, at(6), "delete", 500) in first
    later = db.execute(events_sql(SPEC, first=False), {"checkpoint": 500, "since": 205}) \
        .fetchall()
    assert [(r[0], r[3]) for r in later] == [(1, "update"), (2, "delete"), (3, "update"),
                                            (6, "insert")]

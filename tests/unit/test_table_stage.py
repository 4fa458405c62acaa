"""A table's stage in a real DuckDB file: chunks read in place or appended, the same rows either
way, through a change of place, rows set aside and restored, and chunks released."""

import duckdb
import pyarrow as pa
import pytest

from acme.warehouse.table_stage import TableStage
from acme.warehouse.tables import TableSpec

SPEC = TableSpec("t", (("id", "BIGINT"), ("name", "VARCHAR")), ("id",))
WIDER = TableSpec("t", (*SPEC.columns, ("code", "VARCHAR")), ("id",))


def chunk(lsn: int, *ids: int, spec: TableSpec = SPEC) -> pa.Table:
    count = len(ids)
    extra = {"code": [f"c{i}" for i in ids]} if spec is WIDER else {}
    return pa.table({
        "_seq": pa.array(ids, pa.int64()), "_op": ["I"] * count,
        "_commit_ts": pa.array([0] * count, pa.timestamp("us", tz="UTC")),
        "_lsn": pa.array([lsn] * count, pa.uint64()),
        "_unchanged": pa.nulls(count, pa.list_(pa.string())),
        "_by": pa.nulls(count, pa.list_(pa.string())),
        "id": [str(i) for i in ids], "name": [f"n{i}" for i in ids], **extra})


def staged(db) -> list[tuple]:
    return db.execute('SELECT _lsn, id, name FROM "rows_t" ORDER BY _seq').fetchall()


def kind(db) -> str:
    return db.execute("SELECT CASE WHEN count(*) > 0 THEN 'view' ELSE 'table' END "
                      "FROM duckdb_views() WHERE view_name = 'rows_t'").fetchone()[0]


@pytest.fixture
def db(tmp_path):
    connection = duckdb.connect(str(tmp_path / "w.duckdb"))
    connection.execute("BEGIN TRANSACTION")
    yield connection
    connection.close()


@pytest.mark.parametrize("in_place", [True, False])
def test_chunks_staged_in_place_or_appended_read_alike(db, in_place):
    stage = TableStage.begin(db, SPEC, in_place)
    stage.add(chunk(10, 1, 2))
    stage.add(chunk(20, 3))
    assert kind(db) == ("view" if in_place else "table")
    assert staged(db) == [(10, "1", "n1"), (10, "2", "n2"), (20, "3", "n3")]
    assert stage.rows == 3
    assert len(stage.chunks) == (2 if in_place else 0)
    stage.materialize()
    assert kind(db) == "table" and stage.chunks == []
    assert staged(db) == [(10, "1", "n1"), (10, "2", "n2"), (20, "3", "n3")]
    stage.add(chunk(30, 4))  # a table now: appended
    assert stage.rows == 4 and len(staged(db)) == 4


def test_rows_set_aside_leave_the_stage_until_restored(db):
    stage = TableStage.begin(db, SPEC, True)
    stage.add(chunk(10, 1, 2))
    stage.add(chunk(20, 3, 4))
    stage.has_unchanged = True
    held = stage.set_aside(20)
    assert staged(db) == [(10, "1", "n1"), (10, "2", "n2")] and stage.rows == 2
    assert stage.set_aside(99) is None
    assert held.rows == 2 and held.has_unchanged and not held.in_place
    db.execute(stage.drop_sql())  # merged meanwhile
    held.restore()
    assert staged(db) == [(20, "3", "n3"), (20, "4", "n4")]


def test_removed_rows_and_added_columns(db):
    stage = TableStage.begin(db, SPEC, True)
    stage.add(chunk(10, 1))
    stage.add(chunk(20, 2))
    stage.remove(10)
    assert staged(db) == [(20, "2", "n2")] and stage.rows == 1
    stage.add_columns(WIDER)
    stage.add(chunk(30, 3, spec=WIDER))
    assert db.execute('SELECT id, code FROM "rows_t" ORDER BY _seq').fetchall() == [
        ("2", None), ("3", "c3")]


def test_released_chunks_are_no_longer_registered(db):
    stage = TableStage.begin(db, SPEC, True)
    stage.add(chunk(10, 1))
    name = stage.chunks[0]
    db.execute(stage.drop_sql())
    stage.release()
    assert stage.chunks == []
    with pytest.raises(duckdb.CatalogException):
        db.execute(f"SELECT * FROM {name}")

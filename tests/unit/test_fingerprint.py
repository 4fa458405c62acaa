"""Fingerprint SQL on a DuckDB file: canonical text per type, and a checksum that ignores row
order but sees any value, NULL or key change. (Equality with PostgreSQL's side is proven by
tests/integration/test_verify.py on real data.)"""

import duckdb
import pytest

from acme.verify.fingerprint import Dialect, Fingerprint, canonical
from acme.warehouse.tables import TableSpec

SPEC = TableSpec("t", (("id", "BIGINT"), ("price", "DECIMAL(38,10)"), ("flag", "BOOLEAN"),
                       ("day", "DATE"), ("seen_at", "TIMESTAMP"), ("name", "VARCHAR")), ("id",))


@pytest.fixture
def db():
    with duckdb.connect() as connection:
        connection.execute("CREATE TABLE t (id BIGINT, price DECIMAL(38,10), flag BOOLEAN, "
                           "day DATE, seen_at TIMESTAMP, name VARCHAR)")
        connection.execute("""INSERT INTO t VALUES
            (1, 12.5, true, '2026-11-25', '2026-11-25 10:00:00.123', 'Évora — 北京'),
            (2, 0, false, NULL, NULL, ''),
            (3, -7.0001, NULL, '2026-01-01', '2026-01-01 00:00:00', NULL)""")
        yield connection


@pytest.mark.parametrize("column, kind, expected", [
    ("price", "DECIMAL(38,10)", ["12.5", "0", "-7.0001"]),
    ("flag", "BOOLEAN", ["t", "f", None]),
    ("day", "DATE", ["2026-11-25", None, "2026-01-01"]),
    ("seen_at", "TIMESTAMP", ["2026-11-25 10:00:00.123000", None, "2026-01-01 00:00:00.000000"]),
    ("id", "BIGINT", ["1", "2", "3"]),
])
def test_canonical_text_matches_postgres_forms(db, column, kind, expected):
    sql = canonical(f'"{column}"', kind, Dialect.duckdb)
    assert [row[0] for row in db.execute(f"SELECT {sql} FROM t ORDER BY id").fetchall()] \
        == expected


def checksum(db) -> tuple[int, int]:
    sums = db.execute(Fingerprint(SPEC, "t", Dialect.duckdb).bucket_sums()).fetchall()
    return sum(count for _, count, _ in sums), sum(total for _, _, total in sums)


def test_checksum_ignores_row_order_and_sees_every_change(db):
    before = checksum(db)
    db.execute("CREATE TABLE shuffled AS SELECT * FROM t ORDER BY id DESC")
    db.execute("DROP TABLE t")
    db.execute("ALTER TABLE shuffled RENAME TO t")
    assert checksum(db) == before
    for change in ("UPDATE t SET name = NULL WHERE id = 1",       # value -> NULL
                   "UPDATE t SET name = 'x' WHERE id = 3",        # NULL -> value
                   "UPDATE t SET name = '' WHERE id = 1",         # '' is not NULL
                   "UPDATE t SET price = price + 0.0000000001 WHERE id = 2",
                   "UPDATE t SET id = 4 WHERE id = 2"):
        db.execute("BEGIN")
        db.execute(change)
        assert checksum(db) != before, change
        db.execute("ROLLBACK")


def test_fields_are_length_prefixed_so_shifted_text_differs(db):
    spec = TableSpec("p", (("k", "BIGINT"), ("a", "VARCHAR"), ("b", "VARCHAR")), ("k",))
    fingerprint = Fingerprint(spec, "p", Dialect.duckdb)
    db.execute("CREATE TABLE p (k BIGINT, a VARCHAR, b VARCHAR)")
    db.execute("INSERT INTO p VALUES (1, 'ab', 'c')")
    first = db.execute(f"SELECT {fingerprint.row_hash} FROM p").fetchone()[0]
    db.execute("UPDATE p SET a = 'a', b = 'bc'")
    assert db.execute(f"SELECT {fingerprint.row_hash} FROM p").fetchone()[0] != first

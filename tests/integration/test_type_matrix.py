"""Every common PostgreSQL type, with its edge values, through both paths (the initial copy and
the stream), equals the source; a value a column cannot hold stops sync with one line and
applies nothing after it (issue 11: cases 1 and 8, "stuck for good", What to build 1 and 7)."""

import math

import duckdb
import psycopg
import pyarrow as pa
import pytest

from acme.errors import UnstorableValue
from acme.lsn import parse_lsn
from acme.warehouse.inspect import warehouse_status
from acme.warehouse.tables import cast_sql, quote
from tests.fix_sync import sync_once

COLUMNS = {  # name: (PostgreSQL type, min row, max row, special row)
    "n_ps": ("numeric(10,2)", "-99999999.99", "99999999.99", "0.01"),
    "n": ("numeric", "-1e30", "123456789012345678901234567890.000000000001", "NaN"),
    "n_inf": ("numeric", "-Infinity", "Infinity", "0.000000000001"),
    "i2": ("int2", "-32768", "32767", "0"),
    "i4": ("int4", "-2147483648", "2147483647", "0"),
    "i8": ("int8", "-9223372036854775808", "9223372036854775807", "0"),
    "f4": ("float4", "-3.4028235e+38", "3.4028235e+38", "NaN"),
    "f4_inf": ("float4", "-Infinity", "Infinity", "1e-45"),
    "f8": ("float8", "-1.7976931348623157e+308", "1.7976931348623157e+308", "NaN"),
    "f8_inf": ("float8", "-Infinity", "Infinity", "5e-324"),
    "t": ("text", "", "emoji 🚚 'quotes' \\ back\nslash\ttab", "NULL"),
    "vc": ("varchar(5)", "", "abcde", "çé"),
    "b": ("bool", "false", "true", "true"),
    "d": ("date", "4713-01-01 BC", "5874897-12-31", "0044-03-15 BC"),
    "d_inf": ("date", "-infinity", "infinity", "0001-01-01"),
    "ts": ("timestamp(6)", "4713-01-01 00:00:00 BC", "294246-12-31 23:59:59.999999",
           "0044-03-15 10:00:00.5 BC"),
    "ts_inf": ("timestamp", "-infinity", "infinity", "2026-11-25 14:30:00.123456"),
    "tz": ("timestamptz", "4713-01-01 00:00:00+00 BC", "294246-12-31 23:59:59.999999+00",
           "0044-03-15 10:00:00+00 BC"),
    "tz_inf": ("timestamptz", "-infinity", "infinity", "2026-11-25 14:30:00+05:30"),
    # DuckDB's last timestamp: the copy's last binary one (a later one comes as text)
    "ts_last": ("timestamp", "1969-12-31 23:59:59.999999", "294247-01-10 04:00:54.775806",
                "NULL"),
    "tz_last": ("timestamptz", "1969-12-31 23:59:59.999999+00",
                "294247-01-10 04:00:54.775806+00", "294247-01-10 06:00:54.775806+02"),
    "tm": ("time", "00:00:00", "24:00:00", "12:34:56.789012"),
    "iv": ("interval", "-178000000 years", "178000000 years", "1 mon -1 days -00:00:00.000001"),
    "u": ("uuid", "00000000-0000-0000-0000-000000000000",
          "ffffffff-ffff-ffff-ffff-ffffffffffff", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
    "j": ("jsonb", "{}", '{"a": [1, 2.50, null, "x\\"y"]}', "null"),
    "by": ("bytea", "", "\\x00ff10", "\\xdeadbeef"),
    "ai": ("int[]", "{}", "{1,NULL,3}", "{{1,2},{3,4}}"),
    "at": ("text[]", "{}", '{"a b",NULL,"c,d"}', '{""}'),
}


def create_typed(conn) -> None:
    columns = ", ".join(f"{quote(name)} {kind}" for name, (kind, *_) in COLUMNS.items())
    conn.execute(f"CREATE TABLE operations.typed (id int PRIMARY KEY, {columns})")
    conn.execute("GRANT SELECT ON operations.typed TO cdc_user")
    conn.execute("ALTER PUBLICATION cdc_publication ADD TABLE operations.typed")


def insert_edge_rows(conn, first_id: int) -> None:
    names = ", ".join(quote(name) for name in COLUMNS)
    holes = ", ".join(["%s"] * len(COLUMNS))
    for offset, index in enumerate((1, 2, 3)):
        values = [None if spec[index] == "NULL" else spec[index] for spec in COLUMNS.values()]
        conn.execute(f"INSERT INTO operations.typed (id, {names}) VALUES (%s, {holes})",
                     [first_id + offset, *values])
    conn.execute("INSERT INTO operations.typed (id) VALUES (%s)", [first_id + 3])  # all NULL


def source_text(conn) -> list[tuple]:
    texts = ", ".join(f"{quote(name)}::text" for name in COLUMNS)
    return conn.execute(f"SELECT id, {texts} FROM operations.typed ORDER BY id").fetchall()


def test_every_type_and_edge_value_equals_the_source_through_copy_and_stream(
        source_db, warehouse_path):
    with psycopg.connect(source_db.admin_dsn, autocommit=True) as conn:
        create_typed(conn)
        insert_edge_rows(conn, 1)
        sync_once(source_db, warehouse_path)  # rows 1-4 copied
        insert_edge_rows(conn, 11)
        conn.execute("UPDATE operations.typed SET i2 = i2 WHERE id = 13")  # an update too
        sync_once(source_db, warehouse_path)  # rows 11-14 streamed
        source = source_text(conn)
    with duckdb.connect(str(warehouse_path), read_only=True) as store:
        kinds = dict(store.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'current' AND table_name = 'typed'").fetchall())
        names = ["id", *COLUMNS]
        store.register("source_rows", pa.table(
            {name: pa.array([row[i] for row in source], pa.int32() if i == 0 else pa.string())
             for i, name in enumerate(names)}))
        store.execute("CREATE TEMP TABLE source AS SELECT * FROM source_rows")
        # The source's text, cast by the warehouse's rules, equals what each path stored.
        differing = store.execute(
            "SELECT s.id, " + ", ".join(
                f"w.{quote(n)} IS NOT DISTINCT FROM {cast_sql(f's.{quote(n)}', kinds[n])}"
                for n in COLUMNS)
            + " FROM source AS s FULL JOIN current.typed AS w ON w.id = s.id").fetchall()
        copied_equals_streamed = store.execute(
            "SELECT count(*) FROM current.typed AS a JOIN current.typed AS b ON b.id = a.id + 10 "
            "WHERE " + " AND ".join(f"a.{quote(n)} IS NOT DISTINCT FROM b.{quote(n)}"
                                    for n in COLUMNS)).fetchone()[0]
        spot = store.execute(
            """SELECT n, n_inf, f8, f4_inf, year(d), CAST(d AS VARCHAR), CAST(ts AS VARCHAR),
                      isinf(d_inf), CAST(tz AS VARCHAR), n_ps FROM current.typed
               WHERE id IN (3, 13) ORDER BY id""").fetchall()
    assert len(source) == 8
    assert [(row[0], [n for n, ok in zip(COLUMNS, row[1:], strict=True) if not ok])
            for row in differing if not all(row[1:])] == []
    assert copied_equals_streamed == 4
    for row in spot:  # the special row, as copied and as streamed
        assert row[0] == "NaN" and row[1] == "0.000000000001" and math.isnan(row[2])
        assert 0 < row[3] < 2e-45 and row[4] == -43 and row[5] == "0044-03-15 (BC)"
        assert row[6] == "0044-03-15 (BC) 10:00:00.5" and row[7] is False
        assert row[8] == "0044-03-15 (BC) 10:00:00+00" and str(row[9]) == "0.01"
    assert kinds["n"] == "VARCHAR" and kinds["n_ps"] == "DECIMAL(10,2)"


def create_edge(conn) -> None:
    conn.execute("CREATE TABLE operations.edge (id int PRIMARY KEY, ts timestamp)")
    conn.execute("GRANT SELECT ON operations.edge TO cdc_user")
    conn.execute("ALTER PUBLICATION cdc_publication ADD TABLE operations.edge")


def insert_past_duckdb_range(conn) -> int:
    """Rows 1-3, row 2 a timestamp PostgreSQL holds and DuckDB cannot (its range ends in the
    year 294247); returns the WAL position after row 2's commit."""
    conn.execute("INSERT INTO operations.edge VALUES (1, '2026-01-01')")
    conn.execute("INSERT INTO operations.edge VALUES (2, '294276-12-31 23:59:59')")
    lsn = parse_lsn(conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()[0])
    conn.execute("INSERT INTO operations.edge VALUES (3, '2026-01-03')")
    return lsn


def assert_stops_with_one_line(source_db, warehouse_path) -> str:
    for _ in range(2):  # stuck loudly, the same way each time, never half applied
        with pytest.raises(UnstorableValue) as stopped:
            sync_once(source_db, warehouse_path)
        message = str(stopped.value)
        assert message.startswith("cannot store '294276-12-31 23:59:59' in edge.ts "
                                  "(TIMESTAMP) at LSN ")
        assert "\n" not in message and "run `acme sync` again" in message
    return message


def test_a_value_no_column_can_hold_stops_the_stream_with_one_line_until_the_column_is_widened(
        source_db, warehouse_path):
    with psycopg.connect(source_db.admin_dsn, autocommit=True) as conn:
        create_edge(conn)
        sync_once(source_db, warehouse_path)
        written = insert_past_duckdb_range(conn)
        message = assert_stops_with_one_line(source_db, warehouse_path)
        with duckdb.connect(str(warehouse_path), read_only=True) as store:
            kept = store.execute("SELECT id FROM current.edge").fetchall()
            stopped = warehouse_status(store).stopped
        # nothing from the transaction holding the value on (nor of its batch) is applied
        assert set(kept) <= {(1,)}
        assert stopped is not None and stopped.reason == message  # what status shows
        # the commit LSN of the transaction holding it
        assert parse_lsn(message.split(" at LSN ")[1].split(";")[0]) <= written
        # Doing what the line says (widening the warehouse column) lets sync carry on.
        with duckdb.connect(str(warehouse_path)) as store:
            for layer in ("open_versions", "closed_versions"):
                store.execute(f'ALTER TABLE {layer}."edge" ALTER COLUMN "ts" TYPE VARCHAR')
        sync_once(source_db, warehouse_path)
    with duckdb.connect(str(warehouse_path), read_only=True) as store:
        rows = store.execute("SELECT id, ts FROM current.edge ORDER BY id").fetchall()
        stopped = warehouse_status(store).stopped
    assert rows == [(1, "2026-01-01 00:00:00"), (2, "294276-12-31 23:59:59"),
                    (3, "2026-01-03 00:00:00")]
    assert stopped is None  # cleared by the commit that went past it


def test_a_value_no_column_can_hold_stops_the_first_copy_with_one_line_and_no_file(
        source_db, warehouse_path):
    with psycopg.connect(source_db.admin_dsn, autocommit=True) as conn:
        create_edge(conn)
        insert_past_duckdb_range(conn)
        assert_stops_with_one_line(source_db, warehouse_path)
    assert not warehouse_path.exists()  # a failed first sync leaves nothing behind

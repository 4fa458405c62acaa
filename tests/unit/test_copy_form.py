"""How the initial copy reads each column (`tables.copy_select_list`) and how its values become
the warehouse's (`tables.copied_values_sql`): dates and timestamps as binary values where they
are in range, and as text in a companion column where they are not."""

from datetime import date, datetime

import duckdb
import pyarrow as pa

from acme.warehouse.tables import (
    TableSpec,
    copied_as_text,
    copied_values_sql,
    copy_select_list,
    split_columns,
    text_columns,
)

SPEC = TableSpec("t", (("id", "BIGINT"), ("d", "DATE"), ("ts", "TIMESTAMP"),
                       ("tz", "TIMESTAMP WITH TIME ZONE"), ("n", "DECIMAL(10,2)"),
                       ("ts:text", "VARCHAR")), ("id",))


def test_dates_and_timestamps_are_split_with_companions_whose_names_never_clash():
    assert split_columns(SPEC) == {"d": "d:text", "ts": "ts:text_", "tz": "tz:text"}
    assert text_columns(SPEC) == ("n", "ts:text")
    listed = copy_select_list(SPEC)
    assert listed.startswith('"id", "d", '
                             'CASE WHEN NOT (isfinite("d")) THEN "d"::text END AS "d:text", ')
    assert """"ts" <= '294247-01-10 04:00:54.775806'::timestamp""" in listed
    assert """"tz" <= '294247-01-10 04:00:54.775806+00'::timestamptz""" in listed
    assert listed.endswith('"n"::text AS "n", "ts:text"::text AS "ts:text"')


def _values(spec: TableSpec, batch: pa.Table, kinds: dict[str, str] | None = None) -> list:
    with duckdb.connect() as db:
        db.execute("SET TimeZone = 'UTC'")
        db.register("snapshot_raw", batch)
        values = [f"CAST({value} AS VARCHAR)" for value in copied_values_sql(spec, kinds)]
        return db.execute(f"SELECT {', '.join(values)} FROM snapshot_raw").fetchall()


# What ADBC's driver 1.8 makes of an infinite date and timestamp: wrapped, wrong values.
WRAPPED_DATE_INFINITY = -2147472692
WRAPPED_TIMESTAMP_MINUS_INFINITY = -9222425352054775808


def test_binary_values_are_kept_and_companion_text_is_cast_like_a_streamed_value():
    """Where the companion holds a value's text, it replaces the binary value (the driver's
    wrapped one)."""
    spec = TableSpec("t", (("id", "BIGINT"), ("d", "DATE"), ("ts", "TIMESTAMP"),
                           ("n", "DECIMAL(10,2)")), ("id",))
    batch = pa.table({
        "id": pa.array([1, 2, 3], pa.int64()),
        "d": pa.concat_arrays([pa.array([date(2026, 11, 25)], pa.date32()),
                               pa.array([WRAPPED_DATE_INFINITY], pa.int32()).cast(pa.date32()),
                               pa.array([None], pa.date32())]),
        "d:text": pa.array([None, "infinity", None], pa.string()),
        "ts": pa.concat_arrays([
            pa.array([WRAPPED_TIMESTAMP_MINUS_INFINITY], pa.int64()).cast(pa.timestamp("us")),
            pa.array([datetime(2026, 11, 25, 14, 30, 0, 123456), None], pa.timestamp("us"))]),
        "ts:text": pa.array(["-infinity", None, None], pa.string()),
        "n": pa.array(["12.50", None, "-0.01"], pa.string()),
    })
    assert _values(spec, batch) == [
        ("1", "2026-11-25", "-infinity", "12.50"),
        ("2", "infinity", "2026-11-25 14:30:00.123456", None),
        ("3", None, None, "-0.01"),  # NULL in both: NULL
    ]


def test_a_date_whose_warehouse_column_is_wider_is_copied_as_text_and_cast_to_it():
    spec = TableSpec("t", (("id", "BIGINT"), ("d", "DATE")), ("id",))
    kinds = {"id": "BIGINT", "d": "TIMESTAMP"}
    read = copied_as_text(spec, kinds)
    assert read.columns == (("id", "BIGINT"), ("d", "VARCHAR")) and split_columns(read) == {}
    assert copy_select_list(read) == '"id", "d"::text AS "d"'
    batch = pa.table({"id": pa.array([1, 2], pa.int64()),
                      "d": pa.array(["0044-03-15 BC", "infinity"], pa.string())})
    assert _values(read, batch, kinds) == [("1", "0044-03-15 (BC) 00:00:00"),
                                           ("2", "infinity")]
    assert copied_as_text(spec, dict(spec.columns)) == spec  # same type: split as usual
    zoned = TableSpec("t", (("id", "BIGINT"), ("tz", "TIMESTAMPTZ")), ("id",))
    assert copied_as_text(zoned, {"id": "BIGINT", "tz": "TIMESTAMP WITH TIME ZONE"}) == zoned

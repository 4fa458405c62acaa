"""Report rows rendered as JSON by DuckDB (`json_answer`) read exactly as Python renders them
(`serialize.plain`, then `json.dumps`) for the column types it renders, and only for those."""

import json

import duckdb
import pytest

from acme.reports.definitions import REPORTS
from acme.reports.engine import ReportQuestion
from acme.reports.json_answer import EXACT_TYPES, rows_json_sql
from acme.reports.serialize import plain

EXTREMES = {
    "BOOLEAN": ["true", "false"],
    "VARCHAR": ["'é \"quoted\" \\ back'", "chr(1) || chr(10) || chr(127)", "''", "'🚚'"],
    "TINYINT": ["-128", "127"],
    "SMALLINT": ["-32768", "32767"],
    "INTEGER": ["-2147483648", "2147483647"],
    "BIGINT": ["-9223372036854775808", "9223372036854775807"],
    "HUGEINT": ["-170141183460469231731687303715884105728",
                "170141183460469231731687303715884105727"],
    "UTINYINT": ["255"],
    "USMALLINT": ["65535"],
    "UINTEGER": ["4294967295"],
    "UBIGINT": ["18446744073709551615"],
    "UHUGEINT": ["340282366920938463463374607431768211455"],
}


def rendered_and_expected(db, type_name: str, literals: list[str]) -> tuple[list, list]:
    values = " UNION ALL ".join(f"SELECT {n} AS n, CAST({literal} AS {type_name}) AS v"
                                for n, literal in enumerate(literals))
    question = ReportQuestion(REPORTS["pending-items"], values, {}, "n DESC")
    rendered = db.execute(rows_json_sql(question)).fetchone()[0]
    rows = db.execute(f"SELECT * FROM ({values}) ORDER BY n DESC").fetchall()
    expected = [{"n": n, "v": plain(v)} for n, v in rows]
    return json.loads(rendered), json.loads(json.dumps(expected))


@pytest.mark.parametrize("type_name", sorted(EXACT_TYPES))
def test_rendered_types_read_as_python_renders_them_in_the_order_asked(type_name):
    db = duckdb.connect()
    rendered, expected = rendered_and_expected(db, type_name, EXTREMES[type_name] + ["NULL"])
    assert rendered == expected
    assert [row["n"] for row in rendered] == sorted(range(len(expected)), reverse=True)


@pytest.mark.parametrize("type_name, literal", [
    ("DATE", "'infinity'"), ("DECIMAL(10,2)", "12.5"),
    ("TIMESTAMPTZ", "'2026-11-26 10:00:00+00'"), ("INTERVAL", "'90 seconds'")])
def test_other_types_read_otherwise_so_python_renders_them(type_name, literal):
    db = duckdb.connect()
    db.execute("SET TimeZone = 'UTC'")
    rendered, expected = rendered_and_expected(db, type_name, [literal])
    assert type_name not in EXACT_TYPES
    assert rendered != expected


def test_no_rows_render_an_empty_array():
    question = ReportQuestion(REPORTS["pending-items"], "SELECT 1 AS n WHERE false", {}, "n")
    assert duckdb.connect().execute(rows_json_sql(question)).fetchone()[0] == "[]"

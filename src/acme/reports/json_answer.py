"""A report answer as JSON text, its rows rendered inside DuckDB when that is exact.

`acme serve` computes each answer it shares once per commit, on a thread beside the
pipeline's apply, which needs the GIL between its statements. Pending-items answers every
product (20k rows at 10M orders): fetching them as Python tuples, turning those into dicts and
dumping them held the GIL for about 60 of its 70 ms, and under 16 clients that stretched every
apply. DuckDB renders the same array (`to_json` of each row, in the report's order) in about a
quarter of that time without the GIL.

DuckDB's JSON of a value is what `serialize.plain` and `json.dumps` give for integers, text
and booleans only: a date, time, decimal or interval prints otherwise (an infinite date as
"infinity" where Python reads 9999-12-31). An answer with any other column type is rendered
in Python, as before.
"""

import json
from datetime import datetime

import duckdb

from acme.classification import StatusClassification
from acme.reports.engine import ReportAnswer, ReportQuestion, consistent_read, read_freshness
from acme.reports.serialize import answer_payload

EXACT_TYPES = frozenset({"BOOLEAN", "VARCHAR", "TINYINT", "SMALLINT", "INTEGER", "BIGINT",
                         "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT",
                         "UHUGEINT"})


def rows_json_sql(question: ReportQuestion) -> str:
    """One JSON array of the answer's rows, each an object of its columns in their order."""
    return (f"SELECT coalesce(CAST(to_json(list(answer ORDER BY {question.order})) AS VARCHAR), "
            f"'[]') FROM ({question.sql}) AS answer")


def answer_json(db: duckdb.DuckDBPyConnection, name: str,
                classification: StatusClassification, limit: int | None = None,
                as_of: datetime | None = None, status: str | None = None) -> bytes:
    """`json.dumps(answer_payload(run_report(...)))`, parsed alike."""
    question = ReportQuestion.of(name, limit, as_of, status)
    rows_json, rows = None, ()
    with consistent_read(db, classification, as_of) as cursor:
        # No rows: DuckDB plans the query for its columns and does not run it.
        described = cursor.execute(f"SELECT * FROM ({question.sql}) LIMIT 0",
                                   question.params).description
        columns = tuple(column[0] for column in described)
        if all(str(column[1]) in EXACT_TYPES for column in described):
            rows_json = cursor.execute(rows_json_sql(question), question.params).fetchone()[0]
        else:
            rows = tuple(cursor.execute(question.sql, question.params).fetchall())
        freshness = read_freshness(cursor)
    payload = answer_payload(ReportAnswer(name, question.report.title, columns, rows, as_of,
                                          freshness))
    if rows_json is None:
        return json.dumps(payload).encode()
    del payload["rows"]  # the last key: the rendered array takes its place
    return f'{json.dumps(payload)[:-1]}, "rows": {rows_json}}}'.encode()

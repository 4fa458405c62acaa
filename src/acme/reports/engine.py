"""Running a report against the warehouse: parameters checked, answer with its freshness."""

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import duckdb

from acme.classification import StatusClassification
from acme.errors import ConfigError, WarehouseError
from acme.lsn import format_lsn
from acme.reports.definitions import REPORTS, Report
from acme.warehouse.store import warehouse_cursor

MAX_LIMIT = 1000


@dataclass(frozen=True)
class Freshness:
    """The source state an answer reflects: the last applied commit."""

    commit_lsn: str | None
    commit_time: datetime | None


@dataclass(frozen=True)
class ReportAnswer:
    report: str
    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]
    as_of: datetime | None
    freshness: Freshness


def parse_as_of(text: str | None, now: datetime | None = None) -> datetime | None:
    """An ISO date or time (UTC when no zone is given); never in the future."""
    if text is None or text == "":
        return None
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"as_of {text!r} is not an ISO date/time "
                          "(e.g. 2026-11-25T14:30:00Z)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    if moment > (now or datetime.now(UTC)):
        raise ConfigError(f"as_of {text!r} is in the future; ask about a past time")
    return moment


def check_limit(limit: int | None) -> None:
    if limit is not None and not 1 <= limit <= MAX_LIMIT:
        raise ConfigError(f"limit must be between 1 and {MAX_LIMIT}, got {limit}")


def run_report(db: duckdb.DuckDBPyConnection, name: str, classification: StatusClassification,
               limit: int | None = None, as_of: datetime | None = None,
               status: str | None = None) -> ReportAnswer:
    """`status` 'open' makes the customers report count open orders instead of pending ones
    (`{counted}` in its SQL)."""
    question = ReportQuestion.of(name, limit, as_of, status)
    with consistent_read(db, classification, as_of) as cursor:
        result = cursor.execute(question.sql, question.params)
        columns = tuple(column[0] for column in result.description)
        rows = tuple(result.fetchall())
        freshness = read_freshness(cursor)
    return ReportAnswer(name, question.report.title, columns, rows, as_of, freshness)


@dataclass(frozen=True)
class ReportQuestion:
    """A report's SQL and parameters for one question, its values checked."""

    report: Report
    sql: str
    params: dict[str, Any]
    order: str  # the rows' order, by the names of the answer's columns

    @classmethod
    def of(cls, name: str, limit: int | None, as_of: datetime | None,
           status: str | None) -> "ReportQuestion":
        if name not in REPORTS:
            raise ConfigError(f"unknown report {name!r}; choose one of {', '.join(REPORTS)}")
        check_limit(limit)
        report = REPORTS[name]
        counted = "open_orders" if status == "open" else "pending_orders"
        sql = report.query(as_of is not None, counted)
        params: dict[str, Any] = {}
        if report.takes_limit:
            params["limit"] = limit or report.default_limit
        if as_of is not None:
            params["as_of"] = as_of
        used = set(re.findall(r"\$(\w+)", sql))
        return cls(report, sql, {k: v for k, v in params.items() if k in used},
                   report.order.format(counted=counted))


@contextmanager
def consistent_read(db: duckdb.DuckDBPyConnection, classification: StatusClassification,
                    as_of: datetime | None) -> Iterator[duckdb.DuckDBPyConnection]:
    """A cursor in one transaction (an answer and its freshness from one snapshot), once the
    state is known to answer with this classification and `as_of` to be within history."""
    cursor = warehouse_cursor(db)
    try:
        cursor.execute("BEGIN TRANSACTION")
        check_state(cursor, classification)
        if as_of is not None:
            check_history_begins(cursor, as_of)
        yield cursor
        cursor.execute("COMMIT")
    finally:
        cursor.close()


def check_state(db: duckdb.DuckDBPyConnection, classification: StatusClassification) -> None:
    """The report state must exist and count with the classification asked for."""
    row = db.execute("SELECT classification FROM _acme.report_state").fetchone()
    if row is None:
        raise WarehouseError("the warehouse has no report state yet; run `acme sync` "
                             "(the initial snapshot builds it)")
    if json.loads(row[0]) != classification.sql_params():
        raise ConfigError("the report state was built with another open/pending status "
                          "classification; run `acme sync` to rebuild it with this one, or "
                          "ask with the classification it was built with")


def check_history_begins(db: duckdb.DuckDBPyConnection, as_of: datetime) -> None:
    """An as-of before the history's first moment (the moment the initial copy reflects) has
    no answer: say when it begins, rather than answer with empty rows."""
    if db.execute("SELECT count(*) FROM duckdb_tables() WHERE schema_name = '_acme' "
                  "AND table_name = 'history_begins'").fetchone()[0] == 0:
        return  # a warehouse from before this was recorded: nothing to compare with
    began = db.execute("SELECT min(began) FROM _acme.history_begins").fetchone()[0]
    if began is not None and as_of < began:
        raise ConfigError(
            f"as_of {as_of.isoformat()} is before the history begins "
            f"({began.astimezone(UTC).isoformat()}); ask about that time or later")


def read_freshness(db: duckdb.DuckDBPyConnection) -> Freshness:
    row = db.execute("SELECT end_lsn, commit_time FROM _acme.checkpoint").fetchone()
    if row is None:
        return Freshness(None, None)
    return Freshness(format_lsn(row[0]), row[1])

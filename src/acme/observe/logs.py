"""Structured logs: with `--log-format json` (or ACME_LOG_FORMAT=json) every log record is one
JSON object per line on stderr: batch applied, reconnect, error, snapshot progress, and what
the server libraries log. Text (the default) keeps the console's human lines.

Secrets never reach a line: DSNs are masked where they are formatted (`config.mask_dsn`), and
every string is passed through `redact` here as well, in case one slips through.
"""

import json
import logging
import re
import sys
import time
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from acme.lsn import format_lsn
from acme.observe.metrics import OP_NAMES
from acme.observe.observer import BatchStats, SyncObserver
from acme.warehouse.store import Warehouse

LOGGER = logging.getLogger("acme")
PROGRESS_EVERY_SECONDS = 1.0
_URL_PASSWORD = re.compile(r"(\w+://[^:/@\s]*:)[^@\s]+@")
_KEYWORD_PASSWORD = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)


class LogFormat(StrEnum):
    text = "text"
    json = "json"


def redact(text: str) -> str:
    """Mask passwords in URLs (`user:secret@`) and in key=value conninfo strings."""
    return _KEYWORD_PASSWORD.sub(r"\1***", _URL_PASSWORD.sub(r"\1***@", text))


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (UTC), level, logger, event, message, then fields."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": getattr(record, "event", "log"),
            "message": record.getMessage(),
            **getattr(record, "fields", {}),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(_redacted(line), default=str, ensure_ascii=False)


def _redacted(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: _redacted(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_redacted(item) for item in value]
    return value


def configure(log_format: LogFormat) -> None:
    """With json, every logger (ours and the server's) writes JSON lines to stderr."""
    if log_format is not LogFormat.json:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)


def json_enabled() -> bool:
    return any(isinstance(h.formatter, JsonFormatter) for h in logging.getLogger().handlers)


def log_event(event: str, message: str, level: int = logging.INFO, **fields: Any) -> None:
    LOGGER.log(level, message, extra={"event": event, "fields": fields})


class LogObserver(SyncObserver):
    """The pipeline's progress as log events (the JSON counterpart of the console lines)."""

    def __init__(self) -> None:
        self.table = ""
        self.estimated = 0
        self.rows = 0
        self.started = 0.0
        self.last_progress = 0.0

    def warehouse_opened(self, warehouse: Warehouse) -> None:
        log_event("warehouse_opened", f"warehouse {warehouse.path} open",
                  warehouse=str(warehouse.path))

    def snapshot_started(self, tables: list[str], estimated_rows: int) -> None:
        # The copy interleaves its tables (parts on several connections): progress is for all.
        self.table, self.estimated, self.rows = ",".join(tables), estimated_rows, 0
        self.started = self.last_progress = time.monotonic()
        log_event("snapshot_progress", f"snapshot of {len(tables)} tables started",
                  table=self.table, rows=0, estimated_rows=estimated_rows)

    def snapshot_rows(self, rows: int) -> None:
        self.rows += rows
        now = time.monotonic()
        if now - self.last_progress >= PROGRESS_EVERY_SECONDS:
            self.last_progress = now
            rate = self.rows / max(now - self.started, 1e-6)
            log_event("snapshot_progress", f"snapshot of {self.table}: {self.rows:,} rows",
                      table=self.table, rows=self.rows, estimated_rows=self.estimated,
                      rows_per_second=round(rate))

    def table_ordering(self, table: str, groups_read_per_key: float) -> None:
        log_event("table_ordering", f"{table}: rewriting its open versions in key order (a "
                  f"key's lookup read {groups_read_per_key:.0f} row groups)", table=table,
                  groups_read_per_key=round(groups_read_per_key, 1))

    def snapshot_done(self, rows: int, seconds: float) -> None:
        log_event("snapshot_done", f"snapshot: {rows:,} rows in {seconds:.1f}s", rows=rows,
                  seconds=round(seconds, 3))

    def batch_applied(self, stats: BatchStats) -> None:
        lag_ms = (stats.applied_at - stats.first_commit_time.timestamp()) * 1000
        log_event("batch_applied", f"applied {stats.changes:,} changes",
                  transactions=stats.transactions, changes=stats.changes,
                  checkpoint_lsn=format_lsn(stats.end_lsn),
                  last_commit_time=stats.last_commit_time.isoformat(),
                  apply_seconds=round(stats.seconds, 4), lag_ms=round(lag_ms, 1),
                  changes_by_table={f"{table}.{OP_NAMES.get(op, op)}": count
                                    for (table, op), count in stats.changes_by_table.items()})

    def connection_lost(self, reason: str, retry_in: float) -> None:
        log_event("reconnect", f"{reason}; reconnecting in {retry_in:.0f}s", logging.WARNING,
                  reason=reason, retry_in_seconds=retry_in)

    def error(self, error: Exception) -> None:
        log_error(error)


def log_error(error: Exception, message: str | None = None) -> None:
    log_event("error", message or str(error), logging.ERROR, kind=type(error).__name__)

"""One JSON and CSV shape for report answers, shared by the CLI and the HTTP API."""

import csv
import io
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from acme.observe.lag import LagSample
from acme.reports.engine import ReportAnswer
from acme.warehouse.inspect import OrderStory, WarehouseStatus


def plain(value: Any) -> Any:
    """A JSON-safe value: dates and times in ISO 8601, decimals as exact strings, durations
    in seconds."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, timedelta):
        return value.total_seconds()
    return value


def status_payload(info: WarehouseStatus) -> dict[str, Any]:
    return {"checkpoint_lsn": info.checkpoint_lsn,
            "confirmed_lsn": info.confirmed_lsn,
            "source_commit_time": plain(info.source_commit_time),
            "seconds_since_source_commit": info.seconds_behind_commit,
            "now": datetime.now(UTC).isoformat(),
            "rows": {f"{c.layer}.{c.table}": c.rows for c in info.counts},
            "stopped": None if info.stopped is None else
            {"reason": info.stopped.reason, "since": plain(info.stopped.stopped_at)}}


def lag_payload(sample: LagSample | None) -> dict[str, Any] | None:
    """How far behind the source, as last sampled (None: not sampled yet or no source)."""
    if sample is None:
        return None
    return {"sampled_at": plain(sample.at), "seconds": sample.lag_seconds,
            "bytes": sample.lag_bytes, "retained_wal_bytes": sample.retained_wal_bytes}


def story_payload(story: OrderStory) -> dict[str, Any]:
    return {"order_id": story.order_id,
            **{part: [{k: plain(v) for k, v in record.items()} for record in records]
               for part, records in (("versions", story.versions),
                                     ("status_moves", story.status_moves),
                                     ("items", story.items))}}


def answer_payload(answer: ReportAnswer) -> dict[str, Any]:
    return {
        "report": answer.report,
        "title": answer.title,
        "as_of": plain(answer.as_of),
        "freshness": {"commit_lsn": answer.freshness.commit_lsn,
                      "commit_time": plain(answer.freshness.commit_time)},
        "columns": list(answer.columns),
        "rows": [{column: plain(value) for column, value in zip(answer.columns, row,
                                                                  strict=True)}
                 for row in answer.rows],
    }


def payload_csv(payload: dict[str, Any]) -> str:
    """A report payload as CSV: a header, then one line per row (NULL as empty)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(payload["columns"])
    for row in payload["rows"]:
        writer.writerow(["" if row[c] is None else row[c] for c in payload["columns"]])
    return out.getvalue()

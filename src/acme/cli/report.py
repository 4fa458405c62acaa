"""`acme report`, `acme history order`, `acme status`: answers from the warehouse (or from
the `acme serve` that owns it), rendered as a table, CSV or JSON."""

import json
from enum import StrEnum
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from acme.capture.catalog import source_position
from acme.classification import classification_from
from acme.cli.output import console, err_console
from acme.config import Settings
from acme.errors import AcmeError, ConfigError
from acme.lsn import format_lsn, parse_lsn
from acme.reports.access import AnswerSource, open_answers
from acme.reports.definitions import REPORTS
from acme.reports.engine import check_limit, parse_as_of
from acme.reports.serialize import payload_csv
from acme.source.connect import connect


class Format(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


WarehouseOption = typer.Option(None, "--warehouse", help="DuckDB file [ACME_WAREHOUSE].")


def _answers(warehouse: Path | None) -> tuple[AnswerSource, Settings]:
    settings = Settings()
    path = warehouse or settings.warehouse
    return open_answers(path, classification_from(settings.terminal_statuses,
                                                  settings.pending_statuses)), settings


def _render_table(payload: dict[str, Any]) -> None:
    freshness = payload["freshness"]
    caption = (f"as of {payload['as_of'] or 'now'} · reflects source commit "
               f"{freshness['commit_time']} (LSN {freshness['commit_lsn']})")
    table = Table(title=payload["title"])
    for column in payload["columns"]:
        table.add_column(column)
    for row in payload["rows"]:
        table.add_row(*("" if row[c] is None else str(row[c]) for c in payload["columns"]))
    console.print(table)
    console.print(caption, style="dim", highlight=False)


def report(name: str = typer.Argument(..., help=f"One of: {', '.join(REPORTS)}, or 'all'."),
           limit: int = typer.Option(None, "--limit", help="Rows for top-N reports (1..1000)."),
           as_of: str = typer.Option(None, "--as-of", help="A past time (ISO 8601)."),
           output_format: Format = typer.Option(Format.table, "--format"),
           output: Path = typer.Option(None, "--output", help="Write to this file."),
           output_dir: Path = typer.Option(None, "--output-dir",
                                           help="With 'all': write one CSV per report."),
           warehouse: Path = WarehouseOption) -> None:
    """Answer a business report, now or as of a past time."""
    if name != "all" and name not in REPORTS:
        raise ConfigError(f"unknown report {name!r}; choose one of {', '.join(REPORTS)}, all")
    if name == "all" and output_dir is None:
        raise ConfigError("`acme report all` needs --output-dir DIR")
    check_limit(limit)
    moment = parse_as_of(as_of)
    answers, _ = _answers(warehouse)
    try:
        if name == "all":
            output_dir.mkdir(parents=True, exist_ok=True)
            for report_name in REPORTS:
                payload = answers.report(report_name, limit, moment)
                (output_dir / f"{report_name}.csv").write_text(payload_csv(payload))
            console.print(f"wrote {len(REPORTS)} reports to {output_dir}")
            return
        payload = answers.report(name, limit, moment)
    finally:
        answers.close()
    if output_format is Format.table and output is None:
        _render_table(payload)
        return
    text = payload_csv(payload) if output_format is Format.csv else json.dumps(payload, indent=2)
    if output is None:
        print(text, end="" if text.endswith("\n") else "\n")
    else:
        output.write_text(text)
        err_console.print(f"wrote {output}")


history_app = typer.Typer(help="The history of a source row.", no_args_is_help=True)


@history_app.command("order")
def history_order(order_id: int = typer.Argument(..., help="The order's id."),
                  warehouse: Path = WarehouseOption) -> None:
    """An order's versions, status moves (with time in each status) and its items."""
    answers, _ = _answers(warehouse)
    try:
        story = answers.order_history(order_id)
    finally:
        answers.close()
    if not story["versions"]:
        raise ConfigError(f"order {order_id} is not in the warehouse history")
    for part, title in (("versions", f"Order {order_id}: versions"),
                        ("status_moves", "Status moves"), ("items", "Items (all versions)")):
        records = story[part]
        table = Table(title=title)
        for column in (records[0] if records else {}):
            table.add_column(column)
        for record in records:
            table.add_row(*("" if v is None else str(v) for v in record.values()))
        console.print(table)


def status(warehouse: Path = WarehouseOption) -> None:
    """Checkpoint, source commit reflected, lag, slot WAL retained, row counts per layer."""
    answers, settings = _answers(warehouse)
    try:
        info = answers.status()
    finally:
        answers.close()
    console.print(f"checkpoint LSN: {info['checkpoint_lsn'] or '-'}")
    console.print(f"source commit reflected: {info['source_commit_time'] or '-'}")
    _print_source_lag(settings, info["checkpoint_lsn"], info["seconds_since_source_commit"])
    table = Table(title="Rows per layer")
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, rows in info["rows"].items():
        table.add_row(name, f"{rows:,}")
    console.print(table)


def _print_source_lag(settings: Settings, checkpoint: str | None,
                      since_commit: float | None) -> None:
    try:
        with connect(settings.source_dsn) as conn:
            position = source_position(conn, settings.slot)
    except AcmeError as error:
        console.print(f"source: not reachable ({error})")
        return
    # The slot's confirmed position also moves past WAL of unpublished tables; the
    # checkpoint only moves with published transactions.
    consumed = position.slot_confirmed_lsn or (parse_lsn(checkpoint) if checkpoint else None)
    behind = position.current_lsn - consumed if consumed is not None else None
    console.print(f"source WAL position: {format_lsn(position.current_lsn)}")
    if behind is not None:
        # Caught up when nothing committed since; otherwise the age of the last applied commit.
        seconds = 0.0 if behind <= 0 else since_commit
        console.print(f"lag: {max(behind, 0):,} bytes, {seconds or 0:.1f} s")
    if position.slot_restart_lsn is None:
        console.print(f"slot {settings.slot}: missing")
    else:
        retained = position.current_lsn - position.slot_restart_lsn
        console.print(f"slot {settings.slot} retains {retained:,} bytes of WAL")

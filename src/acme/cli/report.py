"""`acme report`, `acme history order`, `acme status`: answers from the warehouse (or from
the `acme serve` that owns it), rendered as a table, CSV or JSON."""

import json
from enum import StrEnum
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from acme.capture.catalog import SourcePosition, source_position
from acme.classification import classification_from
from acme.cli.output import (
    check_output_dir,
    check_output_file,
    console,
    err_console,
    write_output,
)
from acme.config import (
    Settings,
    check_dsn,
    check_slot_name,
    check_warehouse_path,
    load_settings,
)
from acme.errors import AcmeError, ConfigError
from acme.lsn import format_lsn, parse_lsn
from acme.reports.access import AnswerSource, open_answers
from acme.reports.definitions import REPORTS
from acme.reports.engine import check_limit, parse_as_of
from acme.reports.serialize import payload_csv
from acme.source.connect import connect
from acme.warehouse.ownership import consumed_elsewhere


class Format(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


class Engine(StrEnum):
    duckdb = "duckdb"
    daft = "daft"


WarehouseOption = typer.Option(None, "--warehouse", help="DuckDB file [ACME_WAREHOUSE].")


def _answers(warehouse: Path | None, engine: Engine = Engine.duckdb,
             lake: str | None = None) -> tuple[AnswerSource, Settings]:
    settings = load_settings()
    classification = classification_from(settings.terminal_statuses,
                                         settings.pending_statuses)
    if engine is Engine.daft:
        location = lake or settings.lake
        if not location:
            raise ConfigError("--engine daft reads the Iceberg lake: give --lake DIR "
                              "(or catalog:NAME), or set ACME_LAKE")
        from acme.reports.lake_engine import LakeSource

        return LakeSource.open(location, classification), settings
    path = check_warehouse_path(settings.warehouse if warehouse is None else warehouse,
                                must_exist=True)
    token = settings.api_token.get_secret_value() if settings.api_token else None
    return open_answers(path, classification, token), settings


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
           warehouse: Path = WarehouseOption,
           engine: Engine = typer.Option(Engine.duckdb, "--engine",
                                         help="duckdb: the warehouse; daft: the Iceberg lake."),
           lake: str = typer.Option(None, "--lake",
                                    help="The lake --engine daft reads [ACME_LAKE].")) -> None:
    """Answer a business report, now or as of a past time."""
    if name != "all" and name not in REPORTS:
        raise ConfigError(f"unknown report {name!r}; choose one of {', '.join(REPORTS)}, all")
    if name == "all" and output_dir is None:
        raise ConfigError("`acme report all` needs --output-dir DIR")
    check_limit(limit)
    moment = parse_as_of(as_of)
    if output is not None:
        check_output_file(output)
    if output_dir is not None:
        check_output_dir(output_dir)
    answers, _ = _answers(warehouse, engine, lake)
    try:
        if name == "all":
            # Every answer first, then the files: a failed query writes nothing.
            texts = {report_name: payload_csv(answers.report(report_name, limit, moment))
                     for report_name in REPORTS}
        else:
            payload = answers.report(name, limit, moment)
    finally:
        answers.close()
    if name == "all":
        _write_all(output_dir, texts)
        return
    if output_format is Format.table and output is None:
        _render_table(payload)
        return
    text = payload_csv(payload) if output_format is Format.csv else json.dumps(payload, indent=2)
    if output is None:
        print(text, end="" if text.endswith("\n") else "\n")
    else:
        write_output(output, text)
        err_console.print(f"wrote {output}")


def _write_all(output_dir: Path, texts: dict[str, str]) -> None:
    """One CSV per report; on a failure the files this call wrote are removed again."""
    created_dir = not output_dir.exists()
    written: list[Path] = []
    try:
        output_dir.mkdir(exist_ok=True)
        for report_name, text in texts.items():
            target = output_dir / f"{report_name}.csv"
            write_output(target, text)
            written.append(target)
    except BaseException:
        for target in written:
            target.unlink(missing_ok=True)
        if created_dir and output_dir.exists() and not any(output_dir.iterdir()):
            output_dir.rmdir()
        raise
    console.print(f"wrote {len(texts)} reports to {output_dir}")


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


def status(warehouse: Path = WarehouseOption,
           dsn: str = typer.Option(None, "--dsn", help="Replication user's URL "
                                   "[ACME_SOURCE_DSN]."),
           slot: str = typer.Option(None, "--slot", help="Replication slot [ACME_SLOT].")
           ) -> None:
    """Checkpoint, source commit reflected, lag, slot WAL retained, row counts per layer."""
    settings = load_settings()
    source_dsn = check_dsn(settings.source_dsn if dsn is None else dsn)
    slot_name = check_slot_name(settings.slot if slot is None else slot)
    answers, _ = _answers(warehouse)
    try:
        # The slot first: a running sync records a position in the warehouse before confirming
        # it to the slot, so read in this order a gap can only mean another reader.
        position = _source_position(source_dsn, slot_name)
        info = answers.status()
    finally:
        answers.close()
    stopped = info.get("stopped")
    if stopped:
        console.print(f"sync STOPPED since {stopped['since']}: {stopped['reason']}",
                      style="bold red", markup=False, highlight=False, soft_wrap=True)
    confirmed = info.get("confirmed_lsn")
    gap = consumed_elsewhere(warehouse or settings.warehouse, slot_name,
                             None if isinstance(position, str) else position.slot_confirmed_lsn,
                             parse_lsn(confirmed) if confirmed else None)
    if gap:
        console.print(gap, style="bold red", markup=False, highlight=False, soft_wrap=True)
    console.print(f"checkpoint LSN: {info['checkpoint_lsn'] or '-'}")
    console.print(f"source commit reflected: {info['source_commit_time'] or '-'}")
    if isinstance(position, str):
        console.print(f"source: not reachable ({position})")
    else:
        _print_source_lag(position, slot_name, info["checkpoint_lsn"],
                          info["seconds_since_source_commit"])
    table = Table(title="Rows per layer")
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, rows in info["rows"].items():
        table.add_row(name, f"{rows:,}")
    console.print(table)


def _source_position(dsn: str, slot: str) -> SourcePosition | str:
    """The source's position and the slot's, or why the source cannot be reached."""
    try:
        with connect(dsn, "acme status") as conn:
            return source_position(conn, slot)
    except AcmeError as error:
        return str(error)


def _print_source_lag(position: SourcePosition, slot: str, checkpoint: str | None,
                      since_commit: float | None) -> None:
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
        console.print(f"slot {slot}: missing")
    else:
        retained = position.current_lsn - position.slot_restart_lsn
        console.print(f"slot {slot} retains {retained:,} bytes of WAL")

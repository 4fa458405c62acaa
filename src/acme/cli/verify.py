"""`acme verify`: compare the warehouse with the source; exit 0 when equal, 1 otherwise."""

import json
from pathlib import Path

import typer
from rich.table import Table

from acme.classification import classification_from
from acme.cli.output import console
from acme.cli.report import WarehouseOption
from acme.cli.sync import DsnOption, PublicationOption, SlotOption
from acme.config import Settings
from acme.reports.access import open_answers
from acme.verify import VerifyOptions


def verify(dsn: str = DsnOption, warehouse: Path = WarehouseOption, slot: str = SlotOption,
           publication: str = PublicationOption,
           as_json: bool = typer.Option(False, "--json", help="Print the full result as JSON."),
           ) -> None:
    """Compare every table's current rows with the source (counts, checksums, keys).

    Exit 0 when equal; 1 with one line per differing table. While `acme serve` holds the
    warehouse, that server runs the comparison against the source it follows.
    """
    settings = Settings()
    options = VerifyOptions(dsn or settings.source_dsn, slot or settings.slot,
                            publication or settings.publication)
    answers = open_answers(warehouse or settings.warehouse,
                           classification_from(settings.terminal_statuses,
                                               settings.pending_statuses))
    try:
        result = answers.verify(options)
    finally:
        answers.close()
    if as_json:
        print(json.dumps(result, indent=2))
    elif result["equal"]:
        _render_equal(result)
    else:
        for table in result["tables"]:
            if not table["equal"]:
                console.print(table["line"], highlight=False, soft_wrap=True)
    if not result["equal"]:
        raise typer.Exit(1)


def _render_equal(result: dict) -> None:
    table = Table(title="Warehouse = source")
    for column in ("table", "rows", "checksum"):
        table.add_column(column, justify="right" if column == "rows" else "left")
    for check in result["tables"]:
        table.add_row(check["table"], f"{check['source_rows']:,}", "equal")
    console.print(table)
    how = (f"compared at common points while the pipeline applied changes "
           f"({result['rounds']} round(s))" if result["following"] else "compared at rest")
    console.print(f"equal at source LSN {result['source_lsn']}; {how}", style="dim",
                  highlight=False)

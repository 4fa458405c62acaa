"""Entry point: the `acme` Typer app, and the one place errors become a line and an exit code."""

import sys

import psycopg
import typer

from acme.cli import demo, report, serve, source, sync
from acme.cli.output import err_console
from acme.errors import AcmeError

app = typer.Typer(
    help="ACME Analytics: near-real-time analytics on ACME's PostgreSQL orders.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(source.app, name="source")
app.command()(demo.demo)
app.command()(sync.sync)
app.command()(serve.serve)
app.command()(report.report)
app.command()(report.status)
app.add_typer(report.history_app, name="history")

_debug = {"on": False}


@app.callback()
def _global(debug: bool = typer.Option(False, "--debug", help="Show tracebacks on errors.")):
    _debug["on"] = debug


def main() -> None:
    try:
        app()
    except AcmeError as error:
        if _debug["on"]:
            raise
        err_console.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except psycopg.Error as error:
        if _debug["on"]:
            raise
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        err_console.print(f"[bold red]error:[/] the database refused: {first}",
                          highlight=False, soft_wrap=True)
        sys.exit(1)

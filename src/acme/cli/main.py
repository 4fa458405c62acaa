"""Entry point: the `acme` Typer app, and the one place errors become a line and an exit code."""

import sys

import duckdb
import psycopg
import psycopg2
import typer

from acme.cli import demo, lake, report, serve, source, sync, verify
from acme.cli.output import err_console
from acme.errors import AcmeError
from acme.observe.logs import LogFormat, configure, json_enabled, log_error

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
app.command()(verify.verify)
app.add_typer(report.history_app, name="history")
app.add_typer(lake.app, name="lake")

_debug = {"on": False}


@app.callback()
def _global(debug: bool = typer.Option(False, "--debug", help="Show tracebacks on errors."),
            log_format: LogFormat = typer.Option(
                LogFormat.text, "--log-format", envvar="ACME_LOG_FORMAT",
                help="json: one JSON object per line on stderr (batches, reconnects, errors, "
                     "snapshot progress).")):
    _debug["on"] = debug
    configure(log_format)


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def main() -> None:
    """Run the CLI; errors a user can act on become one line and exit code 1."""
    try:
        app()
    except (AcmeError, psycopg.Error, psycopg2.Error, duckdb.Error) as error:
        if _debug["on"]:
            raise
        if isinstance(error, AcmeError):
            message = str(error)
        elif isinstance(error, duckdb.Error):
            message = f"the warehouse refused: {_first_line(error)}"
        else:
            message = f"the database refused: {_first_line(error)}"
        if json_enabled():
            log_error(error, message)
        else:
            err_console.print(f"[bold red]error:[/] {message}", highlight=False,
                              soft_wrap=True)
        sys.exit(1)

"""Entry point: the `acme` Typer app, and the one place errors become a line and an exit code.

Exit codes (documented in the README):
  0  done;
  1  the command could not do its job: a setting, flag value, source, warehouse or file
     problem, said in one line;
  2  the command line itself is wrong: unknown command or option, missing argument, a value
     of the wrong type or out of range (the parser's verdict, also one line);
  130 interrupted by Ctrl-C before it could finish cleanly.
"""

import logging
import os
import sys

import duckdb
import psycopg
import psycopg2
import typer

from acme.cli import demo, lake, report, serve, source, sync, verify
from acme.cli.output import err_console
from acme.errors import AcmeError
from acme.observe.logs import LogFormat, configure, json_enabled, log_error

try:  # recent Typer vendors click; its parser raises these
    from typer._click import exceptions as click_errors
except ImportError:  # pragma: no cover - Typer with click as a dependency
    from click import exceptions as click_errors

EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130

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


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _message(error: BaseException) -> str:
    if isinstance(error, AcmeError):
        return str(error)
    if isinstance(error, duckdb.Error):
        return f"the warehouse refused: {_first_line(error)}"
    if isinstance(error, OSError):
        where = f" {error.filename}" if error.filename else ""
        return f"cannot use{where}: {error.strerror or _first_line(error)}"
    return f"the database refused: {_first_line(error)}"


def _fail(message: str, code: int) -> None:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    sys.exit(code)


def main() -> None:
    """Run the CLI; every error becomes one line and a documented exit code."""
    try:
        _run()
    except SystemExit as done:
        code = done.code
        end_if_daft_loaded(code if isinstance(code, int) else 0 if code is None else EXIT_ERROR)
        raise


def end_if_daft_loaded(code: int) -> None:
    """In a process that loaded Daft, end now with `code`, without Python's finalization,
    once the logs and output are flushed (the test suite's session ends the same way).

    Daft's native worker threads can still take the GIL while the interpreter finalizes, and
    Python 3.11 then aborts the process (SIGABRT, "PyGILState_Release: thread state must be
    current") after a complete answer was printed. Call it only when nothing is left to do.
    """
    if "daft" not in sys.modules:
        return
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _run() -> None:
    try:
        code = app(standalone_mode=False)
    except click_errors.NoArgsIsHelpError as error:
        print(error.ctx.get_help() if error.ctx else "see `acme --help`")
        sys.exit(EXIT_USAGE)
    except click_errors.UsageError as error:
        command = error.ctx.command_path if error.ctx else "acme"
        _fail(f"{error.format_message()} (see `{command} --help`)", EXIT_USAGE)
    except (click_errors.ClickException, typer.Abort, KeyboardInterrupt) as error:
        if isinstance(error, click_errors.ClickException):
            _fail(error.format_message(), EXIT_ERROR)
        _fail("interrupted", EXIT_INTERRUPTED)
    except (AcmeError, psycopg.Error, psycopg2.Error, duckdb.Error, OSError) as error:
        if _debug["on"]:
            raise
        message = _message(error)
        if json_enabled():
            log_error(error, message)
            sys.exit(EXIT_ERROR)
        _fail(message, EXIT_ERROR)
    sys.exit(code if isinstance(code, int) else 0)

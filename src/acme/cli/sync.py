"""`acme sync`: snapshot if needed, then stream changes into the warehouse."""

import signal
import threading
import time
from pathlib import Path

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)

from acme.cli.output import console, err_console
from acme.config import Settings
from acme.lsn import format_lsn
from acme.pipeline import BatchStats, SyncOptions, run_sync


class ConsoleObserver:
    """Snapshot progress bar (rows, rows/s, ETA) and a line per second of streaming."""

    def __init__(self, progress: Progress):
        self.progress = progress
        self.task: TaskID | None = None
        self.started = 0.0
        self.rows = 0
        self.changes = 0
        self.last_line = 0.0

    def snapshot_table(self, name: str, estimated_rows: int) -> None:
        if self.task is not None:
            self.progress.update(self.task, visible=False)
        self.task = self.progress.add_task(f"snapshot {name}", total=estimated_rows or None,
                                           rate="")
        self.started, self.rows = time.monotonic(), 0

    def snapshot_rows(self, rows: int) -> None:
        self.rows += rows
        rate = self.rows / max(time.monotonic() - self.started, 1e-6)
        self.progress.update(self.task, advance=rows, rate=f"{rate:,.0f} rows/s")

    def snapshot_done(self, rows: int, seconds: float) -> None:
        if self.task is not None:
            self.progress.update(self.task, visible=False)
        err_console.print(f"snapshot: {rows:,} rows in {seconds:.1f}s "
                          f"({rows / max(seconds, 1e-6):,.0f} rows/s)")

    def batch_applied(self, stats: BatchStats) -> None:
        self.changes += stats.changes
        lag = stats.applied_at - stats.last_commit_time.timestamp()
        now = time.monotonic()
        if now - self.last_line >= 1.0:
            self.last_line = now
            err_console.print(f"applied {self.changes:,} changes; checkpoint "
                              f"{format_lsn(stats.end_lsn)}; lag {lag * 1000:.0f} ms",
                              highlight=False)


def sync(once: bool = typer.Option(False, "--once",
                                   help="Stop once caught up with the source's WAL at start."),
         dsn: str = typer.Option(None, "--dsn", help="Replication user's URL [ACME_SOURCE_DSN]."),
         warehouse: Path = typer.Option(None, "--warehouse", help="DuckDB file [ACME_WAREHOUSE]."),
         slot: str = typer.Option(None, "--slot", help="Replication slot [ACME_SLOT]."),
         publication: str = typer.Option(None, "--publication",
                                         help="Publication [ACME_PUBLICATION]."),
         no_create_slot: bool = typer.Option(False, "--no-create-slot",
                                             help="Fail if the slot does not exist."),
         ) -> None:
    """Capture changes from the source into the DuckDB warehouse (snapshot, then stream)."""
    settings = Settings()
    options = SyncOptions(
        dsn=dsn or settings.source_dsn, warehouse=warehouse or settings.warehouse,
        slot=slot or settings.slot, publication=publication or settings.publication,
        once=once, create_slot=not no_create_slot)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[rate]}"), TimeRemainingColumn())
    with Progress(*columns, console=err_console, transient=True) as progress:
        checkpoint = run_sync(options, stop, ConsoleObserver(progress))
    when = checkpoint.commit_time.isoformat() if checkpoint.commit_time else "-"
    console.print(f"warehouse {options.warehouse} at {format_lsn(checkpoint.end_lsn)} "
                  f"(source commit {when})")

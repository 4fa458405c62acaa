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

from acme.classification import classification_from
from acme.cli.output import console, err_console
from acme.config import (
    Settings,
    check_dsn,
    check_publication_name,
    check_slot_name,
    check_warehouse_path,
    load_settings,
)
from acme.lsn import format_lsn
from acme.observe.logs import LogObserver, json_enabled
from acme.observe.observer import BatchStats, SyncObserver
from acme.pipeline import run_sync
from acme.sync_options import SyncOptions

DsnOption = typer.Option(None, "--dsn", help="Replication user's URL [ACME_SOURCE_DSN].")
WarehouseOption = typer.Option(None, "--warehouse", help="DuckDB file [ACME_WAREHOUSE].")
SlotOption = typer.Option(None, "--slot", help="Replication slot [ACME_SLOT].")
PublicationOption = typer.Option(None, "--publication", help="Publication [ACME_PUBLICATION].")
NoCreateSlotOption = typer.Option(False, "--no-create-slot",
                                  help="Fail if the slot does not exist.")
LakeOption = typer.Option(None, "--lake", help="Also commit the history to Iceberg tables: a "
                          "directory, or catalog:NAME from pyiceberg's config [ACME_LAKE].")
LakeIntervalOption = typer.Option(None, "--lake-interval", min=0.1,
                                  help="Seconds between lake commits (default 10) "
                                       "[ACME_LAKE_INTERVAL].")


def _given(flag, setting):
    """A flag given (even empty, which is then refused) wins over the setting."""
    return setting if flag is None else flag


def options_from(settings: Settings, dsn: str | None, warehouse: Path | None,
                 slot: str | None, publication: str | None, once: bool,
                 create_slot: bool, command: str = "sync", resnapshot: bool = False,
                 lake: str | None = None, lake_interval: float | None = None) -> SyncOptions:
    """Flags over settings (environment, acme.toml), each checked before anything starts."""
    path = check_warehouse_path(_given(warehouse, settings.warehouse))
    return SyncOptions(
        dsn=check_dsn(_given(dsn, settings.source_dsn)), warehouse=path,
        slot=check_slot_name(_given(slot, settings.slot)),
        publication=check_publication_name(_given(publication, settings.publication)),
        once=once, create_slot=create_slot, resnapshot=resnapshot,
        application_name=f"acme {command} {path}",
        classification=classification_from(settings.terminal_statuses,
                                            settings.pending_statuses),
        lake=lake or settings.lake, lake_interval=lake_interval or settings.lake_interval)


class ConsoleObserver(SyncObserver):
    """Snapshot progress bar (rows, rows/s, ETA) and a line per second of streaming."""

    def __init__(self, quiet_batches: bool = False):
        self.progress: Progress | None = None
        self.task: TaskID | None = None
        self.started = 0.0
        self.rows = 0
        self.changes = 0
        self.last_line = 0.0
        self.quiet_batches = quiet_batches
        self.last_lag_ms: float | None = None

    def snapshot_started(self, tables: list[str], estimated_rows: int) -> None:
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"), TimeRemainingColumn(),
            console=err_console, transient=True)
        self.progress.start()
        self.task = self.progress.add_task(f"snapshot of {len(tables)} tables",
                                           total=estimated_rows or None, rate="")
        self.started, self.rows = time.monotonic(), 0

    def snapshot_rows(self, rows: int) -> None:
        self.rows += rows
        rate = self.rows / max(time.monotonic() - self.started, 1e-6)
        self.progress.update(self.task, advance=rows, rate=f"{rate:,.0f} rows/s")

    def table_ordering(self, table: str, groups_read_per_key: float) -> None:
        if self.progress is not None:  # the first sync's copy is done
            self.progress.update(self.task, description=f"ordering {table} by key")
        else:
            err_console.print(f"{table}: rewriting its open versions in key order (a key's "
                              f"lookup read {groups_read_per_key:.0f} row groups)")

    def snapshot_done(self, rows: int, seconds: float) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
        err_console.print(f"snapshot: {rows:,} rows in {seconds:.1f}s "
                          f"({rows / max(seconds, 1e-6):,.0f} rows/s)")

    def batch_applied(self, stats: BatchStats) -> None:
        self.changes += stats.changes
        self.last_lag_ms = (stats.applied_at - stats.first_commit_time.timestamp()) * 1000
        now = time.monotonic()
        if not self.quiet_batches and now - self.last_line >= 1.0:
            self.last_line = now
            err_console.print(f"applied {self.changes:,} changes; checkpoint "
                              f"{format_lsn(stats.end_lsn)}; lag {self.last_lag_ms:.0f} ms",
                              highlight=False)

    def connection_lost(self, reason: str, retry_in: float) -> None:
        err_console.print(f"{reason}; retrying in {retry_in:.0f}s", highlight=False)

    def lake_committed(self, commit) -> None:
        if not self.quiet_batches:
            err_console.print(f"lake at {format_lsn(commit.lsn)}: {commit.versions:,} versions, "
                              f"{commit.tombstones:,} deletes in {commit.seconds:.2f}s",
                              highlight=False)

    def lake_failed(self, reason: str) -> None:
        err_console.print(f"lake commit failed (retrying): {reason}", highlight=False)


def progress_observer(quiet_batches: bool = False) -> SyncObserver:
    """JSON log events with --log-format json, else the console's lines."""
    return LogObserver() if json_enabled() else ConsoleObserver(quiet_batches)


def stop_on_signals() -> threading.Event:
    """An event set by Ctrl-C or SIGTERM: the pipeline finishes its batch and exits 0."""
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    return stop


def sync(once: bool = typer.Option(False, "--once",
                                   help="Stop once caught up with the source's WAL at start."),
         dsn: str = DsnOption, warehouse: Path = WarehouseOption, slot: str = SlotOption,
         publication: str = PublicationOption, no_create_slot: bool = NoCreateSlotOption,
         resnapshot: bool = typer.Option(
             False, "--resnapshot",
             help="Rebuild the warehouse from a fresh snapshot (built beside it, swapped in "
                  "when complete)."),
         lake: str = LakeOption, lake_interval: float = LakeIntervalOption) -> None:
    """Capture changes from the source into the DuckDB warehouse (snapshot, then stream)."""
    options = options_from(load_settings(), dsn, warehouse, slot, publication, once,
                           not no_create_slot, resnapshot=resnapshot, lake=lake,
                           lake_interval=lake_interval)
    checkpoint = run_sync(options, stop_on_signals(), progress_observer())
    when = checkpoint.commit_time.isoformat() if checkpoint.commit_time else "-"
    console.print(f"warehouse {options.warehouse} at {format_lsn(checkpoint.end_lsn)} "
                  f"(source commit {when})")

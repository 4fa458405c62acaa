"""`acme lake status` and `acme lake compact`: the Iceberg lake's position and its upkeep."""

from datetime import timedelta

import typer
from rich.table import Table

from acme.cli.output import console
from acme.config import Settings
from acme.errors import ConfigError
from acme.lsn import format_lsn

app = typer.Typer(help="The Iceberg lake that `acme sync --lake` keeps.", no_args_is_help=True)
LakeOption = typer.Option(None, "--lake", help="Directory or catalog:NAME [ACME_LAKE].")


def _open(location: str | None):
    from acme.lake.catalog import open_lake

    location = location or Settings().lake
    if not location:
        raise ConfigError("which lake? give --lake DIR (or catalog:NAME), or set ACME_LAKE")
    return open_lake(location)


@app.command()
def status(lake: str = LakeOption) -> None:
    """Each table's LSN, commit time, data files and snapshots."""
    from acme.lake.maintenance import data_file_count, lake_position
    from acme.lake.writer import table_position

    opened = _open(lake)
    table = Table(title=f"Lake {opened.location}")
    for column in ("table", "LSN", "source commit", "data files", "snapshots"):
        table.add_column(column)
    for name in opened.table_names():
        iceberg = opened.table(name)
        position = table_position(iceberg)
        table.add_row(opened.identifier(name),
                      format_lsn(position.lsn) if position else "-",
                      position.commit_time.isoformat() if position and position.commit_time
                      else "-", f"{data_file_count(iceberg):,}", f"{len(iceberg.snapshots()):,}")
    console.print(table)
    position = lake_position(opened)
    console.print(f"lake position (every table reached): "
                  f"{format_lsn(position) if position is not None else '-'}")


@app.command()
def compact(lake: str = LakeOption,
            keep_minutes: float = typer.Option(10, "--keep-minutes", min=0,
                                               help="Keep snapshots this recent."),
            min_files: int = typer.Option(8, "--min-files", min=2,
                                          help="Merge a partition's small files from this "
                                               "many on.")) -> None:
    """Merge small data files, expire old snapshots and delete the files only they used."""
    from acme.lake.maintenance import maintain_lake

    results = maintain_lake(_open(lake), timedelta(minutes=keep_minutes), min_files)
    table = Table(title="Lake compaction")
    for column in ("table", "data files before", "after", "merged", "snapshots expired",
                   "files deleted", "seconds"):
        table.add_column(column)
    for r in results:
        table.add_row(r.table, f"{r.data_files_before:,}", f"{r.data_files_after:,}",
                      f"{r.files_merged:,}", f"{r.snapshots_expired:,}",
                      f"{r.files_deleted:,}", f"{r.seconds:.2f}")
    console.print(table)

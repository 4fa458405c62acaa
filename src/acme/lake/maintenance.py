"""Keeping the lake's file count bounded: compaction of small files, expiry of old snapshots.

Each lake commit adds about one small file per table (today's partition), a manifest list and
a metadata file. Compaction rewrites, per partition, runs of small data files into one sorted
file (`_valid_from`, key) in a single Iceberg commit that carries the same LSN summary as the
snapshot it replaces: the content is unchanged. Expiry drops snapshots older than a retention
(never the ones a reader's cut needs) and deletes the files only they reached. Old metadata
files go by the table property `write.metadata.previous-versions-max`.
"""

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from acme.lake.catalog import Lake
from acme.lake.layout import LSN_PROPERTY, key_of
from acme.lake.writer import table_position

SMALL_FILE_BYTES = 32 * 1024 * 1024
MIN_FILES_TO_MERGE = 8  # small files in one partition before they are merged
MERGED_FILE_BYTES = 256 * 1024 * 1024  # a merged file gathers at most this much input
KEEP_SNAPSHOTS = timedelta(minutes=10)
KEEP_LAST_SNAPSHOTS = 1  # the current one; the reader cut is protected apart


@dataclass(frozen=True)
class TableMaintenance:
    table: str
    data_files_before: int
    data_files_after: int
    files_merged: int
    snapshots_expired: int
    files_deleted: int
    seconds: float


def lake_position(lake: Lake) -> int | None:
    """The LSN every table has reached: the smallest of their recorded checkpoints."""
    positions = [table_position(lake.table(name)) for name in lake.table_names()]
    if not positions or any(p is None for p in positions):
        return None
    return min(p.lsn for p in positions)


def maintain_lake(lake: Lake, keep: timedelta = KEEP_SNAPSHOTS,
                  min_files: int = MIN_FILES_TO_MERGE) -> list[TableMaintenance]:
    """Compact and expire every table of the lake."""
    position = lake_position(lake)
    return [maintain_table(lake, name, position, keep, min_files)
            for name in lake.table_names()]


def maintain_table(lake: Lake, name: str, lake_lsn: int | None,
                   keep: timedelta = KEEP_SNAPSHOTS,
                   min_files: int = MIN_FILES_TO_MERGE) -> TableMaintenance:
    started = time.monotonic()
    table = lake.table(name)
    before = data_file_count(table)
    merged = compact(table, min_files)
    table = table.refresh()
    expired, deleted = expire(table, keep, lake_lsn)
    table = table.refresh()
    return TableMaintenance(name, before, data_file_count(table), merged, expired, deleted,
                            time.monotonic() - started)


def data_file_count(table) -> int:
    snapshot = table.current_snapshot()
    if snapshot is None:
        return 0
    return int(snapshot.summary.additional_properties.get("total-data-files", 0))


def compact(table, min_files: int = MIN_FILES_TO_MERGE) -> int:
    """Merge runs of small files per partition; returns how many files were merged away."""
    from pyiceberg.expressions import AlwaysTrue
    from pyiceberg.io.pyarrow import ArrowScan, _dataframe_to_data_files

    snapshot = table.current_snapshot()
    if snapshot is None:
        return 0
    by_partition: dict[tuple, list] = {}
    for task in table.scan().plan_files():
        if task.file.file_size_in_bytes < SMALL_FILE_BYTES:
            by_partition.setdefault(tuple(task.file.partition), []).append(task)
    groups = []
    for tasks in by_partition.values():
        if len(tasks) < min_files:
            continue
        group, size = [], 0
        for task in sorted(tasks, key=lambda t: t.file.file_path):
            group.append(task)
            size += task.file.file_size_in_bytes
            if size >= MERGED_FILE_BYTES:
                groups.append(group)
                group, size = [], 0
        if len(group) > 1:
            groups.append(group)
    if not groups:
        return 0
    key = key_of(table.properties)
    summary = {k: v for k, v in snapshot.summary.additional_properties.items()
               if k.startswith("acme.")}  # same content, same LSN
    merged = 0
    with table.transaction() as transaction:
        with transaction.update_snapshot(snapshot_properties=summary).overwrite() as rewrite:
            for group in groups:
                rows = ArrowScan(table.metadata, table.io, table.schema(), AlwaysTrue()) \
                    .to_table(group).sort_by([("_valid_from", "ascending"),
                                              *((k, "ascending") for k in key)])
                for data_file in _dataframe_to_data_files(
                        transaction.table_metadata, rows, table.io, rewrite.commit_uuid):
                    rewrite.append_data_file(data_file)
                for task in group:
                    rewrite.delete_data_file(task.file)
                merged += len(group)
    return merged


def expire(table, keep: timedelta, lake_lsn: int | None) -> tuple[int, int]:
    """Expire snapshots older than `keep` (but the last few, and the one a reader cutting at
    `lake_lsn` needs); delete the files only they reached. Returns (snapshots, files)."""
    snapshots = sorted(table.snapshots(), key=lambda s: s.sequence_number)
    protected = {s.snapshot_id for s in snapshots[-KEEP_LAST_SNAPSHOTS:]}
    if lake_lsn is not None:
        at_cut = [s for s in snapshots if _lsn(s) is not None and _lsn(s) <= lake_lsn]
        if at_cut:
            protected.add(at_cut[-1].snapshot_id)
    cutoff = (datetime.now(UTC) - keep).timestamp() * 1000
    doomed = [s for s in snapshots
              if s.timestamp_ms < cutoff and s.snapshot_id not in protected]
    if not doomed:
        return 0, 0
    reached: dict[str, set[str]] = {}
    before = _files_reached(table, doomed, reached)
    table.maintenance.expire_snapshots().by_ids([s.snapshot_id for s in doomed]).commit()
    table = table.refresh()
    still = _files_reached(table, table.snapshots(), reached)
    gone = before - still
    for path in gone:
        table.io.delete(path)
    return len(doomed), len(gone)


def _lsn(snapshot) -> int | None:
    value = snapshot.summary.additional_properties.get(LSN_PROPERTY)
    return int(value) if value else None


def _files_reached(table, snapshots, cache: dict[str, set[str]]) -> set[str]:
    """Manifest lists, manifests and the data files live in the snapshots (a file a
    manifest lists as deleted belongs to older snapshots only)."""
    files: set[str] = set()
    for snapshot in snapshots:
        files.add(snapshot.manifest_list)
        for manifest in snapshot.manifests(table.io):
            if manifest.manifest_path not in cache:
                cache[manifest.manifest_path] = {
                    entry.data_file.file_path
                    for entry in manifest.fetch_manifest_entry(table.io, discard_deleted=True)}
            files.add(manifest.manifest_path)
            files |= cache[manifest.manifest_path]
    return files

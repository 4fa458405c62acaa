"""The lake follower: a thread in `acme sync` that commits the warehouse's new history to the
lake every `interval` seconds, and once more when the pipeline stops.

It reads DuckDB through its own cursor (MVCC: a committed snapshot, never blocking the apply)
and writes Iceberg files in the background, so the apply never waits for the lake. A failed
lake commit is reported and retried at the next interval: DuckDB still holds everything. Past
AUTO_COMPACT_FILES new data files in a table, it compacts that table and expires snapshots.
"""

import threading
from collections.abc import Callable

from acme.lake.catalog import Lake
from acme.lake.maintenance import (
    TableMaintenance,
    data_file_count,
    lake_position,
    maintain_table,
)
from acme.lake.writer import LakeCommit, LakeWriter
from acme.warehouse.store import Warehouse, warehouse_cursor

AUTO_COMPACT_FILES = 64


class LakeFollower:
    def __init__(self, lake: Lake, warehouse: Warehouse, interval: float,
                 committed: Callable[[LakeCommit], None] = lambda commit: None,
                 failed: Callable[[str], None] = lambda reason: None,
                 maintained: Callable[[TableMaintenance], None] = lambda result: None):
        self.lake = lake
        self.writer = LakeWriter(self.lake, warehouse_cursor(warehouse.db))
        self.interval = interval
        self.committed, self.failed, self.maintained = committed, failed, maintained
        self.files_at_maintenance: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lake", daemon=True)

    def start(self) -> "LakeFollower":
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.commit()
            except Exception as error:  # retried next interval; DuckDB holds the history
                self.failed(str(error).splitlines()[0] if str(error) else repr(error))

    def commit(self) -> LakeCommit | None:
        commit = self.writer.commit()
        if commit is not None:
            self.committed(commit)
            self._maintain_if_due()
        return commit

    def _maintain_if_due(self) -> None:
        due = []
        for name in self.lake.table_names():
            files = data_file_count(self.lake.table(name))
            if files - self.files_at_maintenance.setdefault(name, 0) >= AUTO_COMPACT_FILES:
                due.append(name)
        if not due:
            return
        position = lake_position(self.lake)
        for name in due:
            result = maintain_table(self.lake, name, position)
            self.files_at_maintenance[name] = result.data_files_after
            self.maintained(result)

    def stop(self, final_commit: bool = True) -> None:
        """Stop the thread; then commit what the warehouse holds now (errors raised)."""
        self._stop.set()
        self._thread.join()
        try:
            if final_commit:
                self.commit()
        finally:
            self.writer.db.close()

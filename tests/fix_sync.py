"""Fixtures for running the sync pipeline against a test source database."""

import threading
from pathlib import Path

import pytest

from acme.observe.observer import SyncObserver
from acme.pipeline import run_sync
from acme.sync_options import SyncOptions
from tests.fix_source import SourceDB


def sync_options(db: SourceDB, warehouse: Path, **overrides) -> SyncOptions:
    values = dict(dsn=db.cdc_dsn, warehouse=warehouse, slot=db.slot,
                  publication=db.publication, once=True)
    values.update(overrides)
    return SyncOptions(**values)


def sync_once(db: SourceDB, warehouse: Path, **overrides):
    return run_sync(sync_options(db, warehouse, **overrides))


class BackgroundSync:
    """`acme sync` (following forever) in a thread, stopped like Ctrl-C would."""

    def __init__(self, options: SyncOptions, observer: SyncObserver | None = None):
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.observer = observer
        self.thread = threading.Thread(target=self._run, args=(options,), daemon=True)

    def _run(self, options: SyncOptions) -> None:
        try:
            run_sync(options, self.stop, self.observer)
        except BaseException as error:
            self.error = error

    def __enter__(self) -> "BackgroundSync":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(timeout=60)
        assert not self.thread.is_alive()
        if self.error:
            raise self.error


@pytest.fixture
def warehouse_path(tmp_path) -> Path:
    return tmp_path / "warehouse.duckdb"

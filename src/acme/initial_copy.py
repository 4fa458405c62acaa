"""Bringing a warehouse to where streaming can start: its source checked, its initial copy made
(again after a dropped connection), or remade from scratch with `--resnapshot`.

The copy commits history, then current, then the hand-off checkpoint with the source the
warehouse now belongs to and the slot position it starts from; until that last commit the
warehouse has no checkpoint, and the next copy replaces what an interrupted one left. A
warehouse file this run created is removed again when the run fails before the copy is in.
`--resnapshot` builds a new file beside the old one and swaps it in only once complete, so a
failed rebuild leaves the old warehouse as it was.
"""

import os
import threading
import time
from datetime import datetime
from pathlib import Path

import psycopg

from acme.backoff import Backoff
from acme.capture.catalog import published_tables, source_position
from acme.capture.columns import catalog_columns
from acme.capture.copy_process import ParallelCopy
from acme.capture.replication import CreatedSlot, ReplicationStream
from acme.capture.snapshot import begin_snapshot, estimated_rows, plan_parts
from acme.config import mask_dsn
from acme.errors import SourceUnreachable, TransientError
from acme.observe.observer import SyncObserver
from acme.source.connect import connect
from acme.sync_options import SyncOptions
from acme.warehouse.deferred import DeferringConnection
from acme.warehouse.evolve import SchemaEvolution
from acme.warehouse.load import load_snapshot
from acme.warehouse.model import ensure_model
from acme.warehouse.ownership import SourceIdentity, check_same_source
from acme.warehouse.report_state import ReportState
from acme.warehouse.store import Checkpoint, Warehouse


class CopyStopped(Exception):
    """Asked to stop while waiting to retry the initial copy."""


def prepare_warehouse(options: SyncOptions, identity: SourceIdentity,
                      observer: SyncObserver, stop: threading.Event) -> Warehouse:
    """The warehouse, open, belonging to `identity` and holding its initial copy."""
    path = Path(options.warehouse)
    if options.resnapshot:
        return _rebuild(path, options, identity, observer, stop)
    created = not path.exists()
    warehouse = Warehouse.open(path)
    remove_warehouse_files(_building(path))  # a rebuild killed midway; the old file is ours
    try:
        recorded = warehouse.source()
        if recorded is not None:
            check_same_source(path, recorded, identity)
        ensure_model(warehouse, options.classification)
        observer.warehouse_opened(warehouse)
        if warehouse.checkpoint() is None:
            _copy_with_retries(warehouse, options, identity, observer, stop)
        elif recorded is None:
            warehouse.record_source(identity)  # built before warehouses recorded their source
    except BaseException:
        warehouse.close()
        if created:
            remove_warehouse_files(path)
        raise
    return warehouse


def _building(path: Path) -> Path:
    return path.with_name(path.name + ".resnapshot")


def remove_warehouse_files(path: Path) -> None:
    for leftover in (path, path.with_name(path.name + ".wal")):
        leftover.unlink(missing_ok=True)


def _rebuild(path: Path, options: SyncOptions, identity: SourceIdentity,
             observer: SyncObserver, stop: threading.Event) -> Warehouse:
    """A fresh copy into `<warehouse>.resnapshot`, swapped in once committed."""
    building = _building(path)
    # Holding the old file open keeps every other acme process off it until the swap.
    old = Warehouse.open(path) if path.exists() else None
    try:
        remove_warehouse_files(building)
        fresh = Warehouse.open(building)
        try:
            ensure_model(fresh, options.classification)
            observer.warehouse_opened(fresh)
            _copy_with_retries(fresh, options, identity, observer, stop)
        finally:
            fresh.close()
    except BaseException:
        remove_warehouse_files(building)
        raise
    finally:
        if old is not None:
            old.close()
    path.with_name(path.name + ".wal").unlink(missing_ok=True)  # never replay onto the new file
    os.replace(building, path)
    warehouse = Warehouse.open(path)
    observer.warehouse_opened(warehouse)
    return warehouse


def _copy_with_retries(warehouse: Warehouse, options: SyncOptions, identity: SourceIdentity,
                       observer: SyncObserver, stop: threading.Event) -> None:
    """The copy, tried again with backoff while the connection keeps dropping."""
    backoff = Backoff()
    while True:
        backoff.attempt()
        try:
            return _copy(warehouse, options, identity, observer)
        except TransientError as error:
            delay = backoff.next_delay()
            observer.connection_lost(f"initial copy interrupted: {error}", delay)
            if stop.wait(delay):
                raise CopyStopped from None


def _copy(warehouse: Warehouse, options: SyncOptions, identity: SourceIdentity,
          observer: SyncObserver) -> None:
    try:
        with ParallelCopy(options.dsn, options.snapshot_connections,
                          options.application_name) as copy, \
                connect(options.dsn, options.application_name, autocommit=True) as conn:
            slot = source_position(conn, options.slot)
            creator = None
            try:
                exported = None
                if slot.slot_restart_lsn is None:
                    creator = ReplicationStream(options.dsn, options.slot, options.publication,
                                                options.application_name)
                    exported = creator.create_slot()
                    # The copy holds every commit before the slot's consistent point, so its
                    # rows are valid from once the slot exists: never before a commit they
                    # contain. (A streamed commit racing this moment gets the least() of
                    # merge.py: the copied version becomes zero-length at that commit.)
                    after_slot = conn.execute("SELECT clock_timestamp()").fetchone()[0]
                start_lsn = exported.consistent_lsn if exported else slot.slot_confirmed_lsn
                _snapshot(conn, copy, warehouse, options, identity, exported, start_lsn or 0,
                          after_slot if exported else None, observer)
            finally:
                if creator is not None:
                    creator.close()
    except psycopg.OperationalError as error:
        raise SourceUnreachable(f"connection to {mask_dsn(options.dsn)} lost during the "
                                f"initial copy: {str(error).strip().splitlines()[-1]}") from None


def _snapshot(conn: psycopg.Connection, copy: ParallelCopy, warehouse: Warehouse,
              options: SyncOptions, identity: SourceIdentity, exported: CreatedSlot | None,
              slot_lsn: int, valid_from: datetime | None, observer: SyncObserver) -> None:
    """Copy every published table; the hand-off checkpoint, the source identity and the slot
    position the warehouse starts from commit with the last of it."""
    started = time.monotonic()
    point = begin_snapshot(conn, exported.snapshot_name if exported else None)
    valid_from = valid_from or point.taken_at
    # A new slot streams exactly what follows its exported snapshot: start after its
    # consistent point. An older slot replays from its confirmed position: skip by xid.
    end_lsn = exported.consistent_lsn if exported else 0
    checkpoint = Checkpoint(end_lsn, valid_from, point.visibility)
    tables = published_tables(conn, options.publication)
    observer.snapshot_started([table.spec.name for table in tables],
                              sum(estimated_rows(conn, table) for table in tables))
    parts = plan_parts(conn, tables)
    catalogs = {table.spec.name: catalog_columns(conn, table.schema, table.spec.name)
                for table in tables}

    def created() -> None:
        evolution = SchemaEvolution(warehouse.db)
        for table in tables:
            evolution.record_catalog(table.spec.name, catalogs[table.spec.name])
        ensure_model(warehouse, options.classification)

    def finish() -> None:
        ReportState(DeferringConnection(warehouse.db), options.classification).ensure(
            set(warehouse.tables()))
        warehouse.write_checkpoint(checkpoint)
        warehouse.record_confirmed(slot_lsn)
        warehouse.record_source(identity)

    copy.start(point.name, parts)
    rows = load_snapshot(warehouse, [table.spec for table in tables], copy, valid_from,
                         point.wal_lsn, created, finish, observer.snapshot_rows,
                         observer.table_ordering)
    conn.execute("COMMIT")
    observer.snapshot_done(rows, time.monotonic() - started)

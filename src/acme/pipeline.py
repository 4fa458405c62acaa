"""The sync pipeline: the initial copy, then the stream followed into DuckDB (`streamer.py`),
reconnecting with backoff whenever the connection or the warehouse fails in a way that passes.

Exactly once: a batch and its checkpoint (end LSN of its last transaction) commit together in
DuckDB, and only then is the slot confirmed. On restart the server resends from the slot's
confirmed position; transactions at or below the checkpoint, or already seen by the initial
copy's snapshot, are skipped.
"""

import threading

import duckdb

from acme.backoff import Backoff
from acme.capture.catalog import check_source, source_position
from acme.capture.replication import ReplicationStream
from acme.errors import SlotInUse, TransientError, UnstorableValue, WarehouseError
from acme.initial_copy import CopyStopped, prepare_warehouse
from acme.observe.observer import SyncObserver
from acme.source.connect import connect
from acme.streamer import Streamer
from acme.sync_options import SyncOptions
from acme.warehouse.apply import BIG_BATCH_RETRY_MEMORY
from acme.warehouse.ownership import SourceIdentity, check_no_gap
from acme.warehouse.stopped import record_stopped
from acme.warehouse.store import Checkpoint, Warehouse, storage_failure


def run_sync(options: SyncOptions, stop: threading.Event | None = None,
             observer: SyncObserver | None = None) -> Checkpoint:
    """Snapshot if needed, then stream; returns the last checkpoint when stopped or caught up."""
    stop = stop or threading.Event()
    observer = observer or SyncObserver()
    with connect(options.dsn, options.application_name, autocommit=True) as conn:
        check_source(conn, options.dsn, options.slot, options.publication,
                     options.create_slot)
        target_lsn = int(conn.execute("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn")
                         .fetchone()[0])
    lake = _open_lake(options)  # before the warehouse: a bad lake writes nothing
    stream = _open_stream(options)
    try:
        system = stream.identify()
        identity = SourceIdentity(system.system_identifier, system.database, options.slot,
                                  options.publication)
        warehouse = prepare_warehouse(options, identity, observer, stop)
    except CopyStopped:
        stream.close()
        return Checkpoint(0, None, None)
    except BaseException:
        stream.close()
        raise
    follower = None
    try:
        if lake is not None:
            from acme.lake.follower import LakeFollower

            follower = LakeFollower(lake, warehouse, options.lake_interval,
                                    observer.lake_committed, observer.lake_failed).start()
        checkpoint = _follow(stream, warehouse, options, observer, stop,
                             target_lsn if options.once else None)
        if follower is not None:
            follower, running = None, follower
            running.stop()  # a last lake commit of all the warehouse holds
        return checkpoint
    finally:
        if follower is not None:
            follower.stop(final_commit=False)
        warehouse.close()


def _open_stream(options: SyncOptions) -> ReplicationStream:
    return ReplicationStream(options.dsn, options.slot, options.publication,
                             options.application_name, options.receive_timeout)


def _check_slot_owned(options: SyncOptions, warehouse: Warehouse) -> None:
    """Once the slot is ours: refuse if another reader consumed past our position."""
    with connect(options.dsn, options.application_name, autocommit=True) as conn:
        slot_confirmed = source_position(conn, options.slot).slot_confirmed_lsn
    check_no_gap(warehouse.path, options.slot, slot_confirmed, warehouse.confirmed_position())


def _open_lake(options: SyncOptions):
    if options.lake is None:
        return None
    from acme.lake.catalog import open_lake

    return open_lake(options.lake, create=True)


def _follow(stream: ReplicationStream, warehouse: Warehouse, options: SyncOptions,
            observer: SyncObserver, stop: threading.Event, target_lsn: int | None) -> Checkpoint:
    """Stream until stopped (or caught up), reconnecting with backoff when the connection drops.

    A reconnect resumes from the slot's confirmed position and the warehouse checkpoint, so
    nothing is lost or applied twice. After a network cut the server may still hold the slot
    for the dead connection for a while: that is retried too. So is a batch that ran out of
    memory (it rolled back), once, with a big batch's memory limit raised: applied again as
    before, the same transaction would fail at every restart.
    """
    backoff = Backoff()
    reconnecting = False
    big_batch_memory = None
    while True:
        backoff.attempt()
        try:
            if reconnecting:
                stream = _open_stream(options)
                if warehouse.invalidated:
                    warehouse.reopen()
                    observer.warehouse_opened(warehouse)
            stream.start()
            _check_slot_owned(options, warehouse)
            return Streamer(stream, warehouse, options, warehouse.checkpoint(), observer,
                            big_batch_memory).run(stop, target_lsn)
        except UnstorableValue as error:
            record_stopped(warehouse.db, str(error))  # the batch rolled back: on its own
            raise
        except (TransientError, SlotInUse, duckdb.Error, WarehouseError) as error:
            if isinstance(error, duckdb.OutOfMemoryException) and big_batch_memory is None:
                big_batch_memory = BIG_BATCH_RETRY_MEMORY
                reason = (f"a batch ran out of memory; applying it again with "
                          f"{big_batch_memory} for a big batch (nothing is lost: it rolled back)")
            else:
                reason = _retryable(error, warehouse, reconnecting)
            delay = backoff.next_delay()
            observer.error(error)
            observer.connection_lost(reason, delay)
            if stop.wait(delay):
                return warehouse.checkpoint()
            reconnecting = True
        finally:
            stream.close()


def _retryable(error: Exception, warehouse: Warehouse, reconnecting: bool) -> str:
    """The line to show for an error worth retrying; anything else is raised again.

    A dropped connection is retried, and so is a slot still held after a cut (by the old
    walsender). A warehouse that cannot be written (disk full, read-only) is retried too:
    the batch rolled back, the slot was not confirmed past it, and the stream restarts from
    the checkpoint once the disk is fixed.
    """
    if isinstance(error, TransientError) or isinstance(error, SlotInUse) and reconnecting:
        return str(error)
    reason = storage_failure(error)
    if reason is None:
        raise error
    warehouse.invalidated = warehouse.invalidated or "invalidated" in reason
    return (f"cannot write the warehouse {warehouse.path}: {reason}; free space or make it "
            "writable (nothing is lost: the batch is applied again)")

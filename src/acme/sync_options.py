"""What a sync is asked to do: which source and warehouse, and how to follow one into the other."""

from dataclasses import dataclass
from pathlib import Path

from acme.capture.replication import DEFAULT_RECEIVE_TIMEOUT
from acme.classification import StatusClassification


@dataclass(frozen=True)
class SyncOptions:
    dsn: str
    warehouse: Path
    slot: str = "cdc_pgoutput"
    publication: str = "cdc_publication"
    once: bool = False
    create_slot: bool = True
    # A batch is due at the first commit past this many changes, or whenever the apply is idle.
    # Only a backlog fills one: there 250,000 applied 1,000-row transactions some 15% faster
    # than 100,000, the fixed costs of a batch (its statements' planning, its commit) being
    # paid over more changes.
    batch_changes: int = 250_000
    snapshot_connections: int = 2
    classification: StatusClassification = StatusClassification()
    application_name: str = "acme sync"
    resnapshot: bool = False  # rebuild from a fresh copy, swapped in when complete
    receive_timeout: float = DEFAULT_RECEIVE_TIMEOUT  # silence after asking = dead connection
    lake: str | None = None  # an Iceberg lake following the warehouse (acme.lake)
    lake_interval: float = 10.0

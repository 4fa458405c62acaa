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
    batch_changes: int = 100_000  # a batch is also due, at a commit, whenever the apply is idle
    snapshot_connections: int = 2
    classification: StatusClassification = StatusClassification()
    application_name: str = "acme sync"
    resnapshot: bool = False  # rebuild from a fresh copy, swapped in when complete
    receive_timeout: float = DEFAULT_RECEIVE_TIMEOUT  # silence after asking = dead connection
    lake: str | None = None  # an Iceberg lake following the warehouse (acme.lake)
    lake_interval: float = 10.0

"""Raw baselines and peers, measured on the same source in the same run as our figures.

A baseline must be the fastest raw path there is, or a ratio to it means nothing:
- copy: psycopg2's `copy_expert` of `COPY ... TO STDOUT (FORMAT csv)` into a null sink with a
  1 MB buffer: libpq hands each row to a C-level `write`, nothing is parsed or kept;
- receive: psycopg2's `consume_stream` on another slot, with the plugin options our stream
  uses, counting row messages (nothing decoded or applied).
Peers (connectorx, ADBC) load the same tables into a DuckDB file the way their documentation
shows; connectorx is not a dependency, so it is skipped, and said so, when absent.
"""

import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import adbc_driver_postgresql.dbapi as adbc
import duckdb
import psycopg2
import psycopg2.extras

from acme.capture.replication import plugin_options

NULL_SINK_BUFFER = 1 << 20
ROW_MESSAGES = (b"I", b"U", b"D")


@dataclass(frozen=True)
class Peer:
    name: str
    rows_per_second: float | None  # None: not installed
    note: str


def copy_seconds(dsn: str, tables: list[str]) -> float:
    """Seconds to COPY the tables as CSV into a null sink, on one connection."""
    conn = psycopg2.connect(dsn)
    try:
        cursor = conn.cursor()
        started = time.monotonic()
        with open(os.devnull, "wb", buffering=NULL_SINK_BUFFER) as sink:
            for table in tables:
                cursor.copy_expert(f"COPY {table} TO STDOUT (FORMAT csv)", sink,
                                   size=NULL_SINK_BUFFER)
        return time.monotonic() - started
    finally:
        conn.close()


def receive_seconds(dsn: str, slot: str, publication: str, changes: int) -> float:
    """Seconds to receive `changes` row messages (and their commit) from the slot."""
    conn = psycopg2.connect(dsn, connection_factory=psycopg2.extras.LogicalReplicationConnection)
    try:
        cursor = conn.cursor()
        cursor.start_replication(slot_name=slot, decode=False,
                                 options=plugin_options(publication))
        seen = 0
        started = time.monotonic()

        def consume(message) -> None:
            nonlocal seen
            kind = message.payload[:1]
            if kind in ROW_MESSAGES:
                seen += 1
            elif kind == b"C" and seen >= changes:
                raise psycopg2.extras.StopReplication

        try:
            cursor.consume_stream(consume)
        except psycopg2.extras.StopReplication:
            pass
        return time.monotonic() - started
    finally:
        conn.close()


def snapshot_peers(dsn: str, tables: list[str], rows: int,
                   split_keys: dict[str, str]) -> list[Peer]:
    """Each peer's rows/s copying the tables into a fresh DuckDB file."""
    return [_timed_peer("ADBC -> DuckDB", rows, lambda db: _adbc_into(dsn, tables, db), ""),
            _connectorx_peer(dsn, tables, rows, split_keys)]


def _timed_peer(name: str, rows: int, load: Callable[[duckdb.DuckDBPyConnection], None],
                note: str) -> Peer:
    with tempfile.TemporaryDirectory(prefix="acme-peer-") as directory:
        db = duckdb.connect(str(Path(directory) / "peer.duckdb"))
        try:
            started = time.monotonic()
            load(db)
            return Peer(name, rows / (time.monotonic() - started), note)
        finally:
            db.close()


def _adbc_into(dsn: str, tables: list[str], db: duckdb.DuckDBPyConnection) -> None:
    with adbc.connect(dsn) as conn, conn.cursor() as cursor:
        for number, table in enumerate(tables):
            cursor.execute(f"SELECT * FROM {table}")
            db.from_arrow(cursor.fetch_record_batch()).create(f"t{number}")


def _connectorx_peer(dsn: str, tables: list[str], rows: int,
                     split_keys: dict[str, str]) -> Peer:
    name = "connectorx (2 partitions) -> DuckDB"
    try:
        import connectorx
    except ImportError:
        return Peer(name, None, "not installed: skipped (pip install connectorx to compare)")

    def load(db: duckdb.DuckDBPyConnection) -> None:
        for number, table in enumerate(tables):
            key = split_keys.get(table)
            extra = {"partition_on": key, "partition_num": 2} if key else {}
            arrow = connectorx.read_sql(dsn, f"SELECT * FROM {table}", return_type="arrow",
                                        **extra)
            db.from_arrow(arrow).create(f"t{number}")

    return _timed_peer(name, rows, load, "")

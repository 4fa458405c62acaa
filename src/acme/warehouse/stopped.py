"""A sync stopped by a change it cannot apply, recorded in the warehouse (`_acme.sync_stopped`).

The batch holding the change rolled back, so the record is written on its own afterwards; it
lets `acme status` and the API's `/status` say why the warehouse no longer moves, long after
the process that met the change has exited. The next batch that commits clears it.
"""

from dataclasses import dataclass
from datetime import datetime

import duckdb

STOPPED_DDL = """CREATE TABLE IF NOT EXISTS _acme.sync_stopped (
                     singleton BOOLEAN PRIMARY KEY DEFAULT true,
                     reason VARCHAR NOT NULL,
                     stopped_at TIMESTAMPTZ NOT NULL)"""


@dataclass(frozen=True)
class SyncStopped:
    reason: str  # the one line the user was shown
    stopped_at: datetime


def record_stopped(db: duckdb.DuckDBPyConnection, reason: str) -> None:
    db.execute("INSERT OR REPLACE INTO _acme.sync_stopped VALUES (true, $1, now())", [reason])


def read_stopped(db: duckdb.DuckDBPyConnection) -> SyncStopped | None:
    try:
        row = db.execute("SELECT reason, stopped_at FROM _acme.sync_stopped").fetchone()
    except duckdb.CatalogException:  # a warehouse from before stops were recorded
        return None
    return None if row is None else SyncStopped(*row)


def clear_stopped(db: duckdb.DuckDBPyConnection) -> None:
    db.execute("DELETE FROM _acme.sync_stopped")

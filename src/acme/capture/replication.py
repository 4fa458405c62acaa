"""The replication connection: create the slot (exporting its snapshot), stream, confirm.

psycopg2's LogicalReplicationConnection speaks the streaming protocol in C (well over 100k
messages/s here) and answers the server's keepalives itself; this module adds what it does not
know: when a position may be confirmed, and errors a user can act on.
"""

import select
from dataclasses import dataclass

import psycopg2
import psycopg2.errors
import psycopg2.extras

from acme.capture.catalog import slot_in_use
from acme.config import mask_dsn
from acme.errors import SlotInUse, SourceMisconfigured, SourceUnreachable
from acme.lsn import parse_lsn
from acme.source.connect import classify_connect_error


def plugin_options(publication: str) -> dict[str, str]:
    """pgoutput's options for our stream (benchmarks read a raw baseline with the same)."""
    return {"proto_version": "1", "publication_names": publication}


@dataclass(frozen=True)
class CreatedSlot:
    consistent_lsn: int
    snapshot_name: str


@dataclass(frozen=True)
class WalMessage:
    data_start: int
    payload: bytes


class ReplicationStream:
    """One replication connection on one slot and publication."""

    def __init__(self, dsn: str, slot: str, publication: str):
        self.dsn, self.slot, self.publication = dsn, slot, publication
        try:
            self.conn = psycopg2.connect(
                dsn, connection_factory=psycopg2.extras.LogicalReplicationConnection,
                connect_timeout=10)
        except psycopg2.OperationalError as error:
            raise classify_connect_error(dsn, error) from None
        self.cursor = self.conn.cursor()
        self.flushed = 0

    def create_slot(self) -> CreatedSlot:
        """Create the slot; its exported snapshot lives until the next command here."""
        try:
            self.cursor.execute(
                f'CREATE_REPLICATION_SLOT "{self.slot}" LOGICAL pgoutput EXPORT_SNAPSHOT')
        except psycopg2.errors.DuplicateObject:
            raise SourceMisconfigured(
                f"replication slot {self.slot} was created by someone else meanwhile; "
                "run sync again") from None
        _, consistent_point, snapshot_name, _ = self.cursor.fetchone()
        return CreatedSlot(parse_lsn(consistent_point), snapshot_name)

    def start(self) -> None:
        try:
            self.cursor.start_replication(
                slot_name=self.slot, decode=False, status_interval=1,
                options=plugin_options(self.publication))
        except psycopg2.errors.ObjectInUse as error:
            pid = str(error).split("PID")[-1].strip() if "PID" in str(error) else "?"
            raise SlotInUse(slot_in_use(self.slot, pid)) from None
        except psycopg2.errors.UndefinedObject:
            raise SourceMisconfigured(
                f"replication slot {self.slot} does not exist; create it or allow acme to "
                "create it") from None
        except (psycopg2.OperationalError, psycopg2.InterfaceError) as error:
            raise self._lost(error) from None

    def read(self) -> WalMessage | None:
        """The next message if one has arrived, else None (never blocks)."""
        try:
            message = self.cursor.read_message()
        except (psycopg2.OperationalError, psycopg2.InterfaceError) as error:
            raise self._lost(error) from None
        if message is None:
            return None
        return WalMessage(message.data_start, message.payload)

    def wait(self, seconds: float) -> None:
        """Block until data may be readable or the timeout passes."""
        try:
            select.select([self.conn], [], [], seconds)
        except (ValueError, OSError) as error:  # the socket is gone
            raise self._lost(error) from None

    @property
    def server_sent_lsn(self) -> int:
        """How far the server has sent (advanced by keepalives while the tables are idle)."""
        return self.cursor.wal_end

    def confirm(self, lsn: int, ask_reply: bool = False) -> None:
        """Report `lsn` as flushed: the slot may release WAL before it."""
        self.flushed = max(self.flushed, lsn)
        try:
            self.cursor.send_feedback(write_lsn=self.flushed, flush_lsn=self.flushed,
                                      apply_lsn=self.flushed, reply=ask_reply, force=True)
        except (psycopg2.OperationalError, psycopg2.InterfaceError) as error:
            raise self._lost(error) from None

    def _lost(self, error: Exception) -> SourceUnreachable:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else "closed"
        return SourceUnreachable(f"replication connection to {mask_dsn(self.dsn)} lost: "
                                 f"{reason}")

    def close(self) -> None:
        try:
            self.conn.close()
        except psycopg2.Error:
            pass

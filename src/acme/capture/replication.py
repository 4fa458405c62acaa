"""The replication connection: identify the server, create the slot (exporting its snapshot),
stream, confirm, and notice when the connection has silently died.

It speaks the streaming protocol over psycopg's libpq wrapper (`pgconn`): CopyData messages
in, standby status updates out. Doing this ourselves, rather than through psycopg2's
replication cursor, gives two things that library hides: every position sent to the server
as flushed is one we chose (psycopg2 silently forwards the flushed position to each keepalive's
WAL end, which the warehouse could not record first), and the time the server last sent
anything, which the receive deadline needs.
"""

import select
import struct
import time
from dataclasses import dataclass

import psycopg
from psycopg import pq

from acme.capture.catalog import holder_of, slot_in_use
from acme.config import mask_dsn
from acme.errors import SlotInUse, SourceMisconfigured, SourceUnreachable
from acme.lsn import parse_lsn
from acme.source.connect import DEFAULT_APPLICATION, classify_connect_error, conninfo

ASK_EVERY_SECONDS = 1.0
DEFAULT_RECEIVE_TIMEOUT = 10.0
_XLOG_WAL_END = struct.Struct(">Q")  # of the header: data start, WAL end, send time
_XLOG_WAL_END_AT = 1 + 8
_XLOG_DATA_AT = 1 + 3 * 8
_KEEPALIVE = struct.Struct(">QQB")  # WAL end, send time, reply requested
_FEEDBACK = struct.Struct(">cQQQQB")
_PG_EPOCH_US = 946_684_800 * 1_000_000  # 2000-01-01 in Unix microseconds
_SQLSTATE_DUPLICATE, _SQLSTATE_UNDEFINED, _SQLSTATE_IN_USE = "42710", "42704", "55006"


def plugin_options(publication: str) -> dict[str, str]:
    """pgoutput's options for our stream (benchmarks read a raw baseline with the same)."""
    return {"proto_version": "1", "publication_names": publication}


@dataclass(frozen=True)
class CreatedSlot:
    consistent_lsn: int
    snapshot_name: str


@dataclass(frozen=True)
class SourceSystem:
    """What IDENTIFY_SYSTEM says: which cluster (its initdb identity) and database."""

    system_identifier: str
    database: str


class ReplicationStream:
    """One replication connection on one slot and publication."""

    def __init__(self, dsn: str, slot: str, publication: str,
                 application_name: str = DEFAULT_APPLICATION,
                 receive_timeout: float = DEFAULT_RECEIVE_TIMEOUT):
        self.dsn, self.slot, self.publication = dsn, slot, publication
        self.receive_timeout = receive_timeout
        try:
            self.conn = psycopg.connect(conninfo(dsn, application_name, replication="database"),
                                        autocommit=True)
        except psycopg.OperationalError as error:
            raise classify_connect_error(dsn, error) from None
        self.pg = self.conn.pgconn
        self.flushed = 0
        self._sent = 0  # see `server_sent_lsn`
        self.last_data: memoryview | None = None  # the last XLogData message, if not yet read
        self.last_asked = 0.0
        self.unanswered_since: float | None = None  # first ask after the last thing received

    @property
    def server_sent_lsn(self) -> int:
        """How far the server has sent: the WAL end of the last XLogData message or keepalive
        (keepalives move it when idle)."""
        if self.last_data is not None:
            (wal_end,) = _XLOG_WAL_END.unpack_from(self.last_data, _XLOG_WAL_END_AT)
            self._sent = max(self._sent, wal_end)
            self.last_data = None
        return self._sent

    def identify(self) -> SourceSystem:
        result = self._command("IDENTIFY_SYSTEM")
        return SourceSystem(result.get_value(0, 0).decode(), result.get_value(0, 3).decode())

    def create_slot(self) -> CreatedSlot:
        """Create the slot; its exported snapshot lives until the next command here."""
        result = self._command(f'CREATE_REPLICATION_SLOT "{self.slot}" LOGICAL pgoutput '
                               "EXPORT_SNAPSHOT")
        return CreatedSlot(parse_lsn(result.get_value(0, 1).decode()),
                           result.get_value(0, 2).decode())

    def start(self) -> None:
        """Stream from the slot's confirmed position."""
        options = ", ".join(f"{name} '{value}'"
                            for name, value in plugin_options(self.publication).items())
        self._command(f'START_REPLICATION SLOT "{self.slot}" LOGICAL 0/0 ({options})',
                      pq.ExecStatus.COPY_BOTH)
        self.unanswered_since = None

    def read(self) -> bytes | None:
        """The next data message's payload (a pgoutput message) if one has arrived, else None
        (never blocks). Keepalives are consumed here, answered when the server asks. The hot
        path of streaming: one call per row, so nothing more is built than the payload."""
        consumed = False
        while True:
            try:
                size, data = self.pg.get_copy_data(1)
                if size == 0:
                    if consumed:
                        return None
                    self.pg.consume_input()
                    consumed = True
                    continue
            except psycopg.OperationalError as error:
                raise self._lost(error) from None
            if size < 0:
                raise self._lost(self._ended())
            self.unanswered_since = None
            kind = data[0]
            if kind == 0x77:  # 'w': XLogData
                self.last_data = data  # its WAL end is read when asked for (`server_sent_lsn`)
                return bytes(data[_XLOG_DATA_AT:])
            if kind == 0x6B:  # 'k': primary keepalive
                wal_end, _, reply = _KEEPALIVE.unpack_from(data, 1)
                self._sent = max(self.server_sent_lsn, wal_end)
                if reply:
                    self._send_feedback(ask_reply=False)
            consumed = True

    def wait(self, seconds: float) -> None:
        """Block until data may be readable or the timeout passes; ask the server for a sign
        of life every second, and declare the connection dead when none came in time."""
        now = time.monotonic()
        if self.unanswered_since is not None \
                and now - self.unanswered_since > self.receive_timeout:
            raise SourceUnreachable(
                f"replication connection to {mask_dsn(self.dsn)} is dead: nothing received "
                f"for {self.receive_timeout:.0f} s after asking the server to reply")
        if now - self.last_asked >= ASK_EVERY_SECONDS:
            self._send_feedback(ask_reply=True)
        try:
            select.select([self.pg.socket], [], [], seconds)
        except (ValueError, OSError, psycopg.OperationalError) as error:  # the socket is gone
            raise self._lost(error) from None

    def confirm(self, lsn: int, ask_reply: bool = False) -> None:
        """Report `lsn` as flushed: the slot may release WAL before it."""
        self.flushed = max(self.flushed, lsn)
        self._send_feedback(ask_reply)

    def close(self) -> None:
        try:
            self.conn.close()
        except psycopg.Error:
            pass

    def _send_feedback(self, ask_reply: bool) -> None:
        now_us = time.time_ns() // 1000 - _PG_EPOCH_US
        message = _FEEDBACK.pack(b"r", self.flushed, self.flushed, self.flushed, now_us,
                                 1 if ask_reply else 0)
        try:
            if self.pg.put_copy_data(message) != 1 or self.pg.flush() != 0:
                raise psycopg.OperationalError(self.pg.get_error_message())
        except psycopg.OperationalError as error:
            raise self._lost(error) from None
        if ask_reply:
            self.last_asked = time.monotonic()
            if self.unanswered_since is None:
                self.unanswered_since = self.last_asked

    def _command(self, command: str, expect: pq.ExecStatus = pq.ExecStatus.TUPLES_OK):
        """Run a replication command (simple query protocol) and check its outcome."""
        try:
            result = self.pg.exec_(command.encode())
        except psycopg.OperationalError as error:
            raise self._lost(error) from None
        if result.status in (expect, pq.ExecStatus.COMMAND_OK):
            return result
        state = (result.error_field(pq.DiagnosticField.SQLSTATE) or b"").decode()
        message = (result.error_message or self.pg.error_message).decode(errors="replace")
        if state == _SQLSTATE_DUPLICATE:
            raise SourceMisconfigured(f"replication slot {self.slot} was created by someone "
                                      "else meanwhile; run sync again")
        if state == _SQLSTATE_UNDEFINED:
            raise SourceMisconfigured(f"replication slot {self.slot} does not exist; create it "
                                      "or allow acme to create it")
        if state == _SQLSTATE_IN_USE:
            pid = message.rsplit("PID", 1)[-1].strip().rstrip(".") if "PID" in message else "?"
            raise SlotInUse(slot_in_use(self.slot, holder_of(self.dsn, self.slot, pid)))
        if not state or state.startswith("08") or self.pg.status != pq.ConnStatus.OK:
            raise self._lost(message)
        raise SourceMisconfigured(f"the server refused {command.split()[0]} on slot "
                                  f"{self.slot}: {message.strip().splitlines()[0]}")

    def _ended(self) -> str:
        result = self.pg.get_result()
        if result is not None and result.error_message:
            return result.error_message.decode(errors="replace")
        return self.pg.error_message.decode(errors="replace") or "the server ended the stream"

    def _lost(self, error: Exception | str) -> SourceUnreachable:
        text = str(error).strip()
        reason = text.splitlines()[0] if text else "closed"
        return SourceUnreachable(f"replication connection to {mask_dsn(self.dsn)} lost: "
                                 f"{reason}")

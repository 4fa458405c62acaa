"""Decoder for PostgreSQL's pgoutput logical replication protocol, version 1.

Takes the bytes of one XLogData payload and returns one frozen message. No I/O, so every
message kind (and the awkward tuple values: NULL vs unchanged TOAST) is unit-tested with bytes.
Reference: PostgreSQL docs, "Logical Replication Message Formats".
"""

import struct
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import NamedTuple

PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


class _Unchanged:
    """An unchanged TOASTed value: the column kept its previous value, which was not sent."""

    def __repr__(self) -> str:
        return "UNCHANGED"


UNCHANGED = _Unchanged()

Value = str | bytes | None | _Unchanged


@dataclass(frozen=True)
class Column:
    name: str
    type_oid: int
    type_modifier: int
    is_key: bool


# Begin and Commit are made for every transaction in the stream's hot path: a NamedTuple is
# built in half the time of a frozen dataclass (0.23 against 0.44 us).
class Begin(NamedTuple):
    final_lsn: int
    commit_time: datetime
    xid: int


class Commit(NamedTuple):
    commit_lsn: int
    end_lsn: int
    commit_time: datetime


@dataclass(frozen=True)
class Origin:
    commit_lsn: int
    name: str


@dataclass(frozen=True)
class Relation:
    oid: int
    namespace: str
    name: str
    replica_identity: str
    columns: tuple[Column, ...]
    # The table's primary key from the source catalog (set by the consumer): the warehouse
    # key. The `is_key` flags only say which columns an old tuple (the replica identity)
    # carries: the primary key (DEFAULT), a unique index (USING INDEX) or every column (FULL).
    primary_key: tuple[str, ...] | None = None

    @property
    def key_columns(self) -> tuple[str, ...]:
        if self.primary_key:
            return self.primary_key
        return self.identity_columns

    @cached_property
    def key_positions(self) -> tuple[int, ...]:
        names = self.column_names
        return tuple(names.index(name) for name in self.key_columns)

    @property
    def identity_columns(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.columns if column.is_key)

    @cached_property
    def identity_positions(self) -> tuple[int, ...]:
        return tuple(i for i, column in enumerate(self.columns) if column.is_key)

    @cached_property
    def old_tuple_holds_key(self) -> bool:
        """Whether an old tuple carries the primary key (else the row is found by identity)."""
        return set(self.key_positions) <= set(self.identity_positions)

    @cached_property
    def column_names(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.columns)


@dataclass(frozen=True)
class TypeInfo:
    oid: int
    namespace: str
    name: str


@dataclass(frozen=True)
class Insert:
    relation_oid: int
    new: tuple[Value, ...]


@dataclass(frozen=True)
class Update:
    relation_oid: int
    new: tuple[Value, ...]
    old: tuple[Value, ...] | None  # the old key ('K') or whole old row ('O'), when sent
    old_is_key_only: bool


@dataclass(frozen=True)
class Delete:
    relation_oid: int
    old: tuple[Value, ...]
    old_is_key_only: bool


@dataclass(frozen=True)
class Truncate:
    relation_oids: tuple[int, ...]
    cascade: bool
    restart_identity: bool


Message = Begin | Commit | Origin | Relation | TypeInfo | Insert | Update | Delete | Truncate


class DecodeError(ValueError):
    """The bytes are not a pgoutput v1 message we understand."""


_INT16 = struct.Struct("!h").unpack_from
_INT32 = struct.Struct("!i").unpack_from
_OID = struct.Struct("!I").unpack_from
_BEGIN = struct.Struct("!qqI").unpack_from
_COMMIT = struct.Struct("!bqqq").unpack_from
_NULL, _UNCHANGED_TOAST, _TEXT, _BINARY = b"n"[0], b"u"[0], b"t"[0], b"b"[0]


class _Reader:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes):
        self.data = data if isinstance(data, bytes) else bytes(data)
        self.pos = 0

    def unpack(self, fmt: str) -> tuple:
        values = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += struct.calcsize(fmt)
        return values

    def byte(self) -> str:
        value = chr(self.data[self.pos])
        self.pos += 1
        return value

    def string(self) -> str:
        end = self.data.index(b"\0", self.pos)
        value = self.data[self.pos:end].decode()
        self.pos = end + 1
        return value


def timestamp(micros: int) -> datetime:
    # A transaction's Begin and Commit carry the same time: the second is the one just made.
    global _last_timestamp
    last_micros, last = _last_timestamp
    if micros != last_micros:
        last = PG_EPOCH + timedelta(0, 0, micros)  # positional: a third cheaper
        _last_timestamp = (micros, last)
    return last


_last_timestamp: tuple[int, datetime] = (0, PG_EPOCH)


def decode(payload: bytes) -> Message:
    """Decode one pgoutput message."""
    if not payload:
        raise DecodeError("empty pgoutput message")
    reader = _Reader(payload)
    kind = reader.byte()
    try:
        decoder = _DECODERS[kind]
    except KeyError:
        raise DecodeError(f"unknown pgoutput message type {kind!r}") from None
    try:
        return decoder(reader)
    except (struct.error, IndexError, ValueError) as error:
        raise DecodeError(f"truncated or malformed pgoutput {kind!r} message: {error}") from None


def decode_begin(payload: bytes) -> Begin:
    """A Begin message (its first byte is 'B'). Every transaction has one, and a Commit: the
    stream decodes those two straight from the payload (`decode` dispatches here too)."""
    try:
        final_lsn, micros, xid = _BEGIN(payload, 1)
    except struct.error as error:
        raise DecodeError(f"truncated or malformed pgoutput 'B' message: {error}") from None
    return Begin(final_lsn, timestamp(micros), xid)


def decode_commit(payload: bytes) -> Commit:
    """A Commit message (its first byte is 'C'); see `decode_begin`."""
    try:
        _flags, commit_lsn, end_lsn, micros = _COMMIT(payload, 1)
    except struct.error as error:
        raise DecodeError(f"truncated or malformed pgoutput 'C' message: {error}") from None
    return Commit(commit_lsn, end_lsn, timestamp(micros))


def _begin(r: _Reader) -> Begin:
    return decode_begin(r.data)


def _commit(r: _Reader) -> Commit:
    return decode_commit(r.data)


def _origin(r: _Reader) -> Origin:
    (commit_lsn,) = r.unpack("!q")
    return Origin(commit_lsn, r.string())


def _relation(r: _Reader) -> Relation:
    (oid,) = r.unpack("!I")
    namespace, name = r.string(), r.string()
    identity = r.byte()
    (count,) = r.unpack("!h")
    columns = []
    for _ in range(count):
        (flags,) = r.unpack("!b")
        column_name = r.string()
        type_oid, modifier = r.unpack("!Ii")
        columns.append(Column(column_name, type_oid, modifier, bool(flags & 1)))
    return Relation(oid, namespace, name, identity, tuple(columns))


def _type(r: _Reader) -> TypeInfo:
    (oid,) = r.unpack("!I")
    return TypeInfo(oid, r.string(), r.string())


def _tuple(r: _Reader) -> tuple[Value, ...]:
    # The hot path of streaming (every column of every row): kept to plain local operations.
    data, pos = r.data, r.pos
    (count,) = _INT16(data, pos)
    pos += 2
    values: list[Value] = []
    append = values.append
    for _ in range(count):
        kind = data[pos]
        pos += 1
        if kind == _TEXT or kind == _BINARY:
            (length,) = _INT32(data, pos)
            pos += 4
            raw = data[pos:pos + length]
            if len(raw) != length:
                raise ValueError(f"value of {length} bytes cut at {len(raw)}")
            append(raw.decode() if kind == _TEXT else raw)
            pos += length
        elif kind == _NULL:
            append(None)
        elif kind == _UNCHANGED_TOAST:
            append(UNCHANGED)
        else:
            raise DecodeError(f"unknown tuple value kind {chr(kind)!r}")
    r.pos = pos
    return tuple(values)


def _insert(r: _Reader) -> Insert:
    (oid,) = _OID(r.data, r.pos)
    r.pos += 4
    if r.byte() != "N":
        raise DecodeError("insert without a new tuple")
    return Insert(oid, _tuple(r))


def _update(r: _Reader) -> Update:
    (oid,) = _OID(r.data, r.pos)
    r.pos += 4
    marker = r.byte()
    old = None
    key_only = False
    if marker in ("K", "O"):
        key_only = marker == "K"
        old = _tuple(r)
        marker = r.byte()
    if marker != "N":
        raise DecodeError("update without a new tuple")
    return Update(oid, _tuple(r), old, key_only)


def _delete(r: _Reader) -> Delete:
    (oid,) = r.unpack("!I")
    marker = r.byte()
    if marker not in ("K", "O"):
        raise DecodeError("delete without an old tuple")
    return Delete(oid, _tuple(r), marker == "K")


def _truncate(r: _Reader) -> Truncate:
    count, options = r.unpack("!Ib")
    oids = r.unpack(f"!{count}I")
    return Truncate(tuple(oids), bool(options & 1), bool(options & 2))


_DECODERS = {
    "B": _begin,
    "C": _commit,
    "O": _origin,
    "R": _relation,
    "Y": _type,
    "I": _insert,
    "U": _update,
    "D": _delete,
    "T": _truncate,
}

"""Turn decoded pgoutput messages into a stream of row changes, truncates and commits. No I/O.

pgoutput v1 sends a transaction only after it committed, and its Begin already carries the
commit time and LSN, so every row change can be handed on (and staged in the warehouse) the
moment it arrives: nothing here holds a transaction, whatever its size. The net effect per row
within a transaction is computed later, in SQL, by the warehouse.

The warehouse key is the table's primary key from the source catalog (`primary_key`), not
the replica identity: an old tuple (the identity: primary key, unique index or whole row) only
finds the row. When it carries the primary key, an update that changes the key becomes a delete
of the old key and an insert of the new one. When it does not (USING INDEX on other columns),
deletes and updates name the row by their identity values (`by_identity`) and the warehouse
finds its key; such an update is a delete of the found row and an insert, which nets to an
update when the key did not change. An update that sends the whole old row (REPLICA IDENTITY
FULL) has its unchanged TOAST values filled from that old row.
"""

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal, NamedTuple

from acme.capture.pgoutput import (
    UNCHANGED,
    Begin,
    Commit,
    Delete,
    Insert,
    Message,
    Relation,
    Truncate,
    Update,
    Value,
)

Op = Literal["I", "U", "D"]


@dataclass(frozen=True, slots=True)
class RowChange:
    relation: Relation
    op: Op
    row: tuple[Value, ...]  # in relation column order; a delete carries only its key
    # The row holds only identity values (`relation.identity_columns`): its key is to be found.
    by_identity: bool = False


@dataclass(frozen=True)
class TableTruncate:
    relations: tuple[Relation, ...]


class Committed(NamedTuple):  # one per transaction: see `pgoutput.Begin`
    xid: int
    commit_lsn: int
    end_lsn: int
    commit_time: datetime


Event = RowChange | TableTruncate | Committed


class ProtocolError(RuntimeError):
    """The stream broke pgoutput's rules (a change outside a transaction, an unknown relation)."""


class TransactionAssembler:
    """Feed messages in stream order; `feed` returns the events each one produces."""

    def __init__(self, primary_key: Callable[[str, str], tuple[str, ...]] | None = None
                 ) -> None:
        """`primary_key(schema, table)` reads a table's primary key from the source catalog
        (empty when it has none: the replica identity is then the key)."""
        self.primary_key = primary_key
        self.relations: dict[int, Relation] = {}
        self.begin: Begin | None = None

    @property
    def in_transaction(self) -> bool:
        return self.begin is not None

    def feed(self, message: Message) -> tuple[Event, ...]:
        if isinstance(message, Insert | Update | Delete):
            self._require_open(type(message).__name__.lower())
            return self.changes_of(message)
        if isinstance(message, Begin):
            self.began(message)
        elif isinstance(message, Commit):
            return (self.committed(message),)
        elif isinstance(message, Relation):
            if self.primary_key is not None:
                key = self.primary_key(message.namespace, message.name)
                if key and set(key) <= set(message.column_names):
                    message = replace(message, primary_key=tuple(key))
            self.relations[message.oid] = message
        elif isinstance(message, Truncate):
            self._require_open("truncate")
            return (TableTruncate(tuple(self._relation(oid) for oid in message.relation_oids)),)
        return ()

    def began(self, begin: Begin) -> None:
        """`feed` of a Begin, which produces no event (the stream's hot path calls it)."""
        self.begin = begin

    def committed(self, commit: Commit) -> Committed:
        """`feed` of a Commit: the one event it produces."""
        begin = self._require_open("commit")
        self.begin = None
        return Committed(begin.xid, commit.commit_lsn, commit.end_lsn, commit.commit_time)

    def changes_of(self, message: Insert | Update | Delete) -> tuple[RowChange, ...]:
        """`feed` of a row message of the open transaction: the stager decodes the row
        messages it cannot take in bulk through this, after they arrived."""
        if isinstance(message, Insert):
            return (RowChange(self._relation(message.relation_oid), "I", message.new),)
        if isinstance(message, Update):
            return self._update(message)
        relation = self._relation(message.relation_oid)
        if not relation.old_tuple_holds_key:
            return (RowChange(relation, "D", identity_row(relation, message.old), True),)
        return (RowChange(relation, "D", key_row(relation, message.old)),)

    def _update(self, message: Update) -> tuple[RowChange, ...]:
        relation = self._relation(message.relation_oid)
        new = message.new
        if message.old is not None and not message.old_is_key_only and UNCHANGED in new:
            new = tuple(old if value is UNCHANGED else value
                        for value, old in zip(new, message.old, strict=True))
        if not relation.old_tuple_holds_key:
            # The key may have changed without the identity: find the row by its identity.
            found = identity_row(relation, message.old if message.old is not None else new)
            return (RowChange(relation, "D", found, True), RowChange(relation, "I", new))
        if message.old is None:
            return (RowChange(relation, "U", new),)
        old_key = key_row(relation, message.old)
        if any(old_key[i] != new[i] for i in relation.key_positions):
            return (RowChange(relation, "D", old_key), RowChange(relation, "I", new))
        return (RowChange(relation, "U", new),)

    def _relation(self, oid: int) -> Relation:
        try:
            return self.relations[oid]
        except KeyError:
            raise ProtocolError(f"change for relation {oid} before its Relation message") from None

    def _require_open(self, what: str) -> Begin:
        if self.begin is None:
            raise ProtocolError(f"{what} outside a transaction")
        return self.begin


def key_row(relation: Relation, old: tuple[Value, ...]) -> tuple[Value, ...]:
    """A full-width row holding only the key, from an old tuple that carries it."""
    return _only(relation, relation.key_positions, old)


def identity_row(relation: Relation, old: tuple[Value, ...]) -> tuple[Value, ...]:
    """A full-width row holding only the replica identity's values."""
    return _only(relation, relation.identity_positions, old)


def _only(relation: Relation, positions: tuple[int, ...],
          old: tuple[Value, ...]) -> tuple[Value, ...]:
    if len(old) == len(relation.columns):
        keys = [old[i] for i in positions]
    else:
        keys = list(old[: len(positions)])
    row: list[Value] = [None] * len(relation.columns)
    for position, value in zip(positions, keys, strict=True):
        row[position] = value
    return tuple(row)

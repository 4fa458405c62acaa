"""Assemble decoded pgoutput messages into committed transactions of row changes.

Within one transaction only the net effect per row is kept: the source's other sessions never
saw the intermediate states, so history must not either. An update that changes the primary
key becomes a delete of the old key and an insert of the new one. Truncates split a
transaction's changes, since order matters around them. No I/O here.
"""

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

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


@dataclass(frozen=True)
class RowChange:
    relation: Relation
    op: Op
    key: tuple[Value, ...]
    values: tuple[Value, ...] | None  # the new row in relation column order; None for a delete


@dataclass(frozen=True)
class TableTruncate:
    relations: tuple[Relation, ...]


Change = RowChange | TableTruncate


@dataclass(frozen=True)
class Transaction:
    xid: int
    commit_lsn: int
    end_lsn: int
    commit_time: datetime
    changes: tuple[Change, ...]


class ProtocolError(RuntimeError):
    """The stream broke pgoutput's rules (a change outside a transaction, an unknown relation)."""


@dataclass
class _Open:
    begin: Begin
    changes: list[Change] = field(default_factory=list)
    # (table oid, key) -> (first op seen in this transaction, latest change)
    rows: dict[tuple[int, tuple], tuple[Op, RowChange]] = field(default_factory=dict)

    def flush_rows(self) -> None:
        for first_op, change in self.rows.values():
            if first_op == "I" and change.op == "D":
                continue  # born and gone inside the transaction: never visible
            op: Op = "D" if change.op == "D" else ("I" if first_op == "I" else "U")
            self.changes.append(RowChange(change.relation, op, change.key, change.values))
        self.rows.clear()


class TransactionAssembler:
    """Feed messages in stream order; `feed` returns a Transaction when one commits."""

    def __init__(self) -> None:
        self.relations: dict[int, Relation] = {}
        self._open: _Open | None = None

    @property
    def in_transaction(self) -> bool:
        return self._open is not None

    def feed(self, message: Message) -> Transaction | None:
        if isinstance(message, Relation):
            self.relations[message.oid] = message
        elif isinstance(message, Begin):
            self._open = _Open(message)
        elif isinstance(message, Commit):
            return self._commit(message)
        elif isinstance(message, Insert | Update | Delete):
            for change in self._row_changes(message):
                self._record(change)
        elif isinstance(message, Truncate):
            current = self._require_open("truncate")
            current.flush_rows()
            current.changes.append(
                TableTruncate(tuple(self._relation(oid) for oid in message.relation_oids)))
        return None

    def _commit(self, commit: Commit) -> Transaction:
        current = self._require_open("commit")
        current.flush_rows()
        self._open = None
        return Transaction(current.begin.xid, commit.commit_lsn, commit.end_lsn,
                           commit.commit_time, tuple(current.changes))

    def _row_changes(self, message: Insert | Update | Delete) -> list[RowChange]:
        relation = self._relation(message.relation_oid)
        if isinstance(message, Insert):
            return [RowChange(relation, "I", key_of(relation, message.new), message.new)]
        if isinstance(message, Delete):
            return [RowChange(relation, "D", key_of(relation, message.old), None)]
        new = message.new
        if message.old is not None and not message.old_is_key_only:
            new = tuple(old if value is UNCHANGED else value
                        for value, old in zip(new, message.old, strict=True))
        new_key = key_of(relation, new)
        if message.old is not None:
            old_key = key_of(relation, message.old)
            if old_key != new_key:
                return [RowChange(relation, "D", old_key, None),
                        RowChange(relation, "I", new_key, new)]
        return [RowChange(relation, "U", new_key, new)]

    def _record(self, change: RowChange) -> None:
        current = self._require_open("row change")
        slot = (change.relation.oid, change.key)
        previous = current.rows.get(slot)
        if previous is None:
            current.rows[slot] = (change.op, change)
            return
        first_op, earlier = previous
        if change.values is not None and earlier.values is not None:
            change = RowChange(change.relation, change.op, change.key,
                               fill_unchanged(change.values, earlier.values))
        current.rows[slot] = (first_op, change)

    def _relation(self, oid: int) -> Relation:
        try:
            return self.relations[oid]
        except KeyError:
            raise ProtocolError(f"change for relation {oid} before its Relation message") from None

    def _require_open(self, what: str) -> _Open:
        if self._open is None:
            raise ProtocolError(f"{what} outside a transaction")
        return self._open


def key_of(relation: Relation, row: tuple[Value, ...]) -> tuple[Value, ...]:
    """The primary-key values of a full row, or of a key-only old tuple."""
    positions = relation.key_positions
    if len(row) == len(relation.columns):
        return tuple([row[i] for i in positions])
    return tuple(row[: len(positions)])


def fill_unchanged(values: tuple[Value, ...], earlier: tuple[Value, ...]) -> tuple[Value, ...]:
    """Replace unchanged-TOAST markers with the value from an earlier image of the same row."""
    if UNCHANGED not in values or len(values) != len(earlier):
        return values
    return tuple(old if value is UNCHANGED else value
                 for value, old in zip(values, earlier, strict=True))

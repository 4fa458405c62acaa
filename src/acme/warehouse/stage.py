"""Row changes gathered per table into bounded Arrow chunks, ready to stage in DuckDB. No I/O.

A chunk holds the values as PostgreSQL sent them (text), plus `_seq` (stream order), `_op`,
`_commit_ts`, `_lsn` (the commit LSN, which also names the transaction), `_unchanged` (the
columns sent as unchanged TOAST) and `_by` (for a row named by its replica identity instead of
its key: the identity's columns, whose values find the key). Casting and the net effect per
row are left to SQL.

Row messages arrive undecoded (`pending`) and are decoded a chunk at a time: most (inserts,
updates that keep their key) straight into Arrow columns (`capture.columnar`), the others one
by one. Other changes arrive decoded (`add`). All carry `_seq` from one counter, in stream
order, so the merge orders them.
"""

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import pyarrow as pa

from acme.capture.columnar import UPDATE, RowMessages, new_tuples_as_columns
from acme.capture.pgoutput import UNCHANGED, Relation, decode
from acme.capture.transactions import RowChange, TransactionAssembler
from acme.warehouse.tables import warehouse_name

COMMIT_TS = pa.timestamp("us", tz="UTC")
CHUNK_ROWS = 50_000


def commit_columns(times: list[datetime], lsns: list[int]) -> dict[str, pa.Array]:
    """`_commit_ts` and `_lsn` of rows in stream order. A commit LSN names its transaction, so
    only the first time of each run of equal LSNs is converted: a datetime costs about a
    quarter of a microsecond to convert, as much as decoding the rest of the row."""
    lsn = np.array(lsns, dtype=np.uint64)
    if not len(lsn):
        return {"_commit_ts": pa.array([], COMMIT_TS), "_lsn": pa.array(lsn)}
    starts = np.flatnonzero(np.concatenate(([True], lsn[1:] != lsn[:-1])))
    firsts = pa.array([times[i] for i in starts.tolist()], COMMIT_TS)
    micros = np.repeat(firsts.cast(pa.int64()).to_numpy(), np.diff(starts, append=len(lsn)))
    return {"_commit_ts": pa.array(micros, COMMIT_TS), "_lsn": pa.array(lsn)}


@dataclass(frozen=True)
class StageChunk:
    table: str
    relations: tuple[Relation, ...]  # distinct, in arrival order: they describe the columns
    rows: pa.Table


@dataclass
class _TableRows:
    seqs: list[int] = field(default_factory=list)
    ops: list[str] = field(default_factory=list)
    commit_times: list[datetime] = field(default_factory=list)
    lsns: list[int] = field(default_factory=list)
    rows: list[tuple] = field(default_factory=list)
    relations: list[Relation] = field(default_factory=list)
    by: list[tuple[str, ...] | None] = field(default_factory=list)

    def to_chunk(self, table: str) -> StageChunk:
        distinct = tuple({id(r): r for r in self.relations}.values())
        columns: dict[str, list] = {}
        for relation, rows in self._runs():
            # Transpose a run of rows at once; columns this run lacks stay NULL.
            done = len(next(iter(columns.values()))) if columns else 0
            for name, values in zip(relation.column_names, zip(*rows, strict=True),
                                    strict=True):
                columns.setdefault(name, [None] * done).extend(values)
            for values in columns.values():
                if len(values) < done + len(rows):
                    values.extend([None] * (done + len(rows) - len(values)))
        unchanged: list[list[str] | None] = [None] * len(self.seqs)
        for name, values in columns.items():
            if UNCHANGED in values:
                for i, value in enumerate(values):
                    if value is UNCHANGED:
                        values[i] = None
                        unchanged[i] = (unchanged[i] or []) + [name]
        rows = pa.table({
            "_seq": pa.array(self.seqs, pa.int64()),
            "_op": pa.array(self.ops, pa.string()),
            **commit_columns(self.commit_times, self.lsns),
            "_unchanged": pa.array(unchanged, pa.list_(pa.string())),
            "_by": pa.array(self.by, pa.list_(pa.string())),
            **{name: pa.array(values, pa.string()) for name, values in columns.items()},
        })
        return StageChunk(table, distinct, rows)

    def _runs(self) -> list[tuple[Relation, list[tuple]]]:
        """Consecutive rows described by the same Relation message."""
        runs: list[tuple[Relation, list[tuple]]] = []
        for relation, row in zip(self.relations, self.rows, strict=True):
            if runs and runs[-1][0] is relation:
                runs[-1][1].append(row)
            else:
                runs.append((relation, [row]))
        return runs


class ChangeStager:
    """Collects row changes in stream order; hands out a table's chunk once it is full.

    Row messages come in two ways. The stream appends each one of an open transaction to
    `pending` undecoded (its hot path: nothing else is done per row), after telling the
    transaction it belongs to (`transaction_began`); `stage_pending` takes them a chunk at a
    time. Other row changes come decoded (`add`), after the pending ones are staged."""

    def __init__(self, chunk_rows: int = CHUNK_ROWS):
        self.chunk_rows = chunk_rows
        self.tables: dict[str, _TableRows] = {}
        self.seq = 0
        # Row changes handed out in chunks, by (table, op), since `take_counts`: counted a
        # chunk at a time, not a row at a time on the stream's hot path.
        self.counts: Counter[tuple[str, str]] = Counter()
        self.pending: list[bytes] = []
        # Each transaction with pending rows: its first row's index, commit time and LSN.
        self.transactions: list[tuple[int, datetime, int]] = []

    def take_counts(self) -> Counter[tuple[str, str]]:
        counts, self.counts = self.counts, Counter()
        return counts

    def transaction_began(self, commit_time: datetime, commit_lsn: int) -> None:
        """Rows appended to `pending` from now on belong to this transaction."""
        if not self.pending:
            self.transactions.clear()
        self.transactions.append((len(self.pending), commit_time, commit_lsn))

    def stage_pending(self, assembler: TransactionAssembler) -> list[StageChunk]:
        """The pending row messages, staged: those that carry only their new row (most), a
        relation at a time (`capture.columnar`), the others one by one through `assembler`,
        which knows the relations. `_seq` follows their order in the stream."""
        payloads = self.pending
        if not payloads:
            return []
        count = len(payloads)
        # Two numbers a message: an update that changes its key is a delete and an insert.
        base, self.seq = self.seq, self.seq + 2 * count
        seqs = base + 1 + 2 * np.arange(count, dtype=np.int64)
        firsts = np.array([first for first, _, _ in self.transactions], dtype=np.int64)
        of = np.searchsorted(firsts, np.arange(count), side="right") - 1
        lsns = np.array([lsn for _, _, lsn in self.transactions], dtype=np.uint64)[of]
        micros = pa.array([time for _, time, _ in self.transactions],
                          COMMIT_TS).cast(pa.int64()).to_numpy()[of]
        messages = RowMessages(payloads)
        chunks = []
        staged = np.zeros(count, dtype=bool)
        for oid in np.unique(messages.relation_oids).tolist():
            relation = assembler.relations.get(oid)
            if relation is None:
                continue  # not a relation's row message: the assembler says what is wrong
            positions = messages.new_tuple_only(oid, relation.old_tuple_holds_key)
            if not len(positions):
                continue
            columns = new_tuples_as_columns(messages, positions, len(relation.columns))
            if columns is None:
                continue
            staged[positions] = True
            chunks.append(self._plain_chunk(relation, messages.kinds[positions] == UPDATE,
                                            seqs[positions], micros[positions],
                                            lsns[positions], columns))
        for position in np.flatnonzero(~staged).tolist():
            _, commit_time, lsn = self.transactions[of[position]]
            changes = assembler.changes_of(decode(payloads[position]))
            for number, change in enumerate(changes):
                chunk = self._add(change, commit_time, lsn, int(seqs[position]) + number)
                if chunk is not None:
                    chunks.append(chunk)
        del self.transactions[:-1]  # the open transaction's rows may go on
        self.transactions[0] = (0, *self.transactions[0][1:])
        payloads.clear()
        return chunks

    def _plain_chunk(self, relation: Relation, updates: np.ndarray, seqs: np.ndarray,
                     micros: np.ndarray, lsns: np.ndarray,
                     columns: list[pa.Array]) -> StageChunk:
        name = warehouse_name(relation.namespace, relation.name)
        count, updated = len(seqs), int(updates.sum())
        for op, number in (("I", count - updated), ("U", updated)):
            if number:
                self.counts[(name, op)] += number
        rows = pa.table({
            "_seq": pa.array(seqs),
            "_op": pa.array(np.where(updates, "U", "I"), pa.string()),
            "_commit_ts": pa.array(micros, COMMIT_TS),
            "_lsn": pa.array(lsns),
            "_unchanged": pa.nulls(count, pa.list_(pa.string())),
            "_by": pa.nulls(count, pa.list_(pa.string())),
            **dict(zip(relation.column_names, columns, strict=True)),
        })
        return StageChunk(name, (relation,), rows)

    def add(self, change: RowChange, commit_time: datetime, commit_lsn: int) -> StageChunk | None:
        self.seq += 1
        return self._add(change, commit_time, commit_lsn, self.seq)

    def _add(self, change: RowChange, commit_time: datetime, commit_lsn: int,
             seq: int) -> StageChunk | None:
        name = warehouse_name(change.relation.namespace, change.relation.name)
        rows = self.tables.get(name)
        if rows is None:
            rows = self.tables[name] = _TableRows()
        rows.seqs.append(seq)
        rows.ops.append(change.op)
        rows.commit_times.append(commit_time)
        rows.lsns.append(commit_lsn)
        rows.rows.append(change.row)
        rows.relations.append(change.relation)
        rows.by.append(change.relation.identity_columns if change.by_identity else None)
        if len(rows.seqs) >= self.chunk_rows:
            return self._chunk(name, self.tables.pop(name))
        return None

    def _chunk(self, name: str, rows: _TableRows) -> StageChunk:
        for op, count in Counter(rows.ops).items():
            self.counts[(name, op)] += count
        return rows.to_chunk(name)

    def drain(self) -> list[StageChunk]:
        """Every table's remaining decoded rows, as chunks (`stage_pending` first)."""
        chunks = [self._chunk(name, rows) for name, rows in self.tables.items()]
        self.tables.clear()
        return chunks

"""Row changes gathered per table into bounded Arrow chunks, ready to stage in DuckDB. No I/O.

A chunk holds the values as PostgreSQL sent them (text), plus `_seq` (stream order), `_op`,
`_commit_ts`, `_lsn` (the commit LSN, which also names the transaction), `_unchanged` (the
columns sent as unchanged TOAST) and `_by` (for a row named by its replica identity instead of
its key: the identity's columns, whose values find the key). Casting and the net effect per
row are left to SQL.

Most row messages (inserts, updates that keep their key) arrive undecoded (`add_raw`): their
payloads are kept and decoded a chunk at a time into Arrow columns (`capture.columnar`); the
others arrive decoded (`add`). Both carry `_seq` from one counter, so the merge orders them.
"""

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import pyarrow as pa

from acme.capture.columnar import new_tuples_as_columns
from acme.capture.pgoutput import UNCHANGED, Relation, decode
from acme.capture.transactions import RowChange
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

    def columns(self) -> tuple[list, ...]:
        return (self.seqs, self.ops, self.commit_times, self.lsns, self.rows, self.relations,
                self.by)

    def _runs(self) -> list[tuple[Relation, list[tuple]]]:
        """Consecutive rows described by the same Relation message."""
        runs: list[tuple[Relation, list[tuple]]] = []
        for relation, row in zip(self.relations, self.rows, strict=True):
            if runs and runs[-1][0] is relation:
                runs[-1][1].append(row)
            else:
                runs.append((relation, [row]))
        return runs


@dataclass
class _RawRows:
    """Undecoded Insert / key-keeping Update messages of one relation."""

    relation: Relation
    seqs: list[int] = field(default_factory=list)
    ops: list[str] = field(default_factory=list)
    commit_times: list[datetime] = field(default_factory=list)
    lsns: list[int] = field(default_factory=list)
    payloads: list[bytes] = field(default_factory=list)

    def to_chunk(self, table: str) -> StageChunk:
        names = self.relation.column_names
        columns = new_tuples_as_columns(self.payloads, len(names))
        if columns is None:  # not the plain case: decode them one by one
            return self._decoded().to_chunk(table)
        count = len(self.seqs)
        rows = pa.table({
            "_seq": pa.array(self.seqs, pa.int64()),
            "_op": pa.array(self.ops, pa.string()),
            **commit_columns(self.commit_times, self.lsns),
            "_unchanged": pa.nulls(count, pa.list_(pa.string())),
            "_by": pa.nulls(count, pa.list_(pa.string())),
            **dict(zip(names, columns, strict=True)),
        })
        return StageChunk(table, (self.relation,), rows)

    def _decoded(self) -> _TableRows:
        rows = [decode(payload).new for payload in self.payloads]
        count = len(rows)
        return _TableRows(self.seqs, self.ops, self.commit_times, self.lsns, rows,
                          [self.relation] * count, [None] * count)


class ChangeStager:
    """Collects row changes in stream order; hands out a table's chunk once it is full."""

    def __init__(self, chunk_rows: int = CHUNK_ROWS):
        self.chunk_rows = chunk_rows
        self.tables: dict[str, _TableRows] = {}
        self.raw: dict[str, _RawRows] = {}
        self.seq = 0
        # Row changes handed out in chunks, by (table, op), since `take_counts`: counted a
        # chunk at a time, not a row at a time on the stream's hot path.
        self.counts: Counter[tuple[str, str]] = Counter()

    def take_counts(self) -> Counter[tuple[str, str]]:
        counts, self.counts = self.counts, Counter()
        return counts

    def _chunk(self, name: str, rows: "_TableRows | _RawRows") -> StageChunk:
        for op, count in Counter(rows.ops).items():
            self.counts[(name, op)] += count
        return rows.to_chunk(name)

    def add(self, change: RowChange, commit_time: datetime, commit_lsn: int) -> StageChunk | None:
        name = warehouse_name(change.relation.namespace, change.relation.name)
        rows = self.tables.get(name)
        if rows is None:
            rows = self.tables[name] = _TableRows()
        self.seq += 1
        rows.seqs.append(self.seq)
        rows.ops.append(change.op)
        rows.commit_times.append(commit_time)
        rows.lsns.append(commit_lsn)
        rows.rows.append(change.row)
        rows.relations.append(change.relation)
        rows.by.append(change.relation.identity_columns if change.by_identity else None)
        if len(rows.seqs) >= self.chunk_rows:
            return self._chunk(name, self.tables.pop(name))
        return None

    def add_raw(self, relation: Relation, op: str, payload: bytes, commit_time: datetime,
                commit_lsn: int) -> StageChunk | None:
        """An Insert, or an Update without an old tuple whose relation keeps its key there
        (`TransactionAssembler.plain_row`): the payload's new tuple is the row as it is."""
        name = warehouse_name(relation.namespace, relation.name)
        rows = self.raw.get(name)
        if rows is None:
            rows = self.raw[name] = _RawRows(relation)
        elif rows.relation is not relation:
            if rows.relation == relation:  # resent as it was (after a cache invalidation)
                rows.relation = relation
            else:
                # A schema change: the rows before it join the decoded ones, which carry each
                # row's own Relation.
                self._add_decoded(name, self.raw.pop(name)._decoded())
                rows = self.raw[name] = _RawRows(relation)
        self.seq += 1
        rows.seqs.append(self.seq)
        rows.ops.append(op)
        rows.commit_times.append(commit_time)
        rows.lsns.append(commit_lsn)
        rows.payloads.append(payload)
        if len(rows.seqs) >= self.chunk_rows:
            return self._chunk(name, self.raw.pop(name))
        return None

    def _add_decoded(self, name: str, decoded: _TableRows) -> None:
        rows = self.tables.setdefault(name, _TableRows())
        for mine, theirs in zip(rows.columns(), decoded.columns(), strict=True):
            mine.extend(theirs)

    def drain(self) -> list[StageChunk]:
        """Every table's remaining rows, as chunks."""
        chunks = [self._chunk(name, rows) for name, rows in self.raw.items()]
        chunks += [self._chunk(name, rows) for name, rows in self.tables.items()]
        self.tables.clear()
        self.raw.clear()
        return chunks

"""Micro-batch apply: committed transactions -> one DuckDB transaction (data + checkpoint).

Row changes are gathered per table into an Arrow stage and merged with the set-based SQL of
`merge.py`; a TRUNCATE first merges what came before it for that table. The checkpoint is
written in the same DuckDB transaction, so a crash leaves either all of a batch or none of it.
"""

from dataclasses import dataclass, field
from datetime import datetime

import pyarrow as pa

from acme.capture.pgoutput import UNCHANGED, Relation
from acme.capture.transactions import RowChange, TableTruncate, Transaction
from acme.warehouse.merge import merge_sql, truncate_sql, typed_stage_sql
from acme.warehouse.store import Checkpoint, Warehouse
from acme.warehouse.tables import TableSpec

COMMIT_TS = pa.timestamp("us", tz="UTC")


@dataclass
class _TableBuffer:
    """One table's staged row changes, in stream order."""

    seqs: list[int] = field(default_factory=list)
    ops: list[str] = field(default_factory=list)
    commit_times: list[datetime] = field(default_factory=list)
    lsns: list[int] = field(default_factory=list)
    rows: list[tuple] = field(default_factory=list)
    relations: list[Relation] = field(default_factory=list)

    def add(self, seq: int, change: RowChange, transaction: Transaction) -> None:
        self.seqs.append(seq)
        self.ops.append(change.op)
        self.commit_times.append(transaction.commit_time)
        self.lsns.append(transaction.commit_lsn)
        self.rows.append(change.values if change.values is not None else _key_row(change))
        self.relations.append(change.relation)

    def to_arrow(self, spec: TableSpec) -> tuple[pa.Table, bool]:
        """The stage as Arrow (text values) and whether any value was unchanged TOAST."""
        names = spec.column_names
        columns: dict[str, list] = {name: [] for name in names}
        for relation, rows in self._runs():
            # Transpose a run of rows at once; columns this relation lacks stay NULL.
            for name, values in zip(relation.column_names, zip(*rows, strict=True),
                                    strict=True):
                columns[name].extend(values)
            for name in names:
                if name not in relation.column_names:
                    columns[name].extend([None] * len(rows))
        unchanged: list[list[str] | None] = [None] * len(self.seqs)
        for name, values in columns.items():
            if UNCHANGED in values:
                for i, value in enumerate(values):
                    if value is UNCHANGED:
                        values[i] = None
                        unchanged[i] = (unchanged[i] or []) + [name]
        table = pa.table({
            "_seq": pa.array(self.seqs, pa.int64()),
            "_op": pa.array(self.ops, pa.string()),
            "_commit_ts": pa.array(self.commit_times, COMMIT_TS),
            "_lsn": pa.array(self.lsns, pa.uint64()),
            "_unchanged": pa.array(unchanged, pa.list_(pa.string())),
            **{name: pa.array(values, pa.string()) for name, values in columns.items()},
        })
        return table, any(item is not None for item in unchanged)

    def _runs(self) -> list[tuple[Relation, list[tuple]]]:
        """Consecutive rows described by the same Relation message."""
        runs: list[tuple[Relation, list[tuple]]] = []
        for relation, row in zip(self.relations, self.rows, strict=True):
            if runs and runs[-1][0] is relation:
                runs[-1][1].append(row)
            else:
                runs.append((relation, [row]))
        return runs


def _key_row(change: RowChange) -> tuple:
    key = iter(change.key)
    return tuple(next(key) if column.is_key else None for column in change.relation.columns)


class BatchApplier:
    """Applies batches to one warehouse, remembering its table layout between batches."""

    def __init__(self, warehouse: Warehouse):
        self.warehouse = warehouse
        self.tables = warehouse.tables()

    def apply(self, transactions: list[Transaction], checkpoint: Checkpoint) -> int:
        """Apply the transactions and the checkpoint atomically; returns row changes applied."""
        applied = 0
        try:
            with self.warehouse.transaction():
                buffers: dict[str, _TableBuffer] = {}
                seq = 0
                for transaction in transactions:
                    for change in transaction.changes:
                        if isinstance(change, TableTruncate):
                            for relation in change.relations:
                                applied += self._flush(relation.name, buffers)
                                self._truncate(relation, transaction.commit_time)
                            continue
                        seq += 1
                        buffers.setdefault(change.relation.name, _TableBuffer()).add(
                            seq, change, transaction)
                for name in list(buffers):
                    applied += self._flush(name, buffers)
                self.warehouse.write_checkpoint(checkpoint)
        except BaseException:
            self.tables = self.warehouse.tables()  # DDL of the failed batch was rolled back
            raise
        return applied

    def _spec_for(self, relations: list[Relation]) -> TableSpec:
        spec = None
        for relation in {id(r): r for r in relations}.values():  # distinct, in order
            spec = self.warehouse.ensure_table(TableSpec.from_relation(relation), self.tables)
        return spec

    def _flush(self, name: str, buffers: dict[str, _TableBuffer]) -> int:
        buffer = buffers.pop(name, None)
        if buffer is None:
            return 0
        spec = self._spec_for(buffer.relations)
        stage, has_unchanged = buffer.to_arrow(spec)
        with self.warehouse.staged("stage_raw", stage):
            self.warehouse.db.execute(typed_stage_sql(spec, has_unchanged))
        for statement in merge_sql(spec):
            self.warehouse.db.execute(statement)
        return len(buffer.seqs)

    def _truncate(self, relation: Relation, commit_time: datetime) -> None:
        close_versions, empty_current = truncate_sql(self._spec_for([relation]))
        self.warehouse.db.execute(close_versions, [commit_time])
        self.warehouse.db.execute(empty_current)

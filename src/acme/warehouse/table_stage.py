"""One table's staged row changes within a batch: where they live, and how they come and go.

The merge reads a table's stage by name (`merge.stage_table`: `rows_<table>`). It is either a
temp table the chunks were appended to, or a temp view over the chunks as registered with the
connection, read where they lie: appending cost the apply thread a quarter of its time in a
backlog of 1,000-row transactions. A stage read in place becomes a table (`materialize`) once
a statement must change its rows; the applier decides which stages start in place
(`apply.IN_PLACE_ROWS`). Owned by the apply thread, like the batch it belongs to.
"""

import itertools
from dataclasses import dataclass, field

import duckdb
import pyarrow as pa

from acme.warehouse.merge import create_stage_sql, stage_table
from acme.warehouse.tables import TableSpec, quote

# Registered names are unique within the process, so within any connection.
_chunk_numbers = itertools.count()


@dataclass
class TableStage:
    db: duckdb.DuckDBPyConnection
    spec: TableSpec
    in_place: bool  # a view over `chunks`, else a table
    rows: int = 0
    has_unchanged: bool = False  # some row holds unchanged TOAST values
    identities: set[tuple[str, ...]] = field(default_factory=set)  # rows to find by these
    chunks: list[str] = field(default_factory=list)

    @classmethod
    def begin(cls, db: duckdb.DuckDBPyConnection, spec: TableSpec,
              in_place: bool) -> "TableStage":
        if not in_place:
            db.execute(create_stage_sql(spec))
        return cls(db, spec, in_place)

    @property
    def name(self) -> str:
        return stage_table(self.spec)

    def add(self, rows: pa.Table) -> None:
        """Stage a chunk, its columns in the stage's order. A registered chunk, or a relation
        queried by SQL, stays alive until the commit (DuckDB 1.x): only a batch that keeps its
        chunks anyway should read them in place."""
        if self.in_place:
            chunk = f"_acme_chunk_{next(_chunk_numbers)}"
            self.db.register(chunk, rows)
            self.chunks.append(chunk)
            union = " UNION ALL ".join(f"SELECT * FROM {each}" for each in self.chunks)
            self.db.execute(f"CREATE OR REPLACE TEMP VIEW {self.name} AS {union}")
        else:
            self.db.from_arrow(rows).insert_into(self.name)
        self.rows += rows.num_rows

    def materialize(self) -> None:
        """Become a table holding the chunks read in place so far."""
        if not self.in_place:
            return
        self.db.execute(f"DROP VIEW {self.name}")
        self.db.execute(create_stage_sql(self.spec))
        self.in_place = False
        for chunk in self.chunks:
            self.db.execute(f"INSERT INTO {self.name} SELECT * FROM {chunk}")
        self.release()

    def add_columns(self, spec: TableSpec) -> None:
        """The table gained columns within the batch (`spec`): rows staged so far lack them."""
        self.materialize()
        for column in spec.column_names[len(self.spec.columns):]:
            self.db.execute(f"ALTER TABLE {self.name} ADD COLUMN {quote(column)} VARCHAR")
        self.spec = spec

    def remove(self, lsn: int) -> None:
        """Drop the rows of transaction `lsn`."""
        self.materialize()
        self.rows -= self.db.execute(f"DELETE FROM {self.name} WHERE _lsn = $1",
                                     [lsn]).fetchone()[0]

    def set_aside(self, lsn: int) -> "TableStage | None":
        """Move the rows of transaction `lsn` into a stage of their own, held under another
        name until `restore` (this stage is merged meanwhile); None when it has none."""
        self.materialize()
        kept = self.db.execute(f"SELECT count(*) FROM {self.name} WHERE _lsn = $1",
                               [lsn]).fetchone()[0]
        if not kept:
            return None
        held = TableStage(self.db, self.spec, False, kept, self.has_unchanged,
                          set(self.identities))
        self.db.execute(f"CREATE OR REPLACE TEMP TABLE {held._held_name} AS "
                        f"SELECT * FROM {self.name} WHERE _lsn = $1", [lsn])
        self.db.execute(f"DELETE FROM {self.name} WHERE _lsn = $1", [lsn])
        self.rows -= kept
        return held

    def restore(self) -> None:
        """A stage set aside takes the stage's name again."""
        self.db.execute(f"ALTER TABLE {self._held_name} RENAME TO {self.name}")

    def drop_sql(self) -> str:
        return f"DROP {'VIEW' if self.in_place else 'TABLE'} {self.name}"

    def release(self) -> None:
        """Unregister the chunks (once merged, or the batch rolled back)."""
        for chunk in self.chunks:
            self.db.unregister(chunk)
        self.chunks = []

    @property
    def _held_name(self) -> str:
        return quote(f"held_{self.spec.name}")

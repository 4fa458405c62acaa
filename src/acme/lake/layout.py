"""How the history looks in Iceberg: one append-only event table per source table.

Columns: the source columns (exact types: DECIMAL(p,s) stays decimal(p,s), TIMESTAMP is
timestamp, DATE is date), then
- `_valid_from` (timestamptz): the source commit time the event takes effect;
- `_op`: `snapshot` (initial copy), `insert`, `update`, or `delete` (a tombstone: only the key
  columns are set; a DELETE, a TRUNCATE or the old key of a key-changing UPDATE);
- `_lsn` (long): the commit LSN of the version; for a tombstone, the end LSN of the warehouse
  checkpoint that first held it (an upper bound: DuckDB's history does not keep a delete's LSN).

Rows are never updated, so `_valid_to` is derived: within a key, events are ordered by
EVENT_ORDER, and a version ends where the next event of its key starts:

    lead(_valid_from) OVER (PARTITION BY <key> ORDER BY <EVENT_ORDER>)

A table as of T is, per key, the last event (in EVENT_ORDER) with `_valid_from <= T`, unless it
is a tombstone. Snapshot rows come first whatever their time: a transaction still committing
when the copy was taken streams in after it with a commit time just before the copy's time, and
it is the newer state (DuckDB records the copied version as zero-length then).

Partitioning: `day(_valid_from)`. An as-of query reads only the days up to T, appends only
touch today's partition, and compaction merges small files within a day. Sort order within
files: `_valid_from`, then the key, so each file's `_valid_from` bounds are tight (file
pruning for as-of and for the tombstone check) and a key's events sit together.
"""

from typing import TYPE_CHECKING

import pyarrow as pa

if TYPE_CHECKING:
    from pyiceberg.partitioning import PartitionSpec
    from pyiceberg.schema import Schema
    from pyiceberg.table.sorting import SortOrder

BOOKKEEPING = ("_valid_from", "_op", "_lsn")
EVENT_ORDER = ("_op = 'snapshot' DESC", "_valid_from", "_op = 'delete'", "_lsn")
LSN_PROPERTY = "acme.lsn"  # snapshot summary: the warehouse checkpoint end LSN it reflects
COMMIT_TIME_PROPERTY = "acme.commit-time"  # ... and that checkpoint's source commit time
KEY_PROPERTY = "acme.key-columns"
PARTITION_NAME = "_valid_from_day"
TABLE_PROPERTIES = {
    "format-version": "2",
    # Each commit adds a manifest; merging keeps their number small without touching data.
    "commit.manifest-merge.enabled": "true",
    "write.metadata.delete-after-commit.enabled": "true",
    "write.metadata.previous-versions-max": "5",
    "write.parquet.compression-codec": "zstd",
}


def table_properties(key: tuple[str, ...]) -> dict[str, str]:
    return {**TABLE_PROPERTIES, KEY_PROPERTY: ",".join(key)}


def key_of(properties: dict[str, str]) -> tuple[str, ...]:
    return tuple(properties[KEY_PROPERTY].split(","))


def iceberg_layout(schema: pa.Schema, key: tuple[str, ...]) -> tuple["Schema",
                                                                       "PartitionSpec",
                                                                       "SortOrder"]:
    """The Iceberg schema of an event table (from its Arrow schema), its partitioning and
    its sort order."""
    from pyiceberg.catalog import Catalog
    from pyiceberg.partitioning import PartitionField, PartitionSpec
    from pyiceberg.schema import assign_fresh_schema_ids
    from pyiceberg.table.sorting import SortField, SortOrder
    from pyiceberg.transforms import DayTransform, IdentityTransform

    iceberg = assign_fresh_schema_ids(Catalog._convert_schema_if_needed(schema))
    valid_from = iceberg.find_field("_valid_from").field_id
    spec = PartitionSpec(PartitionField(source_id=valid_from, field_id=1000,
                                        transform=DayTransform(), name=PARTITION_NAME))
    order = SortOrder(*(SortField(source_id=iceberg.find_field(name).field_id,
                                  transform=IdentityTransform())
                        for name in ("_valid_from", *key)))
    return iceberg, spec, order


def summary(lsn: int, commit_time_iso: str | None) -> dict[str, str]:
    return {LSN_PROPERTY: str(lsn), COMMIT_TIME_PROPERTY: commit_time_iso or ""}

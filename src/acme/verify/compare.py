"""Compare the warehouse's `current` with the source, table by table, at a common point.

The source is read in one REPEATABLE READ snapshot together with its WAL position L. While a
pipeline follows the slot, the warehouse is read only once it has applied everything before L
(the slot's confirmed position, or the checkpoint, has reached L: both move only after the
DuckDB commit). It may then hold a few newer changes; the keys they touch differ, so every
differing key is re-checked, each round at a new common point, and only keys that differ in
every round are reported. Buckets of keys narrow a differing table down to its keys without
moving the whole table (see `fingerprint.py`).
"""

import time
from collections.abc import Iterable
from dataclasses import dataclass

import duckdb
import psycopg

from acme.capture.catalog import published_tables
from acme.errors import WarehouseError
from acme.lsn import format_lsn
from acme.source.connect import connect
from acme.verify.fingerprint import Dialect, Fingerprint
from acme.warehouse.store import warehouse_cursor
from acme.warehouse.tables import TableSpec, quote

SHOWN_KEYS = 20
DRILL_BUCKETS = 64  # keys are listed from at most this many differing buckets per table
RECHECK_LIMIT = 10_000  # more differing keys than this are no race with traffic
WAIT_POLL_SECONDS = 0.05


@dataclass(frozen=True)
class VerifyOptions:
    dsn: str
    slot: str
    publication: str
    rounds: int = 5
    catch_up_seconds: float = 60.0
    pause_seconds: float = 0.5


@dataclass(frozen=True)
class TableCheck:
    table: str
    key: tuple[str, ...]
    source_rows: int  # at the first comparison
    warehouse_rows: int
    differing_count: int
    differing_keys: tuple[str, ...]  # the first SHOWN_KEYS, as key text
    problem: str | None = None
    complete: bool = True  # False: more buckets differed than were drilled into


    @property
    def equal(self) -> bool:
        return self.problem is None and self.differing_count == 0

    def line(self) -> str:
        """One line saying how this table differs."""
        if self.problem:
            return f"{self.table}: {self.problem}"
        keys = ", ".join(f"{','.join(self.key)}={key}" for key in self.differing_keys)
        more = f" (and {self.differing_count - len(self.differing_keys)} more)" \
            if self.differing_count > len(self.differing_keys) else ""
        count = f"{self.differing_count}" if self.complete else f"at least {self.differing_count}"
        return (f"{self.table}: {count} differing rows (source "
                f"{self.source_rows:,} rows, warehouse {self.warehouse_rows:,}): {keys}{more}")


@dataclass(frozen=True)
class VerifyReport:
    checks: tuple[TableCheck, ...]
    source_lsn: str
    following: bool  # a pipeline was applying: compared at common points
    rounds: int

    @property
    def equal(self) -> bool:
        return all(check.equal for check in self.checks)

    def payload(self) -> dict:
        return {"equal": self.equal, "source_lsn": self.source_lsn,
                "following": self.following, "rounds": self.rounds,
                "tables": [{"table": c.table, "key": list(c.key), "source_rows": c.source_rows,
                            "warehouse_rows": c.warehouse_rows,
                            "differing_count": c.differing_count,
                            "differing_keys": list(c.differing_keys), "problem": c.problem,
                            "complete": c.complete,
                            "equal": c.equal, "line": c.line()} for c in self.checks]}


@dataclass(frozen=True)
class _Pair:
    """One table fingerprinted on both sides, over the columns both have."""

    source: Fingerprint
    warehouse: Fingerprint

    @property
    def name(self) -> str:
        return self.source.spec.name


def verify_warehouse(db: duckdb.DuckDBPyConnection, options: VerifyOptions) -> VerifyReport:
    """Compare every published table; `db` is the warehouse (read-only, or the live one)."""
    with connect(options.dsn, autocommit=True, application_name="acme-verify") as conn:
        pairs, missing = _pairs(conn, db, options.publication)
        following = _slot_active(conn, options.slot)
        lsn, totals, differing, partial = _first_round(conn, db, pairs, options, following)
        rounds = 1
        while rounds < options.rounds and any(differing.values()):
            time.sleep(options.pause_seconds)
            differing = _recheck(conn, db, pairs, differing, options, following)
            rounds += 1
    checks = [TableCheck(p.name, p.source.spec.key, *totals[p.name], len(differing[p.name]),
                         tuple(sorted(differing[p.name], key=_natural)[:SHOWN_KEYS]),
                         complete=p.name not in partial)
              for p in pairs]
    checks += [TableCheck(name, (), rows, 0, rows, (), "not in the warehouse; run `acme sync`")
               for name, rows in missing]
    return VerifyReport(tuple(sorted(checks, key=lambda c: c.table)), format_lsn(lsn),
                        following, rounds)


def _first_round(conn: psycopg.Connection, db: duckdb.DuckDBPyConnection, pairs: list[_Pair],
                 options: VerifyOptions, following: bool):
    """Whole tables: bucket sums on both sides, then the rows of differing buckets."""
    with conn.transaction():
        lsn = _snapshot(conn)
        source = {p.name: _sums(conn.execute(p.source.bucket_sums()).fetchall())
                  for p in pairs}
        if following:
            _wait_applied(conn, db, options, lsn)
        cursor = warehouse_cursor(db)
        try:
            cursor.execute("BEGIN TRANSACTION")
            totals, differing, partial = {}, {}, set()
            for pair in pairs:
                warehouse = _sums(cursor.execute(pair.warehouse.bucket_sums()).fetchall())
                totals[pair.name] = (sum(rows for rows, _ in source[pair.name].values()),
                                     sum(rows for rows, _ in warehouse.values()))
                buckets = sorted(b for b in source[pair.name].keys() | warehouse.keys()
                                 if source[pair.name].get(b) != warehouse.get(b))
                if len(buckets) > DRILL_BUCKETS:
                    buckets = buckets[:DRILL_BUCKETS]
                    partial.add(pair.name)
                differing[pair.name] = set()
                if buckets:
                    differing[pair.name] = _differing_keys(
                        conn.execute(pair.source.rows_in_buckets(buckets)).fetchall(),
                        cursor.execute(pair.warehouse.rows_in_buckets(buckets)).fetchall())
            cursor.execute("COMMIT")
        finally:
            cursor.close()
    return lsn, totals, differing, partial


def _recheck(conn: psycopg.Connection, db: duckdb.DuckDBPyConnection, pairs: list[_Pair],
             differing: dict[str, set[str]], options: VerifyOptions,
             following: bool) -> dict[str, set[str]]:
    """The differing keys again, at a new common point; returns those still differing."""
    to_check = {p.name: sorted(differing[p.name]) for p in pairs
                if 0 < len(differing[p.name]) <= RECHECK_LIMIT}
    with conn.transaction():
        lsn = _snapshot(conn)
        source = {p.name: conn.execute(p.source.rows_with_keys(), (to_check[p.name],))
                  .fetchall() for p in pairs if p.name in to_check}
        if following:
            _wait_applied(conn, db, options, lsn)
        cursor = warehouse_cursor(db)
        try:
            cursor.execute("BEGIN TRANSACTION")
            still = dict(differing)
            for pair in pairs:
                if pair.name in to_check:
                    warehouse = cursor.execute(pair.warehouse.rows_with_keys(),
                                               [to_check[pair.name]]).fetchall()
                    still[pair.name] = _differing_keys(source[pair.name], warehouse)
            cursor.execute("COMMIT")
        finally:
            cursor.close()
    return still


def _snapshot(conn: psycopg.Connection) -> int:
    """Start a REPEATABLE READ snapshot; the WAL write position is at or past every commit
    it sees (a synchronous commit is written before it becomes visible)."""
    conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
    return int(conn.execute("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn").fetchone()[0])


def _wait_applied(conn: psycopg.Connection, db: duckdb.DuckDBPyConnection,
                  options: VerifyOptions, lsn: int) -> None:
    """Until the pipeline has applied and committed everything before `lsn` (or stopped)."""
    deadline = time.monotonic() + options.catch_up_seconds
    while True:
        # pg_replication_slots reads shared memory: live even inside our snapshot.
        row = conn.execute(
            "SELECT confirmed_flush_lsn - '0/0'::pg_lsn, active FROM pg_replication_slots "
            "WHERE slot_name = %s", (options.slot,)).fetchone()
        cursor = warehouse_cursor(db)
        try:
            checkpoint = cursor.execute("SELECT end_lsn FROM _acme.checkpoint").fetchone()
        finally:
            cursor.close()
        reached = max(int(row[0] or 0) if row else 0, checkpoint[0] if checkpoint else 0)
        if reached >= lsn or row is None or not row[1]:
            return
        if time.monotonic() > deadline:
            raise WarehouseError(
                f"the warehouse did not reach the source's position {format_lsn(lsn)} within "
                f"{options.catch_up_seconds:.0f} s (it is at {format_lsn(reached)}); check "
                "`acme status` and try again")
        time.sleep(WAIT_POLL_SECONDS)


def _sums(rows: Iterable[tuple]) -> dict[int, tuple[int, int]]:
    return {int(bucket): (int(count), int(total)) for bucket, count, total in rows}


def _differing_keys(source: Iterable[tuple], warehouse: Iterable[tuple]) -> set[str]:
    """Keys present on one side only, or with different fingerprints."""
    left, right = dict(source), dict(warehouse)
    return {key for key in left.keys() | right.keys() if left.get(key) != right.get(key)}


def _natural(key: str) -> tuple:
    return (0, int(key), key) if key.lstrip("-").isdigit() else (1, 0, key)


def _slot_active(conn: psycopg.Connection, slot: str) -> bool:
    row = conn.execute("SELECT active FROM pg_replication_slots WHERE slot_name = %s",
                       (slot,)).fetchone()
    return bool(row and row[0])


def _pairs(conn: psycopg.Connection, db: duckdb.DuckDBPyConnection,
           publication: str) -> tuple[list[_Pair], list[tuple[str, int]]]:
    """Published tables the warehouse holds (over the columns both have), and those it
    lacks, with their source row counts."""
    held = _warehouse_specs(db)
    pairs, missing = [], []
    for table in published_tables(conn, publication):
        spec = held.get(table.spec.name)
        if spec is None:
            rows = conn.execute(f"SELECT count(*) FROM {table.qualified}").fetchone()[0]
            missing.append((table.spec.name, rows))
            continue
        source_columns = set(table.spec.column_names)
        shared = TableSpec(spec.name, tuple(c for c in spec.columns if c[0] in source_columns),
                           table.spec.key)
        pairs.append(_Pair(Fingerprint(shared, table.qualified, Dialect.postgres),
                           Fingerprint(shared, f"current.{quote(spec.name)}", Dialect.duckdb)))
    return pairs, missing


def _warehouse_specs(db: duckdb.DuckDBPyConnection) -> dict[str, TableSpec]:
    cursor = warehouse_cursor(db)
    try:
        if cursor.execute("SELECT 1 FROM _acme.checkpoint").fetchone() is None:
            raise WarehouseError("the warehouse holds no data yet (its initial snapshot is "
                                 "still running); try again once it is in")
        rows = cursor.execute(
            """SELECT t.name, t.key_columns, c.column_name, c.data_type
               FROM _acme.tables AS t JOIN information_schema.columns AS c
                 ON c.table_schema = 'current' AND c.table_name = t.name
               ORDER BY t.name, c.ordinal_position""").fetchall()
    except duckdb.CatalogException:
        raise WarehouseError("the warehouse holds no tables yet; run `acme sync` "
                             "first") from None
    finally:
        cursor.close()
    specs: dict[str, TableSpec] = {}
    for name, key, column, kind in rows:
        spec = specs.get(name, TableSpec(name, (), tuple(key)))
        specs[name] = TableSpec(name, spec.columns + ((column, kind),), spec.key)
    return specs

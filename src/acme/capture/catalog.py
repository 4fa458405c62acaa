"""What the source publishes, read from its catalog, and the checks CDC needs before it starts.

Every check turns a misconfiguration into one line saying what to change, before anything is
written: wal_level, the REPLICATION attribute, the publication, each published table's key,
and the slot (missing, wrong plugin, or in use by another consumer).
"""

from dataclasses import dataclass

import psycopg

from acme.config import mask_dsn
from acme.errors import AcmeError, SlotInUse, SourceMisconfigured, SourceRejected
from acme.source.connect import connect
from acme.warehouse.tables import TableSpec, duckdb_type, quote, warehouse_name


@dataclass(frozen=True)
class SourceTable:
    schema: str
    name: str  # in the source; `spec.name` is the warehouse's name for it
    spec: TableSpec

    @property
    def qualified(self) -> str:
        return f"{quote(self.schema)}.{quote(self.name)}"


@dataclass(frozen=True)
class SlotState:
    exists: bool
    active_pid: int | None


def check_source(conn: psycopg.Connection, dsn: str, slot: str, publication: str,
                 create_slot: bool) -> SlotState:
    """Raise an actionable error for anything that would stop CDC; return the slot's state."""
    where = mask_dsn(dsn)
    level = conn.execute("SHOW wal_level").fetchone()[0]
    if level != "logical":
        raise SourceMisconfigured(
            f"wal_level is '{level}' on {where}; set wal_level = logical "
            "(ALTER SYSTEM SET wal_level = logical) and restart the server")
    user, can_replicate = conn.execute(
        "SELECT current_user, rolreplication OR rolsuper FROM pg_roles "
        "WHERE rolname = current_user").fetchone()
    if not can_replicate:
        raise SourceRejected(
            f"user {user} lacks the REPLICATION attribute; run ALTER ROLE {user} REPLICATION "
            "as a superuser, or connect as a replication user")
    if conn.execute("SELECT 1 FROM pg_publication WHERE pubname = %s",
                    (publication,)).fetchone() is None:
        raise SourceMisconfigured(
            f"publication {publication} does not exist on {where}; create it "
            f"(CREATE PUBLICATION {publication} FOR TABLE ...) or run `acme source provision`")
    for table in published_tables(conn, publication):
        if not table.spec.key:
            raise SourceMisconfigured(
                f"published table {table.schema}.{table.name} has no primary key; "
                "add one (ALTER TABLE ... ADD PRIMARY KEY) so its changes can be keyed")
    row = conn.execute(
        "SELECT plugin, database, active_pid FROM pg_replication_slots WHERE slot_name = %s",
        (slot,)).fetchone()
    if row is None:
        if not create_slot:
            raise SourceMisconfigured(
                f"replication slot {slot} does not exist on {where}; create it "
                f"(SELECT pg_create_logical_replication_slot('{slot}', 'pgoutput')) "
                "or allow acme to create it")
        return SlotState(False, None)
    plugin, database, active_pid = row
    if plugin != "pgoutput":
        raise SourceMisconfigured(f"replication slot {slot} uses plugin {plugin}, not pgoutput; "
                                  "drop it or choose another slot")
    current_db = conn.execute("SELECT current_database()").fetchone()[0]
    if database != current_db:
        raise SourceMisconfigured(f"replication slot {slot} belongs to database {database}, "
                                  f"not {current_db}; connect to {database} or use another slot")
    if active_pid is not None:
        raise SlotInUse(slot_in_use(slot, describe_holder(conn, active_pid)))
    return SlotState(True, None)


def slot_in_use(slot: str, holder: str) -> str:
    return (f"replication slot {slot} is in use by {holder}; stop it, or give this warehouse "
            "its own slot with --slot")


def describe_holder(conn: psycopg.Connection, pid: int | str) -> str:
    """The client holding a walsender: its application name and address, as far as the
    server shows them to this user (the server process id alone names nobody)."""
    row = conn.execute(
        """SELECT application_name, host(client_addr), client_port FROM pg_stat_replication
           WHERE pid = %s""", (int(pid),)).fetchone() if str(pid).isdigit() else None
    if row is None:
        return f"another consumer (server pid {pid})"
    name, address, port = row
    who = f"'{name}'" if name else "an unnamed client"
    where = f" from {address}:{port}" if address else ""
    return f"{who}{where} (server pid {pid})"


def holder_of(dsn: str, slot: str, pid: int | str) -> str:
    """describe_holder over a fresh connection (the replication one cannot run queries)."""
    try:
        with connect(dsn, autocommit=True) as conn:
            return describe_holder(conn, pid)
    except (AcmeError, psycopg.Error):  # in use either way; the name is a courtesy
        return f"another consumer (server pid {pid})"


def published_tables(conn: psycopg.Connection, publication: str) -> list[SourceTable]:
    """Each published table with its columns (as DuckDB types) and primary key."""
    rows = conn.execute(
        """SELECT n.nspname, c.relname, c.oid FROM pg_publication_tables p
           JOIN pg_namespace n ON n.nspname = p.schemaname
           JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = p.tablename
           WHERE p.pubname = %s ORDER BY n.nspname, c.relname""", (publication,)).fetchall()
    tables = []
    for schema, name, oid in rows:
        columns = conn.execute(
            """SELECT attname, atttypid, atttypmod FROM pg_attribute
               WHERE attrelid = %s AND attnum > 0 AND NOT attisdropped ORDER BY attnum""",
            (oid,)).fetchall()
        spec = TableSpec(warehouse_name(schema, name),
                         tuple((c, duckdb_type(t, m)) for c, t, m in columns),
                         _primary_key(conn, oid))
        tables.append(SourceTable(schema, name, spec))
    return tables


def _primary_key(conn: psycopg.Connection, oid: int) -> tuple[str, ...]:
    rows = conn.execute(
        """SELECT a.attname FROM pg_index i
           JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, position) ON true
           JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
           WHERE i.indrelid = %s AND i.indisprimary ORDER BY k.position""",
        (oid,)).fetchall()
    return tuple(name for (name,) in rows)


class PrimaryKeys:
    """Reads a table's primary key from the source catalog when the stream first describes
    the table (a Relation message: once per table per connection, and after its DDL)."""

    def __init__(self, dsn: str):
        self.dsn = dsn

    def __call__(self, schema: str, table: str) -> tuple[str, ...]:
        with connect(self.dsn, autocommit=True) as conn:
            row = conn.execute(
                """SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                   WHERE n.nspname = %s AND c.relname = %s""", (schema, table)).fetchone()
            return () if row is None else _primary_key(conn, row[0])


@dataclass(frozen=True)
class SourcePosition:
    current_lsn: int
    slot_restart_lsn: int | None
    slot_confirmed_lsn: int | None


def source_position(conn: psycopg.Connection, slot: str) -> SourcePosition:
    """The source's WAL write position and how much of it the slot still retains."""
    row = conn.execute(
        """SELECT pg_current_wal_lsn() - '0/0'::pg_lsn,
                  (SELECT restart_lsn - '0/0'::pg_lsn FROM pg_replication_slots
                   WHERE slot_name = %s),
                  (SELECT confirmed_flush_lsn - '0/0'::pg_lsn FROM pg_replication_slots
                   WHERE slot_name = %s)""", (slot, slot)).fetchone()
    return SourcePosition(*(None if value is None else int(value) for value in row))

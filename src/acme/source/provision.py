"""Provisioning ACME's source exactly as ACME runs it, on any PostgreSQL server.

Creates (only what is missing) the two users, database `finance_db`, schema `operations` with
its four tables, the read-only grants for the CDC user, publication `cdc_publication` and the
pgoutput slot `cdc_pgoutput`. Every step reports whether it changed anything, so a second run
can say it changed nothing.
"""

from collections.abc import Callable
from dataclasses import dataclass

import psycopg
from psycopg import sql

from acme.config import (
    APP_PASSWORD,
    APP_USER,
    CDC_PASSWORD,
    CDC_USER,
    DATABASE,
    SCHEMA,
    mask_dsn,
    with_database,
)
from acme.errors import SourceMisconfigured, SourceRejected
from acme.source.connect import connect

SLOT = "cdc_pgoutput"
PUBLICATION = "cdc_publication"
TABLES = ("customers", "products", "orders", "order_items")

AUDIT_COLUMNS = """
    updated_at timestamp(3),
    updated_by bigint,
    created_at timestamp(3),
    created_by bigint"""

TABLE_DDL = {
    "customers": f"""
        CREATE TABLE operations.customers (
            customer_id bigserial PRIMARY KEY,
            customer_name varchar(500) NOT NULL,
            is_active boolean NOT NULL DEFAULT true,
            customer_address varchar(500),{AUDIT_COLUMNS})""",
    "products": f"""
        CREATE TABLE operations.products (
            product_id bigserial PRIMARY KEY,
            product_name varchar(500) NOT NULL,
            barcode varchar(26) NOT NULL,
            unity_price numeric NOT NULL,
            is_active boolean,{AUDIT_COLUMNS})""",
    "orders": f"""
        CREATE TABLE operations.orders (
            order_id bigserial PRIMARY KEY,
            order_date date,
            delivery_date date,
            customer_id bigint,
            status varchar,{AUDIT_COLUMNS})""",
    "order_items": f"""
        CREATE TABLE operations.order_items (
            order_item_id bigserial PRIMARY KEY,
            order_id bigint,
            product_id bigint,
            quanity integer,{AUDIT_COLUMNS})""",
}


@dataclass(frozen=True)
class Step:
    name: str
    changed: bool


def check_wal_level(conn: psycopg.Connection, where: str) -> None:
    level = conn.execute("SHOW wal_level").fetchone()[0]
    if level != "logical":
        raise SourceMisconfigured(
            f"wal_level is '{level}' on {where}; set wal_level = logical "
            "(ALTER SYSTEM SET wal_level = logical) and restart the server"
        )


def provision(admin_dsn: str, database: str = DATABASE, slot: str = SLOT,
              with_slot: bool = True) -> list[Step]:
    """Apply ACME's provisioning through a superuser DSN (database and slot names overridable)."""
    where = mask_dsn(admin_dsn)
    steps: list[Step] = []
    with connect(admin_dsn, autocommit=True) as admin:
        check_wal_level(admin, where)
        _require_superuser(admin, where)
        steps.append(_ensure_role(admin, APP_USER, APP_PASSWORD, replication=False))
        steps.append(_ensure_role(admin, CDC_USER, CDC_PASSWORD, replication=True))
        steps.append(_ensure_database(admin, database))
    with connect(with_database(admin_dsn, database), autocommit=True) as db:
        steps.append(_ensure_schema(db))
        steps.extend(_ensure_table(db, table) for table in TABLES)
        steps.append(_ensure_cdc_grants(db))
        steps.append(_ensure_publication(db))
        if with_slot:
            steps.append(_ensure_slot(db, slot))
    return steps


def _require_superuser(conn: psycopg.Connection, where: str) -> None:
    is_super = conn.execute(
        "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
    ).fetchone()[0]
    if not is_super:
        raise SourceRejected(
            f"provisioning needs a superuser; {where} is not one: connect as a superuser"
        )


def _step(name: str, exists: Callable[[], bool], create: Callable[[], None]) -> Step:
    if exists():
        return Step(name, changed=False)
    create()
    return Step(name, changed=True)


def _ensure_role(conn, name: str, password: str, replication: bool) -> Step:
    attributes = sql.SQL("LOGIN REPLICATION" if replication else "LOGIN")
    return _step(
        f"role {name}",
        lambda: _exists(conn, "SELECT 1 FROM pg_roles WHERE rolname = %s", name),
        lambda: conn.execute(
            sql.SQL("CREATE ROLE {} {} PASSWORD {}").format(
                sql.Identifier(name), attributes, sql.Literal(password)
            )
        ),
    )


def _ensure_database(conn, database: str) -> Step:
    return _step(
        f"database {database}",
        lambda: _exists(conn, "SELECT 1 FROM pg_database WHERE datname = %s", database),
        lambda: conn.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(database), sql.Identifier(APP_USER)
            )
        ),
    )


def _ensure_schema(conn) -> Step:
    return _step(
        f"schema {SCHEMA}",
        lambda: _exists(conn, "SELECT 1 FROM pg_namespace WHERE nspname = %s", SCHEMA),
        lambda: conn.execute(
            sql.SQL("CREATE SCHEMA {} AUTHORIZATION {}").format(
                sql.Identifier(SCHEMA), sql.Identifier(APP_USER)
            )
        ),
    )


def _ensure_table(conn, table: str) -> Step:
    def create() -> None:
        with conn.transaction():
            conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(APP_USER)))
            conn.execute(TABLE_DDL[table])

    return _step(
        f"table {SCHEMA}.{table}",
        lambda: _exists(conn, "SELECT to_regclass(%s) IS NOT NULL", f"{SCHEMA}.{table}"),
        create,
    )


def _ensure_cdc_grants(conn) -> Step:
    missing = conn.execute(
        """
        SELECT count(*) FROM unnest(%s::text[]) AS t(name)
        WHERE NOT has_table_privilege(%s, format('operations.%%I', name), 'SELECT')
           OR NOT has_schema_privilege(%s, 'operations', 'USAGE')
        """,
        (list(TABLES), CDC_USER, CDC_USER),
    ).fetchone()[0]

    def grant() -> None:
        user = sql.Identifier(CDC_USER)
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA operations TO {}").format(user))
        conn.execute(sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA operations TO {}").format(user))
        conn.execute(
            sql.SQL("ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA operations "
                    "GRANT SELECT ON TABLES TO {}").format(sql.Identifier(APP_USER), user)
        )

    return _step(f"read-only grants for {CDC_USER}", lambda: missing == 0, grant)


def _ensure_publication(conn) -> Step:
    tables = sql.SQL(", ").join(sql.Identifier(SCHEMA, table) for table in TABLES)

    def create() -> None:
        with conn.transaction():
            conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(APP_USER)))
            conn.execute(
                sql.SQL("CREATE PUBLICATION {} FOR TABLE {}").format(
                    sql.Identifier(PUBLICATION), tables
                )
            )

    return _step(
        f"publication {PUBLICATION}",
        lambda: _exists(conn, "SELECT 1 FROM pg_publication WHERE pubname = %s", PUBLICATION),
        create,
    )


def _ensure_slot(conn, slot: str) -> Step:
    return _step(
        f"replication slot {slot}",
        lambda: _exists(conn, "SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", slot),
        lambda: conn.execute(
            "SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (slot,)
        ),
    )


def _exists(conn, query: str, *params) -> bool:
    row = conn.execute(query, params).fetchone()
    return bool(row and row[0])

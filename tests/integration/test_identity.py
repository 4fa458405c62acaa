"""The warehouse key is the primary key, whatever the replica identity (DEFAULT, FULL, USING
INDEX): updates stay updates, deletes close the row, key changes move it (issue 11, case 6)."""

import duckdb
import psycopg
import pytest

from tests.fix_sync import sync_once

IDENTITY = {"default": "DEFAULT", "full": "FULL", "index": "USING INDEX things_code"}


def create_things(conn, identity: str) -> None:
    conn.execute(f"""
        CREATE TABLE operations.things (id bigint PRIMARY KEY, code text NOT NULL, note text);
        CREATE UNIQUE INDEX things_code ON operations.things (code);
        ALTER TABLE operations.things REPLICA IDENTITY {IDENTITY[identity]};
        GRANT SELECT ON operations.things TO cdc_user;
        ALTER PUBLICATION cdc_publication ADD TABLE operations.things;
        INSERT INTO operations.things
        SELECT g, 'c' || g, 'n' || g FROM generate_series(1, 6) AS g""")


def source_rows(conn) -> list[tuple]:
    return conn.execute("SELECT id, code, note FROM operations.things ORDER BY id").fetchall()


def warehouse_rows(path) -> tuple[list[tuple], list[tuple]]:
    with duckdb.connect(str(path), read_only=True) as store:
        current = store.execute("SELECT id, code, note FROM current.things ORDER BY id")
        current = current.fetchall()
        versions = store.execute(
            "SELECT id, code, note, _op, _valid_to IS NULL FROM history.things "
            "ORDER BY id, _valid_from, _valid_to NULLS LAST").fetchall()
    return current, versions


@pytest.mark.parametrize("kind", sorted(IDENTITY))
def test_changes_are_keyed_by_the_primary_key_whatever_the_replica_identity(
        kind, source_db, warehouse_path):
    with psycopg.connect(source_db.admin_dsn, autocommit=True) as conn:
        create_things(conn, kind)
        sync_once(source_db, warehouse_path)
        conn.execute("UPDATE operations.things SET note = 'edited' WHERE id = 1")
        conn.execute("UPDATE operations.things SET id = 20 WHERE id = 2")  # key, not identity
        conn.execute("UPDATE operations.things SET code = 'c30' WHERE id = 3")  # identity
        conn.execute("DELETE FROM operations.things WHERE id = 4")
        conn.execute("INSERT INTO operations.things VALUES (7, 'c7', 'n7')")
        conn.execute("UPDATE operations.things SET note = 'again' WHERE id = 7")
        conn.execute("DELETE FROM operations.things WHERE id = 7")  # inserted in the batch
        with conn.transaction():  # the freed code taken by another row, then deleted
            conn.execute("DELETE FROM operations.things WHERE id = 5")
            conn.execute("INSERT INTO operations.things VALUES (8, 'c5', 'n8')")
        conn.execute("DELETE FROM operations.things WHERE code = 'c5'")
        sync_once(source_db, warehouse_path)
        conn.execute("UPDATE operations.things SET note = 'later' WHERE id = 6")
        conn.execute("DELETE FROM operations.things WHERE id = 20")
        sync_once(source_db, warehouse_path)
        expected = source_rows(conn)
    current, versions = warehouse_rows(warehouse_path)
    assert current == expected == [(1, "c1", "edited"), (3, "c30", "n3"), (6, "c6", "later")]
    assert versions == [
        (1, "c1", "n1", "snapshot", False), (1, "c1", "edited", "update", True),
        (2, "c2", "n2", "snapshot", False),
        (3, "c3", "n3", "snapshot", False), (3, "c30", "n3", "update", True),
        (4, "c4", "n4", "snapshot", False),
        (5, "c5", "n5", "snapshot", False),
        (6, "c6", "n6", "snapshot", False), (6, "c6", "later", "update", True),
        (7, "c7", "n7", "insert", False), (7, "c7", "again", "update", False),
        (8, "c5", "n8", "insert", False),
        (20, "c2", "n2", "insert", False),
    ]


def test_a_table_first_seen_in_the_stream_is_keyed_by_its_primary_key(source_db,
                                                                      warehouse_path):
    with psycopg.connect(source_db.admin_dsn, autocommit=True) as conn:
        sync_once(source_db, warehouse_path)
        create_things(conn, "full")  # joins the publication after the snapshot
        conn.execute("UPDATE operations.things SET note = 'edited' WHERE id = 1")
        conn.execute("DELETE FROM operations.things WHERE id = 2")
        sync_once(source_db, warehouse_path)  # copies the table that joined: rows as now
        conn.execute("UPDATE operations.things SET note = 'again' WHERE id = 1")
        conn.execute("DELETE FROM operations.things WHERE id = 3")
        sync_once(source_db, warehouse_path)  # streamed (whole old rows): keyed by id
        with duckdb.connect(str(warehouse_path), read_only=True) as store:
            key = store.execute("SELECT key_columns FROM _acme.tables "
                                "WHERE name = 'things'").fetchone()
            versions = store.execute(
                "SELECT id, note, _op, _valid_to IS NULL FROM history.things "
                "ORDER BY id, _valid_from").fetchall()
    assert key == (["id"],)
    assert versions == [(1, "edited", "snapshot", False), (1, "again", "update", True),
                        (3, "n3", "snapshot", False),
                        *((i, f"n{i}", "snapshot", True) for i in range(4, 7))]

"""The SCD2 micro-batch apply against a real DuckDB file, with hand-made transactions: net
effect per row within a transaction, versions across transactions and batches, truncates,
unchanged TOAST, types, and atomicity."""

from datetime import UTC, datetime, timedelta

import pytest

from acme.capture.pgoutput import UNCHANGED, Column, Relation
from acme.capture.transactions import RowChange, TableTruncate
from acme.classification import StatusClassification
from acme.errors import UnstorableValue
from acme.warehouse import apply as apply_module
from acme.warehouse.apply import BatchApplier
from acme.warehouse.cluster import ROW_GROUP_ROWS, SCATTERED_GROUPS, groups_read_per_key
from acme.warehouse.stage import ChangeStager
from acme.warehouse.store import Checkpoint, Warehouse
from acme.warehouse.tables import TableSpec

T0 = datetime(2026, 1, 1, tzinfo=UTC)
PRODUCTS = Relation(1, "operations", "products", "d", (
    Column("product_id", 20, -1, True), Column("product_name", 1043, 504, False),
    Column("unity_price", 1700, -1, False), Column("created_at", 1114, 3, False),
    Column("launch", 1082, -1, False), Column("is_active", 16, -1, False)))
PRODUCTS_SPEC = TableSpec("products", (), ("product_id",))


def at(seconds: int) -> datetime:
    return T0 + timedelta(seconds=seconds)


def txn(second: int, *changes) -> tuple[int, tuple]:
    return second, changes


def row(pid: int, name: str | None, price: str = "1.00") -> RowChange:
    return RowChange(PRODUCTS, "I",
                     (str(pid), name, price, "2026-01-01 10:00:00.123", "2026-02-03", "t"))


def upd(pid: int, name, price: str = "1.00") -> RowChange:
    return RowChange(PRODUCTS, "U", row(pid, name, price).row)


def dele(pid: int) -> RowChange:
    return RowChange(PRODUCTS, "D", (str(pid), None, None, None, None, None))


@pytest.fixture
def warehouse(tmp_path):
    store = Warehouse.open(tmp_path / "w.duckdb")
    yield store
    store.close()


def apply(warehouse, *transactions, chunk_rows: int = 2, applier: BatchApplier | None = None,
          **applier_options):
    """Stage the transactions in small chunks, as the pipeline does, then commit them (with
    `applier`, or a new one)."""
    applier = applier or BatchApplier(warehouse, StatusClassification(), **applier_options)
    stager = ChangeStager(chunk_rows)
    try:
        for second, changes in transactions:
            for change in changes:
                if isinstance(change, TableTruncate):
                    for chunk in stager.drain():
                        applier.stage(chunk)
                    applier.truncate(change.relations, at(second))
                elif (chunk := stager.add(change, at(second), second * 100)) is not None:
                    applier.stage(chunk)
        for chunk in stager.drain():
            applier.stage(chunk)
        last = transactions[-1][0]
        return applier.commit(Checkpoint(last * 100 + 10, at(last), None))
    except BaseException:
        applier.abort()
        raise


def history(warehouse, pid: int):
    return warehouse.db.execute(
        "SELECT product_name, _valid_from, _valid_to, _op FROM history.products "
        "WHERE product_id = $1 ORDER BY _valid_from, _valid_to NULLS LAST", [pid]).fetchall()


def current(warehouse):
    return warehouse.db.execute(
        "SELECT product_id, product_name FROM current.products ORDER BY 1").fetchall()


def test_versions_chain_within_and_across_batches(warehouse):
    apply(warehouse, txn(1, row(1, "a")), txn(2, upd(1, "b")))
    apply(warehouse, txn(3, upd(1, "c")))
    assert history(warehouse, 1) == [("a", at(1), at(2), "insert"), ("b", at(2), at(3), "update"),
                                     ("c", at(3), None, "update")]
    assert current(warehouse) == [(1, "c")]


def test_delete_closes_the_last_version_and_leaves_current(warehouse):
    apply(warehouse, txn(1, row(1, "a"), row(2, "z")))
    apply(warehouse, txn(2, dele(1)))
    assert history(warehouse, 1) == [("a", at(1), at(2), "insert")]
    assert current(warehouse) == [(2, "z")]


def test_delete_and_reinsert_in_one_batch(warehouse):
    apply(warehouse, txn(1, row(1, "a")))
    apply(warehouse, txn(2, dele(1)), txn(3, row(1, "again")))
    assert history(warehouse, 1) == [("a", at(1), at(2), "insert"),
                                     ("again", at(3), None, "insert")]
    assert current(warehouse) == [(1, "again")]


def test_truncate_closes_everything_then_later_rows_start_fresh(warehouse):
    apply(warehouse, txn(1, row(1, "a"), row(2, "b")))
    apply(warehouse, txn(2, row(3, "c"), TableTruncate((PRODUCTS,)), row(4, "d")))
    assert history(warehouse, 1) == [("a", at(1), at(2), "insert")]
    assert history(warehouse, 3) == [("c", at(2), at(2), "insert")]
    assert current(warehouse) == [(4, "d")]


def test_exact_types_and_nulls(warehouse):
    # unconstrained numeric keeps PostgreSQL's exact text: every digit
    exact = "12345678901234567890.123456789012345678901"
    apply(warehouse, txn(1, row(1, None, exact)))
    value = warehouse.db.execute("SELECT * FROM current.products").fetchone()
    assert value == (1, None, exact,
                     datetime(2026, 1, 1, 10, 0, 0, 123000), datetime(2026, 2, 3).date(), True)


def test_unchanged_toast_keeps_the_current_value(warehouse):
    apply(warehouse, txn(1, row(1, "long name")))
    toast = RowChange(PRODUCTS, "U",
                      ("1", UNCHANGED, "2.00", "2026-01-01 10:00:00", "2026-02-03", "f"))
    apply(warehouse, txn(2, toast))
    assert warehouse.db.execute("SELECT product_name, unity_price, is_active FROM "
                                "current.products").fetchone() == ("long name", "2.00",
                                                                   False)
    assert [v[0] for v in history(warehouse, 1)] == ["long name", "long name"]


def test_added_column_appears_and_dropped_column_keeps_past_values(warehouse):
    apply(warehouse, txn(1, row(1, "a")))
    wider = Relation(1, "operations", "products", "d",
                     PRODUCTS.columns[:1] + (Column("barcode", 1043, -1, False),))
    apply(warehouse, txn(2, RowChange(wider, "U", ("1", "789"))))
    rows = warehouse.db.execute("SELECT product_name, barcode FROM history.products "
                                "ORDER BY _valid_from").fetchall()
    assert rows == [("a", None), (None, "789")]


# The value is found in the batch's kept chunks once the merge failed, or looked for first.
@pytest.mark.parametrize("kept_rows", [50_000, 0])
def test_checkpoint_commits_with_the_data_and_a_failed_batch_leaves_nothing(warehouse,
                                                                          monkeypatch,
                                                                          kept_rows):
    monkeypatch.setattr("acme.warehouse.apply.KEPT_ROWS", kept_rows)
    apply(warehouse, txn(1, row(1, "a")))
    assert warehouse.checkpoint().end_lsn == 110
    bad = RowChange(PRODUCTS, "I", ("2", "x", "1", "294300-01-01 00:00:00", None, None))
    with pytest.raises(UnstorableValue) as stopped:
        apply(warehouse, txn(2, row(3, "c")), txn(3, bad))
    assert str(stopped.value).startswith(
        "cannot store '294300-01-01 00:00:00' in products.created_at (TIMESTAMP) at LSN 0/12C;")
    message = str(stopped.value)
    assert "\n" not in message and 'ALTER TABLE open_versions."products"' in message
    assert warehouse.checkpoint().end_lsn == 110
    assert current(warehouse) == [(1, "a")]


def test_a_commit_older_than_the_version_it_closes_never_ends_it_before_it_starts(warehouse):
    # A transaction still committing when the copy's snapshot was taken arrives by the stream
    # with a commit time before the copied version's start.
    apply(warehouse, txn(10, row(1, "copied")))
    apply(warehouse, txn(5, upd(1, "committing during the copy")))
    assert history(warehouse, 1) == [("copied", at(5), at(5), "insert"),
                                     ("committing during the copy", at(5), None, "update")]


def test_a_row_touched_three_times_in_one_transaction_keeps_its_last_state(warehouse):
    apply(warehouse, txn(1, row(1, "a")))
    apply(warehouse, txn(2, upd(1, "b"), upd(1, "c"), upd(1, "d")))
    assert history(warehouse, 1) == [("a", at(1), at(2), "insert"), ("d", at(2), None, "update")]


def test_insert_then_update_is_an_insert_and_insert_then_delete_is_nothing(warehouse):
    apply(warehouse, txn(1, row(1, "a"), upd(1, "b"), row(2, "x"), dele(2)))
    assert history(warehouse, 1) == [("b", at(1), None, "insert")]
    assert history(warehouse, 2) == []
    assert current(warehouse) == [(1, "b")]


def test_delete_then_reinsert_in_one_transaction_is_an_update(warehouse):
    apply(warehouse, txn(1, row(1, "a")))
    apply(warehouse, txn(2, dele(1), row(1, "again")))
    assert history(warehouse, 1) == [("a", at(1), at(2), "insert"),
                                     ("again", at(2), None, "update")]


def test_unchanged_toast_comes_from_the_previous_image_in_the_batch(warehouse):
    apply(warehouse, txn(1, row(1, "old long name")))
    toast = RowChange(PRODUCTS, "U",
                      ("1", UNCHANGED, "3.00", "2026-01-01 10:00:00", "2026-02-03", "t"))
    # The name is set in one transaction and left unchanged in the next, in one batch.
    apply(warehouse, txn(2, upd(1, "new long name")), txn(3, toast))
    assert [v[0] for v in history(warehouse, 1)] == ["old long name", "new long name",
                                                     "new long name"]
    # A row inserted in the same batch has no current row to fall back on.
    apply(warehouse, txn(4, row(2, "born long")), txn(5, RowChange(PRODUCTS, "U", (
        "2", UNCHANGED, "4.00", "2026-01-01 10:00:00", "2026-02-03", "t"))))
    assert [v[0] for v in history(warehouse, 2)] == ["born long", "born long"]


# A big batch, and one whose windows are partitioned by key, or not.
@pytest.mark.parametrize(("big_batch_rows", "one_window_rows"),
                         [(1_000_000, 10**6), (1_000_000, 0), (1000, 0)])
# How open versions are taken: by DELETE ... RETURNING, by a scan, by scans of parts of the keys.
@pytest.mark.parametrize(("returning_rows", "keys_per_part"),
                         [(5_000, 10**6), (1000, 10**6), (1000, 150)])
def test_a_large_transaction_staged_in_many_chunks_applies_as_one(warehouse, monkeypatch,
                                                                 big_batch_rows, one_window_rows,
                                                                 returning_rows, keys_per_part):
    monkeypatch.setattr("acme.warehouse.apply.BIG_BATCH_ROWS", big_batch_rows)
    monkeypatch.setattr("acme.warehouse.apply.ONE_WINDOW_ROWS", one_window_rows)
    monkeypatch.setattr("acme.warehouse.apply.RETURNING_ROWS", returning_rows)
    monkeypatch.setattr("acme.warehouse.apply.KEYS_PER_PART", keys_per_part)
    settings = ("SELECT current_setting('threads'), current_setting('memory_limit'), "
                "current_setting('allocator_background_threads')")
    before = warehouse.db.execute(settings).fetchone()
    changes = [row(i, f"p{i}") for i in range(1, 1001)] + [upd(i, "edited") for i in range(1, 501)]
    assert apply(warehouse, txn(1, *changes), chunk_rows=97) == 1500
    assert warehouse.db.execute(settings).fetchone() == before  # a big batch's set back
    # Then a transaction over the same rows: their open versions are taken and closed.
    changes = [upd(i, "again") for i in range(401, 1001)] + [dele(i) for i in range(1, 101)]
    assert apply(warehouse, txn(2, *changes), chunk_rows=97) == 700
    assert warehouse.db.execute(
        "SELECT count(*), count(*) FILTER (product_name = 'edited'), "
        "count(*) FILTER (_valid_to IS NULL), count(*) FILTER (_valid_to = $1) "
        "FROM history.products", [at(2)]).fetchone() == (1600, 500, 900, 700)
    assert current(warehouse)[:2] == [(101, "edited"), (102, "edited")]
    assert warehouse.db.execute(
        "SELECT row_count FROM _acme.row_counts WHERE layer = 'current'").fetchone() == (900,)


def test_warehouse_names_of_source_tables_never_collide():
    from acme.warehouse.tables import warehouse_name

    tables = [("operations", "orders"), ("archive", "orders"), ("operations", "archive.orders"),
              ("archive.x", "orders"), ("archive", "x.orders"), ("a\\", "b"), ("a", "\\b"),
              ("operations", "a\\b"), ("operations.archive", "orders")]
    names = [warehouse_name(schema, table) for schema, table in tables]
    assert names[:2] == ["orders", "archive.orders"]
    assert len(set(names)) == len(names), names

@pytest.mark.parametrize("keys_per_part", [10**6, 1])  # looked up at once, or key by key
def test_a_composite_key_finds_its_rows(warehouse, monkeypatch, keys_per_part):
    monkeypatch.setattr("acme.warehouse.apply.RETURNING_ROWS", 0)
    monkeypatch.setattr("acme.warehouse.apply.KEYS_PER_PART", keys_per_part)
    shelves = Relation(2, "operations", "shelf_slots", "d", (
        Column("shelf", 20, -1, True), Column("slot", 23, -1, True),
        Column("label", 25, -1, False)))

    def change(op: str, shelf: int, slot: int, label: str | None) -> RowChange:
        return RowChange(shelves, op, (str(shelf), str(slot), label))

    apply(warehouse, txn(1, change("I", 1, 1, "a"), change("I", 1, 2, "b"),
                         change("I", 2, 1, "c")))
    # Same shelf, other slot; same slot, other shelf: only the exact pair is touched.
    apply(warehouse, txn(2, change("U", 1, 2, "b2"), change("D", 2, 1, None)),
          txn(3, change("U", 1, 2, "b3")))
    assert warehouse.db.execute(
        "SELECT shelf, slot, label, _valid_from, _valid_to FROM history.shelf_slots "
        "ORDER BY shelf, slot, _valid_from").fetchall() == [
        (1, 1, "a", at(1), None), (1, 2, "b", at(1), at(2)), (1, 2, "b2", at(2), at(3)),
        (1, 2, "b3", at(3), None), (2, 1, "c", at(1), at(2))]
    assert warehouse.db.execute(
        "SELECT shelf, slot, label FROM current.shelf_slots ORDER BY 1, 2").fetchall() == [
        (1, 1, "a"), (1, 2, "b3")]


def test_unchanged_toast_follows_the_row_to_its_new_key(warehouse):
    def moved(old: int, new: int, price: str) -> tuple[RowChange, RowChange]:
        # What the assembler makes of an update that changed the key and left the name
        # unchanged: a delete of the old key, then an insert of the new one.
        return (RowChange(PRODUCTS, "D", (str(old), None, None, None, None, None)),
                RowChange(PRODUCTS, "I", (str(new), UNCHANGED, price, "2026-01-01 10:00:00",
                                          "2026-02-03", "t")))

    apply(warehouse, txn(1, row(1, "long name from before the batch")))
    # From current (the old key's row before the batch).
    apply(warehouse, txn(2, *moved(1, 2, "2.00")))
    # From the old key's image earlier in the same batch, set in another transaction.
    apply(warehouse, txn(3, upd(2, "set in this batch")), txn(4, *moved(2, 3, "3.00")))
    assert history(warehouse, 2) == [("long name from before the batch", at(2), at(3), "insert"),
                                     ("set in this batch", at(3), at(4), "update")]
    assert history(warehouse, 3) == [("set in this batch", at(4), None, "insert")]
    assert current(warehouse) == [(3, "set in this batch")]


def test_a_warehouse_of_the_earlier_layout_is_converted_when_opened(tmp_path):
    """`history` and `current` used to be tables: opening the file for writing moves the
    versions into open and closed ones, behind views that read as before, and sync goes on."""
    path = tmp_path / "old.duckdb"
    store = Warehouse.open(path)
    apply(store, txn(1, row(1, "a"), row(2, "b")), txn(2, upd(1, "a2"), dele(2)))
    before = {table: store.db.execute(f"SELECT * FROM {table} ORDER BY ALL").fetchall()
              for table in ("history.products", "current.products")}
    for view in ("history", "current"):  # what the earlier layout held, as tables
        store.db.execute(f"CREATE TABLE {view}.old_products AS SELECT * FROM {view}.products")
    for statement in ("DROP VIEW history.products", "DROP VIEW current.products",
                      "DROP TABLE open_versions.products", "DROP TABLE closed_versions.products",
                      "ALTER TABLE history.old_products RENAME TO products",
                      "ALTER TABLE current.old_products RENAME TO products"):
        store.db.execute(statement)
    store.close()

    store = Warehouse.open(path)
    assert {table: store.db.execute(f"SELECT * FROM {table} ORDER BY ALL").fetchall()
            for table in before} == before
    assert store.db.execute("SELECT count(*) FROM closed_versions.products").fetchone()[0] == 2
    apply(store, txn(3, upd(1, "a3")))
    assert history(store, 1) == [("a", at(1), at(2), "insert"), ("a2", at(2), at(3), "update"),
                                 ("a3", at(3), None, "update")]
    store.close()


def _scatter_products(warehouse) -> int:
    """Open versions whose keys are scattered over every row group, as a long stream leaves
    them (each batch appends the keys it touched); returns how many."""
    rows = (SCATTERED_GROUPS + 12) * ROW_GROUP_ROWS
    warehouse.db.execute(f"""
        INSERT INTO open_versions.products (product_id, product_name, _valid_from, _op, _lsn)
        SELECT i, 'p' || i, '2026-01-01 00:00:01+00', 'insert', 100
        FROM (SELECT range + 2 AS i FROM range({rows}) ORDER BY hash(range))""")
    assert groups_read_per_key(warehouse.db, PRODUCTS_SPEC) > SCATTERED_GROUPS
    return rows


def test_a_table_found_scattered_when_sync_starts_is_rewritten_before_any_batch(warehouse):
    apply(warehouse, txn(1, row(1, "a")))
    rows = _scatter_products(warehouse)
    told = []
    BatchApplier(warehouse, StatusClassification(),
                 ordering=lambda table, groups: told.append(table))
    assert told == ["products"]
    assert groups_read_per_key(warehouse.db, PRODUCTS_SPEC) == pytest.approx(1.0, abs=0.2)
    apply(warehouse, txn(2, upd(5, "e")))
    assert history(warehouse, 5) == [("p5", at(1), at(2), "insert"), ("e", at(2), None, "update")]
    assert warehouse.db.execute("SELECT count(*) FROM current.products").fetchone()[0] == rows + 1


def test_a_table_gone_scattered_while_streaming_is_rewritten_by_a_batch(warehouse, monkeypatch):
    monkeypatch.setattr(apply_module, "ORDER_CHECK_SECONDS", 0)  # every batch looks
    apply(warehouse, txn(1, row(1, "a")))
    told = []
    applier = BatchApplier(warehouse, StatusClassification(),
                           ordering=lambda table, groups: told.append(table))
    rows = _scatter_products(warehouse)
    apply(warehouse, txn(2, upd(5, "e")), applier=applier)
    assert told == ["products"]
    assert groups_read_per_key(warehouse.db, PRODUCTS_SPEC) == pytest.approx(1.0, abs=0.2)
    assert history(warehouse, 5) == [("p5", at(1), at(2), "insert"), ("e", at(2), None, "update")]
    assert warehouse.db.execute("SELECT count(*) FROM current.products").fetchone()[0] == rows + 1


def test_chunks_read_in_place_and_chunks_appended_to_a_table_apply_alike(tmp_path, monkeypatch):
    """A batch that keeps its large chunks reads them where they lie (its stage a view over
    them) until one needs the stage changed (an unchanged TOAST value) or the batch stops
    keeping them: the stage then becomes a table holding them."""
    wider = Relation(1, "operations", "products", "d",
                     PRODUCTS.columns + (Column("barcode", 1043, -1, False),))
    toast = RowChange(PRODUCTS, "U",
                      ("2", UNCHANGED, "3.00", "2026-01-01 10:00:00", "2026-02-03", "t"))
    plain = [txn(1, row(1, "a"), row(2, "b"), row(3, "c")), txn(2, upd(1, "a2"), dele(3))]
    changing = [txn(3, toast, row(4, "d")), txn(4, TableTruncate((PRODUCTS,)), row(5, "e"))]
    widened = [txn(5, RowChange(wider, "I", (*row(6, "f").row, "123")), upd(5, "e2"))]
    monkeypatch.setattr("acme.warehouse.apply.IN_PLACE_ROWS", 1)  # chunks of two rows here
    histories, in_place = [], []
    for kept_rows in (300_000, 0):
        monkeypatch.setattr("acme.warehouse.apply.KEPT_ROWS", kept_rows)
        store = Warehouse.open(tmp_path / f"kept-{kept_rows}.duckdb")
        try:
            applier = BatchApplier(store, StatusClassification())
            stager = ChangeStager(2)
            for second, changes in plain:
                for change in changes:
                    if (chunk := stager.add(change, at(second), second * 100)) is not None:
                        applier.stage(chunk)
            in_place.append(store.db.execute(
                "SELECT count(*) FROM duckdb_views() WHERE view_name = 'rows_products'"
            ).fetchone()[0])
            for chunk in stager.drain():
                applier.stage(chunk)
            applier.commit(Checkpoint(210, at(2), None))
            apply(store, *changing)
            apply(store, *widened)
            histories.append(store.db.execute(
                "SELECT product_id, product_name, barcode, _valid_from, _valid_to, _op "
                "FROM history.products ORDER BY ALL").fetchall())
        finally:
            store.close()
    assert in_place == [1, 0]
    assert histories[0] == histories[1]
    assert [(r[0], r[1], r[2]) for r in histories[0] if r[4] is None] == [(5, "e2", None),
                                                                          (6, "f", "123")]
    assert ("b", at(3)) in [(r[1], r[3]) for r in histories[0] if r[0] == 2]  # TOAST kept b

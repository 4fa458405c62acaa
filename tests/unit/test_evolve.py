"""Planning DDL from the source catalog: renames by attnum, widened types, added values."""

from acme.capture.columns import CatalogColumn
from acme.warehouse.evolve import Known, plan, widened


def col(attnum, name, kind="INTEGER", xid=10, missing=None, has_missing=False, default=False):
    return CatalogColumn(attnum, name, kind, xid, missing, has_missing, default)


KNOWN = [Known(1, "id", "id", 10), Known(2, "a", "a", 10)]
WAREHOUSE = {"id": "BIGINT", "a": "INTEGER"}


def test_same_attnum_with_a_new_name_is_a_rename():
    steps = plan(KNOWN, WAREHOUSE, [col(1, "id", "BIGINT"), col(2, "b", xid=11)])
    assert steps.renames == [("a", "b")] and not steps.adds
    assert steps.record[1] == Known(2, "b", "a", 11)


def test_new_attnum_is_an_add_even_when_a_column_was_dropped():
    steps = plan(KNOWN, WAREHOUSE, [col(1, "id", "BIGINT"), col(3, "b", xid=12)])
    assert steps.renames == [] and steps.adds == [("b", "INTEGER")]
    assert steps.refills == [] and steps.constants == []  # no default: NULL is exact


def test_added_column_values_come_from_the_catalog_or_are_read_back():
    constant = col(3, "p", missing="5", has_missing=True, default=True)
    volatile = col(4, "t", xid=13, default=True)
    steps = plan(KNOWN, WAREHOUSE, [col(1, "id", "BIGINT"), col(2, "a"), constant, volatile])
    assert steps.constants == [constant] and steps.refills == [volatile]


def test_retyped_column_widens_and_is_read_back():
    retyped = col(2, "a", "DECIMAL(14,3)", xid=20)
    steps = plan(KNOWN, WAREHOUSE, [col(1, "id", "BIGINT"), retyped])
    assert steps.retypes == [("a", "DECIMAL(14,3)")] and steps.refills == [retyped]


def test_widened_types_hold_both_sides():
    assert widened("INTEGER", "DECIMAL(14,3)") == "DECIMAL(14,3)"
    assert widened("BIGINT", "DECIMAL(10,2)") == "DECIMAL(21,2)"
    assert widened("DECIMAL(14,3)", "INTEGER") == "DECIMAL(14,3)"
    assert widened("SMALLINT", "BIGINT") == "BIGINT"
    assert widened("DATE", "TIMESTAMP") == "TIMESTAMP"
    assert widened("BIGINT", "DECIMAL(38,30)") == "VARCHAR"
    assert widened("INTEGER", "VARCHAR") == "VARCHAR"


def test_one_type_under_two_names_is_not_a_change():
    # information_schema names what the PostgreSQL mapping calls REAL and TIMESTAMPTZ
    # otherwise: the same column must not be widened to text.
    assert widened("FLOAT", "REAL") == "FLOAT"
    assert widened("TIMESTAMP WITH TIME ZONE", "TIMESTAMPTZ") == "TIMESTAMP WITH TIME ZONE"
    assert widened("FLOAT", "DOUBLE") == "DOUBLE"

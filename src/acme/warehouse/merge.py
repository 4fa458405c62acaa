"""The SCD type 2 merge, as SQL generated from a table description. No I/O.

Streamed row changes are staged per table (`stage_table`: text values as received, plus `_seq`,
`_op`, `_commit_ts`, `_lsn`, `_unchanged`), then merged set-based:
The work tables are TEMP tables of the writer's connection: no reader sees them, committing
them costs nothing, and DuckDB spills them to disk past its memory limit, so a batch of any
size fits.
0. the touched keys' open versions are taken out of the open ones into `before_table`, so
   nothing after looks a key up again (a lookup is a scan of the table: DuckDB's ART indexes
   must stay in memory whole, which tens of millions of keys do not fit). A small batch takes
   them with one DELETE ... RETURNING, whose scan reads the key column only; a large one
   reads them in a scan, then deletes them (RETURNING fetches its rows one by one), a part
   of its keys at a time (`in_part`);
1. net changes (`net_table`): text cast to the column types; an unchanged-TOAST value taken
   from the row's previous image in the stage, else from `current`; one row per key and
   transaction (its net effect: the source's other sessions never saw the states in between),
   with the time the key changes next (`_next_ts`);
2. the touched keys' open versions move to the closed ones, ending at the key's first change
   (appended from `before_table`: the closed versions are never searched);
3. one new version per insert/update, valid until the key's next change: closed if the key
   changes again in the batch, else it is the key's open version (a delete leaves none).
"""

from acme.errors import UnstorableValue
from acme.lsn import format_lsn
from acme.warehouse.store import CLOSED, OPEN
from acme.warehouse.tables import (
    TableSpec,
    cast_sql,
    column_list,
    key_list,
    key_match,
    literal,
    quote,
    try_cast_sql,
)

VERSION_OP = "CASE _op WHEN 'I' THEN 'insert' ELSE 'update' END"
STAGE_BOOKKEEPING = (("_seq", "BIGINT"), ("_op", "VARCHAR"), ("_commit_ts", "TIMESTAMPTZ"),
                     ("_lsn", "UBIGINT"), ("_unchanged", "VARCHAR[]"), ("_by", "VARCHAR[]"))


def stage_table(spec: TableSpec) -> str:
    return quote(f"rows_{spec.name}")


def net_table(spec: TableSpec) -> str:
    return quote(f"net_{spec.name}")


def before_table(spec: TableSpec) -> str:
    return quote(f"before_{spec.name}")


def create_stage_sql(spec: TableSpec) -> str:
    columns = [f"{name} {kind}" for name, kind in STAGE_BOOKKEEPING]
    columns += [f"{quote(name)} VARCHAR" for name in spec.column_names]
    return f"CREATE OR REPLACE TEMP TABLE {stage_table(spec)} ({', '.join(columns)})"


Part = tuple[int, int]  # (index, count): the values whose hash is index modulo count


def in_part(values: str, part: Part | None) -> str:
    """SQL: whether `values` (a comma list of expressions) fall in `part` (always when None).

    A big batch looks its keys up part by part: DuckDB's hash join keeps a directory of the
    build side that it cannot spill, some 256 MB for 10M keys."""
    if part is None or part[1] == 1:
        return "true"
    return f"hash({values}) % {part[1]} = {part[0]}"


def _touched(spec: TableSpec, part: Part | None) -> str:
    """Whether an open version (`c`) has its key among the staged keys in `part`."""
    kinds = dict(spec.columns)
    cast = ", ".join(cast_sql(quote(k), kinds[k]) for k in spec.key)
    staged = f"FROM {stage_table(spec)} WHERE {in_part(cast, part)}"
    if len(spec.key) == 1:
        return f"c.{quote(spec.key[0])} IN (SELECT {cast} {staged})"
    # a row IN list, not EXISTS: DuckDB runs EXISTS here as a nested loop
    row = ", ".join(f"c.{quote(k)}" for k in spec.key)
    return f"({row}) IN (SELECT ({cast}) {staged})"


def take_touched_sql(spec: TableSpec, part: Part | None = None) -> str:
    """Delete the open versions of the staged keys in `part` (`add_touched_sql` has read them,
    or this statement returns them with RETURNING *)."""
    return f"DELETE FROM {OPEN}.{quote(spec.name)} AS c WHERE {_touched(spec, part)}"


def before_sql(spec: TableSpec, source: str | None = None) -> str:
    """`before_table(spec)`: the touched open versions `source` holds (the rows
    `take_touched_sql` returned), or none yet (`add_touched_sql` adds them)."""
    rows = source or f"{OPEN}.{quote(spec.name)} LIMIT 0"
    return (f"CREATE OR REPLACE TEMP TABLE {before_table(spec)} AS "
            f"SELECT true AS _touched, * FROM {rows}")


def add_touched_sql(spec: TableSpec, part: Part | None = None) -> str:
    """Add to `before_table(spec)` the open versions of the staged keys in `part`, by a scan."""
    return (f"INSERT INTO {before_table(spec)} SELECT true, * "
            f"FROM {OPEN}.{quote(spec.name)} AS c WHERE {_touched(spec, part)}")


def context_sql(spec: TableSpec, column: str, keys: str, columns: tuple[str, ...],
                part: Part | None = None) -> str:
    """Add to `before_table(spec)` the open versions whose `column` is among `keys` (a query of
    one column) in `part`, beside the touched ones (whose open versions are already taken),
    with `columns` only: the rest stays NULL. The keys are made distinct first: they repeat
    (the order of many items), and a join's directory grows with its build side."""
    names = ", ".join(quote(name) for name in columns)
    return f"""
        INSERT INTO {before_table(spec)} (_touched, {names})
        SELECT false, {', '.join(f'c.{quote(name)}' for name in columns)}
        FROM {OPEN}.{quote(spec.name)} AS c
        WHERE c.{quote(column)} IN (SELECT DISTINCT _key FROM ({keys}) AS k(_key)
                                    WHERE {in_part('_key', part)})"""


def find_key_sql(spec: TableSpec, identity: tuple[str, ...]) -> tuple[str, str]:
    """Rows named by their replica identity (`_by` = `identity`) get their key: from the
    latest earlier staged row holding those identity values, else from `current`. Then the
    rows whose key cannot be found (a row the warehouse never held) are dropped."""
    stage = stage_table(spec)
    kinds = dict(spec.columns)
    by_literal = "[" + ", ".join(literal(name) for name in identity) + "]"
    staged_match = " AND ".join(f"r.{quote(c)} = s.{quote(c)}" for c in identity)
    current_match = " AND ".join(
        f"{cast_sql(f'r.{quote(c)}', kinds[c])} = c.{quote(c)}" for c in identity)
    found = ", ".join(
        f"coalesce(s.{quote(k)}, CAST(c.{quote(k)} AS VARCHAR)) AS {quote(k)}" for k in spec.key)
    assign = ", ".join(f"{quote(k)} = f.{quote(k)}" for k in spec.key)
    return (
        f"""
        UPDATE {stage} AS t SET {assign}
        FROM (SELECT r._seq, {found}
              FROM (SELECT * FROM {stage} WHERE _by = {by_literal}) AS r
              ASOF LEFT JOIN (SELECT * FROM {stage} WHERE _by IS NULL AND _op <> 'D') AS s
                ON {staged_match} AND r._seq > s._seq
              LEFT JOIN {OPEN}.{quote(spec.name)} AS c ON {current_match}) AS f
        WHERE t._seq = f._seq""",
        f"DELETE FROM {stage} WHERE _by IS NOT NULL AND {quote(spec.key[0])} IS NULL")


def key_change_carry_sql(spec: TableSpec) -> str:
    """Unchanged-TOAST values of a row whose update changed its key (staged as a delete of the
    old key and, next in `_seq`, an insert of the new one: the only inserts with unchanged
    values): taken from the old key's latest earlier image in the stage, else from its row
    in `current` (`before_table`), so the value follows the row to its new key. A value the
    old key's image itself left unchanged is taken from `current`."""
    stage, kinds = stage_table(spec), dict(spec.columns)
    old = ", ".join(f"d.{quote(k)} AS {quote('_old_' + k)}" for k in spec.key)
    staged_match = " AND ".join(f"s.{quote(k)} = r.{quote('_old_' + k)}" for k in spec.key)
    current_match = " AND ".join(
        f"c.{quote(k)} = {cast_sql('r.' + quote('_old_' + k), kinds[k])}"
        for k in spec.key)
    found = ", ".join(
        f"CASE WHEN NOT list_contains(r._unchanged, {literal(name)}) THEN r.{quote(name)} "
        f"WHEN s._seq IS NOT NULL AND NOT coalesce(list_contains(s._unchanged, "
        f"{literal(name)}), false) THEN s.{quote(name)} "
        f"ELSE CAST(c.{quote(name)} AS VARCHAR) END AS {quote(name)}"
        for name in spec.column_names if name not in spec.key)
    assign = ", ".join(f"{quote(name)} = f.{quote(name)}"
                       for name in spec.column_names if name not in spec.key)
    return f"""
        UPDATE {stage} AS t SET {assign}, _unchanged = NULL
        FROM (SELECT r._seq, {found}
              FROM (SELECT i.*, {old} FROM {stage} AS i
                    JOIN {stage} AS d ON d._seq = i._seq - 1 AND d._op = 'D'
                    WHERE i._op = 'I' AND i._unchanged IS NOT NULL) AS r
              ASOF LEFT JOIN (SELECT * FROM {stage} WHERE _op <> 'D') AS s
                ON {staged_match} AND r._seq > s._seq
              LEFT JOIN (SELECT * FROM {before_table(spec)} WHERE _touched) AS c
                ON {current_match}) AS f
        WHERE t._seq = f._seq"""


def net_sql(spec: TableSpec, has_unchanged: bool, by_key: bool) -> str:
    """The staged changes, typed, one row per key and transaction, as `net_table(spec)`;
    `by_key`: its window is partitioned by key (see `window_sql`), else one ordered run."""
    keys = key_list(spec)
    if has_unchanged:
        # A value is wrapped in a struct so that an explicit NULL (a non-NULL struct) is told
        # apart from "unchanged" (a NULL struct) when carrying the last known value forward.
        # A delete carries no values: the row's values before it stay the last known ones.
        wrapped = ", ".join(
            f"{cast_sql(quote(name), kind)} AS {quote(name)}" if name in spec.key else
            f"CASE WHEN _op = 'D' OR list_contains(_unchanged, {literal(name)}) THEN NULL "
            f"ELSE {{'v': {cast_sql(quote(name), kind)}}} END AS {quote(name)}"
            for name, kind in spec.columns)
        # The window is named after the table: DuckDB refuses a window name defined twice in
        # one call, and the tables' statements are sent together (`deferred.py`).
        window = quote(f"w_{spec.name}")
        carried = ", ".join(
            f"s.{quote(name)}" if name in spec.key else
            f"coalesce(last_value(s.{quote(name)} IGNORE NULLS) OVER {window}, "
            f"{{'v': c.{quote(name)}}}).v AS {quote(name)}"
            for name in spec.column_names)
        typed = f"""
            SELECT s._seq, s._op, s._commit_ts, s._lsn, {carried}
            FROM (SELECT _seq, _op, _commit_ts, _lsn, {wrapped}
                  FROM {stage_table(spec)}) AS s
            LEFT JOIN (SELECT * FROM {before_table(spec)} WHERE _touched) AS c
              ON {key_match(spec, 'c', 's')}
            WINDOW {window} AS (PARTITION BY {', '.join(f's.{quote(k)}' for k in spec.key)}
                         ORDER BY s._seq ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)"""
    else:
        values = ", ".join(f"{cast_sql(quote(name), kind)} AS {quote(name)}"
                           for name, kind in spec.columns)
        typed = f"SELECT _seq, _op, _commit_ts, _lsn, {values} FROM {stage_table(spec)}"
    # One row per key and transaction (its last), found by an aggregate and a join: a window
    # costs milliseconds even over a few rows (DuckDB 1.5), and a batch runs this at every
    # commit.
    key_columns = [f"t.{quote(k)}" for k in spec.key]
    window = quote(f"n_{spec.name}")
    return f"""
        CREATE OR REPLACE TEMP TABLE {net_table(spec)} AS
        WITH typed AS MATERIALIZED ({typed}),
             last AS (SELECT max(_seq) AS _seq, arg_min(_op, _seq) AS _first_op
                      FROM typed GROUP BY {keys}, _lsn)
        SELECT t._seq,
               CASE WHEN t._op = 'D' THEN 'D' WHEN l._first_op = 'I' THEN 'I' ELSE 'U' END AS _op,
               t._commit_ts, t._lsn, {', '.join(f't.{quote(c)}' for c in spec.column_names)},
               {next_in_run(key_columns, 't._commit_ts', window)} AS _next_ts
        FROM last AS l JOIN typed AS t ON t._seq = l._seq
        -- born and gone inside one transaction: never visible
        WHERE NOT (l._first_op = 'I' AND t._op = 'D')
        WINDOW {window_sql(window, key_columns, 't._seq', by_key)}"""


def window_sql(name: str, runs: list[str], order: str, by_run: bool) -> str:
    """A window `name` over runs of equal `runs` values (each in `order`): partitioned by them
    (`by_run`), or one partition ordered by them, then `order`, where a function reads across
    runs unless told not to (`next_in_run`). DuckDB pays some 20 us a partition, milliseconds
    for a batch's hundreds of keys, so a small batch takes the one partition; a big one its
    partitions: over one ordered partition, a 10M-row batch ran out of memory."""
    ordered = ", ".join([*runs, order])
    if by_run:
        return f"{name} AS (PARTITION BY {', '.join(runs)} ORDER BY {ordered})"
    return f"{name} AS (ORDER BY {ordered})"


def next_in_run(runs: list[str], value: str, window: str) -> str:
    """SQL: `value` of the next row of the same run in `window` (`window_sql`), or NULL."""
    same = " AND ".join(f"lead({run}) OVER {window} IS NOT DISTINCT FROM {run}" for run in runs)
    return f"CASE WHEN {same} THEN lead({value}) OVER {window} END"


def unstorable_sql(spec: TableSpec, rows: str, order: str = "_seq") -> str | None:
    """The first row of `rows` (PostgreSQL's text of each value, plus `_lsn`) holding a value
    its column's type cannot hold, as (column, value, lsn), in one scan; None when no column
    can refuse one (all VARCHAR)."""
    tests = [(name, f"({quote(name)} IS NOT NULL AND "
                    f"{try_cast_sql(quote(name), kind)} IS NULL)")
             for name, kind in spec.columns if kind.upper() != "VARCHAR"]
    if not tests:
        return None
    column = " ".join(f"WHEN {test} THEN {literal(name)}" for name, test in tests)
    value = " ".join(f"WHEN {test} THEN CAST({quote(name)} AS VARCHAR)" for name, test in tests)
    return f"""
        SELECT CASE {column} END, CASE {value} END, _lsn FROM {rows}
        WHERE {' OR '.join(test for _, test in tests)} ORDER BY {order} LIMIT 1"""


def unstorable_error(spec: TableSpec, found: tuple[str, str, int]) -> UnstorableValue:
    """The error naming the value `unstorable_sql` found: (column, value, lsn)."""
    column, value, lsn = found
    return UnstorableValue.at(spec.name, column, dict(spec.columns)[column], value,
                              format_lsn(lsn))


def merge_sql(spec: TableSpec) -> tuple[str, str, str]:
    """Statements merging the net changes into the versions, in order: add the touched keys'
    open versions before the batch (already taken from the open ones) to the closed ones,
    ending at the key's first change in the batch; add the batch's versions that end in it to
    the closed ones (returns the count), and the last of each key to the open ones (returns
    the count)."""
    table = quote(spec.name)
    net, before = net_table(spec), before_table(spec)
    keys, columns = key_list(spec), column_list(spec)
    return (
        # least(): a transaction still committing when the copy's snapshot was taken is
        # streamed, yet its commit time can precede the snapshot's time; the copied version
        # then ends at that commit and is moved to start there (zero length), never ending
        # before it starts.
        f"""
        INSERT INTO {CLOSED}.{table} ({columns}, _valid_from, _valid_to, _op, _lsn)
        SELECT {', '.join(f'b.{quote(c)}' for c in spec.column_names)},
               least(b._valid_from, f._first_ts), f._first_ts, b._op, b._lsn
        FROM {before} AS b
        JOIN (SELECT {keys}, min(_commit_ts) AS _first_ts FROM {net} GROUP BY {keys}) AS f
          ON {key_match(spec, 'b', 'f')}
        WHERE b._touched""",
        f"""
        INSERT INTO {CLOSED}.{table} ({columns}, _valid_from, _valid_to, _op, _lsn)
        SELECT {columns}, _commit_ts, _next_ts, {VERSION_OP}, _lsn
        FROM {net} WHERE _op <> 'D' AND _next_ts IS NOT NULL""",
        f"""
        INSERT INTO {OPEN}.{table} ({columns}, _valid_from, _op, _lsn)
        SELECT {columns}, _commit_ts, {VERSION_OP}, _lsn
        FROM {net} WHERE _op <> 'D' AND _next_ts IS NULL""",
    )


def close_open_sql(spec: TableSpec, at: str, where: str = "true") -> tuple[str, str]:
    """Every open version (`t`) matching `where` ends at `at` (SQL for a time): it moves to the
    closed versions (its start moved back to `at` if later), then leaves the open ones
    (returns the count)."""
    table, columns = quote(spec.name), column_list(spec)
    return (f"""
        INSERT INTO {CLOSED}.{table} ({columns}, _valid_from, _valid_to, _op, _lsn)
        SELECT {columns}, least(_valid_from, {at}), {at}, _op, _lsn
        FROM {OPEN}.{table} AS t WHERE {where}""",
            f"DELETE FROM {OPEN}.{table} AS t WHERE {where}")


def truncate_sql(spec: TableSpec) -> tuple[str, str]:
    """A TRUNCATE: every open version closes at parameter $1 (its commit time)."""
    return close_open_sql(spec, "$1")

"""The SCD type 2 merge, as SQL generated from a table description. No I/O.

A micro-batch of row changes for one table is staged (`stage_raw`: text values as received,
plus `_seq`, `_op`, `_commit_ts`, `_lsn`, `_unchanged`) and merged set-based:
1. typed stage: text cast to the column types; unchanged-TOAST values taken from `current`;
2. history: close each touched key's open version at its first change in the batch;
3. history: one new version per insert/update, valid until the key's next change in the batch;
4. current: replace each touched key by its last state (or drop it if that was a delete).
"""

from acme.warehouse.tables import TableSpec, quote

VERSION_OP = "CASE _op WHEN 'I' THEN 'insert' ELSE 'update' END"


def literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _key_match(spec: TableSpec, left: str, right: str) -> str:
    return " AND ".join(f"{left}.{quote(k)} = {right}.{quote(k)}" for k in spec.key)


def _keys(spec: TableSpec) -> str:
    return ", ".join(quote(k) for k in spec.key)


def _columns(spec: TableSpec) -> str:
    return ", ".join(quote(name) for name in spec.column_names)


def typed_stage_sql(spec: TableSpec, has_unchanged: bool) -> str:
    table = f"current.{quote(spec.name)}"
    if has_unchanged:
        values = ", ".join(
            f"CASE WHEN list_contains(r._unchanged, {literal(name)}) THEN c.{quote(name)} "
            f"ELSE CAST(r.{quote(name)} AS {kind}) END AS {quote(name)}"
            for name, kind in spec.columns)
        source = f"stage_raw AS r LEFT JOIN {table} AS c ON {_key_match(spec, 'c', 'r')}"
    else:
        values = ", ".join(f"CAST(r.{quote(name)} AS {kind}) AS {quote(name)}"
                           for name, kind in spec.columns)
        source = "stage_raw AS r"
    return f"""
        CREATE OR REPLACE TEMP TABLE stage AS
        SELECT r._seq, r._op, r._commit_ts, r._lsn, {values}
        FROM {source}"""


def merge_sql(spec: TableSpec) -> list[str]:
    """Statements merging the typed `stage` into history and current."""
    history = f"history.{quote(spec.name)}"
    current = f"current.{quote(spec.name)}"
    keys, columns = _keys(spec), _columns(spec)
    return [
        # least(): a transaction still committing when the copy's snapshot was taken is
        # streamed, yet its commit time can precede the snapshot's time; the copied version
        # then ends at that commit and is moved to start there (zero length), never ending
        # before it starts.
        f"""
        UPDATE {history} AS h
        SET _valid_to = f._first_ts, _valid_from = least(h._valid_from, f._first_ts)
        FROM (SELECT {keys}, min(_commit_ts) AS _first_ts FROM stage GROUP BY {keys}) AS f
        WHERE h._valid_to IS NULL AND {_key_match(spec, 'h', 'f')}""",
        f"""
        INSERT INTO {history} ({columns}, _valid_from, _valid_to, _op, _lsn)
        SELECT {columns}, _commit_ts, _next_ts, {VERSION_OP}, _lsn
        FROM (SELECT *, lead(_commit_ts) OVER (PARTITION BY {keys} ORDER BY _seq) AS _next_ts
              FROM stage)
        WHERE _op <> 'D'""",
        f"""
        DELETE FROM {current} AS c USING (SELECT DISTINCT {keys} FROM stage) AS s
        WHERE {_key_match(spec, 'c', 's')}""",
        f"""
        INSERT INTO {current} ({columns})
        SELECT {columns}
        FROM (SELECT * FROM stage
              QUALIFY row_number() OVER (PARTITION BY {keys} ORDER BY _seq DESC) = 1)
        WHERE _op <> 'D'""",
    ]


def truncate_sql(spec: TableSpec) -> tuple[str, str]:
    """A TRUNCATE: close every open version at parameter $1 (its commit time); empty current."""
    return (f"UPDATE history.{quote(spec.name)} SET _valid_to = $1, "
            "_valid_from = least(_valid_from, $1) WHERE _valid_to IS NULL",
            f"DELETE FROM current.{quote(spec.name)}")

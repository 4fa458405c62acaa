"""The report state as the values it takes over time, and the same recomputed from history."""

from datetime import UTC, datetime

from acme.warehouse.deferred import DeferringConnection
from acme.warehouse.report_state import STATE_TABLES, ReportState


def visible_state(db, since: datetime | None = None) -> dict[str, set]:
    """Every state table as the values each group takes over time (from `since`, when given):
    zero-length versions are never visible, and two versions with the same values back to
    back read as one (batches that share a commit time may split a version where a rebuild
    would not).

    `since` is where history begins: a transaction still committing when the initial copy's
    snapshot was taken has a commit time before it, and history then starts the copied
    version at that commit (zero length), so before that point neither is exact."""
    state = {}
    for table in STATE_TABLES:
        columns = table.columns
        start = "greatest(_valid_from, $since)"
        versions = db.execute(
            f"SELECT {', '.join(columns)}, {start}, _valid_to FROM {table.qualified} "
            f"WHERE _valid_to IS NULL OR _valid_to > {start} "
            f"ORDER BY {', '.join(g for g, _ in table.groups)}, _valid_from",
            {"since": since or datetime.min.replace(tzinfo=UTC)}).fetchall()
        merged: list[tuple] = []
        for version in versions:
            last = merged[-1] if merged else None
            if last and last[:-2] == version[:-2] and last[-1] == version[-2]:
                merged[-1] = last[:-1] + (version[-1],)
            else:
                merged.append(version)
        state[table.name] = set(merged)
        now = db.execute(f"SELECT {', '.join(columns)} FROM {table.now}").fetchall()
        open_versions = db.execute(f"SELECT {', '.join(columns)} FROM {table.qualified} "
                                   "WHERE _valid_to IS NULL").fetchall()
        assert sorted(now, key=repr) == sorted(open_versions, key=repr), \
            f"{table.now} differs from the open versions of {table.qualified}"
    return state


def rebuilt_state(db, classification, since: datetime | None = None) -> dict[str, set]:
    db.execute("BEGIN TRANSACTION")
    try:
        ReportState(DeferringConnection(db), classification).rebuild()
        return visible_state(db, since)
    finally:
        db.execute("ROLLBACK")

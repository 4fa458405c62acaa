"""The report state as the values it takes over time, and the same recomputed from history."""

from acme.warehouse.report_state import STATE_TABLES, ReportState


def visible_state(db) -> dict[str, set]:
    """Every state table as the values each group takes over time: zero-length versions are
    never visible, and two versions with the same values back to back read as one (batches
    that share a commit time may split a version where a rebuild would not)."""
    state = {}
    for table in STATE_TABLES:
        versions = db.execute(
            f"SELECT * FROM {table.qualified} WHERE _valid_to IS NULL OR _valid_to > _valid_from "
            f"ORDER BY {', '.join(g for g, _ in table.groups)}, _valid_from").fetchall()
        merged: list[tuple] = []
        for version in versions:
            last = merged[-1] if merged else None
            if last and last[:-2] == version[:-2] and last[-1] == version[-2]:
                merged[-1] = last[:-1] + (version[-1],)
            else:
                merged.append(version)
        state[table.name] = set(merged)
    return state


def rebuilt_state(db, classification) -> dict[str, set]:
    db.execute("BEGIN TRANSACTION")
    try:
        ReportState(db, classification).rebuild()
        return visible_state(db)
    finally:
        db.execute("ROLLBACK")

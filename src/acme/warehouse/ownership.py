"""A warehouse knows its source, and refuses to carry on with a hole.

A replication slot has one reader: whatever a second reader consumes, the first never sees.
So a warehouse records the source it was built from (cluster system identifier, database,
slot, publication) and refuses another. It also records every position it confirms to the
slot *before* confirming it; if the slot's confirmed position is later found beyond that,
someone else consumed changes from the slot, and the warehouse refuses to continue, saying
how many bytes of WAL the other reader took and how to rebuild.

Pure logic: the comparisons and their messages, unit-tested without a server.
"""

from dataclasses import dataclass
from pathlib import Path

from acme.errors import WarehouseError
from acme.lsn import format_lsn

RESNAPSHOT_HINT = "rebuild it with `acme sync --resnapshot`"


@dataclass(frozen=True)
class SourceIdentity:
    system_identifier: str
    database: str
    slot: str
    publication: str

    def describe(self) -> str:
        return (f"slot {self.slot} and publication {self.publication} of database "
                f"{self.database} on system {self.system_identifier}")


class ForeignSource(WarehouseError):
    """The warehouse was built from another source, slot or publication."""


class SlotConsumedElsewhere(WarehouseError):
    """The slot moved past what this warehouse applied or confirmed: changes are missing."""


def check_same_source(path: Path, recorded: SourceIdentity, actual: SourceIdentity) -> None:
    if recorded == actual:
        return
    differences = [f"{name} {getattr(recorded, name)} (asked: {getattr(actual, name)})"
                   for name in ("system_identifier", "database", "slot", "publication")
                   if getattr(recorded, name) != getattr(actual, name)]
    raise ForeignSource(
        f"the warehouse {path} was built from another source: {'; '.join(differences)}; "
        f"use the settings it was built with, another --warehouse, or {RESNAPSHOT_HINT}")


def check_no_gap(path: Path, slot: str, slot_confirmed: int | None,
                 warehouse_position: int | None) -> None:
    """Refuse when the slot was confirmed beyond the furthest position this warehouse
    applied or confirmed (None: unknown, as for a warehouse older than this check)."""
    gap = consumed_elsewhere(path, slot, slot_confirmed, warehouse_position)
    if gap is not None:
        raise SlotConsumedElsewhere(gap)


def consumed_elsewhere(path: Path, slot: str, slot_confirmed: int | None,
                       warehouse_position: int | None) -> str | None:
    """What another reader took from the slot, in one line, or None. Read the slot's
    position before the warehouse's: a running sync records a position before confirming it."""
    if slot_confirmed is None or warehouse_position is None:
        return None
    lost = slot_confirmed - warehouse_position
    if lost <= 0:
        return None
    return (f"replication slot {slot} was consumed by another reader up to "
            f"{format_lsn(slot_confirmed)}, past this warehouse's "
            f"{format_lsn(warehouse_position)}: {lost:,} bytes of WAL went to it, so {path} is "
            f"missing changes; {RESNAPSHOT_HINT}, and give each warehouse its own --slot")

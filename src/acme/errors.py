"""The one error hierarchy.

Every error a user can cause is an `AcmeError` whose message is one line saying what is wrong
and what to do. Each is also marked transient (worth retrying: the network dropped) or terminal
(retrying cannot help: wrong password), so one retry loop can decide from the kind alone.
"""


class AcmeError(Exception):
    """Base of every error the user can act on. str(error) is the one line to show."""


class TransientError(AcmeError):
    """Retrying later may succeed (connection lost, server restarting)."""


class TerminalError(AcmeError):
    """Retrying cannot succeed until the user changes something."""


class ConfigError(TerminalError):
    """A setting, flag or parameter is invalid."""


class EmbeddedServerError(TerminalError):
    """The embedded PostgreSQL cannot be started, stopped or found as asked."""


class SourceUnreachable(TransientError):
    """The source server does not answer."""


class SourceRejected(TerminalError):
    """The source server answered but refuses (authentication, privilege, missing object)."""


class SlotInUse(SourceRejected):
    """Another consumer holds the replication slot (after a network cut: the old walsender)."""


class SourceMisconfigured(TerminalError):
    """The source server runs with settings CDC cannot work with (wal_level, slots)."""


class SeedError(TerminalError):
    """The source cannot be seeded as asked."""


class WarehouseError(TerminalError):
    """The DuckDB warehouse file cannot be used as asked."""


class OutputError(TerminalError):
    """An answer cannot be written where it was asked to go."""


class LakeError(TerminalError):
    """The Iceberg lake cannot be used as asked (extra not installed, catalog refused)."""


class UnstorableValue(WarehouseError):
    """A source value the warehouse column cannot hold: sync stops before applying it."""

    @classmethod
    def at(cls, table: str, column: str, kind: str, value: str, lsn: str) -> "UnstorableValue":
        shown = value if len(value) <= 60 else value[:57] + "..."
        shown = shown.replace("\n", "\\n").replace("\r", "\\r")
        return cls(
            f"cannot store {shown!r} in {table}.{column} ({kind}) at LSN {lsn}; nothing from "
            f"that transaction on was applied: widen the warehouse column (ALTER TABLE "
            f"open_versions.\"{table}\" ALTER COLUMN \"{column}\" TYPE VARCHAR, and the same "
            f"for closed_versions.\"{table}\") or fix the value in the source, then run "
            f"`acme sync` again")

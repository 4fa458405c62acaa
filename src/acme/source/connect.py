"""Opening connections to the source, with failures turned into one actionable line.

Every connection is named (`application_name`, so `pg_stat_activity` and
`pg_stat_replication` say which acme process holds it) and bounded in time: a connect
timeout, TCP keepalives, and a TCP user timeout, so a path that dies silently (no FIN, no
RST) is noticed by the kernel instead of hanging a call forever.
"""

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from acme.config import mask_dsn
from acme.errors import ConfigError, SourceRejected, SourceUnreachable

# libpq parameters for every source connection: give up connecting after 10 s; probe an idle
# connection after 10 s, every 5 s, 3 times; drop one whose sent data stays unacknowledged
# for 30 s. A dead path is then noticed within about half a minute.
TIMEOUTS = {"connect_timeout": 10, "keepalives": 1, "keepalives_idle": 10,
            "keepalives_interval": 5, "keepalives_count": 3, "tcp_user_timeout": 30_000}
DEFAULT_APPLICATION = "acme"


NAME_BYTES = 63  # PostgreSQL keeps this much of a name (and says so on stderr when cut)


def short_name(name: str) -> str:
    """The name as PostgreSQL will keep it: a long one keeps its first word pair (`acme sync`)
    and its end, where the warehouse file is named."""
    if len(name.encode()) <= NAME_BYTES:
        return name
    head = " ".join(name.split(" ")[:2]) + " ..."
    room = NAME_BYTES - len(head.encode())
    return head + name.encode()[-room:].decode(errors="ignore")


def conninfo(dsn: str, application_name: str = DEFAULT_APPLICATION, **extra) -> str:
    """The DSN with our timeouts and name (settings the DSN itself gives win)."""
    try:
        given = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError as error:
        raise ConfigError(f"invalid DSN {mask_dsn(dsn)}: {_first_line(error)}") from None
    defaults = {**TIMEOUTS, "application_name": short_name(application_name), **extra}
    return make_conninfo(dsn, **{k: v for k, v in defaults.items() if k not in given})


def connect(dsn: str, application_name: str = DEFAULT_APPLICATION,
            **kwargs) -> psycopg.Connection:
    """A psycopg connection, or an AcmeError that says what to fix."""
    try:
        return psycopg.connect(conninfo(dsn, application_name), **kwargs)
    except psycopg.ProgrammingError as error:
        raise ConfigError(f"invalid DSN {mask_dsn(dsn)}: {_first_line(error)}") from None
    except psycopg.OperationalError as error:
        raise classify_connect_error(dsn, error) from None


def classify_connect_error(dsn: str, error: Exception) -> Exception:
    """Map a libpq connection failure to our error tree."""
    text = _first_line(error)
    where = mask_dsn(dsn)
    lowered = str(error).lower()
    if "password authentication failed" in lowered or "no password supplied" in lowered:
        return SourceRejected(f"authentication failed for {where}: check the user and password")
    if "does not exist" in lowered:
        return SourceRejected(f"cannot connect to {where}: {text}")
    if "no pg_hba.conf entry" in lowered or "permission denied" in lowered:
        return SourceRejected(f"the server refuses {where}: {text}")
    if "invalid" in lowered and "dsn" in lowered or "missing" in lowered and "=" in lowered:
        return ConfigError(f"invalid DSN {where}: {text}")
    return SourceUnreachable(f"cannot reach {where}: {text}")


def _first_line(error: Exception) -> str:
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    # libpq prefixes the interesting line with 'connection to server at ... failed:'
    return lines[-1] if lines else type(error).__name__

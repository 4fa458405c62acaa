"""Opening connections to the source, with failures turned into one actionable line."""

import psycopg

from acme.config import mask_dsn
from acme.errors import ConfigError, SourceRejected, SourceUnreachable


def connect(dsn: str, **kwargs) -> psycopg.Connection:
    """A psycopg connection, or an AcmeError that says what to fix."""
    try:
        return psycopg.connect(dsn, connect_timeout=10, **kwargs)
    except psycopg.ProgrammingError as error:
        raise ConfigError(f"invalid DSN {mask_dsn(dsn)}: {_first_line(error)}") from None
    except psycopg.OperationalError as error:
        raise classify_connect_error(dsn, error) from None


def classify_connect_error(dsn: str, error: Exception) -> Exception:
    """Map a libpq connection failure to our error tree (shared by psycopg and psycopg2)."""
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

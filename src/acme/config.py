"""Settings: environment (ACME_*), an optional TOML file, then flags, each overriding the last.

Passwords live inside DSNs; `mask_dsn` is the only way a DSN is ever shown.
"""

from dataclasses import dataclass
from pathlib import Path

import platformdirs
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

DEFAULT_PORT = 55432
DATABASE = "finance_db"
SCHEMA = "operations"
APP_USER, APP_PASSWORD = "finance_db_user", "1234"
CDC_USER, CDC_PASSWORD = "cdc_user", "cdc_1234"
DEFAULT_TERMINAL_STATUSES = (
    "COMPLETED",
    "DELIVERED",
    "CANCELLED",
    "CANCELED",
    "REJECTED",
    "RETURNED",
)


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("acme")) / "source"


@dataclass(frozen=True)
class SourceAddress:
    """Where an ACME source listens, and the URLs of its two users there."""

    port: int = DEFAULT_PORT
    database: str = DATABASE
    host: str = "127.0.0.1"

    def dsn(self, user: str, password: str) -> str:
        return f"postgresql://{user}:{password}@{self.host}:{self.port}/{self.database}"

    @property
    def app_dsn(self) -> str:
        return self.dsn(APP_USER, APP_PASSWORD)

    @property
    def cdc_dsn(self) -> str:
        return self.dsn(CDC_USER, CDC_PASSWORD)


def embedded_dsn(user: str, password: str, port: int = DEFAULT_PORT) -> str:
    return SourceAddress(port).dsn(user, password)


def mask_dsn(dsn: str) -> str:
    """The DSN as a URL with its password replaced by ***."""
    try:
        parts = conninfo_to_dict(dsn)
    except Exception:
        return "<unparsable DSN>"
    user = parts.get("user", "")
    secret = ":***" if parts.get("password") else ""
    host = parts.get("host", "localhost")
    port = parts.get("port", "5432")
    dbname = parts.get("dbname", "")
    return f"postgresql://{user}{secret}@{host}:{port}/{dbname}"


def with_database(dsn: str, dbname: str) -> str:
    return make_conninfo(dsn, dbname=dbname)


class Settings(BaseSettings):
    """Everything the pipeline needs to know, with defaults that run against the embedded source."""

    model_config = SettingsConfigDict(
        env_prefix="ACME_", toml_file="acme.toml", extra="ignore", hide_input_in_errors=True
    )

    source_dsn: str = embedded_dsn(CDC_USER, CDC_PASSWORD)
    app_dsn: str = embedded_dsn(APP_USER, APP_PASSWORD)
    warehouse: Path = Path("acme.duckdb")
    slot: str = "cdc_pgoutput"
    publication: str = "cdc_publication"
    terminal_statuses: tuple[str, ...] = DEFAULT_TERMINAL_STATUSES
    pending_statuses: tuple[str, ...] = ()  # empty: pending means open
    lake: str | None = None  # a directory (embedded Iceberg catalog) or catalog:NAME
    lake_interval: float = 10.0  # seconds between lake commits
    api_host: str = "127.0.0.1"
    api_port: int = 8000

    def __repr__(self) -> str:
        return (
            f"Settings(source_dsn={mask_dsn(self.source_dsn)!r}, "
            f"app_dsn={mask_dsn(self.app_dsn)!r}, warehouse={str(self.warehouse)!r}, "
            f"slot={self.slot!r}, publication={self.publication!r})"
        )

    __str__ = __repr__

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # flags (init) > environment > acme.toml
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))

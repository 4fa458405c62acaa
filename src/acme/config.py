"""Settings: environment (ACME_*), an optional TOML file, then flags, each overriding the last.

Passwords live inside DSNs; `mask_dsn` is the only way a DSN is ever shown.
"""

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

import platformdirs
import pydantic
from psycopg import ProgrammingError
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from pydantic import Field, SecretStr
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)

from acme.errors import ConfigError

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
    api_port: int = Field(8000, ge=1, le=65535)
    api_token: SecretStr | None = None  # when set, the API asks for it as a bearer token
    # `acme serve` paces report answers so they never starve its sync (api/pacing.py); 0: unpaced
    api_reads_per_second: float = Field(500.0, ge=0)

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


SETTINGS_FILE = "acme.toml"
MAX_NAME_BYTES = 63  # PostgreSQL's NAMEDATALEN - 1: longer names are silently cut
SLOT_NAME = re.compile(r"[a-z0-9_]+")


def load_settings() -> Settings:
    """The settings, or a ConfigError naming the broken setting and where it came from."""
    try:
        return Settings()
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{SETTINGS_FILE} is not valid TOML ({error}); fix or remove "
                          "it") from None
    except SettingsError as error:
        field = str(error).split("field", 1)[-1].split("from source")[0].strip(' "') or "list"
        raise ConfigError(f"setting {field} cannot be parsed; list settings take JSON in the "
                          f"""environment, e.g. ACME_{field.upper()}='["DELIVERED"]'""") from None
    except pydantic.ValidationError as error:
        problem = error.errors()[0]
        name = ".".join(str(part) for part in problem["loc"][:1]) or "a setting"
        raise ConfigError(f"setting {name} (ACME_{name.upper()} or {SETTINGS_FILE}) is "
                          f"invalid: {problem['msg']}") from None


def check_slot_name(slot: str) -> str:
    if not SLOT_NAME.fullmatch(slot):
        raise ConfigError(f"slot name {slot!r} is invalid; use lower-case letters, digits and "
                          "underscores (e.g. --slot cdc_pgoutput_2)")
    if len(slot) > MAX_NAME_BYTES:
        raise ConfigError(f"slot name is {len(slot)} characters; PostgreSQL allows at most "
                          f"{MAX_NAME_BYTES}: choose a shorter --slot")
    return slot


def check_publication_name(publication: str) -> str:
    if not publication:
        raise ConfigError("the publication name is empty; pass --publication NAME")
    if len(publication.encode()) > MAX_NAME_BYTES:
        raise ConfigError(f"publication name is {len(publication.encode())} bytes; PostgreSQL "
                          f"allows at most {MAX_NAME_BYTES}")
    return publication


def check_dsn(dsn: str, flag: str = "--dsn") -> str:
    if not dsn.strip():
        raise ConfigError(f"the database URL is empty; pass {flag} postgresql://user:password@"
                          "host:port/database, or leave the flag out to use the configured one")
    try:
        conninfo_to_dict(dsn)
    except ProgrammingError as error:
        raise ConfigError(f"invalid database URL {mask_dsn(dsn)}: "
                          f"{str(error).strip().splitlines()[0]}") from None
    return dsn


def check_warehouse_path(path: Path, must_exist: bool = False) -> Path:
    """A usable DuckDB file path: not empty, not a directory, in a directory that exists."""
    if str(path) in ("", ".") or path.is_dir():
        raise ConfigError(f"warehouse path {str(path)!r} is a directory, not a file; pass "
                          "--warehouse FILE (e.g. acme.duckdb)")
    if not path.parent.is_dir():
        raise ConfigError(f"the directory of warehouse {path} does not exist; create it or "
                          "choose another --warehouse")
    if must_exist and not path.exists():
        raise ConfigError(f"no warehouse at {path}; run `acme sync` first")
    return path

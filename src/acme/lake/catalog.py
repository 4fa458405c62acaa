"""Where the lake lives: an embedded Iceberg SQL catalog in a directory, or any catalog
pyiceberg is configured for (REST, AWS Glue, Hive, ...; S3-compatible stores through its
`s3.*` properties).

- `DIR` (a path): SQLite catalog at `DIR/catalog.db` (Iceberg's JDBC catalog schema, so Spark
  and Trino can open it too), data under `DIR/warehouse`.
- `catalog:NAME`: `pyiceberg.catalog.load_catalog(NAME)`, configured in `~/.pyiceberg.yaml`
  or `PYICEBERG_CATALOG__NAME__*` environment variables (pyiceberg's own configuration).

Tables live in the namespace `acme`, named like the source tables.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from acme.errors import LakeError

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog
    from pyiceberg.table import Table

NAMESPACE = "acme"
CATALOG_PREFIX = "catalog:"
EXTRA_HINT = "install the lake extra: pip install 'acme-analytics[lake]'"


def require_lake_libraries() -> None:
    """Fail with one actionable line when the optional extra is missing."""
    try:
        import pyiceberg.catalog.sql  # noqa: F401
        import pyiceberg_core  # noqa: F401  (partition transforms on write)
        import sqlalchemy  # noqa: F401
    except ImportError as error:
        raise LakeError(f"the lake needs pyiceberg ({error.name} is missing); "
                        f"{EXTRA_HINT}") from None


@dataclass
class Lake:
    """An open catalog and the namespace holding the history tables."""

    catalog: "Catalog"
    location: str
    namespace: str = NAMESPACE

    def identifier(self, table: str) -> str:
        """The table's name as shown to users."""
        return f"{self.namespace}.{table}"

    def reference(self, table: str) -> tuple[str, str]:
        """The table's identifier for the catalog: a tuple, since a warehouse name may hold
        a dot (`archive.orders`) that a dotted string would read as a namespace."""
        return (self.namespace, table)

    def table(self, name: str) -> "Table | None":
        from pyiceberg.exceptions import NoSuchTableError

        try:
            return self.catalog.load_table(self.reference(name))
        except NoSuchTableError:
            return None

    def table_names(self) -> list[str]:
        return sorted(name for _, name in self.catalog.list_tables(self.namespace))


def open_lake(location: str, create: bool = False) -> Lake:
    """The lake at LOCATION; `create` makes the embedded directory and namespace if needed."""
    require_lake_libraries()
    from pyiceberg.catalog import load_catalog
    from pyiceberg.catalog.sql import SqlCatalog
    from pyiceberg.exceptions import NoSuchNamespaceError

    try:
        if location.startswith(CATALOG_PREFIX):
            catalog = load_catalog(location[len(CATALOG_PREFIX):])
        else:
            root = Path(location).expanduser().resolve()
            if not (root / "catalog.db").exists() and not create:
                raise LakeError(f"no lake at {root}; run `acme sync --lake {location}` first")
            (root / "warehouse").mkdir(parents=True, exist_ok=True)
            catalog = SqlCatalog(NAMESPACE, uri=f"sqlite:///{root / 'catalog.db'}",
                                 warehouse=(root / "warehouse").as_uri())
        if create:
            catalog.create_namespace_if_not_exists(NAMESPACE)
        else:
            catalog.list_tables(NAMESPACE)
    except LakeError:
        raise
    except NoSuchNamespaceError:
        raise LakeError(f"the lake {location} has no namespace {NAMESPACE!r}; "
                        f"run `acme sync --lake {location}` first") from None
    except (ValueError, OSError) as error:
        raise LakeError(f"cannot open the lake {location}: {error}") from None
    return Lake(catalog, location)

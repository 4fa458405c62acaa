"""Where the CLI gets its answers: the warehouse file directly (read-only), or, while
`acme serve` owns the file (DuckDB allows one writing process), that process's HTTP API.

`acme serve` records its URL beside the warehouse (`<warehouse>.serve.json`); the reader
finds it there. Both paths return the same JSON payloads, so every interface agrees.
"""

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from acme.classification import StatusClassification
from acme.errors import ConfigError, SourceUnreachable, WarehouseError
from acme.reports.definitions import REPORTS
from acme.reports.engine import run_report
from acme.reports.serialize import answer_payload, status_payload, story_payload
from acme.verify import VerifyOptions, verify_warehouse
from acme.warehouse.inspect import order_story, warehouse_status
from acme.warehouse.store import Warehouse

API_PATHS = {
    "open-orders": "/analytics/orders",
    "top-delivery-dates": "/analytics/orders/top",
    "pending-items": "/analytics/orders/product",
    "top-customers": "/analytics/orders/customers",
}


class AnswerSource(Protocol):
    def report(self, name: str, limit: int | None, as_of: datetime | None) -> dict: ...
    def status(self) -> dict: ...
    def order_history(self, order_id: int) -> dict: ...
    def verify(self, options: VerifyOptions) -> dict: ...
    def close(self) -> None: ...


def serve_marker(warehouse: Path) -> Path:
    return warehouse.with_name(warehouse.name + ".serve.json")


def write_serve_marker(warehouse: Path, url: str) -> None:
    serve_marker(warehouse).write_text(json.dumps({"url": url, "pid": os.getpid()}))


@dataclass
class LocalSource:
    warehouse: Warehouse
    classification: StatusClassification

    def report(self, name: str, limit: int | None, as_of: datetime | None) -> dict:
        return answer_payload(run_report(self.warehouse.db, name, self.classification,
                                         limit, as_of))

    def status(self) -> dict:
        return status_payload(warehouse_status(self.warehouse.db))

    def order_history(self, order_id: int) -> dict:
        return story_payload(order_story(self.warehouse.db, order_id))

    def verify(self, options: VerifyOptions) -> dict:
        return verify_warehouse(self.warehouse.db, options).payload()

    def close(self) -> None:
        self.warehouse.close()


@dataclass
class ServerSource:
    url: str
    token: str | None = None

    def _get(self, path: str, params: dict[str, Any], timeout: float = 30) -> dict:
        query = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
        request = urllib.request.Request(f"{self.url}{path}?{query}")
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            try:
                detail = json.loads(error.read() or b"{}").get("detail", error.reason)
            except ValueError:
                detail = error.reason
            if error.code == 404:
                raise ConfigError(str(detail)) from None
            if error.code == 401:
                raise ConfigError(f"`acme serve` at {self.url} asks for a token: set "
                                  "ACME_API_TOKEN to the one it was started with") from None
            raise ConfigError(f"the running server refused: {detail}") from None
        except urllib.error.URLError as error:
            raise SourceUnreachable(f"cannot reach `acme serve` at {self.url}: "
                                    f"{error.reason}") from None

    def report(self, name: str, limit: int | None, as_of: datetime | None) -> dict:
        takes_limit = REPORTS[name].takes_limit
        return self._get(API_PATHS[name], {"limit": limit if takes_limit else None,
                                           "as_of": as_of.isoformat() if as_of else None})

    def status(self) -> dict:
        return self._get("/status", {})

    def order_history(self, order_id: int) -> dict:
        return self._get(f"/analytics/orders/{order_id}/history", {})

    def verify(self, options: VerifyOptions) -> dict:
        """Asked of the server, which compares with the source it follows."""
        return self._get("/verify", {}, timeout=options.catch_up_seconds * options.rounds + 600)

    def close(self) -> None:
        pass


def open_answers(warehouse: Path, classification: StatusClassification,
                 token: str | None = None) -> AnswerSource:
    """The warehouse itself when free, else the `acme serve` that holds it."""
    try:
        return LocalSource(Warehouse.open(warehouse, read_only=True), classification)
    except WarehouseError as error:
        marker = serve_marker(warehouse)
        if "in use" not in str(error) or not marker.exists():
            raise
        return ServerSource(json.loads(marker.read_text())["url"], token)

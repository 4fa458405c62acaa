"""A running `acme serve` (a real subprocess) on a seeded test source."""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from acme.ports import free_port
from acme.source.seed import SeedPlan, seed
from tests.fix_source import SourceDB


@dataclass
class Served:
    client: httpx.Client
    warehouse: Path
    env: dict
    process: subprocess.Popen
    url: str
    stderr_path: Path

    def stop(self) -> tuple[int, str]:
        """Ctrl-C the server; returns its exit code and what it wrote on stderr."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        code = self.process.wait(timeout=60)
        return code, self.stderr_path.read_text()


@contextmanager
def serving(db: SourceDB, warehouse: Path, **env_extra: str) -> Iterator[Served]:
    """`acme serve` on `db`, yielded once its initial snapshot is in; stopped after."""
    port = free_port()
    env = {**os.environ, "ACME_SOURCE_DSN": db.cdc_dsn, "ACME_WAREHOUSE": str(warehouse),
           "ACME_SLOT": db.slot, **env_extra}
    # stderr goes to a file: a pipe nobody reads could fill up and block the server.
    stderr_path = warehouse.parent / f"{warehouse.name}.serve.log"
    with stderr_path.open("w") as log:
        process = subprocess.Popen([sys.executable, "-m", "acme", "serve", "--port",
                                    str(port)], env=env, stdout=subprocess.DEVNULL, stderr=log)
    url = f"http://127.0.0.1:{port}"
    # With a token configured, every request but /health must carry it, the readiness probe too.
    token = env_extra.get("ACME_API_TOKEN")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    client = httpx.Client(base_url=url, timeout=60, headers=headers)
    served = Served(client, warehouse, env, process, url, stderr_path)
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise AssertionError(f"acme serve exited: {stderr_path.read_text()}")
            try:
                status = client.get("/status")
                if status.status_code == 200 and status.json()["checkpoint_lsn"]:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline
            time.sleep(0.2)
        yield served
    finally:
        client.close()
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=60)


@pytest.fixture
def served(source_db, tmp_path):
    """`acme serve` on a source seeded with 3000 orders, once its snapshot is in."""
    seed(source_db.app_dsn, SeedPlan.for_orders(3000, seed=2))
    with serving(source_db, tmp_path / "api.duckdb") as running:
        yield running

"""A running `acme serve` (a real subprocess) on a seeded test source."""

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from acme.ports import free_port
from acme.source.seed import SeedPlan, seed


@dataclass
class Served:
    client: httpx.Client
    warehouse: Path
    env: dict
    process: subprocess.Popen
    url: str


@pytest.fixture
def served(source_db, tmp_path):
    """`acme serve` on a source seeded with 3000 orders, once its snapshot is in."""
    seed(source_db.app_dsn, SeedPlan.for_orders(3000, seed=2))
    port = free_port()
    warehouse = tmp_path / "api.duckdb"
    env = {**os.environ, "ACME_SOURCE_DSN": source_db.cdc_dsn, "ACME_WAREHOUSE": str(warehouse),
           "ACME_SLOT": source_db.slot}
    process = subprocess.Popen([sys.executable, "-m", "acme", "serve", "--port", str(port)],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    url = f"http://127.0.0.1:{port}"
    client = httpx.Client(base_url=url, timeout=60)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, process.stderr.read()
            try:
                status = client.get("/status")
                if status.status_code == 200 and status.json()["checkpoint_lsn"]:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline
            time.sleep(0.2)
        yield Served(client, warehouse, env, process, url)
    finally:
        client.close()
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=60)

"""Every bad input a new user tried gets one line, the documented exit code (1: the command
could not do its job; 2: the command line itself is wrong), and leaves nothing behind."""

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest

from acme.ports import free_port
from tests.e2e.cli import Run
from tests.fix_source import drop_source_db, make_source_db
from tests.fix_sync import sync_once

ERROR, USAGE = 1, 2


@dataclass(frozen=True)
class BadInput:
    args: tuple[str, ...]
    code: int
    says: str
    env: dict[str, str] = field(default_factory=dict)
    toml: str | None = None

    def __str__(self) -> str:
        extra = " ".join(f"{k}={v}" for k, v in self.env.items())
        return f"{extra} acme {' '.join(self.args)}{' +toml' if self.toml else ''}".strip()


LONG_SLOT = "s" * 80
CASES = [
    # settings: environment and acme.toml
    BadInput(("status",), ERROR, "terminal_statuses cannot be parsed",
             {"ACME_TERMINAL_STATUSES": "not json"}),
    BadInput(("report", "open-orders"), ERROR, "pending_statuses cannot be parsed",
             {"ACME_PENDING_STATUSES": "["}),
    BadInput(("serve",), ERROR, "setting api_port", {"ACME_API_PORT": "abc"}),
    BadInput(("serve",), ERROR, "setting api_port", {"ACME_API_PORT": "70000"}),
    BadInput(("report", "open-orders"), ERROR, "acme.toml is not valid TOML",
             toml="warehouse = \n"),
    BadInput(("status",), ERROR, "setting terminal_statuses",
             toml='terminal_statuses = "DELIVERED"\n'),
    # warehouse paths
    BadInput(("report", "open-orders", "--warehouse", ""), ERROR, "is a directory"),
    BadInput(("report", "open-orders", "--warehouse", "."), ERROR, "is a directory"),
    BadInput(("status", "--warehouse", ""), ERROR, "is a directory"),
    BadInput(("history", "order", "1", "--warehouse", "."), ERROR, "is a directory"),
    BadInput(("serve", "--warehouse", ""), ERROR, "is a directory"),
    BadInput(("sync", "--once", "--warehouse", "."), ERROR, "is a directory"),
    BadInput(("report", "open-orders", "--warehouse", "missing.duckdb"), ERROR,
             "no warehouse at missing.duckdb"),
    BadInput(("report", "open-orders", "--warehouse", "nodir/w.duckdb"), ERROR,
             "directory of warehouse nodir/w.duckdb does not exist"),
    BadInput(("sync", "--once", "--warehouse", "nodir/w.duckdb"), ERROR,
             "directory of warehouse nodir/w.duckdb does not exist"),
    # where answers go
    BadInput(("report", "open-orders", "--format", "csv", "--output", "nodir/out.csv"), ERROR,
             "directory nodir does not exist"),
    BadInput(("report", "open-orders", "--format", "csv", "--output", "adir"), ERROR,
             "adir is a directory"),
    BadInput(("report", "open-orders", "--format", "csv", "--output", "/dev/full"), ERROR,
             "cannot write /dev/full: No space left on device"),
    BadInput(("report", "all", "--output-dir", "afile.txt"), ERROR, "afile.txt is a file"),
    BadInput(("report", "all"), ERROR, "needs --output-dir"),
    BadInput(("report", "all", "--output-dir", "nodir/sub"), ERROR, "nodir does not exist"),
    # report parameters
    BadInput(("report", "nope"), ERROR, "unknown report 'nope'"),
    BadInput(("report", "top-customers", "--limit", "0"), ERROR, "limit must be between"),
    BadInput(("report", "top-customers", "--limit", "5000"), ERROR, "limit must be between"),
    BadInput(("report", "top-customers", "--limit", "x"), USAGE, "Invalid value for '--limit'"),
    BadInput(("report", "open-orders", "--as-of", "yesterday"), ERROR, "not an ISO"),
    BadInput(("report", "open-orders", "--as-of", "2999-01-01"), ERROR, "in the future"),
    BadInput(("report", "open-orders", "--format", "xml"), USAGE, "Invalid value for '--format'"),
    BadInput(("history", "order", "999999"), ERROR, "order 999999 is not in the warehouse"),
    BadInput(("history", "order", "abc"), USAGE, "Invalid value for 'order_id'"),
    # sync, status, serve flags
    BadInput(("sync", "--once", "--slot", ""), ERROR, "slot name '' is invalid"),
    BadInput(("sync", "--once", "--slot", LONG_SLOT), ERROR,
             "slot name is 80 characters; PostgreSQL allows at most 63"),
    BadInput(("sync", "--once", "--slot", "Bad-Slot"), ERROR, "slot name 'Bad-Slot' is invalid"),
    BadInput(("sync", "--once", "--dsn", ""), ERROR, "the database URL is empty"),
    BadInput(("sync", "--once", "--dsn", "not a dsn"), ERROR, "invalid database URL"),
    BadInput(("sync", "--once", "--publication", ""), ERROR, "publication name is empty"),
    BadInput(("status", "--slot", ""), ERROR, "slot name '' is invalid"),
    BadInput(("status", "--dsn", ""), ERROR, "the database URL is empty"),
    BadInput(("serve", "--slot", LONG_SLOT), ERROR, "at most 63"),
    BadInput(("serve", "--port", "70000"), USAGE, "Invalid value for '--port'"),
    BadInput(("serve", "--port", "0"), USAGE, "Invalid value for '--port'"),
    BadInput(("serve", "--host", "0.0.0.0"), ERROR, "without a token"),
    BadInput(("source", "up", "--port", "70000"), USAGE, "Invalid value for '--port'"),
    BadInput(("source", "seed", "--dsn", ""), ERROR, "the database URL is empty"),
    BadInput(("source", "simulate", "--rate", "0"), USAGE, "Invalid value for '--rate'"),
    BadInput(("demo", "--api-port", "99999"), USAGE, "Invalid value for '--api-port'"),
    BadInput(("sync", "--bogus"), USAGE, "No such option: --bogus"),
    BadInput(("frobnicate",), USAGE, "No such command 'frobnicate'"),
]


@pytest.fixture(scope="module")
def workdir(pg_server, tmp_path_factory):
    """A directory with a synced warehouse `w.duckdb`, a subdirectory and a file, and the
    environment pointing at its source."""
    db = make_source_db(pg_server)
    directory = tmp_path_factory.mktemp("bad-inputs")
    with psycopg.connect(db.app_dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO operations.orders (status) VALUES ('PENDING')")
    sync_once(db, directory / "w.duckdb")
    (directory / "adir").mkdir()
    (directory / "afile.txt").write_text("keep me")
    env = {**os.environ, "ACME_SOURCE_DSN": db.cdc_dsn, "ACME_WAREHOUSE": "w.duckdb",
           "ACME_SLOT": db.slot, "ACME_API_PORT": str(free_port())}
    env.pop("ACME_API_TOKEN", None)
    yield directory, env
    drop_source_db(db)


def tree(directory: Path) -> dict[str, tuple[int, int]]:
    """Every file and directory below `directory` with its size and modification time."""
    return {str(path.relative_to(directory)): (path.stat().st_size, path.stat().st_mtime_ns)
            for path in directory.rglob("*")}


@pytest.mark.parametrize("case", CASES, ids=str)
def test_bad_input_is_one_line_with_its_exit_code_and_writes_nothing(workdir, case):
    directory, env = workdir
    toml = directory / "acme.toml"
    if case.toml is not None:
        toml.write_text(case.toml)
    before = tree(directory)
    try:
        done = subprocess.run([sys.executable, "-m", "acme", *case.args], cwd=directory,
                              env={**env, **case.env}, capture_output=True, text=True,
                              timeout=120)
    finally:
        after = tree(directory)
        toml.unlink(missing_ok=True)
    run = Run(done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in run.stdout + run.stderr
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith("error: ") and case.says in lines[0], lines[0]
    assert run.code == case.code, (run.code, lines[0])
    assert after == before, "a refused command changed files"


def test_at_least_forty_bad_inputs_are_covered():
    assert len(CASES) >= 40

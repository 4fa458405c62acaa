"""Bootstrap and run: `python3 tasks.py demo` or `python3 tasks.py test` on a fresh machine.

Creates ./.venv with everything the project needs (only Python 3.11+ is required), then runs
the demo or the whole test suite inside it. Extra arguments are passed on (to acme or pytest).
The whole suite (no extra arguments) runs on the embedded PostgreSQL 18, then the integration
tests run again on PostgreSQL 15 (Debian's `postgresql-15`, or the bin directory named by
ACME_PG15_BIN): ACME may run an older server.
"""

import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
PG15_BIN = Path(os.environ.get("ACME_PG15_BIN", "/usr/lib/postgresql/15/bin"))
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")


def ensure_environment(extras: str) -> None:
    stamp = VENV / f".installed-{extras.replace(',', '-')}"
    if stamp.exists() and stamp.stat().st_mtime >= (ROOT / "pyproject.toml").stat().st_mtime:
        return
    if sys.version_info < (3, 11):  # noqa: UP036 -- tasks.py may run on any python3
        sys.exit(f"Python 3.11+ is required; this is {sys.version.split()[0]}")
    print("setting up .venv (first run only)...", flush=True)
    venv.create(VENV, with_pip=True)
    pip = [str(BIN / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "-e", f"{ROOT}[{extras}]"], check=True)
    stamp.touch()


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] not in ("demo", "test"):
        print("usage: python3 tasks.py demo|test [args...]", file=sys.stderr)
        return 2
    task, extra = sys.argv[1], sys.argv[2:]
    # The tests cover the optional lake (Iceberg, Daft) too; the demo runs without it.
    ensure_environment("test,lake" if task == "test" else "test")
    if task == "test":
        if extra:
            return subprocess.run([str(BIN / "pytest"), *extra], cwd=ROOT).returncode
        if not (PG15_BIN / "postgres").exists():
            print(f"PostgreSQL 15 not found in {PG15_BIN}: apt-get install postgresql-15, or "
                  "set ACME_PG15_BIN to its bin directory", file=sys.stderr)
            return 1
        latest = subprocess.run([str(BIN / "pytest")], cwd=ROOT).returncode
        print(f"integration tests again on PostgreSQL 15 ({PG15_BIN})", flush=True)
        older = subprocess.run([str(BIN / "pytest"), "tests/integration"], cwd=ROOT,
                               env={**os.environ, "ACME_TEST_POSTGRES_BIN": str(PG15_BIN)})
        return latest or older.returncode
    return subprocess.run([str(BIN / "acme"), "demo", *extra], cwd=ROOT).returncode


if __name__ == "__main__":
    sys.exit(main())

"""Running the real `acme` command in a subprocess, as a user would."""

import subprocess
import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class Run:
    code: int
    stdout: str
    stderr: str


def acme(*args: str, timeout: float = 180, env: dict | None = None) -> Run:
    done = subprocess.run([sys.executable, "-m", "acme", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)
    return Run(done.returncode, done.stdout, done.stderr)


def assert_one_line_error(run: Run, *fragments: str) -> None:
    assert run.code != 0
    assert "Traceback" not in run.stderr + run.stdout
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, run.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]

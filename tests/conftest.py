import os
import sys

import pytest

pytest_plugins = ["tests.fix_source", "tests.fix_sync", "tests.fix_proxy", "tests.fix_serve",
                  "tests.fix_browser"]

_session = {"exit_status": 1}


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _session["exit_status"] = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """A session that loaded Daft (the lake-report tests run it in this process) ends, once
    pytest has said everything, without Python's finalization, as `acme` does
    (`cli/main.py`): Daft's native threads can take the GIL while Python 3.11 finalizes, and the
    abort would fail a run whose tests all passed."""
    if "daft" in sys.modules:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_session["exit_status"])

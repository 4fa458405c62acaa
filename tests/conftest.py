import pytest

from acme.cli.main import end_if_daft_loaded

pytest_plugins = ["tests.fix_source", "tests.fix_sync", "tests.fix_proxy", "tests.fix_serve",
                  "tests.fix_browser"]

_session = {"exit_status": 1}


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _session["exit_status"] = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """The lake-report tests run Daft in this process: once pytest has said everything, end
    as `acme` does, so that Daft's threads cannot abort a run whose tests all passed."""
    end_if_daft_loaded(_session["exit_status"])

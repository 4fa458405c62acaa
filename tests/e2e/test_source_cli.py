"""`acme source ...` end to end: lifecycle, provisioning and its clear errors."""

import socket

import pytest

from acme.ports import free_port
from acme.source.embedded import EmbeddedServer
from tests.e2e.cli import acme, assert_one_line_error


def test_up_status_down_keep_data_and_port_until_purge(tmp_path):
    data_dir = tmp_path / "source"
    port = free_port()
    started = acme("source", "up", "--port", str(port), "--data-dir", str(data_dir))
    assert started.code == 0, started.stderr
    assert f"127.0.0.1:{port}" in started.stdout and "provisioned" in started.stdout
    try:
        status = acme("source", "status", "--data-dir", str(data_dir))
        assert "running: yes" in status.stdout
        assert f"cdc_user:***@127.0.0.1:{port}/finance_db" in status.stdout
        assert "cdc_1234" not in status.stdout
        shown = acme("source", "status", "--show-password", "--data-dir", str(data_dir))
        assert f"postgresql://cdc_user:cdc_1234@127.0.0.1:{port}/finance_db" in shown.stdout
        seeded = acme("source", "seed", "--orders", "300",
                      "--dsn", f"postgresql://finance_db_user:1234@127.0.0.1:{port}/finance_db")
        assert seeded.code == 0 and "300 orders" in seeded.stdout
        assert acme("source", "down", "--data-dir", str(data_dir)).code == 0
        assert "running: no" in acme("source", "status", "--data-dir", str(data_dir)).stdout
        again = acme("source", "up", "--data-dir", str(data_dir))
        assert again.code == 0 and f"127.0.0.1:{port}" in again.stdout
        reseed = acme("source", "seed", "--orders", "300",
                      "--dsn", f"postgresql://finance_db_user:1234@127.0.0.1:{port}/finance_db")
        assert_one_line_error(reseed, "already holds 300 orders", "--reset")
    finally:
        purged = acme("source", "down", "--purge", "--data-dir", str(data_dir))
    assert purged.code == 0 and not data_dir.exists()


def test_up_on_a_port_in_use_is_one_clear_line(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        run = acme("source", "up", "--port", str(port), "--data-dir", str(tmp_path / "d"))
    assert_one_line_error(run, f"port {port}", "already in use", "--port")


def test_up_on_a_foreign_directory_is_refused_and_left_untouched(tmp_path):
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "holiday.jpg").write_bytes(b"not a database")
    run = acme("source", "up", "--port", str(free_port()), "--data-dir", str(foreign))
    assert_one_line_error(run, "not created by acme", "--data-dir")
    assert [p.name for p in foreign.iterdir()] == ["holiday.jpg"]


@pytest.mark.parametrize(
    "dsn, fragments",
    [
        ("postgresql://nobody:x@127.0.0.1:1/finance_db", ("cannot reach", "127.0.0.1:1")),
        ("host=127.0.0.1 bogus_option=1", ("invalid DSN",)),
    ],
)
def test_provision_with_a_bad_dsn_is_one_clear_line(dsn, fragments):
    assert_one_line_error(acme("source", "provision", "--dsn", dsn), *fragments)


def test_provision_with_a_wrong_password_is_one_clear_line(pg_server):
    port = pg_server.state().port
    run = acme("source", "provision", "--dsn", f"postgresql://cdc_user:wrong@127.0.0.1:{port}/postgres")
    assert_one_line_error(run, "authentication failed", "cdc_user:***")
    assert "wrong" not in run.stderr


def test_provision_twice_says_nothing_to_change(pg_server):
    dsn = pg_server.admin_dsn()
    acme("source", "provision", "--dsn", dsn)
    second = acme("source", "provision", "--dsn", dsn)
    assert second.code == 0 and "nothing to change" in second.stdout


def test_provision_without_logical_wal_says_what_to_change(tmp_path):
    server = EmbeddedServer(tmp_path / "replica", settings={"wal_level": "replica"})
    server.up(free_port())
    try:
        run = acme("source", "provision", "--dsn", server.admin_dsn())
    finally:
        server.down(purge=True)
    assert_one_line_error(run, "wal_level is 'replica'", "wal_level = logical", "restart")


def test_help_lists_every_command():
    run = acme("source", "--help")
    for command in ("up", "down", "status", "provision", "seed", "simulate"):
        assert command in run.stdout

"""Connection settings: names fit PostgreSQL's 63 bytes (a longer one makes the server send a
NOTICE that libpq prints to stderr), timeouts are added, the DSN's own settings win."""

from psycopg.conninfo import conninfo_to_dict

from acme.source.connect import conninfo, short_name


def test_long_application_name_keeps_the_command_and_the_file():
    name = short_name("acme sync /very/long/" + "d" * 80 + "/warehouse.duckdb")
    assert len(name.encode()) <= 63
    assert name.startswith("acme sync ...") and name.endswith("/warehouse.duckdb")


def test_short_application_name_is_kept():
    assert short_name("acme serve w.duckdb") == "acme serve w.duckdb"


def test_timeouts_and_name_are_added_but_the_dsn_wins():
    params = conninfo_to_dict(conninfo("postgresql://u:p@h:5/db?connect_timeout=3", "acme x"))
    assert params["connect_timeout"] == "3" and params["application_name"] == "acme x"
    assert params["keepalives"] == "1" and params["tcp_user_timeout"] == "30000"

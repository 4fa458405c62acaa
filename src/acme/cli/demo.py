"""`acme demo`: the whole product on one machine with one command.

Brings up the embedded source (seeding it when empty), runs simulated traffic, syncs into a
demo warehouse and serves the API, printing a freshness line every second. Ctrl-C (or
--duration) stops everything cleanly.
"""

import threading
import time

import psycopg
import typer

from acme.cli import source
from acme.cli.output import console
from acme.cli.serve import run_server
from acme.cli.sync import ConsoleObserver, options_from, stop_on_signals
from acme.config import (
    APP_PASSWORD,
    APP_USER,
    CDC_PASSWORD,
    CDC_USER,
    DEFAULT_PORT,
    default_data_dir,
    embedded_dsn,
    load_settings,
)
from acme.source.embedded import EmbeddedServer
from acme.source.simulate import run_traffic


def demo(orders: int = typer.Option(200_000, "--orders", min=1,
                                    help="Orders to seed when the source is empty."),
         rate: float = typer.Option(100.0, "--rate", min=0.1, help="Simulated transactions/s."),
         duration: float = typer.Option(None, "--duration", min=1,
                                        help="Stop after this many seconds [default: Ctrl-C]."),
         port: int = typer.Option(DEFAULT_PORT, "--port", min=1, max=65535,
                                  help="Embedded source port."),
         api_port: int = typer.Option(8000, "--api-port", min=1, max=65535,
                                      help="HTTP API port.")) -> None:
    """Source up (seeded if empty), live traffic, sync and API, with a live freshness line."""
    source.up(port=port, data_dir=None)
    state = EmbeddedServer(default_data_dir()).state()
    app_dsn = embedded_dsn(APP_USER, APP_PASSWORD, state.port)
    warehouse = default_data_dir().parent / "demo.duckdb"
    with psycopg.connect(app_dsn) as conn:
        empty = conn.execute("SELECT NOT EXISTS (SELECT 1 FROM operations.orders)").fetchone()[0]
    if empty:
        source.seed(orders=orders, seed_value=42, reset=False, app_dsn=app_dsn)
        for stale in (warehouse, warehouse.with_name(warehouse.name + ".wal")):
            stale.unlink(missing_ok=True)  # a new source starts a new history

    settings = load_settings()
    options = options_from(settings, embedded_dsn(CDC_USER, CDC_PASSWORD, state.port),
                           warehouse, None, None, once=False, create_slot=True)
    stop = stop_on_signals()
    observer = ConsoleObserver(quiet_batches=True)
    traffic = threading.Thread(target=run_traffic, args=(app_dsn, rate),
                               kwargs={"seed": 7, "stop": stop}, daemon=True)

    def freshness_line() -> None:
        started = time.monotonic()
        while not stop.wait(1.0):
            if duration is not None and time.monotonic() - started >= duration:
                stop.set()
                break
            lag = observer.last_lag_ms
            console.print(f"freshness: lag {'-' if lag is None else f'{lag:.0f} ms'} · "
                          f"{observer.changes:,} changes applied", highlight=False)

    def ready(url: str) -> None:
        console.print(f"API at {url} — try {url}/analytics/orders/top?limit=3 "
                      f"(docs: {url}/docs); Ctrl-C to stop")
        traffic.start()
        threading.Thread(target=freshness_line, daemon=True).start()

    run_server(settings, options, settings.api_host, api_port, observer, stop, ready)
    if traffic.is_alive():
        traffic.join(timeout=10)
    console.print("demo stopped")

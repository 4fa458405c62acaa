"""`acme demo`: the whole product on one machine with one command."""

import psycopg
import typer

from acme.cli import source
from acme.cli.output import console
from acme.config import APP_PASSWORD, APP_USER, DEFAULT_PORT, default_data_dir, embedded_dsn
from acme.source.embedded import EmbeddedServer


def demo(orders: int = typer.Option(100_000, "--orders", min=1,
                                    help="Orders to seed when the source is empty."),
         rate: float = typer.Option(50.0, "--rate", min=0.1, help="Simulated transactions/s."),
         duration: float = typer.Option(None, "--duration", min=0.1,
                                        help="Stop after this many seconds [default: Ctrl-C]."),
         port: int = typer.Option(DEFAULT_PORT, "--port", help="Embedded source port.")) -> None:
    """Start the embedded source, seed it if empty, and run live traffic against it."""
    source.up(port=port, data_dir=None)
    state = EmbeddedServer(default_data_dir()).state()
    app_dsn = embedded_dsn(APP_USER, APP_PASSWORD, state.port)
    with psycopg.connect(app_dsn) as conn:
        empty = conn.execute("SELECT NOT EXISTS (SELECT 1 FROM operations.orders)").fetchone()[0]
    if empty:
        source.seed(orders=orders, seed_value=42, reset=False, app_dsn=app_dsn)
    console.print("live traffic running; Ctrl-C to stop")
    source.simulate(rate=rate, duration=duration, count=None, seed_value=None, app_dsn=app_dsn)

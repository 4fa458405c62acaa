"""`acme source ...`: the embedded ACME source, provisioning, seeding and traffic."""

from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from acme.cli.output import console, err_console
from acme.config import (
    APP_PASSWORD,
    APP_USER,
    CDC_PASSWORD,
    CDC_USER,
    DEFAULT_PORT,
    check_dsn,
    default_data_dir,
    embedded_dsn,
    load_settings,
    mask_dsn,
)
from acme.source.embedded import EmbeddedServer
from acme.source.provision import provision as apply_provisioning
from acme.source.seed import SeedPlan
from acme.source.seed import seed as load_seed
from acme.source.simulate import run_traffic

app = typer.Typer(help="ACME's PostgreSQL source: embedded server, provisioning, data, traffic.",
                  no_args_is_help=True)

DataDir = typer.Option(None, "--data-dir", help="Data directory [default: per-user data dir].")


def _server(data_dir: Path | None) -> EmbeddedServer:
    return EmbeddedServer(data_dir or default_data_dir())


@app.command()
def up(port: int = typer.Option(None, "--port", min=1, max=65535,
                                help=f"TCP port [default: {DEFAULT_PORT}]."),
       data_dir: Path = DataDir) -> None:
    """Start the embedded source (create and provision it on first use)."""
    server = _server(data_dir)
    state = server.state()
    if state.running and port in (None, state.port):
        console.print(f"source already running on 127.0.0.1:{state.port} ({server.data_dir})")
        return
    with err_console.status("starting PostgreSQL..."):
        state = server.up(port or state.port or DEFAULT_PORT)
        steps = apply_provisioning(server.admin_dsn())
    created = [step.name for step in steps if step.changed]
    console.print(f"source running on 127.0.0.1:{state.port} ({server.data_dir})")
    if created:
        console.print(f"provisioned: {', '.join(created)}")


@app.command()
def down(purge: bool = typer.Option(False, "--purge", help="Also delete the data directory."),
         data_dir: Path = DataDir) -> None:
    """Stop the embedded source; its data stays unless --purge."""
    server = _server(data_dir)
    was_running = server.down(purge=purge)
    console.print("source stopped" if was_running else "source was not running")
    if purge:
        console.print(f"deleted {server.data_dir}")


@app.command()
def status(show_password: bool = typer.Option(False, "--show-password",
                                              help="Print passwords in the URLs."),
           data_dir: Path = DataDir) -> None:
    """Whether the embedded source runs, where, and its connection URLs."""
    server = _server(data_dir)
    state = server.state()
    console.print(f"data directory: {state.data_dir}")
    console.print(f"running: {'yes (pid ' + str(state.pid) + ')' if state.running else 'no'}")
    if state.port is None:
        console.print("not created yet: run `acme source up`")
        return
    for label, user, password in (("application", APP_USER, APP_PASSWORD),
                                  ("replication", CDC_USER, CDC_PASSWORD)):
        url = embedded_dsn(user, password, state.port)
        console.print(f"{label} URL: {url if show_password else mask_dsn(url)}", highlight=False)


@app.command()
def provision(dsn: str = typer.Option(..., "--dsn", help="Superuser libpq URL of the server.")
              ) -> None:
    """Provision any PostgreSQL server like ACME's source (idempotent)."""
    steps = apply_provisioning(dsn)
    created = [step.name for step in steps if step.changed]
    if not created:
        console.print(f"{mask_dsn(dsn)} is already provisioned: nothing to change")
        return
    for step in steps:
        console.print(f"{'created' if step.changed else 'exists '}  {step.name}")


@app.command()
def seed(orders: int = typer.Option(100_000, "--orders", min=1, help="Orders to generate."),
         seed_value: int = typer.Option(42, "--seed", help="Random seed (same seed, same rows)."),
         reset: bool = typer.Option(False, "--reset", help="Truncate the four tables first."),
         app_dsn: str = typer.Option(None, "--dsn", help="Application user's URL "
                                     "[default: ACME_APP_DSN or the embedded source].")) -> None:
    """Load realistic customers, products, orders and items (deterministic per seed)."""
    dsn = check_dsn(app_dsn if app_dsn is not None else load_settings().app_dsn)
    plan = SeedPlan.for_orders(orders, seed_value)
    columns = (TextColumn("seeding orders"), BarColumn(), MofNCompleteColumn(),
               TimeRemainingColumn())
    with Progress(*columns, console=err_console, transient=True) as progress:
        task = progress.add_task("seed", total=plan.orders)
        result = load_seed(dsn, plan, reset=reset,
                           progress=lambda done, total: progress.update(task, completed=done))
    console.print(f"seeded {result.customers:,} customers, {result.products:,} products, "
                  f"{result.orders:,} orders, {result.order_items:,} order items")


@app.command()
def simulate(rate: float = typer.Option(50.0, "--rate", min=0.1, help="Transactions per second."),
             duration: float = typer.Option(None, "--duration", min=0.1,
                                            help="Seconds to run [default: until Ctrl-C]."),
             count: int = typer.Option(None, "--count", min=1, help="Stop after N transactions."),
             seed_value: int = typer.Option(None, "--seed", help="Random seed."),
             app_dsn: str = typer.Option(None, "--dsn", help="Application user's URL.")) -> None:
    """Run realistic transactional traffic against the source."""
    dsn = check_dsn(app_dsn if app_dsn is not None else load_settings().app_dsn)
    with err_console.status("simulating traffic (Ctrl-C to stop)...") as spinner:
        report = run_traffic(dsn, rate, duration, count, seed_value,
                             tick=lambda done: spinner.update(f"simulated {done} transactions"))
    kinds = ", ".join(f"{kind} {n}" for kind, n in sorted(report.by_kind.items()))
    console.print(f"{report.transactions} transactions in {report.seconds:.1f}s: "
                  f"{report.rate:.1f}/s achieved (target {rate:g}/s)")
    if kinds:
        console.print(kinds)

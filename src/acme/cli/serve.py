"""`acme serve`: the sync pipeline and the HTTP API in one process.

DuckDB allows one writing process per file, so the process that applies changes also answers
queries: API requests read through cursors of the pipeline's own connection (DuckDB's MVCC
gives each a committed snapshot while batches commit). `acme report` from another terminal
finds this server through `<warehouse>.serve.json` and asks it over HTTP. The same process
samples the source's lag and exports metrics at /metrics.
"""

import ipaddress
import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import typer
import uvicorn

from acme.api.app import create_app
from acme.classification import classification_from
from acme.cli.output import err_console
from acme.cli.sync import (
    DsnOption,
    NoCreateSlotOption,
    PublicationOption,
    SlotOption,
    WarehouseOption,
    options_from,
    progress_observer,
    stop_on_signals,
)
from acme.config import Settings, load_settings
from acme.errors import ConfigError, UnstorableValue, WarehouseError
from acme.observe import Observers
from acme.observe.lag import SourceLagPoller
from acme.observe.logs import json_enabled, log_error, log_event
from acme.observe.metrics import PipelineMetrics
from acme.observe.observer import BatchStats, SyncObserver
from acme.pipeline import run_sync
from acme.ports import check_port_free
from acme.reports.access import serve_marker, write_serve_marker
from acme.reports.cache import AnswerCache
from acme.sync_options import SyncOptions
from acme.verify import VerifyOptions, verify_warehouse
from acme.warehouse.store import Warehouse


class LiveWarehouse(SyncObserver):
    """The warehouse connection the API reads through, once the pipeline has opened it, and
    the answers it shares between commits."""

    def __init__(self) -> None:
        self.db: duckdb.DuckDBPyConnection | None = None
        self.answers = AnswerCache()

    def warehouse_opened(self, warehouse: Warehouse) -> None:
        self.db = warehouse.db
        self.answers.invalidate()

    def snapshot_done(self, rows: int, seconds: float) -> None:
        self.answers.invalidate()

    def batch_applied(self, stats: BatchStats) -> None:
        self.answers.invalidate()

    def read_only(self, path: Path) -> None:
        """After the pipeline stopped and closed the file: keep answering from it."""
        self.db = Warehouse.open(path, read_only=True).db
        self.answers.invalidate()


def run_server(settings: Settings, options: SyncOptions, host: str, port: int,
               observer: SyncObserver, stop: threading.Event,
               url_ready: Callable[[str], None] = lambda url: None) -> None:
    """Serve until Ctrl-C/SIGTERM (or `stop`), with the pipeline and the lag poller on
    threads; `observer` watches the pipeline beside the API's own observers.

    The URL is announced (and written to `<warehouse>.serve.json`) only once the pipeline
    holds the warehouse, so a second server that cannot have it never overwrites the first's
    marker; and a server only ever removes its own marker."""
    check_not_served(Path(options.warehouse))
    check_port_free(port, host)
    classification = classification_from(settings.terminal_statuses, settings.pending_statuses)
    token = settings.api_token.get_secret_value() if settings.api_token else None
    live, metrics = LiveWarehouse(), PipelineMetrics()
    watchers = Observers(live, observer, metrics)
    verify_options = VerifyOptions(options.dsn, options.slot, options.publication)
    app = create_app(lambda: live.db, classification, metrics,
                     verify=lambda db: verify_warehouse(db, verify_options), cache=live.answers,
                     token=token, reads_per_second=settings.api_reads_per_second)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning",
                                           log_config=None if json_enabled() else
                                           uvicorn.config.LOGGING_CONFIG))
    poller = SourceLagPoller(options.dsn, options.slot, metrics.lag_sampled, metrics.error)
    failure: list[BaseException] = []
    stuck: list[UnstorableValue] = []  # sync stopped; the API still serves

    def pipeline() -> None:
        try:
            run_sync(options, stop, watchers)
        except UnstorableValue as error:
            # Stopped at a change it cannot apply (recorded in the warehouse): the API keeps
            # answering from what was applied, and /status says why it no longer moves.
            metrics.error(error)
            try:
                live.read_only(Path(options.warehouse))
            except WarehouseError:  # stopped in the first copy: no warehouse to serve
                failure.append(error)
            else:
                stuck.append(error)
                if json_enabled():
                    log_error(error)
                else:
                    err_console.print(f"[bold red]sync stopped:[/] {error}", highlight=False,
                                      soft_wrap=True)
                return
        except BaseException as error:  # reported by the main thread
            if isinstance(error, Exception):
                metrics.error(error)
            failure.append(error)
        server.should_exit = True

    announced: list[str] = []

    def announce() -> None:
        while not (server.started and live.db is not None) and not server.should_exit:
            time.sleep(0.05)
        if server.started and live.db is not None and not failure:
            url = f"http://{host}:{port}"
            write_serve_marker(Path(options.warehouse), url)
            announced.append(url)
            url_ready(url)
        while not stop.is_set() and not server.should_exit:
            time.sleep(0.1)
        server.should_exit = True

    worker = threading.Thread(target=pipeline, name="pipeline", daemon=True)
    watcher = threading.Thread(target=announce, name="announce", daemon=True)
    worker.start()
    watcher.start()
    poller.start()
    try:
        server.run()
    finally:
        stop.set()
        worker.join()
        watcher.join(timeout=5)
        poller.stop()
        if announced:
            serve_marker(Path(options.warehouse)).unlink(missing_ok=True)
    if failure or stuck:
        raise (failure or stuck)[0]


def check_not_served(warehouse: Path) -> None:
    """Refuse at once when another live `acme serve` owns this warehouse."""
    marker = serve_marker(warehouse)
    try:
        owner = json.loads(marker.read_text())
        os.kill(int(owner["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return  # no marker, or a stale one from a server that is gone
    raise WarehouseError(f"the warehouse {warehouse} is already served by pid {owner['pid']} "
                         f"at {owner.get('url')}; stop it or use another --warehouse")


def check_exposure(host: str, token: str | None, insecure: bool) -> None:
    """An API reachable from other machines needs a token (or an explicit --insecure)."""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback and not token and not insecure:
        raise ConfigError(f"--host {host} exposes the API beyond this machine without a token; "
                          "set ACME_API_TOKEN (clients send it as a bearer token), or pass "
                          "--insecure to serve it open")


def serve(host: str = typer.Option(None, "--host", help="Bind address [127.0.0.1]."),
          port: int = typer.Option(None, "--port", min=1, max=65535, help="HTTP port [8000]."),
          dsn: str = DsnOption, warehouse: Path = WarehouseOption, slot: str = SlotOption,
          publication: str = PublicationOption, no_create_slot: bool = NoCreateSlotOption,
          insecure: bool = typer.Option(False, "--insecure",
                                        help="Allow a non-loopback --host without a token."),
          ) -> None:
    """Sync and serve the HTTP API (OpenAPI docs at /docs, metrics at /metrics)."""
    settings = load_settings()
    options = options_from(settings, dsn, warehouse, slot, publication, False,
                           not no_create_slot, command="serve")
    bind = host or settings.api_host
    check_exposure(bind, settings.api_token.get_secret_value() if settings.api_token else None,
                   insecure)
    run_server(settings, options, bind, port or settings.api_port,
               progress_observer(), stop_on_signals(), url_ready=_announce)


def _announce(url: str) -> None:
    if json_enabled():
        log_event("serving", f"API at {url}", url=url)
    else:
        err_console.print(f"API at {url} (docs: {url}/docs)")

"""Scale benchmark: how costs grow with the data.

    python -m benchmarks.scale [--orders 1000000 10000000] [--clients 16] [--rate 200]

For each size, on a fresh seeded embedded source:
- first sync (`acme sync --once` in its own process): peak RSS and time;
- through a running `acme serve`: `/status` p99, asked by one client;
- under load: `--clients` concurrent clients asking the four reports while traffic runs at
  `--rate` transactions/s: request p99 and throughput, and freshness (a probe transaction's
  commit until a report shows it, measured end to end);
- each report's p50/p99, now and as of a past time, computed by the engine on the file (no
  answer cache), beside a raw baseline measured in the same run: a DuckDB scan joining current
  items to orders (what a report costs when computed from the tables, not from its state);
- one source transaction updating as many item rows as there are orders: peak RSS and time of
  the `acme sync --once` that applies it.
Prints a growth table and writes benchmarks/results/scale.json.
"""

import argparse
import asyncio
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import httpx
import psycopg

from acme.classification import StatusClassification
from acme.config import SourceAddress
from acme.ports import free_port
from acme.reports.access import API_PATHS
from acme.reports.engine import run_report
from acme.source.embedded import EmbeddedServer
from benchmarks.common import BenchSource, percentile, report, start_source, warehouse_file

RAW_SCAN = ("SELECT count(*), sum(quanity) FROM current.order_items "
            "JOIN current.orders USING (order_id)")
PROBE_DAY = date(2099, 1, 1)


@dataclass(frozen=True)
class Run:
    """A finished child process: its peak memory (with the processes it started, such as the
    copy's reader process, summed) and wall time."""

    peak_rss_mb: float
    seconds: float


def acme_env(source: BenchSource, warehouse: Path) -> dict[str, str]:
    return {**os.environ, "ACME_SOURCE_DSN": source.address.cdc_dsn,
            "ACME_APP_DSN": source.address.app_dsn, "ACME_WAREHOUSE": str(warehouse)}


def tree_rss_kb(pid: int) -> int:
    """Resident memory of a process and its children, summed (from /proc)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if stat.parent.name == str(pid) or int(fields[1]) == pid:
                status = (stat.parent / "status").read_text()
                total += int(status.split("VmRSS:")[1].split()[0])
        except (OSError, IndexError, ValueError):
            continue  # ended meanwhile
    return total


def run_acme(env: dict[str, str], *args: str) -> Run:
    started = time.monotonic()
    process = subprocess.Popen([sys.executable, "-m", "acme", *args], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0
    while process.poll() is None:
        peak = max(peak, tree_rss_kb(process.pid))
        time.sleep(0.2)
    if process.returncode != 0:
        raise SystemExit(f"acme {' '.join(args)} failed: {process.stderr.read().decode()}")
    return Run(peak / 1024, time.monotonic() - started)


def timed(action, runs: int) -> list[float]:
    action()  # warm-up
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def start_serve(env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "acme", "serve", "--port", str(port)],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/status", timeout=5).json().get("checkpoint_lsn"):
                return process, url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit("acme serve did not come up")


def traffic(env: dict[str, str], rate: float, seconds: float) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "acme", "source", "simulate", "--rate",
                             str(rate), "--duration", str(seconds), "--dsn",
                             env["ACME_APP_DSN"]], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def report_latencies(warehouse: Path, as_of: datetime, runs: int) -> list[tuple]:
    """Each report computed by the engine on the file (no answer cache), beside a raw scan."""
    rules = StatusClassification()
    with duckdb.connect(str(warehouse), read_only=True) as db:
        raw = percentile(timed(lambda: db.execute(RAW_SCAN).fetchall(), 10), 0.99)
        rows = [("raw items x orders scan p99 (baseline)", raw, None, "ms")]
        for name in API_PATHS:
            for label, moment in (("current", None), ("as-of", as_of)):
                samples = timed(lambda n=name, m=moment: run_report(db, n, rules, None, m), runs)
                rows.append((f"{name} {label} p50", percentile(samples, 0.5), None, "ms"))
                rows.append((f"{name} {label} p99 (vs raw scan)", percentile(samples, 0.99),
                             raw, "ms"))
                rows.append((f"{name} {label} max", max(samples), None, "ms"))
    return rows


def status_latency(url: str, runs: int) -> tuple:
    with httpx.Client(base_url=url, timeout=30) as client:
        samples = timed(lambda: client.get("/status").raise_for_status(), runs)
    return ("/status p99", percentile(samples, 0.99), None, "ms")


def _clients(url: str, clients: int, seconds: float, out: multiprocessing.Queue) -> None:
    """`clients` keep-alive HTTP/1.1 connections, each asking the reports in turn as fast as
    answered, in one process: plain asyncio streams reading each (gzip) body whole without
    decoding it. httpx spent about 2 ms of CPU a request, which on this 2-core machine was
    taken from the server being measured."""
    host, port = url.removeprefix("http://").split(":")

    async def client(paths: list[str], latencies: list[float], deadline: float) -> None:
        reader, writer = await asyncio.open_connection(host, int(port))
        turn = 0
        while time.monotonic() < deadline:
            started = time.perf_counter()
            writer.write(f"GET {paths[turn % len(paths)]} HTTP/1.1\r\nHost: {host}\r\n"
                         "Accept-Encoding: gzip\r\n\r\n".encode())
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").lower()
            if not head.startswith("http/1.1 200"):
                raise SystemExit(f"the API answered {head.splitlines()[0]}")
            length = head.split("content-length:", 1)[1].split("\r\n", 1)[0]
            await reader.readexactly(int(length))
            latencies.append((time.perf_counter() - started) * 1000)
            turn += 1
        writer.close()

    async def main() -> list[float]:
        latencies: list[float] = []
        deadline = time.monotonic() + seconds
        paths = list(API_PATHS.values())
        await asyncio.gather(*(client(paths[i % 4:] + paths[:i % 4], latencies, deadline)
                               for i in range(clients)))
        return latencies

    out.put(asyncio.run(main()))


def probe_freshness(env: dict[str, str], url: str, stop: threading.Event) -> list[float]:
    """Move a probe order to a new delivery date, then ask open-orders until it shows."""
    lags = []
    with psycopg.connect(env["ACME_APP_DSN"], autocommit=True) as conn, \
            httpx.Client(base_url=url, timeout=30) as http:
        # Days no order has had: a reused source keeps the probe orders of earlier runs, and
        # a day one of them shows would be seen before this probe's change applies.
        latest = conn.execute("SELECT max(delivery_date) FROM operations.orders").fetchone()[0]
        first_day = max(PROBE_DAY, latest or PROBE_DAY)
        probe = conn.execute("INSERT INTO operations.orders (order_date, delivery_date, "
                             "customer_id, status) VALUES (current_date, %s, 1, 'PENDING') "
                             "RETURNING order_id", (first_day,)).fetchone()[0]
        step = 0
        while not stop.is_set():
            step += 1
            day = first_day + timedelta(days=step)
            committed = time.time()
            conn.execute("UPDATE operations.orders SET delivery_date = %s WHERE order_id = %s",
                         (day, probe))
            while not any(row["delivery_date"] == day.isoformat() for row in
                          http.get(API_PATHS["open-orders"]).json()["rows"]):
                time.sleep(0.005)
            lags.append((time.time() - committed) * 1000)
            stop.wait(0.2)
    return lags


def under_load(env: dict[str, str], url: str, clients: int, rate: float,
               seconds: float) -> list[tuple]:
    results: multiprocessing.Queue = multiprocessing.Queue()
    load = multiprocessing.Process(target=_clients, args=(url, clients, seconds, results))
    writer = traffic(env, rate, seconds + 5)
    time.sleep(2)
    load.start()
    stop = threading.Event()
    lags: list[float] = []
    prober = threading.Thread(target=lambda: lags.extend(probe_freshness(env, url, stop)))
    prober.start()
    latencies = results.get()
    load.join()
    stop.set()
    prober.join()
    writer.wait()
    return [
        (f"{clients} clients: request p50", percentile(latencies, 0.5), None, "ms"),
        (f"{clients} clients: request p99", percentile(latencies, 0.99), None, "ms"),
        (f"{clients} clients: throughput", len(latencies) / seconds, None, "req/s"),
        ("freshness p50 under load", percentile(lags, 0.5), None, "ms"),
        ("freshness p99 under load", percentile(lags, 0.99), None, "ms"),
        ("freshness max under load", max(lags), None, "ms"),
        ("freshness probes under load", len(lags), None, "probes"),
    ]


def big_transaction(source: BenchSource, env: dict[str, str], rows: int) -> list[tuple]:
    with psycopg.connect(source.address.app_dsn, autocommit=True) as conn:
        started = time.monotonic()
        updated = conn.execute("UPDATE operations.order_items SET quanity = quanity + 1 "
                               "WHERE order_item_id <= %s", (rows,)).rowcount
        print(f"one transaction updated {updated:,} item rows in "
              f"{time.monotonic() - started:.0f}s")
    run = run_acme(env, "sync", "--once")
    return [(f"{updated:,}-row transaction: sync peak RSS", run.peak_rss_mb, None, "MB"),
            (f"{updated:,}-row transaction: sync time", run.seconds, None, "s")]


def reuse_source(data_dir: Path) -> BenchSource:
    """An already seeded embedded source (the benchmark changes it), with no slot left."""
    server = EmbeddedServer(data_dir)
    server.up(free_port())
    source = BenchSource(server, SourceAddress(server.state().port))
    with psycopg.connect(source.admin_dsn, autocommit=True) as admin:
        admin.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots")
    return source


def measure(orders: int, clients: int, rate: float, runs: int, load_seconds: float,
            source_dir: Path | None) -> list:
    source = reuse_source(source_dir) if source_dir else start_source(orders, with_slot=False)
    try:
        with warehouse_file() as warehouse:
            env = acme_env(source, warehouse)
            first = run_acme(env, "sync", "--once")
            print(f"first sync: {first.seconds:.0f}s, peak RSS {first.peak_rss_mb:.0f} MB")
            rows = [("first sync peak RSS", first.peak_rss_mb, None, "MB"),
                    ("first sync time", first.seconds, None, "s")]
            serve, url = start_serve(env)
            try:
                traffic(env, rate, 5).wait()
                as_of = datetime.now(UTC)
                traffic(env, rate, 5).wait()
                rows.append(status_latency(url, runs))
                rows += under_load(env, url, clients, rate, load_seconds)
            finally:
                serve.send_signal(signal.SIGTERM)
                serve.wait(timeout=120)
            rows += report_latencies(warehouse, as_of, runs)
            try:
                rows += big_transaction(source, env, orders)
            except SystemExit as failed:  # the other figures still count: print them
                print(f"the big transaction did not apply: {failed}")
            return rows
    finally:
        source.server.down(purge=source_dir is None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--rate", type=float, default=200)
    # Enough samples for a p99 that is not simply the slowest one (the max is printed too).
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--load-seconds", type=float, default=90)
    parser.add_argument("--source-dir", type=Path, help="an embedded source already seeded "
                        "with --orders (one size only); the benchmark changes it")
    args = parser.parse_args()
    by_size = {orders: measure(orders, args.clients, args.rate, args.runs, args.load_seconds,
                               args.source_dir) for orders in args.orders}
    figures = [(f"{orders:,} orders: {figure}", value, baseline, unit)
               for orders, rows in by_size.items() for figure, value, baseline, unit in rows]
    report("scale", figures, {"orders": args.orders, "clients": args.clients,
                              "rate": args.rate, "runs": args.runs})


if __name__ == "__main__":
    main()

"""Shared by the benchmark scripts: a private seeded source, timing, and the results file."""

import json
import math
import resource
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg

from acme.config import SourceAddress
from acme.ports import free_port
from acme.source.embedded import EmbeddedServer
from acme.source.provision import provision
from acme.source.seed import SeedPlan, seed

RESULTS = Path(__file__).parent / "results"


@dataclass(frozen=True)
class BenchSource:
    server: EmbeddedServer
    address: SourceAddress

    @property
    def admin_dsn(self) -> str:
        return self.server.admin_dsn(self.address.database)


def start_source(orders: int, with_slot: bool,
                 server: EmbeddedServer | None = None) -> BenchSource:
    """A fresh embedded source (in a temporary directory unless given), provisioned and
    seeded."""
    server = server or EmbeddedServer(Path(tempfile.mkdtemp(prefix="acme-bench-")) / "pg")
    server.up(free_port())
    provision(server.admin_dsn(), with_slot=with_slot)
    source = BenchSource(server, SourceAddress(server.state().port))
    started = time.monotonic()
    result = seed(source.address.app_dsn, SeedPlan.for_orders(orders, seed=1))
    print(f"seeded {result.orders:,} orders / {result.order_items:,} items "
          f"in {time.monotonic() - started:.1f}s")
    settle(source)
    return source


@contextmanager
def warehouse_file(kept: Path | None = None) -> Iterator[Path]:
    """`kept` (a warehouse the user keeps between runs), else a warehouse file in a temporary
    directory that is deleted afterwards: a 1M-order run leaves some 160 MB."""
    if kept is not None:
        yield kept
        return
    with tempfile.TemporaryDirectory(prefix="acme-bench-wh-") as directory:
        yield Path(directory) / "warehouse.duckdb"


def settle(source: BenchSource) -> None:
    """Vacuum the seeded tables now, as a table at rest would be: otherwise autovacuum (and the
    first reader, setting hint bits) does it during whichever measurement comes first."""
    started = time.monotonic()
    with psycopg.connect(source.admin_dsn, autocommit=True) as admin:
        admin.execute("VACUUM (FREEZE, ANALYZE)")
    print(f"vacuumed in {time.monotonic() - started:.1f}s")


def peak_rss_mb() -> float:
    """This process's peak RSS plus the largest of its finished children's (the copy's reader
    process): an upper bound of what the sync it ran held at once."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return (own + resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024


def percentile(values: list[float], fraction: float) -> float:
    """The nearest-rank percentile: the smallest value at least `fraction` of the values are
    at or below (p99 of 100 values is the 99th smallest, of fewer than 100 the largest)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(round(fraction * len(ordered), 9)) - 1)]


def report(name: str, rows: list[tuple[str, float, float | None, str]], extra: dict) -> None:
    """Print (figure, value, baseline, unit) rows with ratios, and save them as JSON."""
    print(f"\n{'figure':<44}{'value':>14}{'baseline':>14}{'ratio':>8}  unit")
    for figure, value, baseline, unit in rows:
        ratio = f"{value / baseline:.2f}" if baseline else ""
        base = f"{baseline:,.0f}" if baseline else ""
        print(f"{figure:<44}{value:>14,.1f}{base:>14}{ratio:>8}  {unit}")
    RESULTS.mkdir(exist_ok=True)
    payload = {"benchmark": name, "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
               "figures": [{"figure": f, "value": v, "baseline": b, "unit": u,
                            "ratio": (v / b if b else None)} for f, v, b, u in rows],
               **extra}
    out = RESULTS / f"{name}.json"
    out.write_text(json.dumps(payload, indent=2))
    print(f"\nsaved {out}")

"""FastAPI application over one warehouse connection (owned by `acme serve`'s pipeline, or a
read-only one). Paths are compatible with ACME's existing analytics API; the dashboard at `/`
and its assets under `/static` (the charting library is shipped in the package: nothing is
loaded from the internet)."""

import gzip
import hmac
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import duckdb
from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from acme.api.pacing import ReadPacer
from acme.classification import StatusClassification
from acme.errors import AcmeError, ConfigError
from acme.observe.metrics import CONTENT_TYPE, PipelineMetrics
from acme.reports.cache import AnswerCache
from acme.reports.engine import MAX_LIMIT, parse_as_of
from acme.reports.json_answer import answer_json
from acme.reports.serialize import lag_payload, status_payload, story_payload
from acme.verify import VerifyReport
from acme.warehouse.inspect import order_story, warehouse_status

DASHBOARD = Path(__file__).with_name("dashboard.html")
STATIC = Path(__file__).with_name("static")
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="How many rows (1..1000).")]
AsOf = Annotated[str | None, Query(description="Answer as of this past time (ISO 8601, UTC "
                                               "unless a zone is given).")]


class _RequestTimer:
    """Times every request by route template (one series per endpoint, not per order id);
    plain ASGI, so it adds no task or stream per request."""

    def __init__(self, app, metrics: PipelineMetrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), [500]

        async def send_noting_status(message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.request_done(route, scope["method"], status[0], started)


class NotReady(AcmeError):
    """The warehouse holds no data yet (initial snapshot still running)."""


OPEN_PATHS = ("/health",)
COMPRESSION = 1  # gzip level: 2 MB of report JSON to a fifth in ~10 ms; higher gains little


def create_app(connection: Callable[[], duckdb.DuckDBPyConnection | None],
               classification: StatusClassification, metrics: PipelineMetrics | None = None,
               verify: Callable[[duckdb.DuckDBPyConnection], VerifyReport] | None = None,
               cache: AnswerCache | None = None, token: str | None = None,
               reads_per_second: float = 0) -> FastAPI:
    """`connection()` returns the live warehouse connection, or None while it is not open;
    `metrics` gathers what /metrics shows; `verify` compares the warehouse with the source;
    `cache` (invalidated by the pipeline at each commit) shares answers between requests.
    With a `token`, every path but /health asks for it as `Authorization: Bearer <token>`.
    Report answers are paced to `reads_per_second` (0: unpaced; see `pacing.py`)."""
    app = FastAPI(title="ACME Analytics", version="0.1.0",
                  description="Open orders, delivery dates, pending items and customers, "
                              "current or as of any past time, with their freshness.")
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    metrics = metrics or PipelineMetrics()
    pacer = ReadPacer(reads_per_second)

    app.add_middleware(_RequestTimer, metrics=metrics)

    if token:
        expected = f"Bearer {token}".encode()

        @app.middleware("http")
        async def _require_token(request: Request, call_next):
            given = request.headers.get("authorization", "").encode()
            if request.url.path in OPEN_PATHS or hmac.compare_digest(given, expected):
                return await call_next(request)
            return JSONResponse({"detail": "missing or wrong bearer token; send "
                                           "'Authorization: Bearer <ACME_API_TOKEN>'"},
                                status_code=401, headers={"WWW-Authenticate": "Bearer"})

    @app.exception_handler(AcmeError)
    async def _acme_error(request: Request, error: AcmeError) -> JSONResponse:
        code = 422 if isinstance(error, ConfigError) else 503
        return JSONResponse({"detail": str(error)}, status_code=code)

    @app.exception_handler(duckdb.ConnectionException)
    async def _reopening(request: Request, error: duckdb.ConnectionException) -> JSONResponse:
        # The pipeline closed its connection (it stopped) and a read-only one replaces it.
        return JSONResponse({"detail": "the warehouse is being reopened; retry"},
                            status_code=503)

    def db() -> duckdb.DuckDBPyConnection:
        live = connection()
        if live is None:
            raise NotReady("the warehouse is not open yet; the pipeline is starting")
        return live

    def compute(name: str, limit: int | None, moment: datetime | None,
                status: str | None) -> bytes:
        try:
            text = answer_json(db(), name, classification, limit, moment, status)
        except duckdb.CatalogException:
            raise NotReady("the warehouse has no data yet; the initial snapshot is "
                           "still running") from None
        # Compressed once per answer and commit: a report can hold thousands of rows, and
        # every reader then moves a fifth of the bytes.
        return gzip.compress(text, compresslevel=COMPRESSION)

    async def answer(request: Request, name: str, limit: int | None, as_of: str | None,
                     status: str | None = None) -> Response:
        # A shared answer (or the one before a commit, while its refresh runs) is served from
        # the event loop; only a miss takes a worker thread, so a crowd of readers holds the
        # GIL as little as possible.
        moment = parse_as_of(as_of)
        key = (name, limit, moment, status)
        await pacer.turn()
        body = cache.peek(key) if cache else None
        if body is None:
            body = await run_in_threadpool(
                lambda: cache.get(key, lambda: compute(name, limit, moment, status)) if cache
                else compute(name, limit, moment, status))
        if "gzip" in request.headers.get("accept-encoding", ""):
            return Response(body, media_type="application/json",
                            headers={"Content-Encoding": "gzip", "Vary": "Accept-Encoding"})
        return Response(gzip.decompress(body), media_type="application/json",
                        headers={"Vary": "Accept-Encoding"})

    @app.get("/", include_in_schema=False)
    def dashboard() -> HTMLResponse:
        return HTMLResponse(DASHBOARD.read_text())

    @app.get("/health", summary="Liveness")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/analytics/orders", summary="Open orders by delivery date and status")
    async def open_orders(request: Request, status: Literal["open"] = "open",
                          as_of: AsOf = None) -> Response:
        return await answer(request, "open-orders", None, as_of)

    @app.get("/analytics/orders/top", summary="Delivery dates with the most open orders")
    async def top_delivery_dates(request: Request, limit: Limit = 3,
                                 as_of: AsOf = None) -> Response:
        return await answer(request, "top-delivery-dates", limit, as_of)

    @app.get("/analytics/orders/product", summary="Open pending items by product")
    async def pending_items(request: Request, as_of: AsOf = None) -> Response:
        return await answer(request, "pending-items", None, as_of)

    @app.get("/analytics/orders/customers", summary="Customers with the most pending orders")
    async def top_customers(request: Request, status: Literal["open", "pending"] = "pending",
                            limit: Limit = 3, as_of: AsOf = None) -> Response:
        return await answer(request, "top-customers", limit, as_of, status)

    @app.get("/analytics/orders/{order_id}/history", summary="One order's versions and moves",
             responses={404: {"description": "No such order in the warehouse history"}})
    def history(order_id: int) -> dict[str, Any]:
        story = order_story(db(), order_id)
        if not story.versions:
            raise HTTPException(404, f"order {order_id} is not in the warehouse history")
        return story_payload(story)

    @app.get("/status", summary="Checkpoint, freshness, lag behind the source, row counts")
    def status() -> dict[str, Any]:
        return {**status_payload(warehouse_status(db())), "lag": lag_payload(metrics.lag)}

    @app.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
    def prometheus() -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    if verify is not None:
        @app.get("/verify", summary="Compare the warehouse with the source (slow: scans both)")
        def verify_now() -> dict[str, Any]:
            return verify(db()).payload()

    return app

"""Prometheus metrics: requests by route template, database pool, queries, runs recorded.

With several worker processes set `PROMETHEUS_MULTIPROC_DIR` to an empty
directory shared by them (`runwatch serve --workers N` does this itself): each
process writes its samples there and `/metrics` adds them up.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from fastapi import APIRouter, FastAPI, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client import REGISTRY as DEFAULT_REGISTRY

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])
M = TypeVar("M", Counter, Gauge, Histogram)

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

REQUESTS = Counter(
    "runwatch_http_requests_total", "HTTP requests answered.", ["method", "route", "status"]
)
REQUEST_SECONDS = Histogram(
    "runwatch_http_request_duration_seconds",
    "Time to answer an HTTP request.",
    ["method", "route", "status"],
    buckets=LATENCY_BUCKETS,
)
POOL_IN_USE = Gauge(
    "runwatch_db_pool_in_use",
    "Database connections checked out of the pool.",
    ["engine"],
    multiprocess_mode="livesum",
)
POOL_WAITING = Gauge(
    "runwatch_db_pool_waiting",
    "Requests waiting for a database connection.",
    ["engine"],
    multiprocess_mode="livesum",
)
QUERY_SECONDS = Histogram(
    "runwatch_db_query_duration_seconds",
    "Time spent in one named query function.",
    ["query"],
    buckets=LATENCY_BUCKETS,
)
RUNS_RECORDED = Counter(
    "runwatch_runs_recorded_total",
    "Runs recorded, or moved to a status, by kind and status.",
    ["kind", "status"],
)
EXTRACTION_WORKER_EVENTS = Counter(
    "runwatch_extraction_worker_events_total",
    "Claims, lease extensions, completions, failures and expired leases of extraction runs.",
    ["event"],
)


@functools.cache
def child(metric: M, *labels: str) -> M:
    """`metric.labels(*labels)`, looked up once per label values (a lock and a dict each time).

    Only for labels from a small fixed set (routes, statuses, query and engine names).
    """
    return metric.labels(*labels)


@dataclass(frozen=True)
class PoolGauge:
    """Counts connections in use and requests waiting for one, per engine."""

    in_use: Gauge
    waiting: Gauge

    @staticmethod
    @functools.cache
    def of(engine: str) -> PoolGauge:
        return PoolGauge(POOL_IN_USE.labels(engine), POOL_WAITING.labels(engine))


def _registry() -> CollectorRegistry:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return registry
    return DEFAULT_REGISTRY


router = APIRouter(tags=["operations"])


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Text format 0.0.4"}},
)
async def metrics() -> Response:
    return Response(generate_latest(_registry()), media_type=CONTENT_TYPE_LATEST)


def install_metrics(app: FastAPI) -> None:
    # Requests are counted and timed by middleware.RequestContext.
    app.include_router(router)


@contextmanager
def query_timer(name: str) -> Iterator[None]:
    """Record the latency of the query run inside the block under `name`."""
    started = time.perf_counter()
    try:
        yield
    finally:
        child(QUERY_SECONDS, name).observe(time.perf_counter() - started)


def measured(name: str) -> Callable[[F], F]:
    """Decorate an async query function so that its latency is recorded under `name`."""

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            with query_timer(name):
                return await fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate

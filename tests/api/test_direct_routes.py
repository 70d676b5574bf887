"""The lists run straight from their path answer exactly as through the router."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI, Request, Response

from runwatch.app import create_app
from runwatch.config import Settings
from runwatch.routing import DirectRoutes
from tests.factories import layer_run

QUERIES = [
    "",
    "?limit=2",
    "?layer_name=nightly-user-reflection&status=failed,success&limit=3",
    "?sort=-estimated_cost_usd&limit=1&offset=1",
    "?limit=abc&offset=-1",  # invalid values: 422 from the query model
    "?bogus=1",  # an unknown parameter: 422 from the app's check
    "?cursor=not-a-cursor",  # 422 from the route's own code
    "?limit=1000",  # beyond the configured page size
    "?since=2026-01-24T00:00:00Z&until=2026-01-23T00:00:00Z",  # a reversed window
]

SUMMARY_QUERIES = [
    "",
    "?days=30&layer_name=nightly-user-reflection",
    "?days=31",  # beyond RUNWATCH_MAX_STATS_DAYS
    "?days=0&layer_name=",
    "?days=1&days=2",
]


@pytest.fixture
async def app(settings: Settings, engines: Any) -> AsyncIterator[FastAPI]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        yield app


def window_step(app: FastAPI) -> int:
    return int(time.time() // app.state.settings.stats_etag_seconds)


def comparable(reply: httpx.Response) -> tuple[int, dict[str, str], str]:
    headers = {k: v for k, v in reply.headers.items() if k != "x-request-id"}
    # Problems name their request's id; everything else must be equal.
    body = re.sub(r'"request_id":"[0-9a-f]+"', "", reply.text)
    return reply.status_code, headers, body


async def test_a_list_is_run_directly_once_routed_and_answers_the_same(app: FastAPI) -> None:
    transport = httpx.ASGITransport(app=app)
    # Uncompressed, so that bodies differing only in their request id have equal lengths.
    identity = {"Accept-Encoding": "identity"}
    async with httpx.AsyncClient(
        transport=transport, base_url="http://runwatch.test", headers=identity
    ) as client:
        for status in ("success", "failed", "success", "partial"):
            assert (await client.post("/runs", json=layer_run(status=status))).status_code == 201
        for path, queries in (
            ("/runs", QUERIES),
            ("/extraction-runs", QUERIES[:2]),
            ("/runs/stats/summary", SUMMARY_QUERIES),
        ):
            for query in queries:
                direct: DirectRoutes = app.state.direct_routes
                while True:
                    step = window_step(app)
                    direct.routes.clear()
                    routed = await client.get(path + query)
                    assert path in direct.routes  # learnt from the router's choice
                    again = await client.get(path + query)
                    if window_step(app) == step:  # else the summary's window moved on: again
                        break
                assert comparable(again) == comparable(routed), path + query
        statuses = {(await client.get(f"/runs{q}")).status_code for q in QUERIES}
        assert statuses == {200, 422}
        # Nothing with a parameter in its path, or a dependency of its own, is run here.
        await client.get("/extraction-runs")
        for path in ("/runs/run-000001", "/runs/stats/timeseries", "/runs/errors", "/healthz"):
            await client.get(path)
            await client.get(path)
        direct = app.state.direct_routes
        assert set(direct.routes) == {"/runs", "/extraction-runs", "/runs/stats/summary"}


async def test_requests_run_directly_are_logged_and_counted_under_their_route(
    app: FastAPI,
) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://runwatch.test") as client:

        async def served() -> float:
            text = (await client.get("/metrics")).text
            line = re.search(
                r'runwatch_http_requests_total\{method="GET",route="/runs",status="200"\} (\S+)',
                text,
            )
            return float(line.group(1)) if line else 0.0

        before = await served()
        for _ in range(5):
            reply = await client.get("/runs?limit=1", headers={"X-Request-ID": "direct-1"})
            assert reply.headers["x-request-id"] == "direct-1"
            assert reply.headers["x-content-type-options"] == "nosniff"
        assert "/runs" in app.state.direct_routes.routes
        assert await served() == before + 5


async def test_an_app_whose_router_adds_a_dependency_runs_nothing_directly() -> None:
    seen: list[str] = []

    async def audit(request: Request) -> None:
        seen.append(request.url.path)

    async def listing(request: Request) -> Response:
        return Response(b"[]", media_type="application/json")

    router = APIRouter()
    router.add_api_route("/things", listing, methods=["GET"])
    app = FastAPI()
    app.include_router(router, dependencies=[Depends(audit)])
    app.add_middleware(DirectRoutes, fastapi=app)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        for _ in range(3):
            assert (await client.get("/things")).status_code == 200
    assert seen == ["/things"] * 3  # the router's dependency ran every time
    assert app.state.direct_routes.routes == {}
    assert app.state.direct_routes.checks is None

"""Injection strings never reach SQL as text; request ids; security headers; CORS."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
from sqlalchemy import event

from runwatch.config import Settings
from runwatch.db.engine import Engines
from tests.factories import layer_run
from tests.security.conftest import app_of, serve

PAYLOADS = [
    "x' OR '1'='1",
    "'; DROP TABLE layer_runs; --",
    '" OR 1=1 --',
    "started_at; DROP TABLE layer_runs",
    "1) UNION SELECT token_hash FROM api_keys --",
    "-started_at, (SELECT 1)",
]
MARKERS = ("DROP TABLE", "'1'='1", "UNION SELECT", "OR 1=1", "(SELECT 1)")


@contextmanager
def recorded_sql(client: httpx.AsyncClient) -> Iterator[list[str]]:
    """Every statement text the app sends to the database while the block runs."""
    engines = app_of(client).state.engines
    targets = {id(e.sync_engine): e.sync_engine for e in (engines.read, engines.write)}
    statements: list[str] = []

    def record(_conn, _cursor, statement, *_args) -> None:  # type: ignore[no-untyped-def]
        statements.append(statement)

    for engine in targets.values():
        event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        for engine in targets.values():
            event.remove(engine, "before_cursor_execute", record)


@pytest.mark.parametrize("payload", PAYLOADS)
async def test_filter_and_sort_inputs_never_reach_sql_as_text(
    settings: Settings, engines: Engines, payload: str
) -> None:
    async with serve(settings) as client:
        assert (await client.post("/runs", json=layer_run(id="kept"))).status_code == 201
        with recorded_sql(client) as statements:
            literal_filters = [
                ("/runs", {"layer_name": payload}),
                ("/runs", {"model_name": payload}),
                ("/runs/stats/summary", {"layer_name": payload}),
                ("/runs/stats/timeseries", {"layer_name": payload}),
                ("/extraction-runs", {"prompt_id": payload}),
                ("/extraction-runs", {"config_id": payload}),
                ("/extraction-runs", {"document_name": payload}),
            ]
            for path, params in literal_filters:
                response = await client.get(path, params=params)
                assert response.status_code == 200, response.text
                if path in ("/runs", "/extraction-runs"):
                    assert response.json()["total"] == 0  # matched as a literal value
            rejected = [
                ("/runs", {"sort": payload}),
                ("/runs", {"status": payload}),
                ("/runs", {"cursor": payload}),
                ("/runs", {"since": payload}),
                ("/extraction-runs", {"sort": payload}),
                ("/extraction-runs", {"status": payload}),
            ]
            for path, params in rejected:
                response = await client.get(path, params=params)
                assert response.status_code == 422, (params, response.text)
            assert (await client.get(f"/runs/{payload}")).status_code in (404, 422)
        assert statements, "the filters above must have queried the database"
        for statement in statements:
            assert not any(marker in statement for marker in MARKERS), statement
        assert (await client.get("/runs/kept")).status_code == 200


async def test_request_id_generated_echoed_and_in_problems(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    generated = await client.get("/runs")
    first = generated.headers["X-Request-ID"]
    assert len(first) >= 16
    assert (await client.get("/runs")).headers["X-Request-ID"] != first

    with caplog.at_level(logging.INFO, logger="runwatch"):
        echoed = await client.get("/runs/missing", headers={"X-Request-ID": "req-abc.123"})
    assert echoed.headers["X-Request-ID"] == "req-abc.123"
    assert echoed.status_code == 404
    assert echoed.json()["request_id"] == "req-abc.123"
    assert any("req-abc.123" in record.getMessage() for record in caplog.records)

    # An id that could forge log lines or headers is replaced, not echoed.
    forged = await client.get("/runs", headers={"X-Request-ID": "a b\tINFO fake"})
    assert forged.headers["X-Request-ID"] != "a b\tINFO fake"
    too_long = await client.get("/runs", headers={"X-Request-ID": "a" * 129})
    assert too_long.headers["X-Request-ID"] != "a" * 129


async def test_request_id_on_a_413_and_a_422(settings: Settings, engines: Engines) -> None:
    async with serve(settings, max_body_bytes=1024) as client:
        big = await client.post("/runs", content=b"x" * 2000, headers={"X-Request-ID": "big-1"})
        assert big.status_code == 413
        assert big.json()["request_id"] == "big-1"
        bad = await client.get("/runs", params={"limit": 0}, headers={"X-Request-ID": "bad-1"})
        assert bad.json()["request_id"] == "bad-1"


async def test_dashboard_security_headers(client: httpx.AsyncClient) -> None:
    page = await client.get("/")
    assert page.status_code == 200
    csp = page.headers["Content-Security-Policy"]
    directives = {d.split()[0]: d.split()[1:] for d in csp.split(";") if d.strip()}
    assert "'unsafe-inline'" not in csp
    assert "'unsafe-eval'" not in csp
    assert directives["script-src"] == ["'self'"]
    assert directives["frame-ancestors"] == ["'none'"]
    assert page.headers["X-Frame-Options"] == "DENY"
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert page.headers["Referrer-Policy"] == "no-referrer"
    html = page.text.lower()
    # CSP without 'unsafe-inline' only works if the page has no inline code.
    assert "<script>" not in html
    assert " onclick=" not in html
    assert "<style>" not in html
    api = await client.get("/runs")
    assert api.headers["X-Content-Type-Options"] == "nosniff"


async def test_cors_is_off_by_default(client: httpx.AsyncClient) -> None:
    origin = {"Origin": "https://evil.example"}
    response = await client.get("/runs", headers=origin)
    assert "access-control-allow-origin" not in response.headers
    preflight = await client.options(
        "/runs", headers={**origin, "Access-Control-Request-Method": "POST"}
    )
    assert "access-control-allow-origin" not in preflight.headers


async def test_cors_allows_only_configured_origins(settings: Settings, engines: Engines) -> None:
    allowed = "https://dash.example"
    async with serve(settings, cors_origins=f"{allowed}, https://other.example") as client:
        response = await client.get("/runs", headers={"Origin": allowed})
        assert response.headers["access-control-allow-origin"] == allowed
        assert "X-Request-ID" in response.headers["access-control-expose-headers"]
        preflight = await client.options(
            "/runs",
            headers={
                "Origin": allowed,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "Authorization, Content-Type",
            },
        )
        assert preflight.status_code == 200
        assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
        assert "access-control-allow-credentials" not in preflight.headers
        other = await client.get("/runs", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers

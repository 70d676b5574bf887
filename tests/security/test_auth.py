"""API keys over HTTP: 401/403 problems, scopes, open health checks, safe defaults at start."""

from __future__ import annotations

import hashlib
import re

import httpx
import pytest
from sqlalchemy import event, select

from runwatch.config import Settings
from runwatch.db.engine import Engines
from runwatch.db.tables import api_keys
from runwatch.queries.api_keys import revoke_api_key
from runwatch.security import InsecureStart
from tests.factories import layer_run
from tests.security.conftest import app_of, bearer, new_key, serve

KEYED = {"api_key_cache_seconds": 0}


def assert_problem(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == code
    assert body["status"] == status
    assert body["request_id"] == response.headers["X-Request-ID"]
    return body


def assert_401(response: httpx.Response) -> dict:
    body = assert_problem(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    return body


async def test_without_keys_loopback_is_open(settings: Settings, engines: Engines) -> None:
    async with serve(settings, host="127.0.0.1") as client:
        assert (await client.get("/runs")).status_code == 200
        assert (await client.post("/runs", json=layer_run())).status_code == 201


async def test_once_a_key_exists_every_data_request_needs_one(
    settings: Settings, engines: Engines
) -> None:
    await new_key(engines, "read")
    async with serve(settings, **KEYED) as client:
        for path in ("/runs", "/runs/stats/summary", "/extraction-runs", "/runs/nope"):
            body = assert_401(await client.get(path))
            assert "Authorization: Bearer" in body["detail"]
        assert_401(await client.post("/runs", json=layer_run()))
        assert_401(await client.get("/runs", headers={"Authorization": "Bearer nonsense"}))
        assert_401(await client.get("/runs", headers={"Authorization": "Basic dXNlcjpwdw=="}))
        assert_401(await client.get("/runs", headers={"Authorization": "Bearer "}))
        assert_401(await client.get("/runs", headers={"Authorization": "Bearer " + "x" * 600}))


async def test_scopes_read_write_admin(settings: Settings, engines: Engines) -> None:
    read = await new_key(engines, "read")
    write = await new_key(engines, "write")
    admin = await new_key(engines, "admin")
    async with serve(settings, **KEYED) as client:
        for token in (read, write, admin):
            assert (await client.get("/runs", headers=bearer(token))).status_code == 200
            assert (await client.get("/extraction-runs", headers=bearer(token))).status_code == 200
        body = assert_problem(
            await client.post("/runs", json=layer_run(), headers=bearer(read)), 403, "forbidden"
        )
        assert "read" in body["detail"]
        assert_problem(
            await client.delete("/runs/anything", headers=bearer(read)), 403, "forbidden"
        )
        for token in (write, admin):
            response = await client.post("/runs", json=layer_run(), headers=bearer(token))
            assert response.status_code == 201


async def test_revoked_key_is_refused_and_revoking_all_does_not_open_the_server(
    settings: Settings, engines: Engines
) -> None:
    token = await new_key(engines, "write", name="ci")
    async with serve(settings, **KEYED) as client:
        assert (await client.get("/runs", headers=bearer(token))).status_code == 200
        async with engines.write.begin() as conn:
            assert await revoke_api_key(conn, key="ci") == 1
        assert_401(await client.get("/runs", headers=bearer(token)))
        assert_401(await client.get("/runs"))


def _api_routes(client: httpx.AsyncClient) -> list[tuple[str, str]]:
    """Every operation in the OpenAPI schema but the health checks, path parameters filled in."""
    routes = []
    for template, operations in app_of(client).openapi()["paths"].items():
        if template in ("/healthz", "/readyz", "/metrics"):
            continue
        path = re.sub(r"\{[^}]+\}", "some-id", template)
        routes += [(method.upper(), path) for method in operations]
    return routes


async def test_every_api_route_is_covered(settings: Settings, engines: Engines) -> None:
    read = await new_key(engines, "read")
    async with serve(settings, **KEYED) as client:
        routes = _api_routes(client)
        methods = {method for method, _ in routes}
        assert {"GET", "POST", "PATCH", "DELETE"} <= methods
        assert any(path.startswith("/extraction-runs") for _, path in routes)
        for method, path in routes:
            assert_401(await client.request(method, path))
            if method not in ("GET", "HEAD"):
                response = await client.request(method, path, headers=bearer(read))
                assert_problem(response, 403, "forbidden")


async def test_health_dashboard_and_schema_stay_open(settings: Settings, engines: Engines) -> None:
    await new_key(engines, "admin")
    async with serve(settings, **KEYED) as client:
        assert (await client.get("/healthz")).status_code == 200
        assert (await client.get("/readyz")).status_code == 200
        page = await client.get("/")
        assert page.status_code == 200
        assert "text/html" in page.headers["content-type"]
        assert (await client.get("/ui/app.css")).status_code == 200
        assert (await client.get("/openapi.json")).status_code == 200


async def test_only_a_hash_of_the_token_is_stored(settings: Settings, engines: Engines) -> None:
    token = await new_key(engines, "read", name="dash")
    async with engines.read.connect() as conn:
        row = (await conn.execute(select(api_keys))).mappings().one()
    assert row["token_hash"] == hashlib.sha256(token.encode()).hexdigest()
    assert all(token not in str(value) for value in row.values())
    assert token.startswith(row["prefix"])
    assert len(row["prefix"]) < len(token) // 3


async def test_refuses_to_start_on_a_public_address_without_keys(
    settings: Settings, engines: Engines
) -> None:
    with pytest.raises(InsecureStart, match="runwatch keys create"):
        async with serve(settings, host="0.0.0.0"):
            pass


async def test_insecure_flag_serves_without_keys(settings: Settings, engines: Engines) -> None:
    async with serve(settings, host="0.0.0.0", insecure=True) as client:
        assert (await client.get("/runs")).status_code == 200


async def test_public_address_with_keys_starts_and_requires_them(
    settings: Settings, engines: Engines
) -> None:
    token = await new_key(engines, "read")
    async with serve(settings, host="0.0.0.0", **KEYED) as client:
        assert_401(await client.get("/runs"))
        assert (await client.get("/runs", headers=bearer(token))).status_code == 200


async def test_public_address_fails_closed_if_keys_vanish(
    settings: Settings, engines: Engines
) -> None:
    await new_key(engines, "read")
    async with serve(settings, host="0.0.0.0", **KEYED) as client:
        async with engines.write.begin() as conn:
            await conn.execute(api_keys.delete())
        body = assert_401(await client.get("/runs"))
        assert "runwatch keys create" in body["detail"]


async def test_key_set_is_cached_between_requests(settings: Settings, engines: Engines) -> None:
    token = await new_key(engines, "read")
    async with serve(settings, api_key_cache_seconds=3600) as client:
        statements: list[str] = []
        engine = app_of(client).state.engines.write.sync_engine

        def record(_conn, _cursor, statement, *_args) -> None:  # type: ignore[no-untyped-def]
            statements.append(statement)

        event.listen(engine, "before_cursor_execute", record)
        try:
            for _ in range(5):
                assert (await client.get("/runs", headers=bearer(token))).status_code == 200
        finally:
            event.remove(engine, "before_cursor_execute", record)
        assert not [s for s in statements if "api_keys" in s]


async def test_openapi_documents_the_scheme_and_the_answers(
    settings: Settings, engines: Engines
) -> None:
    async with serve(settings) as client:
        spec = app_of(client).openapi()
    assert spec["components"]["securitySchemes"]["apiKey"]["scheme"] == "bearer"
    for template, operations in spec["paths"].items():
        for operation in operations.values():
            guarded = template.startswith(("/runs", "/extraction-runs"))
            assert (operation.get("security") == [{"apiKey": []}]) is guarded, template
            if guarded:
                assert {"401", "403"} <= set(operation["responses"]), template

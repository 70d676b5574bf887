"""405 answers name in `Allow` exactly the methods the path serves.

A concrete path (`/runs/export`) is one resource with its own methods, matched
before a templated one (`/runs/{run_id}`) as OpenAPI matches paths: a method it
does not serve is 405, not a request about a run with the id `export`.
"""

from __future__ import annotations

import re

import httpx
import pytest

from runwatch.app import create_app
from runwatch.config import Settings
from runwatch.domain import RESERVED_RUN_IDS
from runwatch.routing import ConcretePathsFirst, leaf_routes
from tests.factories import layer_run

# What each path serves, from the HTTP contract (DESIGN.md), not from the router.
CASES = [
    ("PUT", "/runs", {"GET", "POST"}),
    ("PUT", "/runs/batch", {"POST"}),
    ("PATCH", "/runs/batch", {"POST"}),
    ("OPTIONS", "/runs/export", {"GET"}),
    ("DELETE", "/runs/errors", {"GET"}),
    ("POST", "/runs/run-1", {"GET", "PATCH", "DELETE"}),
    ("DELETE", "/runs/stats/summary", {"GET"}),
    ("PUT", "/extraction-runs", {"GET", "POST"}),
    ("GET", "/extraction-runs/claim", {"POST"}),
    ("PATCH", "/extraction-runs/compare", {"GET"}),
    ("OPTIONS", "/extraction-runs/export", {"GET"}),
    ("POST", "/extraction-runs/a/compare/b", {"GET"}),
    ("DELETE", "/healthz", {"GET"}),
]
HTTP_METHODS = {"GET", "PUT", "POST", "DELETE", "OPTIONS", "HEAD", "PATCH", "TRACE"}


@pytest.mark.parametrize(("method", "path", "allowed"), CASES)
async def test_405_names_every_allowed_method(
    client: httpx.AsyncClient, method: str, path: str, allowed: set[str]
) -> None:
    response = await client.request(method, path)
    assert response.status_code == 405
    assert response.headers["content-type"] == "application/problem+json"
    assert set(response.headers["allow"].split(", ")) == allowed
    for other in allowed - {"POST", "PATCH", "DELETE"}:
        assert (await client.request(other, path)).status_code != 405


async def test_options_allow_is_what_the_schema_declares(client: httpx.AsyncClient) -> None:
    """Every path of the OpenAPI schema: OPTIONS is 405 and `Allow` lists its operations."""
    schema = (await client.get("/openapi.json")).json()
    guarded = [path for path in schema["paths"] if path.startswith(("/runs", "/extraction-runs"))]
    assert len(guarded) >= 15
    for template, item in schema["paths"].items():
        declared = {method.upper() for method in item} & HTTP_METHODS
        path = re.sub(r"\{[^}]+\}", "some-id", template)
        response = await client.options(path)
        assert response.status_code == 405, template
        assert set(response.headers["allow"].split(", ")) == declared, template


@pytest.mark.parametrize("run_id", sorted(RESERVED_RUN_IDS))
async def test_no_run_takes_the_id_of_a_concrete_path(
    client: httpx.AsyncClient, run_id: str
) -> None:
    """Such a run could never be read, updated or deleted by id: refused, alone or in a batch."""
    refused = await client.post("/runs", json=layer_run(id=run_id, status="running"))
    assert refused.status_code == 422, refused.text
    assert refused.json()["errors"][0]["loc"] == ["body", "id"]
    assert run_id in refused.json()["errors"][0]["msg"]
    batch = {"runs": [layer_run(id=f"ok-{run_id}"), layer_run(id=run_id)]}
    assert (await client.post("/runs/batch", json=batch)).status_code == 422
    listed = (await client.get("/runs")).json()
    assert listed["total"] == 0  # nothing of either request was stored
    # Ids that only contain such a name are ids like any other.
    assert (await client.post("/runs", json=layer_run(id=f"{run_id}-1"))).status_code == 201


def test_reserved_ids_are_the_concrete_paths_beside_run_ids() -> None:
    """RESERVED_RUN_IDS is every last segment a templated run path would otherwise take."""
    app = create_app(Settings(database_url="sqlite+aiosqlite:///:memory:"))
    shadowed = {
        path.rsplit("/", 1)[1]
        for route in leaf_routes(app.router.routes)
        if isinstance(route, ConcretePathsFirst)
        for path in route.concrete_paths
    }
    assert shadowed == RESERVED_RUN_IDS


async def test_a_method_a_concrete_path_lacks_is_a_documented_405(
    client: httpx.AsyncClient,
) -> None:
    patched = await client.patch("/runs/export", json={"status": "failed"})
    assert patched.status_code == 405
    assert patched.headers["allow"] == "GET"
    schema = (await client.get("/openapi.json")).json()
    for method in ("patch", "delete"):
        for path in ("/runs/{run_id}", "/extraction-runs/{run_id}"):
            assert "405" in schema["paths"][path][method]["responses"], (method, path)
    # GET /runs/{run_id} can spell /runs/batch (POST only), never /runs/export or /runs/errors.
    assert (
        "`/runs/batch`"
        in schema["paths"]["/runs/{run_id}"]["get"]["responses"]["405"]["description"]
    )
    assert "405" not in schema["paths"]["/runs/export"]["get"]["responses"]

"""405 answers name in `Allow` exactly the methods the path serves.

A concrete path (`/runs/export`) is one resource with its own methods, matched
before a templated one (`/runs/{run_id}`) as OpenAPI matches paths: a method it
does not serve is 405, not a request about a run with the id `export`.
"""

from __future__ import annotations

import re

import httpx
import pytest

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


async def test_a_run_whose_id_is_a_concrete_path_is_not_reached_through_it(
    client: httpx.AsyncClient,
) -> None:
    stored = await client.post("/runs", json=layer_run(id="export", status="running"))
    assert stored.status_code == 201, stored.text
    # PATCH /runs/export is about the export resource, which has no PATCH.
    patched = await client.patch("/runs/export", json={"status": "failed"})
    assert patched.status_code == 405
    assert patched.headers["allow"] == "GET"
    listed = (await client.get("/runs", params={"status": "running"})).json()
    assert [r["id"] for r in listed["runs"]] == ["export"]  # unchanged

"""The OpenAPI document: readable ids, problem answers, declared headers, examples that work."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from runwatch import errors
from runwatch.app import create_app
from runwatch.config import Settings
from runwatch.openapi import OPERATION_IDS, REQUEST_EXAMPLES, operation_id

HTTP_METHODS = {"get", "post", "put", "patch", "delete", "head", "options"}


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return create_app(Settings(database_url="sqlite:///unused.db")).openapi()


def operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, item in schema["paths"].items()
        for method, operation in item.items()
        if method in HTTP_METHODS
    ]


def test_operation_ids_read_as_names(schema: dict[str, Any]) -> None:
    ids = {(method, path): op["operationId"] for method, path, op in operations(schema)}
    assert ids["GET", "/runs"] == "listLayerRuns"
    assert ids["GET", "/runs/{run_id}"] == "getLayerRun"
    assert ids["GET", "/extraction-runs"] == "listExtractionRuns"
    assert ids["POST", "/extraction-runs/claim"] == "claimExtractionRuns"
    # Every operation is named in the one table, and every name there is in use.
    assert ids == OPERATION_IDS
    assert len(set(ids.values())) == len(ids)
    for name in ids.values():
        assert re.fullmatch(r"[a-z]+(?:[A-Z][a-z0-9]*)+", name), name


def test_a_route_missing_from_the_table_still_gets_a_readable_id() -> None:
    from fastapi.routing import APIRoute

    async def endpoint() -> None:
        return None

    route = APIRoute("/extraction-runs/archive", endpoint, methods=["GET"])
    assert ("GET", "/extraction-runs/archive") not in OPERATION_IDS
    assert operation_id(route) == "getExtractionRunsArchive"


def test_every_error_is_a_problem_with_a_code_from_the_enum(schema: dict[str, Any]) -> None:
    problem = schema["components"]["schemas"]["Problem"]
    codes = set(problem["properties"]["code"]["enum"])
    # Every code the renderer can produce is declared, and nothing more.
    # Besides the domain errors: `internal` (internal_error_response, any 5xx) and
    # `unavailable` (unavailable_response, a database that is down).
    raised = {cls.code for cls in _subclasses(errors.RunwatchError)} | {"internal", "unavailable"}
    raised |= {code for code, _title in errors._HTTP_CODES.values()}
    assert codes == raised
    errors_seen = 0
    for method, path, operation in operations(schema):
        for status, response in operation["responses"].items():
            if int(status) >= 400:
                errors_seen += 1
                assert response["content"] == {
                    "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
                }, (method, path, status)
                assert response["description"] != "Error.", (method, path, status)
    assert errors_seen > 50
    assert "HTTPValidationError" not in schema["components"]["schemas"]


def _subclasses(cls: type) -> set[type]:
    found = set()
    for sub in cls.__subclasses__():
        found |= {sub} | _subclasses(sub)
    return found


def test_response_headers_are_declared(schema: dict[str, Any]) -> None:
    headers = schema["components"]["headers"]
    assert {"X-Request-ID", "ETag", "Location", "Retry-After"} <= set(headers)

    def declared(method: str, path: str, status: str) -> set[str]:
        response = schema["paths"][path][method.lower()]["responses"][status]
        return set(response.get("headers", {}))

    for method, path, operation in operations(schema):
        for status in operation["responses"]:
            assert "X-Request-ID" in declared(method, path, status), (method, path, status)
            if status == "503":
                assert "Retry-After" in declared(method, path, status), (method, path)
    assert "Location" in declared("POST", "/runs", "201")
    assert "Location" in declared("POST", "/extraction-runs", "202")
    for path in ("/runs", "/runs/{run_id}", "/runs/stats/summary", "/runs/stats/timeseries"):
        assert "ETag" in declared("GET", path, "200"), path


def test_every_tag_is_described(schema: dict[str, Any]) -> None:
    described = {tag["name"]: tag.get("description", "") for tag in schema["tags"]}
    used = {tag for _m, _p, op in operations(schema) for tag in op.get("tags", ())}
    assert used
    for tag in used:
        assert len(described.get(tag, "")) > 20, tag


def test_every_request_body_has_an_example(schema: dict[str, Any]) -> None:
    with_body = [op for _m, _p, op in operations(schema) if "requestBody" in op]
    assert len(with_body) == len(REQUEST_EXAMPLES)
    for operation in with_body:
        body = operation["requestBody"]["content"]["application/json"]
        assert body["example"] == REQUEST_EXAMPLES[operation["operationId"]]


async def test_the_examples_are_accepted(client: httpx.AsyncClient) -> None:
    """Each documented example, sent as it is, does what the operation says."""
    ex = REQUEST_EXAMPLES
    created = await client.post("/runs", json=ex["createLayerRun"])
    assert created.status_code == 201, created.text
    assert created.headers["Location"] == f"/runs/{created.json()['id']}"

    batch = await client.post("/runs/batch", json=ex["createLayerRuns"])
    assert batch.status_code == 200, batch.text
    assert batch.json()["created"] == 2
    statuses = {}
    for result in batch.json()["results"]:
        statuses[(await client.get(f"/runs/{result['id']}")).json()["status"]] = result["id"]
    running = statuses["running"]
    updated = await client.patch(f"/runs/{running}", json=ex["updateLayerRun"])
    assert updated.status_code == 200, updated.text
    assert updated.json()["status"] == "partial"

    accepted = await client.post("/extraction-runs", json=ex["createExtractionRun"])
    assert accepted.status_code == 202, accepted.text
    run_id = accepted.json()["run_id"]
    assert accepted.headers["Location"] == f"/extraction-runs/{run_id}"
    claimed = await client.post("/extraction-runs/claim", json=ex["claimExtractionRuns"])
    assert claimed.status_code == 200, claimed.text
    assert [r["id"] for r in claimed.json()["runs"]] == [run_id]
    released = await client.post(
        f"/extraction-runs/{run_id}/release", json=ex["releaseExtractionRun"]
    )
    assert released.status_code == 200, released.text
    claimed = await client.post("/extraction-runs/claim", json=ex["claimExtractionRuns"])
    assert [r["id"] for r in claimed.json()["runs"]] == [run_id]
    completed = await client.patch(f"/extraction-runs/{run_id}", json=ex["updateExtractionRun"])
    assert completed.status_code == 200, completed.text
    assert completed.json()["status"] == "completed"


async def test_declared_limits_are_the_enforced_ones(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    """A value at a declared maximum is accepted and one above it refused (no ST202)."""
    schema = (await client.get("/openapi.json")).json()
    checked = 0
    for method, path, operation in operations(schema):
        if method != "GET" or "{" in path:
            continue
        for parameter in operation.get("parameters", ()):
            branches = [parameter["schema"], *parameter["schema"].get("anyOf", ())]
            maximum = next((b["maximum"] for b in branches if "maximum" in b), None)
            if maximum is None:
                continue
            extra = {"bucket": "day"} if path == "/runs/stats/timeseries" else {}
            # Other required parameters get a value; comparing two versions that
            # have no runs is a 404, which is not a refusal of the limit.
            required = [p["name"] for p in operation["parameters"] if p.get("required")]
            extra.update(dict.fromkeys(required, "x"))
            accepted = (200, 404) if path.endswith("/compare") and "a" in required else (200,)
            name = parameter["name"]
            at = await client.get(path, params={name: int(maximum), **extra})
            assert at.status_code in accepted, (path, name, maximum, at.text)
            above = await client.get(path, params={name: int(maximum) + 1, **extra})
            assert above.status_code == 422, (path, name, maximum)
            checked += 1
    assert checked >= 6
    batch = schema["components"]["schemas"]["LayerRunBatch"]["properties"]["runs"]
    assert batch["maxItems"] == settings.max_batch_size

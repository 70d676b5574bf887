"""Every documented limit, at the limit (accepted) and just past it (a 4xx problem)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from runwatch.config import Settings
from runwatch.db.engine import Engines
from runwatch.domain import MAX_JSON_BYTES, MAX_JSON_DEPTH
from tests.factories import layer_run
from tests.security.conftest import serve

JSON = {"content-type": "application/json"}


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text[:500]
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == code
    return body


def padded(body: dict[str, Any], size: int) -> bytes:
    """`body` as JSON followed by whitespace up to exactly `size` bytes."""
    raw = json.dumps(body).encode()
    assert len(raw) <= size
    return raw + b" " * (size - len(raw))


async def chunks(data: bytes, chunk: int = 700) -> AsyncIterator[bytes]:
    for start in range(0, len(data), chunk):
        yield data[start : start + chunk]


def nested(levels: int) -> Any:
    """A JSON value `levels` levels deep (an empty list counts as one)."""
    value: Any = []
    for _ in range(levels - 1):
        value = [value]
    return value


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_body_size(settings: Settings, engines: Engines, chunked: bool) -> None:
    limit = 2048
    async with serve(settings, max_body_bytes=limit) as client:
        at = padded(layer_run(), limit)
        past = padded(layer_run(), limit + 1)
        for body, expected in ((at, 201), (past, 413)):
            content = chunks(body) if chunked else body
            response = await client.post("/runs", content=content, headers=JSON)
            if expected == 413:
                assert_problem(response, 413, "payload_too_large")
                assert str(limit) in response.json()["detail"]
            else:
                assert response.status_code == 201, response.text
        ids = (await client.get("/runs")).json()["runs"]
        assert len(ids) == 1  # the body past the limit stored nothing


async def test_batch_size(settings: Settings, engines: Engines) -> None:
    async with serve(settings, max_batch_size=5) as client:
        ok = await client.post("/runs/batch", json={"runs": [layer_run() for _ in range(5)]})
        assert ok.status_code == 200, ok.text
        assert ok.json()["created"] == 5
        body = assert_problem(
            await client.post("/runs/batch", json={"runs": [layer_run() for _ in range(6)]}),
            422,
            "invalid_argument",
        )
        assert "at most 5" in body["detail"]


@pytest.mark.parametrize(
    ("field", "limit"),
    [("layer_name", 200), ("layer_hash", 200), ("model_name", 200), ("id", 64)],
)
async def test_layer_run_string_lengths(client: httpx.AsyncClient, field: str, limit: int) -> None:
    assert (await client.post("/runs", json=layer_run(**{field: "a" * limit}))).status_code == 201
    response = await client.post("/runs", json=layer_run(**{field: "a" * (limit + 1)}))
    body = assert_problem(response, 422, "invalid_argument")
    assert any(err["loc"][-1] == field for err in body["errors"])


async def test_layer_run_errors_depth(client: httpx.AsyncClient) -> None:
    # The list is level 1 and each error object level 2.
    at = [{"detail": nested(MAX_JSON_DEPTH - 2)}]
    past = [{"detail": nested(MAX_JSON_DEPTH - 1)}]
    assert (await client.post("/runs", json=layer_run(errors=at))).status_code == 201
    body = assert_problem(
        await client.post("/runs", json=layer_run(errors=past)), 422, "invalid_argument"
    )
    assert "deeper" in body["detail"]


def errors_of_size(size: int) -> list[dict[str, str]]:
    empty = len(json.dumps([{"m": ""}], separators=(",", ":")))
    return [{"m": "x" * (size - empty)}]


async def test_layer_run_errors_size_and_count(client: httpx.AsyncClient) -> None:
    at, past = errors_of_size(MAX_JSON_BYTES), errors_of_size(MAX_JSON_BYTES + 1)
    assert (await client.post("/runs", json=layer_run(errors=at))).status_code == 201
    assert_problem(await client.post("/runs", json=layer_run(errors=past)), 422, "invalid_argument")
    many = [{"m": "x"}] * 1000
    assert (await client.post("/runs", json=layer_run(errors=many))).status_code == 201
    assert_problem(
        await client.post("/runs", json=layer_run(errors=[*many, {"m": "x"}])),
        422,
        "invalid_argument",
    )


def extraction_run(**fields: Any) -> dict[str, Any]:
    return {"prompt_id": "p1", "config_id": "c1", "document_name": "invoice-1.pdf", **fields}


def object_of_size(size: int) -> dict[str, str]:
    empty = len(json.dumps({"m": ""}, separators=(",", ":")))
    return {"m": "x" * (size - empty)}


async def test_extraction_expected_depth_and_size(client: httpx.AsyncClient) -> None:
    # The object is level 1.
    cases = [
        ({"a": nested(MAX_JSON_DEPTH - 1)}, True),
        ({"a": nested(MAX_JSON_DEPTH)}, False),
        (object_of_size(MAX_JSON_BYTES), True),
        (object_of_size(MAX_JSON_BYTES + 1), False),
    ]
    for expected, accepted in cases:
        response = await client.post("/extraction-runs", json=extraction_run(expected=expected))
        if accepted:
            assert response.status_code == 202, response.text[:300]
        else:
            assert_problem(response, 422, "invalid_argument")


async def test_extraction_output_depth_and_size(client: httpx.AsyncClient) -> None:
    cases = [
        ({"a": nested(MAX_JSON_DEPTH - 1)}, True),
        ({"a": nested(MAX_JSON_DEPTH)}, False),
        (object_of_size(MAX_JSON_BYTES), True),
        (object_of_size(MAX_JSON_BYTES + 1), False),
    ]
    for output, accepted in cases:
        created = await client.post("/extraction-runs", json=extraction_run())
        run_id = created.json()["run_id"]
        assert (
            await client.patch(f"/extraction-runs/{run_id}", json={"status": "running"})
        ).status_code == 200
        response = await client.patch(
            f"/extraction-runs/{run_id}", json={"status": "completed", "output": output}
        )
        if accepted:
            assert response.status_code == 200, response.text[:300]
        else:
            assert_problem(response, 422, "invalid_argument")


async def test_extraction_string_lengths(client: httpx.AsyncClient) -> None:
    for field, limit in (("prompt_id", 200), ("config_id", 200), ("document_name", 500)):
        ok = await client.post("/extraction-runs", json=extraction_run(**{field: "a" * limit}))
        assert ok.status_code == 202, ok.text
        response = await client.post(
            "/extraction-runs", json=extraction_run(**{field: "a" * (limit + 1)})
        )
        assert_problem(response, 422, "invalid_argument")


async def test_too_deep_for_the_parser_is_a_422(client: httpx.AsyncClient) -> None:
    body = b'{"errors": [{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}]}"
    response = await client.post("/runs", content=body, headers=JSON)
    assert_problem(response, 422, "invalid_argument")


async def test_page_size_and_offset(settings: Settings, engines: Engines) -> None:
    async with serve(settings, default_page_size=5, max_page_size=7, max_offset=10) as client:
        for path in ("/runs", "/extraction-runs"):
            assert (await client.get(path, params={"limit": 7})).status_code == 200
            assert_problem(await client.get(path, params={"limit": 8}), 422, "invalid_argument")
            assert (await client.get(path, params={"offset": 10})).status_code == 200
            assert_problem(await client.get(path, params={"offset": 11}), 422, "invalid_argument")


async def test_time_windows(settings: Settings, engines: Engines) -> None:
    async with serve(settings, max_stats_days=3, max_daily_timeseries_days=9) as client:
        cases = [
            ("/runs/stats/summary", {}, 3),
            ("/extraction-runs/stats/summary", {}, 3),
            ("/runs/stats/timeseries", {"bucket": "hour"}, 3),
            ("/runs/stats/timeseries", {"bucket": "day"}, 9),
        ]
        for path, params, limit in cases:
            ok = await client.get(path, params={**params, "days": limit})
            assert ok.status_code == 200, (path, ok.text)
            body = assert_problem(
                await client.get(path, params={**params, "days": limit + 1}),
                422,
                "invalid_argument",
            )
            assert f"at most {limit}" in body["detail"]


def test_default_page_size_must_fit_the_maximum() -> None:
    from pydantic import ValidationError

    assert Settings(default_page_size=7, max_page_size=7).default_page_size == 7
    with pytest.raises(ValidationError, match="must not exceed"):
        Settings(default_page_size=8, max_page_size=7)

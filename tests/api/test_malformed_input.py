"""Malformed input of every parameter is a 422 problem naming it; nothing answers 500."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.factories import layer_run

LIST_CASES = [
    ({"layer_name": ""}, "layer_name"),
    ({"status": "bogus"}, "status"),
    ({"status": "failed,bogus"}, "status"),
    ({"status": ""}, "status"),
    ({"status": ","}, "status"),
    ({"since": "yesterday"}, "since"),
    ({"since": "2026-13-40T00:00:00Z"}, "since"),
    ({"until": "not-a-time"}, "until"),
    ({"since": "2026-02-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, "until"),
    ({"model_name": ""}, "model_name"),
    ({"offset": "-1"}, "offset"),
    ({"offset": "ten"}, "offset"),
    ({"offset": "100001"}, "offset"),
    ({"limit": "0"}, "limit"),
    ({"limit": "101"}, "limit"),
    ({"limit": "1.5"}, "limit"),
    ({"sort": "layer_name"}, "sort"),
    ({"sort": "started_at; DROP TABLE layer_runs"}, "sort"),
    ({"sort": "--started_at"}, "sort"),
    ({"cursor": "garbage"}, "cursor"),
    ({"cursor": "eyJzIjoiLXN0YXJ0ZWRfYXQiLCJ2IjoxLCJpIjoieCJ9"}, "cursor"),  # wrong value type
    ({"cursor": "x" * 2000}, "cursor"),
    ({"colour": "blue"}, "colour"),
]


def assert_422_naming(response: httpx.Response, name: str) -> None:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == "invalid_argument"
    assert any(err["loc"][-1] == name for err in body["errors"]), body["errors"]
    assert name in body["detail"]


@pytest.mark.parametrize(("params", "name"), LIST_CASES)
async def test_list_rejects(client: httpx.AsyncClient, params: dict[str, str], name: str) -> None:
    assert_422_naming(await client.get("/runs", params=params), name)


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"days": "0"}, "days"),
        ({"days": "31"}, "days"),
        ({"days": "week"}, "days"),
        ({"layer_name": ""}, "layer_name"),
        ({"since": "2026-01-01"}, "since"),
    ],
)
async def test_stats_rejects(client: httpx.AsyncClient, params: dict[str, str], name: str) -> None:
    assert_422_naming(await client.get("/runs/stats/summary", params=params), name)


@pytest.mark.parametrize("run_id", ["a" * 65, "bad id", "semi;colon", "quote'"])
async def test_bad_path_ids(client: httpx.AsyncClient, run_id: str) -> None:
    for method in ("GET", "PATCH", "DELETE"):
        kwargs: dict[str, Any] = {"json": {"status": "success"}} if method == "PATCH" else {}
        response = await client.request(method, f"/runs/{run_id}", **kwargs)
        assert_422_naming(response, "run_id")


BODY_CASES = [
    ({"status": "finished"}, "status"),
    ({"layer_name": ""}, "layer_name"),
    ({"layer_name": "x" * 201}, "layer_name"),
    ({"layer_hash": None}, "layer_hash"),
    ({"started_at": "soon"}, "started_at"),
    ({"targets_processed": -1}, "targets_processed"),
    ({"insights_created": 2**31}, "insights_created"),
    ({"insights_created": "many"}, "insights_created"),
    ({"tokens_input": -5}, "tokens_input"),
    ({"estimated_cost_usd": -0.01}, "estimated_cost_usd"),
    ({"id": "has space"}, "id"),
    ({"id": ""}, "id"),
    ({"errors": "boom"}, "errors"),
    ({"errors": ["boom"]}, "errors"),
    ({"unexpected": 1}, "unexpected"),
]


@pytest.mark.parametrize(("change", "name"), BODY_CASES)
async def test_create_rejects(client: httpx.AsyncClient, change: dict[str, Any], name: str) -> None:
    body = {**layer_run(), **change}
    response = await client.post("/runs", json=body)
    assert response.status_code == 422, response.text
    errors = response.json()["errors"]
    assert any(name in err["loc"] for err in errors), errors
    assert (await client.get("/runs")).json()["total"] == 0


async def test_missing_required_fields(client: httpx.AsyncClient) -> None:
    response = await client.post("/runs", json={})
    assert response.status_code == 422
    missing = {err["loc"][-1] for err in response.json()["errors"]}
    assert {"layer_name", "layer_hash", "status", "started_at"} <= missing


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b"{not json", "application/json"),
        (b"[1, 2, 3]", "application/json"),
        (b'"a string"', "application/json"),
        (b"", "application/json"),
        (b'{"estimated_cost_usd": NaN}', "application/json"),
        (b"\xff\xfe\x00", "application/json"),
        (b"layer_name=x", "application/x-www-form-urlencoded"),
    ],
)
async def test_unparseable_bodies(
    client: httpx.AsyncClient, content: bytes, content_type: str
) -> None:
    for method, path in (("POST", "/runs"), ("POST", "/runs/batch"), ("PATCH", "/runs/x")):
        response = await client.request(
            method, path, content=content, headers={"content-type": content_type}
        )
        assert 400 <= response.status_code < 500, (method, path, response.text)
        assert response.headers["content-type"] == "application/problem+json"


async def test_patch_rejects_bad_values(client: httpx.AsyncClient) -> None:
    run = layer_run(status="running")
    assert (await client.post("/runs", json=run)).status_code == 201
    for change, name in [
        ({"status": "done"}, "status"),
        ({"targets_processed": -3}, "targets_processed"),
        ({"completed_at": "later"}, "completed_at"),
        ({"id": "other"}, "id"),
        ({"started_at": "2026-01-01T00:00:00Z"}, "started_at"),
    ]:
        response = await client.patch(f"/runs/{run['id']}", json=change)
        assert response.status_code == 422, (change, response.text)
        assert any(name in err["loc"] for err in response.json()["errors"])
    assert (await client.get(f"/runs/{run['id']}")).json()["status"] == "running"


async def test_body_over_the_size_limit_is_413(client: httpx.AsyncClient) -> None:
    huge = layer_run(errors=[{"message": "x" * 1024}] * 9000)  # > 8 MiB
    response = await client.post("/runs", json=huge)
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"
    assert (await client.get("/runs")).json()["total"] == 0


async def test_unknown_route_and_method_are_problems(client: httpx.AsyncClient) -> None:
    missing = await client.get("/nowhere")
    assert missing.status_code == 404
    assert missing.json()["code"] == "not_found"
    wrong_method = await client.put("/runs")
    assert wrong_method.status_code == 405
    assert wrong_method.headers["content-type"] == "application/problem+json"


def _cursor(payload: Any) -> str:
    import base64
    import json

    raw = json.dumps(payload).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    ("sort", "payload"),
    [
        ("tokens_total", {"s": "tokens_total", "v": 2**40, "i": "a"}),
        ("tokens_total", {"s": "tokens_total", "v": 1.5, "i": "a"}),
        ("estimated_cost_usd", {"s": "estimated_cost_usd", "v": 10**30, "i": "a"}),
        ("-started_at", {"s": "-started_at", "v": {"t": 5}, "i": "a"}),
        ("-started_at", {"s": "-started_at", "v": {"t": "2026-01-01T00:00:00Z"}, "i": "a\u0000"}),
        ("-started_at", {"s": "-started_at", "v": {"t": "2026-01-01T00:00:00Z"}, "i": "a\n"}),
        ("-started_at", ["not", "an", "object"]),
    ],
)
async def test_forged_cursors_are_422(client: httpx.AsyncClient, sort: str, payload: Any) -> None:
    response = await client.get("/runs", params={"sort": sort, "cursor": _cursor(payload)})
    assert_422_naming(response, "cursor")


async def test_nul_characters_are_422_not_500(client: httpx.AsyncClient) -> None:
    for change in (
        {"layer_name": "a\u0000b"},
        {"model_name": "\u0000"},
        {"errors": [{"message": "x\u0000"}]},
        {"errors": [{"k\u0000": 1}]},
    ):
        response = await client.post("/runs", json={**layer_run(), **change})
        assert response.status_code == 422, (change, response.text)
    for params in ({"layer_name": "a\u0000"}, {"model_name": "\u0000x"}):
        assert (await client.get("/runs", params=params)).status_code == 422
    summary = await client.get("/runs/stats/summary", params={"layer_name": "\u0000"})
    assert summary.status_code == 422
    assert (await client.get("/runs")).json()["total"] == 0

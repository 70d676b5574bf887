"""Failures the fuzzer found, kept as plain tests on both dialects."""

from __future__ import annotations

import httpx

from runwatch.domain import MAX_LAYER_RUN_COST_USD as MAX_COST_USD
from tests.factories import layer_run


async def test_undecodable_body_is_a_422(client: httpx.AsyncClient) -> None:
    # Found by schemathesis: bytes that are not UTF-8 were an undocumented 400.
    for path in ("/runs", "/runs/batch", "/extraction-runs", "/extraction-runs/claim"):
        response = await client.post(
            path, content=b"\xff\xfe\x80", headers={"content-type": "application/json"}
        )
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["errors"][0]["loc"] == ["body"]


async def test_huge_cost_is_a_422_not_an_overflow(client: httpx.AsyncClient) -> None:
    # Found by schemathesis: a cost of 4.6e15 USD overflowed the rollups'
    # 64-bit nano-dollar sums (500 on both databases).
    huge = layer_run(estimated_cost_usd=4573180009942892.0)
    response = await client.post("/runs", json=huge)
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["loc"][-1] == "estimated_cost_usd"
    at_limit = await client.post("/runs", json=layer_run(estimated_cost_usd=MAX_COST_USD))
    assert at_limit.status_code == 201, at_limit.text
    past = await client.post("/runs", json=layer_run(estimated_cost_usd=MAX_COST_USD * 1.000001))
    assert past.status_code == 422
    running = await client.post("/runs", json=layer_run(status="running"))
    patched = await client.patch(f"/runs/{running.json()['id']}", json={"estimated_cost_usd": 1e16})
    assert patched.status_code == 422

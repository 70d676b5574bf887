"""Answers encoded straight from rows are exactly what their response schemas give."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from pydantic import BaseModel

from runwatch.schemas.layer_runs import StatsSummary
from runwatch.schemas.operator import ErrorGroupPage, VersionList
from tests.factories import layer_run


def _ordered(value: Any) -> Any:
    """The value with each object as a list of (key, value) pairs, so that order counts."""
    if isinstance(value, dict):
        return [(k, _ordered(v)) for k, v in value.items()]
    if isinstance(value, list):
        return [_ordered(v) for v in value]
    return value


async def _same_as_schema(client: httpx.AsyncClient, model: type[BaseModel], path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 200, response.text
    dumped = json.loads(model.model_validate_json(response.content).model_dump_json())
    assert _ordered(response.json()) == _ordered(dumped)


async def test_summary_errors_and_versions(client: httpx.AsyncClient) -> None:
    now = datetime.now(UTC)
    runs = [
        layer_run(
            started_at=now - timedelta(hours=2 + 7 * i),
            status=("success", "failed", "running", "partial")[i % 4],
            layer_hash=("v1", "v2")[i % 2],
            errors=[{"type": "Timeout", "message": f"after {i} s"}] if i % 4 in (1, 3) else None,
        )
        for i in range(40)
    ]
    assert (await client.post("/runs/batch", json={"runs": runs})).status_code == 200
    for path in ("/runs/stats/summary?days=30", "/runs/stats/summary?days=1&layer_name=none"):
        await _same_as_schema(client, StatsSummary, path)
    await _same_as_schema(client, ErrorGroupPage, "/runs/errors?days=30")
    await _same_as_schema(client, ErrorGroupPage, "/runs/errors?days=1&layer_name=none")
    layer = runs[0]["layer_name"]
    await _same_as_schema(client, VersionList, f"/runs/stats/versions?layer_name={layer}")

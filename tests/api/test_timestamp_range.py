"""A timestamp whose offset puts it before the first UTC datetime is a 422, never a 500."""

from __future__ import annotations

import httpx
import pytest

EDGE = "0001-01-01T00:00:00+00:01"


@pytest.mark.parametrize("field", ["started_at", "completed_at"])
async def test_a_body_timestamp_before_year_one_in_utc_is_refused(
    client: httpx.AsyncClient, field: str
) -> None:
    run = {
        "layer_name": "l",
        "layer_hash": "h",
        "status": "dry",
        "started_at": "2020-01-01T00:00:00Z",
    }
    run[field] = EDGE
    for path, body in (("/runs", run), ("/runs/batch", {"runs": [run]})):
        answer = await client.post(path, json=body)
        assert answer.status_code == 422, (path, answer.text)
        assert answer.headers["content-type"] == "application/problem+json"
        assert any(field in error["loc"] for error in answer.json()["errors"]), answer.text
    assert (await client.get("/runs")).json()["total"] == 0

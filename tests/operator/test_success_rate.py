"""`success_rate` = success ÷ (success + failed + partial), null when that is 0, everywhere."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.factories import layer_run


async def test_success_rate_leaves_out_dry_and_running_runs(client: httpx.AsyncClient) -> None:
    start = datetime.now(UTC) - timedelta(hours=5)
    plan = {
        "only-dry": ["dry"],
        "only-running": ["running", "running"],
        "mixed": ["success"] * 3 + ["failed", "partial", "dry", "running"],
        "all-failed": ["failed", "failed", "partial"],
    }
    bodies = [
        layer_run(layer_name=layer, status=status, started_at=start + timedelta(minutes=i))
        for layer, statuses in plan.items()
        for i, status in enumerate(statuses)
    ]
    assert (await client.post("/runs/batch", json={"runs": bodies})).status_code == 200
    summary = (await client.get("/runs/stats/summary")).json()
    by_layer = summary["by_layer"]
    assert by_layer["only-dry"]["success_rate"] is None
    assert by_layer["only-running"]["success_rate"] is None
    assert by_layer["mixed"]["success_rate"] == pytest.approx(3 / 5)
    assert by_layer["all-failed"]["success_rate"] == 0.0
    assert (by_layer["mixed"]["partial"], by_layer["mixed"]["dry"]) == (1, 1)
    assert by_layer["mixed"]["running"] == 1
    assert by_layer["all-failed"]["partial"] == 1
    assert summary["success_rate"] == pytest.approx(3 / (3 + 1 + 1 + 2 + 1))
    one = (await client.get("/runs/stats/summary", params={"layer_name": "only-dry"})).json()
    assert one["success_rate"] is None


async def test_no_runs_no_rate(client: httpx.AsyncClient) -> None:
    summary = (await client.get("/runs/stats/summary")).json()
    assert summary["success_rate"] is None
    assert summary["by_layer"] == {}

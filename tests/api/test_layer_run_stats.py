"""`GET /runs/stats/summary` checked against sums computed here from the runs the test made."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.factories import layer_run

STATUSES = ("running", "success", "partial", "failed", "dry")


def window_start(summary: dict[str, Any], days: int) -> datetime:
    """The `since` the API reports, checked: `days` back from now, in steps of at most 10 s."""
    since = datetime.fromisoformat(summary["since"].replace("Z", "+00:00"))
    expected = datetime.now(UTC) - timedelta(days=days)
    assert expected - timedelta(seconds=11) <= since <= expected
    return since


def expected_summary(
    bodies: list[dict[str, Any]], days: int, layer: str | None, since: datetime
) -> dict[str, Any]:
    """The summary computed in plain Python from the request bodies."""
    chosen = [
        b
        for b in bodies
        if datetime.fromisoformat(b["started_at"].replace("Z", "+00:00")) >= since
        and (layer is None or b["layer_name"] == layer)
    ]
    by_layer: dict[str, dict[str, Any]] = defaultdict(
        lambda: {
            "runs": 0,
            "insights": 0,
            "successful": 0,
            "failed": 0,
            "tokens": 0,
            "cost_usd": 0.0,
        }
    )
    for b in chosen:
        entry = by_layer[b["layer_name"]]
        entry["runs"] += 1
        entry["insights"] += b["insights_created"]
        entry["successful"] += b["status"] == "success"
        entry["failed"] += b["status"] == "failed"
        entry["tokens"] += b["tokens_input"] + b["tokens_output"]
        entry["cost_usd"] += b["estimated_cost_usd"] or 0.0
    return {
        "period_days": days,
        "total_runs": len(chosen),
        "successful_runs": sum(b["status"] == "success" for b in chosen),
        "failed_runs": sum(b["status"] == "failed" for b in chosen),
        "dry_runs": sum(b["status"] == "dry" for b in chosen),
        "partial_runs": sum(b["status"] == "partial" for b in chosen),
        "running_runs": sum(b["status"] == "running" for b in chosen),
        "total_insights": sum(b["insights_created"] for b in chosen),
        "total_tokens": sum(b["tokens_input"] + b["tokens_output"] for b in chosen),
        "total_cost_usd": sum(b["estimated_cost_usd"] or 0.0 for b in chosen),
        "by_layer": dict(by_layer),
    }


def assert_matches(actual: dict[str, Any], expected: dict[str, Any]) -> None:
    for key, value in expected.items():
        if key == "by_layer":
            assert set(actual["by_layer"]) == set(value)
            for name, entry in value.items():
                got = actual["by_layer"][name]
                assert got["cost_usd"] == pytest.approx(entry["cost_usd"], abs=1e-6)
                for field in ("runs", "insights", "successful", "failed", "tokens"):
                    assert got[field] == entry[field], (name, field)
        elif key == "total_cost_usd":
            assert actual[key] == pytest.approx(value, abs=1e-6)
        else:
            assert actual[key] == value, key


@pytest.fixture
async def recorded(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    rng = random.Random(7)
    now = datetime.now(UTC)
    bodies = []
    for _ in range(120):
        status = rng.choice(STATUSES)
        started = now - timedelta(hours=rng.uniform(0.1, 24 * 40))
        body = layer_run(
            started_at=started,
            status=status,
            duration=rng.uniform(1, 600),
            layer_name=rng.choice(["nightly-user-reflection", "hourly-digest", "weekly-summary"]),
            insights_created=rng.randint(0, 40),
            tokens_input=rng.randint(0, 50_000),
            tokens_output=rng.randint(0, 9_000),
            estimated_cost_usd=None if status == "running" else round(rng.uniform(0, 2), 6),
        )
        bodies.append(body)
    response = await client.post("/runs/batch", json={"runs": bodies})
    assert response.status_code == 200, response.text
    return bodies


@pytest.mark.parametrize("days", [1, 7, 30])
async def test_summary_matches_independent_sums(
    client: httpx.AsyncClient, recorded: list[dict[str, Any]], days: int
) -> None:
    response = await client.get("/runs/stats/summary", params={"days": days})
    assert response.status_code == 200
    actual = response.json()
    expected = expected_summary(recorded, days, None, window_start(actual, days))
    assert expected["total_runs"] > 0
    assert_matches(actual, expected)


async def test_summary_for_one_layer(
    client: httpx.AsyncClient, recorded: list[dict[str, Any]]
) -> None:
    params = {"days": 30, "layer_name": "hourly-digest"}
    actual = (await client.get("/runs/stats/summary", params=params)).json()
    assert list(actual["by_layer"]) == ["hourly-digest"]
    since = window_start(actual, 30)
    assert_matches(actual, expected_summary(recorded, 30, "hourly-digest", since))


async def test_default_window_is_seven_days(
    client: httpx.AsyncClient, recorded: list[dict[str, Any]]
) -> None:
    actual = (await client.get("/runs/stats/summary")).json()
    assert actual["period_days"] == 7
    assert_matches(actual, expected_summary(recorded, 7, None, window_start(actual, 7)))


async def test_empty_window_gives_zeros_not_nulls(client: httpx.AsyncClient) -> None:
    old = layer_run(started_at=datetime.now(UTC) - timedelta(days=90))
    assert (await client.post("/runs", json=old)).status_code == 201
    for params in ({"days": 30}, {"days": 30, "layer_name": "no-such-layer"}):
        body = (await client.get("/runs/stats/summary", params=params)).json()
        assert body["total_runs"] == 0
        assert body["successful_runs"] == body["failed_runs"] == body["dry_runs"] == 0
        assert body["total_insights"] == 0
        assert body["total_tokens"] == 0
        assert body["total_cost_usd"] == 0
        assert body["by_layer"] == {}


async def test_sums_skip_unknown_tokens_and_cost(client: httpx.AsyncClient) -> None:
    now = datetime.now(UTC)
    known = layer_run(
        started_at=now - timedelta(hours=1),
        tokens_input=10,
        tokens_output=5,
        estimated_cost_usd=0.25,
    )
    unknown = layer_run(
        started_at=now - timedelta(hours=2),
        status="running",
        tokens_input=None,
        tokens_output=None,
        estimated_cost_usd=None,
    )
    for body in (known, unknown):
        assert (await client.post("/runs", json=body)).status_code == 201
    summary = (await client.get("/runs/stats/summary", params={"days": 1})).json()
    assert summary["total_runs"] == 2
    assert summary["running_runs"] == 1
    assert summary["total_tokens"] == 15
    assert summary["total_cost_usd"] == pytest.approx(0.25)

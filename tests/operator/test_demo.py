"""The demo data shows every operator answer: groups that repeat, a regression, stuck runs."""

from __future__ import annotations

import httpx

from runwatch.db.engine import Engines
from runwatch.demo import LAYER_NAMES, load_demo_data


async def test_demo_data_shows_groups_versions_a_regression_and_stuck_runs(
    client: httpx.AsyncClient, engines: Engines
) -> None:
    async with engines.write.begin() as conn:
        assert await load_demo_data(conn, runs=5000) == 5000
    errors = (await client.get("/runs/errors", params={"limit": 100})).json()
    assert 3 <= errors["total_groups"] <= 40
    top = errors["groups"][0]
    assert top["runs"] >= 20
    assert len(top["layers"]) >= 5
    assert any("<" in g["message"] for g in errors["groups"])
    assert all(len(g["days"]) in (7, 8) for g in errors["groups"])

    busiest = LAYER_NAMES[0]
    versions = (await client.get("/runs/stats/versions", params={"layer_name": busiest})).json()
    assert len(versions["versions"]) >= 2
    regressions = (await client.get("/runs/stats/regressions")).json()["regressions"]
    assert [r["layer_name"] for r in regressions] == [busiest]
    assert {"success_rate", "mean_duration_seconds"} <= set(regressions[0]["worse"])

    summary = (await client.get("/runs/stats/summary")).json()
    assert summary["stuck_runs"] >= 2
    assert summary["duration_p95_seconds"] > summary["duration_p50_seconds"] > 0
    stuck = (await client.get("/runs", params={"stuck": "true"})).json()
    assert stuck["total"] == summary["stuck_runs"]

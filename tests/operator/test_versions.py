"""Layer versions, their compare and the regressions, against sums and tests computed here."""

from __future__ import annotations

import math
import random
import statistics
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from runwatch.db.engine import Engines
from runwatch.services.retention import purge_layer_runs
from tests.factories import iso, layer_run


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def p_normal(z: float) -> float:
    return math.erfc(abs(z) / math.sqrt(2))


def expected_row(bodies: list[dict[str, Any]]) -> dict[str, Any]:
    statuses = [b["status"] for b in bodies]
    finished = sum(s in ("success", "failed", "partial") for s in statuses)
    durations = [
        (_at(b["completed_at"]) - _at(b["started_at"])).total_seconds()
        for b in bodies
        if b.get("completed_at")
    ]
    costs = [b["estimated_cost_usd"] for b in bodies if b["estimated_cost_usd"] is not None]
    starts = [_at(b["started_at"]) for b in bodies]
    return {
        "first_seen": min(starts),
        "last_seen": max(starts),
        "runs": len(bodies),
        "finished_runs": finished,
        "by_status": {
            s: statuses.count(s) for s in ("running", "success", "partial", "failed", "dry")
        },
        "success_rate": statuses.count("success") / finished if finished else None,
        "mean_duration_seconds": statistics.fmean(durations) if durations else None,
        "insights_per_run": sum(b["insights_created"] for b in bodies) / len(bodies),
        "tokens_per_run": sum(b["tokens_input"] + b["tokens_output"] for b in bodies) / len(bodies),
        "cost_per_run_usd": statistics.fmean(costs) if costs else None,
        "_durations": durations,
        "_costs": costs,
    }


def assert_row(got: dict[str, Any], want: dict[str, Any]) -> None:
    for key, value in want.items():
        if key.startswith("_"):
            continue
        if key in ("first_seen", "last_seen"):
            assert _at(got[key]) == value, key
        elif isinstance(value, float):
            assert got[key] == pytest.approx(value, rel=1e-9), key
        else:
            assert got[key] == value, key


def make(
    rng: random.Random,
    layer: str,
    version: str,
    n: int,
    *,
    start: datetime,
    span: timedelta,
    success: float,
    slow: float,
) -> list[dict[str, Any]]:
    out = []
    for _ in range(n):
        roll = rng.random()
        status = (
            "success" if roll < success
            else rng.choice(["failed", "partial", "dry", "running"])
        )  # fmt: skip
        out.append(
            layer_run(
                layer_name=layer,
                layer_hash=version,
                status=status,
                started_at=start + span * rng.random(),
                duration=rng.uniform(10, 60) * slow,
                estimated_cost_usd=rng.choice([None, round(rng.uniform(0.01, 0.2) * slow, 6)]),
                insights_created=rng.randint(0, 9),
            )
        )
    return out


@pytest.fixture
async def world(client: httpx.AsyncClient) -> dict[str, Any]:
    rng = random.Random(11)
    now = datetime.now(UTC)
    old, new = now - timedelta(days=9), now - timedelta(days=4)
    bodies = (
        make(rng, "ranker", "r1", 60, start=old, span=timedelta(days=5), success=0.9, slow=1.0)
        + make(rng, "ranker", "r2", 60, start=new, span=timedelta(days=4), success=0.45, slow=1.6)
        + make(rng, "steady", "s1", 50, start=old, span=timedelta(days=5), success=0.8, slow=1.0)
        + make(rng, "steady", "s2", 50, start=new, span=timedelta(days=4), success=0.8, slow=1.0)
        + make(rng, "sparse", "p1", 10, start=old, span=timedelta(days=5), success=0.9, slow=1.0)
        + make(rng, "sparse", "p2", 10, start=new, span=timedelta(days=4), success=0.1, slow=3.0)
    )
    for i in range(0, len(bodies), 100):
        response = await client.post("/runs/batch", json={"runs": bodies[i : i + 100]})
        assert response.status_code == 200, response.text
    # Some running runs finish; a few runs are deleted.
    for body in [b for b in bodies if b["status"] == "running"][::2]:
        done = iso(_at(body["started_at"]) + timedelta(seconds=33))
        change = {"status": "failed", "completed_at": done}
        assert (await client.patch(f"/runs/{body['id']}", json=change)).status_code == 200
        body.update(change)
    for body in bodies[::23]:
        assert (await client.delete(f"/runs/{body['id']}")).status_code == 204
    return {"bodies": [b for i, b in enumerate(bodies) if i % 23], "now": now}


def _in(
    bodies: list[dict[str, Any]], since: datetime, until: datetime | None, **match: Any
) -> list[dict[str, Any]]:
    return [
        b
        for b in bodies
        if _at(b["started_at"]) >= since
        and (until is None or _at(b["started_at"]) < until)
        and all(b[k] == v for k, v in match.items())
    ]


async def test_versions_match_an_independent_computation(
    client: httpx.AsyncClient, world: dict[str, Any]
) -> None:
    bodies, now = world["bodies"], world["now"]
    for params in [
        {"days": 30},
        {"days": 7},
        {
            "since": iso(now - timedelta(days=6, minutes=13)),
            "until": iso(now - timedelta(hours=30, minutes=7)),
        },
    ]:
        response = await client.get(
            "/runs/stats/versions", params={"layer_name": "ranker", **params}
        )
        assert response.status_code == 200, response.text
        answer = response.json()
        since = _at(answer["since"])
        until = _at(answer["until"]) if answer["until"] else None
        chosen = _in(bodies, since, until, layer_name="ranker")
        hashes = sorted(
            {b["layer_hash"] for b in chosen},
            key=lambda h: min(_at(b["started_at"]) for b in chosen if b["layer_hash"] == h),
        )
        assert [v["layer_hash"] for v in answer["versions"]] == hashes
        for row in answer["versions"]:
            assert_row(
                row, expected_row([b for b in chosen if b["layer_hash"] == row["layer_hash"]])
            )
    empty = await client.get("/runs/stats/versions", params={"layer_name": "nobody"})
    assert empty.json()["versions"] == []


async def test_compare_against_tests_computed_from_the_raw_values(
    client: httpx.AsyncClient, world: dict[str, Any]
) -> None:
    bodies = world["bodies"]
    params = {"layer_name": "ranker", "a": "r1", "b": "r2", "days": 30}
    response = await client.get("/runs/stats/versions/compare", params=params)
    assert response.status_code == 200, response.text
    answer = response.json()
    a = expected_row([b for b in bodies if b["layer_hash"] == "r1"])
    b = expected_row([x for x in bodies if x["layer_hash"] == "r2"])
    assert_row(answer["a"], a)
    assert_row(answer["b"], b)
    diff = answer["differences"]
    assert diff["success_rate"] == pytest.approx(b["success_rate"] - a["success_rate"])
    assert diff["mean_duration_seconds"] == pytest.approx(
        b["mean_duration_seconds"] - a["mean_duration_seconds"]
    )
    assert diff["runs"] == b["runs"] - a["runs"]
    # Two-proportion z-test, pooled.
    sa, sb = a["by_status"]["success"], b["by_status"]["success"]
    na, nb = a["finished_runs"], b["finished_runs"]
    pooled = (sa + sb) / (na + nb)
    z = (sb / nb - sa / na) / math.sqrt(pooled * (1 - pooled) * (1 / na + 1 / nb))
    tests = answer["tests"]
    assert tests["success_rate"]["p_value"] == pytest.approx(p_normal(z), rel=1e-6)
    assert tests["success_rate"]["significant"] is True
    # Welch's test on the raw durations and costs.
    for key, values in (("mean_duration_seconds", "_durations"), ("cost_per_run_usd", "_costs")):
        xa, xb = a[values], b[values]
        t = (statistics.fmean(xb) - statistics.fmean(xa)) / math.sqrt(
            statistics.variance(xa) / len(xa) + statistics.variance(xb) / len(xb)
        )
        assert tests[key]["p_value"] == pytest.approx(p_normal(t), rel=1e-6), key
        assert tests[key]["significant"] == (p_normal(t) < 0.05)
    assert tests["mean_duration_seconds"]["test"] == "Welch's test"
    missing = await client.get("/runs/stats/versions/compare", params={**params, "b": "zz"})
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")


async def test_regressions_list_only_the_significantly_worse_newest_version(
    client: httpx.AsyncClient, world: dict[str, Any]
) -> None:
    response = await client.get("/runs/stats/regressions", params={"days": 30})
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["min_runs"] == 20
    assert [r["layer_name"] for r in answer["regressions"]] == ["ranker"]
    ranker = answer["regressions"][0]
    assert (ranker["a"]["layer_hash"], ranker["b"]["layer_hash"]) == ("r1", "r2")
    assert "success_rate" in ranker["worse"]
    assert "mean_duration_seconds" in ranker["worse"]
    # The window decides: with only the newest version in it, nothing is compared.
    recent = await client.get("/runs/stats/regressions", params={"days": 3})
    assert recent.json()["regressions"] == []


async def test_a_purge_changes_no_answer(
    client: httpx.AsyncClient, engines: Engines, world: dict[str, Any]
) -> None:
    now = world["now"]
    horizon = (now - timedelta(days=6)).replace(hour=0, minute=0, second=0, microsecond=0)
    queries = [
        ("/runs/stats/versions", {"layer_name": "ranker", "since": iso(horizon)}),
        ("/runs/stats/versions", {"layer_name": "steady", "days": 5}),
        (
            "/runs/stats/versions/compare",
            {"layer_name": "steady", "a": "s1", "b": "s2", "since": iso(horizon)},
        ),
        ("/runs/stats/regressions", {"since": iso(horizon)}),
    ]
    before = [(await client.get(path, params=q)).json() for path, q in queries]
    assert await purge_layer_runs(engines.write, before=horizon) > 0
    after = [(await client.get(path, params=q)).json() for path, q in queries]
    for old, new in zip(before, after, strict=True):
        old.pop("since", None), new.pop("since", None)
        assert new == old


async def test_bad_parameters_are_422(client: httpx.AsyncClient) -> None:
    for path, params in [
        ("/runs/stats/versions", {}),
        ("/runs/stats/versions", {"layer_name": ""}),
        ("/runs/stats/versions", {"layer_name": "x", "days": 0}),
        ("/runs/stats/versions/compare", {"layer_name": "x", "a": "1"}),
        ("/runs/stats/regressions", {"days": 9999}),
        ("/runs/stats/regressions", {"since": "yesterday"}),
    ]:
        response = await client.get(path, params=params)
        assert response.status_code == 422, (path, params, response.text)

"""Property: any combination of filters and sort on `GET /runs` returns exactly the rows, in
exactly the order, that a plain Python filter and sort over the same data gives."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.factories import iso

BASE = datetime(2026, 3, 1, tzinfo=UTC)
STATUSES = ("running", "success", "partial", "failed", "dry")
SORTS = ("started_at", "duration_seconds", "estimated_cost_usd", "tokens_total")


def dataset(n: int = 90, seed: int = 7) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    runs = []
    for i in range(n):
        status = rng.choice(STATUSES)
        # Whole hours over ten days, so that several runs share a start time.
        started = BASE + timedelta(hours=rng.randrange(240))
        run: dict[str, Any] = {
            "id": f"p-{i:03d}",
            "layer_name": rng.choice(("alpha", "beta", "gamma")),
            "layer_hash": "h",
            "status": status,
            "started_at": iso(started),
            "model_name": rng.choice(("m1", "m2", None)),
            "estimated_cost_usd": rng.choice((None, 0.5, 1.25, rng.random())),
        }
        if rng.random() < 0.7:
            run["tokens_input"] = rng.choice((100, 200, rng.randrange(1000)))
            run["tokens_output"] = rng.choice((0, 50))
        if status != "running":
            run["completed_at"] = iso(started + timedelta(seconds=rng.choice((30, 60, 90))))
        runs.append(run)
    return runs


RUNS = dataset()


def parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.fixture
async def stored(client: httpx.AsyncClient) -> dict[str, dict[str, Any]]:
    """The runs as the API reports them, which the expectation is computed from."""
    response = await client.post("/runs/batch", json={"runs": RUNS})
    assert response.status_code == 200, response.text
    return {run["id"]: (await client.get(f"/runs/{run['id']}")).json() for run in RUNS}


def expected_ids(stored: dict[str, dict[str, Any]], params: dict[str, Any]) -> list[str]:
    rows = list(stored.values())
    if "layer_name" in params:
        rows = [r for r in rows if r["layer_name"] == params["layer_name"]]
    if "status" in params:
        wanted = set(params["status"].split(","))
        rows = [r for r in rows if r["status"] in wanted]
    if "model_name" in params:
        rows = [r for r in rows if r["model_name"] == params["model_name"]]
    if "since" in params:
        rows = [r for r in rows if parse(r["started_at"]) >= parse(params["since"])]
    if "until" in params:
        rows = [r for r in rows if parse(r["started_at"]) < parse(params["until"])]
    sort = params.get("sort", "-started_at")
    key, descending = sort.lstrip("-"), sort.startswith("-")
    present = [r for r in rows if r[key] is not None]
    missing = [r for r in rows if r[key] is None]
    present.sort(key=lambda r: (r[key], r["id"]), reverse=descending)
    missing.sort(key=lambda r: r["id"], reverse=descending)
    return [r["id"] for r in present + missing]


moments = st.integers(min_value=-5, max_value=245).map(lambda h: iso(BASE + timedelta(hours=h)))
filters = st.fixed_dictionaries(
    {},
    optional={
        "layer_name": st.sampled_from(("alpha", "beta", "gamma", "delta")),
        "status": st.lists(st.sampled_from(STATUSES), min_size=1, max_size=5, unique=True).map(
            ",".join
        ),
        "model_name": st.sampled_from(("m1", "m2", "m3")),
        "since": moments,
        "until": moments,
        "sort": st.sampled_from([*SORTS, *(f"-{k}" for k in SORTS)]),
        "limit": st.integers(min_value=1, max_value=100),
    },
)


@given(params=filters)
@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
async def test_filters_match_a_python_filter(
    client: httpx.AsyncClient, stored: dict[str, dict[str, Any]], params: dict[str, Any]
) -> None:
    if "since" in params and "until" in params and params["until"] < params["since"]:
        params["since"], params["until"] = params["until"], params["since"]
    expected = expected_ids(stored, params)
    seen: list[str] = []
    query = dict(params)
    for _ in range(len(RUNS) + 2):
        response = await client.get("/runs", params=query)
        assert response.status_code == 200, response.text
        page = response.json()
        assert page["total"] == len(expected)
        seen += [run["id"] for run in page["runs"]]
        if page["next_cursor"] is None:
            break
        query = {**params, "cursor": page["next_cursor"]}
    assert seen == expected

"""Conditional polling (ETag/304), the timeseries, and purging old runs."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import event

from runwatch.app import create_app
from runwatch.config import Settings
from runwatch.db.engine import Engines
from runwatch.db.version_watch import DataVersionCache
from runwatch.queries.buckets import floor_day, floor_hour
from runwatch.queries.data_state import data_version
from runwatch.services.retention import purge_layer_runs
from tests.factories import layer_run

POLLED = [
    "/runs",
    "/runs?status=failed&limit=5",
    "/runs/stats/summary?days=7",
    "/runs/stats/timeseries?days=2&bucket=hour",
]


async def test_etag_then_304_until_a_write(client: httpx.AsyncClient) -> None:
    run = layer_run(started_at=datetime.now(UTC) - timedelta(hours=1), status="running")
    assert (await client.post("/runs", json=run)).status_code == 201
    await listening(client._transport.app)  # type: ignore[attr-defined]
    for path in [*POLLED, f"/runs/{run['id']}"]:
        first = await client.get(path)
        assert first.status_code == 200
        etag = first.headers["etag"]
        assert first.headers["cache-control"] == "no-cache"
        again = await client.get(path, headers={"If-None-Match": etag})
        assert again.status_code == 304, path
        assert again.content == b""
        assert again.headers["etag"] == etag
        weak = await client.get(path, headers={"If-None-Match": f'"other", W/{etag}'})
        assert weak.status_code == 304
        assert (await client.get(path, headers={"If-None-Match": '"stale"'})).status_code == 200

    etags = {path: (await client.get(path)).headers["etag"] for path in POLLED}
    assert len(set(etags.values())) == len(POLLED), "each query has its own tag"
    patched = await client.patch(f"/runs/{run['id']}", json={"status": "success"})
    assert patched.status_code == 200
    for path, etag in etags.items():
        after = await client.get(path, headers={"If-None-Match": etag})
        assert after.status_code == 200, f"{path} served a stale 304 after a write"


async def listening(app: Any) -> None:
    """Wait until the app's PostgreSQL version listener has heard every commit so far.

    A process hears of another's write a moment after it commits; until then
    it may label fresh data with the previous version (never the reverse). On
    SQLite the version is read whenever a commit has been made since the last
    read (db/sqlite_version.py): there is nothing to wait for.
    """
    cache = app.state.version_cache
    if not isinstance(cache, DataVersionCache):
        return
    async with app.state.engines.read.connect() as conn:
        stored = await data_version(conn)
    for _ in range(200):
        if cache.current is not None and cache.current >= stored:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the data version listener did not catch up")


async def eventually_status(client: httpx.AsyncClient, path: str, etag: str, status: int) -> int:
    """Another process hears of a write when it commits; allow the notification to land."""
    got = 0
    for _ in range(100):
        got = (await client.get(path, headers={"If-None-Match": etag})).status_code
        if got == status:
            break
        await asyncio.sleep(0.02)
    return got


async def with_room_in_the_step(step_seconds: int, room: float) -> None:
    """Wait for the next step of a rolling window when less than `room` seconds are left.

    The summary's tag moves at each step (RUNWATCH_STATS_ETAG_SECONDS); a test
    that compares tags across requests starts where no step ends among them.
    """
    left = step_seconds - time.time() % step_seconds
    if left < room:
        await asyncio.sleep(left + 0.05)


async def test_304_runs_no_aggregate(client: httpx.AsyncClient, dialect: str) -> None:
    app = client._transport.app  # type: ignore[attr-defined]
    await listening(app)
    await with_room_in_the_step(app.state.settings.stats_etag_seconds, room=5)
    etag = (await client.get("/runs/stats/summary")).headers["etag"]
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    engine = app.state.engines.read.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        response = await client.get("/runs/stats/summary", headers={"If-None-Match": etag})
        assert response.status_code == 304
        # The version is known without a statement: heard from PostgreSQL's
        # notifications, or on SQLite read with the first answer and unchanged
        # since, as the WAL-index header shows.
        assert statements == []
        # Unchanged data asked for without a tag: the answer encoded for this
        # tag is served again, with no aggregate.
        again = await client.get("/runs/stats/summary")
        assert again.status_code == 200
        assert again.headers["etag"] == etag
        assert not any("layer_run_rollups" in s for s in statements), statements
        # After a write the tag moves and the aggregate runs again.
        started = datetime.now(UTC) - timedelta(hours=2)
        assert (await client.post("/runs", json=layer_run(started_at=started))).status_code == 201
        await eventually_status(client, "/runs/stats/summary", etag, 200)
        statements.clear()
        fresh = await client.get("/runs/stats/summary")
        assert fresh.headers["etag"] != etag
        assert fresh.json()["total_runs"] == again.json()["total_runs"] + 1
    finally:
        event.remove(engine, "before_cursor_execute", record)


async def test_write_through_one_app_invalidates_the_other(settings: Settings) -> None:
    """Two app instances (two processes in production) on one database agree."""
    apps = [create_app(settings), create_app(settings)]
    async with apps[0].router.lifespan_context(apps[0]), apps[1].router.lifespan_context(apps[1]):
        for app in apps:
            await listening(app)
        one, two = (
            httpx.AsyncClient(transport=httpx.ASGITransport(app=a), base_url="http://t")
            for a in apps
        )
        async with one, two:
            for path in ("/runs", "/runs/stats/summary"):
                etag = (await two.get(path)).headers["etag"]
                assert (await two.get(path, headers={"If-None-Match": etag})).status_code == 304
                assert (
                    await one.post("/runs", json=layer_run(started_at=datetime.now(UTC)))
                ).status_code == 201
                assert await eventually_status(two, path, etag, 200) == 200
            assert (await two.get("/runs")).json()["total"] == 2


async def test_etags_stay_right_without_the_listener(client: httpx.AsyncClient) -> None:
    app = client._transport.app  # type: ignore[attr-defined]
    if app.state.version_cache is not None:
        await app.state.version_cache.stop()  # as if its connection were lost
        assert app.state.version_cache.current is None
    etag = (await client.get("/runs")).headers["etag"]
    assert (await client.get("/runs", headers={"If-None-Match": etag})).status_code == 304
    assert (await client.post("/runs", json=layer_run())).status_code == 201
    assert (await client.get("/runs", headers={"If-None-Match": etag})).status_code == 200


async def test_timeseries_is_contiguous_and_zero_filled(client: httpx.AsyncClient) -> None:
    now = datetime.now(UTC)
    offsets = [0.2, 0.3, 5.5, 5.6, 5.7, 30.0, 47.9, 60.0]  # hours ago
    statuses = ["success", "failed", "success", "dry", "partial", "success", "failed", "success"]
    bodies = [
        layer_run(
            started_at=now - timedelta(hours=h),
            status=s,
            duration=1.0,
            layer_name="a" if i % 2 else "b",
            insights_created=i,
            tokens_input=i,
            tokens_output=0,
            estimated_cost_usd=0.5,
        )
        for i, (h, s) in enumerate(zip(offsets, statuses, strict=True))
    ]
    assert (await client.post("/runs/batch", json={"runs": bodies})).status_code == 200

    series = (await client.get("/runs/stats/timeseries", params={"days": 2})).json()
    buckets = series["buckets"]
    assert len(buckets) == 48
    starts = [datetime.fromisoformat(b["start"].replace("Z", "+00:00")) for b in buckets]
    assert all(b - a == timedelta(hours=1) for a, b in itertools.pairwise(starts))
    assert starts[-1] == floor_hour(now)
    expected: Counter[tuple[datetime, str]] = Counter()
    for body in bodies:
        started = datetime.fromisoformat(body["started_at"].replace("Z", "+00:00"))
        if started >= starts[0]:
            expected[(floor_hour(started), body["status"])] += 1
    for start, bucket in zip(starts, buckets, strict=True):
        for status, count in bucket["by_status"].items():
            assert count == expected[(start, status)], (start, status)
        assert bucket["runs"] == sum(bucket["by_status"].values())
    assert sum(b["runs"] for b in buckets) == sum(expected.values())
    assert sum(expected.values()) >= 6  # 60 h ago is outside, 47.9 h ago may be

    daily = (
        await client.get(
            "/runs/stats/timeseries", params={"days": 3, "bucket": "day", "layer_name": "a"}
        )
    ).json()
    assert len(daily["buckets"]) == 3
    assert daily["buckets"][-1]["start"].startswith(floor_day(now).strftime("%Y-%m-%dT00:00:00"))
    first_day = floor_day(now) - timedelta(days=2)
    a_bodies = [
        b
        for b in bodies
        if b["layer_name"] == "a"
        and datetime.fromisoformat(b["started_at"].replace("Z", "+00:00")) >= first_day
    ]
    assert a_bodies
    assert sum(b["runs"] for b in daily["buckets"]) == len(a_bodies)
    assert sum(b["insights"] for b in daily["buckets"]) == sum(
        b["insights_created"] for b in a_bodies
    )
    assert sum(b["cost_usd"] for b in daily["buckets"]) == pytest.approx(0.5 * len(a_bodies))


@pytest.mark.parametrize(
    "params",
    [{"days": 31}, {"days": 367, "bucket": "day"}, {"bucket": "week"}, {"days": 0}],
)
async def test_timeseries_limits(client: httpx.AsyncClient, params: dict[str, Any]) -> None:
    response = await client.get("/runs/stats/timeseries", params=params)
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_argument"


async def test_purge_keeps_stats_and_moves_the_list_horizon(
    client: httpx.AsyncClient, engines: Engines
) -> None:
    now = datetime.now(UTC)
    old = [layer_run(started_at=now - timedelta(days=20, hours=i)) for i in range(5)]
    recent = [layer_run(started_at=now - timedelta(days=1, hours=i)) for i in range(3)]
    assert (await client.post("/runs/batch", json={"runs": old + recent})).status_code == 200
    before_stats = (await client.get("/runs/stats/summary", params={"days": 30})).json()
    assert before_stats["total_runs"] == 8

    horizon = floor_day(now - timedelta(days=10))
    deleted = await purge_layer_runs(engines.write, before=horizon, batch_size=2)
    assert deleted == 5

    listing = (await client.get("/runs", params={"limit": 100})).json()
    assert {r["id"] for r in listing["runs"]} == {r["id"] for r in recent}
    assert listing["total"] == 3
    after_stats = (await client.get("/runs/stats/summary", params={"days": 30})).json()
    assert after_stats["total_runs"] == 8, "rollups of purged runs still count in stats"
    assert after_stats["total_tokens"] == before_stats["total_tokens"]
    assert (await client.get(f"/runs/{old[0]['id']}")).status_code == 404


async def test_model_name_total_falls_back_to_a_real_count(client: httpx.AsyncClient) -> None:
    bodies = [layer_run(model_name="m-1") for _ in range(3)] + [layer_run(model_name="m-2")]
    assert (await client.post("/runs/batch", json={"runs": bodies})).status_code == 200
    page = (await client.get("/runs", params={"model_name": "m-1", "limit": 1})).json()
    assert page["total"] == 3

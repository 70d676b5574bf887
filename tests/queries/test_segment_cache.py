"""Reused rollup aggregates: a window's plan, and answers equal to fresh reads after any write."""

from __future__ import annotations

import itertools
import math
import random
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from runwatch.config import Settings
from runwatch.db.engine import Engines
from runwatch.db.tables import layer_run_bucket_changes, layer_runs
from runwatch.percentiles import Histogram, percentiles
from runwatch.queries import error_groups as eg
from runwatch.queries.buckets import Segment, ceil_hour, floor_day, floor_hour
from runwatch.queries.error_filters import ErrorFilter
from runwatch.queries.operator_rollups import rebuild_operator_rollups
from runwatch.queries.rollup_upkeep import rebuild_layer_run_rollups
from runwatch.queries.segment_cache import NO_CACHE, RollupCache, hour_of, plan_window, read_head
from runwatch.queries.summary import summary_query
from runwatch.services import layer_versions
from runwatch.services.layer_summary import summarize_layer_runs
from runwatch.services.retention import purge_layer_runs
from runwatch.services.stuck import stuck_thresholds
from tests.factories import iso, layer_run

HOUR = timedelta(hours=1)


def _covers(segments: list[Segment], since: datetime, until: datetime | None) -> None:
    """The segments tile [since, until) in order, with no gap and no overlap."""
    ordered = sorted(segments, key=lambda s: s.start)
    assert ordered[0].start == since
    for a, b in itertools.pairwise(ordered):
        assert a.end == b.start, (a, b)
    assert ordered[-1].end == until


def test_a_window_is_stable_rollups_and_raw_edges() -> None:
    rng = random.Random(11)
    base = datetime(2026, 3, 1, tzinfo=UTC)
    for _ in range(3000):
        now = base + timedelta(seconds=rng.uniform(0, 90 * 86400))
        since = now - timedelta(
            seconds=rng.choice([60, 3600, 5400, 86400, 40 * 86400]) * rng.random()
        )
        until = rng.choice([None, since + timedelta(seconds=rng.uniform(0, 60 * 86400))])
        plan = plan_window(since, until, now=now, monthly=rng.random() < 0.5)
        if until is not None and until <= since:
            continue
        _covers([*plan.stable, *plan.raw], since, until)
        live = floor_hour(now)
        for s in plan.stable:
            assert s.source in ("hour", "day", "month")
            # Nothing a write to the current hour touches is reused.
            assert s.end is not None
            assert s.end <= live
        # The last complete hour is a segment of its own.
        if until is None and since <= live - HOUR:
            assert Segment("hour", live - HOUR, live) in plan.stable
            # And the day before it, when the window holds it whole.
            yesterday = floor_day(live - HOUR) - timedelta(days=1)
            if ceil_hour(since) <= yesterday:
                assert Segment("day", yesterday, floor_day(live - HOUR)) in plan.stable
        # Everything from the current hour on is read raw.
        if until is None:
            assert plan.raw[-1].end is None
            assert plan.raw[-1].start <= max(live, ceil_hour(since))


def test_a_plan_is_cut_in_utc_whatever_zone_its_instants_come_in() -> None:
    india = timezone(timedelta(hours=5, minutes=30))
    now = datetime(2026, 3, 10, 12, 40, tzinfo=UTC)
    since = datetime(2026, 3, 2, 7, 15, tzinfo=UTC)
    # The same instants in another zone first: a cached plan cut on their
    # half hours must not be what the UTC instants get.
    local = plan_window(since.astimezone(india), None, now=now.astimezone(india))
    plan = plan_window(since, None, now=now)
    assert local == plan
    for segment in (*plan.stable, *plan.raw[1:]):
        assert segment.start is not None
        assert segment.start.minute == 0
        assert segment.start.utcoffset() == timedelta(0)


def test_histograms_answer_with_added_counts_as_merged_ones() -> None:
    rng = random.Random(2)
    for _ in range(2000):
        base = {rng.randint(-5, 40): rng.randint(0, 4) for _ in range(rng.randint(0, 50))}
        # Few added bins, and as many as the base has (a summary's raw runs).
        added = rng.choice((rng.randint(0, 6), rng.randint(0, 60)))
        extra = {rng.randint(-8, 45): rng.randint(0, 3) for _ in range(added)}
        merged = dict(base)
        for index, n in extra.items():
            merged[index] = merged.get(index, 0) + n
        points = (1, 5, 50, 95, 99, 100)
        histogram = Histogram(base)
        assert histogram.percentiles(extra, points) == percentiles(merged, points)
        assert histogram.percentiles(None, points) == percentiles(base, points)


def test_a_histogram_keeps_answers_only_for_the_same_added_counts() -> None:
    rng = random.Random(3)
    base = {rng.randint(-5, 40): rng.randint(1, 4) for _ in range(40)}
    histogram = Histogram(base)
    extras = [{rng.randint(-8, 45): rng.randint(1, 30) for _ in range(5)} for _ in range(20)]
    for _ in range(3):  # more extras than it keeps answers for, asked again and again
        for extra in rng.sample(extras, len(extras)):
            merged = dict(base)
            for index, n in extra.items():
                merged[index] = merged.get(index, 0) + n
            assert histogram.percentiles(extra) == percentiles(merged)
            assert histogram.percentiles({**extra, 99: 0}) == percentiles(merged)


def test_the_cache_keeps_its_budget_and_the_most_recent() -> None:
    cache = RollupCache(10)
    for i in range(6):
        cache.put(("k", i), i, 3)
    assert len(cache) == 3  # 3 rows each, within 10
    assert cache.get(("k", 0)) is None
    assert cache.get(("k", 5)) == 5
    cache.put("too big", 0, 11)
    assert cache.get("too big") is None
    assert RollupCache(0).get("x") is None
    cache.replace(("k", 5), "new", 6)
    assert cache.get(("k", 5)) == "new"
    assert cache.get(("k", 4)) == 4
    assert cache.get(("k", 3)) is None  # 6 + 3 rows: the least recent went


LAYERS = ("alpha", "beta")


def _body(rng: random.Random, now: datetime, i: int, days: float = 40) -> dict[str, Any]:
    status = rng.choice(["success", "success", "failed", "partial", "dry", "running"])
    kind = rng.choice(["Timeout", "RateLimit", "Parse"])
    return layer_run(
        id=f"seg-{i:04d}",
        layer_name=rng.choice(LAYERS),
        layer_hash=rng.choice(["v1", "v2"]),
        model_name=rng.choice(["m1", "m2"]),
        status=status,
        started_at=now - timedelta(seconds=rng.uniform(0, days * 86400)),
        duration=round(rng.lognormvariate(3, 1), 3),
        errors=[{"type": kind, "message": f"failed after {i} s"}]
        if status in ("failed", "partial")
        else None,
    )


async def _answers(conn: Any, cache: RollupCache, settings: Settings, now: datetime) -> Any:
    out: list[Any] = []
    for days, layer in ((30, None), (7, None), (1, None), (30, "alpha")):
        out.append(
            await summarize_layer_runs(
                conn, days=days, layer_name=layer, now=now, settings=settings, cache=cache
            )
        )
    for since, until, layer, statuses in (
        (now - timedelta(days=30), None, None, ()),
        (now - timedelta(days=12, minutes=7), now - timedelta(days=1, minutes=3), "beta", ()),
        (now - timedelta(days=30), None, None, ("failed",)),
    ):
        filters = ErrorFilter(since=since, until=until, layer_name=layer, statuses=statuses)
        out.append(await eg.list_error_groups(conn, filters=filters, now=now, cache=cache))
    for layer in LAYERS:
        out.append(
            await layer_versions.list_versions(
                conn,
                layer_name=layer,
                since=now - timedelta(days=30),
                until=None,
                now=now,
                cache=cache,
            )
        )
    out.append(
        await layer_versions.find_regressions(
            conn, since=now - timedelta(days=30), until=None, min_runs=2, now=now, cache=cache
        )
    )
    out.append(await stuck_thresholds(conn, layers=LAYERS, settings=settings, now=now, cache=cache))
    return out


@pytest.fixture
def operator_settings(settings: Settings) -> Settings:
    # A low floor, so that thresholds come from the durations.
    return settings.model_copy(update={"stuck_floor_seconds": 1.0})


async def _day_counters(conn: Any) -> dict[datetime, int]:
    bc = layer_run_bucket_changes
    query = select(bc.c.bucket_start, bc.c.changes).where(bc.c.grain == "day")
    return {row[0]: row[1] for row in await conn.execute(query)}


def _nearest_rank(values: list[float], p: int) -> float | None:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(p * len(ordered) / 100)) - 1] if ordered else None


def _same_as_runs(summary: dict[str, Any], runs: Any) -> None:
    since = summary["since"]
    for layer in LAYERS:
        mine = [r for r in runs if r["layer_name"] == layer and r["started_at"] >= since]
        entry = summary["by_layer"][layer]
        assert entry["runs"] == len(mine)
        assert entry["failed"] == sum(r["status"] == "failed" for r in mine)
        assert entry["tokens"] == sum(r["tokens_total"] or 0 for r in mine)
        durations = [r["duration_seconds"] for r in mine if r["duration_seconds"] is not None]
        for p in (50, 95, 99):
            want = _nearest_rank(durations, p)
            got = entry[f"duration_p{p}_seconds"]
            assert abs(got - want) <= 0.02 * want, (layer, p, got, want)


async def test_reused_aggregates_equal_fresh_reads_after_every_kind_of_write(
    client: httpx.AsyncClient, engines: Engines, operator_settings: Settings
) -> None:
    rng = random.Random(5)
    now = datetime.now(UTC)
    bodies = [_body(rng, now, i) for i in range(300)]
    assert (await client.post("/runs/batch", json={"runs": bodies})).status_code == 200
    cache = RollupCache(1_000_000)

    async def check() -> None:
        async with engines.read.connect() as conn:
            reused = await _answers(conn, cache, operator_settings, now)
            fresh = await _answers(conn, NO_CACHE, operator_settings, now)
            stored = (await conn.execute(select(layer_runs))).mappings().all()
        assert reused == fresh
        _same_as_runs(reused[0], stored)  # and the 30-day summary against the runs

    await check()
    kept = len(cache)
    assert kept > 0
    await check()  # answered from what the first check kept
    assert len(cache) == kept

    def ago(**delta: float) -> str:
        return iso(now - timedelta(**delta))

    # A run recorded in a day that is already reused, with an error.
    late = layer_run(
        id="late",
        layer_name="alpha",
        layer_hash="v2",
        status="failed",
        started_at=now - timedelta(days=3),
        errors=[{"type": "Timeout", "message": "failed after 9 s"}],
    )
    assert (await client.post("/runs", json=late)).status_code == 201
    await check()
    # A run two days old finishes, slowly and with an error.
    running = [b for b in bodies if b["status"] == "running"]
    old = min(
        running,
        key=lambda b: abs(
            datetime.fromisoformat(b["started_at"].replace("Z", "+00:00"))
            - (now - timedelta(days=2))
        ),
    )
    change = {
        "status": "failed",
        "completed_at": iso(
            datetime.fromisoformat(old["started_at"].replace("Z", "+00:00")) + timedelta(hours=5)
        ),
        "errors": [{"type": "Parse", "message": "failed after 1 s"}],
    }
    assert (await client.patch(f"/runs/{old['id']}", json=change)).status_code == 200
    await check()
    # A run of ten days ago goes.
    gone = next(
        b
        for b in bodies
        if b["id"] != old["id"]
        and now - timedelta(days=11)
        < datetime.fromisoformat(b["started_at"].replace("Z", "+00:00"))
        < now - timedelta(days=9)
    )
    assert (await client.delete(f"/runs/{gone['id']}")).status_code == 204
    await check()
    # Runs in the last complete hour, which is reused on its own.
    recent = [
        layer_run(
            id=f"recent-{i}",
            layer_name="beta",
            started_at=floor_hour(now) - timedelta(minutes=10 + i),
            duration=5.0 * (i + 1),
        )
        for i in range(3)
    ]
    assert (await client.post("/runs/batch", json={"runs": recent})).status_code == 200
    await check()
    # Runs in the partial first hours of the 30-day, 7-day and 1-day windows, whose
    # sums are kept: recorded, then one finishes, then one goes.
    edges = [
        layer_run(
            id=f"edge-{days}",
            layer_name="alpha",
            status="running",
            started_at=now - timedelta(days=days, seconds=-1),
        )
        for days in (30, 7, 1)
    ]
    assert (await client.post("/runs/batch", json={"runs": edges})).status_code == 200
    await check()
    done = {"status": "success", "completed_at": iso(now - timedelta(days=30, seconds=-30))}
    assert (await client.patch("/runs/edge-30", json=done)).status_code == 200
    await check()
    assert (await client.delete("/runs/edge-1")).status_code == 204
    await check()
    # A purge leaves the rollups, and so every answer, as they were.
    before = None
    async with engines.read.connect() as conn:
        before = await _answers(conn, NO_CACHE, operator_settings, now)
    horizon = (now - timedelta(days=35)).replace(hour=0, minute=0, second=0, microsecond=0)
    assert await purge_layer_runs(engines.write, before=horizon) > 0
    await check()
    # A rebuild counts every bucket as changed, so nothing read before it is reused.
    async with engines.write.begin() as conn:
        counted = await _day_counters(conn)
        await rebuild_layer_run_rollups(conn)
        await rebuild_operator_rollups(conn)
        recounted = await _day_counters(conn)
    assert all(recounted[day] > n for day, n in counted.items())
    await check()
    async with engines.read.connect() as conn:
        after = await _answers(conn, cache, operator_settings, now)
    # Nothing changed in the windows, but a purge deletes old running runs: stuck runs
    # are counted whenever they started, so those counts are left out here.
    for answers in (before, after):
        for summary in answers[:4]:
            summary.pop("stuck_runs")
            for entry in summary["by_layer"].values():
                entry.pop("stuck")
    assert after == before


async def test_a_raw_range_within_an_hour_is_sent_only_when_its_counter_moved(
    client: httpx.AsyncClient, engines: Engines
) -> None:
    now = datetime.now(UTC)
    hour = floor_hour(now) - timedelta(days=2)
    runs = [
        layer_run(id=f"in-hour-{i}", started_at=hour + timedelta(minutes=10 + i)) for i in range(3)
    ]
    assert (await client.post("/runs/batch", json={"runs": runs})).status_code == 200
    segment = Segment("raw", hour + timedelta(minutes=5), hour + HOUR)
    counted = hour_of(segment)
    assert counted == Segment("hour", hour, hour + HOUR)
    query = summary_query(None, None, now)

    async def head(known: int | None) -> Any:
        async with engines.read.connect() as conn:
            return await read_head(
                conn, stable=[], raw=[segment], query=query, known={segment: known}
            )

    first = await head(None)
    counter = first.changes[counted]
    assert counter > 0
    assert sorted(row[3] for row in first.rows[segment]) == [r["layer_name"] for r in runs]
    assert len(first.rows[segment]) == 3
    again = await head(counter)
    assert again.changes[counted] == counter
    assert again.rows[segment] == []  # unchanged: not sent
    assert len((await head(counter - 1)).rows[segment]) == 3  # another counter: sent
    late = layer_run(id="in-hour-late", started_at=hour + timedelta(minutes=59))
    assert (await client.post("/runs", json=late)).status_code == 201
    moved = await head(counter)
    assert moved.changes[counted] > counter
    assert len(moved.rows[segment]) == 4


async def test_writes_count_against_the_buckets_their_runs_started_in(
    client: httpx.AsyncClient, engines: Engines
) -> None:
    started = datetime(2026, 2, 3, 4, 5, tzinfo=UTC)
    body = layer_run(id="counted", started_at=started, status="running")
    assert (await client.post("/runs", json=body)).status_code == 201
    change = {"status": "success", "completed_at": iso(started + timedelta(minutes=3))}
    assert (await client.patch("/runs/counted", json=change)).status_code == 200
    assert (await client.delete("/runs/counted")).status_code == 204
    async with engines.read.connect() as conn:
        bc = layer_run_bucket_changes
        rows = {
            (grain, start): n
            for grain, start, n in await conn.execute(
                select(bc.c.grain, bc.c.bucket_start, bc.c.changes)
            )
        }
    assert rows == {
        ("hour", datetime(2026, 2, 3, 4, tzinfo=UTC)): 3,
        ("day", datetime(2026, 2, 3, tzinfo=UTC)): 3,
        ("month", datetime(2026, 2, 1, tzinfo=UTC)): 3,
    }


async def test_a_summary_learns_a_new_purge_horizon_with_its_raw_runs(
    client: httpx.AsyncClient, engines: Engines
) -> None:
    now = datetime.now(UTC)
    runs = [
        layer_run(id=f"edge-{i}", started_at=now - timedelta(days=1, minutes=-20 + 13 * i))
        for i in range(4)
    ]
    assert (await client.post("/runs/batch", json={"runs": runs})).status_code == 200
    first = (await client.get("/runs/stats/summary", params={"days": 1})).json()
    # Purged up to a moment inside the window's first hour: its raw runs are gone,
    # so the window starts at that hour, read from the rollups.
    horizon = now - timedelta(days=1) + timedelta(minutes=30)
    assert await purge_layer_runs(engines.write, before=horizon) > 0
    after = None
    for _ in range(50):  # until this process has heard of the purge's new version
        after = (await client.get("/runs/stats/summary", params={"days": 1})).json()
        if after["since"] != first["since"]:
            break
    assert after is not None
    since = datetime.fromisoformat(after["since"].replace("Z", "+00:00"))
    assert since == floor_hour(since)
    assert since < horizon
    kept = [
        r for r in runs if datetime.fromisoformat(r["started_at"].replace("Z", "+00:00")) >= since
    ]
    assert after["total_runs"] == len(kept)


async def test_an_empty_window_reads_nothing(client: httpx.AsyncClient) -> None:
    assert (await client.post("/runs", json=layer_run())).status_code == 201
    until = iso(datetime(2026, 1, 1, tzinfo=UTC))
    for path in ("/runs/stats/versions", "/runs/errors"):
        params = {"layer_name": "nightly-user-reflection", "since": until, "until": until}
        response = await client.get(path, params=params)
        assert response.status_code == 200, response.text
        assert response.json()["since"] == response.json()["until"]

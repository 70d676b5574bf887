"""Rollup answers equal raw aggregation, on random data and random windows, on both dialects."""

from __future__ import annotations

import itertools
import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from runwatch.db.tables import layer_run_rollups, layer_runs
from runwatch.kinds import LAYER_RUNS
from runwatch.queries.buckets import nanos, plan_segments
from runwatch.queries.data_state import set_purged_before
from runwatch.queries.rollup_upkeep import rebuild_layer_run_rollups
from runwatch.queries.rollups import rollup_totals
from runwatch.queries.runs import RunFilter, count_runs
from runwatch.services import layer_lifecycle as q
from runwatch.services.layer_summary import summarize_layer_runs
from runwatch.services.retention import purge_layer_runs

T0 = datetime(2026, 5, 10, 0, 0, tzinfo=UTC)
LAYERS = ("alpha", "beta", "gamma")
STATUSES = ("running", "success", "partial", "failed", "dry")


def random_moment(rng: random.Random) -> datetime:
    # Some runs exactly on hour and day boundaries, where off-by-one bugs live.
    # Across ten weeks, so that windows span whole months as well as days and hours.
    roll = rng.random()
    if roll < 0.1:
        return datetime(2026, rng.choice([6, 7]), 1, tzinfo=UTC)  # a month boundary
    if roll < 0.25:
        return T0 + timedelta(hours=rng.randint(0, 24 * 70))
    return T0 + timedelta(seconds=rng.uniform(0, 70 * 86400), microseconds=rng.randint(0, 999))


def random_run(rng: random.Random, n: int) -> dict[str, Any]:
    status = rng.choice(STATUSES)
    started = random_moment(rng)
    return {
        "id": f"r{n:05d}",
        "layer_name": rng.choice(LAYERS),
        "layer_hash": "h",
        "status": status,
        "started_at": started,
        "completed_at": None
        if status == "running"
        else started + timedelta(seconds=rng.uniform(0, 5000)),
        "insights_created": rng.randint(0, 50),
        "tokens_input": rng.choice([None, rng.randint(0, 10**6)]),
        "tokens_output": rng.randint(0, 10**5),
        "estimated_cost_usd": rng.choice([None, 0.0, rng.uniform(0, 3), 0.1, 0.2]),
    }


def random_bound(rng: random.Random) -> datetime | None:
    roll = rng.random()
    if roll < 0.15:
        return None
    if roll < 0.25:
        return datetime(2026, rng.choice([5, 6, 7, 8]), 1, tzinfo=UTC)
    if roll < 0.4:
        return T0 + timedelta(days=rng.randint(-1, 72))
    if roll < 0.55:
        return T0 + timedelta(hours=rng.randint(-5, 24 * 72))
    if roll < 0.7:  # a short window: both ends near each other is decided by the caller
        return T0 + timedelta(days=rng.choice([20, 21, 22]), hours=rng.randint(0, 3))
    return T0 + timedelta(seconds=rng.uniform(-3600, 72 * 86400))


def raw_totals(rows: list[Any], since: Any, until: Any, layer: Any, statuses: Any) -> dict:
    out: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0] * 6)
    for row in rows:
        if since is not None and row.started_at < since:
            continue
        if until is not None and row.started_at >= until:
            continue
        if layer is not None and row.layer_name != layer:
            continue
        if statuses and row.status not in statuses:
            continue
        total = out[(row.layer_name, row.status)]
        total[0] += 1
        total[1] += row.insights_created
        total[2] += row.tokens_total or 0
        total[3] += nanos(row.estimated_cost_usd)
        total[4] += 0 if row.duration_seconds is None else round(row.duration_seconds * 1e6)
        total[5] += row.completed_at is not None
    return dict(out)


async def test_rollups_equal_raw_aggregation(conn: AsyncConnection) -> None:
    rng = random.Random(20261122)
    runs = [random_run(rng, n) for n in range(400)]
    await q.create_layer_runs(conn, runs[:300])
    for run in runs[300:]:  # one at a time, too
        await q.create_layer_run(conn, run)
    # Updates and deletes must take their old contribution out exactly.
    running = [r for r in runs if r["status"] == "running"]
    for run in running[: len(running) // 2]:
        await q.update_layer_run(
            conn,
            run["id"],
            {
                "status": rng.choice(STATUSES[1:]),
                "insights_created": rng.randint(0, 9),
                "estimated_cost_usd": rng.uniform(0, 1),
                "completed_at": run["started_at"] + timedelta(seconds=rng.uniform(0, 100)),
            },
        )
    for run in running[len(running) // 2 :][:10]:
        await q.update_layer_run(conn, run["id"], {"targets_processed": 3, "tokens_output": 7})
    for run in rng.sample(runs, 60):
        await q.delete_layer_run(conn, run["id"])

    rows = (await conn.execute(select(layer_runs))).all()
    assert len(rows) == 340
    for _ in range(150):
        since, until = random_bound(rng), random_bound(rng)
        layer = rng.choice([None, None, *LAYERS])
        statuses = tuple(rng.sample(STATUSES, rng.randint(0, 2)))
        got = await rollup_totals(
            conn, layer_name=layer, statuses=statuses, since=since, until=until
        )
        expected = raw_totals(rows, since, until, layer, statuses)
        actual = {
            (g.layer_name, g.status): [
                g.runs,
                g.insights,
                g.tokens,
                g.cost_nanousd,
                g.duration_us,
                g.completed_runs,
            ]
            for g in got
        }
        for key, values in expected.items():
            assert key in actual, (since, until, layer, statuses, key)
            assert actual[key][:4] == values[:4], (since, until, layer, statuses, key)
            # Durations are stored as doubles; allow a microsecond of rounding per run.
            assert abs(actual[key][4] - values[4]) <= values[0], (since, until, key)
            assert actual[key][5] == values[5]
        assert set(actual) <= set(expected)
        total = await count_runs(
            conn,
            LAYER_RUNS,
            filters=RunFilter.where(layer_name=layer, statuses=statuses, since=since, until=until),
        )
        assert total == sum(v[0] for v in expected.values())


async def test_no_rollup_rows_left_negative(conn: AsyncConnection) -> None:
    rng = random.Random(3)
    runs = [random_run(rng, n) for n in range(50)]
    await q.create_layer_runs(conn, runs)
    for run in runs:
        await q.delete_layer_run(conn, run["id"])
    leftovers = (await conn.execute(select(layer_run_rollups))).all()
    assert all(row.runs == 0 and row.tokens == 0 and row.cost_nanousd == 0 for row in leftovers)


@pytest.mark.parametrize("seed", range(5))
def test_segments_cover_the_window_exactly(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(300):
        since, until = random_bound(rng), random_bound(rng)
        segments = plan_segments(since, until)
        if since is not None and until is not None and until <= since:
            assert segments == []
            continue
        assert segments[0].start == since
        assert segments[-1].end == until
        for before, after in itertools.pairwise(segments):
            assert before.end == after.start
            assert before.end is not None
        for s in segments:
            for edge in (s.start, s.end):
                if s.source == "month":
                    assert edge is None or edge == edge.replace(
                        day=1, hour=0, minute=0, second=0, microsecond=0
                    )
                elif s.source == "day":
                    assert edge == edge.replace(hour=0, minute=0, second=0, microsecond=0)
                elif s.source == "hour":
                    assert edge == edge.replace(minute=0, second=0, microsecond=0)
        # Raw rows only at the partial hours of the ends.
        for s in segments:
            if s.source == "raw":
                assert s.end - s.start <= timedelta(hours=2)


async def test_rebuild_reproduces_incremental_rollups(conn: AsyncConnection) -> None:
    rng = random.Random(11)
    runs = [random_run(rng, n) for n in range(200)]
    await q.create_layer_runs(conn, runs)
    for run in rng.sample(runs, 30):
        await q.delete_layer_run(conn, run["id"])

    def snapshot(rows: list[Any]) -> dict[tuple[Any, ...], tuple[int, ...]]:
        return {
            (row.grain, row.bucket_start, row.layer_name, row.status): (
                row.runs,
                row.insights,
                row.tokens,
                row.cost_nanousd,
                row.completed_runs,
            )
            for row in rows
            if row.runs
        }

    incremental = snapshot((await conn.execute(select(layer_run_rollups))).all())
    await rebuild_layer_run_rollups(conn)
    rebuilt = snapshot((await conn.execute(select(layer_run_rollups))).all())
    assert rebuilt == incremental
    assert len(rebuilt) > 100


async def test_purge_never_makes_the_summary_undercount(conn: AsyncConnection) -> None:
    """A window whose first, partial hour was purged starts at that hour, from the rollups."""
    now = datetime(2026, 11, 28, 17, 30, tzinfo=UTC)
    since = now - timedelta(days=2)  # 2026-11-26 17:30, inside the purged period
    horizon = datetime(2026, 11, 27, tzinfo=UTC)
    before_since = since - timedelta(minutes=20)  # same hour, before the window
    after_since = since + timedelta(minutes=20)  # same hour, in the window
    recent = horizon + timedelta(hours=12)
    bodies = []
    for i, started in enumerate((before_since, after_since, recent)):
        body = random_run(random.Random(i), i)
        bodies.append(
            {
                **body,
                "id": f"edge-{i}",
                "started_at": started,
                "completed_at": None,
                "status": "running",
            }
        )
    await q.create_layer_runs(conn, bodies)

    summary = await summarize_layer_runs(conn, days=2, now=now)
    assert summary["since"] == since
    assert summary["total_runs"] == 2  # after_since and recent
    later = await summarize_layer_runs(conn, days=1, now=now)

    await set_purged_before(conn, horizon)
    deleted = await conn.execute(delete(layer_runs).where(layer_runs.c.started_at < horizon))
    assert deleted.rowcount == 2

    purged = await summarize_layer_runs(conn, days=2, now=now, purge_horizon=horizon)
    assert purged["since"] == since.replace(minute=0)
    assert purged["total_runs"] == 3, "the whole first hour, from the rollups"
    # A window that starts after the horizon is not touched by the purge.
    assert await summarize_layer_runs(conn, days=1, now=now, purge_horizon=horizon) == later


async def test_rebuild_after_a_purge_in_the_middle_of_a_month(engines: Any) -> None:
    """The month of the purge horizon keeps its purged runs and recounts its kept ones."""
    rng = random.Random(12)
    runs = [random_run(rng, n) for n in range(300)]
    async with engines.write.begin() as conn:
        await q.create_layer_runs(conn, runs)
    horizon = datetime(2026, 6, 15, tzinfo=UTC)
    purged = await purge_layer_runs(engines.write, before=horizon, batch_size=17)
    assert purged == sum(run["started_at"] < horizon for run in runs)
    assert 0 < purged < len(runs)

    def snapshot(rows: list[Any]) -> dict[tuple[Any, ...], tuple[int, ...]]:
        return {
            (row.grain, row.bucket_start, row.layer_name, row.status): (
                row.runs,
                row.insights,
                row.tokens,
                row.cost_nanousd,
                row.duration_us,
                row.completed_runs,
            )
            for row in rows
            if row.runs
        }

    async with engines.write.begin() as conn:
        before = snapshot((await conn.execute(select(layer_run_rollups))).all())
        await rebuild_layer_run_rollups(conn)
        after = snapshot((await conn.execute(select(layer_run_rollups))).all())
    assert after == before
    # Every run, purged or not, is still counted once in the months.
    months = sum(v[0] for k, v in after.items() if k[0] == "month")
    assert months == len(runs)

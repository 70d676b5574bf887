"""The client's operator calls against a live server: error groups, stuck runs, versions.

Every expected figure is worked out here from the runs the test records, not
read back from the API.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from runwatch.client import AsyncRunwatchClient, InvalidArgumentError, RunwatchClient
from runwatch.schemas.layer_runs import LayerRunDetailNow, LayerRunSummary
from runwatch.schemas.operator import (
    ErrorGroup,
    ErrorGroupPage,
    RegressionList,
    VersionCompare,
    VersionList,
)
from tests.client.conftest import LiveServer
from tests.factories import layer_run

# The groups' templates as the README defines them: numbers, uuids, quoted text replaced.
TIMEOUT = ("TimeoutError", "Timeout after <num>s on ticket-<num>")
RATE = ("RateLimitError", "Rate limited (<num>) for request <uuid>")
GAVE_UP = ("ProviderError", "Provider gave up after <num> tries")
STUCK_FLOOR = 1800.0  # the default threshold of a layer with no recent completed runs


def _error(shape: tuple[str, str], i: int) -> dict[str, Any]:
    kind, _template = shape
    message = {
        TIMEOUT: f"Timeout after {i % 50 + 1}s on ticket-{1000 + i}",
        RATE: f"Rate limited (429) for request 7e0d6c1a-0b6e-4c55-9a4e-{i:012d}",
        GAVE_UP: f"Provider gave up after {i % 4 + 2} tries",
    }[shape]
    return {"type": kind, "message": message, "target": f"t-{i}"}


@dataclass
class World:
    now: datetime
    bodies: list[dict[str, Any]]
    errors: dict[tuple[str, str], Counter[str]] = field(default_factory=dict)
    """Per group: errors per run id."""


@pytest.fixture
def world(live_server: LiveServer) -> World:
    now = datetime.now(UTC)
    bodies: list[dict[str, Any]] = []
    errors: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    for i in range(30):  # r1: every run succeeds
        started = now - timedelta(days=6) + timedelta(hours=i)
        bodies.append(
            layer_run(
                id=f"r1-{i:02d}",
                layer_name="ranker",
                layer_hash="r1",
                started_at=started,
                duration=10.0 + i % 5,
            )
        )
    for i in range(30):  # r2: 12 succeed, 18 fail with errors
        started = now - timedelta(days=3) + timedelta(hours=i)
        run_id = f"r2-{i:02d}"
        run_errors = None
        if i >= 12:
            shapes = [TIMEOUT]
            shapes += [TIMEOUT] if i % 6 == 0 else []
            shapes += [RATE] if i % 2 == 0 else []
            shapes += [GAVE_UP] if i % 3 == 0 else []
            run_errors = [_error(shape, i) for shape in shapes]
            for shape in shapes:
                errors[shape][run_id] += 1
        bodies.append(
            layer_run(
                id=run_id,
                layer_name="ranker",
                layer_hash="r2",
                status="success" if i < 12 else "failed",
                started_at=started,
                duration=10.0 + i % 5,
                errors=run_errors,
            )
        )
    for run_id, age in (
        ("stuck-hours", timedelta(hours=2)),
        ("stuck-day", timedelta(days=1)),
        ("fresh", timedelta(seconds=60)),
    ):
        bodies.append(
            layer_run(id=run_id, layer_name="importer", status="running", started_at=now - age)
        )
    with RunwatchClient(live_server.url) as client:
        assert client.create_runs(bodies).created == len(bodies)
    return World(now=now, bodies=bodies, errors=dict(errors))


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _expected_groups(world: World) -> list[tuple[str, str, int, int]]:
    """(type, template, errors, runs), largest first by errors."""
    rows = [
        (kind, template, sum(per_run.values()), len(per_run))
        for (kind, template), per_run in world.errors.items()
    ]
    return sorted(rows, key=lambda row: row[2], reverse=True)


def _p_two_proportions(success_a: int, n_a: int, success_b: int, n_b: int) -> float:
    pooled = (success_a + success_b) / (n_a + n_b)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    z = (success_b / n_b - success_a / n_a) / se
    return math.erfc(abs(z) / math.sqrt(2))


def test_error_groups_and_their_runs(live_server: LiveServer, world: World) -> None:
    with RunwatchClient(live_server.url) as client:
        first = client.list_error_groups(limit=1)
        assert isinstance(first, ErrorGroupPage)
        assert first.total_groups == len(world.errors) == 3
        assert first.total_errors == sum(sum(c.values()) for c in world.errors.values())
        assert len(first.groups) == 1
        assert first.next_cursor is not None

        groups = list(client.iter_error_groups(page_size=1))
        assert all(isinstance(g, ErrorGroup) for g in groups)
        assert [(g.type, g.message, g.errors, g.runs) for g in groups] == _expected_groups(world)
        assert groups[0].fingerprint == first.groups[0].fingerprint
        for group in groups:
            per_run = world.errors[(group.type, group.message)]
            assert group.layers == {"ranker": len(per_run)}
            starts = [_at(b["started_at"]) for b in world.bodies if b["id"] in per_run]
            assert (group.first_seen, group.last_seen) == (min(starts), max(starts))

            # The runs of one group: every one of them, and a real total.
            page = client.list_runs(error_fingerprint=group.fingerprint, limit=100)
            assert page.total == len(per_run)
            assert {r.id for r in page.runs} == set(per_run)
            paged = list(client.iter_runs(error_fingerprint=group.fingerprint, page_size=2))
            assert sorted(r.id for r in paged) == sorted(per_run)

        # Filters narrow the groups: r1 never failed; a window of the last 30 hours.
        assert client.list_error_groups(layer_hash="r1").total_groups == 0
        since = world.now - timedelta(hours=30)
        recent = {
            b["id"]
            for b in world.bodies
            if b["layer_hash"] == "r2" and _at(b["started_at"]) >= since
        }
        by_sort = client.list_error_groups(since=since, sort="runs", status=["failed"])
        want = sorted(
            (
                (kind, template, sum(n for run_id, n in c.items() if run_id in recent))
                for (kind, template), c in world.errors.items()
                if recent & set(c)
            ),
            key=lambda row: row[2],
        )
        got = sorted(((g.type, g.message, g.errors) for g in by_sort.groups), key=lambda r: r[2])
        assert got == want
        runs_order = [g.runs for g in by_sort.groups]
        assert runs_order == sorted(runs_order, reverse=True)

        with pytest.raises(InvalidArgumentError) as both:
            client.list_error_groups(days=3, since=since)
        assert both.value.problem.errors is not None
        assert both.value.problem.errors[0].loc == ["query", "days"]


def test_stuck_runs(live_server: LiveServer, world: World) -> None:
    with RunwatchClient(live_server.url) as client:
        page = client.list_runs(stuck=True)
        assert {r.id for r in page.runs} == {"stuck-hours", "stuck-day"}
        assert page.total == 2
        assert all(isinstance(r, LayerRunSummary) for r in page.runs)
        others = [r.id for r in client.iter_runs(stuck=False, layer_name="importer")]
        assert others == ["fresh"]

        stuck = client.get_run("stuck-hours")
        assert isinstance(stuck, LayerRunDetailNow)
        started = world.now - timedelta(hours=2)
        assert stuck.stuck is True
        assert stuck.stuck_threshold_seconds == STUCK_FLOOR
        assert stuck.stuck_since is not None
        assert abs(stuck.stuck_since - (started + timedelta(seconds=STUCK_FLOOR))) < timedelta(
            milliseconds=1
        )
        fresh = client.get_run("fresh")
        assert (fresh.stuck, fresh.stuck_since) == (False, None)
        assert fresh.stuck_threshold_seconds == STUCK_FLOOR
        done = client.get_run("r1-00")
        assert (done.stuck, done.stuck_since, done.stuck_threshold_seconds) == (False, None, None)


def test_versions_compare_and_regressions(live_server: LiveServer, world: World) -> None:
    def row_of(version: str) -> dict[str, Any]:
        runs = [b for b in world.bodies if b.get("layer_hash") == version]
        durations = [(_at(b["completed_at"]) - _at(b["started_at"])).total_seconds() for b in runs]
        statuses = Counter(b["status"] for b in runs)
        return {
            "runs": len(runs),
            "success": statuses["success"],
            "failed": statuses["failed"],
            "success_rate": statuses["success"] / len(runs),
            "mean_duration_seconds": sum(durations) / len(durations),
        }

    r1, r2 = row_of("r1"), row_of("r2")
    with RunwatchClient(live_server.url) as client:
        versions = client.list_layer_versions("ranker")
        assert isinstance(versions, VersionList)
        assert [v.layer_hash for v in versions.versions] == ["r1", "r2"]
        for got, want in zip(versions.versions, (r1, r2), strict=True):
            assert got.runs == got.finished_runs == want["runs"]
            assert (got.by_status.success, got.by_status.failed) == (
                want["success"],
                want["failed"],
            )
            assert got.success_rate == pytest.approx(want["success_rate"])
            assert got.mean_duration_seconds == pytest.approx(want["mean_duration_seconds"])
        narrow = client.list_layer_versions("ranker", days=2)
        # The window is 2 days back from the server's "now", which moves in steps.
        assert narrow.since > world.now - timedelta(days=2, minutes=1)
        assert [(v.layer_hash, v.runs) for v in narrow.versions] == [
            ("r2", sum(_at(b["started_at"]) >= narrow.since for b in world.bodies
                       if b.get("layer_hash") == "r2")),
        ]  # fmt: skip

        compare = client.compare_layer_versions("ranker", "r1", "r2")
        assert isinstance(compare, VersionCompare)
        assert (compare.a.layer_hash, compare.b.layer_hash) == ("r1", "r2")
        assert compare.differences.success_rate == pytest.approx(
            r2["success_rate"] - r1["success_rate"]
        )
        p = _p_two_proportions(r1["success"], r1["runs"], r2["success"], r2["runs"])
        assert compare.tests.success_rate.p_value == pytest.approx(p, rel=1e-6)
        assert compare.tests.success_rate.significant is (p < 0.05)

        regressions = client.list_regressions()
        assert isinstance(regressions, RegressionList)
        assert [
            (r.layer_name, r.a.layer_hash, r.b.layer_hash) for r in regressions.regressions
        ] == [("ranker", "r1", "r2")]
        assert "success_rate" in regressions.regressions[0].worse
        assert client.list_regressions(layer_name="importer").regressions == []
        since = world.now - timedelta(days=2)
        assert client.list_regressions(since=since).regressions == []  # r1 is out of the window


async def test_async_operator_calls_match_the_sync_ones(
    live_server: LiveServer, world: World
) -> None:
    with RunwatchClient(live_server.url) as sync:
        async with AsyncRunwatchClient(live_server.url) as client:
            groups = [g async for g in client.iter_error_groups(page_size=2)]
            assert [(g.type, g.message, g.errors, g.runs) for g in groups] == _expected_groups(
                world
            )
            assert groups == list(sync.iter_error_groups())
            assert await client.list_error_groups(limit=1) == sync.list_error_groups(limit=1)
            fingerprint = groups[-1].fingerprint
            ids = [r.id async for r in client.iter_runs(error_fingerprint=fingerprint, page_size=2)]
            assert sorted(ids) == sorted(world.errors[(groups[-1].type, groups[-1].message)])
            stuck = await client.list_runs(stuck=True, sort="started_at")
            assert [r.id for r in stuck.runs] == ["stuck-day", "stuck-hours"]
            detail = await client.get_run("stuck-day")
            assert isinstance(detail, LayerRunDetailNow)
            assert detail.stuck

            versions = await client.list_layer_versions("ranker")
            assert versions == sync.list_layer_versions("ranker")
            compare = await client.compare_layer_versions("ranker", "r1", "r2", days=7)
            assert compare == sync.compare_layer_versions("ranker", "r1", "r2", days=7)
            regressions = await client.list_regressions(layer_name="ranker")
            assert [r.b.layer_hash for r in regressions.regressions] == ["r2"]
            with pytest.raises(InvalidArgumentError):
                await client.compare_layer_versions("ranker", "r1", "r2", days=0)

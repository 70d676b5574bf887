"""Stuck runs: thresholds from the layer's recent p95 with a floor, or from the setting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy import update

from runwatch.config import Settings
from runwatch.db.engine import Engines
from runwatch.db.tables import extraction_runs, layer_runs
from runwatch.queries import stuck as stuck_q
from runwatch.services.layer_summary import summarize_layer_runs
from runwatch.services.stuck import stuck_thresholds
from tests.factories import layer_run

FLOOR = 60.0
MULTIPLE = 3.0
QUICK_P95 = 28.0  # nearest rank 19 of the durations 10..29 s
QUICK_THRESHOLD = MULTIPLE * QUICK_P95


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(
        database_url=database_url,
        auto_migrate=False,
        stuck_floor_seconds=FLOOR,
        stuck_p95_multiple=MULTIPLE,
    )


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.fixture
async def world(client: httpx.AsyncClient) -> dict[str, Any]:
    now = datetime.now(UTC)
    history = [
        layer_run(layer_name="quick", started_at=now - timedelta(hours=5, minutes=i), duration=d)
        for i, d in enumerate(range(10, 30))
    ]
    running = {
        "quick-young": ("quick", now - timedelta(seconds=20)),
        "quick-old": ("quick", now - timedelta(seconds=400)),
        "quick-days": ("quick", now - timedelta(days=2)),
        "quick-ancient": ("quick", now - timedelta(days=10)),
        "fresh-young": ("fresh", now - timedelta(seconds=15)),
        "fresh-old": ("fresh", now - timedelta(seconds=300)),
    }
    bodies = history + [
        layer_run(id=run_id, layer_name=layer, started_at=started, status="running")
        for run_id, (layer, started) in running.items()
    ]
    bodies.append(
        layer_run(id="fresh-done", layer_name="fresh", started_at=now - timedelta(days=8))
    )
    assert (await client.post("/runs/batch", json={"runs": bodies})).status_code == 200
    return {"now": now, "total": len(bodies)}


STUCK = {"quick-old", "quick-days", "quick-ancient", "fresh-old"}


async def test_stuck_runs_everywhere(client: httpx.AsyncClient, world: dict[str, Any]) -> None:
    response = await client.get("/runs", params={"stuck": "true", "limit": 100})
    assert response.status_code == 200, response.text
    page = response.json()
    assert {r["id"] for r in page["runs"]} == STUCK
    assert page["total"] == len(STUCK)
    fresh = (await client.get("/runs", params={"stuck": "true", "layer_name": "fresh"})).json()
    assert [r["id"] for r in fresh["runs"]] == ["fresh-old"]
    others = (await client.get("/runs", params={"stuck": "false", "limit": 100})).json()
    assert others["total"] == world["total"] - len(STUCK)
    assert not STUCK & {r["id"] for r in others["runs"]}

    summary = (await client.get("/runs/stats/summary")).json()
    assert summary["stuck_runs"] == 4  # the ten-day-old one too, though it began before the window
    assert summary["by_layer"]["quick"]["stuck"] == 3
    assert summary["by_layer"]["fresh"]["stuck"] == 1


async def test_detail_says_stuck_and_since_when(
    client: httpx.AsyncClient, world: dict[str, Any]
) -> None:
    old = (await client.get("/runs/quick-old")).json()
    assert old["stuck"] is True
    assert old["stuck_threshold_seconds"] == pytest.approx(QUICK_THRESHOLD, rel=0.02)
    since = _at(old["started_at"]) + timedelta(seconds=old["stuck_threshold_seconds"])
    assert _at(old["stuck_since"]) == since
    young = (await client.get("/runs/quick-young")).json()
    assert (young["stuck"], young["stuck_since"]) == (False, None)
    fresh = (await client.get("/runs/fresh-old")).json()
    assert fresh["stuck"] is True
    assert fresh["stuck_threshold_seconds"] == FLOOR  # no history: the floor
    done = (await client.get("/runs/fresh-done")).json()
    assert "stuck" not in done  # only running runs can be stuck
    assert "stuck_since" not in done
    assert done["completed_at"] is not None


async def test_the_setting_overrides_thresholds(engines: Engines, world: dict[str, Any]) -> None:
    configured = Settings(stuck_after_seconds="quick=1000, 50")
    assert configured.stuck_overrides == (50.0, {"quick": 1000.0})
    async with engines.write.connect() as conn:
        found = await stuck_thresholds(
            conn, layers=["quick", "fresh", "other"], settings=configured, now=world["now"]
        )
        assert found == {"quick": 1000.0, "fresh": 50.0, "other": 50.0}
        only_one = Settings(stuck_after_seconds="fresh=5", stuck_floor_seconds=FLOOR)
        found = await stuck_thresholds(
            conn, layers=["quick", "fresh"], settings=only_one, now=world["now"]
        )
        assert found["fresh"] == 5.0
        assert found["quick"] == pytest.approx(max(FLOOR, 3.0 * QUICK_P95), rel=0.02)
    for bad in ("quick=soon", "-5", "a=0", "inf"):
        with pytest.raises(ValidationError):
            Settings(stuck_after_seconds=bad)


async def test_expired_extraction_leases_are_shown(
    client: httpx.AsyncClient, engines: Engines
) -> None:
    body = {"prompt_id": "p", "config_id": "c", "document_name": "d"}
    run_id = (await client.post("/extraction-runs", json=body)).json()["run_id"]
    claim = await client.post("/extraction-runs/claim", json={"worker_id": "w1"})
    assert claim.status_code == 200, claim.text
    live = (await client.get(f"/extraction-runs/{run_id}")).json()
    assert (live["status"], live["lease_expired"]) == ("running", False)
    async with engines.write.begin() as conn:
        past = datetime.now(UTC) - timedelta(seconds=5)
        await conn.execute(
            update(extraction_runs)
            .where(extraction_runs.c.id == run_id)
            .values(lease_expires_at=past)
        )
    expired = (await client.get(f"/extraction-runs/{run_id}")).json()
    assert expired["lease_expired"] is True


async def test_the_summary_counts_stuck_runs_with_any_threshold(
    engines: Engines, world: dict[str, Any]
) -> None:
    """Short, p95-based and longer-than-a-day thresholds, against the runs themselves."""
    now = world["now"]
    started = {
        "quick-young": timedelta(seconds=20),
        "quick-old": timedelta(seconds=400),
        "quick-days": timedelta(days=2),
        "quick-ancient": timedelta(days=10),
        "fresh-young": timedelta(seconds=15),
        "fresh-old": timedelta(seconds=300),
    }
    for overrides, thresholds in (
        ("", {"quick": QUICK_THRESHOLD, "fresh": FLOOR}),
        ("quick=200000", {"quick": 200_000.0, "fresh": FLOOR}),  # over a day: counted apart
        ("quick=10, 250", {"quick": 10.0, "fresh": 250.0}),  # below the floor
    ):
        settings = Settings(
            stuck_after_seconds=overrides,
            stuck_floor_seconds=FLOOR,
            stuck_p95_multiple=MULTIPLE,
        )
        want: dict[str, int] = {}
        for run_id, age in started.items():
            layer = run_id.split("-")[0]
            if age.total_seconds() > thresholds[layer] * 1.02:  # p95s are within 2%
                want[layer] = want.get(layer, 0) + 1
        async with engines.read.connect() as conn:
            summary = await summarize_layer_runs(conn, days=30, now=now, settings=settings)
        got = {name: e["stuck"] for name, e in summary["by_layer"].items() if e["stuck"]}
        assert got == want, overrides
        assert summary["stuck_runs"] == sum(want.values()), overrides


@pytest.mark.parametrize("dialect", ["sqlite"], indirect=True)
async def test_running_runs_are_read_through_their_index_on_sqlite(engines: Engines) -> None:
    # SQLite's planner would take the status index and read every running run's
    # layer from the table; counts and the summary's running runs use the partial index.
    now = datetime.now(UTC)
    count = stuck_q._count_statement(2, True)
    params = {
        "before_default": now,
        "latest": now,
        "layer0": "a",
        "before0": now,
        "layer1": "b",
        "before1": now,
        "layer_name": "a",
    }
    older, recent = stuck_q.running_parts("a")([layer_runs.c.layer_name])
    running = {"layer_name": "a", **stuck_q.running_params(60.0, now)}
    async with engines.read.connect() as conn:
        for statement, values in ((count, params), (older, running), (recent, running)):
            compiled = statement.compile(dialect=conn.dialect)
            plan = await conn.exec_driver_sql(
                f"EXPLAIN QUERY PLAN {compiled}",
                tuple(compiled.construct_params(values)[name] for name in compiled.positiontup),
            )
            details = " ".join(str(row[-1]) for row in plan)
            assert "ix_layer_runs_running_started_at_layer_name" in details, details
            assert "ix_layer_runs_status_started_at_id" not in details, details

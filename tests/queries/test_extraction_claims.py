"""Claims under real concurrency: each run to exactly one worker, none lost when a worker dies."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import insert, select

from runwatch.db.engine import Engines
from runwatch.db.tables import extraction_runs
from runwatch.errors import Conflict
from runwatch.services import extraction_lifecycle as q

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
LEASE = 30


async def seed(engines: Engines, count: int) -> list[str]:
    rows = [
        {
            "id": f"run-{i:05d}",
            "prompt_id": "p",
            "config_id": "c",
            "document_name": f"doc-{i}",
            "status": "pending",
            "created_at": T0 - timedelta(hours=1) + timedelta(milliseconds=i),
            "updated_at": T0,
            "attempts": 0,
        }
        for i in range(count)
    ]
    async with engines.write.begin() as conn:
        await conn.execute(insert(extraction_runs), rows)
    return [r["id"] for r in rows]


async def claim(
    engines: Engines, worker: str, n: int, *, now: datetime, max_attempts: int = 3
) -> list[str]:
    async with engines.write.begin() as conn:
        runs = await q.claim_extraction_runs(
            conn,
            worker_id=worker,
            max_runs=n,
            lease_seconds=LEASE,
            max_attempts=max_attempts,
            now=now,
        )
    return [r["id"] for r in runs]


async def complete(engines: Engines, run_id: str, worker: str, *, now: datetime) -> None:
    async with engines.write.begin() as conn:
        await q.update_extraction_run(
            conn,
            run_id,
            {"status": "completed", "worker_id": worker, "output": {"by": worker}},
            default_lease_seconds=LEASE,
            now=now,
        )


async def all_runs(engines: Engines) -> dict[str, Any]:
    async with engines.read.connect() as conn:
        rows = await conn.execute(select(extraction_runs))
        return {r.id: r._mapping for r in rows}


async def test_concurrent_claimers_never_share_a_run(engines: Engines) -> None:
    ids = await seed(engines, 300)
    claimed: dict[str, list[str]] = {}

    async def worker(name: str) -> None:
        mine = claimed.setdefault(name, [])
        while batch := await claim(engines, name, 7, now=T0):
            mine.extend(batch)

    # Eight claimers on eight connections at once (PostgreSQL's pool holds ten).
    await asyncio.gather(*(worker(f"w{i}") for i in range(8)))
    handed_out = [run_id for runs in claimed.values() for run_id in runs]
    assert Counter(handed_out).most_common(1)[0][1] == 1
    assert sorted(handed_out) == ids
    stored = await all_runs(engines)
    for name, runs in claimed.items():
        for run_id in runs:
            assert stored[run_id]["worker_id"] == name
            assert stored[run_id]["status"] == "running"
            assert stored[run_id]["attempts"] == 1


async def test_each_claim_takes_the_oldest_pending_runs(engines: Engines) -> None:
    ids = await seed(engines, 10)
    assert await claim(engines, "w", 3, now=T0) == ids[:3]
    assert await claim(engines, "w", 3, now=T0) == ids[3:6]


# SQLite has one writer at a time, so there is nothing to skip there: PostgreSQL only.
@pytest.mark.parametrize("dialect", ["postgresql"])
async def test_open_claims_do_not_block_each_other_on_postgresql(
    engines: Engines, dialect: str
) -> None:
    ids = await seed(engines, 6)
    first = await engines.write.connect()
    try:
        transaction = await first.begin()
        held = await q.claim_extraction_runs(
            first, worker_id="slow", max_runs=3, lease_seconds=LEASE, max_attempts=3, now=T0
        )
        # The first claim is still uncommitted: its rows are locked. A second
        # claimer skips them instead of waiting (the timeout only guards a hang).
        other = await asyncio.wait_for(claim(engines, "fast", 3, now=T0), timeout=30)
        assert [r["id"] for r in held] == ids[:3]
        assert other == ids[3:]
        await transaction.rollback()
    finally:
        await first.close()
    # The rolled-back claim gave its runs back.
    assert await claim(engines, "late", 10, now=T0) == ids[:3]


async def test_a_dead_worker_loses_no_run(engines: Engines) -> None:
    ids = await seed(engines, 60)
    workers = [f"w{i}" for i in range(6)]
    first = await asyncio.gather(*(claim(engines, w, 10, now=T0) for w in workers))
    held = dict(zip(workers, first, strict=True))
    assert sorted(r for runs in first for r in runs) == ids
    dead = {"w0", "w1"}
    done_at = T0 + timedelta(seconds=5)
    for w in workers:
        if w not in dead:
            await asyncio.gather(*(complete(engines, r, w, now=done_at) for r in held[w]))

    # Before the lease ends, nobody else can have the dead workers' runs.
    assert await claim(engines, "w2", 100, now=T0 + timedelta(seconds=LEASE - 1)) == []
    later = T0 + timedelta(seconds=LEASE + 1)
    survivors = [w for w in workers if w not in dead]

    async def keep_working(w: str) -> list[str]:
        # A worker loop: claim, finish, claim again until there is nothing left.
        mine = []
        while batch := await claim(engines, w, 3, now=later):
            for r in batch:
                await complete(engines, r, w, now=later + timedelta(seconds=1))
            mine += batch
        return mine

    second = await asyncio.gather(*(keep_working(w) for w in survivors))
    retaken = [r for runs in second for r in runs]
    orphaned = sorted(held["w0"] + held["w1"])
    assert sorted(retaken) == orphaned

    # The dead worker wakes up and reports: too late, its runs are someone else's.
    with pytest.raises(Conflict):
        async with engines.write.begin() as conn:
            await q.update_extraction_run(
                conn,
                held["w0"][0],
                {"status": "completed", "worker_id": "w0", "output": {}},
                default_lease_seconds=LEASE,
                now=later + timedelta(seconds=2),
            )
    stored = await all_runs(engines)
    assert all(run["status"] == "completed" for run in stored.values())
    for run_id in orphaned:
        assert stored[run_id]["attempts"] == 2
        assert stored[run_id]["worker_id"] in survivors
        assert stored[run_id]["output"] == {"by": stored[run_id]["worker_id"]}
    for w in survivors:
        for run_id in held[w]:
            assert stored[run_id]["attempts"] == 1
            assert stored[run_id]["output"] == {"by": w}


async def test_expired_runs_fail_after_the_last_attempt(engines: Engines) -> None:
    [run_id] = await seed(engines, 1)
    now = T0
    for attempt in (1, 2):
        assert await claim(engines, f"w{attempt}", 1, now=now, max_attempts=2) == [run_id]
        now += timedelta(seconds=LEASE + 1)
        async with engines.write.begin() as conn:
            requeued, failed = await q.expire_extraction_leases(conn, max_attempts=2, now=now)
        assert (requeued, failed) == ((1, 0) if attempt == 1 else (0, 1))
    stored = (await all_runs(engines))[run_id]
    assert stored["status"] == "failed"
    assert stored["attempts"] == 2
    assert "lease expired" in stored["error"]
    assert stored["completed_at"] == now
    assert await claim(engines, "w3", 1, now=now, max_attempts=2) == []


async def test_a_lease_extension_keeps_the_run(engines: Engines) -> None:
    [run_id] = await seed(engines, 1)
    assert await claim(engines, "w", 1, now=T0) == [run_id]
    async with engines.write.begin() as conn:
        row = await q.update_extraction_run(
            conn,
            run_id,
            {"worker_id": "w", "lease_seconds": 120},
            default_lease_seconds=LEASE,
            now=T0 + timedelta(seconds=20),
        )
    assert row["lease_expires_at"] == T0 + timedelta(seconds=140)
    # Past the first lease but within the extension: nobody can take it.
    assert await claim(engines, "other", 1, now=T0 + timedelta(seconds=60)) == []
    assert await claim(engines, "other", 1, now=T0 + timedelta(seconds=141)) == [run_id]

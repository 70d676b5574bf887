"""Claim throughput: N worker processes claim and complete a few thousand pending runs.

Each worker is its own process with its own connection, as separate worker
machines would be, and loops: claim up to `batch` runs in one transaction,
then (mode `complete`, the default) complete each in its own transaction,
until nothing is pending. Mode `claim` only claims, to measure the claim
alone. The script checks afterwards that every run was handed out exactly
once (one attempt each, and completed in mode `complete`) and prints runs
per second for each (workers, batch) pair.

    python bench/claim_throughput.py                      # throwaway PostgreSQL
    python bench/claim_throughput.py --database-url postgresql+asyncpg://…/db
    python bench/claim_throughput.py --workers 1,4,16 --batch 1,10 --runs 4000
    python bench/claim_throughput.py --mode claim

Work goes straight to the query layer (no HTTP), so the numbers measure the
database side of a claim: row locking, SKIP LOCKED and commits.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, insert, select

from runwatch.config import Settings
from runwatch.db.engine import create_engines
from runwatch.db.tables import extraction_runs
from runwatch.migrate import upgrade
from runwatch.services import extraction_lifecycle as q


def _settings(url: str) -> Settings:
    return Settings(database_url=url, db_pool_size=2, db_max_overflow=0, auto_migrate=False)


async def _seed(url: str, runs: int) -> None:
    engines = create_engines(_settings(url))
    now = datetime.now(UTC)
    rows = [
        {
            "id": f"bench-{i:07d}",
            "prompt_id": f"prompt-{i % 3}",
            "config_id": f"config-{i % 2}",
            "document_name": f"doc-{i}",
            "status": "pending",
            "created_at": now - timedelta(seconds=runs - i),
            "updated_at": now,
            "attempts": 0,
        }
        for i in range(runs)
    ]
    try:
        async with engines.write.begin() as conn:
            await conn.execute(delete(extraction_runs))
            for start in range(0, runs, 5000):
                await conn.execute(insert(extraction_runs), rows[start : start + 5000])
    finally:
        await engines.dispose()


async def _work(url: str, name: str, batch: int, complete: bool) -> int:
    engines = create_engines(_settings(url))
    done = 0
    try:
        while True:
            async with engines.write.begin() as conn:
                runs = await q.claim_extraction_runs(
                    conn, worker_id=name, max_runs=batch, lease_seconds=300, max_attempts=3
                )
            if not runs:
                return done
            if not complete:
                done += len(runs)
                continue
            for run in runs:
                async with engines.write.begin() as conn:
                    await q.update_extraction_run(
                        conn,
                        run["id"],
                        {"status": "completed", "worker_id": name, "output": {"ok": True}},
                        default_lease_seconds=300,
                    )
                done += 1
    finally:
        await engines.dispose()


def _worker_process(
    url: str, name: str, batch: int, complete: bool, start: Any, results: Any
) -> None:
    start.wait()
    results.put((name, asyncio.run(_work(url, name, batch, complete))))


async def _verify(url: str, runs: int) -> dict[str, int]:
    engines = create_engines(_settings(url))
    try:
        async with engines.read.connect() as conn:
            query = select(
                func.count().label("total"),
                func.count().filter(extraction_runs.c.status == "completed").label("completed"),
                func.count().filter(extraction_runs.c.status == "running").label("running"),
                func.count().filter(extraction_runs.c.attempts != 1).label("retried"),
            )
            row = (await conn.execute(query)).one()
            return {
                "total": row.total,
                "completed": row.completed,
                "running": row.running,
                "retried": row.retried,
            }
    finally:
        await engines.dispose()


def measure(url: str, *, workers: int, batch: int, runs: int, complete: bool) -> dict[str, Any]:
    asyncio.run(_seed(url, runs))
    ctx = mp.get_context("spawn")
    start, results = ctx.Event(), ctx.Queue()
    processes = [
        ctx.Process(target=_worker_process, args=(url, f"w{i}", batch, complete, start, results))
        for i in range(workers)
    ]
    for p in processes:
        p.start()
    time.sleep(1.0)  # let every process import and connect before the clock starts
    began = time.perf_counter()
    start.set()
    per_worker = dict(results.get() for _ in processes)
    elapsed = time.perf_counter() - began
    for p in processes:
        p.join()
    check = asyncio.run(_verify(url, runs))
    done, held = (runs, 0) if complete else (0, runs)
    ok = check == {"total": runs, "completed": done, "running": held, "retried": 0}
    return {
        "workers": workers,
        "batch": batch,
        "runs": runs,
        "seconds": round(elapsed, 2),
        "runs_per_second": round(runs / elapsed, 1),
        "busiest_worker": max(per_worker.values()),
        "idlest_worker": min(per_worker.values()),
        "each_run_once": ok,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="PostgreSQL URL (default: a throwaway server)")
    parser.add_argument("--runs", type=int, default=4000)
    parser.add_argument("--workers", default="1,4,16")
    parser.add_argument("--batch", default="1,10")
    parser.add_argument("--mode", choices=("complete", "claim"), default="complete")
    args = parser.parse_args()
    server = None
    url = args.database_url
    if url is None:
        from tests.support.postgres import TemporaryPostgres

        server = TemporaryPostgres(options={"max_connections": "100"})
        url = server.start()
    try:
        asyncio.run(upgrade(url))
        print(f"mode: {args.mode}")
        print(
            f"{'workers':>7} {'batch':>5} {'runs':>6} {'seconds':>8} {'runs/s':>8} "
            f"{'max/min per worker':>19}  each run once"
        )
        failures = 0
        for batch in (int(b) for b in args.batch.split(",")):
            for workers in (int(w) for w in args.workers.split(",")):
                r = measure(
                    url,
                    workers=workers,
                    batch=batch,
                    runs=args.runs,
                    complete=args.mode == "complete",
                )
                failures += not r["each_run_once"]
                print(
                    f"{r['workers']:>7} {r['batch']:>5} {r['runs']:>6} {r['seconds']:>8} "
                    f"{r['runs_per_second']:>8} {r['busiest_worker']:>9}/{r['idlest_worker']:<9}"
                    f"  {r['each_run_once']}",
                    flush=True,
                )
        return 1 if failures else 0
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    sys.exit(main())

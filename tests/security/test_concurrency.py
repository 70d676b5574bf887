"""Real concurrency on PostgreSQL: two app instances (two pools), many connections at once.

Conflicting final transitions of one run: exactly one wins, the rest are 409.
Concurrent creates with one id: one row.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import func, select

from runwatch.config import Settings
from runwatch.db.engine import Engines
from runwatch.db.tables import extraction_runs, layer_runs
from tests.factories import layer_run
from tests.security.conftest import serve

pytestmark = pytest.mark.parametrize("dialect", ["postgresql"])
WRITERS = 12


@pytest.fixture
async def clients(settings: Settings, engines: Engines) -> AsyncIterator[list[httpx.AsyncClient]]:
    async with serve(settings) as first, serve(settings) as second:
        yield [first, second]


def spread(clients: list[httpx.AsyncClient], n: int) -> list[httpx.AsyncClient]:
    return [clients[i % len(clients)] for i in range(n)]


async def count(engines: Engines, table, run_id: str) -> int:  # type: ignore[no-untyped-def]
    async with engines.read.connect() as conn:
        return await conn.scalar(select(func.count()).where(table.c.id == run_id))


async def test_extraction_final_transitions_one_wins(
    clients: list[httpx.AsyncClient], engines: Engines
) -> None:
    created = await clients[0].post(
        "/extraction-runs", json={"prompt_id": "p", "config_id": "c", "document_name": "d.pdf"}
    )
    run_id = created.json()["run_id"]
    started = await clients[0].patch(
        f"/extraction-runs/{run_id}", json={"status": "running", "worker_id": "w1"}
    )
    assert started.status_code == 200, started.text
    bodies = [
        {"status": "completed", "worker_id": "w1", "output": {"n": i}, "metrics": {"f1": 1.0}}
        if i % 2
        else {"status": "failed", "worker_id": "w1", "error": f"attempt {i}"}
        for i in range(WRITERS)
    ]
    responses = await asyncio.gather(
        *(
            client.patch(f"/extraction-runs/{run_id}", json=body)
            for client, body in zip(spread(clients, WRITERS), bodies, strict=True)
        )
    )
    codes = sorted(r.status_code for r in responses)
    assert codes == [200] + [409] * (WRITERS - 1), [r.text for r in responses]
    winner = next(r.json() for r in responses if r.status_code == 200)
    final = (await clients[1].get(f"/extraction-runs/{run_id}")).json()
    assert final["status"] == winner["status"]
    assert final.get("output") == winner.get("output")
    assert all(r.json()["code"] == "conflict" for r in responses if r.status_code == 409)


async def test_extraction_start_by_competing_workers_one_wins(
    clients: list[httpx.AsyncClient],
) -> None:
    created = await clients[0].post(
        "/extraction-runs", json={"prompt_id": "p", "config_id": "c", "document_name": "d.pdf"}
    )
    run_id = created.json()["run_id"]
    responses = await asyncio.gather(
        *(
            client.patch(
                f"/extraction-runs/{run_id}", json={"status": "running", "worker_id": f"w{i}"}
            )
            for i, client in enumerate(spread(clients, WRITERS))
        )
    )
    codes = sorted(r.status_code for r in responses)
    assert codes == [200] + [409] * (WRITERS - 1), [r.text for r in responses]


async def test_extraction_concurrent_creates_with_one_id_make_one_row(
    clients: list[httpx.AsyncClient], engines: Engines
) -> None:
    body = {"id": "ex-same", "prompt_id": "p", "config_id": "c", "document_name": "d.pdf"}
    responses = await asyncio.gather(
        *(client.post("/extraction-runs", json=body) for client in spread(clients, WRITERS))
    )
    codes = sorted(r.status_code for r in responses)
    assert codes == [200] * (WRITERS - 1) + [202], [r.text for r in responses]
    assert await count(engines, extraction_runs, "ex-same") == 1


async def test_layer_run_completions_across_instances_one_wins(
    clients: list[httpx.AsyncClient],
) -> None:
    run = layer_run(status="running")
    assert (await clients[0].post("/runs", json=run)).status_code == 201
    finals = ["success", "failed", "partial", "dry"]
    responses = await asyncio.gather(
        *(
            client.patch(f"/runs/{run['id']}", json={"status": finals[i % 4]})
            for i, client in enumerate(spread(clients, WRITERS))
        )
    )
    codes = sorted(r.status_code for r in responses)
    assert codes == [200] + [409] * (WRITERS - 1), [r.text for r in responses]
    winner = next(r.json() for r in responses if r.status_code == 200)
    assert (await clients[1].get(f"/runs/{run['id']}")).json()["status"] == winner["status"]


async def test_layer_run_creates_across_instances_make_one_row(
    clients: list[httpx.AsyncClient], engines: Engines
) -> None:
    body = layer_run(id="same-id")
    responses = await asyncio.gather(
        *(client.post("/runs", json=body) for client in spread(clients, WRITERS))
    )
    codes = sorted(r.status_code for r in responses)
    assert codes == [200] * (WRITERS - 1) + [201], [r.text for r in responses]
    assert await count(engines, layer_runs, "same-id") == 1

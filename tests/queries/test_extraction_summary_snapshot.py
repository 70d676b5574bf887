"""The extraction summary reads one snapshot, whatever commits while it is computed."""

from __future__ import annotations

import asyncio
import itertools
import threading
from datetime import UTC, datetime
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import event, insert
from sqlalchemy.ext.asyncio import create_async_engine

from runwatch.db.tables import extraction_runs


def _commit_completed_run(database_url: str, prompt_id: str) -> None:
    """Commit a completed run with a latency, from another thread and connection."""

    async def write() -> None:
        engine = create_async_engine(database_url)
        try:
            now = datetime.now(UTC)
            async with engine.begin() as conn:
                await conn.execute(
                    insert(extraction_runs).values(
                        id=f"race-{prompt_id}", prompt_id=prompt_id, config_id="cfg",
                        document_name="doc", status="completed", created_at=now,
                        started_at=now, completed_at=now, updated_at=now,
                        metric_latency_ms=12.5, metric_f1=0.5,
                    )
                )  # fmt: skip
        finally:
            await engine.dispose()

    thread = threading.Thread(target=lambda: asyncio.run(write()))
    thread.start()
    thread.join()


async def test_a_prompt_completed_during_the_summary_does_not_break_it(
    client: httpx.AsyncClient, database_url: str
) -> None:
    app: FastAPI = client._transport.app  # type: ignore[attr-defined]
    for n in range(3):
        created = await client.post(
            "/extraction-runs",
            json={"prompt_id": f"p{n}", "config_id": "cfg", "document_name": "doc"},
        )
        assert created.status_code == 202
    counter = itertools.count()
    engine = app.state.engines.read.sync_engine

    def before_each_statement(*args: Any) -> None:
        statement = args[2].upper()
        if statement.lstrip().startswith("SELECT") and "FROM EXTRACTION_RUNS" in statement:
            # A new prompt completes before each of the summary's reads.
            _commit_completed_run(database_url, f"new-{next(counter)}")

    event.listen(engine, "before_cursor_execute", before_each_statement)
    try:
        response = await client.get("/extraction-runs/stats/summary")
    finally:
        event.remove(engine, "before_cursor_execute", before_each_statement)
    assert response.status_code == 200, response.text
    summary = response.json()
    assert next(counter) >= 1, "no run was committed during the summary"
    # Self-consistent: every run counted once, in its prompt and in the totals.
    assert sum(g["runs"] for g in summary["by_prompt"].values()) == summary["total_runs"]
    completed = [p for p, g in summary["by_prompt"].items() if g["completed"]]
    latencies = [p for p, g in summary["by_prompt"].items() if g["p50_latency_ms"] is not None]
    assert completed == latencies
    assert summary["total_runs"] == 3 + len(completed)

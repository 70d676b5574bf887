"""Demo extraction runs: valid rows on both dialects, metrics scored from their outputs."""

from __future__ import annotations

from collections import Counter

import pytest
from sqlalchemy import func, select

from runwatch.db.engine import Engines
from runwatch.db.tables import extraction_runs
from runwatch.demo import EXTRACTION_CONFIGS, EXTRACTION_PROMPTS, load_demo_extraction_runs
from runwatch.scoring import score


async def test_demo_extraction_runs_load_once_and_are_consistent(engines: Engines) -> None:
    async with engines.write.begin() as conn:
        inserted = await load_demo_extraction_runs(conn, seed=3)
        assert await load_demo_extraction_runs(conn, seed=3) == 0
    async with engines.read.connect() as conn:
        rows = [r._mapping for r in await conn.execute(select(extraction_runs))]
        count = (await conn.execute(select(func.count()).select_from(extraction_runs))).scalar()
    assert inserted == count == len(rows)
    assert {r["prompt_id"] for r in rows} == set(EXTRACTION_PROMPTS)
    assert {r["config_id"] for r in rows} == set(EXTRACTION_CONFIGS)
    assert len({r["document_name"] for r in rows}) >= 24
    statuses = Counter(r["status"] for r in rows)
    assert set(statuses) == {"pending", "running", "completed", "failed"}
    for r in rows:
        if r["status"] != "completed":
            continue
        s = score(r["output"], r["expected"])
        assert r["metrics"]["f1"] == pytest.approx(s.f1)
        assert r["metric_f1"] == pytest.approx(s.f1)
        latency = (r["completed_at"] - r["started_at"]).total_seconds() * 1000
        assert r["metrics"]["latency_ms"] == pytest.approx(latency, abs=0.01)
    # Better prompts score better on average: the demo tells a story worth comparing.
    mean_f1 = {
        prompt: sum(
            r["metric_f1"] for r in rows if r["prompt_id"] == prompt and r["metric_f1"] is not None
        )
        / sum(1 for r in rows if r["prompt_id"] == prompt and r["metric_f1"] is not None)
        for prompt in EXTRACTION_PROMPTS
    }
    ordered = list(EXTRACTION_PROMPTS)
    assert mean_f1[ordered[0]] < mean_f1[ordered[-1]]

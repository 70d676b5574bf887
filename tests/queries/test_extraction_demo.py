"""Demo extraction runs: valid rows on both dialects, metrics scored from their outputs."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import func, select

from runwatch.db.engine import Engines
from runwatch.db.tables import extraction_runs
from runwatch.demo import EXTRACTION_CONFIGS, EXTRACTION_PROMPTS, load_demo_extraction_runs


def _leaves(value: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    if isinstance(value, dict) and value:
        for key, item in value.items():
            yield from _leaves(item, (*path, str(key)))
    elif isinstance(value, list) and value:
        for index, item in enumerate(value):
            yield from _leaves(item, (*path, str(index)))
    elif value is not None and value != {} and value != []:
        yield path, value


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return float(a) == float(b)
    return type(a) is type(b) and a == b


def reference_f1(output: Any, expected: Any) -> float:
    """F1 over non-null leaf fields, written here independently of runwatch.scoring."""
    predicted, truth = dict(_leaves(output)), dict(_leaves(expected))
    correct = sum(1 for p, v in predicted.items() if p in truth and _same(v, truth[p]))
    precision = correct / len(predicted) if predicted else 1.0
    recall = correct / len(truth) if truth else 1.0
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


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
    checked = 0
    for r in rows:
        if r["status"] != "completed":
            continue
        checked += 1
        f1 = reference_f1(r["output"], r["expected"])
        assert r["metrics"]["f1"] == pytest.approx(f1)
        assert r["metric_f1"] == pytest.approx(f1)
        latency = (r["completed_at"] - r["started_at"]).total_seconds() * 1000
        assert r["metrics"]["latency_ms"] == pytest.approx(latency, abs=0.01)
    assert checked == statuses["completed"] > 0
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

"""Comparing runs and groups of runs, and the stats summary, checked against independent sums."""

from __future__ import annotations

import random
import statistics
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import insert

from runwatch.db.engine import Engines
from runwatch.db.tables import extraction_runs

BASE = datetime(2026, 2, 1, tzinfo=UTC)


def completed(run_id: str, *, minutes: int = 0, **values: Any) -> dict[str, Any]:
    at = BASE + timedelta(minutes=minutes)
    data = {
        "id": run_id,
        "prompt_id": "p",
        "config_id": "c",
        "document_name": "d",
        "status": "completed",
        "created_at": at,
        "updated_at": at,
        "started_at": at,
        "completed_at": at + timedelta(seconds=2),
        "attempts": 1,
        # Every row names the same columns: an executemany insert takes the
        # column list from its first row.
        "output": None,
        "metrics": None,
        "error": None,
    }
    data.update(values)
    return data


async def insert_rows(engines: Engines, rows: list[dict[str, Any]]) -> None:
    async with engines.write.begin() as conn:
        await conn.execute(insert(extraction_runs), rows)


async def test_compare_two_runs_as_in_the_design(
    client: httpx.AsyncClient, engines: Engines
) -> None:
    output_a = {
        "invoice": {"total": 120.0, "currency": "EUR", "number": "INV-1"},
        "vendor": "ACME",
        "lines": [{"sku": "A"}],
    }
    output_b = {
        "invoice": {"total": 125.0, "currency": "EUR", "number": "INV-1", "due": "2026-03-01"},
        "vendor": "ACME",
        "lines": [{"sku": "A"}, {"sku": "B"}],
    }
    await insert_rows(
        engines,
        [
            completed(
                "a", output=output_a, metrics={"f1": 0.8, "latency_ms": 0.0, "cost_per_field": 2.0}
            ),
            completed("b", output=output_b, metrics={"f1": 0.9, "latency_ms": 1500.0}),
        ],
    )
    response = await client.get("/extraction-runs/a/compare/b")
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["run_a"]["id"] == "a"
    assert data["run_b"]["id"] == "b"
    assert "output" not in data["run_a"]
    metrics = {m["metric"]: m for m in data["metric_comparisons"]}
    assert [m["metric"] for m in data["metric_comparisons"]] == [
        "f1",
        "latency_ms",
        "cost_per_field",
    ]
    assert metrics["f1"] == {
        "metric": "f1",
        "run_a": 0.8,
        "run_b": 0.9,
        "difference": 0.1,
        "percent_difference": 12.5,
    }
    # a is 0: the percentage is undefined; a side missing: both are.
    assert metrics["latency_ms"]["difference"] == 1500.0
    assert metrics["latency_ms"]["percent_difference"] is None
    assert metrics["cost_per_field"]["run_b"] is None
    assert metrics["cost_per_field"]["difference"] is None
    assert metrics["cost_per_field"]["percent_difference"] is None
    # Only the fields that differ, in path order.
    assert data["field_differences"] == [
        {"field": "invoice.due", "status": "only_in_b", "run_a": None, "run_b": "2026-03-01"},
        {"field": "invoice.total", "status": "different", "run_a": 120.0, "run_b": 125.0},
        {"field": "lines.1.sku", "status": "only_in_b", "run_a": None, "run_b": "B"},
    ]
    # same: invoice.currency, invoice.number, vendor, lines.0.sku
    assert data["summary"] == {
        "fields_same": 4,
        "fields_different": 1,
        "fields_only_in_a": 0,
        "fields_only_in_b": 2,
    }
    reverse = (await client.get("/extraction-runs/b/compare/a")).json()
    assert reverse["summary"]["fields_only_in_a"] == 2
    f1 = next(m for m in reverse["metric_comparisons"] if m["metric"] == "f1")
    assert f1["difference"] == -0.1
    assert f1["percent_difference"] == pytest.approx(-100 / 9, abs=1e-9)


async def test_compare_works_for_runs_in_any_status(
    client: httpx.AsyncClient, engines: Engines
) -> None:
    pending = completed("pending-run", status="pending", started_at=None, completed_at=None)
    await insert_rows(engines, [pending, completed("done", output={"x": 1}, metrics={"f1": 1.0})])
    data = (await client.get("/extraction-runs/pending-run/compare/done")).json()
    assert data["summary"] == {
        "fields_same": 0,
        "fields_different": 0,
        "fields_only_in_a": 0,
        "fields_only_in_b": 1,
    }
    assert data["metric_comparisons"] == [
        {
            "metric": "f1",
            "run_a": None,
            "run_b": 1.0,
            "difference": None,
            "percent_difference": None,
        }
    ]
    missing = await client.get("/extraction-runs/done/compare/nope")
    assert missing.status_code == 404


async def test_group_compare_pairs_latest_completed_runs_per_document(
    client: httpx.AsyncClient, engines: Engines
) -> None:
    rng = random.Random(7)
    rows = []
    truth: dict[str, dict[str, dict[str, float]]] = {"A": {}, "B": {}}
    docs_a = [f"doc{i:02d}" for i in range(0, 12)]
    docs_b = [f"doc{i:02d}" for i in range(3, 15)]
    n = 0
    for side, prompt, docs in (("A", "prompt-v1", docs_a), ("B", "prompt-v2", docs_b)):
        for doc in docs:
            for version in range(rng.randint(1, 3)):
                n += 1
                metrics = {
                    "precision": round(rng.random(), 3),
                    "recall": round(rng.random(), 3),
                    "f1": round(rng.choice([0.5, rng.random()]), 3),
                    "latency_ms": float(rng.randint(100, 4000)),
                }
                if doc == "doc05" and side == "B":
                    metrics.pop("f1")
                rows.append(
                    completed(
                        f"{side}-{doc}-{version}",
                        minutes=n,
                        prompt_id=prompt,
                        config_id="cfg",
                        document_name=doc,
                        metrics=metrics,
                    )
                )
                truth[side][doc] = metrics  # later versions overwrite: the latest wins
            # A newer failed run must not replace the latest completed one.
            rows.append(
                completed(
                    f"{side}-{doc}-failed",
                    minutes=n + 1000,
                    status="failed",
                    error="boom",
                    prompt_id=prompt,
                    config_id="cfg",
                    document_name=doc,
                    metrics={"f1": 0.0},
                )
            )
    await insert_rows(engines, rows)
    response = await client.get(
        "/extraction-runs/compare",
        params={"a_prompt_id": "prompt-v1", "b_prompt_id": "prompt-v2", "a_config_id": "cfg"},
    )
    assert response.status_code == 200, response.text
    data = response.json()
    paired = sorted(set(docs_a) & set(docs_b))
    assert data["documents_compared"] == len(paired)
    assert data["documents_only_in_a"] == sorted(set(docs_a) - set(docs_b))
    assert data["documents_only_in_b"] == sorted(set(docs_b) - set(docs_a))
    assert [d["document_name"] for d in data["documents"]] == paired
    for entry in data["documents"]:
        doc = entry["document_name"]
        assert entry["run_a"].startswith(f"A-{doc}-")
        by_metric = {m["metric"]: m for m in entry["metric_comparisons"]}
        a_f1, b_f1 = truth["A"][doc].get("f1"), truth["B"][doc].get("f1")
        assert by_metric["f1"]["run_a"] == a_f1
        assert by_metric["f1"]["run_b"] == b_f1
        if b_f1 is not None:
            assert by_metric["f1"]["difference"] == pytest.approx(b_f1 - a_f1, abs=1e-9)
    wins_a = sum(
        1 for d in paired if "f1" in truth["B"][d] and truth["A"][d]["f1"] > truth["B"][d]["f1"]
    )
    wins_b = sum(
        1 for d in paired if "f1" in truth["B"][d] and truth["A"][d]["f1"] < truth["B"][d]["f1"]
    )
    ties = sum(
        1 for d in paired if "f1" in truth["B"][d] and truth["A"][d]["f1"] == truth["B"][d]["f1"]
    )
    assert data["f1"] == {"wins_a": wins_a, "wins_b": wins_b, "ties": ties, "missing": 1}
    means = {m["metric"]: m for m in data["means"]}
    for metric in ("precision", "recall", "f1", "latency_ms"):
        docs = [d for d in paired if metric in truth["B"][d]]
        assert means[metric]["documents"] == len(docs)
        mean_a = statistics.fmean(truth["A"][d][metric] for d in docs)
        mean_b = statistics.fmean(truth["B"][d][metric] for d in docs)
        assert means[metric]["mean_a"] == pytest.approx(mean_a, abs=1e-8)
        assert means[metric]["mean_b"] == pytest.approx(mean_b, abs=1e-8)
        assert means[metric]["difference"] == pytest.approx(mean_b - mean_a, abs=1e-8)
    one_doc = (
        await client.get(
            "/extraction-runs/compare",
            params={
                "a_prompt_id": "prompt-v1",
                "b_prompt_id": "prompt-v2",
                "document_name": "doc07",
            },
        )
    ).json()
    assert [d["document_name"] for d in one_doc["documents"]] == ["doc07"]
    assert one_doc["documents_only_in_a"] == []


@pytest.mark.parametrize(
    "params",
    [
        {"a_prompt_id": "x"},
        {"b_prompt_id": "x"},
        {"a_prompt_id": "x", "b_prompt_id": "x"},
        {"a_prompt_id": "x", "b_prompt_id": "y", "c_prompt_id": "z"},
    ],
)
async def test_group_compare_needs_two_different_sides(
    client: httpx.AsyncClient, params: dict[str, str]
) -> None:
    response = await client.get("/extraction-runs/compare", params=params)
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_argument"


async def test_group_compare_by_config_with_no_runs_is_empty(client: httpx.AsyncClient) -> None:
    data = (
        await client.get(
            "/extraction-runs/compare", params={"a_config_id": "x", "b_config_id": "y"}
        )
    ).json()
    assert data["documents_compared"] == 0
    assert data["means"] == []
    assert data["f1"] == {"wins_a": 0, "wins_b": 0, "ties": 0, "missing": 0}


async def _complete(client: httpx.AsyncClient, run_id: str, **payload: Any) -> None:
    response = await client.patch(f"/extraction-runs/{run_id}", json=payload)
    assert response.status_code == 200, response.text


async def test_stats_summary_matches_an_independent_computation(
    client: httpx.AsyncClient, engines: Engines
) -> None:
    rng = random.Random(11)
    plan = []
    for i in range(40):
        plan.append(
            {
                "id": f"s{i:03d}",
                "prompt_id": rng.choice(["inv-v1", "inv-v2", "receipt-v1"]),
                "config_id": rng.choice(["haiku", "sonnet"]),
                "document_name": f"doc{i}",
                "outcome": rng.choice(["completed"] * 6 + ["failed", "running", "pending"]),
                "metrics": {
                    "precision": round(rng.random(), 4),
                    "recall": round(rng.random(), 4),
                    "f1": round(rng.random(), 4),
                    "latency_ms": float(rng.randint(200, 9000)),
                },
                "tokens": {"input": rng.randint(500, 5000), "output": rng.randint(50, 900)},
                "cost": round(rng.uniform(0.001, 0.05), 6),
            }
        )
    for p in plan:
        response = await client.post(
            "/extraction-runs",
            json={k: p[k] for k in ("id", "prompt_id", "config_id", "document_name")},
        )
        assert response.status_code == 202
    for p in plan:
        if p["outcome"] == "pending":
            continue
        await _complete(client, p["id"], status="running")
        if p["outcome"] == "completed":
            await _complete(
                client,
                p["id"],
                status="completed",
                output={"ok": True},
                metrics=p["metrics"],
                tokens=p["tokens"],
                cost_usd=p["cost"],
            )
        elif p["outcome"] == "failed":
            await _complete(
                client, p["id"], status="failed", error="x", tokens=p["tokens"], cost_usd=p["cost"]
            )
    # Outside the window: must not count.
    old = BASE - timedelta(days=400)
    await insert_rows(engines, [completed("ancient", prompt_id="inv-v1", created_at=old)])

    response = await client.get("/extraction-runs/stats/summary", params={"days": 7})
    assert response.status_code == 200, response.text
    data = response.json()

    def expect(runs: list[dict[str, Any]]) -> dict[str, Any]:
        done = [r for r in runs if r["outcome"] == "completed"]
        charged = [r for r in runs if r["outcome"] in ("completed", "failed")]
        latencies = [r["metrics"]["latency_ms"] for r in done]
        out: dict[str, Any] = {
            "runs": len(runs),
            "completed": len(done),
            "failed": sum(r["outcome"] == "failed" for r in runs),
            "pending": sum(r["outcome"] == "pending" for r in runs),
            "running": sum(r["outcome"] == "running" for r in runs),
            "cost_usd": sum(r["cost"] for r in charged),
            "tokens_input": sum(r["tokens"]["input"] for r in charged),
            "tokens_output": sum(r["tokens"]["output"] for r in charged),
        }
        for m in ("precision", "recall", "f1"):
            out[f"mean_{m}"] = statistics.fmean(r["metrics"][m] for r in done) if done else None
        if len(latencies) >= 2:
            cuts = statistics.quantiles(latencies, n=100, method="inclusive")
            out["p50_latency_ms"], out["p95_latency_ms"] = cuts[49], cuts[94]
        elif latencies:
            out["p50_latency_ms"] = out["p95_latency_ms"] = latencies[0]
        else:
            out["p50_latency_ms"] = out["p95_latency_ms"] = None
        return out

    def check(actual: dict[str, Any], expected: dict[str, Any]) -> None:
        for key, value in expected.items():
            if isinstance(value, float):
                assert actual[key] == pytest.approx(value, rel=1e-9, abs=1e-9), key
            else:
                assert actual[key] == value, key

    everything = expect(plan)
    assert data["total_runs"] == 40
    assert data["completed_runs"] == everything["completed"]
    assert data["failed_runs"] == everything["failed"]
    assert data["pending_runs"] == everything["pending"]
    assert data["running_runs"] == everything["running"]
    assert data["total_cost_usd"] == pytest.approx(everything["cost_usd"], abs=1e-9)
    assert data["total_tokens"] == everything["tokens_input"] + everything["tokens_output"]
    assert data["p95_latency_ms"] == pytest.approx(everything["p95_latency_ms"])
    assert set(data["by_prompt"]) == {p["prompt_id"] for p in plan}
    for prompt, stats in data["by_prompt"].items():
        check(stats, expect([p for p in plan if p["prompt_id"] == prompt]))
    for config, stats in data["by_config"].items():
        check(stats, expect([p for p in plan if p["config_id"] == config]))
    narrowed = (
        await client.get("/extraction-runs/stats/summary", params={"prompt_id": "inv-v1"})
    ).json()
    assert list(narrowed["by_prompt"]) == ["inv-v1"]
    check(narrowed["by_prompt"]["inv-v1"], expect([p for p in plan if p["prompt_id"] == "inv-v1"]))


async def test_stats_summary_of_nothing_is_zero_and_days_are_bounded(
    client: httpx.AsyncClient,
) -> None:
    data = (await client.get("/extraction-runs/stats/summary")).json()
    assert data["period_days"] == 7
    assert data["total_runs"] == 0
    assert data["total_cost_usd"] == 0
    assert data["total_tokens"] == 0
    assert data["mean_f1"] is None
    assert data["p50_latency_ms"] is None
    assert data["by_prompt"] == {}
    for days in (0, 31, "x"):
        response = await client.get("/extraction-runs/stats/summary", params={"days": days})
        assert response.status_code == 422

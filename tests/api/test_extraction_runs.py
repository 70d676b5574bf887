"""The /extraction-runs contract on SQLite and PostgreSQL: create, claim, report, read, delete."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import insert

from runwatch.db.engine import Engines
from runwatch.db.tables import extraction_runs

_ids = itertools.count(1)

SUMMARY_KEYS = {
    "id",
    "prompt_id",
    "config_id",
    "document_name",
    "status",
    "created_at",
    "started_at",
    "completed_at",
    "cost_usd",
}


def body(**overrides: Any) -> dict[str, Any]:
    n = next(_ids)
    data: dict[str, Any] = {
        "id": f"ext-{n:06d}",
        "prompt_id": "invoice-v1",
        "config_id": "sonnet-t0",
        "document_name": f"doc-{n:04d}.pdf",
    }
    data.update(overrides)
    return data


async def create(client: httpx.AsyncClient, **overrides: Any) -> str:
    response = await client.post("/extraction-runs", json=body(**overrides))
    assert response.status_code == 202, response.text
    return response.json()["run_id"]


async def claim(client: httpx.AsyncClient, worker: str = "w1", n: int = 1, **extra: Any) -> list:
    response = await client.post(
        "/extraction-runs/claim", json={"worker_id": worker, "max_runs": n, **extra}
    )
    assert response.status_code == 200, response.text
    return response.json()["runs"]


async def insert_rows(engines: Engines, rows: list[dict[str, Any]]) -> None:
    """Rows with chosen timestamps, written straight to the table."""
    async with engines.write.begin() as conn:
        await conn.execute(insert(extraction_runs), rows)


def row(run_id: str, created_at: datetime, **values: Any) -> dict[str, Any]:
    data = {
        "id": run_id,
        "prompt_id": "p",
        "config_id": "c",
        "document_name": "d",
        "status": "pending",
        "created_at": created_at,
        "updated_at": created_at,
        "attempts": 0,
    }
    data.update(values)
    return data


async def test_create_answers_202_with_location_and_a_pending_run(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/extraction-runs",
        json={"prompt_id": "invoice-v1", "config_id": "sonnet-t0", "document_name": "a.pdf"},
    )
    assert response.status_code == 202
    data = response.json()
    assert data["status"] == "pending"
    assert set(data) == {"run_id", "status", "message"}
    assert response.headers["location"] == f"/extraction-runs/{data['run_id']}"
    detail = (await client.get(response.headers["location"])).json()
    assert detail["id"] == data["run_id"]
    assert detail["status"] == "pending"
    assert detail["tokens"] == {"input": None, "output": None}
    assert detail["output"] is None
    assert detail["metrics"] is None
    assert detail["error"] is None
    assert detail["created_at"].endswith("Z")
    assert detail["started_at"] is None
    assert detail["completed_at"] is None


async def test_create_is_idempotent_by_id(client: httpx.AsyncClient) -> None:
    data = body(expected={"total": 1})
    assert (await client.post("/extraction-runs", json=data)).status_code == 202
    again = await client.post("/extraction-runs", json=data)
    assert again.status_code == 200
    assert again.json()["run_id"] == data["id"]
    different = await client.post("/extraction-runs", json={**data, "expected": {"total": 2}})
    assert different.status_code == 409
    assert different.json()["code"] == "conflict"


@pytest.mark.parametrize(
    "payload",
    [
        {"prompt_id": "p", "config_id": "c"},
        {"prompt_id": "p", "config_id": "c", "document_name": "d", "colour": "red"},
        {"prompt_id": "", "config_id": "c", "document_name": "d"},
        {"prompt_id": "p" * 201, "config_id": "c", "document_name": "d"},
        {"prompt_id": "p", "config_id": "c", "document_name": "d", "expected": [1, 2]},
        {"prompt_id": "p", "config_id": "c", "document_name": "d", "id": "bad id!"},
    ],
)
async def test_create_rejects_invalid_bodies(
    client: httpx.AsyncClient, payload: dict[str, Any]
) -> None:
    response = await client.post("/extraction-runs", json=payload)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"]


async def test_json_depth_size_and_non_finite_numbers_are_bounded(
    client: httpx.AsyncClient,
) -> None:
    deep: Any = 1
    for _ in range(40):
        deep = {"x": deep}
    too_deep = await client.post("/extraction-runs", json=body(expected=deep))
    assert too_deep.status_code == 422
    assert "deeper" in too_deep.text
    big = {"text": "x" * (1024 * 1024 + 10)}
    assert (await client.post("/extraction-runs", json=body(expected=big))).status_code == 422
    nan = await client.post(
        "/extraction-runs",
        content=b'{"prompt_id":"p","config_id":"c","document_name":"d","expected":{"a":NaN}}',
        headers={"content-type": "application/json"},
    )
    assert nan.status_code == 422
    very_deep = b'{"prompt_id":"p","config_id":"c","document_name":"d","expected":' + (
        b'{"a":' * 5000 + b"1" + b"}" * 5000 + b"}"
    )
    response = await client.post(
        "/extraction-runs", content=very_deep, headers={"content-type": "application/json"}
    )
    assert 400 <= response.status_code < 500


async def test_list_returns_light_items_filters_and_exact_total(
    client: httpx.AsyncClient,
) -> None:
    for i in range(5):
        await create(client, prompt_id="p1" if i % 2 else "p2", document_name=f"doc{i}")
    await claim(client, n=2)
    page = (await client.get("/extraction-runs", params={"limit": 3})).json()
    assert page["total"] == 5
    assert len(page["runs"]) == 3
    assert page["next_cursor"]
    assert all(set(item) == SUMMARY_KEYS for item in page["runs"])
    p1 = (await client.get("/extraction-runs", params={"prompt_id": "p1"})).json()
    assert p1["total"] == 2
    assert {r["prompt_id"] for r in p1["runs"]} == {"p1"}
    running = (await client.get("/extraction-runs", params={"status": "running"})).json()
    assert running["total"] == 2
    both = (await client.get("/extraction-runs", params={"status": "running,pending"})).json()
    assert both["total"] == 5
    doc = (await client.get("/extraction-runs", params={"document_name": "doc3"})).json()
    assert [r["document_name"] for r in doc["runs"]] == ["doc3"]
    assert (await client.get("/extraction-runs", params={"status": "done"})).status_code == 422
    assert (await client.get("/extraction-runs", params={"prompt": "p1"})).status_code == 422
    assert (await client.get("/extraction-runs", params={"limit": 101})).status_code == 422


async def test_cursor_pages_cover_every_run_once_newest_first(
    client: httpx.AsyncClient, engines: Engines
) -> None:
    base = datetime(2026, 1, 1, tzinfo=UTC)
    # Ties on created_at are broken by id.
    rows = [row(f"r{i:03d}", base + timedelta(minutes=i // 3)) for i in range(25)]
    await insert_rows(engines, rows)
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 7}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get("/extraction-runs", params=params)).json()
        assert page["total"] == 25
        seen += [r["id"] for r in page["runs"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    expected = [r["id"] for r in sorted(rows, key=lambda r: (r["created_at"], r["id"]))][::-1]
    assert seen == expected
    offset_page = (await client.get("/extraction-runs", params={"offset": 7, "limit": 7})).json()
    assert [r["id"] for r in offset_page["runs"]] == expected[7:14]
    ascending = (await client.get("/extraction-runs", params={"sort": "created_at"})).json()
    assert [r["id"] for r in ascending["runs"]] == expected[::-1][:20]
    bad = await client.get("/extraction-runs", params={"cursor": "nonsense"})
    assert bad.status_code == 422


async def test_since_and_until_bound_created_at(
    client: httpx.AsyncClient, engines: Engines
) -> None:
    base = datetime(2026, 3, 1, tzinfo=UTC)
    await insert_rows(engines, [row(f"t{i}", base + timedelta(days=i)) for i in range(6)])
    page = (
        await client.get(
            "/extraction-runs",
            params={"since": "2026-03-02T00:00:00Z", "until": "2026-03-04T00:00:00"},
        )
    ).json()
    assert page["total"] == 2
    assert sorted(r["id"] for r in page["runs"]) == ["t1", "t2"]
    reversed_window = await client.get(
        "/extraction-runs",
        params={"since": "2026-03-04T00:00:00Z", "until": "2026-03-02T00:00:00Z"},
    )
    assert reversed_window.status_code == 422


async def test_claim_hands_out_the_oldest_pending_runs(
    client: httpx.AsyncClient, engines: Engines
) -> None:
    base = datetime.now(UTC) - timedelta(hours=1)
    await insert_rows(engines, [row(f"c{i}", base + timedelta(minutes=10 - i)) for i in range(5)])
    first = await claim(client, "w1", 2, lease_seconds=120)
    assert [r["id"] for r in first] == ["c4", "c3"]
    for run in first:
        assert run["status"] == "running"
        assert run["worker_id"] == "w1"
        assert run["attempts"] == 1
        started = datetime.fromisoformat(run["started_at"])
        lease = datetime.fromisoformat(run["lease_expires_at"])
        assert lease - started == timedelta(seconds=120)
        assert "expected" not in run
    second = await claim(client, "w2", 10)
    assert [r["id"] for r in second] == ["c2", "c1", "c0"]
    assert await claim(client, "w3", 5) == []
    detail = (await client.get("/extraction-runs/c4")).json()
    assert detail["status"] == "running"
    assert detail["worker_id"] == "w1"


@pytest.mark.parametrize(
    "payload",
    [
        {"max_runs": 1},
        {"worker_id": "w", "max_runs": 0},
        {"worker_id": "w", "max_runs": 101},
        {"worker_id": "w", "lease_seconds": 0},
        {"worker_id": "w", "lease_seconds": 3601},
        {"worker_id": "", "max_runs": 1},
        {"worker_id": "w", "extra": 1},
    ],
)
async def test_claim_validates_its_body(client: httpx.AsyncClient, payload: dict) -> None:
    response = await client.post("/extraction-runs/claim", json=payload)
    assert response.status_code == 422


async def test_a_run_goes_pending_running_completed_and_then_never_changes(
    client: httpx.AsyncClient,
) -> None:
    run_id = await create(client)
    early = await client.patch(f"/extraction-runs/{run_id}", json={"status": "completed"})
    assert early.status_code == 409
    [claimed] = await claim(client, "w1")
    assert claimed["id"] == run_id
    done = await client.patch(
        f"/extraction-runs/{run_id}",
        json={
            "status": "completed",
            "worker_id": "w1",
            "output": {"invoice": {"total": 120.5}},
            "metrics": {"f1": 0.9, "precision": 1.0, "recall": 0.82},
            "tokens": {"input": 1200, "output": 300},
            "cost_usd": 0.0081,
        },
    )
    assert done.status_code == 200, done.text
    data = done.json()
    assert data["status"] == "completed"
    assert data["output"] == {"invoice": {"total": 120.5}}
    assert data["tokens"] == {"input": 1200, "output": 300}
    assert data["cost_usd"] == 0.0081
    assert data["metrics"]["f1"] == 0.9
    assert data["metrics"]["latency_ms"] >= 0
    assert data["completed_at"] >= data["started_at"]
    assert data["lease_expires_at"] is None
    for change in (
        {"status": "failed", "error": "late"},
        {"status": "running"},
        {"cost_usd": 1.0},
        {"status": "pending"},
    ):
        response = await client.patch(f"/extraction-runs/{run_id}", json=change)
        assert response.status_code == 409, change
    assert (await client.get(f"/extraction-runs/{run_id}")).json() == data


async def test_patch_can_start_a_pending_run_and_extend_its_lease(
    client: httpx.AsyncClient,
) -> None:
    run_id = await create(client)
    started = await client.patch(
        f"/extraction-runs/{run_id}",
        json={"status": "running", "worker_id": "w9", "lease_seconds": 60},
    )
    assert started.status_code == 200
    first = started.json()
    assert first["status"] == "running"
    assert first["attempts"] == 1
    lease = datetime.fromisoformat(first["lease_expires_at"])
    assert lease - datetime.fromisoformat(first["started_at"]) == timedelta(seconds=60)
    extended = await client.patch(
        f"/extraction-runs/{run_id}", json={"worker_id": "w9", "lease_seconds": 600}
    )
    assert extended.status_code == 200
    assert datetime.fromisoformat(extended.json()["lease_expires_at"]) > lease
    other = await client.patch(
        f"/extraction-runs/{run_id}", json={"worker_id": "w1", "lease_seconds": 600}
    )
    assert other.status_code == 409
    assert "held by worker 'w9'" in other.json()["detail"]
    too_long = await client.patch(f"/extraction-runs/{run_id}", json={"lease_seconds": 7200})
    assert too_long.status_code == 422


async def test_failing_needs_an_error_and_errors_need_failing(client: httpx.AsyncClient) -> None:
    run_id = await create(client)
    await claim(client)
    url = f"/extraction-runs/{run_id}"
    assert (await client.patch(url, json={"status": "failed"})).status_code == 422
    bad = await client.patch(url, json={"status": "completed", "error": "x"})
    assert bad.status_code == 422
    assert (await client.patch(url, json={"status": "bogus"})).status_code == 422
    assert (await client.patch(url, json={"metrics": {"f1": "high"}})).status_code == 422
    assert (await client.patch(url, json={"tokens": {"input": -1}})).status_code == 422
    failed = await client.patch(url, json={"status": "failed", "error": "model timed out"})
    assert failed.status_code == 200
    assert failed.json()["status"] == "failed"
    assert failed.json()["error"] == "model timed out"
    assert failed.json()["completed_at"] is not None


async def test_completion_without_metrics_is_scored_against_expected(
    client: httpx.AsyncClient,
) -> None:
    expected = {
        "vendor": "ACME GmbH",
        "total": 120,
        "currency": "EUR",
        "lines": [{"sku": "A-1", "qty": 2}, {"sku": "B-7", "qty": 1}],
    }
    output = {
        "vendor": "ACME GmbH",
        "total": 120.0,
        "currency": "USD",
        "lines": [{"sku": "A-1", "qty": 2}],
        "notes": "paid",
    }
    run_id = await create(client, expected=expected)
    await claim(client)
    data = (
        await client.patch(
            f"/extraction-runs/{run_id}", json={"status": "completed", "output": output}
        )
    ).json()
    # Independent count: expected leaves vendor, total, currency, lines.0.sku, lines.0.qty,
    # lines.1.sku, lines.1.qty (7); predicted vendor, total, currency, lines.0.sku,
    # lines.0.qty, notes (6); correct vendor, total, lines.0.sku, lines.0.qty (4).
    precision, recall = 4 / 6, 4 / 7
    metrics = data["metrics"]
    assert metrics["precision"] == pytest.approx(precision)
    assert metrics["recall"] == pytest.approx(recall)
    assert metrics["f1"] == pytest.approx(2 * precision * recall / (precision + recall))
    assert metrics["fields_expected"] == 7
    started = datetime.fromisoformat(data["started_at"])
    completed = datetime.fromisoformat(data["completed_at"])
    assert metrics["latency_ms"] == pytest.approx(
        (completed - started).total_seconds() * 1000, abs=0.001
    )
    assert data["expected"] == expected


async def test_release_puts_a_running_run_back(client: httpx.AsyncClient) -> None:
    run_id = await create(client)
    await claim(client, "w1")
    wrong = await client.post(f"/extraction-runs/{run_id}/release", json={"worker_id": "w2"})
    assert wrong.status_code == 409
    released = await client.post(f"/extraction-runs/{run_id}/release", json={"worker_id": "w1"})
    assert released.status_code == 200
    data = released.json()
    assert data["status"] == "pending"
    assert data["attempts"] == 0
    assert data["worker_id"] is None
    assert data["started_at"] is None
    again = await client.post(f"/extraction-runs/{run_id}/release", json={})
    assert again.status_code == 409
    [reclaimed] = await claim(client, "w2")
    assert reclaimed["id"] == run_id
    assert reclaimed["attempts"] == 1


async def test_delete_and_not_found(client: httpx.AsyncClient) -> None:
    run_id = await create(client)
    assert (await client.delete(f"/extraction-runs/{run_id}")).status_code == 204
    for method, url, payload in (
        ("GET", f"/extraction-runs/{run_id}", None),
        ("DELETE", f"/extraction-runs/{run_id}", None),
        ("PATCH", f"/extraction-runs/{run_id}", {"status": "running"}),
        ("POST", f"/extraction-runs/{run_id}/release", {}),
        ("GET", f"/extraction-runs/{run_id}/compare/other", None),
    ):
        response = await client.request(method, url, json=payload)
        assert response.status_code == 404, (method, url)
        assert response.json()["code"] == "not_found"
    assert (await client.get("/extraction-runs/bad%20id")).status_code == 422


async def test_nul_characters_and_huge_numbers_are_refused_not_500(
    client: httpx.AsyncClient,
) -> None:
    bad_bodies = [
        body(prompt_id="a\u0000b"),
        body(expected={"x": "a\u0000"}),
        body(expected={"x\u0000": 1}),
        body(expected={"x": 2**70}),
    ]
    for payload in bad_bodies:
        response = await client.post("/extraction-runs", json=payload)
        assert response.status_code == 422, payload
    run_id = await create(client)
    await claim(client)
    url = f"/extraction-runs/{run_id}"
    for change in (
        {"metrics": {"f1": 1e300}},
        {"metrics": {"f\u0000": 1.0}},
        {"cost_usd": 1e12},
        {"worker_id": "w\u0000"},
        {"status": "failed", "error": "bad\u0000"},
    ):
        assert (await client.patch(url, json=change)).status_code == 422, change
    listed = await client.get("/extraction-runs", params={"prompt_id": "a\u0000"})
    assert listed.status_code == 422
    for forged in (
        {"s": "-created_at", "v": {"t": "2026-01-01T00:00:00+00:00"}, "i": "x\u0000"},
        {"s": "-cost_usd", "v": 10**400, "i": "x"},
    ):
        token = base64.urlsafe_b64encode(json.dumps(forged).encode()).decode().rstrip("=")
        sort = forged["s"]
        response = await client.get("/extraction-runs", params={"cursor": token, "sort": sort})
        assert response.status_code == 422, forged


async def test_concurrent_http_claimers_get_disjoint_runs(client: httpx.AsyncClient) -> None:
    ids = {await create(client) for _ in range(40)}

    async def drain(worker: str) -> list[str]:
        mine: list[str] = []
        while runs := await claim(client, worker, 3):
            mine += [r["id"] for r in runs]
        return mine

    results = await asyncio.gather(*(drain(f"w{i}") for i in range(6)))
    handed_out = [run_id for runs in results for run_id in runs]
    assert len(handed_out) == len(set(handed_out)) == 40
    assert set(handed_out) == ids

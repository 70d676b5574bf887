"""The `/runs` contract on both databases: record, list, filter, page, inspect, update, delete."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.factories import BASE_TIME, iso, layer_run

pytestmark = pytest.mark.asyncio


async def post(client: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post("/runs", json=body)
    assert response.status_code == 201, response.text
    return response.json()


async def list_ids(client: httpx.AsyncClient, **params: Any) -> list[str]:
    response = await client.get("/runs", params={"limit": 100, **params})
    assert response.status_code == 200, response.text
    return [run["id"] for run in response.json()["runs"]]


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status
    assert body["code"] == code
    assert body["title"]
    assert body["type"].endswith(code)
    assert isinstance(body["detail"], str)
    assert body["detail"]
    return body


# --- create and read -------------------------------------------------------


async def test_create_returns_detail_with_location(client: httpx.AsyncClient) -> None:
    body = layer_run(errors=[{"message": "boom", "target": "user-1"}])
    response = await client.post("/runs", json=body)
    assert response.status_code == 201
    assert response.headers["location"] == f"/runs/{body['id']}"
    run = response.json()
    assert run["id"] == body["id"]
    assert run["tokens_total"] == 15000  # input + output when not given
    assert run["duration_seconds"] == 150.0
    # RFC 3339 in UTC with a Z, the same instant as sent (whole seconds: no fraction).
    assert body["started_at"].endswith(":00.000000Z")
    assert run["started_at"] == body["started_at"].removesuffix(".000000Z") + "Z"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", run["started_at"])
    assert run["errors"] == [{"message": "boom", "target": "user-1"}]
    assert "created_at" not in run
    assert "updated_at" not in run

    detail = (await client.get(f"/runs/{body['id']}")).json()
    assert detail == run


async def test_server_assigns_ulid_when_id_missing(client: httpx.AsyncClient) -> None:
    body = layer_run()
    del body["id"]
    run = await post(client, body)
    assert len(run["id"]) == 26
    assert (await client.get(f"/runs/{run['id']}")).status_code == 200


async def test_detail_404_is_problem_json(client: httpx.AsyncClient) -> None:
    body = assert_problem(await client.get("/runs/no-such-run"), 404, "not_found")
    assert "no-such-run" in body["detail"]


async def test_explicit_tokens_total_is_kept(client: httpx.AsyncClient) -> None:
    run = await post(client, layer_run(tokens_total=16000))
    assert run["tokens_total"] == 16000


async def test_duration_null_while_running_and_exact_when_complete(
    client: httpx.AsyncClient,
) -> None:
    started = datetime(2026, 3, 1, 12, 0, 0, 250000, tzinfo=UTC)
    running = await post(client, layer_run(status="running", started_at=started))
    assert running["completed_at"] is None
    assert running["duration_seconds"] is None
    done = await post(client, layer_run(started_at=started, duration=3723.5))
    assert done["duration_seconds"] == pytest.approx(3723.5)
    assert done["completed_at"] == "2026-03-01T13:02:03.75Z"


async def test_timestamps_with_and_without_offsets(client: httpx.AsyncClient) -> None:
    # 05:00 at +02:00 is 03:00 UTC; a timestamp without offset is taken as UTC.
    offset_body = layer_run()
    offset_body.update(
        started_at="2026-01-23T05:00:00+02:00", completed_at="2026-01-23T05:02:30+02:00"
    )
    naive_body = layer_run()
    naive_body.update(started_at="2026-01-23T03:00:00", completed_at="2026-01-23T03:02:30")
    with_offset = await post(client, offset_body)
    naive = await post(client, naive_body)
    for run in (with_offset, naive):
        assert run["started_at"] == "2026-01-23T03:00:00Z"
        assert run["completed_at"] == "2026-01-23T03:02:30Z"
        assert run["duration_seconds"] == 150.0
    # Filters take both forms too, and compare in UTC.
    ids = await list_ids(client, since="2026-01-23T04:59:59+02:00", until="2026-01-23T03:00:01")
    assert sorted(ids) == sorted([with_offset["id"], naive["id"]])


# --- listing ---------------------------------------------------------------


async def test_list_newest_first_with_exact_total(client: httpx.AsyncClient) -> None:
    runs = [
        await post(client, layer_run(started_at=BASE_TIME + timedelta(hours=i))) for i in range(5)
    ]
    response = await client.get("/runs", params={"limit": 3})
    page = response.json()
    assert page["total"] == 5
    assert page["offset"] == 0
    assert page["limit"] == 3
    assert [r["id"] for r in page["runs"]] == [r["id"] for r in reversed(runs)][:3]
    assert page["next_cursor"]
    assert set(page["runs"][0]) >= {
        "id",
        "layer_name",
        "status",
        "started_at",
        "completed_at",
        "duration_seconds",
        "targets_processed",
        "insights_created",
        "tokens_total",
        "estimated_cost_usd",
    }
    assert "errors" not in page["runs"][0]


async def test_default_limit_is_20(client: httpx.AsyncClient) -> None:
    page = (await client.get("/runs")).json()
    assert page["limit"] == 20
    assert page["runs"] == []
    assert page["total"] == 0
    assert page["next_cursor"] is None


async def test_filter_by_layer(client: httpx.AsyncClient) -> None:
    a = await post(client, layer_run(layer_name="layer-a"))
    await post(client, layer_run(layer_name="layer-b"))
    a2 = await post(client, layer_run(layer_name="layer-a"))
    page = (await client.get("/runs", params={"layer_name": "layer-a"})).json()
    assert [r["id"] for r in page["runs"]] == [a2["id"], a["id"]]
    assert page["total"] == 2


async def test_filter_by_one_and_several_statuses(client: httpx.AsyncClient) -> None:
    made: dict[str, list[str]] = {}
    for status in ("success", "failed", "partial", "dry", "running", "failed"):
        run = await post(client, layer_run(status=status))
        made.setdefault(status, []).append(run["id"])
    assert sorted(await list_ids(client, status="failed")) == sorted(made["failed"])
    several = await list_ids(client, status="failed,partial, dry")
    assert sorted(several) == sorted(made["failed"] + made["partial"] + made["dry"])
    page = (await client.get("/runs", params={"status": "failed,partial"})).json()
    assert page["total"] == 3


async def test_filter_by_model_name(client: httpx.AsyncClient) -> None:
    mini = await post(client, layer_run(model_name="gpt-4o-mini"))
    await post(client, layer_run(model_name="claude-sonnet-4"))
    assert await list_ids(client, model_name="gpt-4o-mini") == [mini["id"]]


async def test_since_is_inclusive_and_until_exclusive(client: httpx.AsyncClient) -> None:
    runs = [
        await post(client, layer_run(started_at=BASE_TIME + timedelta(hours=i))) for i in range(4)
    ]
    ids = await list_ids(
        client, since=iso(BASE_TIME + timedelta(hours=1)), until=iso(BASE_TIME + timedelta(hours=3))
    )
    assert ids == [runs[2]["id"], runs[1]["id"]]
    page = (await client.get("/runs", params={"since": iso(BASE_TIME + timedelta(hours=1))})).json()
    assert page["total"] == 3


@pytest.mark.parametrize(
    ("sort", "key", "reverse"),
    [
        ("started_at", "started_at", False),
        ("-started_at", "started_at", True),
        ("duration_seconds", "duration_seconds", False),
        ("-duration_seconds", "duration_seconds", True),
        ("estimated_cost_usd", "estimated_cost_usd", False),
        ("-estimated_cost_usd", "estimated_cost_usd", True),
        ("tokens_total", "tokens_total", False),
        ("-tokens_total", "tokens_total", True),
    ],
)
async def test_sort_orders_with_nulls_last_and_id_tiebreak(
    client: httpx.AsyncClient, sort: str, key: str, reverse: bool
) -> None:
    bodies = [
        layer_run(duration=60.0, estimated_cost_usd=0.5, tokens_total=100),
        layer_run(duration=30.0, estimated_cost_usd=0.1, tokens_total=300),
        layer_run(duration=30.0, estimated_cost_usd=0.1, tokens_total=300),  # a tie
        layer_run(status="running", estimated_cost_usd=None, tokens_input=None, tokens_output=None),
        layer_run(duration=90.0, estimated_cost_usd=0.9, tokens_total=200),
    ]
    stored = [await post(client, b) for b in bodies]
    with_value = [r for r in stored if r[key] is not None]
    without = [r for r in stored if r[key] is None]
    expected = sorted(with_value, key=lambda r: (r[key], r["id"]), reverse=reverse)
    expected += sorted(without, key=lambda r: r["id"], reverse=reverse)
    assert await list_ids(client, sort=sort) == [r["id"] for r in expected]
    # Paging one by one with the cursor visits the same order.
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        params: dict[str, Any] = {"sort": sort, "limit": 1}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get("/runs", params=params)).json()
        seen += [r["id"] for r in page["runs"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [r["id"] for r in expected]


# --- paging ----------------------------------------------------------------


async def test_offset_paging(client: httpx.AsyncClient) -> None:
    runs = [await post(client, layer_run()) for _ in range(7)]
    newest_first = [r["id"] for r in reversed(runs)]
    page = (await client.get("/runs", params={"limit": 3, "offset": 3})).json()
    assert [r["id"] for r in page["runs"]] == newest_first[3:6]
    assert page["offset"] == 3
    assert page["total"] == 7
    last = (await client.get("/runs", params={"limit": 3, "offset": 6})).json()
    assert [r["id"] for r in last["runs"]] == newest_first[6:]
    assert last["next_cursor"] is None


async def test_cursor_paging_visits_every_run_once(client: httpx.AsyncClient) -> None:
    # Same started_at for several runs: the id breaks the tie.
    same = BASE_TIME + timedelta(days=3)
    runs = [await post(client, layer_run(started_at=same)) for _ in range(4)]
    runs += [await post(client, layer_run()) for _ in range(7)]
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get("/runs", params=params)).json()
        assert page["total"] == 11
        seen += [r["id"] for r in page["runs"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 11
    expected = sorted(runs, key=lambda r: (r["started_at"], r["id"]), reverse=True)
    assert seen == [r["id"] for r in expected]


async def test_cursor_is_stable_while_runs_are_inserted(client: httpx.AsyncClient) -> None:
    originals = [
        await post(client, layer_run(started_at=BASE_TIME + timedelta(minutes=i)))
        for i in range(10)
    ]
    page = (await client.get("/runs", params={"limit": 4})).json()
    seen = [r["id"] for r in page["runs"]]
    cursor = page["next_cursor"]
    # New runs land before, between and at the same instant as the rows already paged.
    for minutes in (100, 5.5, 6):
        await post(
            client,
            layer_run(started_at=BASE_TIME + timedelta(minutes=minutes), id=f"zz-new-{minutes}"),
        )
    while cursor:
        page = (await client.get("/runs", params={"limit": 4, "cursor": cursor})).json()
        seen += [r["id"] for r in page["runs"]]
        cursor = page["next_cursor"]
        await post(client, layer_run(started_at=BASE_TIME + timedelta(days=30)))
    assert len(seen) == len(set(seen)), "a run was repeated"
    original_ids = {r["id"] for r in originals}
    assert original_ids <= set(seen), "an original run was skipped"
    # Runs inserted behind the cursor position are seen, ones ahead of it are not.
    assert "zz-new-5.5" in seen
    assert "zz-new-100" not in seen


async def test_cursor_with_filters_and_offset_rejected(client: httpx.AsyncClient) -> None:
    for _ in range(3):
        await post(client, layer_run(status="failed"))
    page = (await client.get("/runs", params={"limit": 1, "status": "failed"})).json()
    response = await client.get("/runs", params={"cursor": page["next_cursor"], "offset": 1})
    body = assert_problem(response, 422, "invalid_argument")
    assert body["errors"][0]["loc"] == ["query", "offset"]
    other_sort = await client.get(
        "/runs", params={"cursor": page["next_cursor"], "sort": "tokens_total"}
    )
    assert_problem(other_sort, 422, "invalid_argument")


# --- idempotent create, conflicts ------------------------------------------


async def test_same_id_same_content_is_200(client: httpx.AsyncClient) -> None:
    body = layer_run()
    first = await client.post("/runs", json=body)
    again = await client.post("/runs", json=body)
    assert first.status_code == 201
    assert again.status_code == 200
    assert again.json() == first.json()
    assert (await client.get("/runs")).json()["total"] == 1


async def test_same_id_different_content_is_409(client: httpx.AsyncClient) -> None:
    body = layer_run()
    await post(client, body)
    changed = {**body, "insights_created": 9}
    problem = assert_problem(await client.post("/runs", json=changed), 409, "conflict")
    assert body["id"] in problem["detail"]
    assert (await client.get(f"/runs/{body['id']}")).json()["insights_created"] == 8


async def test_concurrent_creates_with_one_id_make_one_row(client: httpx.AsyncClient) -> None:
    body = layer_run()
    responses = await asyncio.gather(*(client.post("/runs", json=body) for _ in range(8)))
    assert sorted(r.status_code for r in responses) == [200] * 7 + [201]
    assert (await client.get("/runs")).json()["total"] == 1


# --- updates ---------------------------------------------------------------


async def test_patch_progress_then_complete(client: httpx.AsyncClient) -> None:
    run = await post(
        client,
        layer_run(
            status="running",
            started_at=BASE_TIME,
            tokens_input=None,
            tokens_output=None,
            estimated_cost_usd=None,
        ),
    )
    progress = await client.patch(
        f"/runs/{run['id']}", json={"targets_processed": 5, "tokens_input": 100}
    )
    assert progress.status_code == 200
    assert progress.json()["status"] == "running"
    assert progress.json()["targets_processed"] == 5
    completed_at = "2026-01-23T05:00:00Z"
    done = await client.patch(
        f"/runs/{run['id']}",
        json={
            "status": "partial",
            "completed_at": completed_at,
            "tokens_output": 50,
            "errors": [{"message": "one target failed", "target": "user-9"}],
        },
    )
    assert done.status_code == 200, done.text
    final = done.json()
    assert final["status"] == "partial"
    assert final["completed_at"] == completed_at
    assert final["tokens_total"] == 150
    started = datetime.fromisoformat(run["started_at"].replace("Z", "+00:00"))
    expected = (datetime(2026, 1, 23, 5, tzinfo=UTC) - started).total_seconds()
    assert final["duration_seconds"] == pytest.approx(expected)
    assert (await client.get(f"/runs/{run['id']}")).json() == final


async def test_patch_to_final_without_completed_at_uses_now(client: httpx.AsyncClient) -> None:
    started = datetime.now(UTC) - timedelta(minutes=2)
    run = await post(client, layer_run(status="running", started_at=started))
    before = datetime.now(UTC)
    done = (await client.patch(f"/runs/{run['id']}", json={"status": "success"})).json()
    completed = datetime.fromisoformat(done["completed_at"].replace("Z", "+00:00"))
    assert before - timedelta(seconds=1) <= completed <= datetime.now(UTC) + timedelta(seconds=1)
    assert done["duration_seconds"] == pytest.approx(
        (completed - started).total_seconds(), abs=1e-3
    )


async def test_final_run_is_immutable(client: httpx.AsyncClient) -> None:
    run = await post(client, layer_run(status="running"))
    assert (await client.patch(f"/runs/{run['id']}", json={"status": "failed"})).status_code == 200
    for change in ({"status": "success"}, {"insights_created": 1}, {"status": "running"}):
        assert_problem(await client.patch(f"/runs/{run['id']}", json=change), 409, "conflict")
    done = await post(client, layer_run(status="success"))
    assert_problem(
        await client.patch(f"/runs/{done['id']}", json={"status": "failed"}), 409, "conflict"
    )


async def test_concurrent_completions_one_wins(client: httpx.AsyncClient) -> None:
    run = await post(client, layer_run(status="running"))
    statuses = ["success", "failed", "partial", "dry"] * 2
    responses = await asyncio.gather(
        *(client.patch(f"/runs/{run['id']}", json={"status": s}) for s in statuses)
    )
    codes = sorted(r.status_code for r in responses)
    assert codes == [200] + [409] * 7
    winner = next(r.json() for r in responses if r.status_code == 200)
    assert (await client.get(f"/runs/{run['id']}")).json()["status"] == winner["status"]


async def test_completed_at_before_started_at_is_422(client: httpx.AsyncClient) -> None:
    run = await post(client, layer_run(status="running", started_at=BASE_TIME))
    body = assert_problem(
        await client.patch(
            f"/runs/{run['id']}",
            json={"status": "success", "completed_at": iso(BASE_TIME - timedelta(seconds=1))},
        ),
        422,
        "invalid_argument",
    )
    assert body["errors"][0]["loc"] == ["body", "completed_at"]
    bad_create = layer_run(started_at=BASE_TIME, duration=-5)
    assert_problem(await client.post("/runs", json=bad_create), 422, "invalid_argument")
    assert (await client.get(f"/runs/{run['id']}")).json()["status"] == "running"


async def test_completed_at_without_final_status_is_422(client: httpx.AsyncClient) -> None:
    run = await post(client, layer_run(status="running"))
    assert_problem(
        await client.patch(f"/runs/{run['id']}", json={"completed_at": iso(BASE_TIME)}),
        422,
        "invalid_argument",
    )
    assert_problem(
        await client.post("/runs", json=layer_run(status="success", duration=None)),
        422,
        "invalid_argument",
    )
    running_with_end = layer_run(status="running")
    running_with_end["completed_at"] = iso(BASE_TIME + timedelta(days=1))
    assert_problem(await client.post("/runs", json=running_with_end), 422, "invalid_argument")


async def test_patch_missing_run_is_404(client: httpx.AsyncClient) -> None:
    assert_problem(await client.patch("/runs/nope", json={"status": "success"}), 404, "not_found")


# --- delete ------------------------------------------------------------------


async def test_delete(client: httpx.AsyncClient) -> None:
    run = await post(client, layer_run())
    response = await client.delete(f"/runs/{run['id']}")
    assert response.status_code == 204
    assert response.content == b""
    assert_problem(await client.get(f"/runs/{run['id']}"), 404, "not_found")
    assert_problem(await client.delete(f"/runs/{run['id']}"), 404, "not_found")


# --- batch -------------------------------------------------------------------


async def test_batch_creates_and_reports_already_present(client: httpx.AsyncClient) -> None:
    existing = await post(client, layer_run())
    bodies = [layer_run() for _ in range(5)]
    del existing["duration_seconds"]
    response = await client.post("/runs/batch", json={"runs": [*bodies, _as_body(existing)]})
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["created"] == 5
    assert result["already_present"] == 1
    assert [r["id"] for r in result["results"]] == [b["id"] for b in bodies] + [existing["id"]]
    assert [r["result"] for r in result["results"]] == ["created"] * 5 + ["already_present"]
    assert (await client.get("/runs")).json()["total"] == 6


def _as_body(run: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in run.items() if k != "duration_seconds"}


async def test_batch_is_all_or_nothing(client: httpx.AsyncClient) -> None:
    good = [layer_run() for _ in range(3)]
    bad = layer_run(targets_processed=-1)
    response = await client.post("/runs/batch", json={"runs": [*good, bad]})
    problem = assert_problem(response, 422, "invalid_argument")
    assert problem["errors"][0]["loc"][:3] == ["body", "runs", 3]
    assert (await client.get("/runs")).json()["total"] == 0

    stored = await post(client, layer_run())
    conflicting = {**_as_body(stored), "insights_created": 99}
    response = await client.post("/runs/batch", json={"runs": [*good, conflicting]})
    assert_problem(response, 409, "conflict")
    assert (await client.get("/runs")).json()["total"] == 1

    dup = layer_run()
    response = await client.post("/runs/batch", json={"runs": [dup, dup]})
    assert_problem(response, 422, "invalid_argument")
    assert (await client.get("/runs")).json()["total"] == 1


async def test_batch_size_limit(client: httpx.AsyncClient) -> None:
    at_limit = [layer_run(id=f"b-{i}") for i in range(1000)]
    response = await client.post("/runs/batch", json={"runs": at_limit})
    assert response.status_code == 200
    assert response.json()["created"] == 1000
    over = [layer_run(id=f"c-{i}") for i in range(1001)]
    assert_problem(await client.post("/runs/batch", json={"runs": over}), 422, "invalid_argument")
    assert_problem(await client.post("/runs/batch", json={"runs": []}), 422, "invalid_argument")
    assert (await client.get("/runs")).json()["total"] == 1000

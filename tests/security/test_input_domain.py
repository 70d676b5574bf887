"""The input domain at its edges: list lengths, timestamps, surrogates, derived tokens."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pydantic import TypeAdapter

from runwatch.domain import MAX_PROBLEM_ERRORS, MAX_TOKENS
from runwatch.schemas.common import UtcTimestamp
from tests.factories import layer_run

JSON = {"content-type": "application/json"}


def raw(body: Any) -> bytes:
    """JSON with `\\uXXXX` escapes, so that lone surrogates survive the encoding."""
    return json.dumps(body, ensure_ascii=True).encode()


def assert_invalid(response: httpx.Response, *loc: str | int) -> dict[str, Any]:
    assert response.status_code == 422, response.text[:500]
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    locs = [e["loc"] for e in body["errors"]]
    assert any(found[: len(loc)] == list(loc) for found in locs), locs
    return body


def forged_cursor(sort: str, moment: str) -> str:
    payload = json.dumps({"s": sort, "v": {"t": moment}, "i": "run-1"}).encode()
    return base64.urlsafe_b64encode(payload).decode().rstrip("=")


# --- list lengths are checked before the items ------------------------------------


async def test_a_huge_invalid_error_list_is_one_short_answer(client: httpx.AsyncClient) -> None:
    # 2.7 million invalid items in 5.4 MB: one error for the list, not one per item.
    body = layer_run()
    body["errors"] = [1] * 2_700_000
    response = await client.post("/runs", content=json.dumps(body).encode(), headers=JSON)
    problem = assert_invalid(response, "body", "errors")
    assert len(response.content) < 10_000
    assert problem["error_count"] == 1
    assert "at most 1000" in problem["errors"][0]["msg"]
    assert (await client.get("/runs")).json()["total"] == 0


async def test_a_huge_invalid_batch_is_one_short_answer(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/runs/batch", content=json.dumps({"runs": [1] * 300_000}).encode(), headers=JSON
    )
    problem = assert_invalid(response, "body", "runs")
    assert len(response.content) < 10_000
    assert problem["error_count"] == 1


async def test_a_batch_of_invalid_runs_stops_at_the_first_errors(
    client: httpx.AsyncClient,
) -> None:
    # 10,000 runs with 80 invalid errors each: 840,000 errors if all were
    # collected (24 s and 1.2 GB once); validation stops after the first 20.
    run = {"status": "x", "started_at": "9999-01-01T00:00:00Z", "errors": [1] * 80}
    response = await client.post(
        "/runs/batch", content=json.dumps({"runs": [run] * 10_000}).encode(), headers=JSON
    )
    problem = assert_invalid(response, "body", "runs", 0)
    assert len(problem["errors"]) == MAX_PROBLEM_ERRORS
    assert MAX_PROBLEM_ERRORS <= problem["error_count"] < 2 * MAX_PROBLEM_ERRORS + 5
    assert len(response.content) < 10_000
    # One run's own errors list stops early too.
    many = layer_run(errors=[1] * 1000)
    single = await client.post("/runs", json=many)
    problem = assert_invalid(single, "body", "errors", 0)
    assert problem["error_count"] == MAX_PROBLEM_ERRORS


async def test_problem_bodies_list_twenty_errors_and_count_them_all(
    client: httpx.AsyncClient,
) -> None:
    # 500 runs, each missing three required fields: validation stops at the
    # run that brings the errors to 20 (the seventh: 21 errors found).
    response = await client.post("/runs/batch", json={"runs": [{"status": "dry"}] * 500})
    problem = assert_invalid(response, "body", "runs", 0)
    assert len(problem["errors"]) == MAX_PROBLEM_ERRORS
    assert problem["error_count"] == 7 * 3
    assert problem["errors"][-1]["loc"][:3] == ["body", "runs", 6]
    few = await client.post("/runs", json={"status": "dry"})
    assert len(few.json()["errors"]) == few.json()["error_count"] == 3


async def test_a_huge_metrics_object_is_refused_before_its_values(
    client: httpx.AsyncClient,
) -> None:
    created = await client.post(
        "/extraction-runs", json={"prompt_id": "p", "config_id": "c", "document_name": "d"}
    )
    run_id = created.json()["run_id"]
    metrics = {f"m{i}": "x" for i in range(200_000)}
    response = await client.patch(f"/extraction-runs/{run_id}", json={"metrics": metrics})
    problem = assert_invalid(response, "body", "metrics")
    assert problem["error_count"] == 1
    assert len(response.content) < 10_000


# --- timestamps -----------------------------------------------------------------


@pytest.mark.parametrize(
    "started_at",
    ["9999-12-31T23:59:59Z", "0003-06-01T00:00:00Z", "1999-12-31T23:59:59Z",
     "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"],
)  # fmt: skip
async def test_started_at_out_of_range_is_a_422(client: httpx.AsyncClient, started_at: str) -> None:
    body = layer_run(status="running", started_at=None)
    body["started_at"] = started_at
    assert_invalid(await client.post("/runs", json=body), "body", "started_at")
    batch = await client.post("/runs/batch", json={"runs": [body]})
    assert_invalid(batch, "body", "runs", 0, "started_at")


async def test_the_ends_of_the_stored_range(client: httpx.AsyncClient) -> None:
    earliest = layer_run(started_at=datetime(2000, 1, 1, tzinfo=UTC), duration=1.0)
    assert (await client.post("/runs", json=earliest)).status_code == 201
    soon = datetime.now(UTC) + timedelta(hours=23)
    assert (
        await client.post("/runs", json=layer_run(started_at=soon, duration=60))
    ).status_code == 201
    late = layer_run(started_at=datetime.now(UTC) + timedelta(days=1, minutes=5), status="running")
    assert_invalid(await client.post("/runs", json=late), "body", "started_at")
    overlong = layer_run(started_at=soon, duration=2 * 3600)
    assert_invalid(await client.post("/runs", json=overlong), "body", "completed_at")


async def test_completed_in_9999_is_refused_and_the_layer_stays_writable(
    client: httpx.AsyncClient,
) -> None:
    # Once, 36 of these plus a filler overflowed the month's duration sum, and
    # every later run of the layer that month failed to write.
    started = datetime(2026, 1, 5, tzinfo=UTC)
    runs = []
    for i in range(37):
        run = layer_run(started_at=started + timedelta(minutes=i))
        run["completed_at"] = "9999-12-31T23:59:59Z"
        runs.append(run)
    response = await client.post("/runs/batch", json={"runs": runs})
    problem = assert_invalid(response, "body", "runs", 0, "completed_at")
    assert problem["error_count"] == MAX_PROBLEM_ERRORS  # one per run, up to the first 20
    for run in runs[:3]:
        assert_invalid(await client.post("/runs", json=run), "body", "completed_at")
    later = await client.post("/runs", json=layer_run(started_at=started + timedelta(hours=2)))
    assert later.status_code == 201, later.text
    running = await client.post("/runs", json=layer_run(status="running", started_at=started))
    patched = await client.patch(
        f"/runs/{running.json()['id']}",
        json={"status": "success", "completed_at": "9999-12-31T23:59:59Z"},
    )
    assert_invalid(patched, "body", "completed_at")


async def test_a_run_started_in_9999_is_not_counted(client: httpx.AsyncClient) -> None:
    now = datetime.now(UTC)
    kept = [layer_run(started_at=now - timedelta(days=d), duration=10) for d in (1, 2, 3)]
    for run in kept:
        assert (await client.post("/runs", json=run)).status_code == 201
    future = layer_run(status="running")
    future["started_at"] = "9999-06-01T00:00:00Z"
    assert_invalid(await client.post("/runs", json=future), "body", "started_at")
    summary = (await client.get("/runs/stats/summary", params={"days": 30})).json()
    assert summary["total_runs"] == len(kept)
    assert summary["successful_runs"] == 3


async def test_sqlite_year_3_batches_no_longer_break_the_list(client: httpx.AsyncClient) -> None:
    for batch in range(2):
        runs = []
        for i in range(29):
            run = layer_run(status="running")
            run["started_at"] = f"0003-0{batch + 1}-01T00:{i:02d}:00Z"
            runs.append(run)
        assert_invalid(await client.post("/runs/batch", json={"runs": runs}), "body", "runs")
    assert (await client.get("/runs")).status_code == 200


ENDS = [
    "9999-12-31T23:00:00Z",
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59-01:00",
    "0001-01-01T00:00:00Z",
]


@pytest.mark.parametrize("path", ["/runs", "/extraction-runs"])
@pytest.mark.parametrize("moment", ENDS)
async def test_filter_timestamps_at_the_ends_of_the_calendar(
    client: httpx.AsyncClient, path: str, moment: str
) -> None:
    for name in ("since", "until"):
        response = await client.get(path, params={name: moment})
        assert_invalid(response, "query", name)


@pytest.mark.parametrize(
    ("path", "sort"), [("/runs", "-started_at"), ("/extraction-runs", "-created_at")]
)
@pytest.mark.parametrize("moment", [*ENDS, "0001-01-01T00:00:00-01:00"])
async def test_forged_cursors_at_the_ends_of_the_calendar(
    client: httpx.AsyncClient, path: str, sort: str, moment: str
) -> None:
    response = await client.get(path, params={"cursor": forged_cursor(sort, moment)})
    assert_invalid(response, "query", "cursor")


async def test_filters_inside_the_range_still_work(client: httpx.AsyncClient) -> None:
    run = layer_run()
    assert (await client.post("/runs", json=run)).status_code == 201
    wide = await client.get(
        "/runs", params={"since": "1970-01-01T00:00:00Z", "until": "2200-01-01T00:00:00Z"}
    )
    assert wide.status_code == 200
    assert [r["id"] for r in wide.json()["runs"]] == [run["id"]]


def test_timestamps_before_year_1000_go_out_as_rfc_3339() -> None:
    adapter = TypeAdapter(UtcTimestamp)
    assert adapter.dump_json(datetime(1, 1, 1, tzinfo=UTC)) == b'"0001-01-01T00:00:00Z"'
    assert adapter.dump_json(datetime(999, 3, 4, 5, 6, 7, 80, tzinfo=UTC)) == (
        b'"0999-03-04T05:06:07.00008Z"'
    )
    assert adapter.dump_json(datetime(2026, 1, 23, 3, tzinfo=UTC)) == b'"2026-01-23T03:00:00Z"'


# --- lone surrogates --------------------------------------------------------------


SURROGATES = ["\ud800", "\udfff", "a\udc00b"]


@pytest.mark.parametrize("text", SURROGATES)
async def test_lone_surrogates_in_layer_run_errors(client: httpx.AsyncClient, text: str) -> None:
    for errors in ([{"m": text}], [{text: 1}], [{"m": {"deep": [text]}}]):
        body = layer_run(errors=errors)
        response = await client.post("/runs", content=raw(body), headers=JSON)
        assert_invalid(response, "body", "errors")
        assert (await client.get(f"/runs/{body['id']}")).status_code == 404
    running = await client.post("/runs", json=layer_run(status="running"))
    run_id = running.json()["id"]
    patched = await client.patch(
        f"/runs/{run_id}", content=raw({"errors": [{"m": text}]}), headers=JSON
    )
    assert_invalid(patched, "body", "errors")
    assert (await client.get(f"/runs/{run_id}")).status_code == 200


@pytest.mark.parametrize("text", SURROGATES)
async def test_lone_surrogates_in_extraction_runs(client: httpx.AsyncClient, text: str) -> None:
    base = {"prompt_id": "p", "config_id": "c", "document_name": "d"}
    for expected in ({"a": text}, {text: 1}, {"a": [{"b": text}]}):
        body = {**base, "id": "er-1", "expected": expected}
        response = await client.post("/extraction-runs", content=raw(body), headers=JSON)
        assert_invalid(response, "body", "expected")
        assert (await client.get("/extraction-runs/er-1")).status_code == 404
    for name in ("prompt_id", "config_id", "document_name"):
        response = await client.post(
            "/extraction-runs", content=raw({**base, name: text}), headers=JSON
        )
        assert_invalid(response, "body", name)
    created = await client.post("/extraction-runs", json=base)
    run_id = created.json()["run_id"]
    for update in ({"output": {"k": text}}, {"output": {text: 1}}, {"metrics": {text: 1.0}},
                   {"error": text}, {"worker_id": text}):  # fmt: skip
        response = await client.patch(
            f"/extraction-runs/{run_id}", content=raw(update), headers=JSON
        )
        assert_invalid(response, "body")
    assert (await client.get(f"/extraction-runs/{run_id}")).status_code == 200


async def test_a_surrogate_key_at_the_top_level_is_a_422(client: httpx.AsyncClient) -> None:
    body = {**layer_run(), "\ud800": 1}
    response = await client.post("/runs", content=raw(body), headers=JSON)
    assert_invalid(response, "body")
    assert (await client.get("/runs")).json()["total"] == 0


async def test_surrogate_pairs_are_text_and_read_back(client: httpx.AsyncClient) -> None:
    text = "rate limited \U0001f600"
    body = layer_run(errors=[{"m": text, text: 1}])
    response = await client.post("/runs", content=raw(body), headers=JSON)
    assert response.status_code == 201, response.text
    stored = (await client.get(f"/runs/{body['id']}")).json()
    assert stored["errors"] == [{"m": text, text: 1}]


# --- derived tokens_total ---------------------------------------------------------


async def test_derived_tokens_total_stays_in_range(client: httpx.AsyncClient) -> None:
    body = layer_run(tokens_input=MAX_TOKENS, tokens_output=MAX_TOKENS)
    assert_invalid(await client.post("/runs", json=body), "body")
    batch = await client.post("/runs/batch", json={"runs": [body]})
    assert_invalid(batch, "body", "runs", 0)
    at_limit = layer_run(tokens_input=MAX_TOKENS - 1, tokens_output=1)
    created = await client.post("/runs", json=at_limit)
    assert created.status_code == 201, created.text
    assert created.json()["tokens_total"] == 2**31 - 1
    given = layer_run(tokens_input=MAX_TOKENS, tokens_output=MAX_TOKENS, tokens_total=7)
    assert (await client.post("/runs", json=given)).status_code == 201

    running = await client.post(
        "/runs", json=layer_run(status="running", tokens_input=MAX_TOKENS, tokens_output=None)
    )
    run_id = running.json()["id"]
    patched = await client.patch(f"/runs/{run_id}", json={"tokens_output": MAX_TOKENS})
    assert_invalid(patched, "body", "tokens_output")
    stored = (await client.get(f"/runs/{run_id}")).json()
    assert stored["tokens_output"] is None
    assert stored["tokens_total"] is None
    ok = await client.patch(f"/runs/{run_id}", json={"tokens_output": 0})
    assert ok.json()["tokens_total"] == MAX_TOKENS

"""`GET /runs/export` and `GET /extraction-runs/export` on both dialects: order, filters, CSV."""

from __future__ import annotations

import csv
import io
import json
import random
from datetime import timedelta
from typing import Any

import httpx
import pytest

from runwatch.api import export
from runwatch.client import AsyncRunwatchClient
from tests.factories import BASE_TIME, iso, layer_run

LAYER_CSV_HEADER = [
    "id", "layer_name", "status", "started_at", "completed_at", "duration_seconds",
    "targets_processed", "insights_created", "tokens_total", "estimated_cost_usd", "model_name",
    "layer_hash", "targets_matched", "targets_skipped", "model_profile", "model_provider",
    "tokens_input", "tokens_output", "errors",
]  # fmt: skip
EXTRACTION_CSV_HEADER = [
    "id", "prompt_id", "config_id", "document_name", "status", "created_at", "started_at",
    "completed_at", "cost_usd", "output", "metrics", "tokens.input", "tokens.output", "error",
    "expected", "attempts", "worker_id", "lease_expires_at", "metrics.precision",
    "metrics.recall", "metrics.f1", "metrics.latency_ms",
]  # fmt: skip


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    # Many small chunks, so that every export here crosses chunk boundaries.
    monkeypatch.setattr(export, "FIRST_CHUNK", 7)
    monkeypatch.setattr(export, "MAX_CHUNK", 11)


def _runs(count: int) -> list[dict[str, Any]]:
    rng = random.Random(7)
    runs = []
    for i in range(count):
        status = rng.choice(["success", "failed", "partial", "running", "dry"])
        body = layer_run(
            id=f"exp-{i:04d}",
            # Repeated start times make the tie-break by id matter.
            started_at=BASE_TIME + timedelta(minutes=rng.randrange(40)),
            status=status,
            layer_name=rng.choice(["alpha", "beta"]),
            estimated_cost_usd=rng.choice([None, 0.5, 0.25, round(rng.random(), 3)]),
        )
        if status == "failed":
            body["errors"] = [{"message": f"boom {i}", "line\nbreak": 'a,b"c'}]
        runs.append(body)
    return runs


# Worked out at each request from the clock, not stored: not part of an export.
AS_OF_NOW = ("stuck", "stuck_since", "stuck_threshold_seconds", "lease_expired")


async def _stored(client: httpx.AsyncClient, path: str) -> dict[str, Any]:
    """A run's detail as `GET` answers it, less the fields that depend on the time of asking."""
    detail = (await client.get(path)).json()
    return {key: value for key, value in detail.items() if key not in AS_OF_NOW}


async def _export(client: httpx.AsyncClient, path: str, **params: Any) -> httpx.Response:
    response = await client.get(path, params=params)
    assert response.status_code == 200, response.text
    return response


def _expected_order(runs: list[dict[str, Any]], key: str, descending: bool) -> list[str]:
    """Sort order computed here: nulls last in both directions, ties by id in the same direction."""
    present = [r for r in runs if r.get(key) is not None]
    missing = [r for r in runs if r.get(key) is None]
    present.sort(key=lambda r: (r[key], r["id"]), reverse=descending)
    missing.sort(key=lambda r: r["id"], reverse=descending)
    return [r["id"] for r in present + missing]


async def test_ndjson_is_every_matching_detail_in_list_order(client: httpx.AsyncClient) -> None:
    runs = _runs(120)
    async with AsyncRunwatchClient(http_client=client) as api:
        result = await api.create_runs(runs, batch_size=50)
    assert result.created == 120

    response = await _export(client, "/runs/export")
    assert response.headers["content-type"] == "application/x-ndjson"
    lines = response.text.splitlines()
    assert len(lines) == 120
    exported = [json.loads(line) for line in lines]
    assert [r["id"] for r in exported] == _expected_order(runs, "started_at", True)
    for row in exported[::17]:
        assert row == await _stored(client, f"/runs/{row['id']}")

    # The same filters and sort as the list, which it matches page for page.
    params = {
        "layer_name": "alpha",
        "status": "failed,success",
        "since": iso(BASE_TIME + timedelta(minutes=5)),
        "until": iso(BASE_TIME + timedelta(minutes=35)),
        "sort": "-estimated_cost_usd",
    }
    matching = [
        r
        for r in runs
        if r["layer_name"] == "alpha"
        and r["status"] in ("failed", "success")
        and iso(BASE_TIME + timedelta(minutes=5))
        <= r["started_at"]
        < iso(BASE_TIME + timedelta(minutes=35))
    ]
    assert matching
    lines = (await _export(client, "/runs/export", **params)).text.splitlines()
    ids = [json.loads(line)["id"] for line in lines]
    assert ids == _expected_order(matching, "estimated_cost_usd", True)
    listed: list[str] = []
    query: dict[str, Any] = {**params, "limit": 9}
    while True:
        page = (await client.get("/runs", params=query)).json()
        listed += [r["id"] for r in page["runs"]]
        if page["next_cursor"] is None:
            break
        query["cursor"] = page["next_cursor"]
    assert ids == listed

    ascending = (await _export(client, "/runs/export", sort="tokens_total")).text.splitlines()
    assert len(ascending) == 120


async def test_csv_flattens_and_quotes(client: httpx.AsyncClient) -> None:
    runs = _runs(30)
    async with AsyncRunwatchClient(http_client=client) as api:
        await api.create_runs(runs)
    response = await _export(client, "/runs/export", format="csv", sort="started_at")
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert 'filename="runs.csv"' in response.headers["content-disposition"]
    reader = csv.reader(io.StringIO(response.text))
    header = next(reader)
    assert header == LAYER_CSV_HEADER
    rows = [dict(zip(header, row, strict=True)) for row in reader]
    assert [r["id"] for r in rows] == _expected_order(runs, "started_at", False)
    by_id = {r["id"]: r for r in runs}
    for row in rows:
        sent = by_id[row["id"]]
        assert row["layer_name"] == sent["layer_name"]
        assert row["status"] == sent["status"]
        assert row["tokens_total"] == "15000"
        if sent.get("errors"):
            assert json.loads(row["errors"]) == sent["errors"]
        else:
            assert row["errors"] == ""
        if sent["estimated_cost_usd"] is None:
            assert row["estimated_cost_usd"] == ""
        else:
            assert float(row["estimated_cost_usd"]) == sent["estimated_cost_usd"]
        if sent["status"] == "running":
            assert row["completed_at"] == row["duration_seconds"] == ""
        else:
            assert float(row["duration_seconds"]) == 150.0
            assert row["completed_at"].endswith("Z")

    # Chunk after chunk on a key with nulls and ties: the list's order, each run once.
    for sort, key in (
        ("-estimated_cost_usd", "estimated_cost_usd"),
        ("tokens_total", "tokens_total"),
    ):
        text = (await _export(client, "/runs/export", format="csv", sort=sort)).text
        ids = [row[0] for row in list(csv.reader(io.StringIO(text)))[1:]]
        assert ids == _expected_order(runs, key, sort.startswith("-"))


async def test_empty_export(client: httpx.AsyncClient) -> None:
    assert (await _export(client, "/runs/export")).content == b""
    csv_text = (await _export(client, "/runs/export", format="csv")).text
    assert csv_text.splitlines() == [",".join(LAYER_CSV_HEADER)]
    assert (await _export(client, "/extraction-runs/export")).content == b""


async def test_extraction_export(client: httpx.AsyncClient) -> None:
    async with AsyncRunwatchClient(http_client=client) as api:
        accepted = await api.create_extraction_runs(
            [
                {
                    "prompt_id": f"p{i % 2}",
                    "config_id": "c",
                    "document_name": f"doc-{i}.pdf",
                    "expected": {"total": i},
                }
                for i in range(25)
            ]
        )
        claimed = await api.claim_extraction_runs(worker_id="w", max_runs=3)
        for i, run in enumerate(claimed):
            await api.update_extraction_run(
                run.id,
                status="completed",
                worker_id="w",
                output={"total": i, "nested": {"k": [1, 2]}},
                tokens={"input": 100 + i, "output": 7},
                cost_usd=0.5,
            )
    assert len(accepted) == 25
    lines = (await _export(client, "/extraction-runs/export", sort="created_at")).text.splitlines()
    exported = [json.loads(line) for line in lines]
    assert {r["id"] for r in exported} == {a.run_id for a in accepted}
    for row in exported:
        assert row == await _stored(client, f"/extraction-runs/{row['id']}")
    only = (
        await _export(client, "/extraction-runs/export", status="completed", prompt_id="p0")
    ).text.splitlines()
    completed = {r.id for r in claimed}
    expected = {r["id"] for r in exported if r["id"] in completed and r["prompt_id"] == "p0"}
    assert {json.loads(line)["id"] for line in only} == expected

    response = await _export(client, "/extraction-runs/export", format="csv", status="completed")
    reader = csv.reader(io.StringIO(response.text))
    header = next(reader)
    assert header == EXTRACTION_CSV_HEADER
    rows = [dict(zip(header, row, strict=True)) for row in reader]
    assert {r["id"] for r in rows} == completed
    for row in rows:
        detail = (await client.get(f"/extraction-runs/{row['id']}")).json()
        assert json.loads(row["output"]) == detail["output"]
        assert int(row["tokens.input"]) == detail["tokens"]["input"]
        assert row["tokens.output"] == "7"
        assert json.loads(row["metrics"]) == detail["metrics"]
        assert float(row["metrics.f1"]) == detail["metrics"]["f1"]
        assert json.loads(row["expected"]) == detail["expected"]
        assert row["error"] == ""


async def test_export_is_not_taken_for_a_run_id(client: httpx.AsyncClient) -> None:
    # `/runs/export` is the export, for every method: DELETE there is not a
    # request about a run (and no run may have the id "export").
    assert (await client.post("/runs", json=layer_run(id="export"))).status_code == 422
    created = await client.post("/runs", json=layer_run(id="exported"))
    assert created.status_code == 201
    response = await _export(client, "/runs/export")
    assert json.loads(response.text.splitlines()[0])["id"] == "exported"
    refused = await client.delete("/runs/export")
    assert (refused.status_code, refused.headers["allow"]) == (405, "GET")
    assert (await client.get("/runs")).json()["total"] == 1


@pytest.mark.parametrize(
    ("path", "params", "loc"),
    [
        ("/runs/export", {"format": "xml"}, ["query", "format"]),
        ("/runs/export", {"status": "fine"}, ["query", "status"]),
        ("/runs/export", {"sort": "layer_name"}, ["query", "sort"]),
        ("/runs/export", {"cursor": "abc"}, ["query", "cursor"]),
        ("/runs/export", {"limit": "5"}, ["query", "limit"]),
        ("/runs/export", {"since": "2026-02-01", "until": "2026-01-01"}, ["query", "until"]),
        ("/extraction-runs/export", {"format": "json"}, ["query", "format"]),
        ("/extraction-runs/export", {"sort": "-started_at"}, ["query", "sort"]),
        ("/extraction-runs/export", {"prompt_id": ""}, ["query", "prompt_id"]),
    ],
)  # fmt: skip
async def test_bad_export_parameters_are_problems(
    client: httpx.AsyncClient, path: str, params: dict[str, str], loc: list[str]
) -> None:
    response = await client.get(path, params=params)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == "invalid_argument"
    assert loc in [error["loc"] for error in body["errors"]]


async def test_lines_are_exactly_the_detail(client: httpx.AsyncClient) -> None:
    """Timestamps to the microsecond, escapes and floats come out as `GET` writes them."""
    odd = [
        layer_run(
            id="t-fraction",
            started_at=BASE_TIME.replace(microsecond=250000),
            completed_at="2026-01-23T03:02:30.123456Z",
            estimated_cost_usd=0.1 + 0.2,
            layer_name='quote " back\\slash, comma; ünïcødé ✓',
            errors=[{"message": "line\nbreak\ttab", "nested": {"n": [1, 2.5, None, True]}}],
            status="failed",
        ),
        layer_run(
            id="t-whole",
            started_at=BASE_TIME.replace(microsecond=1),
            completed_at="2026-01-23T03:02:30Z",
            tokens_input=None,
            tokens_output=None,
            estimated_cost_usd=1e-9,
        ),
        layer_run(id="t-running", status="running", started_at=BASE_TIME, duration=None),
    ]
    for body in odd:
        assert (await client.post("/runs", json=body)).status_code == 201, body
    for sort in ("-started_at", "estimated_cost_usd"):
        lines = (await _export(client, "/runs/export", sort=sort)).text.splitlines()
        assert len(lines) == 3
        for line in lines:
            row = json.loads(line)
            assert row == await _stored(client, f"/runs/{row['id']}")
    exported = {json.loads(line)["id"]: json.loads(line) for line in lines}
    assert exported["t-fraction"]["started_at"] == "2026-01-23T03:00:00.25Z"
    assert exported["t-fraction"]["completed_at"] == "2026-01-23T03:02:30.123456Z"
    assert exported["t-whole"]["started_at"] == "2026-01-23T03:00:00.000001Z"
    assert exported["t-whole"]["completed_at"] == "2026-01-23T03:02:30Z"
    assert exported["t-running"]["completed_at"] is None

    accepted = await client.post(
        "/extraction-runs",
        json={"prompt_id": "p ✓", "config_id": "c", "document_name": 'a "b".pdf'},
    )
    run_id = accepted.json()["run_id"]
    line = (await _export(client, "/extraction-runs/export")).text.splitlines()[0]
    assert json.loads(line) == await _stored(client, f"/extraction-runs/{run_id}")


async def test_csv_reads_the_same_whichever_side_writes_it(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # On PostgreSQL the database writes the CSV lines of layer runs; elsewhere,
    # and for extraction runs, Python's csv module does. The two must agree.
    tricky = [
        layer_run(id="t-1", errors=None, estimated_cost_usd=None, model_name=None),
        layer_run(
            id="t-2",
            layer_name='comma, and "quotes"',
            model_name="line\nbreak",
            model_profile="carriage\rreturn",
            model_provider="tab\there",
            estimated_cost_usd=2.0,
            errors=[],
        ),
        layer_run(
            id="t-3",
            layer_name="ünïcode ✓ 'single'",
            estimated_cost_usd=1e-05,
            duration=0.25,
            errors=[{"message": 'a,b"c', "n": 1.5, "nested": {"x": [1, None]}}],
        ),
        layer_run(
            id="t-4",
            estimated_cost_usd=123456.789,
            duration=3600.0,
            tokens_input=None,
            tokens_output=None,
            tokens_total=None,
        ),
        layer_run(id="t-5", status="running", estimated_cost_usd=0.1 + 0.2),
    ]
    assert (await client.post("/runs/batch", json={"runs": tricky})).status_code == 200

    def table(text: str) -> list[list[str]]:
        return list(csv.reader(io.StringIO(text, newline="")))

    ours = (await _export(client, "/runs/export", format="csv", sort="started_at")).text
    monkeypatch.setattr(export.ExportKind, "flat_csv", property(lambda self: False))
    pythons = (await _export(client, "/runs/export", format="csv", sort="started_at")).text
    ours_rows, python_rows = table(ours), table(pythons)
    assert ours_rows[0] == python_rows[0] == LAYER_CSV_HEADER
    assert len(ours_rows) == len(python_rows) == len(tricky) + 1
    at = LAYER_CSV_HEADER.index("errors")
    for mine, theirs in zip(ours_rows[1:], python_rows[1:], strict=True):
        assert mine[:at] + mine[at + 1 :] == theirs[:at] + theirs[at + 1 :]
        assert (json.loads(mine[at]) if mine[at] else None) == (
            json.loads(theirs[at]) if theirs[at] else None
        )
    # Without JSON in them, the lines are the same bytes.
    plain = [line for line in ours.split("\n") if line.startswith(("t-1,", "t-4,", "t-5,"))]
    assert len(plain) == 3
    assert all(line in pythons.split("\n") for line in plain)

    # And every cell reads back as the value stored.
    rows = {row[0]: dict(zip(LAYER_CSV_HEADER, row, strict=True)) for row in ours_rows[1:]}
    sent = {run["id"]: run for run in tricky}
    for run_id, row in rows.items():
        for name in ("layer_name", "model_name", "model_profile", "model_provider", "layer_hash"):
            assert row[name] == (sent[run_id].get(name) or ""), (run_id, name)
        cost = sent[run_id]["estimated_cost_usd"]
        assert row["estimated_cost_usd"] == ("" if cost is None else repr(cost))
    assert rows["t-2"]["errors"] == "[]"
    assert rows["t-3"]["duration_seconds"] == "0.25"
    assert rows["t-4"]["duration_seconds"] == "3600.0"
    assert rows["t-4"]["tokens_total"] == ""
    assert rows["t-5"]["completed_at"] == rows["t-5"]["duration_seconds"] == ""
    assert rows["t-1"]["started_at"] == rows["t-1"]["started_at"].rstrip("0")
    assert rows["t-1"]["started_at"].endswith("Z")


async def test_every_kind_of_value_is_written_as_the_detail(client: httpx.AsyncClient) -> None:
    """Each value as `GET /runs/{id}` writes it, whoever writes the line (PostgreSQL or Python).

    Text with every character JSON must escape and some it must not, floats
    that only read back exactly when written in full, integers at the top of
    their range, and every nullable field null.
    """
    control = "".join(chr(c) for c in range(1, 32))
    texts = {
        "layer_name": 'q"uote \\back\\slash \\u0041 /slash',
        "layer_hash": control,
        "model_name": "emoji \U0001f600 non-BMP \U00010348, bidi \u202e, sep \u2028\u2029 del \x7f",
        "model_profile": "ünïcødé ✓ 'single' <tag> &amp;",
        "model_provider": " ",
    }
    runs = [
        layer_run(
            id="v-text",
            **texts,
            errors=[
                {"message": control + '"\\\U0001f600', "big": 2**63 - 1, "small": -(2**63 - 1)},
                {"floats": [0.1, 1e-7, 1e-300, 5e-324, 123456789.125, 1.5e15]},
                {"empty": {}, "list": [], "null": None, "bool": [True, False]},
            ],
        ),
        layer_run(
            id="v-float-a",
            estimated_cost_usd=0.1,
            duration=1e-6,
            tokens_input=2**31 - 2,
            tokens_output=1,
            targets_matched=2**31 - 1,
        ),
        layer_run(id="v-float-b", estimated_cost_usd=1e-7, duration=0.1 + 0.2),
        layer_run(id="v-float-c", estimated_cost_usd=123456.789, duration=86400.0),
        layer_run(
            id="v-float-d", estimated_cost_usd=0.0, started_at=BASE_TIME.replace(microsecond=100)
        ),
        layer_run(
            id="v-nulls",
            status="running",
            model_profile=None,
            model_provider=None,
            model_name=None,
            tokens_input=None,
            tokens_output=None,
            tokens_total=None,
            estimated_cost_usd=None,
            errors=None,
        ),
    ]
    for body in runs:
        created = await client.post("/runs", json=body)
        assert created.status_code == 201, created.text

    for sort in ("-started_at", "estimated_cost_usd"):
        text = (await _export(client, "/runs/export", sort=sort)).text
        lines = text.split("\n")
        assert lines[-1] == ""  # every line ends with a line feed, the last too
        assert len(lines[:-1]) == len(runs)
        for line in lines[:-1]:
            row = json.loads(line)
            assert row == await _stored(client, f"/runs/{row['id']}"), line
    exported = {json.loads(line)["id"]: json.loads(line) for line in lines[:-1]}
    assert {key: exported["v-text"][key] for key in texts} == texts
    assert exported["v-float-a"]["estimated_cost_usd"] == 0.1
    assert exported["v-float-a"]["duration_seconds"] == 1e-6
    assert exported["v-float-a"]["tokens_total"] == 2**31 - 1
    assert exported["v-float-b"]["estimated_cost_usd"] == 1e-7
    assert exported["v-float-d"]["started_at"].endswith(":00.0001Z")
    assert exported["v-nulls"]["completed_at"] is None
    assert exported["v-nulls"]["errors"] is None


async def test_one_character_to_escape_in_any_text_field(client: httpx.AsyncClient) -> None:
    """A row is written with JSON's escapes when any one of its text values needs one.

    Each run has one such character in one field and plain text everywhere
    else, so a field or a character the writer overlooks shows up as a line
    that is not the detail (or not JSON at all).
    """
    fields = ("layer_name", "layer_hash", "model_name", "model_profile", "model_provider")
    characters = ('"', "\\", "\x01", "\n", "\x1f")
    runs = [
        layer_run(id=f"esc-{f}-{c}", **{field: f"a{char}b"})
        for f, field in enumerate(fields)
        for c, char in enumerate(characters)
    ]
    runs.append(layer_run(id="esc-none", layer_name="plain \x7f\u2028 ✓"))
    assert (await client.post("/runs/batch", json={"runs": runs})).status_code == 200

    text = (await _export(client, "/runs/export", sort="started_at")).text
    lines = text.split("\n")[:-1]  # not splitlines(), which also splits at U+2028
    assert len(lines) == len(runs)
    for line in lines:
        row = json.loads(line)
        assert row == await _stored(client, f"/runs/{row['id']}"), line
    sent = {run["id"]: run for run in runs}
    for row in map(json.loads, lines):
        assert {f: row[f] for f in fields} == {f: sent[row["id"]][f] for f in fields}


@pytest.mark.parametrize("format", ["ndjson", "csv"])
async def test_chunks_follow_on_to_the_microsecond(client: httpx.AsyncClient, format: str) -> None:
    """Start times a microsecond apart, in both directions across many chunks: each run once."""
    runs = [
        layer_run(id=f"us-{i:02d}", started_at=BASE_TIME.replace(microsecond=(i * 7) % 30 + 1))
        for i in range(30)
    ]
    runs += [
        layer_run(id=f"us-tie-{i}", started_at=BASE_TIME.replace(microsecond=5)) for i in range(4)
    ]
    assert (await client.post("/runs/batch", json={"runs": runs})).status_code == 200
    for sort in ("started_at", "-started_at"):
        text = (await _export(client, "/runs/export", format=format, sort=sort)).text
        if format == "csv":
            ids = [row[0] for row in list(csv.reader(io.StringIO(text)))[1:]]
        else:
            ids = [json.loads(line)["id"] for line in text.splitlines()]
        assert ids == _expected_order(runs, "started_at", sort.startswith("-"))

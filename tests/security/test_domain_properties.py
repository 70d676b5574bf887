"""Property: boundary timestamps, huge numbers and lone surrogates through every write endpoint.

Whatever hypothesis sends, the answer is never a 5xx; whatever is accepted reads
back as it was sent. Runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import itertools
import json
import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.factories import layer_run

JSON = {"content-type": "application/json"}
_ids = itertools.count(1)

EDGE_TIMESTAMPS = [
    "0001-01-01T00:00:00Z",
    "0001-01-01T00:00:00+01:00",
    "0003-06-01T00:00:00Z",
    "1969-12-31T23:59:59Z",
    "1999-12-31T23:59:59.999999Z",
    "2000-01-01T00:00:00Z",
    "2000-01-01T00:00:00",
    "2026-01-23T03:00:00-12:00",
    "9999-12-31T23:00:00Z",
    "9999-12-31T23:59:59-01:00",
    "9999-12-31T23:59:59.999999+14:00",
    "not a time",
]
OFFSETS = [UTC, timezone(timedelta(hours=14)), timezone(timedelta(hours=-12)), None]
EDGE_INTEGERS = [
    -(2**63) - 1, -(2**31) - 1, -1, 0, 1, 2**31 - 2, 2**31 - 1, 2**31, 2**32,
    2**63 - 1, 2**63, 2**64, 10**30,
]  # fmt: skip
SURROGATE_TEXT = ["\ud800", "a\udfffb", "\udc00\ud800", "\x00", "\U0001f600", "", " ", "é"]


def _now_relative(days: float) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).isoformat()


timestamps = st.one_of(
    st.sampled_from(EDGE_TIMESTAMPS),
    st.builds(
        lambda moment, tz: moment.replace(tzinfo=tz).isoformat(),
        st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59)),
        st.sampled_from(OFFSETS),
    ),
    # Around the edges of the stored range: now + 1 day, and 2000-01-01.
    st.floats(min_value=0.9, max_value=1.1).map(_now_relative),
    st.floats(min_value=-9800, max_value=-9600).map(_now_relative),
)
integers = st.one_of(st.sampled_from(EDGE_INTEGERS), st.integers())
floats = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([1e6, 1e6 * 1.000001, 1e9, 1e15, 1e16, 1e308, -0.0, 5e-324]),
)
texts = st.one_of(
    st.sampled_from(SURROGATE_TEXT),
    st.text(max_size=20),
    st.text(max_size=5).map(lambda s: s + "\ud800"),
)
scalars = st.one_of(st.none(), st.booleans(), integers, floats, texts)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=8,
)
json_objects = st.dictionaries(texts, json_values, max_size=4)
names = st.sampled_from(["layer-a", "é-layer", "\U0001f600", "x" * 200])


def optional(**fields: Any) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({}, optional=fields)


def one_field_at_an_edge(
    base: st.SearchStrategy[dict[str, Any]], edges: dict[str, st.SearchStrategy[Any]]
) -> st.SearchStrategy[dict[str, Any]]:
    """A valid body with none, one or two of its fields replaced by an edge value."""

    @st.composite
    def build(draw: st.DrawFn) -> dict[str, Any]:
        body = dict(draw(base))
        for name in draw(st.lists(st.sampled_from(sorted(edges)), max_size=2, unique=True)):
            body[name] = draw(edges[name])
        return body

    return build()


@st.composite
def valid_layer_runs(draw: st.DrawFn) -> dict[str, Any]:
    started = datetime.now(UTC) - timedelta(seconds=draw(st.integers(0, 26 * 365 * 86400)))
    body: dict[str, Any] = {
        "layer_name": draw(names),
        "layer_hash": draw(names),
        "status": draw(st.sampled_from(["running", "success", "failed", "partial", "dry"])),
        "started_at": started.isoformat(),
        "tokens_input": draw(st.integers(0, 2**30)),
        "tokens_output": draw(st.integers(0, 2**30)),
        "estimated_cost_usd": draw(st.floats(0, 1e6)),
        "errors": draw(st.lists(st.dictionaries(names, names, max_size=2), max_size=2)),
    }
    if body["status"] != "running":
        duration = draw(st.integers(0, int((datetime.now(UTC) - started).total_seconds())))
        body["completed_at"] = (started + timedelta(seconds=duration)).isoformat()
    return body


LAYER_RUN_EDGES = {
    "layer_name": texts,
    "layer_hash": texts,
    "status": st.sampled_from(["running", "success", "bogus"]),
    "started_at": timestamps,
    "completed_at": timestamps,
    "targets_processed": integers,
    "insights_created": integers,
    "model_name": texts,
    "tokens_input": integers,
    "tokens_output": integers,
    "tokens_total": integers,
    "estimated_cost_usd": floats,
    "errors": st.lists(json_objects, max_size=3),
}
layer_run_bodies = one_field_at_an_edge(valid_layer_runs(), LAYER_RUN_EDGES)
layer_run_updates = one_field_at_an_edge(
    st.fixed_dictionaries({"status": st.sampled_from(["running", "success", "failed", "dry"])}),
    {
        "completed_at": timestamps,
        "targets_matched": integers,
        "tokens_input": integers,
        "tokens_output": integers,
        "estimated_cost_usd": floats,
        "model_provider": texts,
        "errors": st.lists(json_objects, max_size=3),
    },
)
extraction_bodies = one_field_at_an_edge(
    st.fixed_dictionaries(
        {"prompt_id": names, "config_id": names, "document_name": names},
        optional={"expected": st.dictionaries(names, st.integers(-(2**63), 2**63 - 1))},
    ),
    {
        "prompt_id": texts,
        "config_id": texts,
        "document_name": texts,
        "expected": json_objects,
    },
)
extraction_updates = one_field_at_an_edge(
    optional(
        status=st.sampled_from(["running", "completed", "failed"]),
        output=st.dictionaries(names, names, max_size=3),
        metrics=st.dictionaries(names, st.floats(-1e15, 1e15), max_size=3),
        tokens=optional(input=st.integers(0, 2**31 - 1), output=st.integers(0, 2**31 - 1)),
    ),
    {
        "worker_id": texts,
        "lease_seconds": integers,
        "output": json_objects,
        "metrics": st.dictionaries(texts, st.one_of(floats, integers), max_size=3),
        "tokens": optional(input=integers, output=integers),
        "cost_usd": floats,
        "error": texts,
    },
)
claims = one_field_at_an_edge(
    st.fixed_dictionaries({"worker_id": names}),
    {"worker_id": texts, "max_runs": integers, "lease_seconds": integers},
)

PROPERTY_SETTINGS = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def encoded(body: Any) -> bytes:
    # `\uXXXX` escapes keep lone surrogates; NaN and Infinity go out as Python writes them.
    return json.dumps(body, ensure_ascii=True).encode()


async def send(client: httpx.AsyncClient, method: str, path: str, body: Any) -> httpx.Response:
    response = await client.request(method, path, content=encoded(body), headers=JSON)
    assert response.status_code < 500, (method, path, body, response.text[:800])
    if response.status_code >= 400:
        assert response.headers["content-type"] == "application/problem+json"
        assert len(response.json().get("errors") or []) <= 20
    return response


def instant(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def same_json(sent: Any, stored: Any) -> bool:
    """Equal as JSON values (1 and 1.0 are the same number)."""
    if isinstance(sent, float) and isinstance(stored, (int, float)):
        return math.isclose(sent, stored, rel_tol=1e-15) or sent == stored
    return bool(sent == stored)


def assert_layer_run_reads_back(sent: dict[str, Any], stored: dict[str, Any]) -> None:
    for name in ("layer_name", "layer_hash", "status", "model_name", "model_provider"):
        if name in sent:
            assert stored[name] == sent[name], name
    for name in ("targets_processed", "insights_created", "targets_matched", "tokens_input",
                 "tokens_output", "tokens_total"):  # fmt: skip
        if name in sent:
            assert stored[name] == sent[name], name
    if "estimated_cost_usd" in sent:
        assert same_json(sent["estimated_cost_usd"], stored["estimated_cost_usd"])
    if "errors" in sent:
        assert stored["errors"] == sent["errors"]
    for name in ("started_at", "completed_at"):
        if sent.get(name) is not None:
            assert instant(stored[name]) == instant(sent[name]), name
            assert stored[name].endswith("Z")
            assert stored[name][4] == "-"
    if stored["tokens_total"] is not None:
        assert 0 <= stored["tokens_total"] <= 2**31 - 1


@given(body=layer_run_bodies)
@PROPERTY_SETTINGS
async def test_post_runs(client: httpx.AsyncClient, body: dict[str, Any]) -> None:
    body = {**body, "id": f"h-{next(_ids)}"}
    response = await send(client, "POST", "/runs", body)
    if response.status_code in (200, 201):
        stored = (await client.get(f"/runs/{body['id']}")).json()
        assert_layer_run_reads_back(body, stored)
        summary = await client.get("/runs/stats/summary", params={"days": 30})
        assert summary.status_code == 200
        assert (await client.get("/runs", params={"sort": "tokens_total"})).status_code == 200


@given(bodies=st.lists(layer_run_bodies, min_size=1, max_size=3))
@PROPERTY_SETTINGS
async def test_post_runs_batch(client: httpx.AsyncClient, bodies: list[dict[str, Any]]) -> None:
    bodies = [{**body, "id": f"h-{next(_ids)}"} for body in bodies]
    response = await send(client, "POST", "/runs/batch", {"runs": bodies})
    if response.status_code == 200:
        for body in bodies:
            stored = (await client.get(f"/runs/{body['id']}")).json()
            assert_layer_run_reads_back(body, stored)
    else:
        for body in bodies:  # all or nothing
            assert (await client.get(f"/runs/{body['id']}")).status_code == 404


@given(update=layer_run_updates)
@PROPERTY_SETTINGS
async def test_patch_runs(client: httpx.AsyncClient, update: dict[str, Any]) -> None:
    run_id = f"h-{next(_ids)}"
    started = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    created = await client.post(
        "/runs",
        json={"id": run_id, "layer_name": "l", "layer_hash": "h", "status": "running",
              "started_at": started, "tokens_input": 5},
    )  # fmt: skip
    assert created.status_code == 201, created.text
    response = await send(client, "PATCH", f"/runs/{run_id}", update)
    stored = (await client.get(f"/runs/{run_id}")).json()
    if response.status_code == 200:
        assert_layer_run_reads_back(update, stored)
    else:
        assert stored["status"] == "running"


@given(body=extraction_bodies)
@PROPERTY_SETTINGS
async def test_post_extraction_runs(client: httpx.AsyncClient, body: dict[str, Any]) -> None:
    body = {**body, "id": f"h-{next(_ids)}"}
    response = await send(client, "POST", "/extraction-runs", body)
    if response.status_code == 202:
        stored = (await client.get(f"/extraction-runs/{body['id']}")).json()
        for name in ("prompt_id", "config_id", "document_name"):
            assert stored[name] == body[name]
        assert stored["expected"] == body.get("expected")


@given(update=extraction_updates)
@PROPERTY_SETTINGS
async def test_patch_extraction_runs(client: httpx.AsyncClient, update: dict[str, Any]) -> None:
    run_id = f"h-{next(_ids)}"
    created = await client.post(
        "/extraction-runs",
        json={"id": run_id, "prompt_id": "p", "config_id": "c", "document_name": "d"},
    )
    assert created.status_code == 202, created.text
    if update.get("status") in ("completed", "failed"):
        started = await client.patch(f"/extraction-runs/{run_id}", json={"status": "running"})
        assert started.status_code == 200, started.text
    response = await send(client, "PATCH", f"/extraction-runs/{run_id}", update)
    read = await client.get(f"/extraction-runs/{run_id}")
    assert read.status_code == 200, read.text
    if response.status_code == 200:
        stored = read.json()
        if "output" in update:
            assert stored["output"] == update["output"]
        if "error" in update:
            assert stored["error"] == update["error"]
        for name, value in (update.get("metrics") or {}).items():
            assert same_json(value, stored["metrics"][name])
        summary = await client.get("/extraction-runs/stats/summary")
        assert summary.status_code == 200


@given(claim=claims, release=optional(worker_id=texts))
@PROPERTY_SETTINGS
async def test_claim_and_release(
    client: httpx.AsyncClient, claim: dict[str, Any], release: dict[str, Any]
) -> None:
    run_id = f"h-{next(_ids)}"
    created = await client.post(
        "/extraction-runs",
        json={"id": run_id, "prompt_id": "p", "config_id": "c", "document_name": "d"},
    )
    assert created.status_code == 202
    response = await send(client, "POST", "/extraction-runs/claim", claim)
    if response.status_code == 200:
        for run in response.json()["runs"]:
            stored = (await client.get(f"/extraction-runs/{run['id']}")).json()
            assert stored["worker_id"] == claim["worker_id"]
    await send(client, "POST", f"/extraction-runs/{run_id}/release", release)
    assert (await client.get(f"/extraction-runs/{run_id}")).status_code == 200


async def test_json_numbers_beyond_64_bits_are_refused(client: httpx.AsyncClient) -> None:
    """PostgreSQL keeps a JSON number exactly, as a decimal: 1e308 would read back as a
    309-digit integer that no reader of 64-bit numbers takes. Such numbers are refused at
    the edge, in every JSON document; numbers within the bound read back as sent."""
    for huge in (1.7976931348623157e308, 1e19, -1e19, 9.3e18):
        body = {**layer_run(), "errors": [{"message": "x", "value": huge}]}
        response = await send(client, "POST", "/runs", body)
        assert response.status_code == 422, (huge, response.text)
        extraction = {"prompt_id": "p", "config_id": "c", "document_name": "d"}
        response = await send(
            client, "POST", "/extraction-runs", {**extraction, "expected": {"v": huge}}
        )
        assert response.status_code == 422, (huge, response.text)
    for fine in (9.2e18, -9.2e18, 1e18, 1e-300, 0.1):
        body = {**layer_run(), "errors": [{"message": "x", "value": fine}]}
        assert (await send(client, "POST", "/runs", body)).status_code == 201
        stored = (await client.get(f"/runs/{body['id']}")).json()
        assert same_json(fine, stored["errors"][0]["value"]), (fine, stored["errors"])

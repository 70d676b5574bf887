"""`GET /runs/errors` and `GET /runs?error_fingerprint=` against groups counted here by hand.

Errors are made from a few known message shapes with random numbers and ids;
the expected group of each error is its shape, known without the service's
fingerprint code, and every count is recomputed in plain Python.
"""

from __future__ import annotations

import random
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from runwatch.db.engine import Engines
from runwatch.services.retention import purge_layer_runs
from tests.factories import iso, layer_run

# (type, template the API must report, a maker of a concrete message)
SHAPES: list[tuple[str, str, Any]] = [
    ("TimeoutError", "Timeout after <num>s on ticket-<num>",
     lambda r: f"Timeout after {r.randint(1, 99)}s on ticket-{r.randint(1, 9999)}"),
    ("RateLimitError", "Rate limited (<num>) for request <uuid>",
     lambda r: f"Rate limited ({r.choice([429, 503])}) for request {_uuid(r)}"),
    ("ValidationError", "Output missing <str> at item <num>",
     lambda r: f"Output missing '{r.choice(['evidence', 'subject'])}' at item {r.randint(0, 50)}"),
    ("TimeoutError", "Provider gave up after <num> tries",
     lambda r: f"Provider gave up after {r.randint(2, 5)} tries"),
]  # fmt: skip


def _uuid(r: random.Random) -> uuid.UUID:
    return uuid.UUID(int=r.getrandbits(128))


LAYERS = ("alpha", "beta", "gamma")
HASHES = ("h1", "h2")
MODELS = ("m-small", "m-large")


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def make_runs(rng: random.Random, now: datetime, count: int) -> list[dict[str, Any]]:
    bodies = []
    for i in range(count):
        started = now - timedelta(seconds=rng.uniform(60, 12 * 86400))
        status = rng.choice(["failed", "partial", "partial", "success", "running"])
        errors = None
        if status in ("failed", "partial", "running") and rng.random() < 0.9:
            errors = []
            for _ in range(rng.randint(1, 4)):
                kind, _shape, make = rng.choice(SHAPES)
                errors.append({"type": kind, "message": make(rng), "target": f"t-{i}"})
        bodies.append(
            layer_run(
                id=f"err-{i:04d}",
                started_at=started,
                status=status,
                duration=rng.uniform(1, 50),
                layer_name=rng.choice(LAYERS),
                layer_hash=rng.choice(HASHES),
                model_name=rng.choice(MODELS),
                errors=errors,
            )
        )
    return bodies


def expected_groups(
    bodies: list[dict[str, Any]],
    since: datetime,
    until: datetime | None,
    *,
    end: datetime,
    **match: Any,
) -> dict[str, dict[str, Any]]:
    """Groups keyed by template, computed from the bodies alone."""
    groups: dict[str, dict[str, Any]] = {}
    for b in bodies:
        started = _at(b["started_at"])
        if started < since or (until is not None and started >= until):
            continue
        if any(b[k] not in (v if isinstance(v, tuple) else (v,)) for k, v in match.items()):
            continue
        per_run: dict[str, int] = defaultdict(int)
        for error in b.get("errors") or ():
            shape = next(s for k, s, _ in SHAPES if k == error["type"] and _fits(s, error))
            per_run[shape] += 1
        for shape, n in per_run.items():
            g = groups.setdefault(
                shape,
                {"errors": 0, "runs": 0, "layers": defaultdict(int), "starts": [],
                 "days": defaultdict(lambda: [0, 0])},
            )  # fmt: skip
            g["errors"] += n
            g["runs"] += 1
            g["layers"][b["layer_name"]] += 1
            g["starts"].append((started, b["id"]))
            day = started.date().isoformat()
            g["days"][day][0] += n
            g["days"][day][1] += 1
    for g in groups.values():
        g["first_seen"] = min(s for s, _ in g["starts"])
        g["last_seen"] = max(s for s, _ in g["starts"])
        g["sample_run_ids"] = [i for _, i in sorted(g["starts"], reverse=True)[:5]]
        first, last = since.date(), max((until or end) - timedelta(microseconds=1), g["last_seen"])
        g["day_list"] = []
        day = first
        while day <= last.date():
            counts = g["days"].get(day.isoformat(), [0, 0])
            g["day_list"].append({"date": day.isoformat(), "errors": counts[0], "runs": counts[1]})
            day += timedelta(days=1)
    return groups


def _fits(shape: str, error: dict[str, Any]) -> bool:
    head = shape.split("<")[0]
    return error["message"].startswith(head)


def assert_groups(answer: dict[str, Any], expected: dict[str, dict[str, Any]]) -> None:
    got = {g["message"]: g for g in answer["groups"]}
    assert set(got) == set(expected)
    assert answer["total_groups"] == len(expected)
    assert answer["total_errors"] == sum(g["errors"] for g in expected.values())
    for shape, want in expected.items():
        g = got[shape]
        assert g["errors"] == want["errors"], shape
        assert g["runs"] == want["runs"], shape
        assert g["layers"] == dict(want["layers"]), shape
        assert _at(g["first_seen"]) == want["first_seen"], shape
        assert _at(g["last_seen"]) == want["last_seen"], shape
        assert g["sample_run_ids"] == want["sample_run_ids"], shape
        assert g["days"] == want["day_list"], shape
        assert g["type"] == next(k for k, s, _ in SHAPES if s == shape)


async def fetch_all(client: httpx.AsyncClient, params: dict[str, Any]) -> dict[str, Any]:
    response = await client.get("/runs/errors", params={**params, "limit": 100})
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture
async def world(client: httpx.AsyncClient) -> dict[str, Any]:
    """Runs recorded through the API, some then completed, updated or deleted."""
    rng = random.Random(7)
    now = datetime.now(UTC)
    bodies = make_runs(rng, now, 160)
    response = await client.post("/runs/batch", json={"runs": bodies[:100]})
    assert response.status_code == 200, response.text
    for body in bodies[100:]:
        assert (await client.post("/runs", json=body)).status_code == 201
    # Running runs: some fail with new errors, some get their errors replaced.
    for body in [b for b in bodies if b["status"] == "running"][:12]:
        kind, _s, make = SHAPES[rng.randrange(len(SHAPES))]
        new_errors = [{"type": kind, "message": make(rng)}]
        change: dict[str, Any] = {"errors": new_errors}
        if rng.random() < 0.5:
            change["status"] = "failed"
            change["completed_at"] = iso(_at(body["started_at"]) + timedelta(seconds=5))
        response = await client.patch(f"/runs/{body['id']}", json=change)
        assert response.status_code == 200, response.text
        body.update(change)
    for body in bodies[::17]:
        assert (await client.delete(f"/runs/{body['id']}")).status_code == 204
    kept = [b for i, b in enumerate(bodies) if i % 17]
    return {"bodies": kept, "now": now}


async def test_groups_match_an_independent_count(
    client: httpx.AsyncClient, world: dict[str, Any]
) -> None:
    bodies, now = world["bodies"], world["now"]
    answer = await fetch_all(client, {})
    since = _at(answer["since"])
    asked = datetime.now(UTC) - timedelta(days=7)
    assert now - timedelta(days=7, seconds=11) <= since <= asked
    assert answer["until"] is None
    assert_groups(answer, expected_groups(bodies, since, None, end=datetime.now(UTC)))
    counts = [g["errors"] for g in answer["groups"]]
    assert counts == sorted(counts, reverse=True)

    # Explicit bounds that cut through hours, and every filter.
    since = now - timedelta(days=9, minutes=17, seconds=3)
    until = now - timedelta(days=1, minutes=41)
    window = {"since": iso(since), "until": iso(until)}
    assert_groups(await fetch_all(client, window), expected_groups(bodies, since, until, end=now))
    for extra, match in [
        ({"layer_name": "beta"}, {"layer_name": "beta"}),
        ({"status": "failed,running"}, {"status": ("failed", "running")}),
        ({"model_name": "m-large"}, {"model_name": "m-large"}),
        ({"layer_hash": "h2"}, {"layer_hash": "h2"}),
    ]:
        answer = await fetch_all(client, {**window, **extra})
        assert_groups(answer, expected_groups(bodies, since, until, end=now, **match))
    answer = await fetch_all(client, {"days": 3, "layer_name": "alpha"})
    since = _at(answer["since"])
    assert_groups(
        answer, expected_groups(bodies, since, None, end=datetime.now(UTC), layer_name="alpha")
    )


@pytest.mark.parametrize("sort", ["errors", "runs", "last_seen"])
async def test_keyset_pages_cover_every_group_once_in_order(
    client: httpx.AsyncClient, world: dict[str, Any], sort: str
) -> None:
    params = {"days": 12, "sort": sort}
    whole = await fetch_all(client, params)
    seen: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {**params, "limit": 1, **({"cursor": cursor} if cursor else {})}
        response = await client.get("/runs/errors", params=query)
        assert response.status_code == 200, response.text
        page = response.json()
        seen += page["groups"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [g["fingerprint"] for g in seen] == [g["fingerprint"] for g in whole["groups"]]
    keys = [(g[sort], g["fingerprint"]) for g in seen]
    assert keys == sorted(keys, reverse=True)
    assert len(seen) == len(SHAPES)


async def test_runs_of_one_group(client: httpx.AsyncClient, world: dict[str, Any]) -> None:
    bodies = world["bodies"]
    answer = await fetch_all(client, {"days": 30})
    for group in answer["groups"]:
        shape = group["message"]
        want = sorted(
            (_at(b["started_at"]), b["id"])
            for b in bodies
            if any(_fits(shape, e) and e["type"] == group["type"] for e in b.get("errors") or ())
        )
        ids: list[str] = []
        cursor = None
        while True:
            query = {"error_fingerprint": group["fingerprint"], "limit": 7}
            response = await client.get(
                "/runs", params={**query, **({"cursor": cursor} if cursor else {})}
            )
            assert response.status_code == 200, response.text
            page = response.json()
            assert page["total"] == len(want)
            ids += [r["id"] for r in page["runs"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert ids == [i for _, i in reversed(want)]
        response = await client.get(
            "/runs", params={"error_fingerprint": group["fingerprint"], "layer_name": "gamma"}
        )
        gamma = [
            i for s, i in want if any(b["id"] == i and b["layer_name"] == "gamma" for b in bodies)
        ]
        assert response.json()["total"] == len(gamma)


async def test_a_purge_changes_no_answer(
    client: httpx.AsyncClient, engines: Engines, world: dict[str, Any]
) -> None:
    now = world["now"]
    queries = [
        {"days": 30},
        {"days": 7, "sort": "last_seen"},
        {"since": iso(now - timedelta(days=11, hours=5, minutes=3)), "until": iso(now)},
        {"days": 12, "layer_name": "alpha", "status": "failed"},
    ]
    before = [await fetch_all(client, q) for q in queries]
    horizon = (now - timedelta(days=4)).replace(hour=0, minute=0, second=0, microsecond=0)
    deleted = await purge_layer_runs(engines.write, before=horizon, batch_size=25)
    assert deleted > 0
    after = [await fetch_all(client, q) for q in queries]
    for old, new in zip(before, after, strict=True):
        old.pop("since"), new.pop("since")
        assert new == old


async def test_bad_parameters_are_422(client: httpx.AsyncClient) -> None:
    for params in [
        {"sort": "fingerprint"},
        {"days": 0},
        {"days": 400},
        {"days": 3, "since": "2026-01-01T00:00:00Z"},
        {"since": "2020-01-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"},
        {"limit": 0},
        {"limit": 1000},
        {"cursor": "not-a-cursor"},
        {"status": "broken"},
        {"unknown": "1"},
    ]:
        response = await client.get("/runs/errors", params=params)
        assert response.status_code == 422, (params, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
    response = await client.get("/runs", params={"error_fingerprint": "XYZ"})
    assert response.status_code == 422
    cursor = (await client.get("/runs/errors", params={"limit": 1})).json()["next_cursor"]
    assert cursor is None  # no groups yet

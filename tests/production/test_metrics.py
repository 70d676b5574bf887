"""`/metrics` is scraped and parsed with the Prometheus text parser."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.factories import layer_run


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def value(parsed: dict, name: str, **labels: str) -> float:
    return parsed.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_metrics_count_requests_by_route_template(client: httpx.AsyncClient) -> None:
    before = samples((await client.get("/metrics")).text)
    body = layer_run(status="failed")
    assert (await client.post("/runs", json=body)).status_code == 201
    for _ in range(3):
        assert (await client.get(f"/runs/{body['id']}")).status_code == 200
    assert (await client.get("/runs/nope")).status_code == 404

    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    after = samples(response.text)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    route = "/runs/{run_id}"
    assert delta("runwatch_http_requests_total", method="GET", route=route, status="200") == 3
    assert delta("runwatch_http_requests_total", method="GET", route=route, status="404") == 1
    assert (
        delta(
            "runwatch_http_request_duration_seconds_count", method="GET", route=route, status="200"
        )
        == 3
    )
    assert delta("runwatch_runs_recorded_total", kind="layer", status="failed") == 1
    # The first read, the 404, and the read-back inside the create; the other
    # two reads of unchanged data are answered from the encoded-answer cache.
    assert delta("runwatch_db_query_duration_seconds_count", query="get_layer_run") == 3
    # Every connection taken was given back, and nobody is waiting.
    for engine in ("primary", "write"):
        for gauge in ("runwatch_db_pool_in_use", "runwatch_db_pool_waiting"):
            key = (gauge, (("engine", engine),))
            assert key in after, f"{gauge} for {engine} is not exported"
            assert after[key] == 0


async def test_metrics_count_extraction_worker_events(client: httpx.AsyncClient) -> None:
    before = samples((await client.get("/metrics")).text)
    for n in range(2):
        created = await client.post(
            "/extraction-runs",
            json={"prompt_id": "p", "config_id": "c", "document_name": f"doc-{n}"},
        )
        assert created.status_code == 202
    claim = await client.post(
        "/extraction-runs/claim", json={"worker_id": "w1", "max_runs": 5, "lease_seconds": 60}
    )
    runs = claim.json()["runs"]
    assert len(runs) == 2
    first, second = (run["id"] for run in runs)
    extend = await client.patch(
        f"/extraction-runs/{first}",
        json={"status": "running", "worker_id": "w1", "lease_seconds": 120},
    )
    assert extend.status_code == 200
    done = await client.patch(
        f"/extraction-runs/{first}",
        json={"status": "completed", "worker_id": "w1", "output": {"total": 1}},
    )
    assert done.status_code == 200
    released = await client.post(f"/extraction-runs/{second}/release", json={"worker_id": "w1"})
    assert released.status_code == 200

    after = samples((await client.get("/metrics")).text)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    events = "runwatch_extraction_worker_events_total"
    assert delta(events, event="claimed") == 2
    assert delta(events, event="lease_extended") == 1
    assert delta(events, event="completed") == 1
    assert delta(events, event="released") == 1
    assert delta("runwatch_runs_recorded_total", kind="extraction", status="pending") == 2
    assert delta("runwatch_runs_recorded_total", kind="extraction", status="completed") == 1


async def test_methods_outside_the_standard_ones_share_one_label(client: httpx.AsyncClient) -> None:
    """A client cannot add metric series by inventing methods: they count as `other`."""
    before = samples((await client.get("/metrics")).text)
    for method in ("FOOBAR", "BREW", "X-ANYTHING"):
        assert (await client.request(method, "/runs")).status_code == 405
    after = samples((await client.get("/metrics")).text)
    methods = {
        dict(labels)["method"] for name, labels in after if name == "runwatch_http_requests_total"
    }
    assert not methods & {"FOOBAR", "BREW", "X-ANYTHING"}
    key = (
        "runwatch_http_requests_total",
        (("method", "other"), ("route", "/runs"), ("status", "405")),
    )
    assert after.get(key, 0) - before.get(key, 0) == 3

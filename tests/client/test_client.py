"""`runwatch.client` against a live server on both dialects: models, errors, paging, retries."""

from __future__ import annotations

import inspect
import json
import socket
from datetime import timedelta
from typing import Any

import httpx
import pytest

from runwatch import client as client_module
from runwatch.client import (
    AsyncRunwatchClient,
    ConflictError,
    ForbiddenError,
    InvalidArgumentError,
    NotFoundError,
    RetryPolicy,
    RunwatchClient,
    RunwatchConnectionError,
    RunwatchError,
    ServerError,
    TemporaryError,
    UnauthorizedError,
    UnavailableError,
    async_client,
    sync_client,
)
from runwatch.config import Settings
from runwatch.db.engine import Engines
from runwatch.queries.api_keys import create_api_key
from runwatch.schemas.layer_runs import LayerRunDetail, LayerRunSummary
from tests.client.conftest import LiveServer
from tests.factories import BASE_TIME, layer_run


def _dead_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_configuration_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNWATCH_URL", "http://runwatch.example:9000/")
    monkeypatch.setenv("RUNWATCH_API_KEY", "rw_from_env")
    with RunwatchClient() as client:
        assert client.url == "http://runwatch.example:9000"
        assert client._headers["Authorization"] == "Bearer rw_from_env"
    with RunwatchClient("http://other:1", api_key="rw_arg") as client:
        assert client.url == "http://other:1"
        assert client._headers["Authorization"] == "Bearer rw_arg"
    monkeypatch.delenv("RUNWATCH_URL")
    monkeypatch.delenv("RUNWATCH_API_KEY")
    with RunwatchClient() as client:
        assert client.url == "http://127.0.0.1:8000"
        assert "Authorization" not in client._headers
    # A URL without a scheme cannot work: a plain error at once, not a retried one.
    with RunwatchClient("localhost:8000") as client:
        with pytest.raises(RunwatchError, match="unsupported protocol") as bad:
            client.health()
        assert not isinstance(bad.value, TemporaryError)


def test_models_paging_and_typed_errors(live_server: LiveServer) -> None:
    bodies = [
        layer_run(
            id=f"c-{i:03d}",
            layer_name="alpha" if i % 3 else "beta",
            status="failed" if i % 4 == 0 else "success",
            started_at=BASE_TIME + timedelta(minutes=i % 17),
        )
        for i in range(137)
    ]
    requests: list[str] = []
    http = httpx.Client(
        base_url=live_server.url,
        event_hooks={"request": [lambda r: requests.append(f"{r.method} {r.url.path}")]},
    )
    with RunwatchClient(http_client=http) as client:
        result = client.create_runs(bodies, batch_size=50)
        assert (result.created, result.already_present) == (137, 0)
        assert requests.count("POST /runs/batch") == 3
        again = client.create_runs(bodies[:60], batch_size=50)
        assert (again.created, again.already_present) == (0, 60)

        detail = client.get_run("c-005")
        assert isinstance(detail, LayerRunDetail)
        assert detail.started_at == BASE_TIME + timedelta(minutes=5)
        assert detail.tokens_total == 15000

        # iter_runs follows next_cursor; the result is computed here independently.
        got = list(client.iter_runs(layer_name="alpha", status="success", page_size=7))
        assert all(isinstance(r, LayerRunSummary) for r in got)
        expected = sorted(
            (b for b in bodies if b["layer_name"] == "alpha" and b["status"] == "success"),
            key=lambda b: (b["started_at"], b["id"]),
            reverse=True,
        )
        assert [r.id for r in got] == [b["id"] for b in expected]
        assert len(got) > 7 * 3
        several = client.list_runs(status=["failed", "success"], limit=1)
        assert several.total == 137

        with pytest.raises(NotFoundError) as not_found:
            client.get_run("missing")
        assert not_found.value.problem.code == "not_found"
        assert "missing" in not_found.value.detail
        with pytest.raises(InvalidArgumentError) as invalid:
            client.list_runs(status="sideways")
        assert invalid.value.status == 422
        assert invalid.value.problem.errors is not None
        assert invalid.value.problem.errors[0].loc == ["query", "status"]
        with pytest.raises(ConflictError) as conflict:
            client.create_run({**bodies[0], "insights_created": 99})
        assert conflict.value.problem.code == "conflict"
        with pytest.raises(InvalidArgumentError):
            client.create_run(layer_name="x", layer_hash="y", status="bogus", started_at=BASE_TIME)

        done = client.create_run(
            layer_name="x", layer_hash="y", status="running", started_at=BASE_TIME
        )
        assert done.id  # made by the client
        assert client.update_run(done.id, status="partial").status == "partial"
        client.delete_run(done.id)
        with pytest.raises(NotFoundError):
            client.delete_run(done.id)


def test_record_run_completes_or_fails_with_the_exception(live_server: LiveServer) -> None:
    with RunwatchClient(live_server.url) as client:
        with client.record_run(layer_name="l", layer_hash="h", model_name="m") as run:
            assert client.get_run(run.id).status == "running"
            run.targets_processed = 4
            run.insights_created = 2
            run.status = "partial"
        stored = client.get_run(run.id)
        assert (stored.status, stored.targets_processed, stored.insights_created) == (
            "partial",
            4,
            2,
        )
        assert stored.model_name == "m"
        assert stored.completed_at is not None

        recorded = []

        def work() -> None:
            with client.record_run(layer_name="l", layer_hash="h") as run:
                recorded.append(run)
                run.errors.append({"target": "t-1", "message": "skipped"})
                raise KeyError("target-7")

        with pytest.raises(KeyError, match="target-7"):  # the exception goes on
            work()
        run = recorded[0]
        stored = client.get_run(run.id)
        assert stored.status == "failed"
        assert stored.errors is not None
        assert stored.errors[0] == {"target": "t-1", "message": "skipped"}
        assert stored.errors[1]["type"] == "KeyError"
        assert stored.errors[1]["message"] == "'target-7'"
        assert "raise KeyError" in stored.errors[1]["traceback"]


async def test_async_client(live_server: LiveServer) -> None:
    async with AsyncRunwatchClient(live_server.url) as client:
        recorded = []

        async def work() -> None:
            async with client.record_run(layer_name="async", layer_hash="h") as run:
                recorded.append(run)
                run.targets_matched = 3
                _ = 1 / 0

        with pytest.raises(ZeroDivisionError):
            await work()
        run = recorded[0]
        failed = await client.get_run(run.id)
        assert (failed.status, failed.targets_matched) == ("failed", 3)
        assert failed.errors is not None
        assert failed.errors[-1]["type"] == "ZeroDivisionError"

        await client.create_runs([layer_run(layer_name="async") for _ in range(30)])
        ids = [r.id async for r in client.iter_runs(layer_name="async", page_size=4)]
        assert len(ids) == len(set(ids)) == 31
        exported = [r.id async for r in client.iter_export_runs(layer_name="async")]
        assert exported == ids
        with pytest.raises(InvalidArgumentError):
            await client.runs_summary(days=31)
        summary = await client.runs_summary(days=1, layer_name="async")
        assert summary.total_runs == 1  # the recorded run; the others started in January


async def test_keys_refused_are_typed(settings: Settings, engines: Engines) -> None:
    async with engines.write.begin() as conn:
        read_key = (await create_api_key(conn, name="reader", scope="read")).token
        write_key = (await create_api_key(conn, name="writer", scope="write")).token
    server = LiveServer(settings.model_copy(update={"api_key_cache_seconds": 0}))
    server.start()
    try:
        with RunwatchClient(server.url) as anonymous, pytest.raises(UnauthorizedError):
            anonymous.list_runs()
        with RunwatchClient(server.url, api_key=read_key) as reader:
            assert reader.list_runs().total == 0
            with pytest.raises(ForbiddenError) as forbidden:
                reader.create_run(layer_run())
            assert forbidden.value.problem.code == "forbidden"
        with RunwatchClient(server.url, api_key=write_key) as writer:
            assert writer.create_run(layer_run(id="keyed")).id == "keyed"
    finally:
        server.stop()


def test_connection_errors_are_retried_then_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    waits: list[float] = []
    monkeypatch.setattr(sync_client.time, "sleep", waits.append)
    policy = RetryPolicy(retries=5, backoff=0.5, max_delay=3.0)
    client = RunwatchClient(_dead_url(), retry=policy)
    with client, pytest.raises(RunwatchConnectionError) as failure:
        client.health()
    assert isinstance(failure.value.__cause__, httpx.ConnectError)
    assert waits == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert "cannot reach" in client_module.describe(failure.value)


def _scripted(answers: list[httpx.Response | Exception], seen: list[httpx.Request]) -> Any:
    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    return handle


def _problem(status: int, code: str, **headers: str) -> httpx.Response:
    body = {"type": f"urn:runwatch:problem:{code}", "title": code, "status": status}
    body |= {"detail": f"{code} now", "code": code}
    return httpx.Response(
        status, headers={"content-type": "application/problem+json", **headers}, json=body
    )


def test_503_honours_retry_after_within_the_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    waits: list[float] = []
    monkeypatch.setattr(sync_client.time, "sleep", waits.append)
    seen: list[httpx.Request] = []
    answers: list[httpx.Response | Exception] = [
        _problem(503, "unavailable", **{"Retry-After": "2"}),
        _problem(503, "unavailable", **{"Retry-After": "3600"}),
        httpx.ConnectError("refused"),
        httpx.Response(502, text="<html>bad gateway</html>"),
        httpx.Response(200, json={"status": "ok"}),
    ]
    transport = httpx.MockTransport(_scripted(answers, seen))
    policy = RetryPolicy(retries=4, backoff=0.25, max_delay=60.0)
    with RunwatchClient("http://t", retry=policy, transport=transport) as client:
        assert client.health() == {"status": "ok"}
    assert waits == [2.0, 60.0, 1.0, 2.0]  # Retry-After, capped; then 0.25 doubling
    assert len(seen) == 5

    # Out of retries: the last error, with its problem body and Retry-After.
    waits.clear()
    answers = [_problem(503, "unavailable", **{"Retry-After": "7"}) for _ in range(3)]
    transport = httpx.MockTransport(_scripted(answers, seen))
    client = RunwatchClient("http://t", retry=RetryPolicy(retries=2), transport=transport)
    with client, pytest.raises(UnavailableError) as unavailable:
        client.health()
    assert unavailable.value.problem.detail == "unavailable now"
    assert unavailable.value.retry_after == 7.0
    assert waits == [7.0, 7.0]

    # Other errors are not retried; a body that is not a problem still gives a typed error.
    answers = [httpx.Response(500, text="oops")]
    transport = httpx.MockTransport(_scripted(answers, seen))
    client = RunwatchClient("http://t", transport=transport)
    with client, pytest.raises(ServerError) as server_error:
        client.health()
    assert server_error.value.problem.detail == "oops"
    assert server_error.value.problem.code == "internal"


async def test_async_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    waits: list[float] = []

    async def no_sleep(delay: float) -> None:
        waits.append(delay)

    monkeypatch.setattr(async_client.anyio, "sleep", no_sleep)
    seen: list[httpx.Request] = []
    answers: list[httpx.Response | Exception] = [
        httpx.ReadTimeout("slow"),
        _problem(503, "unavailable", **{"Retry-After": "1"}),
        httpx.Response(201, json=json.loads(json.dumps(_detail()))),
    ]
    transport = httpx.MockTransport(_scripted(answers, seen))
    async with AsyncRunwatchClient("http://t", transport=transport) as client:
        run = await client.create_run(layer_run())
    assert run.id == "r1"
    assert waits == [0.5, 1.0]
    # Every try sent the same client-made id, so a retry cannot store the run twice.
    ids = {json.loads(request.content)["id"] for request in seen}
    assert len(ids) == 1


def _detail() -> dict[str, Any]:
    return {
        "id": "r1", "layer_name": "l", "status": "running", "started_at": "2026-01-01T00:00:00Z",
        "completed_at": None, "duration_seconds": None, "targets_processed": 0,
        "insights_created": 0, "tokens_total": None, "estimated_cost_usd": None,
        "model_name": None, "layer_hash": "h", "targets_matched": 0, "targets_skipped": 0,
        "model_profile": None, "model_provider": None, "tokens_input": None,
        "tokens_output": None, "errors": None,
    }  # fmt: skip


def test_every_name_of_the_client_is_importable_from_runwatch_client() -> None:
    names = {
        "APIError", "AsyncRunwatchClient", "ConflictError", "ErrorGroupFilters",
        "ExtractionRunFilters", "ForbiddenError", "InvalidArgumentError", "LayerRunFilters",
        "LayerRunListFilters", "NotFoundError", "PayloadTooLargeError", "RecordedRun",
        "RetryPolicy", "RunwatchClient", "RunwatchConnectionError", "RunwatchError",
        "ServerError", "TemporaryError", "UnauthorizedError", "UnavailableError", "describe",
        "error_for", "DEFAULT_URL", "DEFAULT_TIMEOUT", "RETRY_EXCEPTIONS", "ExportFormat",
    }  # fmt: skip
    assert names <= set(client_module.__all__)
    for name in names:
        assert getattr(client_module, name) is not None, name


def test_both_clients_have_the_same_methods() -> None:
    def public(cls: type) -> set[str]:
        return {name for name in dir(cls) if not name.startswith("_")}

    assert public(RunwatchClient) - {"close"} == public(AsyncRunwatchClient) - {"aclose"}
    # A method looked up on its class takes the client first, as any method does.
    assert list(inspect.signature(RunwatchClient.get_run).parameters) == ["self", "run_id"]
    assert RunwatchClient.get_run.__doc__ == AsyncRunwatchClient.get_run.__doc__
    with RunwatchClient("http://t", transport=httpx.MockTransport(_echo_path)) as client:
        assert RunwatchClient.health(client) == {"path": "/healthz"}
        assert client.health is client.health  # bound once per client


def _echo_path(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={"path": request.url.path})


async def test_async_batches_raise_the_error_itself(live_server: LiveServer) -> None:
    async with AsyncRunwatchClient(live_server.url) as client:
        await client.create_run(layer_run(id="taken"))
        # One batch after another: the conflict, as the blocking client raises it.
        bodies = [layer_run(id=f"b-{i}") for i in range(5)] + [
            layer_run(id="taken", insights_created=99)
        ]
        with pytest.raises(ConflictError):
            await client.create_runs(bodies, batch_size=5)
        assert (await client.get_run("b-4")).id == "b-4"  # the first batch was stored

        # Concurrent creations: one invalid run fails the call with its own error.
        runs = [{"prompt_id": "p", "config_id": "c", "document_name": f"d-{i}"} for i in range(6)]
        runs[3] = {"prompt_id": "p", "config_id": "c"}
        with pytest.raises(InvalidArgumentError) as invalid:
            await client.create_extraction_runs(runs, concurrency=3)
        assert invalid.value.status == 422
        ok = await client.create_extraction_runs(runs[:3] + runs[4:], concurrency=2)
        assert [(await client.get_extraction_run(a.run_id)).document_name for a in ok] == [
            "d-0", "d-1", "d-2", "d-4", "d-5",
        ]  # fmt: skip

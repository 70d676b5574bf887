"""The worker loop against the real API on both dialects: executors, scoring, failures, stops."""

from __future__ import annotations

import asyncio
import json
import sys
import textwrap
from pathlib import Path
from typing import Any

import httpx
import pytest

from runwatch.app import create_app
from runwatch.config import Settings
from runwatch.db.engine import Engines
from runwatch.queries.api_keys import create_api_key
from runwatch.worker import (
    ExecutionError,
    ExtractionResult,
    Worker,
    as_result,
    command_executor,
    load_callable,
    make_client,
    python_executor,
)

EXPECTED = {"vendor": "ACME", "total": 120.0, "lines": [{"sku": "A"}, {"sku": "B"}]}


def extract(run: dict[str, Any]) -> Any:
    """A stand-in extractor: what it returns depends on the document's name."""
    name = run["document_name"]
    if name == "broken.pdf":
        raise ValueError("unreadable page 3")
    if name == "scored.pdf":
        return ExtractionResult(
            output={"vendor": "ACME"},
            metrics={"f1": 0.42},
            tokens={"input": 900, "output": 120},
            cost_usd=0.0031,
        )
    if name == "wrapped.pdf":
        return {"output": {"vendor": "ACME", "total": 120}, "cost_usd": 0.002}
    return {"vendor": "ACME", "total": 125.0, "lines": [{"sku": "A"}]}


async def extract_async(run: dict[str, Any]) -> dict[str, Any]:
    await asyncio.sleep(0)
    return {"document": run["document_name"], "attempt": run["attempts"]}


async def create(client: httpx.AsyncClient, document: str, **extra: Any) -> str:
    response = await client.post(
        "/extraction-runs",
        json={"prompt_id": "p", "config_id": "c", "document_name": document, **extra},
    )
    assert response.status_code == 202, response.text
    return response.json()["run_id"]


async def get(client: httpx.AsyncClient, run_id: str) -> dict[str, Any]:
    return (await client.get(f"/extraction-runs/{run_id}")).json()


async def test_python_executor_results_scores_and_failures(client: httpx.AsyncClient) -> None:
    plain = await create(client, "plain.pdf", expected=EXPECTED)
    broken = await create(client, "broken.pdf", expected=EXPECTED)
    scored = await create(client, "scored.pdf", expected=EXPECTED)
    wrapped = await create(client, "wrapped.pdf")
    worker = Worker(
        client,
        python_executor(load_callable("tests.test_worker:extract")),
        worker_id="test-worker",
        batch=3,
        exit_when_idle=True,
    )
    assert await worker.run() == 4
    assert (worker.completed, worker.failed) == (3, 1)

    run = await get(client, plain)
    assert run["status"] == "completed"
    assert run["worker_id"] == "test-worker"
    # vendor and lines.0.sku right of 3 predicted; 4 expected: F1 = 2PR / (P + R) = 4/7.
    assert run["metrics"]["precision"] == pytest.approx(2 / 3)
    assert run["metrics"]["recall"] == pytest.approx(2 / 4)
    assert run["metrics"]["f1"] == pytest.approx(4 / 7)

    run = await get(client, broken)
    assert run["status"] == "failed"
    assert run["error"] == "ValueError: unreadable page 3"

    run = await get(client, scored)
    assert run["metrics"]["f1"] == 0.42  # reported metrics are kept, not rescored
    assert run["tokens"] == {"input": 900, "output": 120}
    assert run["cost_usd"] == 0.0031

    run = await get(client, wrapped)
    assert run["output"] == {"vendor": "ACME", "total": 120}
    assert run["cost_usd"] == 0.002
    assert set(run["metrics"]) == {"latency_ms"}


async def test_async_executor_and_max_runs(client: httpx.AsyncClient) -> None:
    ids = [await create(client, f"doc{i}.pdf") for i in range(3)]
    worker = Worker(client, python_executor(extract_async), batch=1, max_runs=2)
    assert await worker.run() == 2
    statuses = [(await get(client, run_id))["status"] for run_id in ids]
    assert statuses == ["completed", "completed", "pending"]
    assert (await get(client, ids[0]))["output"] == {"document": "doc0.pdf", "attempt": 1}


SCRIPT = """
import json, sys
run = json.load(sys.stdin)
name = run["document_name"]
if name == "ok.pdf":
    print(json.dumps({"output": {"doc": name, "id": run["id"]},
                      "tokens": {"input": 10, "output": 2}}))
elif name == "refused.pdf":
    print(json.dumps({"error": "no text layer"}))
elif name == "crash.pdf":
    sys.stderr.write("Traceback: boom")
    sys.exit(3)
elif name == "bare.pdf":
    print(json.dumps({"doc": name}))
else:
    print("not json")
"""


async def test_command_executor_protocol(client: httpx.AsyncClient, tmp_path: Path) -> None:
    script = tmp_path / "extract.py"
    script.write_text(textwrap.dedent(SCRIPT))
    names = ["ok.pdf", "refused.pdf", "crash.pdf", "junk.pdf", "bare.pdf"]
    ids = {name: await create(client, name) for name in names}
    executor = command_executor(f"{sys.executable} {script}")
    worker = Worker(client, executor, batch=10, exit_when_idle=True)
    assert await worker.run() == 5
    ok = await get(client, ids["ok.pdf"])
    assert ok["status"] == "completed"
    assert ok["output"] == {"doc": "ok.pdf", "id": ids["ok.pdf"]}
    assert ok["tokens"] == {"input": 10, "output": 2}
    refused = await get(client, ids["refused.pdf"])
    assert (refused["status"], refused["error"]) == ("failed", "no text layer")
    crash = await get(client, ids["crash.pdf"])
    assert crash["status"] == "failed"
    assert crash["error"] == "the command exited with status 3: Traceback: boom"
    junk = await get(client, ids["junk.pdf"])
    assert junk["status"] == "failed"
    assert "not JSON" in junk["error"]
    # A command must use the {"output": ...} form: a bare object is an error.
    assert (await get(client, ids["bare.pdf"]))["status"] == "failed"


async def test_stop_finishes_the_run_in_progress_and_releases_the_rest(
    client: httpx.AsyncClient,
) -> None:
    ids = [await create(client, f"doc{i}.pdf") for i in range(3)]
    started, proceed = asyncio.Event(), asyncio.Event()

    async def slow(run: dict[str, Any]) -> dict[str, Any]:
        started.set()
        await proceed.wait()
        return {"done": run["id"]}

    worker = Worker(client, python_executor(slow), batch=3, grace_seconds=60)
    loop = asyncio.create_task(worker.run())
    await started.wait()
    worker.stop()
    proceed.set()
    assert await loop == 1
    first, *rest = [await get(client, run_id) for run_id in ids]
    assert first["status"] == "completed"
    assert first["output"] == {"done": ids[0]}
    for run in rest:
        assert run["status"] == "pending"
        assert run["attempts"] == 0
    assert worker.released == 2


async def test_a_command_past_its_grace_period_is_killed_and_released(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    run_id = await create(client, "slow.pdf")
    marker = tmp_path / "started"
    script = tmp_path / "slow.py"
    script.write_text(
        "import pathlib, sys, time\n"
        f"pathlib.Path({str(marker)!r}).write_text('x')\n"
        "time.sleep(120)\n"
    )
    worker = Worker(client, command_executor(f"{sys.executable} {script}"), grace_seconds=0.2)
    loop = asyncio.create_task(worker.run())
    for _ in range(600):  # up to a minute for the command to start
        if marker.exists():
            break
        await asyncio.sleep(0.1)
    assert marker.exists()
    worker.stop()
    assert await loop == 0
    run = await get(client, run_id)
    assert run["status"] == "pending"
    assert run["attempts"] == 0
    assert worker.released == 1


async def test_a_worker_that_lost_its_run_does_not_overwrite_it(
    client: httpx.AsyncClient,
) -> None:
    run_id = await create(client, "contested.pdf")

    async def slow_then_return(run: dict[str, Any]) -> dict[str, Any]:
        # Meanwhile the run is released and another worker finishes it.
        release = await client.post(f"/extraction-runs/{run['id']}/release", json={})
        assert release.status_code == 200
        claimed = await client.post("/extraction-runs/claim", json={"worker_id": "other"})
        assert claimed.json()["runs"][0]["id"] == run["id"]
        done = await client.patch(
            f"/extraction-runs/{run['id']}",
            json={"status": "completed", "worker_id": "other", "output": {"by": "other"}},
        )
        assert done.status_code == 200
        return {"by": "late"}

    worker = Worker(client, python_executor(slow_then_return), exit_when_idle=True)
    assert await worker.run() == 0
    run = await get(client, run_id)
    assert run["output"] == {"by": "other"}
    assert run["worker_id"] == "other"


def test_result_forms() -> None:
    assert as_result({"a": 1}).output == {"a": 1}
    assert as_result({"output": {"a": 1}, "cost_usd": 0.1}).cost_usd == 0.1
    # Keys beyond the result's make the dict an output that happens to have "output".
    assert as_result({"output": 1, "other": 2}).output == {"output": 1, "other": 2}
    with pytest.raises(ExecutionError, match="no text"):
        as_result({"error": "no text"}, strict=True)
    with pytest.raises(ExecutionError):
        as_result({"a": 1}, strict=True)
    with pytest.raises(ExecutionError):
        as_result([1, 2])
    with pytest.raises(ExecutionError):
        as_result({"output": [1]}, strict=True)
    with pytest.raises(ValueError, match="module:function"):
        load_callable("no_colon")
    assert json.loads(json.dumps(ExtractionResult(output={}).as_patch())) == {
        "status": "completed",
        "output": {},
    }


async def test_the_worker_sends_its_api_key(settings: Settings, engines: Engines) -> None:
    async with engines.write.begin() as conn:
        write_key = (await create_api_key(conn, name="worker", scope="write")).token
        read_key = (await create_api_key(conn, name="viewer", scope="read")).token
    app = create_app(settings.model_copy(update={"api_key_cache_seconds": 0}))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with make_client("http://t", api_key=write_key, transport=transport) as client:
            run_id = await create(client, "keyed.pdf")
            for key in (None, read_key):
                async with make_client("http://t", api_key=key, transport=transport) as other:
                    refused = Worker(other, python_executor(extract_async), exit_when_idle=True)
                    with pytest.raises(PermissionError, match="write key"):
                        await refused.run()
            worker = Worker(client, python_executor(extract_async), exit_when_idle=True)
            assert await worker.run() == 1
            assert (await get(client, run_id))["status"] == "completed"

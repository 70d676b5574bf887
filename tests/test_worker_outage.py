"""The extraction worker without its API: it outlives a restart, gives up only when told, stops."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from runwatch.client import AsyncRunwatchClient
from runwatch.config import Settings
from runwatch.db.engine import Engines
from runwatch.worker import GaveUp, Worker, python_executor
from tests.client.conftest import LiveServer


async def extract(run: dict[str, Any]) -> dict[str, Any]:
    return {"document": run["document_name"]}


def _dead_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def _failure_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "runwatch.worker" and "failed (try" in r.getMessage()
    ]


async def test_a_worker_outlives_an_api_restart(
    settings: Settings, engines: Engines, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="runwatch.worker")
    server = LiveServer(settings)
    server.start()
    api = AsyncRunwatchClient(server.url)
    accepted = await api.create_extraction_run(
        prompt_id="p", config_id="c", document_name="after-the-outage.pdf"
    )
    await api.aclose()
    server.stop()

    worker = Worker(
        AsyncRunwatchClient(server.url, timeout=10),
        python_executor(extract),
        max_backoff=0.05,
        exit_when_idle=True,
    )
    loop = asyncio.create_task(worker.run())
    # Many more failed tries than a worker used to survive (6), then the API is back.
    for _ in range(2400):
        if worker.failures >= 15 or loop.done():
            break
        await asyncio.sleep(0.05)
    assert not loop.done(), "the worker stopped while the API was down"
    assert worker.failures >= 15
    server.start()
    try:
        assert await asyncio.wait_for(loop, 120) == 1
        async with AsyncRunwatchClient(server.url) as api:
            run = await api.get_extraction_run(accepted.run_id)
    finally:
        server.stop()
    assert run.status == "completed"
    assert run.output == {"document": "after-the-outage.pdf"}

    lines = _failure_lines(caplog)
    assert len(lines) >= 15
    for number, line in enumerate(lines[:15], start=1):
        # One line each, with what failed, why, and when it is tried again.
        assert "\n" not in line
        assert line.startswith(f"claiming runs failed (try {number}): cannot reach {server.url}")
        assert "Connect" in line or "Error" in line
        assert line.endswith(" s")
    assert any("succeeded after" in r.getMessage() for r in caplog.records)


async def test_a_worker_gives_up_only_when_told(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="runwatch.worker")
    worker = Worker(
        AsyncRunwatchClient(_dead_url()),
        python_executor(extract),
        max_backoff=0.05,
        give_up_after=0.5,
    )
    with pytest.raises(GaveUp, match=r"claiming runs failed for \d+ s \(\d+ tries\), giving up"):
        await worker.run()
    assert len(_failure_lines(caplog)) >= 2


class _Unavailable(BaseHTTPRequestHandler):
    """Every request: 503, the database is down, come back in ten minutes."""

    def _answer(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = json.dumps(
            {
                "type": "urn:runwatch:problem:unavailable",
                "title": "Service unavailable",
                "status": 503,
                "detail": "The database is unavailable.",
                "code": "unavailable",
            }
        ).encode()
        self.send_response(503)
        self.send_header("Content-Type", "application/problem+json")
        self.send_header("Retry-After", "600")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PATCH = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def unavailable_api() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Unavailable)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _worker_process(url: str, *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "runwatch", "worker", "--url", url, "--command", "true", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def test_sigterm_ends_a_long_back_off_at_once(unavailable_api: str) -> None:
    worker = _worker_process(unavailable_api, "--max-backoff", "3600")
    try:
        seen = b""
        while b"retrying in" not in seen:
            line = worker.stdout.readline()  # type: ignore[union-attr]
            assert line, seen.decode()
            seen += line
        # The server asked for 600 s; the cap allows it: the worker is now waiting 600 s.
        assert b"503 unavailable: The database is unavailable.; retrying in 600.0 s" in seen
        worker.send_signal(signal.SIGTERM)
        rest, _ = worker.communicate(timeout=120)  # far less than the 600 s wait
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    output = (seen + rest).decode()
    assert worker.returncode == 0, output
    assert "stopped: 0 completed, 0 failed, 0 released" in output
    assert "Traceback" not in output


def test_give_up_after_ends_with_one_error_line() -> None:
    worker = _worker_process(_dead_url(), "--max-backoff", "0.1", "--give-up-after", "1")
    output, _ = worker.communicate(timeout=120)
    text = output.decode()
    assert worker.returncode == 1, text
    assert "Traceback" not in text
    last = text.strip().splitlines()[-1]
    assert "giving up: cannot reach" in last
    assert "claiming runs failed (try 2)" in text  # it kept trying until then

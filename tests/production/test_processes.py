"""Real `runwatch serve` processes on one PostgreSQL: two servers agree, workers share metrics."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry, multiprocess
from prometheus_client.parser import text_string_to_metric_families

from tests.factories import layer_run
from tests.support.postgres import free_port, running_postgres


@pytest.fixture(scope="module")
def database_url() -> Iterator[str]:
    with running_postgres(migrated=True) as server:
        yield server.url


class Server:
    def __init__(
        self, database_url: str, tmp_path: Path, *extra: str, env: dict[str, str] | None = None
    ) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = tmp_path / f"server-{self.port}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("PROMETHEUS_")} | (env or {})
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "runwatch", "--database-url", database_url, "serve",
             "--port", str(self.port), "--log-level", "info", *extra],
            stdout=self.log.open("w"), stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 90  # a loaded CI machine starts processes slowly
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited: {self.log.read_text()}")
            try:
                if httpx.get(self.base + "/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"server not ready: {self.log.read_text()}")

    def stop(self) -> bool:
        """SIGTERM; True if the server shut down gracefully (uvicorn then re-raises the signal)."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return False
        log = self.log.read_text()
        return (
            code in (0, -signal.SIGTERM)
            and "Finished server process" in log
            and ("Traceback" not in log)
        )


@pytest.fixture
def servers(database_url: str, tmp_path: Path) -> Iterator[list[Server]]:
    started: list[Server] = []

    def start(*extra: str) -> Server:
        server = Server(database_url, tmp_path, *extra)
        started.append(server)
        server.wait_ready()
        return server

    yield started.__class__([start(), start()])  # two single-worker servers
    for server in started:
        if server.proc.poll() is None:
            server.stop()


def test_a_write_through_one_server_is_seen_through_the_other(servers: list[Server]) -> None:
    one, two = servers
    for path in ("/runs", "/runs/stats/summary?days=30"):
        # A rolling window's tag also moves with its step (RUNWATCH_STATS_ETAG_SECONDS):
        # if a step ends between the two requests, the pair is made again.
        for _ in range(3):
            etag = httpx.get(two.base + path).headers["etag"]
            unchanged = httpx.get(two.base + path, headers={"If-None-Match": etag})
            if unchanged.status_code == 304:
                break
        assert unchanged.status_code == 304
        body = layer_run(started_at=None)
        assert httpx.post(one.base + "/runs", json=body).status_code == 201
        status = 0
        for _ in range(100):  # the other process hears of the commit by notification
            status = httpx.get(two.base + path, headers={"If-None-Match": etag}).status_code
            if status == 200:
                break
            time.sleep(0.02)
        assert status == 200, f"{path} still 304 on the other server after a write"
    assert httpx.get(two.base + "/runs").json()["total"] >= 2
    for server in servers:
        assert server.stop(), "graceful shutdown on SIGTERM"


def _requests_in(directory: Path, route: str) -> float:
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(directory))
    return sum(
        sample.value
        for family in registry.collect()
        for sample in family.samples
        if sample.name == "runwatch_http_requests_total" and sample.labels.get("route") == route
    )


def _requests_per_worker(directory: Path, route: str) -> list[float]:
    """Requests each worker process counted, read from its own sample file."""
    counts = []
    for sample_file in sorted(directory.glob("counter_*.db")):
        alone = directory.parent / f"alone-{sample_file.stem}"
        alone.mkdir(exist_ok=True)
        shutil.copy(sample_file, alone / sample_file.name)
        counts.append(_requests_in(alone, route))
    return counts


def test_workers_share_one_metrics_view(database_url: str, tmp_path: Path) -> None:
    samples = tmp_path / "metrics"
    samples.mkdir()
    route = "/runs/stats/summary"
    server = Server(
        database_url, tmp_path, "--workers", "2", env={"PROMETHEUS_MULTIPROC_DIR": str(samples)}
    )
    try:
        server.wait_ready()
        sent = 0
        with httpx.Client(base_url=server.base) as client:
            # New connections until both workers have answered some (the kernel
            # hands each connection to one of them).
            while sent < 40 or sum(1 for n in _requests_per_worker(samples, route) if n) < 2:
                assert sent < 4000, "one worker answered every request"
                response = client.get(route, headers={"Connection": "close"})
                assert response.status_code == 200
                sent += 1
            text = client.get("/metrics").text
        per_worker = _requests_per_worker(samples, route)
        assert len([n for n in per_worker if n]) == 2
        assert sum(per_worker) == sent
        total = 0.0
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if (
                    sample.name == "runwatch_http_requests_total"
                    and sample.labels.get("route") == route
                ):
                    total += sample.value
        assert total == sent, "every worker's requests are in the one scrape"
    finally:
        assert server.stop()


def test_workers_leave_no_metrics_directory_behind(database_url: str, tmp_path: Path) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    server = Server(database_url, tmp_path, "--workers", "2", env={"TMPDIR": str(scratch)})
    try:
        server.wait_ready()
        made = list(scratch.glob("runwatch-metrics-*"))
        assert len(made) == 1, "serve --workers makes its own metrics directory"
        assert httpx.get(server.base + "/runs").status_code == 200
        assert any(made[0].iterdir())
    finally:
        assert server.stop()
    assert list(scratch.glob("runwatch-metrics-*")) == []


def test_control_characters_in_a_request_cannot_forge_a_log_line(
    database_url: str, tmp_path: Path
) -> None:
    server = Server(database_url, tmp_path)
    try:
        server.wait_ready()
        forged = "2026-01-01 00:00:00,000 INFO runwatch.requests: GET /runs 200 FORGED"
        path = "/healthz%0a" + forged.replace(" ", "%20") + "%0d%1b%5b31m"
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            while sock.recv(65536):
                pass
    finally:
        assert server.stop()
    lines = server.log.read_text().splitlines()
    logged = [line for line in lines if "/healthz" in line]
    assert len(logged) == 1, lines
    assert "\\x0a" + forged in logged[0]
    assert "\\x0d\\x1b[31m" in logged[0]
    assert not any(line.startswith("2026-01-01") for line in lines)

"""`runwatch worker` as a real process against a real server: SIGTERM finishes and releases."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.postgres import free_port

SCRIPT = """
import json, pathlib, sys, time
run = json.load(sys.stdin)
here = pathlib.Path(sys.argv[1])
(here / ("started-" + run["id"])).write_text("x")
while not (here / "proceed").exists():
    time.sleep(0.05)
print(json.dumps({"output": {"document": run["document_name"]}}))
"""


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "RUNWATCH_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'w.db'}"}
    process = subprocess.Popen(
        [sys.executable, "-m", "runwatch", "serve", "--port", str(port), "--log-level", "warning"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        for _ in range(300):  # up to a minute to migrate and start
            try:
                if httpx.get(f"{url}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None:
                pytest.fail(f"the server exited: {process.stderr.read().decode()}")  # type: ignore[union-attr]
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_sigterm_finishes_the_run_in_progress_and_releases_the_rest(
    server: str, tmp_path: Path
) -> None:
    script = tmp_path / "extract.py"
    script.write_text(SCRIPT)
    ids = []
    for i in range(3):
        response = httpx.post(
            f"{server}/extraction-runs",
            json={"prompt_id": "p", "config_id": "c", "document_name": f"doc{i}"},
        )
        assert response.status_code == 202
        ids.append(response.json()["run_id"])
    worker = subprocess.Popen(
        [
            sys.executable, "-m", "runwatch", "worker",
            "--url", server,
            "--command", f"{sys.executable} {script} {tmp_path}",
            "--batch", "3",
            "--worker-id", "cli-worker",
            "--grace-seconds", "120",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        marker = tmp_path / f"started-{ids[0]}"
        for _ in range(600):
            if marker.exists() or worker.poll() is not None:
                break
            time.sleep(0.1)
        assert marker.exists(), worker.stdout.read().decode()  # type: ignore[union-attr]
        worker.send_signal(signal.SIGTERM)
        seen = b""
        while b"stopping: no more claims" not in seen:
            line = worker.stdout.readline()  # type: ignore[union-attr]
            assert line, seen.decode()
            seen += line
        (tmp_path / "proceed").write_text("go")
        rest, _ = worker.communicate(timeout=120)
        output = seen + rest
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    assert worker.returncode == 0, output.decode()
    runs = [httpx.get(f"{server}/extraction-runs/{run_id}").json() for run_id in ids]
    assert runs[0]["status"] == "completed"
    assert runs[0]["output"] == {"document": "doc0"}
    assert [r["status"] for r in runs[1:]] == ["pending", "pending"]
    assert not (tmp_path / f"started-{ids[1]}").exists()
    assert b"1 completed, 0 failed, 2 released" in output

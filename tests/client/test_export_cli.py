"""`runwatch export` against a live server on both dialects: output, progress bar, bad input."""

from __future__ import annotations

import csv
import fcntl
import io
import json
import os
import pty
import socket
import struct
import subprocess
import sys
import termios
import threading
from datetime import timedelta
from pathlib import Path

import httpx

from runwatch.client import RunwatchClient
from tests.client.conftest import LiveServer
from tests.factories import BASE_TIME, layer_run


def _export(*args: str, stderr: int | None = subprocess.PIPE) -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if k not in ("RUNWATCH_URL", "RUNWATCH_API_KEY")}
    return subprocess.run(
        [sys.executable, "-m", "runwatch", "export", *args],
        stdout=subprocess.PIPE,
        stderr=stderr,
        env=env,
        timeout=300,
        check=False,
    )


def _seed(url: str) -> None:
    with RunwatchClient(url) as client:
        client.create_runs(
            layer_run(
                id=f"cli-{i:03d}",
                layer_name="alpha" if i % 2 else "beta",
                started_at=BASE_TIME + timedelta(minutes=i),
            )
            for i in range(301)
        )


def test_export_to_stdout_and_to_a_file(live_server: LiveServer, tmp_path: Path) -> None:
    _seed(live_server.url)
    done = _export("--url", live_server.url, "--format", "csv", "--layer-name", "alpha")
    assert done.returncode == 0, done.stderr.decode()
    direct = httpx.get(
        f"{live_server.url}/runs/export", params={"format": "csv", "layer_name": "alpha"}
    )
    assert done.stdout == direct.content
    rows = list(csv.DictReader(io.StringIO(done.stdout.decode())))
    assert len(rows) == 150
    assert {r["layer_name"] for r in rows} == {"alpha"}
    assert [r["id"] for r in rows] == [f"cli-{i:03d}" for i in range(299, 0, -2)]
    # Not a terminal: a summary line, no progress bar.
    assert done.stderr.decode() == "runwatch: exported 150 runs\n"

    target = tmp_path / "beta.ndjson"
    done = _export("--url", live_server.url, "-o", str(target), "--sort", "started_at")
    assert done.returncode == 0, done.stderr.decode()
    lines = target.read_text().splitlines()
    assert len(lines) == 301
    assert json.loads(lines[0])["id"] == "cli-000"


def test_progress_bar_on_a_terminal(live_server: LiveServer) -> None:
    _seed(live_server.url)
    main, side = pty.openpty()
    fcntl.ioctl(side, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a real size
    chunks: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                data = os.read(main, 4096)
            except OSError:
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        done = _export("--url", live_server.url, "--layer-name", "beta", stderr=side)
    finally:
        os.close(side)
        reader.join(30)
        os.close(main)
    assert done.returncode == 0
    assert len(done.stdout.splitlines()) == 151
    bar = b"".join(chunks).decode(errors="replace")
    assert "151/151" in bar
    assert "100%" in bar
    assert "runwatch: exported 151 runs" in bar


def test_bad_input_is_one_line_and_status_2(live_server: LiveServer) -> None:
    cases = [
        (("--kind", "extraction-runs", "--layer-name", "x"), "--layer-name does not filter"),
        (("--status", "sideways"), "query.status: unknown status 'sideways'"),
        (("--sort=-layer_name",), "query.sort"),
    ]
    for args, message in cases:
        done = _export("--url", live_server.url, *args)
        text = done.stderr.decode()
        assert done.returncode == 2, text
        assert text.count("\n") == 1, text
        assert text.startswith("runwatch: error: "), text
        assert message in text
        assert done.stdout == b""


def test_a_failed_export_leaves_no_file(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    target = tmp_path / "runs.csv"
    done = _export("--url", dead, "--format", "csv", "-o", str(target))
    text = done.stderr.decode()
    assert done.returncode == 1, text
    assert text.startswith("runwatch: error: export failed: cannot reach"), text
    assert text.count("\n") == 1, text
    assert not target.exists()

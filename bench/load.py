"""Load drivers (wrk, or an httpx fallback), the batch-ingest client, and server processes."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

WRK_DIR = Path(__file__).resolve().parent / "wrk"
WRK_INSTALL_HINT = (
    "wrk is not installed; install it with `apt-get install -y wrk` (Debian/Ubuntu) "
    "to measure with a real load generator"
)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class LoadResult:
    """One endpoint at one concurrency, as measured by the load driver."""

    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int
    driver: str

    @property
    def requests_per_second(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def wrk_path() -> str | None:
    return shutil.which("wrk")


def _percentile(sorted_values: Sequence[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, round(q / 100 * (len(sorted_values) - 1))))
    return sorted_values[index]


def percentiles_ms(samples_s: Sequence[float]) -> tuple[float, float]:
    ordered = sorted(samples_s)
    return _percentile(ordered, 50) * 1000, _percentile(ordered, 99) * 1000


def run_wrk(
    base_url: str,
    paths: Sequence[str],
    *,
    connections: int,
    seconds: int,
    headers: dict[str, str] | None = None,
    poll: bool = False,
) -> LoadResult:
    """Run wrk with one thread (the server needs the other core) against `paths`.

    `poll`: each connection sends back the ETag of its last answer (bench/wrk/poll.lua),
    as a polling dashboard does, instead of fixed headers.
    """
    wrk = wrk_path()
    if wrk is None:
        raise RuntimeError(WRK_INSTALL_HINT)
    args = [wrk, "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "10s"]
    for name, value in (headers or {}).items():
        if not (poll and name.lower() == "if-none-match"):
            args += ["-H", f"{name}: {value}"]
    paths_file = None
    try:
        if poll:
            args += ["-s", str(WRK_DIR / "poll.lua"), base_url + paths[0]]
        elif len(paths) == 1:
            args += ["-s", str(WRK_DIR / "report.lua"), base_url + paths[0]]
        else:
            with tempfile.NamedTemporaryFile(
                "w", suffix=".paths", delete=False, encoding="utf-8"
            ) as fh:
                fh.write("\n".join(paths) + "\n")
                paths_file = fh.name
            args += ["-s", str(WRK_DIR / "paths.lua"), base_url + paths[0], "--", paths_file]
        proc = subprocess.run(args, capture_output=True, text=True, timeout=seconds + 60)
    finally:
        if paths_file:
            os.unlink(paths_file)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("WRK_RESULT ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stdout}\n{proc.stderr}")
    data = json.loads(line.removeprefix("WRK_RESULT "))
    errors = sum(data[k] for k in data if k.startswith("errors_"))
    polled = next((ln for ln in proc.stdout.splitlines() if ln.startswith("WRK_POLL ")), None)
    if polled is not None:
        counts = json.loads(polled.removeprefix("WRK_POLL "))
        print(
            f"[bench] polling: {counts['not_modified']} answers 304, {counts['fresh']} fresh",
            file=sys.stderr,
        )
    return LoadResult(
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        errors=errors,
        driver="wrk",
    )


async def _httpx_load(
    base_url: str,
    paths: Sequence[str],
    connections: int,
    seconds: float,
    headers: dict[str, str] | None,
) -> LoadResult:
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, headers=headers) as client:
        deadline = time.perf_counter() + seconds

        async def worker(offset: int) -> None:
            nonlocal errors
            i = offset
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                try:
                    response = await client.get(paths[i % len(paths)])
                    if response.status_code >= 400:
                        errors += 1
                except httpx.HTTPError:
                    errors += 1
                latencies.append(time.perf_counter() - started)
                i += 1

        began = time.perf_counter()
        await asyncio.gather(*(worker(n * 7919) for n in range(connections)))
        elapsed = time.perf_counter() - began
    p50, p99 = percentiles_ms(latencies)
    return LoadResult(len(latencies), elapsed, p50, p99, errors, "httpx (fallback)")


def run_httpx(
    base_url: str,
    paths: Sequence[str],
    *,
    connections: int,
    seconds: float,
    headers: dict[str, str] | None = None,
) -> LoadResult:
    """A load driver in Python for machines without wrk; it saturates long before uvicorn."""
    return asyncio.run(_httpx_load(base_url, paths, connections, seconds, headers))


@dataclass
class BatchResult:
    batches: int
    runs: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int
    error_statuses: dict[int, int] = field(default_factory=dict)
    driver: str = "httpx (pre-built bodies)"

    @property
    def runs_per_second(self) -> float:
        return self.runs / self.seconds if self.seconds else 0.0

    @property
    def requests_per_second(self) -> float:
        return self.batches / self.seconds if self.seconds else 0.0


async def _post_batches(
    base_url: str, bodies: list[bytes], runs_per_body: int, connections: int, seconds: float
) -> BatchResult:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    created = 0
    queue = list(reversed(bodies))
    timeout = httpx.Timeout(60.0)
    limits = httpx.Limits(max_connections=connections)
    headers = {"content-type": "application/json"}
    async with httpx.AsyncClient(base_url=base_url, timeout=timeout, limits=limits) as client:
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal created
            while queue and time.perf_counter() < deadline:
                body = queue.pop()
                started = time.perf_counter()
                response = await client.post("/runs/batch", content=body, headers=headers)
                latencies.append(time.perf_counter() - started)
                if response.status_code == 200:
                    created += int(response.json().get("created", runs_per_body))
                else:
                    statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(connections)))
        elapsed = time.perf_counter() - began
    p50, p99 = percentiles_ms(latencies)
    errors = sum(statuses.values())
    return BatchResult(len(latencies), created, elapsed, p50, p99, errors, statuses)


def post_batches(
    base_url: str, bodies: list[bytes], *, runs_per_body: int, connections: int, seconds: float
) -> BatchResult:
    """POST pre-encoded batch bodies (each with new ids) for up to `seconds`."""
    return asyncio.run(_post_batches(base_url, bodies, runs_per_body, connections, seconds))


@dataclass
class ServerProcess:
    """A server started as a subprocess, its PID kept to read memory and to stop it."""

    args: list[str]
    env: dict[str, str]
    log_path: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None
    rss_samples_kb: list[int] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, ready_path: str, timeout: float = 60.0) -> None:
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            self.args, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"server exited with {self.proc.returncode}:\n{self.log_path.read_text()}"
                )
            try:
                if httpx.get(self.base_url + ready_path, timeout=2.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server not ready after {timeout} s:\n{self.log_path.read_text()}")

    def memory_kb(self) -> dict[str, int]:
        """VmRSS (now) and VmHWM (peak) of the server process, from /proc."""
        if self.proc is None:
            return {}
        out: dict[str, int] = {}
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    out[key] = int(value.split()[0])
        except OSError:
            return {}
        if "VmRSS" in out:
            self.rss_samples_kb.append(out["VmRSS"])
        return out

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def warm_up(base_url: str, paths: Sequence[str], headers: dict[str, str] | None = None) -> None:
    """A few requests first, so that caches and prepared statements are not measured cold."""
    with httpx.Client(base_url=base_url, headers=headers, timeout=30.0) as client:
        for i in range(min(50, max(10, len(paths)))):
            client.get(paths[i % len(paths)])


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else 0.0


def json_body(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), default=str).encode()


class RawHttpClient:
    """HTTP/1.1 GETs on one kept-alive socket, with next to no client-side work."""

    def __init__(self, base_url: str) -> None:
        host_port = base_url.split("://", 1)[1].rstrip("/")
        host, _, port = host_port.partition(":")
        self.host = host
        self.sock = socket.create_connection((host, int(port or 80)), timeout=30)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""

    def get(self, path: str) -> int:
        """Send one GET and read the whole answer; its status."""
        self.sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {self.host}\r\n\r\n".encode("latin-1"))
        while b"\r\n\r\n" not in self.buffer:
            self._read()
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
            elif name.strip().lower() == "transfer-encoding":
                raise RuntimeError("chunked answers are not read by this client")
        while len(self.buffer) < length:
            self._read()
        self.buffer = self.buffer[length:]
        return status

    def _read(self) -> None:
        chunk = self.sock.recv(1 << 16)
        if not chunk:
            raise ConnectionError("server closed the connection")
        self.buffer += chunk

    def close(self) -> None:
        self.sock.close()


def run_fresh_sequential(
    base_url: str, path: str, freshen: Callable[[], None], *, seconds: float, warmup: int = 5
) -> LoadResult:
    """One client: `freshen()` (untimed, e.g. a write), then one timed GET of `path`, repeated.

    The GETs go over a raw kept-alive socket, so the client adds almost nothing
    to the latency measured.
    """
    client = RawHttpClient(base_url)
    latencies: list[float] = []
    errors = 0
    try:
        for _ in range(warmup):
            freshen()
            client.get(path)
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline or not latencies:
            freshen()
            started = time.perf_counter()
            status = client.get(path)
            latencies.append(time.perf_counter() - started)
            if status != 200:
                errors += 1
    finally:
        client.close()
    p50, p99 = percentiles_ms(latencies)
    return LoadResult(
        len(latencies), sum(latencies), p50, p99, errors, "python socket (a write before each)"
    )

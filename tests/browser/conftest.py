"""Browser fixtures: a real `runwatch serve --demo` process and Debian's Chromium via Playwright.

Chromium is found at RUNWATCH_CHROMIUM or /usr/bin/chromium (the Debian package);
Playwright never downloads a browser. Without Chromium (or the playwright package)
the browser tests are skipped with the reason printed, unless
RUNWATCH_REQUIRE_BROWSER=1, which makes them fail.

The tests are plain synchronous tests: Playwright's sync API runs its own event loop
and cannot run inside the one pytest-asyncio gives async tests.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO_ROOT / "artifacts" / "screenshots"
DEFAULT_CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1440, "height": 900}


def _unavailable(reason: str) -> None:
    if os.environ.get("RUNWATCH_REQUIRE_BROWSER") == "1":
        pytest.fail(f"browser tests required (RUNWATCH_REQUIRE_BROWSER=1): {reason}")
    print(f"\nbrowser tests skipped: {reason}", file=sys.stderr)
    pytest.skip(f"browser tests skipped: {reason}")


def chromium_path() -> str:
    path = os.environ.get("RUNWATCH_CHROMIUM") or DEFAULT_CHROMIUM
    resolved = shutil.which(path) if not os.path.isabs(path) else path
    if not resolved or not os.access(resolved, os.X_OK):
        _unavailable(
            f"Chromium not found at {path} (install Debian's chromium and chromium-driver, "
            "or set RUNWATCH_CHROMIUM)"
        )
    return str(resolved)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    """A `runwatch serve` subprocess on 127.0.0.1."""

    process: subprocess.Popen[bytes]
    base_url: str
    log_path: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)

    def api(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=10)


def _clean_env() -> dict[str, str]:
    # The server is configured by its command line only, not by the caller's RUNWATCH_*.
    return {key: value for key, value in os.environ.items() if not key.startswith("RUNWATCH_")}


def database_url(tmp_dir: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_dir / 'dashboard.db'}"


def runwatch_cli(tmp_dir: Path, *args: str) -> str:
    """Run `runwatch` on the same database as `start_server(tmp_dir)`; returns its stdout."""
    done = subprocess.run(
        [sys.executable, "-m", "runwatch", "--database-url", database_url(tmp_dir), *args],
        capture_output=True,
        text=True,
        env=_clean_env(),
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def start_server(tmp_dir: Path, *, demo_runs: int) -> Server:
    port = free_port()
    log_path = tmp_dir / "server.log"
    command = [
        sys.executable,
        "-m",
        "runwatch",
        "--database-url",
        database_url(tmp_dir),
        "serve",
        "--demo",
        "--demo-runs",
        str(demo_runs),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=_clean_env())
    server = Server(process, f"http://127.0.0.1:{port}", log_path)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            if httpx.get(f"{server.base_url}/readyz", timeout=2).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    server.stop()
    pytest.fail(f"runwatch serve did not become ready; log:\n{log_path.read_text()[-4000:]}")


@pytest.fixture(scope="module")
def chromium() -> str:
    return chromium_path()


@pytest.fixture(scope="module")
def browser(chromium: str) -> Iterator[object]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package is not installed (pip install -e '.[test]')")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, chromium: str) -> Iterator[Server]:
    """One demo server for the module's tests (they only read)."""
    running = start_server(tmp_path_factory.mktemp("dashboard"), demo_runs=3000)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def api(server: Server) -> Iterator[httpx.Client]:
    with server.api() as client:
        yield client


@pytest.fixture
def page(browser: object) -> Iterator[object]:
    """A fresh browser context and page; fails the test on any uncaught page error."""
    context = browser.new_context(viewport=VIEWPORT, color_scheme="light")  # type: ignore[attr-defined]
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield page
    finally:
        context.close()
    assert not errors, f"uncaught errors in the page: {errors}"


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS

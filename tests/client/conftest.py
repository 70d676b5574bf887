"""A live runwatch server for client tests: uvicorn in a thread, on the test's database."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn

from runwatch.app import create_app
from runwatch.config import Settings
from runwatch.db.engine import Engines


class LiveServer:
    """`create_app(settings)` served over real HTTP; can be stopped and started on its port."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.port = 0
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            create_app(self.settings), loop="asyncio", log_level="warning", lifespan="on"
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        deadline = time.monotonic() + 90  # a loaded machine starts slowly
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise AssertionError("the live server did not start")
            time.sleep(0.02)
        self._server, self._thread = server, thread

    def stop(self) -> None:
        if self._server is None or self._thread is None:
            return
        self._server.should_exit = True
        self._thread.join(60)
        assert not self._thread.is_alive(), "the live server did not stop"
        self._server = self._thread = None


@pytest.fixture
def live_server(settings: Settings, engines: Engines) -> Iterator[LiveServer]:
    """A running server on the `dialect`'s database, emptied for this test."""
    server = LiveServer(settings)
    server.start()
    try:
        yield server
    finally:
        server.stop()

"""`RunwatchClient`: the runwatch API from blocking code, over `httpx.Client`."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx

from runwatch.client.base import ClientBase
from runwatch.client.calls import Batch, Call, Download, Lines, M, Pages, R, T
from runwatch.client.errors import RunwatchError
from runwatch.client.recording import RecordedRun, new_recorded_run
from runwatch.client.retries import FAILURES, Attempts, broken_off, checked


class RunwatchClient(ClientBase[httpx.Client, httpx.BaseTransport]):
    """The runwatch API from synchronous code.

    `url` defaults to `RUNWATCH_URL` (else http://127.0.0.1:8000), `api_key` to
    `RUNWATCH_API_KEY`. `read_from_primary` reads your own writes when the
    server reads from replicas. Pass `http_client` to use an httpx client of
    your own (its base URL and transport are used as they are).
    """

    @staticmethod
    def _new_http(
        url: str, timeout: float | httpx.Timeout, transport: httpx.BaseTransport | None
    ) -> httpx.Client:
        return httpx.Client(base_url=url, timeout=timeout, transport=transport)

    def close(self) -> None:
        if self._owns_http:
            self.http.close()

    def __enter__(self) -> RunwatchClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def record_run(
        self, *, layer_name: str, layer_hash: str, **fields: Any
    ) -> Iterator[RecordedRun]:
        """Create the run as `running`; complete it on exit, or fail it with the exception."""
        run = new_recorded_run(layer_name, layer_hash, fields)
        self.create_run(run.creation())
        try:
            yield run
        except BaseException as exc:
            try:
                run.detail = self.update_run(run.id, run.completion(exc))
            except RunwatchError as report:
                run.unreported(exc, report)
            raise
        run.detail = self.update_run(run.id, run.completion(None))

    # how the methods' calls are carried out

    def _retrying(self, send: Callable[[], httpx.Response]) -> httpx.Response:
        attempts = Attempts(self.retry, self.url)
        while True:
            try:
                return checked(send())
            except FAILURES as exc:
                time.sleep(attempts.wait_after(exc))

    def _send(self, call: Call[M]) -> M:
        return call.read(self._retrying(lambda: self.http.send(self._request(call))))

    def _send_all(self, batch: Batch[M, R]) -> R:
        return batch.combine([self._send(call) for call in batch.calls])

    def _follow(self, pages: Pages[M, T]) -> Iterator[T]:
        call: Call[M] | None = pages.page(None)
        while call is not None:
            page = self._send(call)
            yield from pages.items(page)
            call = pages.after(page)

    def _open(self, call: Call[None]) -> httpx.Response:
        response = self.http.send(self._request(call), stream=True)
        if response.status_code >= 400:
            response.read()  # the problem body, for the error
            response.close()
        return response

    @contextlib.contextmanager
    def _stream(self, call: Call[None]) -> Iterator[httpx.Response]:
        response = self._retrying(lambda: self._open(call))
        with contextlib.closing(response), broken_off(self.url):
            yield response

    def _download(self, download: Download) -> int:
        with self._stream(download.call) as response:
            for chunk in response.iter_bytes():
                download.write(chunk)
        return download.rows

    def _read_lines(self, lines: Lines[T]) -> Iterator[T]:
        with self._stream(lines.call) as response:
            for line in response.iter_lines():
                if line:
                    yield lines.parse(line)

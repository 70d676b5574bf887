"""`AsyncRunwatchClient`: the runwatch API from asyncio code, over `httpx.AsyncClient`."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
import httpx

from runwatch.client.base import ClientBase
from runwatch.client.calls import Batch, Call, Download, Lines, M, Pages, R, T
from runwatch.client.errors import RunwatchError
from runwatch.client.recording import RecordedRun, new_recorded_run
from runwatch.client.retries import FAILURES, Attempts, broken_off, checked


class AsyncRunwatchClient(ClientBase[httpx.AsyncClient, httpx.AsyncBaseTransport]):
    """The runwatch API from asyncio code; the same methods as `RunwatchClient`, awaited.

    The iterators (`iter_runs`, …) are async iterators and `record_run` is an
    async context manager; `create_extraction_runs` sends its requests
    concurrently.
    """

    @staticmethod
    def _new_http(
        url: str, timeout: float | httpx.Timeout, transport: httpx.AsyncBaseTransport | None
    ) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=url, timeout=timeout, transport=transport)

    async def aclose(self) -> None:
        if self._owns_http:
            await self.http.aclose()

    async def __aenter__(self) -> AsyncRunwatchClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    @contextlib.asynccontextmanager
    async def record_run(
        self, *, layer_name: str, layer_hash: str, **fields: Any
    ) -> AsyncIterator[RecordedRun]:
        """Create the run as `running`; complete it on exit, or fail it with the exception."""
        run = new_recorded_run(layer_name, layer_hash, fields)
        await self.create_run(run.creation())
        try:
            yield run
        except BaseException as exc:
            try:
                run.detail = await self.update_run(run.id, run.completion(exc))
            except RunwatchError as report:
                run.unreported(exc, report)
            raise
        run.detail = await self.update_run(run.id, run.completion(None))

    # how the methods' calls are carried out

    async def _retrying(self, send: Callable[[], Awaitable[httpx.Response]]) -> httpx.Response:
        attempts = Attempts(self.retry, self.url)
        while True:
            try:
                return checked(await send())
            except FAILURES as exc:
                await anyio.sleep(attempts.wait_after(exc))

    async def _send(self, call: Call[M]) -> M:
        return call.read(await self._retrying(lambda: self.http.send(self._request(call))))

    async def _send_all(self, batch: Batch[M, R]) -> R:
        if batch.concurrency == 1:
            return batch.combine([await self._send(call) for call in batch.calls])
        results: dict[int, M] = {}
        limiter = anyio.Semaphore(batch.concurrency)

        async def send(index: int, call: Call[M]) -> None:
            try:
                results[index] = await self._send(call)
            finally:
                limiter.release()

        try:
            async with anyio.create_task_group() as group:
                for index, call in enumerate(batch.calls):
                    await limiter.acquire()  # reads the calls no faster than they are sent
                    group.start_soon(send, index, call)
        except BaseExceptionGroup as failures:
            if len(failures.exceptions) == 1:  # the error itself, as the blocking client raises it
                raise failures.exceptions[0] from None
            raise
        return batch.combine([results[index] for index in sorted(results)])

    async def _follow(self, pages: Pages[M, T]) -> AsyncIterator[T]:
        call: Call[M] | None = pages.page(None)
        while call is not None:
            page = await self._send(call)
            for item in pages.items(page):
                yield item
            call = pages.after(page)

    async def _open(self, call: Call[None]) -> httpx.Response:
        response = await self.http.send(self._request(call), stream=True)
        if response.status_code >= 400:
            await response.aread()  # the problem body, for the error
            await response.aclose()
        return response

    @contextlib.asynccontextmanager
    async def _stream(self, call: Call[None]) -> AsyncIterator[httpx.Response]:
        response = await self._retrying(lambda: self._open(call))
        async with contextlib.aclosing(response):
            with broken_off(self.url):
                yield response

    async def _download(self, download: Download) -> int:
        async with self._stream(download.call) as response:
            async for chunk in response.aiter_bytes():
                download.write(chunk)
        return download.rows

    async def _read_lines(self, lines: Lines[T]) -> AsyncIterator[T]:
        async with self._stream(lines.call) as response:
            async for line in response.aiter_lines():
                if line:
                    yield lines.parse(line)

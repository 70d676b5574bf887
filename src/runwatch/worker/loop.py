"""The worker loop: claim, execute under a kept-alive lease, report; retry while the API is down."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import httpx

from runwatch.client import (
    AsyncRunwatchClient,
    ConflictError,
    ForbiddenError,
    InvalidArgumentError,
    NotFoundError,
    RetryPolicy,
    RunwatchError,
    ServerError,
    TemporaryError,
    UnauthorizedError,
    describe,
)
from runwatch.worker.executors import ExecutionError, Executor

logger = logging.getLogger("runwatch.worker")

T = TypeVar("T")


def default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class LostRun(Exception):
    """The server no longer lets this worker report on the run (409 or 404)."""


class Stopped(Exception):
    """A stop signal came while waiting for the API."""


class GaveUp(Exception):
    """The API stayed unavailable for longer than `give_up_after`."""


def _retryable(exc: RunwatchError) -> bool:
    """Worth another try: the API is down, restarting, or failing (5xx) for now."""
    return isinstance(exc, TemporaryError) or (isinstance(exc, ServerError) and exc.status >= 500)


class Worker:
    """Claims, executes and reports runs until stopped (or idle, with `exit_when_idle`)."""

    def __init__(
        self,
        client: AsyncRunwatchClient | httpx.AsyncClient,
        executor: Executor,
        *,
        worker_id: str | None = None,
        batch: int = 1,
        lease_seconds: int = 300,
        poll_interval: float = 2.0,
        grace_seconds: float = 30.0,
        max_runs: int | None = None,
        exit_when_idle: bool = False,
        max_backoff: float = 30.0,
        give_up_after: float | None = None,
    ) -> None:
        if isinstance(client, httpx.AsyncClient):
            client = AsyncRunwatchClient(http_client=client)
        # The worker retries on its own (below), so that it can log each
        # failure, wait without limit and stop in the middle of a wait.
        client.retry = RetryPolicy(retries=0)
        self.api = client
        self.executor = executor
        self.worker_id = worker_id or default_worker_id()
        self.batch = batch
        self.lease_seconds = lease_seconds
        self.poll_interval = poll_interval
        self.grace_seconds = grace_seconds
        self.max_runs = max_runs
        self.exit_when_idle = exit_when_idle
        self.backoff = RetryPolicy(retries=0, backoff=0.5, max_delay=max_backoff)
        self.give_up_after = give_up_after
        self.processed = 0
        self.completed = 0
        self.failed = 0
        self.released = 0
        self.failures = 0
        self._stopping = asyncio.Event()
        self._aborting = asyncio.Event()

    def stop(self) -> None:
        """Stop claiming and finish up; a second call abandons the run in progress."""
        if self._stopping.is_set():
            logger.info("stopping now: abandoning the run in progress")
            self._aborting.set()
        else:
            logger.info("stopping: no more claims; finishing the run in progress")
        self._stopping.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    async def _until(self, event: asyncio.Event, call: Awaitable[T]) -> T:
        """`call`, cancelled as soon as `event` is set (then `Stopped`)."""
        task = asyncio.ensure_future(call)
        waiter = asyncio.ensure_future(event.wait())
        try:
            await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
            raise Stopped
        return task.result()

    async def _persist(
        self,
        what: str,
        call: Callable[[], Awaitable[T]],
        *,
        stop: asyncio.Event,
        cancel_on: asyncio.Event,
    ) -> T:
        """`call()` again and again while the API is unavailable, until `stop` is set.

        `cancel_on` cuts a call in flight short. Each failure is one log line
        with its reason and the wait before the next try; the waits double up to
        `max_backoff` (a `Retry-After` counts instead, within the same cap).
        """
        failures = 0
        first_failure = 0.0
        while True:
            try:
                result = await self._until(cancel_on, call())
            except RunwatchError as exc:
                if not _retryable(exc):
                    raise
                failures += 1
                self.failures += 1
                now = time.monotonic()
                if failures == 1:
                    first_failure = now
                down_for = now - first_failure
                if self.give_up_after is not None and down_for >= self.give_up_after:
                    raise GaveUp(
                        f"{what} failed for {down_for:.0f} s ({failures} tries), giving up: "
                        f"{describe(exc)}"
                    ) from exc
                delay = self.backoff.delay(failures, getattr(exc, "retry_after", None))
                if stop.is_set():
                    logger.warning(
                        "%s failed: %s; not retrying while stopping", what, describe(exc)
                    )
                    raise Stopped from exc
                logger.warning(
                    "%s failed (try %d): %s; retrying in %.1f s",
                    what,
                    failures,
                    describe(exc),
                    delay,
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
                if stop.is_set():
                    raise Stopped from exc
                continue
            if failures:
                logger.info("%s succeeded after %d failed tries", what, failures)
            return result

    async def _report(self, run_id: str, body: dict[str, Any]) -> Any:
        body = {**body, "worker_id": self.worker_id}
        try:
            return await self._persist(
                f"reporting {run_id}",
                lambda: self.api.update_extraction_run(run_id, body),
                stop=self._stopping,
                cancel_on=self._aborting,
            )
        except (NotFoundError, ConflictError) as exc:
            raise LostRun(exc.detail) from exc
        except InvalidArgumentError as exc:
            if body.get("status") != "completed":
                raise
            # The result broke a limit (size, depth, metric names): fail the run
            # with the reason rather than leaving it to expire and retry.
            return await self._report(
                run_id,
                {"status": "failed", "error": f"result rejected: {exc.detail}"[:10_000]},
            )

    async def claim(self) -> list[dict[str, Any]]:
        """Claim up to `batch` runs; [] when there are none or a stop came while waiting."""
        want = self.batch
        if self.max_runs is not None:
            want = min(want, self.max_runs - self.processed)
        try:
            runs = await self._persist(
                "claiming runs",
                lambda: self.api.claim_extraction_runs(
                    worker_id=self.worker_id, max_runs=want, lease_seconds=self.lease_seconds
                ),
                stop=self._stopping,
                cancel_on=self._stopping,
            )
        except Stopped:
            return []
        except (UnauthorizedError, ForbiddenError) as exc:
            raise PermissionError(
                f"the API refused the claim ({exc.status}): {exc.detail} Give a write key "
                "with --api-key or RUNWATCH_API_KEY."
            ) from exc
        return [run.model_dump(mode="json") for run in runs]

    async def release(self, run_id: str) -> None:
        try:
            await self._until(
                self._aborting,
                self.api.release_extraction_run(run_id, worker_id=self.worker_id),
            )
        except (RunwatchError, Stopped) as exc:
            reason = describe(exc) if isinstance(exc, RunwatchError) else "stopped"
            logger.warning("could not release %s (its lease will expire): %s", run_id, reason)
            return
        self.released += 1
        logger.info("released %s", run_id)

    async def _keep_lease(self, run_id: str) -> None:
        interval = max(self.lease_seconds / 3, 0.5)
        while True:
            await asyncio.sleep(interval)
            try:
                await self.api.update_extraction_run(
                    run_id, {"lease_seconds": self.lease_seconds, "worker_id": self.worker_id}
                )
            except (NotFoundError, ConflictError) as exc:
                raise LostRun(exc.detail) from exc
            except RunwatchError as exc:
                # Keep trying: the lease may still be saved before it expires.
                logger.warning("could not extend the lease of %s: %s", run_id, describe(exc))

    async def execute(self, run: dict[str, Any]) -> None:
        """Execute one claimed run and report the outcome (or release it when stopped)."""
        run_id = run["id"]
        job = asyncio.create_task(self.executor(_public_run(run)))
        heartbeat = asyncio.create_task(self._keep_lease(run_id))
        aborted = asyncio.create_task(self._aborting.wait())
        stopping = asyncio.create_task(self._stopping.wait())
        try:
            waiting = {job, heartbeat, aborted, stopping}
            deadline = None
            while not job.done():
                done, _ = await asyncio.wait(
                    waiting, timeout=deadline, return_when=asyncio.FIRST_COMPLETED
                )
                if heartbeat in done:
                    heartbeat.result()  # LostRun: someone else has the run now
                if aborted in done or (deadline is not None and not done):
                    job.cancel()
                    with contextlib.suppress(BaseException):
                        await job
                    await self.release(run_id)
                    return
                if stopping in done:
                    waiting.discard(stopping)
                    deadline = self.grace_seconds
        except LostRun as exc:
            job.cancel()
            logger.warning("lost %s: %s", run_id, exc)
            return
        finally:
            for task in (heartbeat, aborted, stopping):
                task.cancel()
        try:
            body = job.result().as_patch()
        except ExecutionError as exc:
            body = {"status": "failed", "error": str(exc)[:10_000] or "failed"}
        except Exception as exc:
            body = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"[:10_000]}
        try:
            # Once stopping, one try: the lease expires and the run is retried.
            reported = await self._report(run_id, body)
        except Stopped:
            logger.warning("could not report %s before stopping; its lease will expire", run_id)
            return
        except (LostRun, RunwatchError) as exc:
            reason = describe(exc) if isinstance(exc, RunwatchError) else str(exc)
            logger.warning("could not report %s: %s", run_id, reason)
            return
        self.processed += 1
        if reported.status == "completed":
            self.completed += 1
        else:
            self.failed += 1
        logger.info("%s %s", run_id, reported.status)

    async def run(self) -> int:
        """The loop; returns how many runs this worker reported."""
        logger.info("worker %s started against %s", self.worker_id, self.api.url)
        while not self.stopping:
            if self.max_runs is not None and self.processed >= self.max_runs:
                break
            runs = await self.claim()
            if not runs:
                if self.exit_when_idle or self.stopping:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), self.poll_interval)
                continue
            for index, run in enumerate(runs):
                if self.stopping:
                    for held in runs[index:]:
                        await self.release(held["id"])
                    break
                await self.execute(run)
        logger.info(
            "worker %s stopped: %d completed, %d failed, %d released",
            self.worker_id,
            self.completed,
            self.failed,
            self.released,
        )
        return self.processed


def _public_run(run: Mapping[str, Any]) -> dict[str, Any]:
    keys = ("id", "prompt_id", "config_id", "document_name", "attempts", "lease_expires_at")
    return {key: run[key] for key in keys if key in run}

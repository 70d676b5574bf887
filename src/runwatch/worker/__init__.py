"""The extraction worker: claims runs over HTTP, executes them, reports results, stops gracefully.

A worker needs only the API's URL, so workers can run on any machine. It
claims pending runs (`POST /extraction-runs/claim`), executes each with an
*executor*, keeps the lease alive while it works (`PATCH` with
`lease_seconds`), and reports `completed` or `failed`. Two kinds of executor:

* `--executor module:function`: a Python callable in this process. It gets the
  run (a dict with `id`, `prompt_id`, `config_id`, `document_name`,
  `attempts`) and returns an `ExtractionResult`, or a dict: a dict whose keys
  are `output` plus any of `metrics`, `tokens`, `cost_usd` is a result, any
  other dict is the output itself. Raising fails the run with the message.
  It may be a plain or an `async` function.
* `--command 'CMD'`: a program run through the shell once per run, with the
  run as JSON on stdin. It prints one JSON object on stdout: `{"output": {...},
  "metrics": {...}, "tokens": {"input": n, "output": n}, "cost_usd": x}`
  (all but `output` optional), or `{"error": "why"}` to fail the run. A
  non-zero exit status fails the run with the end of its stderr.

On SIGTERM or SIGINT the worker stops claiming, lets the run in progress
finish for up to `grace_seconds` (then abandons it: a command is killed) and
gives every run it still holds back to `pending`. A second signal stops at once.

The worker talks to the API through `runwatch.client`. When the API cannot be
reached (or answers 5xx) it logs the reason in one line and tries again after
a back-off that doubles up to `max_backoff` seconds (or the server's
`Retry-After`), for as long as it takes, unless `give_up_after` seconds of
failures in a row are given. A stop signal ends any back-off at once.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Any

import httpx

from runwatch.client import AsyncRunwatchClient, RunwatchError, describe
from runwatch.worker.executors import (
    ExecutionError,
    Executor,
    ExtractionResult,
    as_result,
    command_executor,
    load_callable,
    python_executor,
)
from runwatch.worker.loop import GaveUp, LostRun, Stopped, Worker, default_worker_id, logger

__all__ = [
    "ExecutionError",
    "Executor",
    "ExtractionResult",
    "GaveUp",
    "LostRun",
    "Stopped",
    "Worker",
    "as_result",
    "command_executor",
    "default_worker_id",
    "load_callable",
    "make_client",
    "python_executor",
    "run_worker",
]


def make_client(
    url: str, *, api_key: str | None = None, transport: httpx.AsyncBaseTransport | None = None
) -> httpx.AsyncClient:
    """An HTTP client for the worker: `api_key` (a `write` key) goes out as a bearer token."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    return httpx.AsyncClient(base_url=url, timeout=30.0, headers=headers, transport=transport)


async def run_worker(
    *,
    url: str,
    executor_spec: str | None = None,
    command: str | None = None,
    command_timeout: float | None = None,
    api_key: str | None = None,
    **options: Any,
) -> int:
    """Build the executor, run a worker against `url`, and stop it on SIGTERM/SIGINT.

    Giving up on the API, or a key it refuses, ends the process with one error
    line and exit status 1.
    """
    if (executor_spec is None) == (command is None):
        raise ValueError("give exactly one of an executor (module:function) or a command")
    executor = (
        python_executor(load_callable(executor_spec))
        if executor_spec is not None
        else command_executor(command or "", timeout=command_timeout)
    )
    # One line per request from httpx would drown the worker's own log.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    timeout = httpx.Timeout(30.0, connect=10.0)
    async with AsyncRunwatchClient(url, api_key=api_key or None, timeout=timeout) as client:
        worker = Worker(client, executor, **options)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, worker.stop)
        try:
            return await worker.run()
        except (GaveUp, PermissionError, RunwatchError) as exc:
            reason = describe(exc) if isinstance(exc, RunwatchError) else str(exc)
            logger.error("worker %s: %s", worker.worker_id, reason)
            raise SystemExit(1) from None
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)

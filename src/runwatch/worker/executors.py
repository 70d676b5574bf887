"""Executors: what turns one claimed run into a result, in this process or as a command.

A Python callable gets the run as a dict and returns an `ExtractionResult` or
a dict; a command gets the run as JSON on stdin and prints the result as JSON
on stdout. Either way a failure is an `ExecutionError` with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import inspect
import json
import os
import signal
import threading
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

RESULT_KEYS = frozenset({"output", "metrics", "tokens", "cost_usd"})
STDERR_TAIL = 2000


@dataclass(frozen=True)
class ExtractionResult:
    """What an executor produces for one run."""

    output: dict[str, Any]
    metrics: dict[str, float] | None = None
    tokens: dict[str, int | None] | None = None
    cost_usd: float | None = None

    def as_patch(self) -> dict[str, Any]:
        body: dict[str, Any] = {"status": "completed", "output": self.output}
        if self.metrics is not None:
            body["metrics"] = self.metrics
        if self.tokens is not None:
            body["tokens"] = self.tokens
        if self.cost_usd is not None:
            body["cost_usd"] = self.cost_usd
        return body


class ExecutionError(Exception):
    """The executor could not produce a result; the run is failed with this message."""


Executor = Callable[[dict[str, Any]], Awaitable[ExtractionResult]]


def as_result(value: Any, *, strict: bool = False) -> ExtractionResult:
    """An executor's return value as a result; `strict` demands the `{"output": …}` form."""
    if isinstance(value, ExtractionResult):
        return value
    if not isinstance(value, Mapping):
        raise ExecutionError(f"the executor returned {type(value).__name__}, not a JSON object")
    is_result = "output" in value and set(value) <= RESULT_KEYS
    if strict and "error" in value and set(value) == {"error"}:
        raise ExecutionError(str(value["error"]))
    if not is_result:
        if strict:
            raise ExecutionError(
                'the result must be {"output": {...}} with optional metrics, tokens and '
                'cost_usd, or {"error": "..."}'
            )
        return ExtractionResult(output=dict(value))
    output = value["output"]
    if not isinstance(output, Mapping):
        raise ExecutionError("the result's output must be a JSON object")
    return ExtractionResult(
        output=dict(output),
        metrics=value.get("metrics"),
        tokens=value.get("tokens"),
        cost_usd=value.get("cost_usd"),
    )


def load_callable(spec: str) -> Callable[..., Any]:
    """`package.module:function` as the function it names."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"expected module:function, got '{spec}'")
    target: Any = importlib.import_module(module_name)
    for part in attribute.split("."):
        target = getattr(target, part)
    if not callable(target):
        raise ValueError(f"'{spec}' is not callable")
    return target


def _in_daemon_thread(fn: Callable[[Any], Any], arg: Any) -> asyncio.Future[Any]:
    # A daemon thread rather than the loop's default executor: a callable that
    # never returns must not keep the process alive after a stop.
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()

    def settle(ok: bool, value: Any) -> None:
        if future.done():
            return
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)

    def target() -> None:
        try:
            result = fn(arg)
        except BaseException as exc:
            loop.call_soon_threadsafe(settle, False, exc)
        else:
            loop.call_soon_threadsafe(settle, True, result)

    threading.Thread(target=target, name="runwatch-executor", daemon=True).start()
    return future


def python_executor(fn: Callable[[dict[str, Any]], Any]) -> Executor:
    """An executor calling `fn(run)`, awaited if it is async, else in a thread."""

    async def execute(run: dict[str, Any]) -> ExtractionResult:
        try:
            if inspect.iscoroutinefunction(fn):
                value = await fn(run)
            else:
                value = await _in_daemon_thread(fn, run)
        except ExecutionError:
            raise
        except Exception as exc:
            raise ExecutionError(f"{type(exc).__name__}: {exc}") from exc
        return as_result(value)

    return execute


def command_executor(command: str, *, timeout: float | None = None) -> Executor:
    """An executor running `command` in a shell: run JSON on stdin, result JSON on stdout."""

    async def execute(run: dict[str, Any]) -> ExtractionResult:
        process = await asyncio.create_subprocess_shell(
            command,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,  # so that a kill reaches the whole process group
        )
        try:
            stdout, stderr = await asyncio.wait_for(
                process.communicate(json.dumps(run).encode()), timeout
            )
        except asyncio.CancelledError:
            await _kill(process)
            raise
        except TimeoutError:
            await _kill(process)
            raise ExecutionError(f"the command did not finish within {timeout} s") from None
        if process.returncode != 0:
            tail = stderr.decode(errors="replace")[-STDERR_TAIL:].strip()
            raise ExecutionError(
                f"the command exited with status {process.returncode}"
                + (f": {tail}" if tail else "")
            )
        try:
            value = json.loads(stdout)
        except ValueError as exc:
            raise ExecutionError(f"the command's stdout is not JSON: {exc}") from None
        return as_result(value, strict=True)

    return execute


async def _kill(process: asyncio.subprocess.Process) -> None:
    """Kill the command and whatever it started, and reap it."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(Exception):
        await process.wait()

"""When a request is tried again, and for how long: the same for both clients."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import httpx

from runwatch.client.errors import (
    RunwatchConnectionError,
    RunwatchError,
    TemporaryError,
    error_for,
)

# Answers worth another try; `error_for` makes them `UnavailableError`s, which are temporary.
RETRY_STATUSES = frozenset({502, 503, 504})
# Network failures worth another try: the server restarting, a dropped connection.
RETRY_EXCEPTIONS = (httpx.NetworkError, httpx.TimeoutException, httpx.RemoteProtocolError)
# What a try may fail with: temporary failures are tried again, the others raised at once.
FAILURES = (TemporaryError, httpx.HTTPError)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry a request that met a `TemporaryError`.

    Delays double from `backoff` up to `max_delay`; a `Retry-After` from the
    server replaces the computed delay but is capped by `max_delay` too.
    `retries=0` sends each request once.
    """

    retries: int = 4
    backoff: float = 0.5
    max_delay: float = 30.0

    def delay(self, failures: int, retry_after: float | None = None) -> float:
        """The wait after the `failures`-th consecutive failure (1, 2, …)."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_delay)
        return min(self.backoff * 2 ** max(failures - 1, 0), self.max_delay)


def checked(response: httpx.Response) -> httpx.Response:
    """The response, or its typed error raised when it is an error answer."""
    if response.status_code >= 400:
        raise error_for(response)
    return response


class Attempts:
    """The consecutive failures of one request, and what to do after each."""

    def __init__(self, policy: RetryPolicy, url: str) -> None:
        self.policy = policy
        self.url = url
        self.failures = 0

    def wait_after(self, exc: TemporaryError | httpx.HTTPError) -> float:
        """Seconds to wait before the next try; raises when there should be none."""
        if isinstance(exc, RETRY_EXCEPTIONS):
            error: TemporaryError = RunwatchConnectionError(f"cannot reach {self.url}")
            error.__cause__ = exc
        elif isinstance(exc, TemporaryError):
            error = exc
        else:  # a bad URL, say: trying again cannot help
            raise RunwatchError(f"cannot send to {self.url}: {exc}") from exc
        self.failures += 1
        if self.failures > self.policy.retries:
            raise error
        return self.policy.delay(self.failures, error.retry_after)


@contextlib.contextmanager
def broken_off(url: str) -> Iterator[None]:
    """A stream that breaks off while being read is a `RunwatchConnectionError`."""
    try:
        yield
    except RETRY_EXCEPTIONS as exc:
        raise RunwatchConnectionError(f"the export from {url} broke off") from exc

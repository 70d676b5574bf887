"""What both clients are made of: configuration, headers, an httpx client and every method."""

from __future__ import annotations

import os
from typing import Any, Generic, TypeVar

import httpx

from runwatch.client.calls import Call
from runwatch.client.extraction_runs import ExtractionRunMethods
from runwatch.client.layer_runs import LayerRunMethods
from runwatch.client.operator import OperatorMethods
from runwatch.client.retries import RetryPolicy

DEFAULT_URL = "http://127.0.0.1:8000"
DEFAULT_TIMEOUT = 30.0
H = TypeVar("H", httpx.Client, httpx.AsyncClient)
TR = TypeVar("TR", httpx.BaseTransport, httpx.AsyncBaseTransport)


class ClientBase(LayerRunMethods, OperatorMethods, ExtractionRunMethods, Generic[H, TR]):
    """What both clients are made of: the URL, the headers, the retry policy and an httpx client.

    `url` defaults to `RUNWATCH_URL` (else http://127.0.0.1:8000), `api_key` to
    `RUNWATCH_API_KEY`. `read_from_primary` reads your own writes when the
    server reads from replicas. Pass `http_client` to use an httpx client of
    your own (its base URL and transport are used as they are).
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        api_key: str | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        read_from_primary: bool = False,
        http_client: H | None = None,
        transport: TR | None = None,
    ) -> None:
        if url is None and http_client is not None:
            url = str(http_client.base_url)
        self.url = (url or os.environ.get("RUNWATCH_URL") or DEFAULT_URL).rstrip("/")
        if api_key is None:
            api_key = os.environ.get("RUNWATCH_API_KEY") or None
        self.retry = retry or RetryPolicy()
        self._headers = {"Accept": "application/json", "User-Agent": "runwatch-client"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        if read_from_primary:
            self._headers["X-Runwatch-Read-From"] = "primary"
        self._owns_http = http_client is None
        self.http: H = http_client or self._new_http(self.url, timeout, transport)

    def _request(self, call: Call[Any]) -> httpx.Request:
        return self.http.build_request(
            call.method, call.path, params=call.params, json=call.body, headers=self._headers
        )

    @staticmethod
    def _new_http(url: str, timeout: float | httpx.Timeout, transport: TR | None) -> H:
        raise NotImplementedError

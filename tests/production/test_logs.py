"""One JSON line per request, with request id, route, status and duration, never a key."""

from __future__ import annotations

import json
import logging
import sys

import httpx
import pytest

from runwatch.logs import JsonFormatter
from tests.factories import layer_run


async def test_request_log_line_as_json(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    body = layer_run()
    assert (await client.post("/runs", json=body)).status_code == 201
    with caplog.at_level(logging.INFO, logger="runwatch.requests"):
        # Only this request's line: an earlier test may have left the logger at INFO,
        # and then the POST above was logged too.
        caplog.clear()
        response = await client.get(f"/runs/{body['id']}", headers={"X-Request-ID": "req-42"})
    assert response.status_code == 200
    records = [r for r in caplog.records if r.name == "runwatch.requests"]
    assert len(records) == 1
    line = json.loads(JsonFormatter().format(records[0]))
    assert line["request_id"] == "req-42"
    assert line["route"] == "/runs/{run_id}"
    assert line["path"] == f"/runs/{body['id']}"
    assert line["status"] == 200
    assert line["method"] == "GET"
    assert isinstance(line["duration_ms"], float)
    assert line["level"] == "info"
    assert line["time"].endswith("Z")


def test_json_formatter_keeps_extras_and_exceptions() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        info = sys.exc_info()
    record = logging.getLogger("t").makeRecord(
        "t", logging.ERROR, "f", 1, "failed %s", ("x",), info, extra={"key_name": "dashboard"}
    )
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "failed x"
    assert line["key_name"] == "dashboard"
    assert "ValueError: boom" in line["exception"]

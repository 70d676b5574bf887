"""The key is decided first: without one, no body is read and no parameter is checked."""

from __future__ import annotations

from typing import Any

from runwatch.config import Settings
from runwatch.db.engine import Engines
from tests.factories import layer_run
from tests.security.conftest import app_of, bearer, new_key, serve

KEYED = {"host": "0.0.0.0"}


async def _call(app: Any, method: str, path: str, body: bytes, headers: dict[str, str]) -> tuple:
    """Call the app as a server would; report the answer and whether the body was read."""
    read = False

    async def receive() -> dict[str, Any]:
        nonlocal read
        read = True
        return {"type": "http.request", "body": body, "more_body": False}

    answer: dict[str, Any] = {}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            answer["status"] = message["status"]
            answer["headers"] = dict(message["headers"])

    path, _, query = path.partition("?")
    raw_headers = [(b"content-length", str(len(body)).encode())]
    raw_headers += [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": raw_headers,
        "client": ("127.0.0.1", 1),
        "server": ("runwatch.test", 80),
        "state": {},
    }
    await app(scope, receive, send)
    return answer["status"], answer["headers"], read


async def test_no_key_is_401_before_the_body_is_read(settings: Settings, engines: Engines) -> None:
    token = await new_key(engines, "write")
    huge_invalid = b'{"errors": [' + b"1," * 4_000_000 + b"1]}"
    async with serve(settings, **KEYED) as client:
        app = app_of(client)
        for body in (huge_invalid, b"not json at all"):
            status, headers, read = await _call(app, "POST", "/runs", body, {})
            assert status == 401
            assert headers[b"content-type"] == b"application/problem+json"
            assert b"www-authenticate" in headers
            assert not read, "the body was read before the key was checked"
        # An unknown parameter is not looked at either: the answer is about the key.
        status, _, _ = await _call(app, "GET", "/runs?limt=5", b"", {})
        assert status == 401
        # With the key, the same requests reach validation.
        status, _, read = await _call(
            app, "POST", "/runs", b"not json at all", {**bearer(token), "content-type": "x"}
        )
        assert status == 422
        assert read
        response = await client.get("/runs", params={"limt": 5}, headers=bearer(token))
        assert response.status_code == 422
        created = await client.post("/runs", json=layer_run(), headers=bearer(token))
        assert created.status_code == 201

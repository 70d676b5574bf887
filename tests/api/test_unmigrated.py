"""An unmigrated database: 503 naming `runwatch migrate` on every route, never a 500."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from runwatch.config import Settings
from tests.factories import layer_run
from tests.security.conftest import serve


@pytest.fixture
def empty_url(dialect: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    if dialect == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
        return
    admin = request.getfixturevalue("postgres_admin")
    url = admin.create_database("runwatch_unmigrated")
    yield url
    admin.drop_database(url)


REQUESTS = [
    ("GET", "/runs", None),
    ("GET", "/runs/stats/summary", None),
    ("GET", "/runs/stats/timeseries", None),
    ("GET", "/runs/run-1", None),
    ("POST", "/runs", layer_run()),
    ("GET", "/extraction-runs", None),
    ("GET", "/extraction-runs/stats/summary", None),
    ("POST", "/extraction-runs", {"prompt_id": "p", "config_id": "c", "document_name": "d"}),
]


async def test_an_unmigrated_database_answers_503_with_the_remedy(
    empty_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(database_url=empty_url, auto_migrate=False)
    with caplog.at_level(logging.WARNING, logger="runwatch"):
        async with serve(settings) as client:
            for method, path, body in REQUESTS:
                response = await client.request(method, path, json=body)
                assert response.status_code == 503, (method, path, response.text)
                assert response.headers["content-type"] == "application/problem+json"
                problem = response.json()
                assert problem["code"] == "unavailable"
                assert "runwatch migrate" in problem["detail"]
                assert "Retry-After" in response.headers
                # A conditional request too (the ETag check reads the database first).
                if method == "GET":
                    conditional = await client.get(path, headers={"If-None-Match": '"1"'})
                    assert conditional.status_code == 503, conditional.text
            ready = await client.get("/readyz")
            assert ready.status_code == 503
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "runwatch migrate" in logged
    for sql in ("SELECT", "FROM api_keys", "[SQL:"):
        assert sql not in logged, logged

"""How many SQL statements each hot endpoint runs: a change that adds one to a hot path fails.

A process keeps the data version for the tag: PostgreSQL's notifications
tell it, so its reads need no statement for it; on SQLite the first read after
a commit reads the version (with the purge horizon) in one statement, and the
reads after it need none while no commit is made (db/sqlite_version.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import event

from tests.api.test_polling_and_history import listening
from tests.factories import layer_run

# Statements for the tag (version and purge horizon) of the first read after a
# write, before the read's own; the reads after it run none.
VERSION_AFTER_A_WRITE = {"postgresql": 0, "sqlite": 1}


def _app(client: httpx.AsyncClient) -> Any:
    return client._transport.app  # type: ignore[attr-defined]


@contextmanager
def counted(client: httpx.AsyncClient) -> Iterator[list[str]]:
    """The statements run while the block runs (BEGIN included, where one is sent)."""
    engines = _app(client).state.engines
    # On PostgreSQL the read engine is a view of the write engine's pool and
    # its events reach the write engine's listeners; SQLite has two engines.
    targets = {id(e.sync_engine): e.sync_engine for e in (engines.write, engines.read)}
    if engines.dialect.name == "postgresql":
        targets = {id(engines.write.sync_engine): engines.write.sync_engine}
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    for engine in targets.values():
        event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        for engine in targets.values():
            event.remove(engine, "before_cursor_execute", record)


async def _seed(client: httpx.AsyncClient, count: int = 6) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    runs = [
        layer_run(
            started_at=now - timedelta(hours=3 + i),
            status=("success", "failed")[i % 2],
            errors=[{"type": "Timeout", "message": f"after {i} s"}] if i % 2 else None,
        )
        for i in range(count)
    ]
    response = await client.post("/runs/batch", json={"runs": runs})
    assert response.status_code == 200, response.text
    await listening(_app(client))
    return runs


async def test_filtered_page_with_exact_total_is_one_statement(
    client: httpx.AsyncClient, dialect: str
) -> None:
    await _seed(client)
    # The first read of the process learns the purge horizon for this version.
    assert (await client.get("/runs", params={"limit": 2})).status_code == 200
    with counted(client) as statements:
        response = await client.get(
            "/runs", params={"layer_name": "nightly-user-reflection", "status": "failed"}
        )
    assert response.status_code == 200
    assert response.json()["total"] == 3
    assert len(statements) == 1, statements


async def test_detail_is_one_statement_and_the_summary_three(
    client: httpx.AsyncClient, dialect: str
) -> None:
    runs = await _seed(client)
    # The first read of the process learns the purge horizon for this version.
    assert (await client.get("/runs", params={"limit": 2})).status_code == 200
    with counted(client) as statements:
        assert (await client.get(f"/runs/{runs[0]['id']}")).status_code == 200
    assert len(statements) == 1, statements
    with counted(client) as statements:
        response = await client.get("/runs/stats/summary", params={"days": 30})
    assert response.status_code == 200
    assert response.json()["total_runs"] == len(runs)
    # The change counters of the window's whole buckets with its raw and running
    # runs; the totals and the duration histograms of those buckets.
    assert len(statements) == 3, "\n---\n".join(statements)


async def test_reads_after_a_write_to_the_current_hour_reuse_the_rest(
    client: httpx.AsyncClient, dialect: str
) -> None:
    runs = await _seed(client)
    layer = runs[0]["layer_name"]
    paths = {
        # The counters with the raw and running runs (and the purge horizon, which
        # a write may have moved).
        "/runs/stats/summary?days=30": 1,
        # The counters with the raw occurrences, then the page's sample runs.
        "/runs/errors?days=30": 2,
        # The counters with the raw runs.
        f"/runs/stats/versions?layer_name={layer}": 1,
    }
    posted = 0
    for _attempt in range(2):
        hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        for path in paths:  # read once: the whole buckets' aggregates are kept
            assert (await client.get(path)).status_code == 200
        now = layer_run(started_at=datetime.now(UTC), layer_name=layer)
        assert (await client.post("/runs", json=now)).status_code == 201
        posted += 1
        await listening(_app(client))
        counts = {}
        for index, path in enumerate(paths):
            with counted(client) as statements:
                response = await client.get(path)
            assert response.status_code == 200
            tag = VERSION_AFTER_A_WRITE[dialect] if index == 0 else 0
            counts[path] = len(statements) - tag
        if datetime.now(UTC).replace(minute=0, second=0, microsecond=0) == hour:
            break  # else an hour began meanwhile, and the whole hours with it: again
    assert counts == paths
    summary = (await client.get("/runs/stats/summary", params={"days": 30})).json()
    assert summary["total_runs"] == len(runs) + posted


async def test_304_and_repeated_reads_run_no_query(client: httpx.AsyncClient, dialect: str) -> None:
    runs = await _seed(client)
    paths = ["/runs?limit=3", f"/runs/{runs[1]['id']}", "/runs/stats/summary?days=30"]
    tags = {}
    for path in paths:
        response = await client.get(path)
        assert response.status_code == 200
        tags[path] = response.headers["etag"]
    for path in paths:
        with counted(client) as statements:
            response = await client.get(path, headers={"If-None-Match": tags[path]})
        assert response.status_code == 304, path
        assert response.content == b""
        assert statements == [], path
        # Asked again without the tag: the answer encoded for this version.
        with counted(client) as statements:
            response = await client.get(path)
        assert response.status_code == 200
        assert response.headers["etag"] == tags[path]
        assert statements == [], path


async def test_batch_statements_do_not_grow_with_its_size(client: httpx.AsyncClient) -> None:
    counts = []
    for size in (5, 200):
        runs = [layer_run() for _ in range(size)]
        with counted(client) as statements:
            response = await client.post("/runs/batch", json={"runs": runs})
        assert response.status_code == 200, response.text
        assert response.json()["created"] == size
        counts.append(len(statements))
    assert counts[0] == counts[1], counts

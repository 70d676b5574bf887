"""SQLite: the data version kept without a statement, exact across processes.

See db/sqlite_version.py.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url

from runwatch.db.sqlite_version import read_header, shm_path
from runwatch.db.tables import DATA_VERSION_KEY
from tests.api.test_statement_counts import counted
from tests.factories import layer_run

# Another process commits to the database file: the version, as every writer moves it.
BUMP = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("PRAGMA busy_timeout=5000")
db.execute("UPDATE runwatch_state SET number = number + 1 WHERE key = ?", (sys.argv[2],))
db.close()
"""


def _bump_in_another_process(database_url: str) -> None:
    path = make_url(database_url).database
    subprocess.run([sys.executable, "-c", BUMP, path, DATA_VERSION_KEY], check=True, timeout=30)


@pytest.mark.parametrize("dialect", ["sqlite"], indirect=True)
async def test_a_commit_by_another_process_moves_the_tag(
    client: httpx.AsyncClient, database_url: str
) -> None:
    assert (await client.post("/runs", json=layer_run())).status_code == 201
    for path in ("/runs", "/runs/stats/summary?days=7"):
        etag = (await client.get(path)).headers["etag"]
        with counted(client) as statements:
            assert (await client.get(path, headers={"If-None-Match": etag})).status_code == 304
        assert statements == []  # known, and unchanged since it was read

        _bump_in_another_process(database_url)
        with counted(client) as statements:
            moved = await client.get(path, headers={"If-None-Match": etag})
        assert moved.status_code == 200, "a stale 304 after another process's commit"
        assert moved.headers["etag"] != etag
        assert any("runwatch_state" in s for s in statements), statements
        # Learned again: the next conditional request is a 304 with no statement.
        with counted(client) as statements:
            again = await client.get(path, headers={"If-None-Match": moved.headers["etag"]})
        assert (again.status_code, statements) == (304, [])


def test_the_header_is_trusted_only_when_whole(tmp_path: Path) -> None:
    shm = tmp_path / "db-shm"
    assert read_header(str(shm)) is None  # no file: not WAL, or not opened yet
    header = bytes(range(48))
    shm.write_bytes(header + header + b"\0" * 40)
    assert read_header(str(shm)) == header
    shm.write_bytes(header + bytes(48) + b"\0" * 40)  # the two copies differ: being written
    assert read_header(str(shm)) is None
    uninitialised = bytes(12) + b"\0" + bytes(35)
    shm.write_bytes(uninitialised * 2)
    assert read_header(str(shm)) is None
    shm.write_bytes(header[:30])  # short
    assert read_header(str(shm)) is None


def test_only_a_database_file_has_a_wal_index() -> None:
    assert shm_path("sqlite+aiosqlite:////data/runwatch.db") == "/data/runwatch.db-shm"
    assert shm_path("sqlite+aiosqlite:///:memory:") is None
    assert shm_path("sqlite+aiosqlite://") is None

"""PostgreSQL writes an export's timestamps as the API does, whatever the session's DateStyle."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import bindparam, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from runwatch.db.types import UtcDateTime
from runwatch.queries.export import rfc3339_text
from runwatch.schemas.common import rfc3339

MOMENTS = [
    datetime(2026, 1, 23, 3, 0, tzinfo=UTC),
    datetime(2026, 1, 23, 3, 0, 0, 250000, tzinfo=UTC),
    datetime(2026, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    datetime(2026, 6, 1, 12, 0, 0, 1, tzinfo=UTC),
    datetime(999, 2, 3, 4, 5, 6, 100, tzinfo=UTC),
]

# The database writes the timestamps only on PostgreSQL; SQLite's are Python's.
pytestmark = pytest.mark.parametrize("dialect", ["postgresql"], indirect=True)


@pytest.mark.parametrize("style", ["ISO, MDY", "ISO, DMY", "German", "SQL, DMY", "Postgres"])
async def test_rfc3339_text_under_every_datestyle(
    conn: AsyncConnection, dialect: str, style: str
) -> None:
    await conn.execute(text(f"SET LOCAL datestyle = '{style}'"))
    at = bindparam("at", type_=UtcDateTime)
    statement = select(rfc3339_text(at))
    for moment in MOMENTS:
        written = (await conn.execute(statement, {"at": moment})).scalar_one()
        assert written == rfc3339(moment), (style, moment)
    assert (await conn.execute(statement, {"at": None})).scalar_one() is None

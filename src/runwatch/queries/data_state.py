"""The data version that ETags are made from, and the layer-run purge horizon.

Both live in `runwatch_state`. Every write advances the version in its own
transaction; moving the purge horizon advances it too, since readers cache
the horizon per version.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from runwatch.db.dialect import dialect_of
from runwatch.db.tables import DATA_VERSION_KEY, PURGED_BEFORE_KEY, runwatch_state

NEW_VERSION_INFO_KEY = "runwatch_new_data_version"


async def bump_data_version(conn: AsyncConnection) -> None:
    """Advance the version that ETags are made from (in the writer's transaction).

    The new version is left in `conn.info`, so that once the transaction has
    committed the writing process can update its own cached version at once
    (other processes hear of it by notification).
    """
    result = await conn.execute(
        update(runwatch_state)
        .where(runwatch_state.c.key == DATA_VERSION_KEY)
        .values(number=runwatch_state.c.number + 1)
        .returning(
            runwatch_state.c.number,
            dialect_of(conn).announce_new_version(runwatch_state.c.number),
        )
    )
    row = result.first()
    if row is not None:
        conn.info[NEW_VERSION_INFO_KEY] = int(row[0])


@dataclass(frozen=True)
class DataState:
    """The data version (what ETags are made of) and the layer-run purge horizon."""

    version: int
    purged_before: datetime | None


_STATE_QUERY = select(runwatch_state.c.key, runwatch_state.c.number, runwatch_state.c.moment).where(
    runwatch_state.c.key.in_([DATA_VERSION_KEY, PURGED_BEFORE_KEY])
)


async def read_data_state(conn: AsyncConnection) -> DataState:
    """Both in one statement: a read needs the version for its tag, a list the horizon too."""
    version, horizon = 0, None
    for key, number, moment in await conn.execute(_STATE_QUERY):
        if key == DATA_VERSION_KEY:
            version = int(number or 0)
        else:
            horizon = moment
    return DataState(version, horizon)


async def data_version(conn: AsyncConnection) -> int:
    query = select(runwatch_state.c.number).where(runwatch_state.c.key == DATA_VERSION_KEY)
    return int((await conn.execute(query)).scalar_one_or_none() or 0)


async def purged_before(conn: AsyncConnection) -> datetime | None:
    query = select(runwatch_state.c.moment).where(runwatch_state.c.key == PURGED_BEFORE_KEY)
    return (await conn.execute(query)).scalar_one_or_none()


async def set_purged_before(conn: AsyncConnection, moment: datetime) -> None:
    """Move the horizon, and the version with it: readers cache the horizon per version."""
    await dialect_of(conn).upsert_many(
        conn,
        runwatch_state,
        [{"key": PURGED_BEFORE_KEY, "moment": moment, "number": None}],
        key=("key",),
        replaced=("moment",),
    )
    await bump_data_version(conn)

"""A burst of concurrent requests keeps the connections it opened, on both databases."""

from __future__ import annotations

import asyncio

from sqlalchemy import event

from runwatch.config import Settings
from runwatch.db.engine import create_engines


async def test_connections_opened_by_a_burst_are_kept(settings: Settings) -> None:
    # With the default settings: 16 requests at once, as the benchmark's clients send them.
    engines = create_engines(settings)
    pool = engines.read.sync_engine.pool
    opened = holding = 0
    all_in, release = asyncio.Event(), asyncio.Event()

    async def request() -> None:
        nonlocal holding
        async with engines.read.connect() as conn:
            await conn.exec_driver_sql("SELECT 1")
            holding += 1
            if holding == 16:
                all_in.set()
            await release.wait()

    def count_open(*_args: object) -> None:
        nonlocal opened
        opened += 1

    event.listen(engines.read.sync_engine, "connect", count_open)
    try:
        for _burst in range(3):
            holding = 0
            tasks = [asyncio.create_task(request()) for _ in range(16)]
            await asyncio.wait_for(all_in.wait(), timeout=30)
            assert pool.checkedout() == 16
            release.set()
            await asyncio.gather(*tasks)
            all_in.clear()
            release.clear()
        # Each of the 16 was opened once and kept between the bursts: none was
        # closed on its way back, to be opened again for the next burst.
        assert opened == 16
        assert pool.checkedin() == 16
    finally:
        await engines.dispose()

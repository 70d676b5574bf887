"""The data version cached in each API process, kept current by PostgreSQL notifications."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

from runwatch.db.dialect import DATA_VERSION_CHANNEL
from runwatch.db.tables import DATA_VERSION_KEY

logger = logging.getLogger("runwatch")

HEALTH_CHECK_SECONDS = 5.0
MAX_BACKOFF_SECONDS = 10.0


class DataVersionCache:
    """Listens on one connection for the version every writer announces at commit.

    `current` is the latest version heard, or None while not listening (not
    yet connected, or the connection was lost): callers then read the version
    from the database instead, so a lost listener costs speed, never freshness.
    The connection's end is noticed as it happens (a restarted server closes
    it), and a silent one by a health check every few seconds; either way the
    cache stops answering until it has reconnected and re-read the version.
    """

    def __init__(self, database_url: str, *, connect_timeout: float) -> None:
        url = make_url(database_url).set(drivername="postgresql")
        self._dsn = url.render_as_string(hide_password=False)
        self._timeout = connect_timeout
        self._version: int | None = None
        self._listening = False
        self._lost = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def current(self) -> int | None:
        return self._version if self._listening else None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="version-watch")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._listening = False

    def observe(self, version: int) -> None:
        """A version known to be committed (heard, or written by this process)."""
        if self._version is None or version > self._version:
            self._version = version

    def before_read(self) -> None:
        """Nothing to pair with a version read: versions are heard as they are committed."""
        return None

    def learned(self, _mark: object, _version: int) -> None:
        """Versions read by requests teach nothing beyond what is heard."""

    def _terminated(self, _conn: Any) -> None:
        # Called by asyncpg as soon as the connection closes: notifications
        # sent from now on would be missed, so stop answering at once.
        self._listening = False
        self._lost.set()

    def _heard(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        try:
            self.observe(int(payload))
        except ValueError:
            return

    async def _run(self) -> None:
        backoff = 0.5
        while True:
            conn = None
            served = False
            self._lost.clear()
            try:
                conn = await asyncpg.connect(self._dsn, timeout=self._timeout)
                conn.add_termination_listener(self._terminated)
                await conn.add_listener(DATA_VERSION_CHANNEL, self._heard)
                # Read after LISTEN, so that no version committed in between is missed.
                stored = await conn.fetchval(
                    "SELECT number FROM runwatch_state WHERE key = $1", DATA_VERSION_KEY
                )
                self.observe(int(stored or 0))
                if self._lost.is_set() or conn.is_closed():
                    raise ConnectionError("the notification connection closed while starting")
                self._listening = served = True
                backoff = 0.5
                while True:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._lost.wait(), timeout=HEALTH_CHECK_SECONDS)
                    if self._lost.is_set():
                        raise ConnectionError("the notification connection closed")
                    await asyncio.wait_for(conn.fetchval("SELECT 1"), timeout=self._timeout)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any failure: stop trusting the cache, then retry
                if served:
                    logger.warning("data version listener lost: %s", exc)
                self._listening = False
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
            finally:
                self._listening = False
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(conn.close(), timeout=1.0)

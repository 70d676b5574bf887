"""The data version cached in an API process on SQLite, kept exact by the WAL-index header.

SQLite has no notifications, but in WAL mode every commit, by any process,
rewrites the header at the start of the database's `-shm` file (the
wal-index, https://www.sqlite.org/walformat.html): it holds a counter of
transactions, the last frame of the log and its salts. So a version read from
the database stays the version for as long as that header reads the same.
The header is read before the version (a commit in between changes the
header, so the pair is never trusted beyond it), and each check reads it
again from the file by its path: reading 96 bytes costs microseconds, where a
statement through the driver's thread costs about a millisecond.

Anything unusual means "not known", and the caller reads the version from the
database: no `-shm` file (an in-memory database, or a journal mode other
than WAL), the two copies of the header differing (a commit is being
written), or the file missing or unreadable.
"""

from __future__ import annotations

import os

from sqlalchemy.engine import make_url

_HEADER_BYTES = 48  # one copy of the wal-index header; a second copy follows it


def shm_path(database_url: str) -> str | None:
    """The `-shm` file of a SQLite database URL; None for an in-memory database."""
    database = make_url(database_url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return database + "-shm"


def read_header(path: str) -> bytes | None:
    """The wal-index header as it stands, or None when it cannot be trusted right now."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        data = os.pread(fd, 2 * _HEADER_BYTES, 0)
    except OSError:
        return None
    finally:
        os.close(fd)
    first, second = data[:_HEADER_BYTES], data[_HEADER_BYTES:]
    # Byte 12 is `isInit`: the header has been written at least once.
    if len(data) < 2 * _HEADER_BYTES or first != second or not first[12]:
        return None
    return first


class WalVersionCache:
    """`current`: the version read last, while no commit has been made since (see above)."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._header: bytes | None = None
        self._version: int | None = None

    @property
    def current(self) -> int | None:
        if self._header is None or read_header(self._path) != self._header:
            return None
        return self._version

    def before_read(self) -> bytes | None:
        """The header to pair with the version about to be read (call it first)."""
        return read_header(self._path)

    def learned(self, header: bytes | None, version: int) -> None:
        """The version read after `header` was: current while the header stays so."""
        if header is not None:
            self._header, self._version = header, version

    def observe(self, version: int) -> None:
        """This process's own commit: nothing to learn, as another may have followed it."""

    async def stop(self) -> None:
        """Forget the version (nothing runs in the background)."""
        self._header = self._version = None

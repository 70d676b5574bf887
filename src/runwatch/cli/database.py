"""The database a command works on: settings from its arguments, checks, migration, engines.

Every command that touches the database goes through `open_database`, which
migrates when the settings say so, refuses a schema that is not at the head
revision, and disposes of the engines afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from runwatch.config import Settings

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection
    from tqdm import tqdm

    from runwatch.db.engine import Engines

T = TypeVar("T")


class CommandFailed(Exception):
    """A failure to report as one `runwatch: error: …` line, with exit status 2."""


def settings_from(args: argparse.Namespace) -> Settings:
    """The settings from the environment, with what the command line gave on top."""
    overrides: dict[str, Any] = {}
    if getattr(args, "database_url", None):
        overrides["database_url"] = args.database_url
    for name in ("host", "port"):
        if getattr(args, name, None) is not None:
            overrides[name] = getattr(args, name)
    if getattr(args, "insecure", False):
        overrides["insecure"] = True
    return Settings(**overrides)


def _sqlite_path(settings: Settings) -> Path | None:
    """The SQLite database file, or None for PostgreSQL and in-memory databases."""
    from sqlalchemy.engine import make_url

    url = make_url(settings.database_url)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    if url.database.startswith("file:"):
        return None
    return Path(url.database)


def _directory_to_write(path: Path, *, create: bool) -> Path:
    """Where SQLite will write for `path`, or CommandFailed naming what is wrong."""
    if path.exists():
        if path.is_dir():
            raise CommandFailed(f"the SQLite database {path} is a directory")
        return path.parent
    if not create:
        raise CommandFailed(
            f"no database at {path} (run `runwatch migrate` to create one, or pass --database-url)"
        )
    if not path.parent.is_dir():
        raise CommandFailed(
            f"cannot create the SQLite database {path}: the directory {path.parent} does not exist"
        )
    return path.parent


def check_database_path(settings: Settings, *, create: bool) -> None:
    """Name the SQLite file and what is wrong with it before SQLite says `unable to open`."""
    path = _sqlite_path(settings)
    if path is None:
        return
    directory = _directory_to_write(path, create=create)
    # SQLite writes its journal next to the file, so the directory must be writable too.
    try:
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as exc:
        raise CommandFailed(
            f"cannot write the SQLite database {path}: the directory {directory} is not "
            f"writable ({exc.strerror or exc})"
        ) from None
    if path.exists() and not os.access(path, os.R_OK | os.W_OK):
        raise CommandFailed(f"cannot write the SQLite database {path}: permission denied")


async def _migrate_if_configured(settings: Settings) -> None:
    from runwatch.migrate import database_revision, revision_history, upgrade

    if not settings.should_auto_migrate:
        return
    before = await database_revision(settings.database_url)
    if before == revision_history()[-1]:
        return
    await upgrade(settings.database_url)
    print(
        f"runwatch: database migrated from {before or 'base'} to {revision_history()[-1]}",
        file=sys.stderr,
    )


async def _require_schema(settings: Settings) -> None:
    """Refuse to work on a database that is not at the head revision."""
    from runwatch.migrate import database_revision, revision_history

    current = await database_revision(settings.database_url)
    head = revision_history()[-1]
    if current != head:
        raise CommandFailed(
            f"the database schema is at {current or 'nothing'}, not at {head}: "
            "run `runwatch migrate` first"
        )


@asynccontextmanager
async def open_database(settings: Settings) -> AsyncIterator[Engines]:
    """The engines of a database at the head revision (migrated first if configured)."""
    from runwatch.db.engine import create_engines

    await _migrate_if_configured(settings)
    await _require_schema(settings)
    engines = create_engines(settings)
    try:
        yield engines
    finally:
        await engines.dispose()


async def _in_transaction(settings: Settings, fn: Callable[[AsyncConnection], Awaitable[T]]) -> T:
    async with open_database(settings) as engines, engines.write.begin() as conn:
        return await fn(conn)


def run_in_transaction(
    settings: Settings,
    fn: Callable[[AsyncConnection], Awaitable[T]],
    *,
    create: bool = True,
) -> T:
    """`fn(conn)` in one write transaction on the database, from a synchronous command.

    With `create`, a missing SQLite file is created; otherwise its absence is an error.
    """
    check_database_path(settings, create=create)
    return asyncio.run(_in_transaction(settings, fn))


@contextmanager
def progress(desc: str, *, total: int | None = None, unit: str = "run") -> Iterator[tqdm]:
    """A progress bar on stderr, shown only when stderr is a terminal."""
    from tqdm import tqdm

    bar = tqdm(
        total=total,
        desc=desc,
        unit=unit,
        unit_scale=unit == "run",
        file=sys.stderr,
        disable=not sys.stderr.isatty(),
        leave=False,
        dynamic_ncols=True,
    )
    try:
        yield bar
    finally:
        bar.close()

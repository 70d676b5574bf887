"""Schema migrations through alembic's API, from a checkout or from the installed package."""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine


def migrations_path() -> Path:
    """The alembic script directory.

    A wheel carries it as `runwatch/migrations`; in a source checkout (an
    editable install) it is `migrations/` at the repository root.
    """
    packaged = Path(str(resources.files("runwatch"))) / "migrations"
    if (packaged / "env.py").is_file():
        return packaged
    checkout = Path(__file__).resolve().parents[2] / "migrations"
    if (checkout / "env.py").is_file():
        return checkout
    raise RuntimeError("runwatch's migrations are missing from this installation")


def alembic_config(database_url: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_path()))
    if database_url is not None:
        # Kept out of the ini options, whose interpolation would mangle a `%`.
        config.attributes["database_url"] = database_url
    return config


@cache
def head_revisions() -> set[str]:
    return set(ScriptDirectory.from_config(alembic_config()).get_heads())


@cache
def revision_history() -> tuple[str, ...]:
    """Every revision id, oldest first (the history is linear)."""
    script = ScriptDirectory.from_config(alembic_config())
    return tuple(reversed([rev.revision for rev in script.walk_revisions()]))


def resolve_revision(revision: str) -> str | None:
    """The revision id that `revision` names (`head`, `base`, an id or its prefix).

    `None` is the empty schema (`base`); raises ValueError for a name that is
    not a revision.
    """
    script = ScriptDirectory.from_config(alembic_config())
    try:
        found = script.get_revision(revision)
    except (CommandError, KeyError, ValueError) as exc:
        raise ValueError(
            f"no revision {revision!r} (known: base, head, {', '.join(revision_history())})"
        ) from exc
    return None if found is None else found.revision


def revision_position(revision: str | None) -> int:
    """Where a revision stands in the history: -1 for the empty schema, then 0, 1, …"""
    return -1 if revision is None else revision_history().index(revision)


async def database_revision(database_url: str) -> str | None:
    """The revision the database at `database_url` is at (`None` when never migrated)."""
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            current = await current_revisions(conn)
    finally:
        await engine.dispose()
    return max(current, key=revision_position) if current else None


def _run(sync_conn: Connection, config: Config, action: str, revision: str) -> None:
    config.attributes["connection"] = sync_conn
    if action == "upgrade":
        command.upgrade(config, revision)
    else:
        command.downgrade(config, revision)


async def upgrade(database_url: str, revision: str = "head") -> None:
    """Migrate the database at `database_url` up to `revision`."""
    await _migrate(database_url, "upgrade", revision)


async def downgrade(database_url: str, revision: str) -> None:
    await _migrate(database_url, "downgrade", revision)


async def _migrate(database_url: str, action: str, revision: str) -> None:
    engine = create_async_engine(database_url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_run, alembic_config(database_url), action, revision)
    finally:
        await engine.dispose()


async def current_revisions(conn: AsyncConnection) -> set[str]:
    """The revisions the connected database is at (empty when never migrated)."""

    def read(sync_conn: Connection) -> set[str]:
        return set(MigrationContext.configure(sync_conn).get_current_heads())

    return await conn.run_sync(read)

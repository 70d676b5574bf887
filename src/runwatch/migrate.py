"""Schema migrations through alembic's API, from a checkout or from the installed package."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
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


def head_revisions() -> set[str]:
    return set(ScriptDirectory.from_config(alembic_config()).get_heads())


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

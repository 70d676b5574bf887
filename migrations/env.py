"""Alembic environment: async engines, one script tree for SQLite and PostgreSQL.

Revisions never import the live tables: each one spells out its own schema.
`target_metadata` is used only by `alembic revision --autogenerate`.
"""

from __future__ import annotations

import asyncio
from logging.config import fileConfig

from alembic import context
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import create_async_engine

config = context.config
if config.config_file_name is not None and not config.attributes.get("connection"):
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def _target_metadata():  # type: ignore[no-untyped-def]
    from runwatch.db.tables import metadata

    return metadata


def _include_object(obj, name, type_, reflected, compare_to):  # type: ignore[no-untyped-def]
    from runwatch.db.dialect import applies_to_dialect

    return reflected or applies_to_dialect(obj, context.get_bind().dialect.name)


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=_target_metadata(),
        include_object=_include_object,
        # SQLite alters tables by copying them; batch mode does that for us.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_async(url: str) -> None:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
            await connection.commit()
    finally:
        await engine.dispose()


def _database_url() -> str:
    url = config.attributes.get("database_url")
    if url:
        return url
    from runwatch.config import Settings

    return Settings().database_url


if context.is_offline_mode():
    context.configure(url=_database_url(), target_metadata=_target_metadata(), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
elif (connection := config.attributes.get("connection")) is not None:
    _run(connection)
else:
    asyncio.run(_run_async(_database_url()))

"""Every revision up and down on both dialects; the migrated schema equals the Core tables."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect
from sqlalchemy.ext.asyncio import create_async_engine

from runwatch.db.dialect import applies_to_dialect
from runwatch.db.tables import metadata
from runwatch.migrate import alembic_config, downgrade, upgrade

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def fresh_url(dialect: str, tmp_path: Path, request: pytest.FixtureRequest) -> Any:
    if dialect == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'migrations.db'}"
        return
    admin = request.getfixturevalue("postgres_admin")
    url = admin.create_database("runwatch_migrations")
    yield url
    admin.drop_database(url)


def revisions_base_to_head() -> list[str]:
    script = ScriptDirectory.from_config(alembic_config())
    return [rev.revision for rev in reversed(list(script.walk_revisions()))]


async def _inspect(url: str, fn: Any) -> Any:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(fn)
    finally:
        await engine.dispose()


def _tables(conn: Connection) -> set[str]:
    return set(inspect(conn).get_table_names()) - {"alembic_version"}


def _schema_diff(conn: Connection) -> list[Any]:
    def include(obj: Any, name: Any, type_: str, reflected: bool, compare_to: Any) -> bool:
        return reflected or applies_to_dialect(obj, conn.dialect.name)

    context = MigrationContext.configure(
        conn, opts={"compare_type": True, "include_object": include}
    )
    return compare_metadata(context, metadata)


# Revisions that change only PostgreSQL (0005 widens the rollup sums to NUMERIC;
# SQLite has no wider integer).
POSTGRESQL_ONLY = {"0005"}


def _shape(conn: Connection) -> dict[str, dict[str, Any]]:
    """Every table's columns with their type and nullability, and its indexes."""
    inspector = inspect(conn)
    return {
        table: {
            **{c["name"]: (str(c["type"]), c["nullable"]) for c in inspector.get_columns(table)},
            "indexes": sorted(
                (ix["name"], tuple(ix["column_names"])) for ix in inspector.get_indexes(table)
            ),
        }
        for table in _tables(conn)
    }


async def test_each_revision_up_and_down(fresh_url: str, dialect: str) -> None:
    revisions = revisions_base_to_head()
    assert revisions, "no migrations found"
    shapes: dict[str, Any] = {"base": {}}
    previous = "base"
    for revision in revisions:
        await upgrade(fresh_url, revision)
        after_up = await _inspect(fresh_url, _shape)
        changes_here = dialect == "postgresql" or revision not in POSTGRESQL_ONLY
        assert (after_up != shapes[previous]) == changes_here, revision
        await downgrade(fresh_url, previous)
        assert await _inspect(fresh_url, _shape) == shapes[previous], revision
        await upgrade(fresh_url, revision)
        assert await _inspect(fresh_url, _shape) == after_up
        shapes[revision] = after_up
        previous = revision
    await downgrade(fresh_url, "base")
    assert await _inspect(fresh_url, _tables) == set()


async def test_migrated_schema_equals_core_tables(fresh_url: str) -> None:
    await upgrade(fresh_url)
    diff = await _inspect(fresh_url, _schema_diff)
    assert diff == []
    assert await _inspect(fresh_url, _tables) == set(metadata.tables)


def _column_order(conn: Connection) -> dict[str, list[str]]:
    inspector = inspect(conn)
    return {table: [c["name"] for c in inspector.get_columns(table)] for table in _tables(conn)}


async def test_migrated_columns_are_in_the_tables_order(fresh_url: str) -> None:
    # Many-row writes on PostgreSQL send each row as the table's row type, its
    # values in the order of `metadata` (see runwatch.db.asyncpg_support).
    await upgrade(fresh_url)
    expected = {name: [c.name for c in table.columns] for name, table in metadata.tables.items()}
    assert await _inspect(fresh_url, _column_order) == expected


def test_wheel_ships_the_migrations(tmp_path: Path) -> None:
    """An installed runwatch (a wheel, not a checkout) can migrate on its own."""
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path), str(ROOT)],
        check=True, capture_output=True,
    )  # fmt: skip
    wheel = next(tmp_path.glob("runwatch-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "runwatch/migrations/env.py" in names
    on_disk = {p.name for p in (ROOT / "migrations" / "versions").glob("*.py")}
    shipped = {Path(n).name for n in names if n.startswith("runwatch/migrations/versions/")}
    assert on_disk <= shipped

    # Unpacked on its own, the package finds those migrations and upgrades a database.
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    db = tmp_path / "from-wheel.db"
    url = f"sqlite+aiosqlite:///{db}"
    code = (
        "import asyncio, runwatch.migrate as m;"
        f"assert str(m.migrations_path()).startswith({str(site)!r}), m.migrations_path();"
        f"asyncio.run(m.upgrade({url!r}))"
    )
    subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, cwd=tmp_path,
        env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert db.stat().st_size > 0

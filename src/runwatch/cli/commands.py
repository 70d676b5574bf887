"""One function per command that works on the database or runs a process: serve, keys,
migrate, demo-data, purge, rebuild-rollups and worker.

Each takes the parsed arguments, calls the service and reports in one line on
stderr; it returns the exit status. Imports are made inside the commands, so
that `runwatch --help` does not load the whole service.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
from datetime import UTC, datetime
from typing import Any

from runwatch.cli.database import (
    CommandFailed,
    check_database_path,
    open_database,
    progress,
    run_in_transaction,
    settings_from,
)
from runwatch.config import Settings
from runwatch.logs import logging_config


async def _prepare_serve(settings: Settings, demo_runs: int | None) -> None:
    """Before serving: migrate, load demo data, check API keys; once, in this process."""
    from runwatch.demo import is_empty, load_demo_data, load_demo_extraction_runs
    from runwatch.queries.api_keys import load_key_set
    from runwatch.security import KeyCache, check_open_access

    async with open_database(settings) as engines:
        if demo_runs:
            async with engines.write.begin() as conn:
                if await is_empty(conn):
                    with progress("demo data", total=demo_runs) as bar:
                        count = await load_demo_data(conn, runs=demo_runs, progress=bar.update)
                    print(f"runwatch: loaded {count} demo layer runs", file=sys.stderr)
                    count = await load_demo_extraction_runs(conn)
                    print(f"runwatch: loaded {count} demo extraction runs", file=sys.stderr)
                else:
                    print("runwatch: database not empty; demo data not loaded", file=sys.stderr)
        async with engines.write.connect() as conn:
            await check_open_access(settings, KeyCache(lambda: load_key_set(conn), 0))


def _serve_in_processes(settings: Settings, workers: int, options: dict[str, Any]) -> None:
    """uvicorn with `workers` processes, which build their own app from the environment."""
    import uvicorn

    # Hand them the settings given on this command line, and a shared metrics directory.
    for name in settings.model_fields_set:
        value = getattr(settings, name)
        if value is not None:
            os.environ[f"RUNWATCH_{name.upper()}"] = str(value)
    created = None
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        created = tempfile.mkdtemp(prefix="runwatch-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = created
    try:
        uvicorn.run("runwatch.app:create_served_app", factory=True, workers=workers, **options)
    finally:
        if created is not None:  # made for this run only: leave nothing behind
            shutil.rmtree(created, ignore_errors=True)


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from runwatch.app import create_app
    from runwatch.security import InsecureStart

    settings = settings_from(args)
    check_database_path(settings, create=True)
    try:
        asyncio.run(_prepare_serve(settings, args.demo_runs if args.demo else None))
    except InsecureStart as exc:
        raise CommandFailed(str(exc)) from None
    # Migrated and checked above: the app's processes need not do it again.
    settings = settings.model_copy(update={"auto_migrate": False})
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "log_level": args.log_level,
        "log_config": logging_config(fmt=settings.log_format, level=args.log_level),
        "proxy_headers": False,
        # On SIGTERM, stop accepting connections and let requests in flight
        # finish for up to this long.
        "timeout_graceful_shutdown": settings.shutdown_grace_seconds,
    }
    workers = args.workers or settings.workers
    if workers <= 1:
        uvicorn.run(create_app(settings, serving=True), **options)
    else:
        _serve_in_processes(settings, workers, options)
    return 0


def cmd_keys_create(args: argparse.Namespace) -> int:
    from runwatch.queries.api_keys import create_api_key

    key = run_in_transaction(
        settings_from(args), lambda conn: create_api_key(conn, name=args.name, scope=args.scope)
    )
    print(key.token)
    print(
        f"runwatch: created {key.scope} key {key.name!r} (id {key.id}); the token above is "
        "shown only once: store it now",
        file=sys.stderr,
    )
    return 0


def cmd_keys_list(args: argparse.Namespace) -> int:
    from runwatch.queries.api_keys import list_api_keys

    rows = run_in_transaction(settings_from(args), list_api_keys)
    print(f"{'ID':<26}  {'NAME':<20}  {'SCOPE':<5}  {'PREFIX':<9}  {'CREATED':<20}  REVOKED")
    for row in rows:
        created = row["created_at"].strftime("%Y-%m-%dT%H:%M:%SZ")
        revoked = row["revoked_at"].strftime("%Y-%m-%dT%H:%M:%SZ") if row["revoked_at"] else "-"
        print(
            f"{row['id']:<26}  {row['name']:<20}  {row['scope']:<5}  {row['prefix']:<9}  "
            f"{created:<20}  {revoked}"
        )
    return 0


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    from runwatch.errors import NotFound
    from runwatch.queries.api_keys import revoke_api_key

    try:
        count = run_in_transaction(
            settings_from(args), lambda conn: revoke_api_key(conn, key=args.key)
        )
    except NotFound as exc:
        print(f"runwatch: {exc.detail}", file=sys.stderr)
        return 1
    print(f"runwatch: revoked {count} key(s)", file=sys.stderr)
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from runwatch.migrate import (
        database_revision,
        downgrade,
        resolve_revision,
        revision_position,
        upgrade,
    )

    settings = settings_from(args)
    try:
        target = resolve_revision(args.revision)
    except ValueError as exc:
        raise CommandFailed(f"--revision: {exc}") from None
    check_database_path(settings, create=True)
    name = target or "base (an empty schema)"

    async def run() -> str:
        current = await database_revision(settings.database_url)
        here, there = revision_position(current), revision_position(target)
        if here == there:
            return f"database already at {name}"
        if there > here:
            if args.downgrade:
                raise CommandFailed(
                    f"--downgrade: the database is at {current or 'base'}, already below {name}"
                )
            await upgrade(settings.database_url, target or "base")
            return f"database migrated from {current or 'base'} to {name}"
        if not args.downgrade:
            raise CommandFailed(
                f"the database is at {current}, later than {name}; nothing was changed "
                "(pass --downgrade to go back, which drops what the later revisions added)"
            )
        await downgrade(settings.database_url, target or "base")
        return f"database downgraded from {current} to {name}"

    print(f"runwatch: {asyncio.run(run())}", file=sys.stderr)
    return 0


def cmd_demo_data(args: argparse.Namespace) -> int:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from runwatch.demo import load_demo_data, load_demo_extraction_runs

    async def load(conn: AsyncConnection) -> tuple[int, int]:
        with progress("demo data", total=args.runs) as bar:
            count = await load_demo_data(conn, runs=args.runs, seed=args.seed, progress=bar.update)
        return count, await load_demo_extraction_runs(conn, seed=args.seed)

    count, extraction = run_in_transaction(settings_from(args), load)
    print(f"runwatch: inserted {extraction} demo extraction runs", file=sys.stderr)
    print(f"runwatch: inserted {count} demo layer runs", file=sys.stderr)
    return 0


def cmd_purge(args: argparse.Namespace) -> int:
    from runwatch.queries.buckets import floor_day
    from runwatch.services.retention import purge_layer_runs

    settings = settings_from(args)
    check_database_path(settings, create=False)
    # Whole days only, so that the rollups before the horizon stay exact.
    try:
        before = floor_day(datetime.now(UTC) - args.older_than)
    except OverflowError:
        raise CommandFailed(f"--older-than: {args.older_than.days} days is too long ago") from None

    async def run() -> int:
        # In batches of their own transactions, not in one.
        async with open_database(settings) as engines:
            with progress("purge") as bar:
                return await purge_layer_runs(
                    engines.write, before=before, batch_size=args.batch_size, progress=bar.update
                )

    count = asyncio.run(run())
    print(
        f"runwatch: purged {count} layer runs started before {before.isoformat()}", file=sys.stderr
    )
    return 0


def cmd_rebuild_rollups(args: argparse.Namespace) -> int:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from runwatch.queries.buckets import GRAINS
    from runwatch.queries.operator_rollups import rebuild_operator_rollups
    from runwatch.queries.rollup_upkeep import rebuild_layer_run_rollups

    async def rebuild(conn: AsyncConnection) -> None:
        with progress("rollups", total=len(GRAINS), unit="grain") as bar:
            await rebuild_layer_run_rollups(conn, progress=bar.update)
        await rebuild_operator_rollups(conn)

    run_in_transaction(settings_from(args), rebuild, create=False)
    print("runwatch: rollups rebuilt from the raw runs", file=sys.stderr)
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from runwatch.worker import load_callable, run_worker

    if args.executor is not None:
        # `--executor mymodule:run` names a module in the working directory,
        # which is not on the path of an installed `runwatch` script.
        cwd = os.getcwd()
        if cwd not in sys.path:
            sys.path.insert(0, cwd)
        try:
            load_callable(args.executor)
        except (ImportError, AttributeError, ValueError) as exc:
            raise CommandFailed(f"--executor {args.executor}: {exc}") from None
    asyncio.run(
        run_worker(
            url=args.url,
            executor_spec=args.executor,
            command=args.command_line,
            command_timeout=args.timeout,
            worker_id=args.worker_id,
            batch=args.batch,
            lease_seconds=args.lease_seconds,
            poll_interval=args.poll_interval,
            grace_seconds=args.grace_seconds,
            max_runs=args.max_runs,
            exit_when_idle=args.exit_when_idle,
            max_backoff=args.max_backoff,
            give_up_after=args.give_up_after,
            api_key=args.api_key,
        )
    )
    return 0

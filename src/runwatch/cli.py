"""The `runwatch` command: serve, migrate, demo-data. Parses arguments and calls; no logic."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from runwatch.config import Settings
from runwatch.logs import configure_logging, logging_config

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

T = TypeVar("T")


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {}
    if getattr(args, "database_url", None):
        overrides["database_url"] = args.database_url
    for name in ("host", "port"):
        if getattr(args, name, None) is not None:
            overrides[name] = getattr(args, name)
    if getattr(args, "insecure", False):
        overrides["insecure"] = True
    return Settings(**overrides)


async def _prepare(settings: Settings, demo_runs: int | None) -> None:
    from runwatch.db.engine import create_engines
    from runwatch.demo import is_empty, load_demo_data, load_demo_extraction_runs
    from runwatch.migrate import upgrade

    if settings.should_auto_migrate:
        await upgrade(settings.database_url)
    if demo_runs:
        engines = create_engines(settings)
        try:
            async with engines.write.begin() as conn:
                if await is_empty(conn):
                    count = await load_demo_data(conn, runs=demo_runs)
                    print(f"runwatch: loaded {count} demo layer runs", file=sys.stderr)
                    count = await load_demo_extraction_runs(conn)
                    print(f"runwatch: loaded {count} demo extraction runs", file=sys.stderr)
                else:
                    print("runwatch: database not empty; demo data not loaded", file=sys.stderr)
        finally:
            await engines.dispose()


async def _check_open_access(settings: Settings) -> None:
    from runwatch.queries.api_keys import load_key_set
    from runwatch.security import KeyCache, check_open_access

    await _with_write_conn(
        settings, lambda conn: check_open_access(settings, KeyCache(lambda: load_key_set(conn), 0))
    )


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from runwatch.app import create_app
    from runwatch.security import InsecureStart

    settings = _settings(args)
    asyncio.run(_prepare(settings, args.demo_runs if args.demo else None))
    try:
        asyncio.run(_check_open_access(settings))
    except InsecureStart as exc:
        print(f"runwatch: {exc}", file=sys.stderr)
        return 2
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
        uvicorn.run(create_app(settings), **options)
        return 0
    # Worker processes build their own app from the environment: hand them
    # the settings given on this command line, and a shared metrics directory.
    for name in settings.model_fields_set:
        value = getattr(settings, name)
        if value is not None:
            os.environ[f"RUNWATCH_{name.upper()}"] = str(value)
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="runwatch-metrics-")
    uvicorn.run("runwatch.app:create_app", factory=True, workers=workers, **options)
    return 0


async def _with_write_conn(settings: Settings, fn: Callable[[AsyncConnection], Awaitable[T]]) -> T:
    from runwatch.db.engine import create_engines
    from runwatch.migrate import upgrade

    if settings.should_auto_migrate:
        await upgrade(settings.database_url)
    engines = create_engines(settings)
    try:
        async with engines.write.begin() as conn:
            return await fn(conn)
    finally:
        await engines.dispose()


def cmd_keys_create(args: argparse.Namespace) -> int:
    from runwatch.queries.api_keys import create_api_key

    key = asyncio.run(
        _with_write_conn(
            _settings(args), lambda conn: create_api_key(conn, name=args.name, scope=args.scope)
        )
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

    rows = asyncio.run(_with_write_conn(_settings(args), list_api_keys))
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
        count = asyncio.run(
            _with_write_conn(_settings(args), lambda conn: revoke_api_key(conn, key=args.key))
        )
    except NotFound as exc:
        print(f"runwatch: {exc.detail}", file=sys.stderr)
        return 1
    print(f"runwatch: revoked {count} key(s)", file=sys.stderr)
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from runwatch.migrate import upgrade

    settings = _settings(args)
    asyncio.run(upgrade(settings.database_url, args.revision))
    print(f"runwatch: database migrated to {args.revision}", file=sys.stderr)
    return 0


def cmd_demo_data(args: argparse.Namespace) -> int:
    from runwatch.db.engine import create_engines
    from runwatch.demo import load_demo_data, load_demo_extraction_runs
    from runwatch.migrate import upgrade

    settings = _settings(args)

    async def run() -> int:
        if settings.should_auto_migrate:
            await upgrade(settings.database_url)
        engines = create_engines(settings)
        try:
            async with engines.write.begin() as conn:
                count = await load_demo_data(conn, runs=args.runs, seed=args.seed)
                extraction = await load_demo_extraction_runs(conn, seed=args.seed)
                print(f"runwatch: inserted {extraction} demo extraction runs", file=sys.stderr)
                return count
        finally:
            await engines.dispose()

    count = asyncio.run(run())
    print(f"runwatch: inserted {count} demo layer runs", file=sys.stderr)
    return 0


def parse_age(text: str) -> timedelta:
    """`90d`, `12h` or `2w` as a timedelta."""
    units = {"h": "hours", "d": "days", "w": "weeks"}
    number, unit = text[:-1], text[-1:].lower()
    if unit not in units or not number.isdigit() or int(number) <= 0:
        raise argparse.ArgumentTypeError(f"expected an age like 90d, 12h or 2w, not {text!r}")
    return timedelta(**{units[unit]: int(number)})


def cmd_purge(args: argparse.Namespace) -> int:
    from runwatch.db.engine import create_engines
    from runwatch.queries.layer_runs import purge_layer_runs
    from runwatch.queries.rollups import floor_day

    settings = _settings(args)
    # Whole days only, so that the rollups before the horizon stay exact.
    before = floor_day(datetime.now(UTC) - args.older_than)

    async def run() -> int:
        engines = create_engines(settings)
        try:
            return await purge_layer_runs(engines.write, before=before, batch_size=args.batch_size)
        finally:
            await engines.dispose()

    count = asyncio.run(run())
    print(
        f"runwatch: purged {count} layer runs started before {before.isoformat()}", file=sys.stderr
    )
    return 0


def cmd_rebuild_rollups(args: argparse.Namespace) -> int:
    from runwatch.db.engine import create_engines
    from runwatch.queries.rollups import rebuild_layer_run_rollups

    settings = _settings(args)

    async def run() -> None:
        engines = create_engines(settings)
        try:
            async with engines.write.begin() as conn:
                await rebuild_layer_run_rollups(conn)
        finally:
            await engines.dispose()

    asyncio.run(run())
    print("runwatch: rollups rebuilt from the raw runs", file=sys.stderr)
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from runwatch.worker import run_worker

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


EXPORT_FILTERS = {
    "runs": ("layer_name", "status", "since", "until", "model_name", "sort"),
    "extraction-runs": (
        "prompt_id", "config_id", "document_name", "status", "since", "until", "sort",
    ),
}  # fmt: skip


def cmd_export(args: argparse.Namespace) -> int:
    """Stream an export from the API to stdout or a file; a progress bar on a terminal."""
    import logging

    from tqdm import tqdm

    from runwatch.client import (
        InvalidArgumentError,
        RunwatchClient,
        RunwatchError,
        describe,
    )

    filters = {name: getattr(args, name) for name in EXPORT_FILTERS[args.kind]}
    filters = {name: value for name, value in filters.items() if value is not None}
    wrong = [
        name
        for names in EXPORT_FILTERS.values()
        for name in names
        if name not in EXPORT_FILTERS[args.kind] and getattr(args, name) is not None
    ]
    if wrong:
        option = "--" + wrong[0].replace("_", "-")
        print(f"runwatch: error: {option} does not filter {args.kind}", file=sys.stderr)
        return 2
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per request is noise here
    out = open(args.output, "wb") if args.output else sys.stdout.buffer  # noqa: SIM115
    try:
        with RunwatchClient(args.url, api_key=args.api_key) as client:
            bar = None
            if sys.stderr.isatty():
                list_filters = {k: v for k, v in filters.items() if k != "sort"}
                if args.kind == "runs":
                    total = client.list_runs(limit=1, **list_filters).total
                    export = client.export_runs
                else:
                    total = client.list_extraction_runs(limit=1, **list_filters).total
                    export = client.export_extraction_runs
                bar = tqdm(total=total, unit=" runs", file=sys.stderr, unit_scale=True)
            else:
                export = (
                    client.export_runs if args.kind == "runs" else client.export_extraction_runs
                )
            try:
                rows = export(
                    out, format=args.format, progress=bar.update if bar else None, **filters
                )
            finally:
                if bar is not None:
                    bar.close()
    except RunwatchError as exc:
        if args.output:  # an incomplete file must not pass for an export
            out.close()
            os.remove(args.output)
        if isinstance(exc, InvalidArgumentError):
            print(f"runwatch: error: {exc.detail}", file=sys.stderr)
            return 2
        print(f"runwatch: error: export failed: {describe(exc)}", file=sys.stderr)
        return 1
    finally:
        if not out.closed:
            out.flush()
            if args.output:
                out.close()
    print(f"runwatch: exported {rows} {args.kind}", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="runwatch", description=__doc__)
    parser.add_argument(
        "--database-url", help="overrides RUNWATCH_DATABASE_URL (default: ./runwatch.db)"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the HTTP API")
    serve.add_argument("--host", help="bind address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default 8000)")
    serve.add_argument(
        "--demo", action="store_true", help="load demo data first if the database is empty"
    )
    serve.add_argument("--demo-runs", type=int, default=5000, help="runs --demo loads")
    serve.add_argument("--log-level", default="info")
    serve.add_argument("--workers", type=int, help="worker processes (default RUNWATCH_WORKERS, 1)")
    serve.add_argument(
        "--insecure",
        action="store_true",
        help="serve without API keys on a non-loopback address (RUNWATCH_INSECURE=true)",
    )
    serve.set_defaults(func=cmd_serve)

    keys = sub.add_parser("keys", help="create, list and revoke API keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser("create", help="create a key and print its token once")
    create.add_argument("--name", required=True, help="who or what uses the key")
    create.add_argument("--scope", required=True, choices=("read", "write", "admin"))
    create.set_defaults(func=cmd_keys_create)
    keys_sub.add_parser("list", help="list keys (never their tokens)").set_defaults(
        func=cmd_keys_list
    )
    revoke = keys_sub.add_parser("revoke", help="revoke a key by id, or every key with a name")
    revoke.add_argument("key", help="the key's id or name")
    revoke.set_defaults(func=cmd_keys_revoke)

    migrate = sub.add_parser("migrate", help="upgrade the database schema")
    migrate.add_argument("--revision", default="head")
    migrate.set_defaults(func=cmd_migrate)

    demo = sub.add_parser("demo-data", help="insert realistic generated runs")
    demo.add_argument("--runs", type=int, default=5000)
    demo.add_argument("--seed", type=int, default=42)
    demo.set_defaults(func=cmd_demo_data)

    purge = sub.add_parser(
        "purge", help="delete old layer runs in small batches (their rollups are kept)"
    )
    purge.add_argument("--older-than", type=parse_age, required=True, help="e.g. 90d, 12h, 2w")
    purge.add_argument("--batch-size", type=int, default=5000)
    purge.set_defaults(func=cmd_purge)

    rebuild = sub.add_parser(
        "rebuild-rollups", help="recompute the rollups from the raw runs (after a bulk load)"
    )
    rebuild.set_defaults(func=cmd_rebuild_rollups)
    worker = sub.add_parser(
        "worker", help="claim and execute pending extraction runs (see docs/extraction-runs.md)"
    )
    how = worker.add_mutually_exclusive_group(required=True)
    how.add_argument("--executor", metavar="MODULE:FUNCTION", help="a Python callable to run")
    how.add_argument(
        "--command",
        dest="command_line",
        metavar="CMD",
        help="a shell command: run JSON on stdin, result JSON on stdout",
    )
    worker.add_argument("--url", default="http://127.0.0.1:8000", help="the runwatch API")
    worker.add_argument(
        "--api-key",
        default=os.environ.get("RUNWATCH_API_KEY"),
        help="a write-scoped API key (default: $RUNWATCH_API_KEY)",
    )
    worker.add_argument("--worker-id", help="default: hostname-pid")
    worker.add_argument("--batch", type=int, default=1, help="runs claimed at a time (1-100)")
    worker.add_argument("--lease-seconds", type=int, default=300)
    worker.add_argument("--poll-interval", type=float, default=2.0, help="seconds when idle")
    worker.add_argument(
        "--grace-seconds",
        type=float,
        default=30.0,
        help="on SIGTERM, how long the run in progress may still take",
    )
    worker.add_argument("--timeout", type=float, help="seconds one --command run may take")
    worker.add_argument("--max-runs", type=int, help="stop after reporting this many runs")
    worker.add_argument("--exit-when-idle", action="store_true", help="stop when no run is pending")
    worker.add_argument(
        "--max-backoff",
        type=float,
        default=30.0,
        help="longest wait in seconds between tries while the API is unavailable (default 30)",
    )
    worker.add_argument(
        "--give-up-after",
        type=float,
        metavar="SECONDS",
        help="exit (status 1) once the API has been unavailable this long; default: never",
    )
    worker.set_defaults(func=cmd_worker)

    export = sub.add_parser(
        "export", help="stream runs from the API as NDJSON or CSV (to stdout, or --output)"
    )
    export.add_argument(
        "--kind", choices=tuple(EXPORT_FILTERS), default="runs", help="which runs (default runs)"
    )
    export.add_argument("--format", choices=("ndjson", "csv"), default="ndjson")
    export.add_argument("--output", "-o", metavar="FILE", help="write here instead of stdout")
    export.add_argument("--url", help="the runwatch API (default $RUNWATCH_URL, else :8000)")
    export.add_argument("--api-key", help="a read key (default $RUNWATCH_API_KEY)")
    for name, text in (
        ("layer-name", "exact layer name (runs)"),
        ("model-name", "exact model name (runs)"),
        ("prompt-id", "exact prompt id (extraction runs)"),
        ("config-id", "exact config id (extraction runs)"),
        ("document-name", "exact document name (extraction runs)"),
        ("status", "one status or several, comma-separated"),
        ("since", "started (runs) or created (extraction runs) at or after, RFC 3339"),
        ("until", "started or created before, RFC 3339"),
        ("sort", "as for the list: --sort=-started_at (default), --sort=estimated_cost_usd"),
    ):
        export.add_argument(f"--{name}", help=text)
    export.set_defaults(func=cmd_export)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    configure_logging(fmt=Settings().log_format)
    args = build_parser().parse_args(argv)
    return int(args.func(args))

"""The `runwatch` command line: parses arguments, calls the service, reports in one line."""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from runwatch import __version__
from runwatch.config import Settings
from runwatch.domain import API_KEY_SCOPES
from runwatch.logs import configure_logging, logging_config

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection
    from tqdm import tqdm

T = TypeVar("T")

DESCRIPTION = """\
runwatch: an introspection API over the history of LLM pipeline runs.

Serve the API and dashboard, manage the database (migrate, purge, rebuild
rollups, demo data), create API keys, and run extraction workers.
Settings come from RUNWATCH_* environment variables (see the README);
the database defaults to ./runwatch.db (SQLite)."""

EPILOG = """\
examples:
  runwatch serve --demo                      API and dashboard on http://127.0.0.1:8000
  runwatch --database-url postgresql://user@host/db migrate
  runwatch keys create --name ci --scope write
  runwatch purge --older-than 90d

Run `runwatch COMMAND --help` for the options of one command."""

LOG_LEVELS = ("critical", "error", "warning", "info", "debug")


class CommandFailed(Exception):
    """A failure to report as one `runwatch: error: …` line, with exit status 2."""


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line naming the command's help."""

    def error(self, message: str) -> NoReturn:
        hint = f" (see `{self.prog} --help`)"
        self.exit(2, f"runwatch: error: {message}{hint}\n")


def bounded_int(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: an integer in [low, high]."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, not {text!r}") from None
        if value < low or (high is not None and value > high):
            span = f"from {low} to {high}" if high is not None else f"at least {low}"
            raise argparse.ArgumentTypeError(f"must be {span}, not {value}")
        return value

    return parse


def positive_float(text: str) -> float:
    """An argparse type: a number of seconds greater than zero."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, not {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be greater than 0, not {text}")
    return value


def parse_age(text: str) -> timedelta:
    """`90d`, `12h` or `2w` as a timedelta."""
    units = {"h": "hours", "d": "days", "w": "weeks"}
    number, unit = text[:-1], text[-1:].lower()
    if unit not in units or not number.isdigit() or int(number) <= 0:
        raise argparse.ArgumentTypeError(f"expected an age like 90d, 12h or 2w, not {text!r}")
    try:
        return timedelta(**{units[unit]: int(number)})
    except OverflowError:
        raise argparse.ArgumentTypeError(f"{text!r} is too long ago") from None


def _settings(args: argparse.Namespace) -> Settings:
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


def check_database_path(settings: Settings, *, create: bool) -> None:
    """Name the SQLite file and what is wrong with it before SQLite says `unable to open`."""
    path = _sqlite_path(settings)
    if path is None:
        return
    if path.exists():
        if path.is_dir():
            raise CommandFailed(f"the SQLite database {path} is a directory")
        directory = path.parent
    elif not create:
        raise CommandFailed(
            f"no database at {path} (run `runwatch migrate` to create one, or pass --database-url)"
        )
    else:
        directory = path.parent
        if not directory.is_dir():
            raise CommandFailed(
                f"cannot create the SQLite database {path}: the directory {directory} "
                "does not exist"
            )
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


async def _with_write_conn(settings: Settings, fn: Callable[[AsyncConnection], Awaitable[T]]) -> T:
    from runwatch.db.engine import create_engines

    await _migrate_if_configured(settings)
    await _require_schema(settings)
    engines = create_engines(settings)
    try:
        async with engines.write.begin() as conn:
            return await fn(conn)
    finally:
        await engines.dispose()


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


async def _prepare_serve(settings: Settings, demo_runs: int | None) -> None:
    """Before serving: migrate, load demo data, check API keys; once, in this process."""
    from runwatch.db.engine import create_engines
    from runwatch.demo import is_empty, load_demo_data, load_demo_extraction_runs
    from runwatch.queries.api_keys import load_key_set
    from runwatch.security import KeyCache, check_open_access

    await _migrate_if_configured(settings)
    await _require_schema(settings)
    engines = create_engines(settings)
    try:
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
    finally:
        await engines.dispose()


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from runwatch.app import create_app
    from runwatch.security import InsecureStart

    settings = _settings(args)
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
        uvicorn.run(create_app(settings), **options)
        return 0
    # Worker processes build their own app from the environment: hand them
    # the settings given on this command line, and a shared metrics directory.
    for name in settings.model_fields_set:
        value = getattr(settings, name)
        if value is not None:
            os.environ[f"RUNWATCH_{name.upper()}"] = str(value)
    created = None
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        created = tempfile.mkdtemp(prefix="runwatch-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = created
    try:
        uvicorn.run("runwatch.app:create_app", factory=True, workers=workers, **options)
    finally:
        if created is not None:  # made for this run only: leave nothing behind
            shutil.rmtree(created, ignore_errors=True)
    return 0


def cmd_keys_create(args: argparse.Namespace) -> int:
    from runwatch.queries.api_keys import create_api_key

    settings = _settings(args)
    check_database_path(settings, create=True)
    key = asyncio.run(
        _with_write_conn(
            settings, lambda conn: create_api_key(conn, name=args.name, scope=args.scope)
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

    settings = _settings(args)
    check_database_path(settings, create=True)
    rows = asyncio.run(_with_write_conn(settings, list_api_keys))
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

    settings = _settings(args)
    check_database_path(settings, create=True)
    try:
        count = asyncio.run(
            _with_write_conn(settings, lambda conn: revoke_api_key(conn, key=args.key))
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

    settings = _settings(args)
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
    from runwatch.db.engine import create_engines
    from runwatch.demo import load_demo_data, load_demo_extraction_runs

    settings = _settings(args)
    check_database_path(settings, create=True)

    async def run() -> tuple[int, int]:
        await _migrate_if_configured(settings)
        await _require_schema(settings)
        engines = create_engines(settings)
        try:
            async with engines.write.begin() as conn:
                with progress("demo data", total=args.runs) as bar:
                    count = await load_demo_data(
                        conn, runs=args.runs, seed=args.seed, progress=bar.update
                    )
                extraction = await load_demo_extraction_runs(conn, seed=args.seed)
                return count, extraction
        finally:
            await engines.dispose()

    count, extraction = asyncio.run(run())
    print(f"runwatch: inserted {extraction} demo extraction runs", file=sys.stderr)
    print(f"runwatch: inserted {count} demo layer runs", file=sys.stderr)
    return 0


def cmd_purge(args: argparse.Namespace) -> int:
    from runwatch.db.engine import create_engines
    from runwatch.queries.layer_runs import purge_layer_runs
    from runwatch.queries.rollups import floor_day

    settings = _settings(args)
    check_database_path(settings, create=False)
    # Whole days only, so that the rollups before the horizon stay exact.
    try:
        before = floor_day(datetime.now(UTC) - args.older_than)
    except OverflowError:
        raise CommandFailed(f"--older-than: {args.older_than.days} days is too long ago") from None

    async def run() -> int:
        await _migrate_if_configured(settings)
        await _require_schema(settings)
        engines = create_engines(settings)
        try:
            with progress("purge") as bar:
                return await purge_layer_runs(
                    engines.write, before=before, batch_size=args.batch_size, progress=bar.update
                )
        finally:
            await engines.dispose()

    count = asyncio.run(run())
    print(
        f"runwatch: purged {count} layer runs started before {before.isoformat()}", file=sys.stderr
    )
    return 0


def cmd_rebuild_rollups(args: argparse.Namespace) -> int:
    from runwatch.db.engine import create_engines
    from runwatch.queries.operator_rollups import rebuild_operator_rollups
    from runwatch.queries.rollups import GRAINS, rebuild_layer_run_rollups

    settings = _settings(args)
    check_database_path(settings, create=False)

    async def run() -> None:
        await _migrate_if_configured(settings)
        await _require_schema(settings)
        engines = create_engines(settings)
        try:
            async with engines.write.begin() as conn:
                with progress("rollups", total=len(GRAINS), unit="grain") as bar:
                    await rebuild_layer_run_rollups(conn, progress=bar.update)
                await rebuild_operator_rollups(conn)
        finally:
            await engines.dispose()

    asyncio.run(run())
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
    parser = Parser(
        prog="runwatch",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"runwatch {__version__}")
    parser.add_argument(
        "--database-url",
        metavar="URL",
        help="sqlite:///path.db or postgresql://user@host/db; overrides RUNWATCH_DATABASE_URL "
        "(default: sqlite:///./runwatch.db)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser(
        "serve", help="run the HTTP API and the dashboard", description="Run the HTTP API."
    )
    serve.add_argument("--host", help="bind address (default RUNWATCH_HOST, 127.0.0.1)")
    serve.add_argument(
        "--port", type=bounded_int(1, 65535), help="port, 1-65535 (default RUNWATCH_PORT, 8000)"
    )
    serve.add_argument(
        "--demo", action="store_true", help="load demo data first if the database is empty"
    )
    serve.add_argument(
        "--demo-runs",
        type=bounded_int(1, 10_000_000),
        default=5000,
        metavar="N",
        help="layer runs --demo loads (default 5000)",
    )
    serve.add_argument(
        "--log-level",
        default="info",
        choices=LOG_LEVELS,
        type=str.lower,
        help="least severe log messages shown (default info)",
    )
    serve.add_argument(
        "--workers",
        type=bounded_int(1, 64),
        metavar="N",
        help="worker processes, 1-64 (default RUNWATCH_WORKERS, 1)",
    )
    serve.add_argument(
        "--insecure",
        action="store_true",
        help="serve without API keys on a non-loopback address (RUNWATCH_INSECURE=true)",
    )
    serve.set_defaults(func=cmd_serve)

    keys = sub.add_parser("keys", help="create, list and revoke API keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    create = keys_sub.add_parser("create", help="create a key and print its token once")
    create.add_argument("--name", required=True, help="who or what uses the key")
    create.add_argument(
        "--scope",
        required=True,
        choices=API_KEY_SCOPES,
        help="read: GET only; write: also record runs; admin: everything",
    )
    create.set_defaults(func=cmd_keys_create)
    keys_sub.add_parser("list", help="list keys (never their tokens)").set_defaults(
        func=cmd_keys_list
    )
    revoke = keys_sub.add_parser("revoke", help="revoke a key by id, or every key with a name")
    revoke.add_argument("key", help="the key's id or name")
    revoke.set_defaults(func=cmd_keys_revoke)

    migrate = sub.add_parser(
        "migrate",
        help="upgrade (or, with --downgrade, downgrade) the database schema",
        description="Bring the database schema to a revision; by default the latest.",
    )
    migrate.add_argument(
        "--revision",
        default="head",
        help="target revision: head (the default), an id such as 0003, or base",
    )
    migrate.add_argument(
        "--downgrade",
        action="store_true",
        help="allow going back to an earlier revision (drops what later revisions added)",
    )
    migrate.set_defaults(func=cmd_migrate)

    demo = sub.add_parser("demo-data", help="insert realistic generated runs")
    demo.add_argument(
        "--runs",
        type=bounded_int(1, 10_000_000),
        default=5000,
        metavar="N",
        help="layer runs to generate (default 5000)",
    )
    demo.add_argument(
        "--seed",
        type=int,
        default=42,
        help="random seed; the same seed gives the same runs (default 42)",
    )
    demo.set_defaults(func=cmd_demo_data)

    purge = sub.add_parser(
        "purge", help="delete old layer runs in small batches (their rollups are kept)"
    )
    purge.add_argument(
        "--older-than",
        type=parse_age,
        required=True,
        metavar="AGE",
        help="delete runs that started before the start of the day this long ago: 90d, 12h, 2w",
    )
    purge.add_argument(
        "--batch-size",
        type=bounded_int(1, 1_000_000),
        default=5000,
        metavar="N",
        help="runs deleted per transaction, at least 1 (default 5000)",
    )
    purge.set_defaults(func=cmd_purge)

    rebuild = sub.add_parser(
        "rebuild-rollups", help="recompute the rollups from the raw runs (after a bulk load)"
    )
    rebuild.set_defaults(func=cmd_rebuild_rollups)
    worker = sub.add_parser(
        "worker", help="claim and execute pending extraction runs (see docs/extraction-runs.md)"
    )
    how = worker.add_mutually_exclusive_group(required=True)
    how.add_argument(
        "--executor",
        metavar="MODULE:FUNCTION",
        help="a Python callable to run (modules in the working directory are found)",
    )
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
    worker.add_argument(
        "--batch",
        type=bounded_int(1, 100),
        default=1,
        metavar="N",
        help="runs claimed at a time, 1-100 (default 1)",
    )
    worker.add_argument(
        "--lease-seconds",
        type=bounded_int(1),
        default=300,
        metavar="S",
        help="how long a claimed run is this worker's before others may take it (default 300)",
    )
    worker.add_argument(
        "--poll-interval",
        type=positive_float,
        default=2.0,
        metavar="S",
        help="seconds between claims when idle (default 2)",
    )
    worker.add_argument(
        "--grace-seconds",
        type=positive_float,
        default=30.0,
        metavar="S",
        help="on SIGTERM, how long the run in progress may still take (default 30)",
    )
    worker.add_argument(
        "--timeout", type=positive_float, metavar="S", help="seconds one --command run may take"
    )
    worker.add_argument(
        "--max-runs", type=bounded_int(1), metavar="N", help="stop after reporting this many runs"
    )
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
    export.add_argument(
        "--format",
        choices=("ndjson", "csv"),
        default="ndjson",
        help="NDJSON (one detail object a line, the default) or CSV (nested fields flattened)",
    )
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


def _one_line(text: str) -> str:
    first = str(text).strip().splitlines()[0] if str(text).strip() else ""
    return first.split(" (Background on this error")[0]


def _database_error(settings: Settings | None, exc: BaseException) -> str:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import DBAPIError

    where = ""
    if settings is not None:
        where = f" at {make_url(settings.database_url).render_as_string(hide_password=True)}"
    cause: BaseException = exc
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        cause = exc.orig
        cause = getattr(cause, "__cause__", None) or cause
    reason = _one_line(str(cause)) or type(cause).__name__
    return f"cannot use the database{where}: {reason}"


def _fail(message: str) -> int:
    print(f"runwatch: error: {message}", file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    """Run one `runwatch` command; usage and operating errors exit 2 with one line."""
    from pydantic import ValidationError
    from sqlalchemy.exc import SQLAlchemyError

    args = build_parser().parse_args(argv)
    settings: Settings | None = None
    try:
        settings = Settings()
        configure_logging(fmt=settings.log_format)
        settings = _settings(args)
        return int(args.func(args))
    except CommandFailed as exc:
        return _fail(str(exc))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'settings'}: "
            f"{error['msg'].removeprefix('Value error, ')}"
            for error in exc.errors()
        )
        return _fail(f"invalid setting: {problems}")
    except (SQLAlchemyError, OSError) as exc:
        return _fail(_database_error(settings, exc))
    except Exception as exc:
        if type(exc).__module__.startswith("asyncpg"):
            return _fail(_database_error(settings, exc))
        raise
    except KeyboardInterrupt:
        return 130

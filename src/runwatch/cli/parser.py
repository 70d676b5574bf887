"""The command line's grammar: every command, its arguments, their types and help."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from datetime import timedelta
from typing import NoReturn

from runwatch import __version__
from runwatch.cli import commands
from runwatch.cli.export import EXPORT_FILTERS, cmd_export
from runwatch.domain import API_KEY_SCOPES

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
    serve.set_defaults(func=commands.cmd_serve)

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
    create.set_defaults(func=commands.cmd_keys_create)
    keys_sub.add_parser("list", help="list keys (never their tokens)").set_defaults(
        func=commands.cmd_keys_list
    )
    revoke = keys_sub.add_parser("revoke", help="revoke a key by id, or every key with a name")
    revoke.add_argument("key", help="the key's id or name")
    revoke.set_defaults(func=commands.cmd_keys_revoke)

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
    migrate.set_defaults(func=commands.cmd_migrate)

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
    demo.set_defaults(func=commands.cmd_demo_data)

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
    purge.set_defaults(func=commands.cmd_purge)

    rebuild = sub.add_parser(
        "rebuild-rollups", help="recompute the rollups from the raw runs (after a bulk load)"
    )
    rebuild.set_defaults(func=commands.cmd_rebuild_rollups)
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
    worker.set_defaults(func=commands.cmd_worker)

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

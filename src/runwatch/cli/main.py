"""`main`: run one command, and turn what goes wrong into one line and an exit status."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from runwatch.cli.database import CommandFailed, settings_from
from runwatch.cli.parser import build_parser
from runwatch.config import Settings
from runwatch.logs import configure_logging


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
        settings = settings_from(args)
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

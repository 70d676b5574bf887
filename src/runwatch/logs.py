"""Logging setup: one line per event, as plain text or as JSON objects."""

from __future__ import annotations

import json
import logging
import logging.config
import re
from datetime import UTC, datetime
from typing import Any

# Control characters (C0, DEL, C1) and the Unicode line and paragraph
# separators: written as escapes, so that nothing logged can start a line.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def escape_control(text: str) -> str:
    """`text` with every control character written as a `\\xNN` or `\\uNNNN` escape."""
    return _UNSAFE.sub(_escape, text)


def _escape(found: re.Match[str]) -> str:
    code = ord(found.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


class TextFormatter(logging.Formatter):
    """One line per event: control characters in messages and tracebacks are escaped."""

    def format(self, record: logging.LogRecord) -> str:
        return escape_control(super().format(record))


# Attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}
# uvicorn repeats its message with ANSI colour escapes for terminals.
_DROPPED = {"color_message"}


class JsonFormatter(logging.Formatter):
    """A JSON object per line: time, level, logger, message, and every `extra` field."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in _DROPPED and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def logging_config(*, fmt: str = "text", level: str = "INFO") -> dict[str, Any]:
    """A `logging.config.dictConfig` dict; uvicorn applies it in every worker process."""
    formatter = (
        {"()": "runwatch.logs.JsonFormatter"}
        if fmt == "json"
        else {
            "()": "runwatch.logs.TextFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s: %(message)s",
        }
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"runwatch": formatter},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "runwatch",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"handlers": ["stderr"], "level": level.upper()},
        "loggers": {
            # Each request is logged once, by runwatch, with its id and timing.
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
            "uvicorn": {"handlers": [], "propagate": True},
            "uvicorn.error": {"handlers": [], "propagate": True},
            # alembic narrates every migration step and plugin at INFO; runwatch
            # says itself what a migration changed.
            "alembic": {"level": "DEBUG" if level.upper() == "DEBUG" else "WARNING"},
        },
    }


def configure_logging(*, fmt: str = "text", level: str = "INFO") -> None:
    logging.config.dictConfig(logging_config(fmt=fmt, level=level))

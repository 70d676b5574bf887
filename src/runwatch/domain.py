"""runwatch's vocabulary in one place: statuses, scopes, and the input domain.

The input domain is every bound on what can come in: the timestamp range,
integer and cost bounds, text rules, JSON documents and list lengths. Tables,
schemas, query parameters and cursors import these, so every way a value can
come in is checked against the same bounds; docs/security.md lists them.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, get_args

# --- statuses -----------------------------------------------------------------

# Each set of values is written once, as a Literal (for the schemas); the
# tuples (for the tables' CHECK constraints and the filters) are read from it.
LayerRunStatus = Literal["running", "success", "partial", "failed", "dry"]
FinalLayerRunStatus = Literal["success", "partial", "failed", "dry"]
ExtractionRunStatus = Literal["pending", "running", "completed", "failed"]
FinalExtractionRunStatus = Literal["completed", "failed"]

LAYER_RUN_STATUSES: tuple[str, ...] = get_args(LayerRunStatus)
FINAL_LAYER_RUN_STATUSES: tuple[str, ...] = get_args(FinalLayerRunStatus)
EXTRACTION_RUN_STATUSES: tuple[str, ...] = get_args(ExtractionRunStatus)
FINAL_EXTRACTION_RUN_STATUSES: tuple[str, ...] = get_args(FinalExtractionRunStatus)

# --- API key scopes -------------------------------------------------------------

# Lowest first: a key may do what its scope and every lower scope may.
ApiKeyScope = Literal["read", "write", "admin"]
API_KEY_SCOPES: tuple[str, ...] = get_args(ApiKeyScope)

# --- timestamps ---------------------------------------------------------------

# A run's start: not before 2000-01-01, and not more than a day ahead of the
# server's clock (clients' clocks drift; a run from the future does not exist).
EARLIEST_TIMESTAMP = datetime(2000, 1, 1, tzinfo=UTC)
FUTURE_TOLERANCE = timedelta(days=1)
# Filters (`since`, `until`) and cursors may range wider than stored values,
# but stay far from the ends of the calendar, where date arithmetic overflows.
EARLIEST_FILTER_TIMESTAMP = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_FILTER_TIMESTAMP = datetime(2200, 1, 1, tzinfo=UTC)


def latest_timestamp() -> datetime:
    """The latest start or completion a run may have: now plus a day."""
    return datetime.now(UTC) + FUTURE_TOLERANCE


def to_utc_checked(value: datetime) -> datetime:
    """`value` in UTC (naive is taken as UTC); ValueError where the conversion overflows."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError as exc:
        raise ValueError("timestamp out of range") from exc


# The last segments of the concrete paths beside `/runs/{run_id}` and
# `/extraction-runs/{run_id}`: a run with one of these ids could never be read,
# updated or deleted by id (the concrete path is matched first), so none may take one.
RESERVED_RUN_IDS = frozenset(("batch", "claim", "compare", "errors", "export"))


def check_run_id(value: str) -> str:
    """A run id a client chooses: not the name of another resource (`RESERVED_RUN_IDS`)."""
    if value in RESERVED_RUN_IDS:
        raise ValueError(f"'{value}' names another resource; choose another id")
    return value


def check_run_timestamp(value: datetime) -> datetime:
    """A stored timestamp: from 2000-01-01T00:00:00Z to now + 1 day."""
    value = to_utc_checked(value)
    latest = latest_timestamp()
    if not EARLIEST_TIMESTAMP <= value <= latest:
        raise ValueError(
            f"must be between {EARLIEST_TIMESTAMP:%Y-%m-%dT%H:%M:%SZ} and now + 1 day "
            f"({latest:%Y-%m-%dT%H:%M:%SZ})"
        )
    return value


def check_filter_timestamp(value: datetime) -> datetime:
    """A timestamp to filter on: from 1970-01-01 to 2200-01-01 (UTC)."""
    value = to_utc_checked(value)
    if not EARLIEST_FILTER_TIMESTAMP <= value <= LATEST_FILTER_TIMESTAMP:
        raise ValueError(
            f"must be between {EARLIEST_FILTER_TIMESTAMP:%Y-%m-%dT%H:%M:%SZ} and "
            f"{LATEST_FILTER_TIMESTAMP:%Y-%m-%dT%H:%M:%SZ}"
        )
    return value


# --- integers -----------------------------------------------------------------

INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1
# Counts and token numbers of one run are 32-bit (the columns are INTEGER);
# `tokens_total`, given or derived as input + output, too.
MAX_COUNT = INT32_MAX
MAX_TOKENS = INT32_MAX
# Costs in US dollars, each kind with the bound docs/security.md gives it. A
# layer run's is the tighter, so that the rollups' nano-dollar sums hold (see
# db/tables.py, layer_run_rollups); extraction runs' costs are not rolled up.
MAX_LAYER_RUN_COST_USD = 1_000_000
MAX_EXTRACTION_COST_USD = 1e9
# Numbers inside JSON documents: integers must fit 64 bits (SQLite's JSON keeps
# them as int64), and no number may be larger in size either: PostgreSQL's JSONB
# keeps a number exactly, as a decimal, so 1e308 would read back as a 309-digit
# integer that no reader of 64-bit numbers (orjson among them) takes.
MAX_JSON_INT = INT64_MAX
MAX_METRIC_VALUE = 1e15
# The metrics every extraction run may report, in the order answers list them
# (any other named number comes after them, by name).
STANDARD_METRICS = ("precision", "recall", "f1", "latency_ms")

# --- text ---------------------------------------------------------------------

# PostgreSQL text cannot hold U+0000, and a lone UTF-16 surrogate (U+D800 to
# U+DFFF, which JSON's `\ud800` escape can produce) cannot be encoded as UTF-8
# at all: neither may appear in any text, object keys included.
_FORBIDDEN_CHARS = re.compile("[\x00\ud800-\udfff]")
# An error group's fingerprint (see runwatch.fingerprints): 16 hex digits.
FINGERPRINT_PATTERN = r"^[0-9a-f]{16}$"
MAX_NAME_CHARS = 200
MAX_DOCUMENT_NAME_CHARS = 500
MAX_METRIC_NAME_CHARS = 100
MAX_ERROR_CHARS = 10_000


def check_text(value: str) -> str:
    """Refuse U+0000 and lone surrogates (both unstorable or unencodable)."""
    if value.isascii() and "\x00" not in value:
        return value  # no surrogate is ASCII; `isascii` is a flag of the string
    found = _FORBIDDEN_CHARS.search(value)
    if found is not None:
        char = found.group()
        what = (
            "the NUL character (U+0000)"
            if char == "\x00"
            else f"a lone surrogate (U+{ord(char):04X})"
        )
        raise ValueError(f"must not contain {what}")
    return value


# Text reaches runwatch two ways, each checked for the same rule: a JSON body
# is decoded by Python, where `check_text` sees every character (a lone
# surrogate too); a query parameter is decoded from UTF-8 with replacement, so
# it cannot hold a surrogate, and this pattern (shown in OpenAPI) is enough.
NO_NUL_PATTERN = r"^[^\x00]*$"

# --- documents and lists --------------------------------------------------------

MAX_JSON_BYTES = 1024 * 1024
MAX_JSON_DEPTH = 32
MAX_METRICS = 100
MAX_RUN_ERRORS = 1000
# The most runs one batch may carry, whatever RUNWATCH_MAX_BATCH_SIZE says: the
# schema refuses a longer list before it looks at any item.
MAX_BATCH_RUNS = 10_000
# A problem body lists at most this many validation errors, and counts the rest.
MAX_PROBLEM_ERRORS = 20


def check_json(value: Any, *, depth: int = 1) -> None:
    """A JSON value within bounds: nesting, finite numbers no larger than 64-bit integers,
    text rules."""
    if depth > MAX_JSON_DEPTH:
        raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels")
    # What a decoded JSON body holds, by exact type first: the same checks
    # without an abstract-class test per value (batches carry thousands).
    kind = type(value)
    if kind is str:
        check_text(value)
    elif kind is dict:
        for key, item in value.items():
            check_text(key)
            check_json(item, depth=depth + 1)
    elif kind is list:
        for item in value:
            check_json(item, depth=depth + 1)
    elif kind is int:
        if abs(value) > MAX_JSON_INT:
            raise ValueError("integers must fit in 64 bits")
    elif kind is float:
        if not math.isfinite(value):
            raise ValueError("numbers must be finite (no NaN or Infinity)")
        if abs(value) > MAX_JSON_INT:
            raise ValueError(f"numbers must be between -{MAX_JSON_INT} and {MAX_JSON_INT}")
    elif value is not None and kind is not bool:
        _check_json_any(value, depth)


def _check_json_any(value: Any, depth: int) -> None:
    """`check_json` of any other type: subclasses of the JSON types, other mappings."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("numbers must be finite (no NaN or Infinity)")
    if isinstance(value, float) and abs(value) > MAX_JSON_INT:
        raise ValueError(f"numbers must be between -{MAX_JSON_INT} and {MAX_JSON_INT}")
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_JSON_INT:
        raise ValueError("integers must fit in 64 bits")
    if isinstance(value, str):
        check_text(value)
    if isinstance(value, Mapping):
        for key, item in value.items():
            check_text(key)
            check_json(item, depth=depth + 1)
    elif isinstance(value, list):
        for item in value:
            check_json(item, depth=depth + 1)


def check_json_document(value: Any) -> Any:
    """A stored JSON document (`output`, `expected`, `errors`): `check_json`, and 1 MiB at most.

    Deep or huge documents would cost every reader of the run, not only the writer.
    """
    check_json(value)
    size = len(json.dumps(value, separators=(",", ":")).encode())
    if size > MAX_JSON_BYTES:
        raise ValueError(f"{size} bytes of JSON; at most {MAX_JSON_BYTES}")
    return value

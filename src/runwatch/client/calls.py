"""What a client method asks the transport to do, described without doing it.

A method of the client builds one of these (a `Call`, a `Batch` of calls, a
`Download`, `Pages` to follow or export `Lines` to read) and hands it to its
client, which does the I/O: `RunwatchClient` blocking, `AsyncRunwatchClient`
awaiting. `via` names the client's method that carries each kind out.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Any, ClassVar, Generic, TypedDict, TypeVar

import httpx
from pydantic import BaseModel
from ulid import ULID

from runwatch.schemas.common import ExportFormat

M = TypeVar("M")
R = TypeVar("R")
T = TypeVar("T")


class Action(Generic[R]):
    """Something a client method does that gives an `R`."""

    via: ClassVar[str]


class Stream(Generic[T]):
    """Something a client method does that yields `T`s one by one."""

    via: ClassVar[str]


@dataclass(frozen=True)
class Call(Action[M]):
    """One request and how to read its answer (`parse` None: no body)."""

    via: ClassVar[str] = "_send"

    method: str
    path: str
    parse: Callable[[bytes], M] | None = None
    params: Mapping[str, str] | None = None
    body: Any = None

    def read(self, response: httpx.Response) -> M:
        return self.parse(response.content) if self.parse else None  # type: ignore[return-value]


@dataclass(frozen=True)
class Batch(Action[R], Generic[M, R]):
    """Several calls, their answers combined into one result, in the calls' order.

    `calls` is read lazily, so a long input is not held in memory; at most
    `concurrency` are in flight at once (the blocking client sends one at a time).
    """

    via: ClassVar[str] = "_send_all"

    calls: Iterable[Call[M]]
    combine: Callable[[list[M]], R]
    concurrency: int = 1


@dataclass(frozen=True)
class Pages(Stream[T], Generic[M, T]):
    """The items of every page, following `next_cursor` from `page(None)` on."""

    via: ClassVar[str] = "_follow"

    page: Callable[[str | None], Call[M]]
    items: Callable[[M], Iterable[T]]

    @classmethod
    def listing(
        cls,
        path: str,
        parse: Callable[[bytes], M],
        items: Callable[[M], Iterable[T]],
        page_size: int,
        filters: Mapping[str, Any],
    ) -> Pages[M, T]:
        """The pages of a list endpoint with `filters`, `page_size` items each."""

        def page(cursor: str | None) -> Call[M]:
            return Call("GET", path, parse, params(limit=page_size, cursor=cursor, **filters))

        return cls(page, items)

    def after(self, page: M) -> Call[M] | None:
        """The call for the page after `page`, if there is one."""
        cursor: str | None = getattr(page, "next_cursor", None)
        return None if cursor is None else self.page(cursor)


@dataclass(frozen=True)
class Lines(Stream[T]):
    """An NDJSON export read line by line, each parsed into a `T`."""

    via: ClassVar[str] = "_read_lines"

    call: Call[None]
    parse: Callable[[str], T]

    @classmethod
    def export(cls, path: str, parse: Callable[[str], T], filters: Mapping[str, Any]) -> Lines[T]:
        """The NDJSON export at `path` with `filters`."""
        return cls(Call("GET", path, params=params(format="ndjson", **filters)), parse)


class CursorPaging(TypedDict, total=False):
    """Which page of a list: `limit` items from `cursor` (a `next_cursor`) on."""

    limit: int | None
    cursor: str | None


class Paging(CursorPaging, total=False):
    """Which page of a list: `limit` items, after `offset` items or from `cursor`."""

    offset: int | None


class ExportOptions(TypedDict, total=False):
    """How an export is written: `format` (default NDJSON), and `progress`, called with rows."""

    format: ExportFormat
    progress: Callable[[int], object] | None


@dataclass
class Download(Action[int]):
    """An export written to `out` as it arrives; gives the number of rows written."""

    via: ClassVar[str] = "_download"

    call: Call[None]
    out: IO[bytes]
    progress: Callable[[int], object] | None
    format: ExportFormat
    rows: int = 0
    pending_header: bool = field(init=False)

    def __post_init__(self) -> None:
        self.pending_header = self.format == "csv"

    @classmethod
    def export(cls, path: str, out: IO[bytes], options: Mapping[str, Any]) -> Download:
        """The export at `path` into `out`, with the filters and `ExportOptions` in `options`."""
        filters = dict(options)
        format = filters.pop("format", "ndjson")
        progress = filters.pop("progress", None)
        call: Call[None] = Call("GET", path, params=params(format=format, **filters))
        return cls(call, out, progress, format)

    def write(self, chunk: bytes) -> None:
        """Write a chunk and count its rows, for progress (CSV: less the header)."""
        self.out.write(chunk)
        lines = chunk.count(b"\n")
        if self.pending_header and lines:
            lines -= 1
            self.pending_header = False
        self.rows += lines
        if self.progress is not None and lines:
            self.progress(lines)


# --- building requests --------------------------------------------------------


def param(value: Any) -> str:
    """A query parameter's text: RFC 3339 for datetimes, comma-joined for sequences."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.isoformat()
    if isinstance(value, str):
        return value
    if isinstance(value, Sequence):
        return ",".join(str(v) for v in value)
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def params(**values: Any) -> dict[str, str]:
    """The query parameters given a value; `None` leaves one out."""
    return {name: param(value) for name, value in values.items() if value is not None}


def body(value: BaseModel | Mapping[str, Any] | None, fields: Mapping[str, Any]) -> dict[str, Any]:
    """A request body from a model and/or keyword fields, JSON-ready."""
    if isinstance(value, BaseModel):
        data = value.model_dump(mode="json", exclude_unset=True)
    else:
        data = dict(value or {})
    data.update(fields)
    return json.loads(json.dumps(data, default=_json_default))


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return param(value)
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def with_id(data: dict[str, Any]) -> dict[str, Any]:
    """The body with an `id`, made here when it has none."""
    # An id made here makes creation idempotent: a retry after a lost answer
    # finds the run already stored and is answered 200, not a duplicate.
    if not data.get("id"):
        data["id"] = str(ULID())
    return data


def chunks(items: Iterable[Any], size: int) -> Iterable[list[Any]]:
    """`items` in lists of `size` (the last may be shorter), read lazily."""
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk

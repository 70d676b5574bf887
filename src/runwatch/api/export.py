"""Streamed exports of runs as NDJSON or CSV, read in keyset chunks with constant memory.

An export is the list query of its kind (the same filters and sort) read
chunk after chunk with the keyset cursor of `fetch_page`, each chunk on a
read connection held only while it is read; a connection found dead (a
database restart) is replaced and the chunk read again, as reads do. The
first chunk is read before the answer starts, so that a bad cursor or an
unavailable database is still a problem+json answer; a failure later breaks
the stream off (the client sees an incomplete chunked body, never a truncated
file that looks whole). While one chunk is encoded and sent, the next is
being read, up to READ_AHEAD chunks ahead.

NDJSON: one detail object per line, the same JSON as `GET /…/{id}`.
CSV: one header line, then one line per run; see `docs/client.md` for the
columns: nested objects are flattened (`tokens.input`, `metrics.f1`) and
free-form JSON (`errors`, `output`, `expected`, `metrics`) is kept as JSON
text in one cell. On PostgreSQL the database writes the lines where it can
(see `queries/export.py`) and they are only joined here.
"""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, get_args

import orjson
from fastapi import Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncConnection

from runwatch.api.deps import READ_SOURCE_HEADER
from runwatch.api.reads import on_read_connection
from runwatch.kinds import RunKind
from runwatch.queries.export import Chunk, ExportQuery
from runwatch.schemas.common import ExportFormat, rfc3339

MEDIA_TYPES = {"ndjson": "application/x-ndjson", "csv": "text/csv; charset=utf-8"}
EXPORT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The runs, streamed.",
        "content": {
            "application/x-ndjson": {"schema": {"type": "string"}},
            "text/csv": {"schema": {"type": "string"}},
        },
    }
}

# Rows per chunk: start small (a row may carry up to a few MiB of JSON), then
# size each chunk from the bytes per row seen so far, for about CHUNK_BYTES of
# output. Up to READ_AHEAD + 2 chunks are in memory at once (one sent, those
# read and waiting, one being read). Rows that
# Python writes hold several times their output in objects while it does:
# their chunks are smaller.
FIRST_CHUNK = 200
MAX_CHUNK = 10_000
CHUNK_BYTES = 2 * 1024 * 1024
CHUNK_BYTES_OF_ROWS = 512 * 1024
SEND_BYTES = 256 * 1024
READ_AHEAD = 2


def _same(row: Mapping[str, Any]) -> Mapping[str, Any]:
    return row


@dataclass(frozen=True)
class CsvColumn:
    """One CSV column: its header and how to take it from a detail's JSON form."""

    name: str
    path: tuple[str, ...]
    as_json: bool = False


def csv_columns(model: type[BaseModel], *, json_fields: Sequence[str] = ()) -> list[CsvColumn]:
    """Every field of `model` in order; a nested model becomes one column per field."""
    columns: list[CsvColumn] = []
    for name, info in model.model_fields.items():
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            for sub in annotation.model_fields:
                columns.append(CsvColumn(f"{name}.{sub}", (name, sub)))
        else:
            columns.append(CsvColumn(name, (name,), as_json=name in json_fields))
    return columns


def _cell(data: Mapping[str, Any], column: CsvColumn) -> Any:
    value: Any = data
    for part in column.path:
        value = value.get(part) if isinstance(value, Mapping) else None
    if value is None:
        return ""
    if column.as_json or isinstance(value, (dict, list)):
        return orjson.dumps(value).decode()
    return value


def _is_time(annotation: Any) -> bool:
    if annotation is datetime:
        return True
    return any(_is_time(arg) for arg in get_args(annotation))


@dataclass(frozen=True)
class ExportKind:
    """What one kind of run exports: its detail model's fields, how a row gives them, its CSV."""

    model: type[BaseModel]
    columns: Sequence[CsvColumn]
    prepare: Callable[[Mapping[str, Any]], Mapping[str, Any]] = _same

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(self.model.model_fields)

    @property
    def flat_csv(self) -> bool:
        """Its CSV columns are its fields, in order, each a value of its own (no nesting)."""
        names = tuple(c.name for c in self.columns)
        return names == self.fields and all(c.path == (c.name,) for c in self.columns)

    @property
    def time_fields(self) -> tuple[str, ...]:
        return tuple(
            name for name, info in self.model.model_fields.items() if _is_time(info.annotation)
        )


def export_kind(kind: RunKind) -> ExportKind:
    """What `kind` exports: its detail model's fields; CSV cells flattened as it says."""
    columns = [
        *csv_columns(kind.detail_model, json_fields=kind.csv_json_fields),
        *(CsvColumn(".".join(path), path) for path in kind.csv_extra_columns),
    ]
    return ExportKind(model=kind.detail_model, columns=columns, prepare=kind.detail_fields)


class _Encoder:
    """Rows as detail objects, without building a model per row (the hot path of an export).

    The values are the row's own; timestamps are written by the models' own
    `rfc3339`, so a line is exactly what `GET /…/{id}` answers.
    """

    def __init__(self, kind: ExportKind, format: ExportFormat) -> None:
        self.kind = kind
        self.format = format
        self.fields = kind.fields

    def header(self) -> bytes:
        if self.format != "csv":
            return b""
        return self._csv_lines([[c.name for c in self.kind.columns]])

    def details(self, rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        prepare, fields, times = self.kind.prepare, self.fields, self.kind.time_fields
        out = []
        for row in rows:
            data = prepare(row)
            detail = {name: data[name] for name in fields}
            for name in times:
                value = detail[name]
                if value is not None:
                    detail[name] = rfc3339(value)
            out.append(detail)
        return out

    def encode(self, chunk: Chunk) -> bytes:
        if chunk.lines or not chunk.rows:
            return chunk.lines  # written by the database (see queries/export.py)
        details = self.details(chunk.rows)
        if self.format == "ndjson":
            return b"".join([orjson.dumps(d) + b"\n" for d in details])
        columns = self.kind.columns
        return self._csv_lines([[_cell(d, c) for c in columns] for d in details])

    @staticmethod
    def _csv_lines(rows: list[list[Any]]) -> bytes:
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows(rows)
        text = buffer.getvalue()
        if "\r" in text:
            # With "\n" line ends the csv module leaves a carriage return unquoted,
            # which RFC 4180 (and the csv module's own reader) takes for a line end.
            text = "".join([",".join([_csv_text(v) for v in row]) + "\n" for row in rows])
        return text.encode()


def _csv_text(value: Any) -> str:
    """A cell as the csv module writes it, quoted also when it holds a carriage return."""
    text = "" if value is None else str(value)
    if any(char in text for char in ',"\n\r'):
        return '"' + text.replace('"', '""') + '"'
    return text


async def _read_chunk(
    request: Request, query: ExportQuery, *, limit: int, cursor: str | None
) -> tuple[str, Chunk]:
    """One chunk on a read connection held only while it is read (a dead one replaced)."""

    async def read(conn: AsyncConnection, source: str) -> tuple[str, Chunk]:
        async with conn.begin():
            return source, await query.chunk(conn, limit=limit, cursor=cursor)

    return await on_read_connection(request, read)


def _chunk_size(rows_seen: int, bytes_seen: int, *, lines: bool) -> int:
    per_row = max(bytes_seen // max(rows_seen, 1), 1)
    target = CHUNK_BYTES if lines else CHUNK_BYTES_OF_ROWS
    return max(1, min(MAX_CHUNK, target // per_row))


@dataclass
class _Seen:
    """Rows and bytes sent so far, which size the chunks still to be read."""

    rows: int
    bytes: int


async def _read_ahead(
    request: Request,
    query: ExportQuery,
    cursor: str | None,
    seen: _Seen,
    ahead: asyncio.Queue[Chunk | BaseException | None],
) -> None:
    """Read chunk after chunk into `ahead` (at most READ_AHEAD waiting); None at the end.

    The database reads on while the chunks before are sent, so that neither
    waits for the other; a failure is handed over in place of a chunk.
    """
    try:
        while cursor is not None:
            size = _chunk_size(seen.rows, seen.bytes, lines=query.lines)
            _, chunk = await _read_chunk(request, query, limit=size, cursor=cursor)
            await ahead.put(chunk)
            cursor = chunk.next_cursor
    except Exception as exc:
        await ahead.put(exc)
        return
    await ahead.put(None)


async def export_response(
    request: Request,
    *,
    kind: ExportKind,
    query: ExportQuery,
    format: ExportFormat,
    filename: str,
) -> StreamingResponse:
    """Read the first chunk now, then stream the rest, reading ahead while chunks are sent."""
    encoder = _Encoder(kind, format)
    source, first = await _read_chunk(request, query, limit=FIRST_CHUNK, cursor=None)
    head = encoder.header() + encoder.encode(first)

    seen = _Seen(first.count, len(head))

    async def body() -> AsyncIterator[bytes]:
        ahead: asyncio.Queue[Chunk | BaseException | None] = asyncio.Queue(READ_AHEAD)
        reader = asyncio.ensure_future(_read_ahead(request, query, first.next_cursor, seen, ahead))
        try:
            yield head
            while (chunk := await ahead.get()) is not None:
                if isinstance(chunk, BaseException):
                    raise chunk
                data = encoder.encode(chunk)
                seen.rows += chunk.count
                seen.bytes += len(data)
                # In pieces: the server copies what it is given to frame and buffer it.
                for start in range(0, len(data), SEND_BYTES):
                    yield data[start : start + SEND_BYTES]
        finally:
            # Broken off, or done: a chunk still being read is not wanted.
            reader.cancel()
            await asyncio.wait([reader])  # until it has given its connection back

    extension = "ndjson" if format == "ndjson" else "csv"
    return StreamingResponse(
        body(),
        media_type=MEDIA_TYPES[format],
        headers={
            "Content-Disposition": f'attachment; filename="{filename}.{extension}"',
            READ_SOURCE_HEADER: source,
        },
    )

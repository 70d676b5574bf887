"""The queries an export reads in keyset chunks: each kind's list query with every detail field.

On PostgreSQL the database writes each row's line: the detail object as JSON
for NDJSON, or, for a kind whose CSV columns are its fields, the CSV line. A
chunk then comes back as its lines (UTF-8 bytes), one value per row: Python
joins the lines, once per chunk, and reads the keyset cursor's `(sort key,
id)` from the last one. Elsewhere the detail columns come back and Python
writes the objects or the CSV. The filters are the lists' own, with the same
bind parameters, so each statement is built once per shape (see `fetch_page`).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

import orjson
from sqlalchemy import (
    JSON,
    ColumnElement,
    Float,
    Integer,
    LargeBinary,
    Select,
    String,
    Text,
    case,
    cast,
    func,
    literal_column,
    select,
    type_coerce,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from runwatch.db.dialect import Dialect, dialect_of, json_object_value
from runwatch.db.types import UtcDateTime
from runwatch.queries.pagination import (
    SortSpec,
    encode_cursor,
    fetch_page,
    page_query,
    page_values,
)
from runwatch.queries.runs import RunFilter, filter_params, filter_shape, run_conditions
from runwatch.queries.statements import STATEMENTS

if TYPE_CHECKING:
    from runwatch.kinds import RunKind

LineFormat = Literal["ndjson", "csv"]


@dataclass(frozen=True)
class Chunk:
    """Rows of an export: written by the database (`lines`) or for Python to write (`rows`)."""

    count: int
    next_cursor: str | None
    lines: bytes = b""  # each line ending with "\n"
    rows: Sequence[Mapping[str, Any]] = ()


@dataclass(frozen=True)
class ExportQuery:
    """An export's statement (built once per shape), its parameters and its order.

    `lines`: the database writes the lines (`build` selects only `line`, in
    `format` with the values of `fields`); otherwise `build` selects the
    detail columns.
    """

    shape: Hashable
    build: Callable[[], tuple[Select[Any], None]]
    params: dict[str, Any]
    spec: SortSpec
    lines: bool = False
    format: LineFormat = "ndjson"
    fields: tuple[str, ...] = ()

    async def chunk(self, conn: AsyncConnection, *, limit: int, cursor: str | None) -> Chunk:
        """The next `limit` rows after `cursor` (the keyset cursor of the previous chunk)."""
        if not self.lines:
            page = await fetch_page(
                conn,
                shape=self.shape,
                build=self.build,
                params=self.params,
                spec=self.spec,
                limit=limit,
                cursor=cursor,
            )
            return Chunk(count=len(page.rows), next_cursor=page.next_cursor, rows=page.rows)
        values, null_key = page_values(self.params, self.spec, limit=limit, cursor=cursor)
        shape = ("export_lines", self.shape, self.spec.token, null_key)
        statement = STATEMENTS.get(
            shape, lambda: page_query(self.build()[0], self.spec, null_key=null_key)
        )
        rows = await dialect_of(conn).fetch_rows(conn, statement, values)
        lines = [row[0] for row in rows[:limit]]
        next_cursor = self._cursor_after(lines[-1]) if len(rows) > limit else None
        lines.append(b"")  # the last line's end, in the one join
        return Chunk(len(lines) - 1, next_cursor, b"\n".join(lines) if len(lines) > 1 else b"")

    def _cursor_after(self, line: bytes) -> str:
        """The keyset cursor after the run whose line this is, from its own id and sort key.

        The line holds both (`export_query` checks that `fields` has them), a
        double in its shortest exact form and a timestamp to the microsecond,
        so they read back as the values stored. Only one line per chunk is
        read, instead of the database sending the keys of every row.
        """
        if self.format == "ndjson":
            values = orjson.loads(line)
        else:
            cells = next(csv.reader(io.StringIO(line.decode())))
            values = {name: cell or None for name, cell in zip(self.fields, cells, strict=True)}
        value = values[self.spec.name]
        if value is not None and self.spec.is_time:
            value = datetime.fromisoformat(value)
        elif isinstance(value, str):  # a CSV cell
            value = float(value) if isinstance(self.spec.column.type, Float) else int(value)
        return encode_cursor(self.spec, value, values["id"])


def rfc3339_text(column: ColumnElement[Any]) -> ColumnElement[str]:
    """PostgreSQL: a timestamptz as the API writes it, `2026-01-23T03:00:00.25Z`; null stays null.

    The UTC timestamp's text (fractional seconds without trailing zeros) with
    a `T`, then `Z`. That text is ISO 8601 only under the ISO DateStyle (the
    default), which the statement looks up once (an InitPlan); under another
    it is the timestamp's JSON form unquoted, ISO 8601 whatever the DateStyle
    but about twice the work, which counts when every row of an export has
    two. Dialect-specific, kept next to the exports that use it.
    """
    utc = func.timezone(literal_column("'UTC'", Text), column)
    iso_style = select(
        func.current_setting(literal_column("'DateStyle'", Text)).like(
            literal_column("'ISO%'", Text)
        )
    ).scalar_subquery()
    iso = func.replace(cast(utc, Text), literal_column("' '", Text), literal_column("'T'", Text))
    unquoted = func.btrim(cast(func.to_json(utc), Text), literal_column("'\"'", Text))
    return case((iso_style, iso), else_=unquoted).concat(literal_column("'Z'", Text))


def _value(column: ColumnElement[Any]) -> ColumnElement[Any]:
    """A detail field for `select_json_lines`: a timestamp as its JSON string, written here."""
    if not isinstance(column.type, UtcDateTime):
        return column
    quote = literal_column("'\"'", Text)
    return type_coerce(quote.concat(rfc3339_text(column)).concat(quote), JSON)


# --- CSV lines written by PostgreSQL --------------------------------------------
# Dialect-specific pieces, kept next to the one query that uses them. Each
# cell is written as Python's csv module writes the value (see api/export.py),
# so that a CSV export reads the same whichever side wrote it; JSON cells hold
# the same JSON, as PostgreSQL writes it (`[{"type": "X"}]`), always quoted.

_COMMA = literal_column("','", Text)
_QUOTE = literal_column("'\"'", Text)
_TWO_QUOTES = literal_column("'\"\"'", Text)
# RFC 4180: a cell with a comma, a double quote or a line break is quoted.
_SPECIAL = literal_column("'[,\"\\r\\n]'", Text)


def _has_special(text: ColumnElement[Any]) -> ColumnElement[bool]:
    return text.op("~")(_SPECIAL)


def _quoted(text: ColumnElement[Any]) -> ColumnElement[Any]:
    return _QUOTE.concat(func.replace(text, _QUOTE, _TWO_QUOTES)).concat(_QUOTE)


def _csv_float(column: ColumnElement[Any]) -> ColumnElement[Any]:
    """A double as Python's `repr` writes it: PostgreSQL's shortest form, `.0` on whole numbers.

    Both write the shortest text that reads back as the same double; they
    differ only in that Python keeps `.0` on a whole number (below 1e16, where
    Python turns to exponents; PostgreSQL does from 1e15, beyond any stored
    cost or duration).
    """
    text = cast(column, Text)
    whole = (column == func.trunc(column)) & (func.abs(column) < literal_column("1e15"))
    return case((whole, text.concat(literal_column("'.0'", Text))), else_=text)


def _csv_cell(column: ColumnElement[Any], *, check: bool) -> ColumnElement[Any]:
    """The cell of `column`; a text cell is checked for quoting only if `check`."""
    kind = column.type
    if isinstance(kind, UtcDateTime):
        return rfc3339_text(column)
    if isinstance(kind, Float):
        return _csv_float(column)
    if isinstance(kind, Integer):
        return cast(column, Text)
    if isinstance(kind, JSON):
        # JSON text is quoted whatever it holds (an empty list too), so that it is
        # written once per row rather than once to look at it and again to write it.
        return _quoted(cast(column, Text))
    if not check:
        return column
    return case((_has_special(column), _quoted(column)), else_=column)


def _joined(cells: Sequence[ColumnElement[Any]]) -> ColumnElement[Any]:
    with_commas: list[ColumnElement[Any]] = []
    for cell in cells:
        if with_commas:
            with_commas.append(_COMMA)
        with_commas.append(cell)
    return func.concat(*with_commas, type_=Text)


def csv_line(columns: Sequence[ColumnElement[Any]]) -> ColumnElement[Any]:
    """PostgreSQL: the row's CSV line of `columns`, without its line end.

    `concat` writes a null cell as nothing, as the csv module writes None. The
    text cells rarely need quoting, so they are looked at all at once: only a
    row with a comma, quote or line break in one of them has each checked.
    """
    texts = [c for c in columns if isinstance(c.type, String) and not isinstance(c.type, JSON)]
    plain = _joined([_csv_cell(c, check=False) for c in columns])
    if not texts:
        return plain
    checked = _joined([_csv_cell(c, check=True) for c in columns])
    return case((_has_special(func.concat(*texts, type_=Text)), checked), else_=plain)


def writes_lines(dialect: Dialect, format: LineFormat, *, csv_lines: bool) -> bool:
    """Whether the database writes the export's lines (see the module docstring)."""
    return dialect.writes_text_lines and (format == "ndjson" or csv_lines)


def _utf8(text: ColumnElement[Any]) -> ColumnElement[Any]:
    # Bytes, which the driver hands over as they are: no str to decode and encode again.
    return func.convert_to(text, literal_column("'UTF8'", Text), type_=LargeBinary).label("line")


def _select(
    table: Any,
    pairs: list[tuple[str, ColumnElement[Any]]],
    columns: Sequence[ColumnElement[Any]],
    conditions: list[ColumnElement[bool]],
    spec: SortSpec,
    lines: LineFormat | None,
    dialect: Dialect,
) -> Select[Any]:
    if lines == "ndjson":
        json_lines = dialect.select_json_lines(table, pairs, ())
        if json_lines is None:
            raise AssertionError("a dialect that writes text lines writes JSON lines")
        line = _utf8(json_lines.selected_columns[0])
        query = json_lines.with_only_columns(line, maintain_column_froms=False)
    elif lines == "csv":
        query = select(_utf8(csv_line(columns))).select_from(table)
    else:
        query = select(*columns)
    return query.where(*conditions)


def export_query(
    kind: RunKind,
    filters: RunFilter,
    spec: SortSpec,
    *,
    fields: Sequence[str],
    dialect: Dialect,
    format: LineFormat = "ndjson",
    csv_lines: bool = False,
) -> ExportQuery:
    """The kind's list with these filters, selecting what its detail shows (`fields`).

    `csv_lines`: the CSV cells are `fields` in order, each a column, so the
    database may write the CSV lines (a kind whose CSV flattens nested fields,
    `tokens.input`, has Python write it).
    """
    t = kind.table
    shape = filter_shape(filters)
    lines = writes_lines(dialect, format, csv_lines=csv_lines)
    if lines and not {"id", spec.name} <= set(fields):
        raise ValueError(f"an export's lines hold the id and its sort key: {spec.name!r}")

    def value(name: str) -> ColumnElement[Any]:
        nested = kind.nested.get(name)
        if nested is None:
            return _value(t.c[name])
        return json_object_value([(key, t.c[column]) for key, column in nested])

    def build() -> tuple[Select[Any], None]:
        pairs = [(name, value(name)) for name in fields]
        conditions = run_conditions(kind, shape)
        columns = [t.c[name] for name in fields] if csv_lines else kind.detail_columns
        query = _select(t, pairs, columns, conditions, spec, format if lines else None, dialect)
        return query, None

    return ExportQuery(
        shape=("export", kind.name, shape, tuple(fields), dialect.name, format, lines),
        build=build,
        params=filter_params(filters),
        spec=spec,
        lines=lines,
        format=format,
        fields=tuple(fields),
    )

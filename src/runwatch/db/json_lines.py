"""PostgreSQL: a row written as one line of compact JSON text, for exports (see `dialect.py`).

The line is one `concat` of its pieces, written in one pass: a chain of `||`
copies the line so far at every step, which cost more than writing the
values. Each value is written as its type writes it, decided once when the
statement is built rather than looked up per row as `row_to_json` does: text
in quotes, numbers and booleans as their own text (a double in its shortest
exact form; the API stores only finite ones), JSON as its text, and a
JSON-typed value (a nested object, or text the caller has already written as
a JSON string) as it is. A value may be null, unless it is a NOT NULL column.

Text needs JSON's escapes only where it holds a quote, a backslash or a
control character (PostgreSQL text holds no NUL): one regular-expression
test over all of a row's text values decides, and only a row that has one
has each of them written by `to_json`; the others are quoted as they are.
`to_json` escapes nothing else, so both write the same JSON.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    ColumnElement,
    Float,
    Integer,
    String,
    Text,
    case,
    cast,
    func,
    literal_column,
)

# The characters JSON writes escaped, as a PostgreSQL regular expression.
_ESCAPED = literal_column("'[\"\\\\\\x01-\\x1f]'", Text)

Piece = str | ColumnElement[Any]


def json_line(pairs: Sequence[tuple[str, ColumnElement[Any]]]) -> ColumnElement[str]:
    """The JSON object `{"key": value, …}` of `pairs` as text; keys are the caller's constants."""
    for key, _ in pairs:
        if not key.replace("_", "").isalnum():
            raise ValueError(f"not a plain key: {key!r}")
    plain = _line(pairs, escape=False)
    texts = [value for _, value in pairs if _is_text(value)]
    if not texts:
        return plain
    needs_escapes = func.concat(*texts, type_=Text).op("~")(_ESCAPED)
    return case((needs_escapes, _line(pairs, escape=True)), else_=plain)


def _is_text(value: ColumnElement[Any]) -> bool:
    return isinstance(value.type, String) and not isinstance(value.type, JSON)


def _line(pairs: Sequence[tuple[str, ColumnElement[Any]]], *, escape: bool) -> ColumnElement[str]:
    pieces: list[Piece] = []
    for key, value in pairs:
        pieces.append(("," if pieces else "{") + f'"{key}":')
        pieces += _value(value, escape=escape)
    pieces.append("}")
    merged: list[Piece] = []
    for piece in pieces:  # neighbouring constants as one
        if isinstance(piece, str) and merged and isinstance(merged[-1], str):
            merged[-1] += piece
        else:
            merged.append(piece)
    return func.concat(*[_literal(p) if isinstance(p, str) else p for p in merged], type_=Text)


def _value(value: ColumnElement[Any], *, escape: bool) -> list[Piece]:
    """The pieces that write `value` as JSON, `null` when it is null."""
    not_null = isinstance(value, Column) and not value.nullable
    if _is_text(value) and not escape:
        if not_null:
            return ['"', value, '"']
        text = _literal('"').concat(value).concat(_literal('"'))
    elif isinstance(value.type, (Integer, Float, Boolean, JSON)):
        text = cast(value, Text)
    else:
        text = cast(func.to_json(value), Text)
    if not_null:
        return [text]
    return [func.coalesce(text, _literal("null"), type_=Text)]


def _literal(text: str) -> ColumnElement[str]:
    # Only the caller's constant keys and punctuation, never a value.
    return literal_column("'" + text.replace("'", "''") + "'", Text)

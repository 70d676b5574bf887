"""Field-level scoring of an extraction against ground truth, and the field-by-field diff.

Both work on *leaf fields*: a JSON value is flattened into `{dotted path: leaf}`.
Objects are walked key by key (`invoice.total`), lists element by element with
the index as a path segment (`items.0.sku`), so lists are compared by position.
An empty object or empty list is a leaf of its own. Anything else (string,
number, boolean, null) is a leaf. A top-level value that is not an object is a
single leaf at the path `$`; an empty top-level object has no leaves.

Two leaves are equal when they are the same JSON value: numbers compare by
value (`120` equals `120.0`), booleans are not numbers (`true` differs from
`1`), strings compare exactly. A leaf whose type differs on the two sides is
simply unequal, and where one side has an object or list and the other a
scalar, their leaf paths differ, so each side's leaves count as unmatched.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

ROOT = "$"

FieldStatus = Literal["same", "different", "only_in_a", "only_in_b"]


def _walk(value: Any, path: str) -> Iterator[tuple[str, Any]]:
    if isinstance(value, Mapping) and value:
        for key, item in value.items():
            yield from _walk(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list) and value:
        for index, item in enumerate(value):
            yield from _walk(item, f"{path}.{index}" if path else str(index))
    else:
        yield (path or ROOT), value


def flatten(value: Any, *, keep_null: bool = True) -> dict[str, Any]:
    """`{dotted path: leaf value}` for a JSON value; nulls dropped unless `keep_null`."""
    if value is None or (isinstance(value, (Mapping, list)) and not value):
        return {}
    return {path: leaf for path, leaf in _walk(value, "") if keep_null or leaf is not None}


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    return "object"


def leaves_equal(a: Any, b: Any) -> bool:
    """JSON equality of two leaves: same kind and same value (numbers by value)."""
    return _kind(a) == _kind(b) and a == b


@dataclass(frozen=True)
class Score:
    """Counts of leaf fields and the precision, recall and F1 they give."""

    fields_expected: int
    fields_predicted: int
    fields_correct: int

    @property
    def precision(self) -> float:
        if self.fields_predicted == 0:
            return 1.0  # nothing predicted, so nothing predicted wrongly
        return self.fields_correct / self.fields_predicted

    @property
    def recall(self) -> float:
        if self.fields_expected == 0:
            return 1.0  # nothing to find, so nothing missed
        return self.fields_correct / self.fields_expected

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 0.0 if p + r == 0 else 2 * p * r / (p + r)

    def as_metrics(self) -> dict[str, float]:
        return {
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
            "fields_expected": float(self.fields_expected),
            "fields_predicted": float(self.fields_predicted),
            "fields_correct": float(self.fields_correct),
        }


def score(output: Any, expected: Any) -> Score:
    """Score `output` against `expected` over their non-null leaf fields.

    A null leaf means "no value": a null in the output is not a prediction and
    a null in the expected object is not a field to find. A predicted leaf is
    correct when the expected object has an equal leaf at the same path.
    With no predicted fields precision is 1.0, with no expected fields recall
    is 1.0 (nothing can be wrong or missed); F1 is 0.0 when either is 0.
    """
    predicted = flatten(output, keep_null=False)
    truth = flatten(expected, keep_null=False)
    correct = sum(
        1 for path, value in predicted.items() if path in truth and leaves_equal(value, truth[path])
    )
    return Score(
        fields_expected=len(truth), fields_predicted=len(predicted), fields_correct=correct
    )


@dataclass(frozen=True)
class FieldDifference:
    field: str
    status: FieldStatus
    run_a: Any
    run_b: Any


def diff_fields(a: Any, b: Any) -> list[FieldDifference]:
    """Every leaf field of either value with its status, in path order (nulls kept)."""
    left, right = flatten(a), flatten(b)
    out = []
    for path in sorted(left.keys() | right.keys(), key=_path_key):
        if path not in right:
            out.append(FieldDifference(path, "only_in_a", left[path], None))
        elif path not in left:
            out.append(FieldDifference(path, "only_in_b", None, right[path]))
        else:
            status: FieldStatus = "same" if leaves_equal(left[path], right[path]) else "different"
            out.append(FieldDifference(path, status, left[path], right[path]))
    return out


def _path_key(path: str) -> tuple[tuple[int, int | str], ...]:
    # Numeric segments sort as numbers so that items.10 follows items.9.
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in path.split("."))


def difference(a: float | None, b: float | None) -> tuple[float | None, float | None]:
    """`(b - a, percent of a)`; None where a side is missing, percent None when a is 0
    (or so close to 0 that the percentage overflows).

    Both are rounded to 10 decimal places so that 0.9 - 0.8 reads 0.1.
    """
    if a is None or b is None:
        return None, None
    delta = round(b - a, 10)
    percent = None if a == 0 else round((b - a) / abs(a) * 100.0, 10)
    # A tiny `a` can overflow the percentage; an infinite one says nothing.
    if percent is not None and not math.isfinite(percent):
        percent = None
    return (delta if math.isfinite(delta) else None), percent


def percentile(values: list[float], p: float) -> float | None:
    """The `p`-th percentile (0-100) by linear interpolation between closest ranks.

    The value at rank `(n - 1) * p / 100` of the sorted values, interpolating
    between its two neighbours: the "linear" method of NumPy and the
    "inclusive" method of Python's `statistics.quantiles`. None for no values.
    """
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    fraction = rank - low
    return ordered[low] + (ordered[high] - ordered[low]) * fraction

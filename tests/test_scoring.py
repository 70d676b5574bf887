"""Scoring and diff rules: leaf paths, lists, type mismatches, nulls, percentiles."""

from __future__ import annotations

import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runwatch.scoring import diff_fields, difference, flatten, percentile, score

json_leaves = st.none() | st.booleans() | st.integers(-1000, 1000) | st.text(max_size=5)
json_values = st.recursive(
    json_leaves,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text("abc", min_size=1, max_size=3), children, max_size=4)
    ),
    max_leaves=20,
)


def test_flatten_uses_dotted_paths_and_list_indices() -> None:
    value = {"invoice": {"total": 120.0, "lines": [{"sku": "A"}, {"sku": "B"}]}, "tags": []}
    assert flatten(value) == {
        "invoice.total": 120.0,
        "invoice.lines.0.sku": "A",
        "invoice.lines.1.sku": "B",
        "tags": [],
    }


def test_flatten_of_a_scalar_is_the_root_leaf_and_nulls_can_be_dropped() -> None:
    assert flatten(3) == {"$": 3}
    assert flatten({"a": None, "b": 1}, keep_null=False) == {"b": 1}
    assert flatten(None) == {}


def test_score_counts_correct_fields_against_both_sides() -> None:
    expected = {"vendor": "ACME", "total": 120, "date": "2026-01-02", "lines": [{"sku": "A"}]}
    output = {"vendor": "ACME", "total": 120.0, "date": "2026-01-03", "extra": True}
    s = score(output, expected)
    # correct: vendor, total (120 == 120.0); predicted 4; expected 4 (vendor,total,date,lines.0.sku)
    assert (s.fields_correct, s.fields_predicted, s.fields_expected) == (2, 4, 4)
    assert s.precision == pytest.approx(0.5)
    assert s.recall == pytest.approx(0.5)
    assert s.f1 == pytest.approx(0.5)


def test_type_mismatches_are_wrong() -> None:
    # "120" is a string, true is not 1, and an object where a scalar was expected
    # gives leaves at other paths: each side's leaves go unmatched.
    expected = {"total": 120, "paid": 1, "address": "Main St 1"}
    output = {"total": "120", "paid": True, "address": {"street": "Main St", "number": 1}}
    s = score(output, expected)
    assert (s.fields_correct, s.fields_predicted, s.fields_expected) == (0, 4, 3)
    assert s.f1 == 0.0


def test_lists_are_compared_by_position() -> None:
    s = score({"tags": ["b", "a"]}, {"tags": ["a", "b"]})
    assert s.fields_correct == 0
    s = score({"tags": ["a", "b", "c"]}, {"tags": ["a", "b"]})
    assert (s.fields_correct, s.fields_predicted, s.fields_expected) == (2, 3, 2)
    assert s.precision == pytest.approx(2 / 3)
    assert s.recall == 1.0


def test_nulls_are_not_fields_and_empty_sides_are_defined() -> None:
    s = score({"a": 1, "b": None}, {"a": 1, "c": None})
    assert (s.fields_correct, s.fields_predicted, s.fields_expected) == (1, 1, 1)
    assert score({}, {}).f1 == 1.0
    empty_output = score({}, {"a": 1})
    assert (empty_output.precision, empty_output.recall, empty_output.f1) == (1.0, 0.0, 0.0)
    nothing_expected = score({"a": 1}, {})
    assert (nothing_expected.precision, nothing_expected.recall) == (0.0, 1.0)
    assert nothing_expected.f1 == 0.0


def test_f1_matches_the_harmonic_mean() -> None:
    s = score({"a": 1, "b": 2, "c": 3}, {"a": 1, "b": 2, "d": 4, "e": 5})
    p, r = 2 / 3, 2 / 4
    assert s.f1 == pytest.approx(statistics.harmonic_mean([p, r]))


@given(json_values)
def test_a_value_scores_perfectly_against_itself(value: object) -> None:
    s = score(value, value)
    assert s.precision == s.recall == s.f1 == 1.0


@given(json_values, json_values)
def test_scores_stay_between_zero_and_one(a: object, b: object) -> None:
    s = score(a, b)
    assert 0.0 <= s.precision <= 1.0
    assert 0.0 <= s.recall <= 1.0
    assert 0.0 <= s.f1 <= 1.0
    assert s.fields_correct <= min(s.fields_predicted, s.fields_expected)


def test_diff_fields_statuses_and_order() -> None:
    a = {"invoice": {"total": 120.0, "currency": "EUR"}, "items": [1] * 11, "note": None}
    b = {"invoice": {"total": 125.0, "currency": "EUR", "due": "2026-02-01"}, "items": [1] * 11}
    diffs = {d.field: d for d in diff_fields(a, b)}
    assert diffs["invoice.total"].status == "different"
    assert (diffs["invoice.total"].run_a, diffs["invoice.total"].run_b) == (120.0, 125.0)
    assert diffs["invoice.currency"].status == "same"
    assert diffs["invoice.due"].status == "only_in_b"
    assert diffs["note"].status == "only_in_a"
    paths = [d.field for d in diff_fields(a, b)]
    assert paths.index("items.9") < paths.index("items.10")


@given(json_values, json_values)
def test_diff_covers_every_leaf_of_both_sides(a: object, b: object) -> None:
    diffs = diff_fields(a, b)
    paths = [d.field for d in diffs]
    assert len(paths) == len(set(paths))
    assert set(paths) == set(flatten(a)) | set(flatten(b))
    for d in diffs:
        if d.status == "same":
            assert flatten(a)[d.field] == flatten(b)[d.field]


def test_difference_is_b_minus_a_relative_to_a() -> None:
    assert difference(0.8, 0.9) == (0.1, 12.5)
    assert difference(200.0, 150.0) == (-50.0, -25.0)
    assert difference(0.0, 0.5) == (0.5, None)
    assert difference(None, 0.5) == (None, None)
    assert difference(0.5, None) == (None, None)
    assert difference(-2.0, -1.0) == (1.0, 50.0)
    assert difference(1e-300, 1e15) == (1e15, None)  # the percentage would overflow


@pytest.mark.parametrize("p", [1, 5, 25, 50, 75, 95, 99])
@given(st.lists(st.floats(0, 1e6), min_size=2, max_size=60))
def test_percentile_matches_statistics_inclusive(p: int, values: list[float]) -> None:
    expected = statistics.quantiles(values, n=100, method="inclusive")[p - 1]
    assert percentile(values, p) == pytest.approx(expected, rel=1e-9, abs=1e-9)


def test_percentile_edges() -> None:
    assert percentile([], 50) is None
    assert percentile([7.0], 95) == 7.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([10.0, 20.0], 100) == 20.0

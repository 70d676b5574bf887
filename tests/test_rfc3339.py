"""`rfc3339`, which writes every timestamp of every answer, against the rule written out plainly."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from runwatch.api.reads import encode_json
from runwatch.schemas.common import rfc3339


def reference(value: datetime) -> str:
    """UTC, `YYYY-MM-DDTHH:MM:SS`, the fraction without trailing zeros (none when zero), `Z`."""
    utc = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    text = (
        f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}"
        f"T{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d}"
    )
    if utc.microsecond:
        text += "." + f"{utc.microsecond:06d}".rstrip("0")
    return text + "Z"


offsets = st.one_of(
    st.none(),
    st.just(UTC),
    st.integers(-23 * 60 + 1, 23 * 60 - 1).map(lambda m: timezone(timedelta(minutes=m))),
)


@given(
    st.datetimes(min_value=datetime(2, 1, 1), max_value=datetime(9998, 12, 31), timezones=offsets)
)
def test_every_timestamp_is_written_by_the_rule(value: datetime) -> None:
    assert rfc3339(value) == reference(value)


def test_edges() -> None:
    assert rfc3339(datetime(2026, 1, 23, 3, 0, 0, 250000, tzinfo=UTC)) == "2026-01-23T03:00:00.25Z"
    assert rfc3339(datetime(2026, 1, 23, 3, 0, 0, tzinfo=UTC)) == "2026-01-23T03:00:00Z"
    assert rfc3339(datetime(999, 1, 1, 0, 0, 0, 1)) == "0999-01-01T00:00:00.000001Z"
    east = timezone(timedelta(hours=5, minutes=30))
    assert rfc3339(datetime(2026, 1, 1, 5, 30, tzinfo=east)) == "2026-01-01T00:00:00Z"


@given(
    st.datetimes(min_value=datetime(2, 1, 1), max_value=datetime(9998, 12, 31), timezones=offsets)
)
def test_answers_write_timestamps_as_rfc3339_does(value: datetime) -> None:
    # encode_json writes UTC values itself (the fast path) and hands others to rfc3339.
    assert encode_json({"at": [value]}) == b'{"at":["%s"]}' % rfc3339(value).encode()

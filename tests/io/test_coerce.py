"""Column normalisers: text timestamps, ids and consents to numpy values with null and bad masks."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st


EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


@given(
    moment=st.datetimes(min_value=dt.datetime(1900, 1, 1), max_value=dt.datetime(2200, 1, 1)),
    sep=st.sampled_from([" ", "T"]),
    offset=st.one_of(st.none(), st.integers(-14 * 4, 14 * 4).map(lambda q: q * 15)),
)
def test_iso_text_parses_like_python(moment, sep, offset):
    """ISO 8601 text (naive = UTC, or with an offset) gives the floored UTC epoch second Python gives."""
    from engine.io.coerce import to_epoch_seconds

    tz = dt.timezone.utc if offset is None else dt.timezone(dt.timedelta(minutes=offset))
    text = moment.isoformat(sep=sep) + ("" if offset is None else moment.replace(tzinfo=tz).strftime("%z"))
    secs, null, bad = to_epoch_seconds(pa.array([text]))
    assert not null[0] and not bad[0], text
    assert secs[0] == (moment.replace(tzinfo=tz) - EPOCH) // dt.timedelta(seconds=1)


@pytest.mark.parametrize("text", [
    "2026-08-07 00:05:25.123456789-0400",  # how pyarrow's CSV writer spells a tz-aware ns timestamp
    "2026-08-07T04:05:25.1234567Z",
    "2026-08-07 04:05:25.999999999",  # naive: UTC
    "2026-08-07 04:05:25.000000000Z",
])
def test_iso_text_with_nanoseconds_is_floored_to_the_second(text):
    """Given ISO text with 7 to 9 fraction digits (nanoseconds), when converted, then it is the
    floored UTC second like any other ISO text, not a bad row."""
    from engine.io.coerce import to_epoch_seconds

    secs, null, bad = to_epoch_seconds(pa.array([text, "1969-12-31 23:59:59.000000001"]))
    assert not null.any() and not bad.any(), text
    assert secs.tolist() == [int(dt.datetime(2026, 8, 7, 4, 5, 25, tzinfo=dt.timezone.utc).timestamp()), -1]


@pytest.mark.parametrize(("values", "expect", "bad"), [
    ([" 12 ", "-3", "+4"], [12, -3, 4], [False] * 3),
    (["4x", "1e3", "99999999999999999999"], [0, 0, 0], [True] * 3),
])
def test_text_user_ids(values, expect, bad):
    from engine.io.coerce import to_int64

    got, null, is_bad = to_int64(pa.array(values))
    assert got.tolist() == expect and is_bad.tolist() == bad and not null.any()


def test_float_user_ids_nan_is_null_and_fractions_are_bad():
    from engine.io.coerce import to_int64

    got, null, bad = to_int64(pa.array([1.0, 2.5, None, float("nan"), 1e19]))
    assert got[0] == 1 and null.tolist() == [False, False, True, True, False]
    assert bad.tolist() == [False, True, False, False, True]


def test_text_consents():
    from engine.io.coerce import to_bool

    yes, null, bad = to_bool(pa.array(["Yes", " n ", "1", "T", "maybe", "", None]))
    assert yes.tolist()[:4] == [True, False, True, True]
    assert bad.tolist() == [False, False, False, False, True, False, False]
    assert null.tolist() == [False] * 5 + [True, True]


def test_text_numbers_blank_is_null_and_words_are_bad():
    from engine.io.coerce import to_float64

    vals, bad = to_float64(pa.array(["1.5", " 2 ", "x", None, "inf", ""]))
    assert vals[:2].tolist() == [1.5, 2.0] and vals[4] == float("inf")
    assert all(v != v for v in vals[[2, 3, 5]])  # NaN where null or bad
    assert bad.tolist() == [False, False, True, False, False, False]


def test_names_to_codes_exactly_as_spelled_from_strings_or_a_dictionary():
    from engine.io.coerce import to_codes

    codes, null, unknown = to_codes(pa.array(["email", "SMS", "fax", None]), ("email", "sms", "push"))
    assert codes.dtype.name == "int8" and codes.tolist() == [0, -1, -1, -1]
    assert null.tolist() == [False, False, False, True] and unknown.tolist() == [False, True, True, False]
    codes, null, unknown = to_codes(pa.array(["sms", "email", "sms", None]).dictionary_encode(),
                                    ("email", "sms", "push"))
    assert codes.tolist() == [1, 0, 1, -1] and null.tolist() == [False, False, False, True] and not unknown.any()


def test_arrow_timestamps_of_any_unit_become_epoch_seconds():
    from engine.io.coerce import to_epoch_seconds

    secs, null, bad = to_epoch_seconds(pa.array([0, 1_700_000_000_000, None], pa.timestamp("ms")))
    assert secs[:2].tolist() == [0, 1_700_000_000] and null.tolist() == [False, False, True] and not bad.any()


def test_fix_utf8_replaces_bad_bytes_and_marks_their_rows():
    from engine.io.coerce import fix_utf8

    raw = pa.array([b"ok", b"caf\xc3\xa9", b"bad\xff", None], pa.binary()).view(pa.string())
    out, bad = fix_utf8(raw)
    assert out.to_pylist() == ["ok", "café", "bad\ufffd", None]
    assert bad.tolist() == [False, False, True, False]
    assert fix_utf8(pa.array(["fine"]))[1] is None


def test_an_unsupported_type_is_a_column_type_error():
    from engine.io.coerce import ColumnTypeError, to_int64

    with pytest.raises(ColumnTypeError, match=r"expected an integer type, or strings of digits"):
        to_int64(pa.array([[1]]))
    assert issubclass(ColumnTypeError, TypeError)


@pytest.mark.parametrize("values, unit", [
    ([1_700_000_000, 1_700_086_400, None], "seconds"),
    ([1_700_000_000_000, None], "milliseconds"),
    ([1.7e15], "microseconds"),
    ([1_700_000_000_000_000_000], "nanoseconds"),
    ([3, 5], None),
])
def test_epoch_numbers_are_refused_with_the_unit_their_size_suggests(values, unit):
    from engine.io.coerce import ColumnTypeError, to_epoch_seconds

    with pytest.raises(ColumnTypeError) as err:
        to_epoch_seconds(pa.array(values))
    text = str(err.value)
    assert "expected a timestamp" in text
    if unit is None:
        assert "not read as instants" in text and "epoch" not in text
    else:
        assert f"look like epoch {unit}" in text and "pa.timestamp(" in text

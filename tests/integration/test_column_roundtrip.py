"""Every SQLAlchemy column type, valid and hostile values, on SQLite and PostgreSQL.

The contract: ``EveryType(**{field: value}).save()`` either stores the value and
``EveryType.get(pk)`` reads back a value equal to it, or raises ``ValidationError`` naming the
field (``EveryType.<field>:``) and the value, with nothing written (no row, no record event).
Any other exception, or a value read back changed, is a failure. A stored row must also take a
later ``update()`` (same contract) and ``delete()``: the lineage triggers read every column then.

"Equal" per column kind, and the normalisations accepted:

* text, integers, ``Interval``, ``Date``, ``Uuid``: ``==`` and the Python type (``str``,
  ``int`` (never ``bool``), ``timedelta``, ``date`` (never ``datetime``), ``uuid.UUID``); a
  ``str``/``bytes`` subclass (``numpy.str_``) reads back as the plain type.
* ``Float``: a ``float`` equal to the value given (``int`` and ``Decimal`` compare exactly with
  it); NaN reads back NaN (a Decimal ``sNaN``/``NaN`` as a float NaN). ``-0.0 == 0.0``: SQLite
  gives back ``0.0`` for ``-0.0`` and that is accepted.
* ``Numeric(12, 4)``: a ``Decimal`` equal to the value (``1.1`` reads back ``Decimal('1.1000')``).
* ``Boolean``, ``Enum``: the very same object (``True``/``False``, the enum member).
* ``DateTime(timezone=False)``, ``Time(timezone=False)``: naive and ``==`` (``fold`` is not
  stored; ``==`` ignores it).
* ``DateTime(timezone=True)``: aware and the same instant (lineage_nb reads it back in UTC).
* ``Time(timezone=True)``: on PostgreSQL aware and the same time after subtracting the offsets,
  to the microsecond (Python's ``==`` ignores the sub-second part of offsets); SQLite cannot keep
  an offset, so there an aware time must be refused and a naive one reads back naive.
* ``JSON``: the same structure with the same JSON types (``int``, ``float``, ``bool``, ``str``,
  ``None`` are told apart: ``1.0`` must not come back as ``1``); a tuple reads back as a list.
* ``LargeBinary``: ``bytes`` equal to ``bytes(value)`` (``bytearray``/``memoryview`` accepted;
  a memoryview of an ``array('i')`` reads back as its raw bytes).

"Names the value": the field's message contains the value's ``repr`` (cut as lineage_nb cuts it
in messages), its ``str`` or its ISO format (case-insensitive: ``NaN`` names a float ``nan``); for
JSON, naming the offending key or text inside it is enough.

The inputs that once broke the contract (``FIXED``, ``FIXED_LATER``) are tested one by one at the
end: each is now refused, naming field and value.
"""

from __future__ import annotations

import array
import datetime as dt
import decimal
import math
import os
import reprlib
import sys
import uuid
import zoneinfo
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from models import Color, EveryType, Level
from sqlalchemy import func, select

import lineage_nb as ln
from lineage_nb.errors import ValidationError, short_repr
from lineage_nb.orm.validation import clean_values

EXAMPLES = int(os.environ.get("LINEAGE_NB_HYPOTHESIS_EXAMPLES", "60"))  # per test and backend
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

D = decimal.Decimal
UTC = dt.timezone.utc
NEW_YORK = zoneinfo.ZoneInfo("America/New_York")

#: How each column of EveryType compares (see the module docstring).
KIND = {
    "short_text": "text",
    "long_text": "text",
    "small_int": "int",
    "int32": "int",
    "big_int": "int",
    "double": "float",
    "amount": "numeric",
    "flag": "bool",
    "day": "date",
    "naive_at": "naive_datetime",
    "aware_at": "aware_datetime",
    "naive_time": "naive_time",
    "aware_time": "aware_time",
    "duration": "interval",
    "doc": "json",
    "blob": "bytes",
    "level": "enum",
    "uid": "uuid",
}


def _tz(**offset: float) -> dt.timezone:
    return dt.timezone(dt.timedelta(**offset))


# -- strategies -----------------------------------------------------------------------------------

#: Values of other columns' types (and of none): every column must refuse or store them.
foreign = st.sampled_from(
    [
        b"bytes",
        "7",
        7,
        1.5,
        True,
        D("1.5"),
        dt.date(2024, 1, 1),
        dt.datetime(2024, 1, 1),
        dt.time(1),
        dt.timedelta(1),
        uuid.UUID(int=1),
        Level.low,
        Color.red,
        [1],
        {"a": 1},
        object(),
        np.int64(7),
        np.float32(0.5),
        np.bool_(True),
    ]
)
surrogates = st.text(
    st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1, max_size=3
)
texts = st.one_of(
    st.text(max_size=30),
    st.text(st.characters(codec=None, exclude_categories=()), max_size=25),  # NUL, surrogates
    st.builds(lambda a, b: a + "\x00" + b, st.text(max_size=5), st.text(max_size=5)),
    st.builds(lambda a, s: a + s, st.text(max_size=5), surrogates),
    st.tuples(st.integers(18, 22), st.sampled_from(["x", "é", "\U0001f600", "e\u0301"])).map(
        lambda nc: nc[1] * nc[0]
    ),  # around String(20)'s limit, in 1-4 byte characters
    st.sampled_from(
        [
            "",
            " ",
            "\r\n",
            "\ufeff",
            "\U0010ffff",
            "\u202e",
            "'; DROP TABLE every_type; --",
            "\\",
            "%_",
            "long " * 40_000,
            np.str_("numpy text"),
        ]
    ),
)
INT_EDGES = sorted(
    {sign * 2**bits + delta for bits in (15, 31, 63) for sign in (1, -1) for delta in (-1, 0, 1)}
    | {0, 10**30, -(10**30)}
)
integers = st.one_of(
    st.integers(),
    st.sampled_from(INT_EDGES),
    st.integers(-(2**65), 2**65),
    st.sampled_from([1.0, D(1), "1", np.int64(7), np.int32(-1), False]),
)
booleans = st.one_of(st.booleans(), st.sampled_from([0, 1, "true", "", 1.0, np.bool_(True), None]))
floats = st.one_of(
    st.floats(),
    st.sampled_from(
        [
            math.nan,
            math.inf,
            -math.inf,
            -0.0,
            5e-324,
            sys.float_info.max,
            sys.float_info.min,
            2**53,
            -(2**53),
            2**53 + 1,
            2**63,
            10**400,
            np.float64(0.1),
            np.float64("nan"),
        ]
    ),
    st.integers(-(2**60), 2**60),
    # Decimals a float holds exactly, and others (inexact, beyond the float range: refused)
    st.floats(allow_nan=False).map(D),
    st.decimals(allow_nan=True, allow_infinity=True),
    st.sampled_from([D("0.1"), D("1E+400"), D("-1E-400")]),
    st.sampled_from(
        [D("NaN"), D("-NaN"), D("sNaN"), D("-sNaN"), D("-Infinity"), D("-0"), D("0.5")]
    ),
    foreign,
)
numerics = st.one_of(
    st.decimals(places=4, min_value=D("-99999999.9999"), max_value=D("99999999.9999")),
    st.decimals(allow_nan=True, allow_infinity=True),
    st.decimals(places=6, min_value=-(10**9), max_value=10**9),
    st.integers(-(10**9), 10**9),
    st.sampled_from(
        [
            D("99999999.9999"),
            D("-99999999.9999"),
            D("100000000"),
            D("99999999.99995"),
            D("0.00005"),
            D("0.0001"),
            D("1E+8"),
            D("1E+7"),
            D("-0"),
            D("0E-30"),
            D("1.000000000"),
            D("12345678.12345678"),
            D("sNaN"),
            D("0E-20000"),
            D("0E+20000"),
            10**30,
            np.float64(1.5),
        ]
    ),
    st.floats(),
    foreign,
)
pandas_moments = st.tuples(
    st.datetimes(min_value=dt.datetime(1700, 1, 1), max_value=dt.datetime(2200, 1, 1)),
    st.sampled_from([0, 0, 1, 999]),
)
naive_datetimes = st.one_of(
    st.datetimes(),
    st.sampled_from(
        [
            dt.datetime.min,
            dt.datetime.max,
            dt.datetime(1970, 1, 1),
            dt.datetime(2021, 11, 7, 1, 30, fold=1),
            dt.datetime(2021, 3, 14, 2, 30),
        ]
    ),
    # pandas Timestamps, some with nanoseconds (refused: the database keeps microseconds)
    pandas_moments.map(lambda m: pd.Timestamp(m[0]) + pd.Timedelta(nanoseconds=m[1])),
)
#: Any offset Python allows (±24 h, to the microsecond), and whole-second ones PostgreSQL keeps.
any_offsets = st.timedeltas(
    min_value=-dt.timedelta(hours=24) + dt.timedelta(microseconds=1),
    max_value=dt.timedelta(hours=24) - dt.timedelta(microseconds=1),
).map(dt.timezone)
pg_offsets = st.integers(-(16 * 3600 - 1), 16 * 3600 - 1).map(lambda s: _tz(seconds=s))
zones = st.one_of(st.timezones(), any_offsets, pg_offsets, st.just(UTC))
aware_datetimes = st.one_of(
    st.datetimes(timezones=zones),
    st.datetimes(timezones=zones, min_value=dt.datetime(1, 1, 1), max_value=dt.datetime(1, 1, 2))
    | st.datetimes(timezones=zones, min_value=dt.datetime(9999, 12, 30)),
    pandas_moments.map(
        lambda m: (
            pd.Timestamp(m[0], tz="UTC").tz_convert("Europe/Paris") + pd.Timedelta(nanoseconds=m[1])
        )
    ),
)
naive_times = st.one_of(
    st.times(), st.sampled_from([dt.time.min, dt.time.max, dt.time(12, fold=1)])
)
aware_times = st.one_of(
    st.times(timezones=pg_offsets),
    st.times(timezones=st.just(UTC)),
    st.times(timezones=st.one_of(st.timezones(), any_offsets)),
)
intervals = st.one_of(
    st.timedeltas(min_value=dt.timedelta(days=-700_000), max_value=dt.timedelta(days=2_900_000)),
    st.timedeltas(min_value=dt.timedelta(days=-2), max_value=dt.timedelta(days=2)),
    st.timedeltas(),  # ±999,999,999 days (beyond about ±2.9 million refused on SQLite)
    st.sampled_from(
        [
            dt.timedelta(0),
            dt.timedelta(microseconds=1),
            -dt.timedelta(microseconds=1),
            dt.timedelta.max,
            dt.timedelta.min,
            dt.timedelta(days=-719_162),
            dt.timedelta(days=2_932_896, seconds=86_399, microseconds=999_999),
            pd.Timedelta(days=1),
            pd.Timedelta(nanoseconds=1),
            np.timedelta64(1, "s"),
            3600,
            "1 day",
        ]
    ),
)
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from([2**63 - 1, -(2**63), 2**63, 2**64 + 1, 10**30]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([-0.0, 1.0, 1e16, 5e-324, sys.float_info.max]),
    texts,
)
#: Keys JSON does not have (refused, naming the key) and leaves it cannot hold (refused).
bad_keys = st.sampled_from([1, 1.5, None, True, (1, 2), math.nan, b"k"])
bad_leaves = st.sampled_from(
    [math.nan, math.inf, b"x", D("1.5"), {1, 2}, dt.date(2024, 1, 1), np.int64(1), object()]
)
json_values = st.recursive(
    st.one_of(*[json_scalars] * 6, bad_leaves),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=3).map(tuple),
        st.dictionaries(
            st.one_of(st.text(max_size=8), st.text(max_size=8), surrogates, bad_keys),
            inner,
            max_size=4,
        ),
    ),
    max_leaves=12,
)
binaries = st.one_of(
    st.binary(max_size=64),
    st.sampled_from(
        [b"", b"\x00", b"\x00" * 1000, bytes(range(256)), b"x" * 2_000_000, np.bytes_(b"np")]
    ),
    st.binary(max_size=16).map(bytearray),
    st.binary(max_size=16).map(memoryview),
    st.binary(max_size=16).map(lambda b: memoryview(b)[::2]),  # not contiguous
    st.lists(st.integers(-(2**31), 2**31 - 1), max_size=4).map(
        lambda ints: memoryview(array.array("i", ints))
    ),
    st.sampled_from(["text", [1, 2], 7]),
)
levels = st.one_of(
    st.sampled_from(list(Level)),
    st.sampled_from(["low", "L", "high", "LOW", "", Color.red, 0, 1, True]),
)
uuids = st.one_of(
    st.uuids(),
    st.sampled_from([uuid.UUID(int=0), uuid.UUID(int=2**128 - 1), "not-a-uuid", ""]),
    st.uuids().map(str),
    st.uuids().map(lambda u: u.bytes),
    st.uuids().map(lambda u: u.int),
)

VALUES: dict[str, st.SearchStrategy[Any]] = {
    "short_text": st.one_of(texts, foreign),
    "long_text": st.one_of(texts, st.just("x" * 1_000_000), foreign),
    "small_int": integers,
    "int32": integers,
    "big_int": integers,
    "double": floats,
    "amount": numerics,
    "flag": booleans,
    "day": st.one_of(
        st.dates(),
        st.sampled_from([dt.date.min, dt.date.max, "2024-01-01"]),
        naive_datetimes,
        foreign,
    ),
    "naive_at": st.one_of(naive_datetimes, aware_datetimes, st.dates(), foreign),
    "aware_at": st.one_of(aware_datetimes, aware_datetimes, naive_datetimes, foreign),
    "naive_time": st.one_of(naive_times, aware_times, foreign),
    "aware_time": st.one_of(aware_times, aware_times, naive_times, foreign),
    "duration": st.one_of(intervals, foreign),
    "doc": st.one_of(json_values, foreign),
    "blob": st.one_of(binaries, foreign),
    "level": st.one_of(levels, foreign),
    "uid": st.one_of(uuids, foreign),
}
assert set(VALUES) == set(KIND)


def field_values(*fields: str) -> st.SearchStrategy[tuple[str, Any]]:
    """(field, value) pairs for one of ``fields``; ``None`` now and then."""
    return st.sampled_from(fields).flatmap(
        lambda field: st.tuples(
            st.just(field),
            st.one_of(st.none(), VALUES[field], VALUES[field], VALUES[field], VALUES[field]),
        )
    )


# -- what refusal messages must name ------------------------------------------------------------


def _json_culprits(value: Any) -> list[Any]:
    """Non-text keys, non-UTF-8 text and text holding NUL in ``value``: naming one is enough."""
    culprits: list[Any] = []
    pending: list[Any] = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if "\x00" in item or any(0xD800 <= ord(char) <= 0xDFFF for char in item):
                culprits.append(item)
        elif isinstance(item, dict):
            for key, inner in item.items():
                if isinstance(key, str):
                    pending.append(key)
                else:
                    culprits.append(key)
                pending.append(inner)
        elif isinstance(item, (list, tuple)):
            pending.extend(item)
    return culprits


# -- checking one save --------------------------------------------------------------------------


def _counts(db: ln.Database) -> tuple[int, int]:
    with db.session() as session:
        rows = session.scalar(select(func.count()).select_from(EveryType))
        events = session.scalar(select(func.count()).select_from(ln.RecordEvent))
    return int(rows or 0), int(events or 0)


def _is_nan(value: Any) -> bool:
    if isinstance(value, D):
        return value.is_nan()
    return isinstance(value, float) and math.isnan(value)


def _same_json(stored: Any, given: Any) -> bool:
    if given is None or isinstance(given, bool):
        return stored is given
    for kind in (int, float, str):  # told apart, subclasses (numpy.str_) read back as the base
        if isinstance(given, kind):
            return type(stored) is kind and stored == given
    if isinstance(given, dict):
        return (
            type(stored) is dict
            and stored.keys() == given.keys()
            and all(_same_json(stored[k], v) for k, v in given.items())
        )
    return (  # a list, or a tuple read back as a list
        type(stored) is list
        and len(stored) == len(given)
        and all(_same_json(s, g) for s, g in zip(stored, given, strict=True))
    )


def _time_instant(value: dt.time) -> int:
    """Microseconds after 00:00 UTC of an aware time (``==`` ignores sub-second offsets)."""
    offset = value.utcoffset()
    assert offset is not None
    wall = dt.timedelta(
        hours=value.hour, minutes=value.minute, seconds=value.second, microseconds=value.microsecond
    )
    return (wall - offset) // dt.timedelta(microseconds=1)


def _same(field: str, stored: Any, given: Any) -> bool:
    """Whether ``stored`` (read back) equals ``given`` (saved) for this column's kind."""
    if given is None:
        return stored is None
    kind = KIND[field]
    if kind == "text":
        return type(stored) is str and stored == given
    if kind == "int":
        return type(stored) is int and stored == given
    if kind == "float":
        if _is_nan(given):
            return isinstance(stored, float) and math.isnan(stored)
        return type(stored) is float and stored == given
    if kind == "numeric":
        return type(stored) is D and stored == given
    if kind in ("bool", "enum"):
        return stored is given
    if kind == "date":
        return type(stored) is dt.date and stored == given
    if kind == "naive_datetime":
        return type(stored) is dt.datetime and stored.tzinfo is None and stored == given
    if kind == "naive_time":
        return type(stored) is dt.time and stored.tzinfo is None and stored == given
    if kind == "aware_datetime":
        return (
            type(stored) is dt.datetime
            and stored.utcoffset() is not None
            and stored.astimezone(UTC) == given.astimezone(UTC)
        )
    if kind == "aware_time":
        if given.tzinfo is None:
            return type(stored) is dt.time and stored.tzinfo is None and stored == given
        return (
            type(stored) is dt.time
            and stored.utcoffset() is not None
            and _time_instant(stored) == _time_instant(given)
        )
    if kind == "interval":
        return type(stored) is dt.timedelta and stored == given
    if kind == "json":
        return _same_json(stored, given)
    if kind == "bytes":
        return type(stored) is bytes and stored == bytes(given)
    assert kind == "uuid"
    return type(stored) is uuid.UUID and stored == given


def _renderings(field: str, value: Any) -> list[str]:
    """Texts of which one must appear in the refusal message of ``field`` (lower case)."""
    try:
        shown = short_repr(value)
    except RecursionError:  # nested too deeply for repr(): its first brackets will do
        shown = reprlib.repr(value).partition("...")[0]
    found = [shown.removesuffix("…"), shown[:30]]
    if not isinstance(value, (list, tuple, dict)):
        found.append(str(value)[:30])
    if hasattr(value, "isoformat"):
        found.append(value.isoformat()[:30])
    if _is_nan(value):
        found.append("nan")
    if KIND[field] == "json":
        found += [short_repr(c).removesuffix("…") for c in _json_culprits(value)]
    return [text.lower() for text in found if text]


def _assert_refusal(error: ValidationError, values: dict[str, Any]) -> None:
    """``error`` names one of the fields given and its value."""
    assert error.field in values, (error.field, values)
    assert set(error.error_dict) <= set(values), error.error_dict
    assert f"EveryType.{error.field}: " in str(error), str(error)
    bad = values[error.field]
    assert error.value is bad, (error.value, bad)
    message = " ".join(error.error_dict[error.field]).lower()
    assert any(text in message for text in _renderings(error.field, bad)), (bad, message)


def _assert_stored(pk: int, values: dict[str, Any]) -> None:
    loaded = EveryType.get(pk)
    for name, value in values.items():
        stored = getattr(loaded, name)
        assert _same(name, stored, value), (name, value, stored)


def check_save_load(db: ln.Database, values: dict[str, Any]) -> int | None:
    """Save an EveryType with ``values``: read back equal (its key returned), or refused naming
    field and value (None returned) with nothing written."""
    before = _counts(db)
    record = EveryType(**values)
    try:
        record.save()
    except ValidationError as error:
        _assert_refusal(error, values)
        assert _counts(db) == before
        assert record.pk is None
        return None
    _assert_stored(record.pk, values)
    assert _counts(db) == (before[0] + 1, before[1] + 1)
    return int(record.pk)


def check_update_delete(db: ln.Database, first: dict[str, Any], second: dict[str, Any]) -> None:
    """Store ``first``; ``update(**second)`` stores those values too (the others kept) or is
    refused naming a field and its value (the row unchanged); then the row can be deleted."""
    pk = check_save_load(db, first)
    if pk is None:
        return
    rows = _counts(db)[0]
    try:
        EveryType.get(pk).update(**second)
    except ValidationError as error:
        _assert_refusal(error, second)
        _assert_stored(pk, first)
    else:
        _assert_stored(pk, {**first, **second})
    EveryType.get(pk).delete()
    assert _counts(db)[0] == rows - 1
    assert EveryType.filter(id=pk).count() == 0


def _check_one(db: ln.Database, case: tuple[str, Any]) -> None:
    field, value = case
    check_save_load(db, {field: value})


# -- hypothesis tests, one per family of column types ---------------------------------------------


@SETTINGS
@given(case=field_values("short_text", "long_text"))
@example(case=("short_text", "😀" * 20))
@example(case=("short_text", "😀" * 21))
@example(case=("short_text", "é" * 21))
@example(case=("long_text", "x" * 1_000_000))
@example(case=("long_text", "a\x00b"))
@example(case=("long_text", "\ud800"))
@example(case=("long_text", "\ud83d\ude00"))  # a surrogate pair is still two lone surrogates
@example(case=("short_text", b"bytes"))
def test_text_columns(db: ln.Database, case: tuple[str, Any]) -> None:
    """String(20) and Text: lengths in characters, NUL, lone surrogates, very long text."""
    _check_one(db, case)


@SETTINGS
@given(case=field_values("small_int", "int32", "big_int", "flag"))
@example(case=("small_int", 2**15 - 1))
@example(case=("small_int", -(2**15)))
@example(case=("small_int", 2**15))
@example(case=("small_int", -(2**15) - 1))
@example(case=("int32", 2**31 - 1))
@example(case=("int32", -(2**31)))
@example(case=("int32", 2**31))
@example(case=("int32", -(2**31) - 1))
@example(case=("big_int", 2**63 - 1))
@example(case=("big_int", -(2**63)))
@example(case=("big_int", 2**63))
@example(case=("big_int", -(2**63) - 1))
@example(case=("int32", True))
@example(case=("int32", np.int64(3)))
@example(case=("flag", 1))
@example(case=("flag", False))
def test_integer_and_boolean_columns(db: ln.Database, case: tuple[str, Any]) -> None:
    """SmallInteger/Integer/BigInteger at and beyond their bounds, and Boolean."""
    _check_one(db, case)


@SETTINGS
@given(case=field_values("double", "amount"))
@example(case=("double", math.nan))
@example(case=("double", math.inf))
@example(case=("double", -math.inf))
@example(case=("double", -0.0))
@example(case=("double", 5e-324))
@example(case=("double", 2**53 + 1))
@example(case=("double", D("sNaN")))
@example(case=("double", D("-Infinity")))
@example(case=("amount", D("99999999.9999")))
@example(case=("amount", D("100000000")))
@example(case=("amount", D("0.00005")))
@example(case=("amount", D("1.000000000")))
@example(case=("amount", D("NaN")))
@example(case=("amount", D("Infinity")))
@example(case=("amount", 1.5))
@example(case=("amount", 10**30))
def test_float_and_numeric_columns(db: ln.Database, case: tuple[str, Any]) -> None:
    """Float (NaN, ±inf, -0.0, subnormals, big ints, Decimals) and Numeric(12, 4)."""
    _check_one(db, case)


@SETTINGS
@given(case=field_values("day", "naive_at", "aware_at", "naive_time", "aware_time", "duration"))
@example(case=("day", dt.date.min))
@example(case=("day", dt.date.max))
@example(case=("day", dt.datetime(2024, 1, 1)))
@example(case=("naive_at", dt.datetime.min))
@example(case=("naive_at", dt.datetime.max))
@example(case=("naive_at", dt.datetime(2024, 1, 1, tzinfo=UTC)))
@example(case=("aware_at", dt.datetime(2024, 1, 1)))
@example(case=("aware_at", dt.datetime.min.replace(tzinfo=UTC)))
@example(case=("aware_at", dt.datetime.max.replace(tzinfo=UTC)))
@example(case=("aware_at", dt.datetime(2021, 11, 7, 1, 30, fold=1, tzinfo=NEW_YORK)))
@example(case=("aware_at", dt.datetime(2021, 3, 14, 2, 30, tzinfo=NEW_YORK)))  # in the DST gap
@example(case=("aware_at", dt.datetime(2024, 1, 1, tzinfo=_tz(seconds=37, microseconds=5))))
@example(case=("naive_time", dt.time.max))
@example(case=("naive_time", dt.time(1, tzinfo=UTC)))
@example(case=("aware_time", dt.time(1, tzinfo=UTC)))
@example(case=("aware_time", dt.time(1, tzinfo=_tz(hours=15, minutes=59, seconds=59))))
@example(case=("aware_time", dt.time(23, 59, 59, 999999, tzinfo=_tz(hours=-15))))
@example(case=("duration", dt.timedelta.max))
@example(case=("duration", dt.timedelta.min))
@example(case=("duration", -dt.timedelta(microseconds=1)))
@example(case=("duration", dt.timedelta(days=-719_162)))
@example(case=("duration", 3600))
def test_temporal_columns(db: ln.Database, case: tuple[str, Any]) -> None:
    """Date, naive/aware DateTime, naive/aware Time and Interval, at their extremes."""
    _check_one(db, case)


@SETTINGS
@given(case=field_values("doc"))
@example(case=("doc", {1: "a", "1": "b"}))
@example(case=("doc", {"k": ["bad \udc80"]}))
@example(case=("doc", "\ud800\udc00"))
@example(case=("doc", {"\x00": "\x00"}))
@example(case=("doc", [1.5, None, True, "x", 2**70]))
@example(case=("doc", (1, [2, (3,)])))
@example(case=("doc", "null"))
@example(case=("doc", 0.1))
@example(case=("doc", 2**63 - 1))
@example(case=("doc", {"a": {"b": {"c": [[[{}]]]}}}))
def test_json_column(db: ln.Database, case: tuple[str, Any]) -> None:
    """JSON: numbers of every size, non-text keys, NUL and surrogates, nesting, tuples."""
    _check_one(db, case)


@SETTINGS
@given(case=field_values("blob", "level", "uid"))
@example(case=("blob", b""))
@example(case=("blob", bytes(range(256))))
@example(case=("blob", bytearray(b"ab")))
@example(case=("blob", "text"))
@example(case=("level", Level.high))
@example(case=("level", "low"))
@example(case=("level", "L"))
@example(case=("level", Color.red))
@example(case=("uid", uuid.UUID(int=0)))
@example(case=("uid", uuid.UUID(int=2**128 - 1)))
@example(case=("uid", "12345678-1234-5678-1234-567812345678"))
def test_binary_enum_uuid_columns(db: ln.Database, case: tuple[str, Any]) -> None:
    """LargeBinary (empty, NUL, bytearray, memoryview), Enum members and wrong strings, Uuid."""
    _check_one(db, case)


@st.composite
def rows(draw: st.DrawFn, max_size: int = 6) -> dict[str, Any]:
    """Keyword arguments for an EveryType: any subset of the columns."""
    chosen = draw(st.sets(st.sampled_from(sorted(VALUES)), min_size=1, max_size=max_size))
    return {name: draw(VALUES[name]) for name in sorted(chosen)}


@SETTINGS
@given(values=rows())
def test_mixed_rows(db: ln.Database, values: dict[str, Any]) -> None:
    """Several columns at once: all stored equal, or refused naming a bad field and its value."""
    check_save_load(db, values)


@SETTINGS
@given(first=rows(max_size=3), second=rows(max_size=3))
@example(first={"double": 1.5, "doc": {"k": "\x00"}}, second={"int32": 1})
@example(first={"double": 0.0}, second={"double": D("sNaN")})
@example(first={"double": math.inf}, second={"int32": 1})
def test_stored_rows_can_be_updated_and_deleted(
    db: ln.Database, first: dict[str, Any], second: dict[str, Any]
) -> None:
    """A stored value never blocks later writes: the row takes an update and can be deleted
    (the lineage triggers read every column of the row then)."""
    check_update_delete(db, first, second)


# -- the inputs that once broke the contract, now refused -------------------------------------------

#: (backend, what went wrong) -> (how it went wrong before the fix, inputs now refused).
FIXED: dict[tuple[str, str], tuple[str, list[tuple[str, Any]]]] = {
    ("sqlite", "float_decimal_inexact"): (
        "Float accepted a Decimal a float cannot hold and read back the nearest float",
        [("double", D("0.1")), ("double", D("1.7976931348623157E+308"))],
    ),
    ("postgresql", "float_decimal_inexact"): (
        "Float accepted a Decimal a float cannot hold and read back the nearest float",
        [("double", D("0.1")), ("double", D("1.7976931348623157E+308"))],
    ),
    ("sqlite", "float_decimal_out_of_range"): (
        "Float stored a Decimal beyond the float range as inf, or a tiny one as 0.0",
        [("double", D("1E+400")), ("double", D("-1E+400")), ("double", D("1E-400"))],
    ),
    ("postgresql", "float_decimal_out_of_range"): (
        (
            "Float sent a Decimal beyond the float range: raw '... is out of range for type double "
            "precision'"
        ),
        [("double", D("1E+400")), ("double", D("-1E+400")), ("double", D("1E-400"))],
    ),
    ("sqlite", "float_infinity"): (
        "save() accepted ±inf, then the row could never be updated or deleted (see FIXED_LATER)",
        [
            ("double", math.inf),
            ("double", -math.inf),
            ("double", D("Infinity")),
            ("double", np.float64("-inf")),
        ],
    ),
    ("postgresql", "float_decimal_negative_nan"): (
        "Float sent a negative Decimal NaN as '-NaN': raw 'invalid input syntax for type numeric'",
        [("double", D("-NaN")), ("double", D("-sNaN")), ("double", D("sNaN"))],
    ),
    ("postgresql", "numeric_tiny_exponent"): (
        (
            "Numeric(12, 4): a zero with an exponent below -16383: raw 'value overflows numeric "
            "format'"
        ),
        [("amount", D("0E-20000")), ("amount", D("-0E-16384"))],
    ),
    ("sqlite", "memoryview_not_contiguous"): (
        "LargeBinary: a non-contiguous memoryview: raw builtins.BufferError from the driver",
        [("blob", memoryview(b"abcdef")[::2])],
    ),
    ("postgresql", "memoryview_not_contiguous"): (
        "LargeBinary: a non-contiguous memoryview: raw builtins.BufferError from the driver",
        [("blob", memoryview(b"abcdef")[::2])],
    ),
    ("sqlite", "aware_datetime_out_of_utc_range"): (
        "DateTime(timezone=True) outside years 1-9999 once in UTC: raw 'date value out of range'",
        [
            ("aware_at", dt.datetime(1, 1, 1, tzinfo=_tz(hours=5))),
            ("aware_at", dt.datetime(9999, 12, 31, 23, tzinfo=_tz(hours=-5))),
        ],
    ),
    ("postgresql", "aware_datetime_out_of_utc_range"): (
        "DateTime(timezone=True) outside years 1-9999 once in UTC: raw 'date value out of range'",
        [
            ("aware_at", dt.datetime(1, 1, 1, tzinfo=_tz(hours=5))),
            ("aware_at", dt.datetime(9999, 12, 31, 23, tzinfo=_tz(hours=-5))),
        ],
    ),
    ("sqlite", "pandas_nanoseconds"): (
        "pandas Timestamp/Timedelta: the nanoseconds were silently dropped",
        [
            ("naive_at", pd.Timestamp("2024-01-01 12:00:00.123456789")),
            ("aware_at", pd.Timestamp("2024-01-01 12:00:00.000000001", tz="UTC")),
            ("duration", pd.Timedelta(days=1, nanoseconds=1500)),
        ],
    ),
    ("postgresql", "pandas_nanoseconds"): (
        "pandas Timestamp/Timedelta: the nanoseconds were silently dropped",
        [
            ("naive_at", pd.Timestamp("2024-01-01 12:00:00.123456789")),
            ("aware_at", pd.Timestamp("2024-01-01 12:00:00.000000001", tz="UTC")),
            ("duration", pd.Timedelta(days=1, nanoseconds=1500)),
        ],
    ),
    ("sqlite", "timetz"): (
        (
            "Time(timezone=True) on SQLite: aware times were refused, but the message said to "
            "declare Time(timezone=True) (test_time_zone_refusals_say_what_to_do)"
        ),
        [("aware_time", dt.time(1, tzinfo=UTC)), ("aware_time", dt.time(1, tzinfo=NEW_YORK))],
    ),
    ("postgresql", "timetz"): (
        (
            "Time(timezone=True) on PostgreSQL: a naive time read back aware; a ZoneInfo time: raw "
            "'cannot calculate the offset'; an offset beyond 15:59:59: raw 'time zone displacement "
            "out of range'; a sub-second offset was cut to whole seconds"
        ),
        [
            ("aware_time", dt.time(1)),
            ("aware_time", dt.time(1, tzinfo=NEW_YORK)),
            ("aware_time", dt.time(1, tzinfo=_tz(hours=16))),
            ("aware_time", dt.time(1, tzinfo=_tz(hours=-16))),
            ("aware_time", dt.time(1, tzinfo=_tz(seconds=1, microseconds=500_000))),
        ],
    ),
    ("sqlite", "interval_range"): (
        (
            "Interval on SQLite (stored as 1970-01-01 + value): beyond datetime's range a raw "
            "'date value out of range'"
        ),
        [
            ("duration", dt.timedelta(days=2_932_897)),
            ("duration", dt.timedelta(days=-719_163)),
            ("duration", dt.timedelta.max),
            ("duration", dt.timedelta.min),
        ],
    ),
    ("sqlite", "json_top_level_number"): (
        (
            "JSON on SQLite: a bare number went through the column's NUMERIC affinity: integral "
            "floats read back as int, ints beyond 64 bits as (rounded) floats"
        ),
        [
            ("doc", 1.0),
            ("doc", -0.0),
            ("doc", 1e16),
            ("doc", 2**64 + 1),
            ("doc", -(2**63) - 1),
            ("doc", 2**63),
        ],
    ),
    ("postgresql", "json_nul"): (
        (
            "JSON holding \\u0000 was stored, then the row could never be updated or deleted (see "
            "FIXED_LATER)"
        ),
        [("doc", "\x00"), ("doc", {"k": ["a\x00b"]}), ("doc", {"\x00": 1})],
    ),
}


@pytest.mark.parametrize(
    ("backend", "fixed"),
    [pytest.param(backend, fixed, id=f"{backend}-{fixed}") for backend, fixed in FIXED],
    indirect=["backend"],
)
def test_fixed_inputs_are_refused(db: ln.Database, backend: str, fixed: str) -> None:
    """Each input that once broke the contract is refused, naming the field and the value,
    with nothing written."""
    for field, value in FIXED[backend, fixed][1]:
        assert check_save_load(db, {field: value}) is None, (field, value)


@pytest.mark.parametrize(
    "value",
    [1.5, 0.1, -2.5e-300, 2**63 - 1, -(2**63), 0, True, 1e20, "1.0", [1.0], {"n": 2**64 + 1}],
)
def test_json_numbers_sqlite_keeps_are_stored(db: ln.Database, value: Any) -> None:
    """The SQLite rule on bare JSON numbers refuses only those it would change."""
    assert check_save_load(db, {"doc": value}) is not None


#: (backend, what went wrong) -> (how it went wrong before the fix, [(stored, then updated)]).
FIXED_LATER: dict[tuple[str, str], tuple[str, list[tuple[dict[str, Any], dict[str, Any]]]]] = {
    ("sqlite", "infinite_float_blocks_writes"): (
        (
            "save() accepted ±inf, the update/delete triggers rendered it as 'Inf' in json_array() "
            "and json() refused that, which translate() called 'The database file is corrupt'"
        ),
        [
            ({"double": math.inf}, {"int32": 1}),
            ({"double": -math.inf}, {"double": 1.0}),
            ({"int32": 1}, {"double": math.inf}),
        ],
    ),
    ("postgresql", "json_nul_blocks_writes"): (
        (
            "save() accepted JSON holding \\u0000 (a json column keeps it), but the capture "
            "trigger's to_jsonb(row) refused it: raw 'unsupported Unicode escape sequence' on every "
            "later update or delete of the row"
        ),
        [
            ({"doc": {"k": "\x00"}}, {"int32": 1}),
            ({"doc": "\x00"}, {"doc": "ok"}),
            ({"int32": 1}, {"doc": {"\x00": 1}}),
        ],
    ),
    ("postgresql", "float_snan_update"): (
        (
            "Float accepted Decimal('sNaN'); changing a stored value to it raised a raw "
            "decimal.InvalidOperation from SQLAlchemy's change detection (old == sNaN)"
        ),
        [({"double": 0.0}, {"double": D("sNaN")})],
    ),
}


@pytest.mark.parametrize(
    ("backend", "fixed"),
    [pytest.param(backend, fixed, id=f"{backend}-{fixed}") for backend, fixed in FIXED_LATER],
    indirect=["backend"],
)
def test_fixed_later_writes(db: ln.Database, backend: str, fixed: str) -> None:
    """Each (stored, updated) pair keeps the contract: the bad value is refused on save or on
    update, and the row stays updatable and deletable."""
    for first, second in FIXED_LATER[backend, fixed][1]:
        check_update_delete(db, first, second)


def _nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("value", "leaf"),
    [
        ({"reading": math.nan}, "nan"),
        ([1, -math.inf], "-inf"),
        ({"raw": b"\x00"}, "b'\\x00'"),
        ([np.int64(1)], "np.int64(1)"),
        ([{1, 2}], "{1, 2}"),
        (_nested(5_000), "[[[[[["),
        (_nested(500), "nested too deeply"),  # 501 lists
    ],
    ids=["nan", "inf", "bytes", "numpy-int", "set", "nested-5000", "nested-501-levels"],
)
@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_json_refusal_names_the_value(dialect: str, value: Any, leaf: str) -> None:
    """JSON that json.dumps refuses: the message names the value and the part at fault
    (checked without a database: the message comes from clean_values, the first thing save()
    runs)."""
    with pytest.raises(ValidationError) as info:
        clean_values(EveryType, {"doc": value}, dialect=dialect)
    message = info.value.error_dict["doc"][0]
    assert any(text in message.lower() for text in _renderings("doc", value)), message
    assert leaf in message, message


def test_json_nesting_up_to_the_limit_is_stored(db: ln.Database) -> None:
    """500 levels of nesting (lists) are stored, read back equal, updated and deleted (501 are
    refused, above)."""
    deep = _nested(499)
    record = EveryType(doc=deep).save()
    assert EveryType.get(record.pk).doc == deep  # (list == recurses in C: fine at this depth)
    EveryType.get(record.pk).update(doc=[deep[0], 1])
    assert EveryType.get(record.pk).doc == [deep[0], 1]
    EveryType.get(record.pk).delete()
    assert EveryType.filter(id=record.pk).count() == 0


def test_json_cycle_is_refused_naming_it() -> None:
    """A list that contains itself is refused (not a RecursionError); a shared part is not."""
    cycle: list[Any] = [1]
    cycle.append(cycle)
    with pytest.raises(ValidationError) as info:
        clean_values(EveryType, {"doc": cycle}, dialect="sqlite")
    assert "refers to itself" in str(info.value)
    shared = [1]
    clean_values(EveryType, {"doc": [shared, shared]}, dialect="sqlite")


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_enum_refusal_suggests_the_member(dialect: str) -> None:
    """Refusing 'low' (a name) or 'L' (a value) tells the user to pass Level.low, and never
    lists the refused text as allowed."""
    for text, lookup in (("low", "Level['low']"), ("L", "Level('L')")):
        with pytest.raises(ValidationError) as info:
            clean_values(EveryType, {"level": text}, dialect=dialect)
        message = info.value.error_dict["level"][0]
        assert "Level.low" in message and "Level.high" in message, message
        assert lookup in message, message
        assert "['low', 'high']" not in message, message

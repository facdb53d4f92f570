"""Hostile input: every column type through save → load, and injection attempts through filter.

A value is either stored and read back equal, or refused with ``ValidationError`` naming the
field; never another exception, never a partial write (no row, no event).
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
import os
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from models import Color, Project, Sample, Specimen
from sqlalchemy import func, select

import lineage_nb as ln
from lineage_nb.errors import ValidationError

EXAMPLES = int(os.environ.get("LINEAGE_NB_HYPOTHESIS_EXAMPLES", "60"))  # per test and backend
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

surrogates = st.text(
    st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1, max_size=3
)
any_text = st.one_of(
    st.text(max_size=60),
    st.text(st.characters(codec=None, exclude_categories=()), max_size=20),
    st.builds(lambda a, b: a + "\x00" + b, st.text(max_size=5), st.text(max_size=5)),
    st.builds(lambda a, s: a + s, st.text(max_size=5), surrogates),
    st.integers(min_value=45, max_value=55).map(lambda n: "é" * n),
    st.sampled_from(["x' OR 1=1 --", "'; DROP TABLE specimen; --", "\\", "%", "_", "\u202e"]),
)
huge_ints = st.one_of(
    st.integers(),
    st.sampled_from([2**31 - 1, -(2**31), 2**31, 2**63, -(2**63) - 1, 10**30]),
)
floats = st.one_of(st.floats(), st.sampled_from([math.nan, math.inf, -math.inf, -0.0, 5e-324]))
aware = st.datetimes(timezones=st.timezones())
json_leaf = st.one_of(st.none(), st.booleans(), huge_ints, floats, any_text)
json_values = st.recursive(
    json_leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=10,
)
wrong_types = st.sampled_from([b"bytes", object(), [1], {"a": 1}, 1.5, 7, "7", True])

FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "label": st.one_of(any_text, wrong_types),
    "notes": st.one_of(any_text, st.just("long " * 40_000), wrong_types),
    "count": st.one_of(huge_ints, st.booleans(), floats),
    "ratio": st.one_of(floats, huge_ints, wrong_types),
    "flag": st.one_of(st.booleans(), st.sampled_from([0, 1, "yes"])),
    "color": st.one_of(st.sampled_from(list(Color)), st.sampled_from(["red", "purple", 3])),
    "taken_at": st.one_of(st.datetimes(), aware, st.dates()),
    "day": st.one_of(st.dates(), st.datetimes(), st.sampled_from(["2024-01-01"])),
    "amount": st.one_of(
        st.decimals(allow_nan=True, allow_infinity=True),
        st.decimals(places=4, min_value=-(10**8) + 1, max_value=10**8 - 1),
        huge_ints,
        floats,
    ),
    "extra": json_values,
}


@st.composite
def specimens(draw: st.DrawFn) -> dict[str, Any]:
    """Keyword arguments for a Specimen: a label (required) and any subset of the other fields."""
    chosen = draw(st.sets(st.sampled_from(sorted(FIELDS)), max_size=len(FIELDS)))
    values = {name: draw(FIELDS[name]) for name in sorted(chosen | {"label"})}
    return values


def _counts(db: ln.Database, model: type) -> tuple[int, int]:
    with db.session() as session:
        rows = session.scalar(select(func.count()).select_from(model))
        events = session.scalar(select(func.count()).select_from(ln.RecordEvent))
    return int(rows or 0), int(events or 0)


def _same(stored: Any, given: Any) -> bool:
    if isinstance(given, float) and math.isnan(given):
        return isinstance(stored, float) and math.isnan(stored)
    if isinstance(given, decimal.Decimal) and given.is_nan():
        return isinstance(stored, decimal.Decimal) and stored.is_nan()
    if isinstance(given, dt.datetime) and given.tzinfo is not None:  # the same instant
        # (== is always False across zones for local times in a DST gap or fold, PEP 495)
        utc = dt.timezone.utc
        return isinstance(stored, dt.datetime) and stored.astimezone(utc) == given.astimezone(utc)
    if isinstance(given, dict):
        return (
            isinstance(stored, dict)
            and stored.keys() == given.keys()
            and all(_same(stored[k], v) for k, v in given.items())
        )
    if isinstance(given, list):
        return (
            isinstance(stored, list)
            and len(stored) == len(given)
            and all(_same(s, g) for s, g in zip(stored, given, strict=True))
        )
    return bool(stored == given) and (type(given) is not bool or type(stored) is bool)


def _check_save_load(db: ln.Database, model: type, values: dict[str, Any]) -> None:
    before = _counts(db, model)
    record = model(**values)
    try:
        record.save()
    except ValidationError as error:
        assert error.field in values, (error.field, values.keys())
        assert set(error.error_dict) <= set(values), error.error_dict
        assert _counts(db, model) == before
        assert record.pk is None
        return
    loaded = model.get(record.pk)
    for name, value in values.items():
        assert _same(getattr(loaded, name), value), (name, value, getattr(loaded, name))
    assert _counts(db, model) == (before[0] + 1, before[1] + 1)


@SETTINGS
@given(values=specimens())
@example(values={"label": "", "amount": 100_000_000})  # numeric overflow on PostgreSQL
@example(values={"label": "", "amount": decimal.Decimal("2065890695778735053685057.52857")})
@example(values={"label": "", "amount": decimal.Decimal("0.00005")})  # silently rounded
@example(values={"label": "", "extra": "\ud800\udc00"})  # surrogate pair read back merged
@example(values={"label": "a\x00b", "notes": "\ud800", "count": 2**31, "ratio": math.nan})
def test_hostile_values_round_trip_or_are_refused(db: ln.Database, values: dict[str, Any]) -> None:
    """Any mix of hostile column values: stored and read back equal, or refused naming the field."""
    _check_save_load(db, Specimen, values)


@SETTINGS
@given(
    name=any_text,
    value=st.one_of(st.none(), floats),
    created_at=st.one_of(st.none(), st.datetimes(), aware),
)
def test_hostile_tracked_record(db: ln.Database, name: Any, value: Any, created_at: Any) -> None:
    """A tracked record with hostile text, floats and naive/aware created_at: same contract."""
    project = Project.filter(name="hostile").first() or Project(name="hostile").save()
    values = {"name": name, "value": value, "project_id": project.id}
    if created_at is not None:
        values["created_at"] = created_at
    _check_save_load(db, Sample, values)


INJECTIONS = [
    "x' OR 1=1 --",
    'x" OR "1"="1',
    "'; DELETE FROM project; --",
    "') OR ('1'='1",
    "%",
    "_",
    "x'; UPDATE project SET name = 'pwned'; --",
    "\\' OR 1=1 #",
]


@pytest.mark.parametrize("payload", INJECTIONS)
def test_filter_injection_finds_nothing_changes_nothing(db: ln.Database, payload: str) -> None:
    """A filter value that looks like SQL is only ever compared as a value."""
    for name in ("alpha", "beta", "gamma"):
        Project(name=name).save()
    before = _counts(db, Project)
    assert Project.filter(name=payload).all() == []
    assert Project.filter(name=payload).count() == 0
    assert Project.filter(Project.name == payload).first() is None
    assert Project.filter(name=payload).df().empty
    assert _counts(db, Project) == before
    assert sorted(p.name for p in Project.filter().all()) == ["alpha", "beta", "gamma"]


@SETTINGS
@given(probe=any_text)
def test_filter_matches_only_equal_values(db: ln.Database, probe: str) -> None:
    """filter(name=probe) matches a stored row exactly when the text is equal."""
    if Project.filter(name="stored").count() == 0:
        Project(name="stored").save()
    before = _counts(db, Project)
    try:
        found = [p.name for p in Project.filter(name=probe).all()]
    except ValidationError as error:  # text no database can hold (NUL, lone surrogates)
        assert error.field == "name"
        return
    assert found == (["stored"] if probe == "stored" else [])
    assert _counts(db, Project) == before


def test_naive_and_aware_datetimes_named(db: ln.Database) -> None:
    """The error for a wrongly-aware datetime names the field and says what to do."""
    aware_value = dt.datetime(2024, 5, 1, 12, tzinfo=dt.timezone.utc)
    with pytest.raises(ValidationError) as info:
        Specimen(label="t", taken_at=aware_value).save()
    assert info.value.field == "taken_at"
    assert "naive column" in str(info.value)
    with pytest.raises(ValidationError) as info:
        Sample(name="n", project_id=1, created_at=dt.datetime(2024, 5, 1)).save()
    assert info.value.field == "created_at"

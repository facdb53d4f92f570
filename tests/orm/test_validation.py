"""Validation: clean_fields from column types, validate_unique/validate_constraints in the database."""

from __future__ import annotations

import datetime as dt
import decimal
import uuid

import pytest
from models import Color, Measurement, Project, Sample, Specimen
from sqlalchemy import (
    REAL,
    DateTime,
    Float,
    Interval,
    Numeric,
    String,
    Time,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import Mapped, mapped_column

import lineage_nb as ln
from lineage_nb.errors import ValidationError


def _nested(depth: int) -> list[object]:
    value: list[object] = []
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("label", "x" * 51, "51 characters, at most 50 allowed"),
        ("label", 12, "expected str, got int 12"),
        ("label", "nul\x00byte", "NUL character"),
        ("label", "bad \udc80 surrogate", "surrogate"),
        ("count", "3", "expected int, got str '3'"),
        ("count", True, "expected int, got bool"),
        ("count", 2**40, "outside the 32-bit integer range"),
        ("ratio", "1.5", "expected a number"),
        ("flag", 1, "expected bool"),
        ("color", "blue", "'blue' is not a Color member; the members are Color.red, Color.green"),
        ("taken_at", dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc), "aware datetime"),
        ("day", dt.datetime(2026, 1, 1), "expected date"),
        ("extra", {"x": object()}, "contains object <object object at"),
        ("extra", {1: "a", "1": "b"}, "key that is not text (int 1)"),
        ("extra", [{"ok": {2.5: "x"}}], "key that is not text (float 2.5)"),
        ("extra", {"k": ["bad \udc80"]}, "surrogate"),
        ("extra", _nested(5_000), "nested too deeply"),
    ],
)
def test_clean_fields_rejects_bad_values(
    db: ln.Database, field: str, value: object, fragment: str
) -> None:
    """Each bad value raises ValidationError naming the field and the value; nothing is written."""
    specimen = Specimen(label="ok")
    setattr(specimen, field, value)
    with pytest.raises(ValidationError) as info:
        specimen.save()
    assert info.value.field == field
    assert fragment in info.value.error_dict[field][0]
    assert f"Specimen.{field}" in str(info.value)
    assert Specimen.objects().count() == 0


def test_clean_fields_accepts_good_values(db: ln.Database) -> None:
    """Values of the right types are stored and read back equal."""
    taken = dt.datetime(2026, 11, 23, 14, 2, 3)
    specimen = Specimen(
        label="good",
        notes="n",
        count=2**31 - 1,
        ratio=0.5,
        flag=False,
        color=Color.green,
        taken_at=taken,
        day=dt.date(2026, 11, 23),
        extra={"k": [1, 2]},
    ).save()
    stored = Specimen.get(specimen.id)
    assert (stored.count, stored.color, stored.taken_at, stored.extra) == (
        2**31 - 1,
        Color.green,
        taken,
        {"k": [1, 2]},
    )


def test_required_field_missing(db: ln.Database) -> None:
    """A NOT NULL column without a value is refused before anything is sent."""
    with pytest.raises(ValidationError) as info:
        Sample(value=1.0, project_id=1).save()
    assert set(info.value.error_dict) == {"name"}
    assert "cannot be null" in info.value.error_dict["name"][0]


def test_error_lists_every_bad_field(db: ln.Database) -> None:
    """All bad fields are reported at once in error_dict."""
    with pytest.raises(ValidationError) as info:
        Specimen(label=None, count="x", ratio="y").save()
    assert set(info.value.error_dict) == {"label", "count", "ratio"}


def test_validate_unique_queries_database(db: ln.Database) -> None:
    """validate_unique finds a taken unique value, but not the record's own row."""
    stored = Project(name="taken").save()
    stored.validate_unique()
    with pytest.raises(ValidationError) as info:
        Project(name="taken").validate_unique()
    assert "already exists" in info.value.error_dict["name"][0]
    Project(name="free").validate_unique()


def test_validate_constraints_check_and_foreign_key(db: ln.Database) -> None:
    """validate_constraints evaluates CHECK constraints and foreign keys in the database."""
    project = Project(name="p").save()
    sample = Sample(name="s", project=project).save()
    with pytest.raises(ValidationError) as check:
        Measurement(reading=-1.0, sample_id=sample.id).validate_constraints()
    assert "ck_measurement_reading" in str(check.value)
    with pytest.raises(ValidationError) as missing:
        Measurement(reading=1.0, sample_id=999).validate_constraints()
    assert missing.value.field == "sample_id"
    assert "no sample row with id=999" in str(missing.value)
    Measurement(reading=2.0, sample_id=sample.id).validate_constraints()


def test_full_clean_collects_all_checks(db: ln.Database) -> None:
    """full_clean runs field, unique and constraint checks together."""
    Project(name="dup").save()
    with pytest.raises(ValidationError) as info:
        Project(name="dup").full_clean()
    assert "name" in info.value.error_dict


def test_clean_hook_runs_in_full_clean(db: ln.Database) -> None:
    """A model's clean() override is part of full_clean."""

    def clean(self: Project) -> None:
        raise ValidationError("names must be lowercase", model="Project")

    project = Project(name="Upper")
    project.clean = clean.__get__(project)  # type: ignore[method-assign]
    with pytest.raises(ValidationError) as info:
        project.full_clean()
    assert "lowercase" in str(info.value)


class _Pair(ln.Model):
    """Two columns unique together."""

    __tablename__ = "validation_pair"
    __table_args__ = (UniqueConstraint("left", "right", name="uq_validation_pair"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    left: Mapped[str] = mapped_column(String(10))
    right: Mapped[str] = mapped_column(String(10))


def test_unique_together_error_is_the_records(db: ln.Database) -> None:
    """A taken multi-column unique value is an error of the record ("__all__"), not of its
    first column; a single-column one stays the field's."""
    db.create_all()
    _Pair(left="a", right="b").save()
    with pytest.raises(ValidationError) as info:
        _Pair(left="a", right="b").validate_unique()
    assert list(info.value.error_dict) == ["__all__"]
    assert "left='a', right='b'" in info.value.error_dict["__all__"][0]
    Project(name="taken").save()
    with pytest.raises(ValidationError) as single:
        Project(name="taken").validate_unique()
    assert list(single.value.error_dict) == ["name"]


def test_full_clean_can_leave_out_constraints(db: ln.Database) -> None:
    """full_clean(validate_constraints=False) skips the check constraints (Django 4.1+)."""
    project = Project(name="p").save()
    sample = Sample(name="s", project=project).save()
    negative = Measurement(reading=-1.0, sample_id=sample.id)
    with pytest.raises(ValidationError):
        negative.full_clean()
    negative.full_clean(validate_constraints=False)


def test_update_empty_columns_writes_every_column(db: ln.Database) -> None:
    """update(_columns=[]) writes every column of the instance (ormar), overwriting another
    writer's change to a column this instance did not touch."""
    project = Project(name="p").save()
    sample = Sample(name="mine", value=1.0, project=project).save()
    Sample.get(sample.id).update(name="theirs")
    sample.update(_columns=[])
    assert Sample.get(sample.id).name == "mine"


def test_new_record_has_no_deferred_fields() -> None:
    """get_deferred_fields() of a record never stored is empty (nothing was left unloaded)."""
    assert Sample(name="new").get_deferred_fields() == set()


class _Exact(ln.Model):
    """An aware timestamp and wide numbers (values SQLite used to change silently)."""

    __tablename__ = "validation_exact"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    wide: Mapped[decimal.Decimal | None] = mapped_column(Numeric(30, 10))
    loose: Mapped[decimal.Decimal | None] = mapped_column(Numeric())


def test_aware_datetime_keeps_its_instant(db: ln.Database) -> None:
    """12:00+05:00 reads back as the same instant (aware), and filters find it, on both backends."""
    db.create_all()
    moment = dt.datetime(2026, 5, 1, 12, 0, tzinfo=dt.timezone(dt.timedelta(hours=5)))
    record = _Exact(at=moment).save()
    stored = _Exact.get(record.id)
    assert stored.at == moment and stored.at.utcoffset() is not None
    assert _Exact.filter(at=moment).count() == 1
    [row] = _Exact.bulk_create([{"at": moment}])
    assert _Exact.get(row["id"]).at == moment


def test_numeric_values_sqlite_would_change_are_refused(db: ln.Database) -> None:
    """On SQLite a Numeric value that would not read back equal is refused naming it; what is
    accepted reads back equal (on PostgreSQL all of these are exact)."""
    db.create_all()
    big = decimal.Decimal("123456789012345678.0123456789")
    many_places = decimal.Decimal("1.123456789012")
    if db.dialect == "sqlite":
        for field, value in (("wide", big), ("loose", many_places)):
            with pytest.raises(ValidationError) as info:
                _Exact(**{field: value}).save()
            assert info.value.field == field and str(value) in str(info.value)
    else:
        record = _Exact(wide=big, loose=many_places).save()
        stored = _Exact.get(record.id)
        assert (stored.wide, stored.loose) == (big, many_places)
    fine = _Exact(wide=decimal.Decimal("12345.6789"), loose=decimal.Decimal("0.5")).save()
    assert (_Exact.get(fine.id).wide, _Exact.get(fine.id).loose) == (
        decimal.Decimal("12345.6789"),
        decimal.Decimal("0.5"),
    )


class _Tagged(ln.Model):
    """A UUID key, and a UUID kept as text."""

    __tablename__ = "validation_tagged"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    ref: Mapped[str | None] = mapped_column(Uuid(as_uuid=False))


def test_uuid_keys_and_uuid_text(db: ln.Database) -> None:
    """get() takes a UUID key as text; text that is not a UUID is refused (a bad value used to
    make the whole table unreadable on SQLite)."""
    db.create_all()
    record = _Tagged(ref=str(uuid.uuid4())).save()
    assert _Tagged.get(str(record.id)).ref == record.ref
    assert _Tagged.get(record.id).id == record.id
    with pytest.raises(ValidationError) as info:
        _Tagged.get("not-a-uuid")
    assert info.value.field == "id"
    with pytest.raises(ValidationError) as bad:
        _Tagged(ref="closed").save()
    assert bad.value.field == "ref" and "is not a UUID" in str(bad.value)
    assert [t.id for t in _Tagged.objects().all()] == [record.id]


class _Measures(ln.Model):
    """Types whose values used to be refused or changed silently."""

    __tablename__ = "validation_measures"

    id: Mapped[int] = mapped_column(primary_key=True)
    took: Mapped[dt.timedelta | None] = mapped_column(Interval)
    at: Mapped[dt.time | None] = mapped_column(Time)
    single: Mapped[float | None] = mapped_column(REAL)
    double: Mapped[float | None] = mapped_column(Float)


def test_interval_time_real_and_nan_round_trip_or_are_refused(db: ln.Database) -> None:
    """Interval takes timedeltas; an aware time in Time() is refused (its zone would be
    dropped); a value a 4-byte REAL would change is refused on PostgreSQL; Decimal NaN is
    refused on SQLite like float NaN. What is accepted reads back equal."""
    db.create_all()
    record = _Measures(
        took=dt.timedelta(hours=1, seconds=3), at=dt.time(12, 30), single=0.5, double=0.123456789
    ).save()
    stored = _Measures.get(record.id)
    assert (stored.took, stored.at, stored.single, stored.double) == (
        dt.timedelta(hours=1, seconds=3),
        dt.time(12, 30),
        0.5,
        0.123456789,
    )
    with pytest.raises(ValidationError) as aware:
        _Measures(at=dt.time(12, 30, tzinfo=dt.timezone.utc)).save()
    assert aware.value.field == "at" and "time zone" in str(aware.value)
    if db.dialect == "postgresql":
        with pytest.raises(ValidationError) as real:
            _Measures(single=0.123456789).save()
        assert real.value.field == "single" and "REAL" in str(real.value)
    else:
        with pytest.raises(ValidationError) as nan:
            _Measures(double=decimal.Decimal("NaN")).save()
        assert nan.value.field == "double" and "NaN" in str(nan.value)


#: Values refused by clean_values without a database: (dialect, field of EveryType, value, what
#: the message must say besides the field: the value, and what to do).
REFUSALS = [
    ("sqlite", "double", decimal.Decimal("0.1"), ["Decimal('0.1')", "Pass a float", "Numeric"]),
    ("postgresql", "double", decimal.Decimal("1E+400"), ["outside the range", "Numeric"]),
    ("sqlite", "double", float("inf"), ["inf", "updated or deleted", "Store None"]),
    ("sqlite", "double", decimal.Decimal("-Infinity"), ["Decimal('-Infinity')", "Store None"]),
    ("sqlite", "double", decimal.Decimal("-sNaN"), ["Decimal('-sNaN')", "Use None"]),
    ("postgresql", "double", decimal.Decimal("-NaN"), ["Decimal('-NaN')", "float('nan')"]),
    ("postgresql", "double", decimal.Decimal("sNaN"), ["Decimal('sNaN')", "float('nan')"]),
    ("postgresql", "amount", decimal.Decimal("0E-20000"), ["0E-20000", "16383", "normalize"]),
    (
        "postgresql",
        "aware_at",
        dt.datetime(1, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=5))),
        ["0001-01-01T00:00:00+05:00", "years 1-9999"],
    ),
    ("sqlite", "naive_at", "pandas-ns", ["2024-01-01 12:00:00.123456789", "floor('us')"]),
    (
        "postgresql",
        "duration",
        "pandas-ns-delta",
        ["Timedelta 1 days 00:00:00.000000001", "floor('us')"],
    ),
    ("sqlite", "duration", dt.timedelta(days=3_000_000), ["3000000 days", "total_seconds()"]),
    ("postgresql", "aware_time", dt.time(1), ["naive time 01:00:00", "aware time"]),
    (
        "postgresql",
        "aware_time",
        dt.time(1, tzinfo=dt.timezone(dt.timedelta(hours=16))),
        ["01:00:00+16:00", "+16:00:00", "15:59:59"],
    ),
    (
        "postgresql",
        "aware_time",
        dt.time(1, tzinfo=dt.timezone(dt.timedelta(microseconds=5))),
        ["fraction of a second"],
    ),
    ("postgresql", "aware_time", "zoneinfo-time", ["America/New_York", "fixed offset"]),
    ("sqlite", "doc", 1.0, ["1.0", "read back as the int 1", "[1.0]"]),
    ("sqlite", "doc", 2**64, [str(2**64), "the float", "Wrap it"]),
    ("postgresql", "doc", {"k": ["a\x00b"]}, ["'a\\x00b'", "jsonb", "Remove it"]),
    ("postgresql", "doc", {"a\x00": 1}, ["'a\\x00'", "jsonb"]),
    ("sqlite", "doc", [1, {"x": float("nan")}], ["contains nan", "[1, {'x': nan}]", "None"]),
    ("sqlite", "blob", "strided", ["<memory at", "bytes(value)"]),
    ("sqlite", "level", "low", ["Level.low", "Level['low']"]),
    ("sqlite", "level", "H", ["Level.high", "Level('H')"]),
]


def _value(value: object) -> object:
    import zoneinfo

    import pandas as pd

    special = {
        "pandas-ns": lambda: pd.Timestamp("2024-01-01 12:00:00.123456789"),
        "pandas-ns-delta": lambda: pd.Timedelta(days=1, nanoseconds=1),
        "zoneinfo-time": lambda: dt.time(1, tzinfo=zoneinfo.ZoneInfo("America/New_York")),
        "strided": lambda: memoryview(b"abcdef")[::2],
    }
    return special[value]() if isinstance(value, str) and value in special else value


@pytest.mark.parametrize(("dialect", "field", "value", "fragments"), REFUSALS)
def test_refusals_name_the_value_and_what_to_do(
    dialect: str, field: str, value: object, fragments: list[str]
) -> None:
    """Each refusal is a ValidationError on the field whose message names the value and says
    what to do instead (no database: clean_values is the first thing save() runs)."""
    from models import EveryType

    from lineage_nb.orm.validation import clean_values

    given = _value(value)
    with pytest.raises(ValidationError) as info:
        clean_values(EveryType, {field: given}, dialect=dialect)
    assert info.value.field == field and info.value.value is given
    message = info.value.error_dict[field][0]
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def test_time_zone_refusal_on_sqlite_does_not_ask_for_what_is_declared() -> None:
    """Time(timezone=True) on SQLite refuses aware times without telling the user to declare
    Time(timezone=True), which the column already is; Time() still suggests it."""
    from models import EveryType

    from lineage_nb.orm.validation import clean_values

    aware = dt.time(12, 30, tzinfo=dt.timezone.utc)
    with pytest.raises(ValidationError) as declared:
        clean_values(EveryType, {"aware_time": aware}, dialect="sqlite")
    message = declared.value.error_dict["aware_time"][0]
    assert "12:30:00+00:00" in message and "SQLite cannot store" in message
    assert "declare Time(timezone=True)" not in message
    with pytest.raises(ValidationError) as plain:
        clean_values(EveryType, {"naive_time": aware}, dialect="sqlite")
    assert "declare Time(timezone=True)" in plain.value.error_dict["naive_time"][0]
    clean_values(EveryType, {"aware_time": dt.time(12, 30)}, dialect="sqlite")
    clean_values(EveryType, {"aware_time": aware}, dialect="postgresql")


def test_only_sqlite_corruption_is_called_a_corrupt_file() -> None:
    """translate() calls a database corrupt only for SQLite's own words, not for any message
    with "malformed" in it (such as SQLite's "malformed JSON" about a value)."""
    import sqlite3

    from sqlalchemy import exc as sa_exc

    from lineage_nb.errors import OperationalError
    from lineage_nb.orm.translate import translate

    def wrapped(text: str) -> sa_exc.OperationalError:
        return sa_exc.OperationalError("UPDATE x", {}, sqlite3.OperationalError(text))

    corrupt = translate(wrapped("database disk image is malformed"))
    assert isinstance(corrupt, OperationalError) and "corrupt" in str(corrupt)
    value_error = translate(wrapped("malformed JSON"))
    assert "corrupt" not in str(value_error) and "malformed JSON" in str(value_error)

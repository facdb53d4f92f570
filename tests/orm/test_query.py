"""Query: filter, order_by, limit, offset, all, first, one, count, df, async twins."""

from __future__ import annotations

import pandas as pd
import pytest
from models import Project, Sample

import lineage_nb as ln
from lineage_nb.errors import MultipleFound, NotFound, ValidationError


@pytest.fixture
def samples(db: ln.Database) -> list[Sample]:
    project = Project(name="q").save()
    return Sample.bulk_create(
        [Sample(name=f"s{i}", value=float(i), project_id=project.id) for i in range(5)]
    )


def test_filter_by_condition_and_equals(samples: list[Sample]) -> None:
    """SQLAlchemy conditions and field=value combine with AND."""
    found = Sample.filter(Sample.value >= 2, name="s3").all()
    assert [s.name for s in found] == ["s3"]
    assert Sample.filter(name=["s1", "s2"]).count() == 2
    assert Sample.filter(value=None).count() == 0


def test_order_limit_offset_first(samples: list[Sample]) -> None:
    """order_by("-value") with limit/offset pages through records."""
    query = Sample.objects().order_by("-value")
    assert [s.value for s in query.limit(2).all()] == [4.0, 3.0]
    assert [s.value for s in query.offset(3).all()] == [1.0, 0.0]
    first = query.first()
    assert first is not None and first.value == 4.0
    assert Sample.filter(name="none").first() is None


def test_one_raises_for_none_or_many(samples: list[Sample]) -> None:
    """one() returns the single match, NotFound for none, MultipleFound for several."""
    assert Sample.filter(name="s0").one().value == 0.0
    with pytest.raises(NotFound):
        Sample.filter(name="absent").one()
    with pytest.raises(MultipleFound):
        Sample.filter(Sample.value > 1).one()


def test_unknown_field_raises_validation_error(samples: list[Sample]) -> None:
    """filter(unknown=...) and order_by("unknown") name the field."""
    with pytest.raises(ValidationError) as info:
        Sample.filter(colour="red")
    assert info.value.field == "colour"
    with pytest.raises(ValidationError):
        Sample.objects().order_by("-colour")


def test_injection_text_is_a_plain_value(db: ln.Database, samples: list[Sample]) -> None:
    """filter(name="x' OR 1=1 --") matches nothing and changes nothing."""
    assert Sample.filter(name="x' OR 1=1 --").all() == []
    assert Sample.filter(name="'; DROP TABLE sample; --").count() == 0
    assert Sample.objects().count() == 5


def test_df_has_columns_and_dtypes(samples: list[Sample]) -> None:
    """df() gives one row per record with integer ids and float values."""
    frame = Sample.filter(Sample.value < 3).order_by("value").df()
    assert list(frame["name"]) == ["s0", "s1", "s2"]
    assert frame["id"].dtype == "int64"
    assert frame["value"].dtype == "float64"
    assert isinstance(frame["created_at"].dtype, pd.DatetimeTZDtype)
    assert len(Sample.df()) == 5


def test_iteration_and_repr(samples: list[Sample]) -> None:
    """A query iterates its records and shows its SQL in repr."""
    assert len(list(Sample.filter(value=1.0))) == 1
    assert "Query of Sample" in repr(Sample.filter(value=1.0))


async def test_async_query_twins(samples: list[Sample]) -> None:
    """aall/afirst/aone/acount run on the async driver."""
    query = Sample.filter(Sample.value >= 3).order_by("value")
    assert [s.value for s in await query.aall()] == [3.0, 4.0]
    assert (await query.acount()) == 2
    first = await query.afirst()
    assert first is not None and first.name == "s3"
    assert (await Sample.filter(name="s4").aone()).value == 4.0


def test_filter_with_an_integer_beyond_64_bits_is_refused(db: ln.Database) -> None:
    """filter(id=2**70) names the field instead of an OverflowError from the SQLite driver."""
    with pytest.raises(ValidationError) as info:
        Project.filter(id=2**70).all()
    assert info.value.field == "id" and "64-bit" in str(info.value)
    with pytest.raises(ValidationError):
        Project.filter(id=[1, -(2**64)]).count()

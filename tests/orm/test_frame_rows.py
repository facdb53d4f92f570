"""bulk_create(DataFrame): columns are fields, validated per column, chunked, one transaction."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from models import Color, Project, Sample, Specimen

import lineage_nb as ln
from lineage_nb.errors import ValidationError
from lineage_nb.orm import frame_rows


def _events(table: str) -> list[ln.RecordEvent]:
    return ln.RecordEvent.filter(table=table).order_by("id").all()


def test_frame_rows_stored_in_order_across_chunks(db: ln.Database, run: ln.Run) -> None:
    """25,000 rows (three chunks): keys come back in row order, NaN is NULL, every row is
    stamped with the run and has one insert event; the caller's frame is unchanged."""
    project = Project(name="frame").save()
    count = frame_rows.CHUNK_ROWS * 2 + 5_000
    values = np.arange(count, dtype=float)
    values[7] = np.nan
    frame = pd.DataFrame(
        {
            "name": [f"s{i}" for i in range(count)],
            "value": values,
            "project_id": project.id,
        }
    )
    before = frame.copy()
    keys = Sample.bulk_create(frame)
    pd.testing.assert_frame_equal(frame, before)
    assert len(keys) == count and len(set(keys)) == count
    stored = {s.id: s for s in Sample.objects().all()}
    assert [stored[k].name for k in keys[:3]] == ["s0", "s1", "s2"]
    assert stored[keys[-1]].name == f"s{count - 1}"
    assert stored[keys[7]].value is None and stored[keys[8]].value == 8.0
    assert {s.run_id for s in stored.values()} == {run.id}
    assert all(s.created_by_id is not None and s.created_at is not None for s in stored.values())
    events = _events("sample")
    assert len(events) == count and {e.action for e in events} == {"insert"}
    assert {e.pk for e in events} == {str(k) for k in keys}


def test_frame_types_are_converted(db: ln.Database) -> None:
    """Integers with gaps (floats in pandas), booleans, datetimes with NaT, enums and text."""
    frame = pd.DataFrame(
        {
            "label": ["a", "b", "c"],
            "count": [1.0, np.nan, 3.0],
            "flag": [True, False, True],
            "taken_at": pd.to_datetime(["2026-01-02 03:04:05", None, "2026-12-31 23:59:59"]),
            "color": [Color.red, None, Color.green],
            "ratio": [0.5, 1.5, np.nan],
        }
    )
    keys = Specimen.bulk_create(frame)
    rows = [Specimen.get(k) for k in keys]
    assert [r.count for r in rows] == [1, None, 3]
    assert all(isinstance(r.count, int) for r in rows if r.count is not None)
    assert [r.flag for r in rows] == [True, False, True]
    assert rows[0].taken_at == dt.datetime(2026, 1, 2, 3, 4, 5) and rows[1].taken_at is None
    assert [r.color for r in rows] == [Color.red, None, Color.green]
    assert [r.ratio for r in rows] == [0.5, 1.5, None]


def _refused(model: type, frame: pd.DataFrame) -> ValidationError:
    with pytest.raises(ValidationError) as info:
        model.bulk_create(frame)  # type: ignore[attr-defined]
    return info.value


def test_frame_errors_name_column_and_first_bad_row(db: ln.Database) -> None:
    """Each mistake names the column (and the row); nothing of the frame is written, even when
    the bad row is in a later chunk than rows already sent."""
    project = Project(name="bad frames").save()
    count = frame_rows.CHUNK_ROWS + 3_000
    good = pd.DataFrame(
        {"name": [f"s{i}" for i in range(count)], "value": 1.0, "project_id": project.id},
        index=[f"r{i}" for i in range(count)],
    )

    long_name = good.copy()
    long_name.iloc[12_345, 0] = "x" * 101
    error = _refused(Sample, long_name)
    assert error.field == "name" and "row 12345" in str(error) and "'r12345'" in str(error)

    missing = good.copy()
    missing.iloc[11_000, 0] = None
    error = _refused(Sample, missing)
    assert error.field == "name" and "row 11000" in str(error) and "cannot be null" in str(error)

    error = _refused(Sample, good.rename(columns={"value": "valeu"}))
    assert error.field == "valeu" and "Known fields" in str(error)

    error = _refused(Sample, good.assign(run_id=1))
    assert error.field == "run_id" and "drop(columns=['run_id'])" in str(error.hint)

    error = _refused(Sample, good.drop(columns=["project_id"]))
    assert error.field == "project_id" and "no such column" in str(error)

    twice = pd.concat([good[["name"]], good[["name", "project_id"]]], axis=1)
    assert _refused(Sample, twice).field == "name"

    fractional = pd.DataFrame({"label": ["a", "b"], "count": [1.0, 2.5]})
    error = _refused(Specimen, fractional)
    assert error.field == "count" and "row 1" in str(error) and "2.5" in str(error)

    too_big = pd.DataFrame({"label": ["a", "b"], "count": [1, 2**40]})
    error = _refused(Specimen, too_big)
    assert error.field == "count" and "row 1" in str(error)

    wrong_type = pd.DataFrame({"label": ["a", 5]})
    error = _refused(Specimen, wrong_type)
    assert error.field == "label" and "row 1" in str(error) and "expected str" in str(error)

    assert Sample.objects().count() == 0 and Specimen.objects().count() == 0
    assert _events("sample") == [] and _events("specimen") == []


def test_frame_refused_by_database_writes_nothing(db: ln.Database) -> None:
    """A foreign key the database refuses in the second chunk rolls back the first chunk too."""
    project = Project(name="fk").save()
    count = frame_rows.CHUNK_ROWS + 10
    ids = [project.id] * count
    ids[-1] = 999_999
    frame = pd.DataFrame({"name": "n", "project_id": ids})
    with pytest.raises(ln.errors.IntegrityError):
        Sample.bulk_create(frame)
    assert Sample.objects().count() == 0 and _events("sample") == []


def test_frame_inside_atomic_is_part_of_the_transaction(db: ln.Database) -> None:
    """Inside ln.atomic() the frame is written in the caller's transaction and rolls back with it."""
    project = Project(name="atomic").save()
    frame = pd.DataFrame({"name": ["a", "b"], "project_id": project.id})
    with pytest.raises(RuntimeError), ln.atomic():
        Sample.bulk_create(frame)
        assert Sample.objects().count() == 2
        raise RuntimeError
    assert Sample.objects().count() == 0 and _events("sample") == []
    assert Sample.bulk_create(frame.iloc[0:0]) == []


async def test_frame_async_twin(db: ln.Database) -> None:
    """abulk_create(DataFrame) writes through the async driver with the same result."""
    project = await Project(name="async frame").asave()
    keys = await Sample.abulk_create(pd.DataFrame({"name": ["a", "b"], "project_id": project.id}))
    assert [(await Sample.aget(k)).name for k in keys] == ["a", "b"]
    assert len(_events("sample")) == 2


def test_frame_with_lineage_off_may_give_the_stamps(db_url: str) -> None:
    """With lineage off nothing stamps rows, so a frame may (must, for NOT NULL) give them."""
    off = ln.connect(db_url, lineage=False)
    try:
        user = ln.User(handle="someone").save()
        project = Project(name="off", created_by_id=user.id).save()
        keys = Sample.bulk_create(
            pd.DataFrame(
                {
                    "name": ["a"],
                    "project_id": [project.id],
                    "created_by_id": [user.id],
                }
            )
        )
        assert Sample.get(keys[0]).created_by_id == user.id
    finally:
        off.close()


def test_frame_float_and_datetime_columns_follow_the_field_checks(db: ln.Database) -> None:
    """The column-wise checks refuse what the per-value checks refuse: ±inf in a Float column on
    SQLite (a row with it could never be updated or deleted), integers a float cannot hold,
    nanoseconds a datetime column would drop; each names the first bad row."""
    infinite = pd.DataFrame({"label": ["a", "b", "c"], "ratio": [0.5, np.nan, -np.inf]})
    if db.dialect == "sqlite":
        error = _refused(Specimen, infinite)
        assert error.field == "ratio" and "row 2" in str(error) and "-inf" in str(error)
    else:
        keys = Specimen.bulk_create(infinite)
        assert [Specimen.get(k).ratio for k in keys] == [0.5, None, -np.inf]
    stored = Specimen.objects().count()

    huge = pd.DataFrame({"label": ["a", "b"], "ratio": np.array([1, 2**60], dtype=np.int64)})
    error = _refused(Specimen, huge)
    assert error.field == "ratio" and "row 1" in str(error) and str(2**60) in str(error)

    moments = pd.to_datetime(
        ["2026-01-02 03:04:05.000000000", None, "2026-01-02 03:04:05.000000001"]
    )
    nanoseconds = pd.DataFrame({"label": ["a", "b", "c"], "taken_at": moments})
    error = _refused(Specimen, nanoseconds)
    assert error.field == "taken_at" and "row 2" in str(error) and "floor('us')" in str(error)
    assert Specimen.objects().count() == stored

    keys = Specimen.bulk_create(nanoseconds.assign(taken_at=moments.floor("us")))
    assert Specimen.get(keys[2]).taken_at == dt.datetime(2026, 1, 2, 3, 4, 5)

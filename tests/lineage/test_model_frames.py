"""DataFrame views: one query each, sensible dtypes, foreign keys shown with their label."""

from __future__ import annotations

import time

import pandas as pd
from models import Color, Project, Sample, Specimen
from sqlalchemy import event, insert
from sqlcount import statements

import lineage_nb as ln
from lineage_nb.lineage.frames import add_lineage_labels


def _selects(seen: list[str]) -> list[str]:
    return [s for s in seen if s.lstrip().upper().startswith(("SELECT", "WITH"))]


def test_model_df_dtypes(db: ln.Database, run: ln.Run) -> None:
    """Model.df(): integer ids, nullable Int64 for nullable keys, UTC timestamps, text as string."""
    project = Project(name="p").save()
    Sample(name="a", value=1.5, project=project).save()
    Sample(name="b", value=None, project=project).save()
    frame = Sample.df()
    assert str(frame["id"].dtype) == "int64"
    assert str(frame["project_id"].dtype) == "int64"
    assert str(frame["run_id"].dtype) == "Int64"
    assert str(frame["updated_by_id"].dtype) == "Int64"
    assert str(frame["value"].dtype) == "float64"
    assert frame["value"].isna().tolist() == [False, True]
    assert str(frame["name"].dtype) == "string"
    assert isinstance(frame["created_at"].dtype, pd.DatetimeTZDtype)
    assert str(frame["created_at"].dt.tz) == "UTC"


def test_model_df_foreign_key_labels(db: ln.Database, run: ln.Run) -> None:
    """Each foreign key is followed by the related record's label (name, run, user handle)."""
    project = Project(name="Alpha").save()
    Sample(name="a", value=1.0, project=project).save()
    frame = Sample.df()
    columns = list(frame.columns)
    assert columns[columns.index("project_id") + 1] == "project"
    assert frame["project"].tolist() == ["Alpha"]
    assert frame["run"].tolist() == [f"run {run.id} · {run.transform.label}"]
    assert frame["created_by"].tolist() == ["tester"]
    assert frame["updated_by"].tolist() == ["tester"]


def test_lineage_table_df_has_labels(db: ln.Database, run: ln.Run) -> None:
    """A lineage table's df() labels its foreign keys like a user model's (transform, user)."""
    frame = ln.Run.filter(id=run.id).df()
    row = frame.iloc[0]
    assert row["transform"] == f"{run.transform.key} v{run.transform.version}"
    assert row["created_by"] == run.created_by.handle


def test_model_df_without_run_has_missing_run_label(db: ln.Database) -> None:
    """A record written outside any run has <NA> run id and run label."""
    Project(name="p").save()
    frame = Project.df()
    assert frame["run_id"].isna().all() and frame["run"].isna().all()
    assert frame["created_by"].tolist() == ["tester"]


def test_query_df_filters_orders_and_limits(db: ln.Database, run: ln.Run) -> None:
    """Query.df() keeps the query's conditions, order and limit."""
    project = Project(name="p").save()
    for i in range(5):
        Sample(name=f"s{i}", value=float(i), project=project).save()
    frame = Sample.filter(Sample.value >= 1).order_by("-value").limit(3).df()
    assert frame["name"].tolist() == ["s4", "s3", "s2"]
    assert frame["project"].tolist() == ["p", "p", "p"]


def test_empty_df_has_columns_and_dtypes(db: ln.Database) -> None:
    """An empty frame still has every column, with the same dtypes."""
    frame = Sample.df()
    assert len(frame) == 0
    assert str(frame["id"].dtype) == "int64"
    assert str(frame["run_id"].dtype) == "Int64"
    assert "project" in frame.columns


def test_specimen_dtypes(db: ln.Database) -> None:
    """Nullable booleans, integers, enums (category) and naive datetimes get fitting dtypes."""
    Specimen(label="x", count=3, flag=True, color=Color.red, ratio=0.5).save()
    Specimen(label="y").save()
    frame = Specimen.df()
    assert str(frame["count"].dtype) == "Int64"
    assert str(frame["flag"].dtype) == "boolean"
    assert frame["flag"].tolist()[0] is True and frame["flag"].isna().tolist() == [False, True]
    assert isinstance(frame["color"].dtype, pd.CategoricalDtype)
    assert frame["color"].tolist()[0] == "red"
    assert str(frame["label"].dtype) == "string"


def test_df_is_one_query(db: ln.Database, run: ln.Run) -> None:
    """Model.df() over many rows issues exactly one SELECT of rows (labels come from joins);
    inside a run, one more reads the version watermark of the read (its inputs' versions)."""
    project = Project(name="p").save()
    Sample.bulk_create([Sample(name=f"s{i}", value=1.0, project=project) for i in range(50)])
    with statements(db) as seen:
        frame = Sample.df()
    assert len(frame) == 50
    selects = _selects(seen)
    watermarks = [s for s in selects if "FROM lineage_record_event" in s]
    assert len(selects) == 2 and len(watermarks) == 1, seen
    with ln.untracked_reads(), statements(db) as seen:
        Sample.df()
    assert len(_selects(seen)) == 1, seen


def test_df_of_100k_rows_builds_fast(db: ln.Database) -> None:
    """100,000 rows come back in one query, well under the time of loading ORM objects."""
    project = Project(name="p").save()
    user_id = Project.get(project.id).created_by_id
    now = pd.Timestamp.now(tz="UTC").to_pydatetime()
    rows = [
        {
            "name": f"s{i}",
            "value": float(i),
            "project_id": project.id,
            "created_by_id": user_id,
            "created_at": now,
        }
        for i in range(100_000)
    ]
    with db.engine.begin() as connection:
        connection.execute(insert(Sample.__table__), rows)
    with statements(db) as seen:
        started = time.perf_counter()
        frame = Sample.df()
        elapsed = time.perf_counter() - started
    assert frame.shape[0] == 100_000
    assert frame["project"].eq("p").all()
    assert len(_selects(seen)) == 1
    assert elapsed < 8.0, f"Sample.df() of 100k rows took {elapsed:.2f}s"


def test_runs_df_columns(db: ln.Database, run: ln.Run) -> None:
    """ln.runs_df(): run id, transform key/version, user handle, status, UTC start time."""
    Project(name="p").save()
    frame = ln.runs_df()
    assert frame["run_id"].tolist() == [run.id]
    assert frame["transform_key"].tolist() == [run.transform.key]
    assert frame["user_handle"].tolist() == ["tester"]
    assert frame["status"].tolist() == ["started"]
    assert str(frame["started_at"].dt.tz) == "UTC"
    assert frame["finished_at"].isna().all()
    assert frame["events"].tolist() == [1]


def test_run_records_df_has_record_and_run_labels(db: ln.Database, run: ln.Run) -> None:
    """run.records_df(): one row per event, labelled ``Sample 1`` and ``run N · key vV``."""
    ln.context.set_cell(7)
    project = Project(name="p").save()
    sample = Sample(name="s", value=1.0, project=project).save()
    sample.update(value=2.0)
    frame = run.records_df()
    assert frame["action"].tolist() == ["insert", "insert", "update"]
    assert frame["record"].tolist() == [
        f"Project {project.id}",
        f"Sample {sample.id}",
        f"Sample {sample.id}",
    ]
    assert frame["cell"].tolist() == [7, 7, 7] and str(frame["cell"].dtype) == "Int64"
    assert set(frame["run"]) == {f"run {run.id} · {run.transform.label}"}
    assert str(frame["at"].dt.tz) == "UTC"


def test_run_inputs_df_lists_records_read(db: ln.Database) -> None:
    """run.inputs_df(): the records a run read with get(), labelled by model."""
    project = Project(name="p").save()
    reader = ln.track(__file__)
    Project.get(project.id)
    frame = reader.inputs_df()
    ln.finish(run=reader)
    assert frame["record"].tolist() == [f"Project {project.id}"]
    assert str(frame["at"].dt.tz) == "UTC"


def test_history_df_oldest_first(db: ln.Database, run: ln.Run) -> None:
    """record.history_df(): insert then update, with changes and the run label."""
    project = Project(name="p").save()
    sample = Sample(name="s", value=1.0, project=project).save()
    sample.update(value=3.0)
    frame = sample.history_df()
    assert frame["action"].tolist() == ["insert", "update"]
    assert frame["changes"].iloc[1]["value"][1] in (3.0, "3.0")
    assert frame["user_handle"].tolist() == ["tester", "tester"]


def test_add_lineage_labels_returns_new_frame() -> None:
    """add_lineage_labels does not change its input."""
    frame = pd.DataFrame({"table": ["sample"], "pk": ["1"]})
    labelled = add_lineage_labels(frame)
    assert list(frame.columns) == ["table", "pk"]
    assert list(labelled.columns) == ["table", "pk", "record"]


def test_df_builds_no_orm_objects(db: ln.Database, run: ln.Run) -> None:
    """Model.df() never constructs Sample instances (no ORM ``load`` events)."""
    project = Project(name="p").save()
    Sample.bulk_create([Sample(name=f"s{i}", value=1.0, project=project) for i in range(20)])
    loaded: list[object] = []

    def on_load(target: object, context: object) -> None:
        loaded.append(target)

    event.listen(Sample, "load", on_load)
    try:
        assert len(Sample.df()) == 20
        assert len(Sample.filter().all()) == 20  # the listener does see ORM loads
    finally:
        event.remove(Sample, "load", on_load)
    assert len(loaded) == 20

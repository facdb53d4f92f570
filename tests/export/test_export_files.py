"""CSV and Parquet export of DataFrame views, read back with pandas: same rows, same dtypes."""

from __future__ import annotations

import datetime as dt
import decimal
import io
import json
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from export_data import Lineage, build_lineage
from models import Color, Project, Sample, Specimen

import lineage_nb as ln
from lineage_nb.errors import UsageError
from lineage_nb.export import files


@pytest.fixture
def lineage(db: ln.Database, tmp_path: Path) -> Lineage:
    return build_lineage(tmp_path)


def views(lineage: Lineage) -> dict[str, pd.DataFrame]:
    """Every DataFrame view lineage_nb offers, by name."""
    sample = Sample.get(lineage.samples[1].id)
    return {
        "model": files.frame_of(Sample),
        "query": files.frame_of(Sample.filter(name="s1")),
        "run": files.frame_of(lineage.analyse),
        "record": files.frame_of(sample),
        "runs_df": ln.runs_df(),
        "inputs_df": lineage.analyse.inputs_df(),
    }


def expected(frame: pd.DataFrame) -> pd.DataFrame:
    """What an export holds: nested values as JSON text, everything else unchanged."""
    return files._flatten(frame)


def test_frame_of_picks_the_view(lineage: Lineage) -> None:
    """Models, queries, runs and records map to Model.df, Query.df, records_df, history_df."""
    found = views(lineage)
    assert len(found["model"]) == 4 and set(found["query"]["name"]) == {"s1"}
    assert list(found["run"]["action"]) == ["insert"] * 3 + ["update"]  # 3 measurements, 1 sample
    assert list(found["record"]["action"]) == ["insert", "update"]
    with pytest.raises(UsageError) as info:
        files.frame_of(42)
    assert info.value.value == 42


@pytest.mark.parametrize("name", ["model", "query", "run", "record", "runs_df", "inputs_df"])
def test_csv_round_trip_keeps_rows_and_dtypes(lineage: Lineage, tmp_path: Path, name: str) -> None:
    """to_csv then read_csv gives back the same rows with the same dtypes."""
    frame = views(lineage)[name]
    path = ln.export.to_csv(frame, tmp_path / f"{name}.csv")
    back = ln.export.read_csv(path)
    pd.testing.assert_frame_equal(back, expected(frame), check_exact=False)
    assert len(pd.read_csv(path)) == len(frame)  # plain pandas reads it too


@pytest.mark.parametrize("name", ["model", "query", "run", "record", "runs_df", "inputs_df"])
def test_parquet_round_trip_keeps_rows_and_dtypes(
    lineage: Lineage, tmp_path: Path, name: str
) -> None:
    """to_parquet then pandas.read_parquet gives back the same rows with the same dtypes."""
    frame = views(lineage)[name]
    path = ln.export.to_parquet(frame, tmp_path / f"{name}.parquet")
    back = pd.read_parquet(path)
    pd.testing.assert_frame_equal(back, expected(frame))
    assert pq.ParquetFile(path).metadata.num_rows == len(frame)


def test_exports_accept_models_runs_and_records_directly(lineage: Lineage, tmp_path: Path) -> None:
    """to_csv/to_parquet take the object itself, not only a DataFrame."""
    ln.export.to_parquet(lineage.analyse, tmp_path / "run.parquet")
    events = pd.read_parquet(tmp_path / "run.parquet")
    assert list(events["action"]) == ["insert"] * 3 + ["update"]
    changes = json.loads(events["changes"].iloc[-1])
    assert changes == {"value": [1.0, 10.0]} or changes == {"value": ["1.0", "10.0"]}
    ln.export.to_csv(Project, tmp_path / "projects.csv")
    assert list(ln.export.read_csv(tmp_path / "projects.csv")["name"]) == ["soil"]


def test_parquet_keeps_column_types_of_every_kind(db: ln.Database, tmp_path: Path) -> None:
    """Nullable ints/bools, naive datetimes, dates, decimals, enums and JSON survive Parquet."""
    Specimen(
        label="a",
        count=3,
        ratio=0.5,
        flag=True,
        color=Color.red,
        taken_at=dt.datetime(2024, 1, 1),
        day=dt.date(2024, 1, 2),
        amount=decimal.Decimal("1.5000"),
        extra={"k": [1, 2]},
    ).save()
    Specimen(label="b").save()
    Specimen(label="c", count=-1, flag=False, color=Color.green).save()
    frame = Specimen.df()
    path = ln.export.to_parquet(Specimen, tmp_path / "specimens.parquet")
    back = pd.read_parquet(path)
    assert dict(back.dtypes) == dict(expected(frame).dtypes)
    assert str(back["extra"].dtype) == "str"
    assert back["count"].tolist()[0] == 3 and back["count"].isna().tolist() == [False, True, False]
    assert back["flag"].tolist()[:1] == [True] and back["flag"].isna().tolist()[1]
    colors = back["color"].astype(object)
    assert colors.where(colors.notna(), None).tolist() == ["red", None, "green"]
    assert back["day"].iloc[0] == dt.date(2024, 1, 2)
    assert back["amount"].iloc[0] == decimal.Decimal("1.5")
    assert json.loads(back["extra"].iloc[0]) == {"k": [1, 2]}


def test_csv_writes_in_chunks(
    lineage: Lineage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A long export is written chunk by chunk (header once) and reads back whole."""
    monkeypatch.setattr(files, "CHUNK_ROWS", 2)
    frame = ln.export.frame_of(lineage.analyse)
    ln.export.to_csv(frame, tmp_path / "chunks.csv")
    ln.export.to_parquet(frame, tmp_path / "chunks.parquet")
    pd.testing.assert_frame_equal(ln.export.read_csv(tmp_path / "chunks.csv"), expected(frame))
    assert pq.ParquetFile(tmp_path / "chunks.parquet").num_row_groups == 2
    assert (tmp_path / "chunks.csv").read_text().count("event_id") == 1


@pytest.mark.sqlite_only
def test_progress_bar_only_on_a_terminal(
    lineage: Lineage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The progress bar draws on a TTY stderr and stays silent otherwise."""

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    for stream, drawn in ((io.StringIO(), False), (Terminal(), True)):
        monkeypatch.setattr("sys.stderr", stream)
        ln.export.to_csv(lineage.analyse, tmp_path / "p.csv")
        assert ("rows" in stream.getvalue()) is drawn
    quiet = Terminal()
    monkeypatch.setattr("sys.stderr", quiet)
    ln.export.to_parquet(lineage.analyse, tmp_path / "p.parquet", progress=False)
    assert quiet.getvalue() == ""


def test_csv_keeps_aware_timestamps_of_any_zone(tmp_path: Path) -> None:
    """Aware timestamps are written with their offset and read back aware, as the same
    instants in the same zone, even when the offset changes within the column (DST)."""
    instants = pd.to_datetime(["2024-01-15T12:00:00Z", "2024-07-15T12:00:00Z", None], utc=True)
    frame = pd.DataFrame(
        {
            "utc": instants,
            "berlin": instants.tz_convert("Europe/Berlin"),
            "naive": instants.tz_localize(None),
        }
    )
    path = ln.export.to_csv(frame, tmp_path / "zones.csv")
    text = path.read_text()
    assert "2024-01-15 12:00:00+00:00" in text and "2024-07-15 14:00:00+02:00" in text
    back = ln.export.read_csv(path)
    pd.testing.assert_frame_equal(back, frame)
    assert str(back["utc"].dt.tz) == "UTC" and str(back["berlin"].dt.tz) == "Europe/Berlin"


@pytest.mark.parametrize("name", ["model", "run", "record", "runs_df", "inputs_df"])
def test_exported_lineage_timestamps_are_utc(lineage: Lineage, tmp_path: Path, name: str) -> None:
    """Lineage timestamps leave as UTC, on both backends: CSV text with +00:00, read_csv and
    Parquet give UTC-aware columns."""
    frame = views(lineage)[name]
    stamps = [c for c in frame.columns if pd.api.types.is_datetime64_any_dtype(frame[c])]
    assert stamps
    csv = ln.export.to_csv(frame, tmp_path / f"{name}.csv")
    parquet = ln.export.to_parquet(frame, tmp_path / f"{name}.parquet")
    text = pd.read_csv(csv, dtype=str)
    for back in (ln.export.read_csv(csv), pd.read_parquet(parquet)):
        assert {c: str(back[c].dt.tz) for c in stamps} == dict.fromkeys(stamps, "UTC")
    assert all(text[c].dropna().str.endswith("+00:00").all() for c in stamps)

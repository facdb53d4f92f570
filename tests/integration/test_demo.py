"""The README's demo: quickstart headless on a fresh SQLite file, lineage printed as tables."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lineage_nb.demo import main


@pytest.mark.kernel
@pytest.mark.slow
def test_demo_prints_runs_notebook_and_records(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``demo`` executes the quickstart (ingest script, analysis notebook, correction script) and
    prints runs, per-record cells, the versions each run read, the stale summary and a diff."""
    assert main(["--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"against sqlite:///{tmp_path / 'lineage.db'}" in out
    assert (tmp_path / "lineage.db").exists() and (tmp_path / "quickstart.executed.ipynb").exists()
    sections = out.split("\n\n")
    notebooks = next(s for s in sections if s.startswith("Notebooks and scripts"))
    assert re.search(r"quickstart\.ipynb\s+1\s+notebook\s+[0-9a-f]{12}", notebooks)
    assert re.search(r"ingest\.py\s+1\s+script", notebooks)
    runs = next(s for s in sections if s.startswith("Runs"))
    assert re.search(r"\b1\s+quickstart\.ipynb\s+1\s+tester\s+completed\s+\d{4}-\d\d-\d\d ", runs)
    records = next(s for s in sections if s.startswith("Records"))
    rows = [line.split() for line in records.splitlines()[2:]]
    assert [(r[0], r[1], r[2], r[3], r[5]) for r in rows] == [
        ("summary", "1", "insert", "tester", "[5]"),
        ("project", "1", "insert", "tester", "-"),
        ("sample", "1", "insert", "tester", "-"),
        ("sample", "2", "insert", "tester", "-"),
        ("sample", "3", "insert", "tester", "-"),
        ("sample", "1", "update", "tester", "-"),
    ]
    inputs = next(s for s in sections if s.startswith("Inputs"))
    assert re.search(r"\b1\s+sample 1\s+[\d:.]+\s+2\s+6\s+yes", inputs)
    stale = next(s for s in sections if s.startswith("Stale"))
    assert re.search(r"summary\s+1\s+1\s+1", stale)
    changed = next(s for s in sections if s.startswith("What changed"))
    assert re.search(r"sample\s+1\s+changed\s+value\s+0\.42\s+0\.47", changed)
    assert "demo: 6 record event(s) recorded in" in out


def test_demo_missing_notebook_is_one_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A missing notebook exits 2 with one line naming it, before any kernel starts."""
    assert main(["--notebook", str(tmp_path / "nope.ipynb"), "--dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nope.ipynb not found" in err[0]

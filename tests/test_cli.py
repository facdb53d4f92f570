"""The ``lineage-nb`` command: subcommands, ``--database``, exit codes and one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import pytest
from export_data import Lineage, build_lineage
from prov.model import ProvDocument, ProvGeneration
from sqlalchemy import text
from test_export_openlineage import schema_errors

import lineage_nb as ln
from lineage_nb import cli
from lineage_nb.cli import main

SUBCOMMANDS = list(cli.COMMANDS)


def url_of(db: ln.Database) -> str:
    return db.url.render_as_string(hide_password=False)


@pytest.fixture
def lineage(db: ln.Database, tmp_path: Path) -> Lineage:
    return build_lineage(tmp_path)


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("command", [[], *[[c] for c in SUBCOMMANDS]])
def test_help_exits_zero(capsys: pytest.CaptureFixture[str], command: list[str]) -> None:
    """--help works for the command and each subcommand, showing --database."""
    code, out, _err = run_cli(capsys, *command, "--help")
    assert code == 0
    assert out.startswith(f"usage: lineage-nb {' '.join(command)}".rstrip())
    assert "--database URL" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "choose a command"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        (["runs", "--bogus"], "unrecognized arguments: --bogus"),
        (["runs", "--limit", "many"], "invalid int value"),
        (["show", "sample"], "show: the following arguments are required: PK"),
        (["export", "--database", "sqlite://"], "give at least one of --csv"),
        (["runs", "--database", "not a url"], "cannot parse database URL"),
        (["runs", "--database", "mysql://u@h/d"], "cannot use database mysql://u@h/d"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    """Bad arguments end with exit code 2 and a single 'lineage-nb: error:' line, no traceback."""
    code, out, err = run_cli(capsys, *argv)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("lineage-nb: error: ")
    assert message in err


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("sqlite:///{tmp}/missing/lineage.db", "no database at"),
        ("postgresql+psycopg://nobody@127.0.0.1:1/nothing", "cannot reach database"),
    ],
)
def test_unreachable_database_exits_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, url: str, message: str
) -> None:
    """A missing SQLite file or a server that refuses connections: exit 2, one line."""
    for command in (["runs"], ["show", "sample", "1"], ["verify"], ["export", "--csv", "x.csv"]):
        code, _out, err = run_cli(capsys, *command, "--database", url.format(tmp=tmp_path))
        assert code == 2, command
        assert err.count("\n") == 1 and message in err
        assert "Traceback" not in err
    assert not (tmp_path / "missing").exists()


def test_database_from_environment(
    lineage: Lineage,
    db: ln.Database,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without --database the URL comes from LINEAGE_NB_DATABASE_URL."""
    monkeypatch.setenv("LINEAGE_NB_DATABASE_URL", url_of(db))
    code, out, _err = run_cli(capsys, "runs")
    assert code == 0 and "analyse.py" in out


def test_runs_lists_and_filters(
    lineage: Lineage, db: ln.Database, capsys: pytest.CaptureFixture[str]
) -> None:
    """runs prints a table of runs, newest first, filtered by user, notebook and status."""
    url = url_of(db)
    code, out, _err = run_cli(capsys, "runs", "--database", url)
    lines = out.splitlines()
    assert code == 0 and len(lines) == 4
    assert lines[0].split() == [
        "run_id",
        "key",
        "version",
        "user",
        "status",
        "started_at",
        "finished_at",
        "events",
    ]
    assert [line.split()[0] for line in lines[1:]] == [
        str(lineage.broken.id),
        str(lineage.analyse.id),
        str(lineage.ingest.id),
    ]
    _code, out, _err = run_cli(capsys, "runs", "--database", url, "--status", "errored")
    assert [line.split()[0] for line in out.splitlines()[1:]] == [str(lineage.broken.id)]
    _code, out, _err = run_cli(capsys, "runs", "--database", url, "--notebook", "analyse")
    assert len(out.splitlines()) == 2 and "analyse.py" in out
    _code, out, _err = run_cli(capsys, "runs", "--database", url, "--user", "tester", "--uid")
    assert lineage.ingest.uid in out
    code, out, _err = run_cli(capsys, "runs", "--database", url, "--user", "nobody")
    assert code == 0 and out == "No runs match.\n"


def test_show_prints_record_and_history(
    lineage: Lineage, db: ln.Database, capsys: pytest.CaptureFixture[str]
) -> None:
    """show MODEL PK prints the record's fields and its history with run, transform and changes."""
    sample = lineage.samples[1]
    for model in ("sample", "Sample"):
        code, out, _err = run_cli(capsys, "show", model, str(sample.id), "--database", url_of(db))
        assert code == 0
        assert f"sample {sample.id}" in out.splitlines()[0]
        assert "  name           s1" in out
        assert "History (2 events):" in out
        history = out.split("History")[1]
        assert "insert" in history and "update" in history
        # PostgreSQL's JSON has one number type: 1.0 is stored and shown as 1
        assert "analyse.py" in history and ("value: 1.0 → 10.0" in history or "value: 1 → 10" in history)


def test_show_missing_record_and_unknown_model(
    lineage: Lineage, db: ln.Database, capsys: pytest.CaptureFixture[str]
) -> None:
    """A missing pk exits 1; an unknown model exits 2 listing the tables; a bad pk exits 2."""
    code, _out, err = run_cli(capsys, "show", "sample", "999", "--database", url_of(db))
    assert code == 1 and "no sample record with primary key 999" in err
    code, _out, err = run_cli(capsys, "show", "nothing", "1", "--database", url_of(db))
    assert code == 2 and "no model or table named 'nothing'" in err and "sample" in err
    code, _out, err = run_cli(capsys, "show", "sample", "one", "--database", url_of(db))
    assert code == 2 and "sample.id: 'one' is not valid" in err


def test_show_without_models_uses_reflection(
    lineage: Lineage, db: ln.Database, tmp_path: Path
) -> None:
    """`python -m lineage_nb show sample 2` works from a shell where the models are unknown."""
    def shell(*args: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        return subprocess.run(
            [sys.executable, "-m", "lineage_nb", *args, "--database", url_of(db)],
            capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120, check=False,
        )

    result = shell("show", "sample", str(lineage.samples[1].id))
    assert result.returncode == 0, result.stderr
    assert "History (2 events):" in result.stdout
    assert "value: 1.0 → 10.0" in result.stdout or "value: 1 → 10" in result.stdout
    models = Path(__file__).parent / "models.py"
    with_models = shell("show", "Measurement", str(lineage.measurements[0].id), "--models", str(models))
    assert with_models.returncode == 0, with_models.stderr
    assert with_models.stdout.startswith(f"measurement {lineage.measurements[0].id}")
    missing = shell("show", "sample", "1", "--models", "no_such_module")
    assert missing.returncode == 2
    assert missing.stderr.startswith(
        "lineage-nb: error: cannot import models from 'no_such_module'"
    )


def test_export_writes_every_format(
    lineage: Lineage, db: ln.Database, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """export --csv/--parquet/--openlineage/--prov write files each format's library reads."""
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    code, out, err = run_cli(
        capsys,
        "export",
        "--database",
        url_of(db),
        "--csv",
        str(out_dir / "runs.csv"),
        "--parquet",
        str(out_dir / "runs.parquet"),
        "--openlineage",
        str(out_dir / "events.ndjson"),
        "--prov",
        str(out_dir / "lineage.provn"),
    )
    assert code == 0, err
    assert err == ""  # not a terminal: no progress bar
    runs = ln.export.read_csv(out_dir / "runs.csv")
    assert list(runs["run_id"]) == [lineage.ingest.id, lineage.analyse.id, lineage.broken.id]
    assert pq.read_table(out_dir / "runs.parquet").num_rows == 3
    events = [json.loads(line) for line in (out_dir / "events.ndjson").read_text().splitlines()]
    assert [e["eventType"] for e in events] == ["START", "COMPLETE"] * 2 + ["START", "FAIL"]
    assert all(schema_errors(e) == [] for e in events)
    doc = ProvDocument.deserialize(out_dir / "lineage.provn", format="provn")
    assert (
        len(list(doc.get_records(ProvGeneration))) == 9
    )  # 1 project + 4 samples + 3 meas. + 1 update
    assert "wrote 6 OpenLineage events of 3 runs" in out


def test_export_one_run_and_one_record(
    lineage: Lineage, db: ln.Database, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """--run selects runs by id or uid (default view: its events); --record gives PROV of a record."""
    url = url_of(db)
    code, _out, err = run_cli(
        capsys,
        "export",
        "--database",
        url,
        "--run",
        lineage.analyse.uid,
        "--csv",
        str(tmp_path / "events.csv"),
        "--openlineage",
        str(tmp_path / "one.ndjson"),
    )
    assert code == 0, err
    events = ln.export.read_csv(tmp_path / "events.csv")
    assert list(events["action"]) == ["insert"] * 3 + ["update"]
    assert len((tmp_path / "one.ndjson").read_text().splitlines()) == 2
    code, _out, err = run_cli(
        capsys,
        "export",
        "--database",
        url,
        "--view",
        "measurement",
        "--parquet",
        str(tmp_path / "m.parquet"),
        "--record",
        "measurement",
        str(lineage.measurements[0].id),
        "--prov",
        str(tmp_path / "m.json"),
    )
    assert code == 0, err
    assert pd.read_parquet(tmp_path / "m.parquet")["reading"].tolist() == [1.5, 2.5, 0.5]
    doc = ProvDocument.deserialize(tmp_path / "m.json", format="json")
    generated = {
        (str(g.formal_attributes[0][1]), str(g.formal_attributes[1][1]))
        for g in doc.get_records(ProvGeneration)
    }
    assert (
        f"ln:record.measurement.{lineage.measurements[0].id}",
        f"ln:run.{lineage.analyse.uid}",
    ) in generated
    code, _out, err = run_cli(capsys, "export", "--database", url, "--run", "999", "--csv", "x.csv")
    assert code == 2 and "no run 999" in err


def test_verify_reports_intact_and_broken_chains(
    lineage: Lineage, db: ln.Database, capsys: pytest.CaptureFixture[str]
) -> None:
    """verify exits 0 on intact chains and 1 with the first broken link after tampering."""
    code, out, _err = run_cli(capsys, "verify", "--database", url_of(db))
    assert code == 0 and out.startswith("OK")
    with db.engine.begin() as connection:
        event_id = connection.execute(
            text("SELECT min(id) FROM lineage_record_event WHERE run_id = :run"),
            {"run": lineage.analyse.id},
        ).scalar_one()
        connection.execute(
            text("UPDATE lineage_record_event SET pk = :pk WHERE id = :id"),
            {"pk": "77", "id": event_id},
        )
    code, out, _err = run_cli(capsys, "verify", "--database", url_of(db))
    assert code == 1
    assert out.startswith("BROKEN log: seal") and "changed after it was sealed" in out


@pytest.mark.sqlite_only
def test_kernel_config_install_and_uninstall(
    backend: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """install-kernel-config writes the auto-load block; uninstall-kernel-config removes it."""
    config = tmp_path / "profile_default" / "ipython_kernel_config.py"
    code, out, _err = run_cli(capsys, "install-kernel-config", "--ipython-dir", str(tmp_path))
    assert code == 0 and str(config) in out
    assert 'extensions.append("lineage_nb")' in config.read_text()
    code, out, _err = run_cli(capsys, "install-kernel-config", "--ipython-dir", str(tmp_path))
    assert "already installed" in out
    code, out, _err = run_cli(capsys, "uninstall-kernel-config", "--ipython-dir", str(tmp_path))
    assert code == 0 and "removed" in out and not config.exists()


@pytest.mark.sqlite_only
def test_console_script_returns_exit_status(backend: str, tmp_path: Path) -> None:
    """The installed `lineage-nb` script exits with main()'s return value."""
    script = Path(sys.executable).parent / "lineage-nb"
    if not script.exists():
        pytest.fail(f"console script {script} is not installed (pip install -e .)")
    bad = subprocess.run(
        [str(script), "runs", "--bogus"], capture_output=True, text=True, timeout=120
    )
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1
    ok = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0 and "usage: lineage-nb" in ok.stdout


@pytest.mark.kernel
@pytest.mark.slow
def test_quickstart_database_exports_in_every_format(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`demo` builds the quickstart's database; `export` turns it into CSV, Parquet, OpenLineage
    and PROV, each read back and checked by that format's own library."""
    url = f"sqlite:///{tmp_path / 'lineage.db'}"
    code, out, err = run_cli(capsys, "demo", "--database", url)
    assert code == 0, err
    files = {
        name: tmp_path / name
        for name in ("runs.csv", "sample.parquet", "events.ndjson", "lineage.json", "lineage.provn")
    }
    for argv in (
        [
            "--csv",
            str(files["runs.csv"]),
            "--openlineage",
            str(files["events.ndjson"]),
            "--prov",
            str(files["lineage.json"]),
        ],
        [
            "--view",
            "sample",
            "--parquet",
            str(files["sample.parquet"]),
            "--prov",
            str(files["lineage.provn"]),
        ],
    ):
        code, _out, err = run_cli(capsys, "export", "--database", url, *argv)
        assert code == 0, err
    runs = pd.read_csv(files["runs.csv"])
    assert runs[["transform_key", "status", "events"]].values.tolist() == [
        ["quickstart.ipynb", "completed", 1], ["ingest.py", "completed", 4],
        ["correct.py", "completed", 1],
    ]
    samples = pq.read_table(files["sample.parquet"]).to_pandas()
    assert samples["id"].tolist() == [1, 2, 3]
    events = [json.loads(line) for line in files["events.ndjson"].read_text().splitlines()]
    assert [(e["eventType"], e["job"]["name"]) for e in events] == [
        ("START", "quickstart.ipynb"), ("COMPLETE", "quickstart.ipynb"),
        ("START", "ingest.py"), ("COMPLETE", "ingest.py"),
        ("START", "correct.py"), ("COMPLETE", "correct.py"),
    ]
    assert all(schema_errors(e) == [] for e in events)
    analysis, ingest = events[1], events[3]
    assert analysis["job"]["facets"]["jobType"]["jobType"] == "NOTEBOOK"

    def statistics(datasets: list[dict[str, Any]], facet: str) -> dict[str, int]:
        return {d["name"]: d[facet][facet.replace("Facets", "Statistics")]["rowCount"]
                for d in datasets}

    assert statistics(ingest["outputs"], "outputFacets") == {"project": 1, "sample": 3}
    assert statistics(analysis["outputs"], "outputFacets") == {"summary": 1}
    assert statistics(analysis["inputs"], "inputFacets") == {"project": 1, "sample": 3}
    as_json = ProvDocument.deserialize(files["lineage.json"], format="json")
    as_provn = ProvDocument.deserialize(files["lineage.provn"], format="provn")
    generated = {
        tuple(str(v) for _k, v in g.formal_attributes if v is not None)
        for g in as_json.get_records(ProvGeneration)
    }
    ingest_run, analysis_run = (f"ln:run.{e['run']['runId']}" for e in (ingest, analysis))
    assert {(f"ln:record.{t}", ingest_run) for t in ("project.1", "sample.1", "sample.2")} <= generated
    assert (("ln:record.summary.1", analysis_run)) in generated
    assert {str(r.identifier) for r in as_provn.get_records()} >= {"ln:record.sample.1"}


def test_demo_rejects_a_non_demo_database(capsys: pytest.CaptureFixture[str]) -> None:
    """demo only writes DIR/lineage.db on SQLite; other --database values exit 2."""
    code, _out, err = run_cli(capsys, "demo", "--database", "postgresql+psycopg://u@h/d")
    assert code == 2 and "demo always writes a fresh DIR/lineage.db" in err


@pytest.mark.sqlite_only
def test_setup_postgres_sets_up_a_team_database(
    backend: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """setup-postgres --admin-url URL creates the schema, group role and grants (exit 0)."""
    import uuid

    import pg_server
    from psycopg import sql
    from sqlalchemy.engine import make_url

    admin = pg_server.fresh_database("cli")
    group = f"lineage_users_{uuid.uuid4().hex[:8]}"
    try:
        code, out, err = run_cli(capsys, "setup-postgres", "--admin-url", admin, "--group", group)
        assert code == 0, err
        assert out.startswith("set up ") and repr(group) in out
        with pg_server.connect(admin) as conn:
            assert conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (group,)).fetchone()
            assert conn.execute("SELECT to_regclass('lineage_run')").fetchone() != (None,)
    finally:
        pg_server.drop_database(admin)
        server = make_url(admin).set(database="postgres").render_as_string(hide_password=False)
        with pg_server.connect(server) as conn:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(group)))
    code, _out, err = run_cli(
        capsys, "setup-postgres", "--admin-url", "postgresql+psycopg://nobody@127.0.0.1:1/x"
    )
    assert code == 2 and err.count("\n") == 1

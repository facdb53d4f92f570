"""The ``lineage-nb`` command: subcommands, ``--database``, exit codes and one-line errors."""

from __future__ import annotations

import importlib.metadata
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
from openlineage_schema import schema_errors
from paths import TESTS
from prov.model import ProvDocument, ProvGeneration
from sqlalchemy import text

import lineage_nb as ln
from lineage_nb import cli
from lineage_nb.cli import main
from lineage_nb.commands import verbs

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
    """--help works for the command and each subcommand, showing --database where it is used
    (the kernel-config commands refuse it: a kernel connects to $LINEAGE_NB_DATABASE_URL)."""
    code, out, _err = run_cli(capsys, *command, "--help")
    assert code == 0
    assert out.startswith(f"usage: lineage-nb {' '.join(command)}".rstrip())
    assert ("--database URL" in out) is (not command or "kernel-config" not in command[0])


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


def test_show_names_lineage_tables_by_class(
    lineage: Lineage, db: ln.Database, capsys: pytest.CaptureFixture[str]
) -> None:
    """show Run N finds lineage_nb's own table by its class name, like a user model."""
    run = ln.Run.objects().first()
    assert run is not None
    code, out, err = run_cli(capsys, "show", "Run", str(run.id), "--database", url_of(db))
    assert code == 0, err
    assert f"lineage_run {run.id}" in out.splitlines()[0]


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
        assert "analyse.py" in history and (
            "value: 1.0 → 10.0" in history or "value: 1 → 10" in history
        )


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
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env=env,
            timeout=120,
            check=False,
        )

    result = shell("show", "sample", str(lineage.samples[1].id))
    assert result.returncode == 0, result.stderr
    assert "History (2 events):" in result.stdout
    assert "value: 1.0 → 10.0" in result.stdout or "value: 1 → 10" in result.stdout
    models = TESTS / "models.py"
    with_models = shell(
        "show", "Measurement", str(lineage.measurements[0].id), "--models", str(models)
    )
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
        [str(script), "runs", "--bogus"], capture_output=True, text=True, timeout=120, check=False
    )
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1
    ok = subprocess.run(
        [str(script), "--help"], capture_output=True, text=True, timeout=120, check=False
    )
    assert ok.returncode == 0 and "usage: lineage-nb" in ok.stdout


@pytest.mark.kernel
@pytest.mark.slow
def test_quickstart_database_exports_in_every_format(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`demo` builds the quickstart's database; `export` turns it into CSV, Parquet, OpenLineage
    and PROV, each read back and checked by that format's own library."""
    url = f"sqlite:///{tmp_path / 'lineage.db'}"
    code, _out, err = run_cli(capsys, "demo", "--database", url)
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
        ["quickstart.ipynb", "completed", 1],
        ["ingest.py", "completed", 4],
        ["correct.py", "completed", 1],
    ]
    samples = pq.read_table(files["sample.parquet"]).to_pandas()
    assert samples["id"].tolist() == [1, 2, 3]
    events = [json.loads(line) for line in files["events.ndjson"].read_text().splitlines()]
    assert [(e["eventType"], e["job"]["name"]) for e in events] == [
        ("START", "quickstart.ipynb"),
        ("COMPLETE", "quickstart.ipynb"),
        ("START", "ingest.py"),
        ("COMPLETE", "ingest.py"),
        ("START", "correct.py"),
        ("COMPLETE", "correct.py"),
    ]
    assert all(schema_errors(e) == [] for e in events)
    analysis, ingest = events[1], events[3]
    assert analysis["job"]["facets"]["jobType"]["jobType"] == "NOTEBOOK"

    def statistics(datasets: list[dict[str, Any]], facet: str) -> dict[str, int]:
        return {
            d["name"]: d[facet][facet.replace("Facets", "Statistics")]["rowCount"] for d in datasets
        }

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
    assert {
        (f"ln:record.{t}", ingest_run) for t in ("project.1", "sample.1", "sample.2")
    } <= generated
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


# -- --database before and after the subcommand (issue 17 A) ---------------------------------
def both_positions(url: str, *argv: str) -> list[list[str]]:
    """``argv`` with ``--database URL`` before the subcommand (as --help shows) and after it."""
    return [["--database", url, *argv], [*argv, "--database", url]]


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory: the default ./lineage.db does not exist there."""
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    monkeypatch.chdir(folder)
    return folder


def test_database_option_in_both_positions_runs(
    lineage: Lineage, db: ln.Database, elsewhere: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """runs reads the --database given before or after it, not ./lineage.db; after wins."""
    for argv in both_positions(url_of(db), "runs"):
        code, out, err = run_cli(capsys, *argv)
        assert code == 0, (argv, err)
        assert [line.split()[0] for line in out.splitlines()[1:]] == [
            str(lineage.broken.id),
            str(lineage.analyse.id),
            str(lineage.ingest.id),
        ], argv
    missing = f"sqlite:///{elsewhere / 'missing.db'}"
    for argv in both_positions(missing, "runs"):
        code, _out, err = run_cli(capsys, *argv)
        assert code == 2 and f"no database at {elsewhere / 'missing.db'}" in err, argv
    code, out, err = run_cli(capsys, "--database", missing, "runs", "--database", url_of(db))
    assert code == 0 and "analyse.py" in out, err


def test_database_option_in_both_positions_show(
    lineage: Lineage, db: ln.Database, elsewhere: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """show reads the record from the --database given before or after it."""
    sample = lineage.samples[1]
    for argv in both_positions(url_of(db), "show", "sample", str(sample.id)):
        code, out, err = run_cli(capsys, *argv)
        assert code == 0, (argv, err)
        assert out.startswith(f"sample {sample.id}\n") and "History (2 events):" in out
    missing = f"sqlite:///{elsewhere / 'missing.db'}"
    for argv in both_positions(missing, "show", "sample", "1"):
        code, _out, err = run_cli(capsys, *argv)
        assert code == 2 and "missing.db" in err, argv


def test_database_option_in_both_positions_export(
    lineage: Lineage, db: ln.Database, elsewhere: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """export writes the runs of the --database given before or after it."""
    for index in range(2):
        argv = both_positions(url_of(db), "export", "--csv", f"runs{index}.csv")[index]
        code, _out, err = run_cli(capsys, *argv)
        assert code == 0, (argv, err)
        runs = ln.export.read_csv(elsewhere / f"runs{index}.csv")
        assert list(runs["run_id"]) == [lineage.ingest.id, lineage.analyse.id, lineage.broken.id]
    assert not (elsewhere / "lineage.db").exists()


def test_database_option_in_both_positions_verify(
    lineage: Lineage, db: ln.Database, elsewhere: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """verify checks the --database given before or after it: intact (0), then tampered (1)."""
    for argv in both_positions(url_of(db), "verify"):
        code, out, err = run_cli(capsys, *argv)
        assert code == 0 and out.startswith("OK"), (argv, err)
    with db.engine.begin() as connection:
        connection.execute(
            text(
                "UPDATE lineage_record_event SET pk = '77' WHERE id = "
                "(SELECT min(id) FROM lineage_record_event)"
            )
        )
    for argv in both_positions(url_of(db), "verify"):
        code, out, _err = run_cli(capsys, *argv)
        assert code == 1 and out.startswith("BROKEN log: seal"), argv


def test_database_option_in_both_positions_demo(
    elsewhere: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """demo runs in the folder of the --database given before or after it, and refuses
    a database that is not DIR/lineage.db in both positions (nothing runs)."""
    import lineage_nb.demo

    calls: list[list[str]] = []
    monkeypatch.setattr(lineage_nb.demo, "main", lambda argv: calls.append(list(argv)) or 0)
    folder = elsewhere / "demo"
    for argv in both_positions(f"sqlite:///{folder / 'lineage.db'}", "demo", "--timeout", "9"):
        code, _out, err = run_cli(capsys, *argv)
        assert code == 0, (argv, err)
    assert calls == [["--timeout", "9", "--dir", str(folder)]] * 2
    for argv in both_positions("postgresql+psycopg://u@h/d", "demo"):
        code, _out, err = run_cli(capsys, *argv)
        assert code == 2 and "demo always writes a fresh DIR/lineage.db" in err, argv
    assert len(calls) == 2


@pytest.mark.sqlite_only
@pytest.mark.parametrize("command", ["install-kernel-config", "uninstall-kernel-config"])
def test_database_option_in_both_positions_kernel_config(
    backend: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    """The kernel-config commands write no database URL (a kernel connects to
    $LINEAGE_NB_DATABASE_URL): --database in either position is refused, not ignored."""
    config = tmp_path / "profile_default" / "ipython_kernel_config.py"
    if command == "uninstall-kernel-config":
        assert run_cli(capsys, "install-kernel-config", "--ipython-dir", str(tmp_path))[0] == 0
    before = config.read_text() if config.exists() else None
    for argv in both_positions("sqlite:///x.db", command, "--ipython-dir", str(tmp_path)):
        code, out, err = run_cli(capsys, *argv)
        assert code == 2 and out == "", argv
        assert err.count("\n") == 1
        assert f"{command}: --database is not used here" in err
        assert "LINEAGE_NB_DATABASE_URL" in err
    assert (config.read_text() if config.exists() else None) == before


@pytest.mark.sqlite_only
def test_database_option_in_both_positions_setup_postgres(
    backend: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """setup-postgres sets up the database --database names (before or after it) on the
    --admin-url server, not the admin URL's own; a --database on another server is refused."""
    import uuid

    import pg_server
    from psycopg import sql
    from sqlalchemy.engine import make_url

    admin = pg_server.fresh_database("cliadm")
    group = f"lineage_users_{uuid.uuid4().hex[:8]}"
    targets = [make_url(admin).set(database=f"{make_url(admin).database}_{i}") for i in range(2)]
    urls = [t.render_as_string(hide_password=False) for t in targets]

    def has_schema(url: str) -> bool:
        with pg_server.connect(url) as conn:
            return conn.execute("SELECT to_regclass('lineage_run')").fetchone() != (None,)

    try:
        for url, argv in zip(
            urls,
            (
                ["--database", urls[0], "setup-postgres", "--admin-url", admin, "--group", group],
                ["setup-postgres", "--admin-url", admin, "--group", group, "--database", urls[1]],
            ),
            strict=True,
        ):
            code, out, err = run_cli(capsys, *argv)
            assert code == 0, err
            assert f"set up {make_url(url).render_as_string(hide_password=True)}:" in out
            assert has_schema(url), argv
        assert not has_schema(admin)
        other = "postgresql+psycopg://postgres@127.0.0.1:1/other"
        for argv in both_positions(other, "setup-postgres", "--admin-url", admin):
            code, _out, err = run_cli(capsys, *argv)
            assert code == 2 and "is not on the --admin-url server" in err, argv
    finally:
        for url in (*urls, admin):
            pg_server.drop_database(url)
        server = make_url(admin).set(database="postgres").render_as_string(hide_password=False)
        with pg_server.connect(server) as conn:
            for role in (f"{group}_owner", group):
                conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


# -- terminal control characters (issue 17 B) -------------------------------------------------
HOSTILE = "red\x1b[31m\rX\x07\x9b2J"


def assert_no_controls(text: str) -> None:
    """``text`` has no terminal control character but the newlines that end its lines."""
    assert not [c for c in text.replace("\n", "") if ord(c) < 32 or 0x7F <= ord(c) <= 0x9F]


@pytest.fixture
def hostile(db: ln.Database, tmp_path: Path) -> Any:
    """A run of a transform and a sample whose names carry ESC, CR, BEL and a C1 CSI."""
    from models import Project, Sample

    run = ln.track(f"job{HOSTILE}")
    project = Project(name=f"p{HOSTILE}").save()
    sample = Sample(name=f"s{HOSTILE}", value=1.0, project=project).save()
    sample.update(name=f"t{HOSTILE}")
    ln.finish()
    return run, sample


def test_runs_and_show_escape_control_characters(
    hostile: Any, db: ln.Database, capsys: pytest.CaptureFixture[str]
) -> None:
    """Names with ESC/CR/BEL/C1 print as visible escapes in runs and show (fields, history)."""
    _run, sample = hostile
    escaped = "red\\x1b[31m\\rX\\x07\\x9b2J"
    code, out, err = run_cli(capsys, "runs", "--database", url_of(db))
    assert code == 0, err
    assert_no_controls(out)
    assert f"job{escaped}" in out
    code, out, err = run_cli(capsys, "show", "sample", str(sample.id), "--database", url_of(db))
    assert code == 0, err
    assert_no_controls(out)
    assert f"  name           t{escaped}" in out
    created = next(line for line in out.splitlines() if line.startswith("  created_at "))
    assert created.endswith("+00:00")  # the stored UTC instant, aware on SQLite too
    history = out.split("History (2 events):")[1]
    assert f"job{escaped}" in history
    assert f"name: 's{escaped}' → 't{escaped}'" in history


def test_verify_escapes_control_characters(
    db: ln.Database, capsys: pytest.CaptureFixture[str]
) -> None:
    """A broken-chain report naming an event's table and pk prints them escaped."""
    from models import Project

    ln.track("verify-escapes")
    project = Project(name="p").save()
    with db.engine.begin() as connection:  # an old-style hashed event, tampered, not sealed yet
        connection.execute(
            text(
                'UPDATE lineage_record_event SET hash = :h, prev_hash = :h, "table" = :t, '
                "pk = :pk WHERE \"table\" = 'project' AND pk = :id"
            ),
            {
                "h": "0" * 64,
                "t": f"tab{HOSTILE}",
                "pk": f"{project.id}\n OK",
                "id": str(project.id),
            },
        )
    code, out, err = run_cli(capsys, "verify", "--database", url_of(db))
    assert code == 1, err
    assert_no_controls(out)
    assert out.count("\n") == 1
    assert "tab" + "red\\x1b[31m\\rX\\x07\\x9b2J" + f" pk={project.id}\\n OK)" in out


def test_errors_escape_control_characters(
    db: ln.Database, capsys: pytest.CaptureFixture[str]
) -> None:
    """Error lines that name database tables or arguments print controls escaped."""
    with db.engine.begin() as connection:
        connection.execute(text(f'CREATE TABLE "evil{HOSTILE}" (id integer primary key)'))
    code, out, err = run_cli(capsys, "show", "nothing\x1b[2J", "1", "--database", url_of(db))
    assert code == 2 and out == ""
    assert_no_controls(err)
    assert err.count("\n") == 1 and "evilred\\x1b[31m\\rX" in err
    code, _out, err = run_cli(
        capsys, "show", f"evil{HOSTILE}", "5\x1b[2J", "--database", url_of(db)
    )
    assert_no_controls(err)
    assert code == 2 and "\\x1b[2J" in err


def test_printable_escapes_every_control_character() -> None:
    """C0 (tab, CR, LF too), DEL and C1 become visible escapes; other text is unchanged."""
    from lineage_nb.commands.records import printable

    controls = "".join(map(chr, [*range(32), *range(0x7F, 0xA0)]))
    shown = printable(controls)
    assert_no_controls(shown)
    assert shown.startswith("\\x00\\x01") and "\\t\\n\\x0b\\x0c\\r" in shown
    assert shown.endswith("\\x9e\\x9f")
    assert printable("é → ünïcode 名前 \\x1b") == "é → ünïcode 名前 \\x1b"
    assert printable("a\nb\x1b", newlines=True) == "a\nb\\x1b"


# -- PROV formats from the suffix (issue 17 C) ------------------------------------------------
def prov_available(fmt: str) -> bool:
    try:
        ln.export.prov_format("x", fmt)
    except ln.errors.ConfigurationError:
        return False
    return True


def test_prov_format_choices_are_every_format_write_prov_writes() -> None:
    """--prov-format offers exactly the formats write_prov knows (json, provn, xml, rdf, ...)."""
    assert set(verbs.PROV_FORMATS) == set(ln.export.prov.PROV_FORMATS)
    assert {"json", "provn", "xml", "rdf"} <= set(verbs.PROV_FORMATS)
    for suffix in ln.export.prov.PROV_SUFFIXES:
        assert suffix in verbs.PROV_SUFFIXES


@pytest.mark.parametrize("suffix", [".json", ".jsonld", ".provn", ".xml", ".trig", ".ttl"])
def test_export_prov_writes_the_format_of_the_suffix(
    lineage: Lineage,
    db: ln.Database,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    suffix: str,
) -> None:
    """--prov FILE.xml writes PROV-XML (not JSON), .provn PROV-N, ...: each reads back with
    prov's deserializer of that format as the same document; a format whose prov extra is
    missing exits 2 naming the suffix and what to install, writing nothing."""
    name = ln.export.prov.PROV_SUFFIXES[suffix]
    chosen = ln.export.prov.PROV_FORMATS[name]
    path = tmp_path / f"lineage{suffix}"
    code, out, err = run_cli(capsys, "export", "--database", url_of(db), "--prov", str(path))
    if not prov_available(name):
        assert code == 2 and suffix in err and f"pip install 'prov[{chosen.extra}]'" in err
        assert not path.exists()
        return
    assert code == 0, err
    assert f"({name})" in out.splitlines()[-1] or f", {name})" in out
    back = ProvDocument.deserialize(path, format=chosen.serializer, **dict(chosen.options))
    assert back == ln.export.to_prov(ln.runs()[::-1])
    if suffix == ".xml":
        assert path.read_text().startswith("<?xml")


@pytest.mark.parametrize("fmt", ["json", "jsonld", "provn", "xml", "rdf", "turtle"])
def test_export_prov_format_option_accepts_every_format(
    lineage: Lineage,
    db: ln.Database,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    fmt: str,
) -> None:
    """--prov-format FMT wins over the suffix for each format prov writes."""
    chosen = ln.export.prov.PROV_FORMATS[fmt]
    path = tmp_path / "lineage.prov"
    argv = ["export", "--database", url_of(db), "--prov", str(path), "--prov-format", fmt]
    code, _out, err = run_cli(capsys, *argv)
    if not prov_available(fmt):
        assert code == 2 and f"prov[{chosen.extra}]" in err
        return
    assert code == 0, err
    back = ProvDocument.deserialize(path, format=chosen.serializer, **dict(chosen.options))
    assert back == ln.export.to_prov(ln.runs()[::-1])


def test_export_prov_refuses_unknown_suffix_and_lone_options(
    lineage: Lineage, db: ln.Database, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A suffix that names no PROV format, or --prov-format/--record without --prov, exit 2
    before anything is written."""
    url = url_of(db)
    code, _out, err = run_cli(
        capsys,
        "export",
        "--database",
        url,
        "--csv",
        str(tmp_path / "r.csv"),
        "--prov",
        str(tmp_path / "lineage.txt"),
    )
    assert code == 2 and "suffix .txt" in err and ".xml (xml)" in err
    assert not (tmp_path / "r.csv").exists() and not (tmp_path / "lineage.txt").exists()
    for extra in (["--prov-format", "xml"], ["--record", "sample", "1"]):
        code, _out, err = run_cli(
            capsys, "export", "--database", url, "--csv", str(tmp_path / "r.csv"), *extra
        )
        assert code == 2 and f"{extra[0]} applies to the PROV document" in err


# -- timestamps: UTC-aware from every backend (issue 17 D) ------------------------------------
def assert_utc_exports(folder: Path, name: str, columns: set[str]) -> None:
    """CSV (text, dtypes sidecar, read_csv) and Parquet (pandas, pyarrow) of ``name`` hold
    ``columns`` as UTC-aware timestamps, and no naive one."""
    import pyarrow as pa

    csv, parquet = folder / f"{name}.csv", folder / f"{name}.parquet"
    frame = ln.export.read_csv(csv)
    dtypes = json.loads(ln.export.dtypes_path(csv).read_text())
    stamps = {c for c in frame.columns if pd.api.types.is_datetime64_any_dtype(frame[c])}
    assert stamps == columns, name
    for column in columns:
        assert str(frame[column].dt.tz) == "UTC", (name, column)
        assert dtypes[column].endswith(", UTC]"), (name, column, dtypes[column])
    plain = pd.read_csv(csv, dtype=str)
    for column in columns:
        assert plain[column].dropna().str.endswith("+00:00").all(), (name, column)
    assert plain[sorted(columns)].notna().any().any(), name
    schema = pq.read_schema(parquet)
    for column in columns:
        kind = schema.field(column).type
        assert pa.types.is_timestamp(kind) and kind.tz == "UTC", (name, column, kind)
    back = pd.read_parquet(parquet)
    assert all(str(back[c].dt.tz) == "UTC" for c in columns)


VIEWS = {
    "runs": {"started_at", "finished_at"},
    "events": {"at"},
    "inputs": {"at"},
    "sample": {"created_at", "updated_at"},
    "lineage_run": {"started_at", "finished_at", "last_seen_at"},
}


def test_cli_exports_timestamps_as_utc(
    lineage: Lineage, db: ln.Database, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """CSV and Parquet from `lineage-nb export` keep every timestamp UTC-aware, on SQLite as
    on PostgreSQL, for the runs, events and inputs views and for tables."""
    for view, columns in VIEWS.items():
        run = ["--run", str(lineage.analyse.id)] if view in ("events", "inputs") else []
        code, _out, err = run_cli(
            capsys,
            "export",
            "--database",
            url_of(db),
            "--view",
            view,
            *run,
            "--csv",
            str(tmp_path / f"{view}.csv"),
            "--parquet",
            str(tmp_path / f"{view}.parquet"),
        )
        assert code == 0, err
        assert_utc_exports(tmp_path, view, columns)


def test_cli_exports_timestamps_as_utc_without_models(
    lineage: Lineage, db: ln.Database, tmp_path: Path
) -> None:
    """From a shell where the models are unknown (reflection), the lineage stamp columns of a
    user table and the event times are UTC-aware too."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    for view in ("sample", "events"):
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "lineage_nb",
                "export",
                "--database",
                url_of(db),
                "--view",
                view,
                "--run",
                str(lineage.analyse.id),
                "--csv",
                f"{view}.csv",
                "--parquet",
                f"{view}.parquet",
            ],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env=env,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert_utc_exports(tmp_path, view, VIEWS[view])


def test_anchor_then_verify_against_it(
    db: ln.Database, db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`anchor --out FILE` keeps the log's head; `verify --anchor FILE` passes while the log only
    grows and fails (exit 1) once sealed events were rewritten and their seals recomputed."""
    from models import Project

    from lineage_nb.lineage.verify import seal

    ln.track(Path(__file__))
    Project(name="anchored").save()
    ln.finish()
    head = tmp_path / "head.json"
    code, out, err = run_cli(capsys, "--database", db_url, "anchor", "--out", str(head))
    assert code == 0 and "written to" in out, err
    assert json.loads(head.read_text())["events"] >= 1
    Project(name="later").save()
    code, out, _err = run_cli(capsys, "verify", "--database", db_url, "--anchor", str(head))
    assert code == 0 and out.startswith("OK"), out
    with db.engine.begin() as connection:
        connection.execute(text("UPDATE lineage_record_event SET cell = 7"))
        connection.execute(text("DELETE FROM lineage_seal"))
    seal(db)
    code, out, _err = run_cli(capsys, "verify", "--database", db_url)
    assert code == 0  # the recomputed seals hold...
    code, out, _err = run_cli(capsys, "verify", "--database", db_url, "--anchor", str(head))
    assert code == 1 and "no longer extends the anchor" in out  # ...the anchor does not
    head.write_text("[]")
    code, _out, err = run_cli(capsys, "verify", "--database", db_url, "--anchor", str(head))
    assert code == 2 and "holds no anchor" in err


def test_version_prints_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    """`lineage-nb --version` prints the distribution's version (package metadata), exit 0."""
    code, out, err = run_cli(capsys, "--version")
    assert (code, out, err) == (0, f"lineage-nb {importlib.metadata.version('lineage_nb')}\n", "")
    assert out.split()[1] == ln.__version__


def test_library_usage_error_exits_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bad argument the library refuses (ln.errors.UsageError) ends like the CLI's own bad
    arguments: exit code 2 and one 'lineage-nb: error:' line with the message and hint."""

    from dataclasses import replace

    from lineage_nb.cli.commands import TABLE

    def refuse(_context: object, _args: object) -> Any:
        raise ln.errors.UsageError("runs: no such option.", hint="Leave it out.")

    monkeypatch.setitem(TABLE, "runs", replace(TABLE["runs"], run=refuse))
    code, out, err = run_cli(capsys, "runs", "--database", "sqlite://")
    assert (code, out, err) == (2, "", "lineage-nb: error: runs: no such option. Leave it out.\n")

"""The command table: every verb ``lineage-nb`` and ``%lineage`` share is one entry, built into
both parsers, and gives the same text (or the frame whose text the command line prints)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest
from export_data import Lineage, build_lineage
from sqlalchemy import text

import lineage_nb as ln
from lineage_nb.cli.commands import TABLE as CLI_TABLE
from lineage_nb.cli.main import build_parser, main
from lineage_nb.commands import SHARED, Command, Output
from lineage_nb.commands.records import changes_text, table_text
from lineage_nb.errors import NoRunError
from lineage_nb.ipython import magics
from lineage_nb.ipython.magics import HELP, lineage_magic


def url_of(db: ln.Database) -> str:
    return db.url.render_as_string(hide_password=False)


@pytest.fixture
def lineage(db: ln.Database, tmp_path: Path) -> Lineage:
    return build_lineage(tmp_path)


def cli(capsys: pytest.CaptureFixture[str], db: ln.Database, *argv: str) -> tuple[int, str, str]:
    code = main([*argv, "--database", url_of(db)])
    out, err = capsys.readouterr()
    return code, out, err


def magic(capsys: pytest.CaptureFixture[str], line: str) -> tuple[Any, str, str]:
    value = lineage_magic(line)
    out, err = capsys.readouterr()
    return value, out, err


# -- one table ----------------------------------------------------------------------------------
def test_shared_verbs_are_the_same_entries_in_both_front_ends() -> None:
    """runs, show, export, verify and anchor are the very same Command objects in both tables."""
    assert [c.name for c in SHARED] == ["runs", "show", "export", "verify", "anchor"]
    for command in SHARED:
        assert CLI_TABLE[command.name] is command
        assert magics.TABLE[command.name] is command
    only_cli = set(CLI_TABLE) - set(magics.TABLE)
    only_magic = set(magics.TABLE) - set(CLI_TABLE)
    assert only_cli == {
        "demo",
        "install-kernel-config",
        "uninstall-kernel-config",
        "setup-postgres",
    }
    assert only_magic == {"status", "track", "finish", "help"}


def _options(parser: argparse.ArgumentParser) -> dict[str, Any]:
    return {
        "/".join(action.option_strings) or action.dest: (action.default, action.choices)
        for action in parser._actions
        if action.dest not in ("help", "database")
    }


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_both_parsers_take_the_tables_arguments() -> None:
    """Each shared verb has the same arguments, defaults and choices on both front ends (the
    command line adds only --database)."""
    cli_verbs = _subparsers(build_parser())
    magic_verbs = magics._parsers()[1]
    for command in SHARED:
        assert _options(cli_verbs[command.name]) == _options(magic_verbs[command.name])
        assert len(_options(cli_verbs[command.name])) == len(command.arguments)


def test_help_lists_every_verb_of_the_magic(capsys: pytest.CaptureFixture[str]) -> None:
    for name, command in magics.TABLE.items():
        assert f"%lineage {name}" in HELP and command.help in HELP
    _value, out, _err = magic(capsys, "help export")
    assert "--prov-format {json,jsonld,provn,xml,rdf,turtle}" in out and "--no-progress" in out
    _value, out, _err = magic(capsys, "runs --help")
    assert out.startswith("usage: %lineage runs")
    _value, out, err = magic(capsys, "help nothing")
    assert out == "" and err.startswith("%lineage help: no verb 'nothing': status, runs, show")


def test_a_table_entry_runs_in_any_context() -> None:
    """A verb is a plain function of (context, args): no front end needed."""

    class Shell:
        prog, rich = "shell", False

        def database(self) -> ln.Database:
            raise AssertionError("not needed")

    def hello(context: Any, args: argparse.Namespace) -> Output:
        return Output(f"hello {args.who} from {context.prog}")

    command = Command("hello", "say hello", hello)
    parser = command.add_arguments(argparse.ArgumentParser())
    parser.add_argument("who")
    assert command.run(Shell(), parser.parse_args(["you"])).text == "hello you from shell"


# -- the same text from both front ends ------------------------------------------------------------
def test_runs_gives_the_same_text(
    lineage: Lineage, db: ln.Database, capsys: pytest.CaptureFixture[str]
) -> None:
    """The magic returns the frame the command line prints as a table."""
    for argv in (["runs"], ["runs", "--uid", "--limit", "2"], ["runs", "--status", "errored"]):
        code, out, _err = cli(capsys, db, *argv)
        frame, magic_out, magic_err = magic(capsys, " ".join(argv))
        assert code == 0 and (magic_out, magic_err) == ("", "")
        assert out == table_text(frame) + "\n"
    code, out, _err = cli(capsys, db, "runs", "--user", "nobody")
    value, magic_out, _err = magic(capsys, "runs --user nobody")
    assert value is None and out == magic_out == "No runs match.\n"


def test_show_gives_the_same_text(
    lineage: Lineage, db: ln.Database, capsys: pytest.CaptureFixture[str]
) -> None:
    """A table no imported model maps prints the same text; a model's record shows its card and
    the history the command line prints."""
    with db.engine.begin() as connection:
        connection.execute(text("CREATE TABLE plain (id integer primary key, label text)"))
        connection.execute(text("INSERT INTO plain (id, label) VALUES (4, 'four')"))
    code, out, _err = cli(capsys, db, "show", "plain", "4")
    value, magic_out, magic_err = magic(capsys, "show plain 4")
    assert code == 0 and value is None and magic_err == ""
    assert out == magic_out and "  label  four" in out and "History (0 events):" in out

    sample = lineage.samples[1]
    code, out, _err = cli(capsys, db, "show", "Sample", str(sample.id))
    history, magic_out, _err = magic(capsys, f"show Sample {sample.id}")
    assert code == 0 and f"Sample(id={sample.id}" in magic_out  # the record, displayed
    shown = history.assign(changes=history["changes"].map(changes_text))
    assert out.endswith(f"History (2 events):\n{table_text(shown)}\n")


def test_export_verify_and_anchor_give_the_same_text(
    lineage: Lineage, db: ln.Database, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    csv, head = tmp_path / "events.csv", tmp_path / "head.json"
    outputs = []
    for line in (
        f"export --run {lineage.analyse.id} --csv {csv} --openlineage {tmp_path / 'o.ndjson'}",
        f"export --view sample --parquet {tmp_path / 'samples.parquet'}",
        "verify",
        f"anchor --out {head}",
        f"verify --anchor {head}",
    ):
        code, out, err = cli(capsys, db, *line.split())
        value, magic_out, magic_err = magic(capsys, line)
        assert (code, err, magic_err, value) == (0, "", "", None), line
        assert out == magic_out and out.strip(), line
        outputs.append(out)
    assert outputs[0].startswith(f"wrote 4 rows to {csv}\nwrote 2 OpenLineage events of 1 runs")
    assert outputs[2].startswith("OK") and outputs[4].startswith("OK")


def test_errors_read_the_same(
    lineage: Lineage, db: ln.Database, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same message, after 'lineage-nb: [error: ]' or '%lineage VERB: '."""
    for line, cli_prefix in (
        ("show nothing 1", "lineage-nb: error: "),
        ("show sample one", "lineage-nb: error: "),
        ("show sample 999", "lineage-nb: "),
        ("export --run 999 --csv x.csv", "lineage-nb: error: "),
    ):
        _code, _out, err = cli(capsys, db, *line.split())
        _value, _magic_out, magic_err = magic(capsys, line)
        verb = line.split()[0]
        assert err.startswith(cli_prefix) and magic_err.startswith(f"%lineage {verb}: "), line
        message = err.removeprefix(cli_prefix).removeprefix(f"{verb}: ")
        if line.startswith("export"):  # each names its own command in the hint
            message = message.replace("`lineage-nb runs`", "`%lineage runs`")
        assert magic_err.removeprefix(f"%lineage {verb}: ") == message, line
    _code, _out, err = cli(capsys, db, "export")
    _value, _out, magic_err = magic(capsys, "export")
    assert (
        err
        == "lineage-nb: error: export: give at least one of --csv, --parquet, --openlineage, --prov\n"
    )
    assert (
        magic_err
        == "%lineage export: give at least one of --csv, --parquet, --openlineage, --prov\n"
    )


# -- the magic's short form of export -------------------------------------------------------------
def test_short_export_is_the_shared_verb_for_this_run(
    db: ln.Database, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from models import Project

    with pytest.raises(NoRunError):
        magics._long_export(["csv", "x.csv"])
    run = ln.track("short-export")
    Project(name="p").save()
    assert magics._long_export(["csv", "x.csv"]) == [
        "export",
        "--csv",
        "x.csv",
        "--run",
        str(run.id),
    ]
    assert magics._long_export(["prov", "x.json", "--run", str(run.id)])[-2:] == [
        "--run",
        str(run.id),
    ]
    _value, _out, err = magic(capsys, "export prov x.json --run 999")
    assert err.startswith("%lineage export: Run with primary key 999 does not exist.")
    assert magics._long_export(["csv", "p.csv", "--model", "Project"]) == [
        "export",
        "--csv",
        "p.csv",
        "--view",
        "Project",
    ]
    _value, out, err = magic(capsys, f"export csv {tmp_path / 'p.csv'} --model Project")
    assert err == "" and out == f"wrote 1 rows to {tmp_path / 'p.csv'}\n"
    _value, out, err = magic(capsys, f"export csv {tmp_path / 'e.csv'}")
    assert err == "" and out == f"wrote 1 rows to {tmp_path / 'e.csv'}\n"
    _value, out, err = magic(capsys, "export prov x.json --model Project")
    assert err == "%lineage export: --model does not apply to prov (it exports a run)\n"
    ln.finish()

"""Which notebook a kernel runs: every detection mechanism, versions by code-cell hash, unnamed."""

from __future__ import annotations

import http.server
import json
import os
import shutil
import socket
import threading
from pathlib import Path
from typing import ClassVar

import nbformat
import pytest
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_notebook
from nbkernel import FILES, TESTS, NotebookKernel, cell_errors, cell_text
from sqlalchemy import select

import lineage_nb as ln
from lineage_nb.ipython.notebook import (
    SERVER_SESSION,
    UNNAMED_KEY,
    NotebookLocation,
    find_notebook,
    identify,
    server_session_path,
)
from lineage_nb.lineage.identity import notebook_code


def _touch(path: Path) -> Path:
    shutil.copyfile(FILES / "identity.ipynb", path)
    return path


def test_find_notebook_priority_of_mechanisms(tmp_path: Path) -> None:
    """Explicit beats VS Code beats __session__ beats JPY_SESSION_NAME beats the working dir."""
    names = ["explicit", "vsc", "session", "env", "cwd"]
    paths = {name: _touch(tmp_path / f"{name}.ipynb") for name in names}
    ns = {"__vsc_ipynb_file__": str(paths["vsc"]), "__session__": str(paths["session"])}
    env = {"JPY_SESSION_NAME": str(paths["env"])}
    assert find_notebook(ns, env, tmp_path, explicit=paths["explicit"]).path == paths["explicit"]
    found = find_notebook(ns, env, tmp_path)
    assert (found.path, found.mechanism) == (paths["vsc"], "VS Code (__vsc_ipynb_file__)")
    del ns["__vsc_ipynb_file__"]
    assert find_notebook(ns, env, tmp_path).path == paths["session"]
    assert find_notebook({}, env, tmp_path).path == paths["env"]
    for name in ["explicit", "vsc", "session", "env"]:
        paths[name].unlink()
    found = find_notebook({}, {}, tmp_path)
    assert (found.path, found.mechanism) == (
        paths["cwd"],
        "the only notebook in the working directory",
    )


def test_find_notebook_none_when_ambiguous_or_missing(tmp_path: Path) -> None:
    """Two notebooks in the directory, stale session paths and non-notebooks find nothing."""
    _touch(tmp_path / "a.ipynb")
    _touch(tmp_path / "b.ipynb")
    (tmp_path / "script.py").write_text("x = 1\n")
    ns = {"__session__": str(tmp_path / "gone.ipynb"), "__vsc_ipynb_file__": ""}
    env = {"JPY_SESSION_NAME": str(tmp_path / "script.py")}
    assert find_notebook(ns, env, tmp_path) is None


def test_find_notebook_resolves_server_relative_session(tmp_path: Path) -> None:
    """A server-relative ``__session__`` (``work/x.ipynb``) resolves in the kernel's folder."""
    _touch(tmp_path / "x.ipynb")
    _touch(tmp_path / "y.ipynb")
    found = find_notebook({"__session__": "work/x.ipynb"}, {}, tmp_path)
    assert found is not None and found.path == (tmp_path / "x.ipynb").resolve()
    rel = find_notebook({}, {"JPY_SESSION_NAME": "y.ipynb"}, tmp_path)
    assert rel is not None and rel.path == (tmp_path / "y.ipynb").resolve()


def _transforms(db_url: str) -> list[tuple[str, str, str | None]]:
    db = ln.connect(db_url, create=False)
    try:
        with db.session() as session:
            rows = session.execute(
                select(ln.Transform.key, ln.Transform.version, ln.Transform.source_code).order_by(
                    ln.Transform.id
                )
            ).all()
            return [tuple(r) for r in rows]
    finally:
        db.close()


def _run_keys(db_url: str) -> list[tuple[str, str, str]]:
    db = ln.connect(db_url, create=False)
    try:
        with db.session() as session:
            runs = session.execute(select(ln.Run).order_by(ln.Run.id)).unique().scalars()
            return [(r.transform.key, r.transform.version, r.status) for r in runs]
    finally:
        db.close()


@pytest.mark.kernel
def test_notebook_version_follows_code_cells(db_url: str, tmp_path: Path) -> None:
    """Outputs, metadata and markdown keep the version; editing code makes a new one. A run of
    the file top to bottom keeps its file's version at the end (the cell run before %load_ext
    is part of the code that ran)."""
    notebook = _touch(tmp_path / "identity.ipynb")
    with NotebookKernel(tmp_path, db_url, notebook=notebook) as kernel:
        cells = kernel.run_file(notebook)
        assert not any(cell_errors(c) for c in cells)
        assert "identity.ipynb v1 (found via Jupyter session (__session__))" in cell_text(
            cells[1], "stdout"
        )
    document = nbformat.read(str(notebook), as_version=4)
    document.cells[1].outputs = [nbformat.v4.new_output("stream", text="2\n")]
    document.cells[1].execution_count = 7
    document.metadata["lineage_test"] = {"edited": True}
    document.cells[0].source = "# A notebook whose title changed"
    nbformat.write(document, str(notebook))
    with NotebookKernel(tmp_path, db_url, notebook=notebook) as kernel:
        same = kernel.run_file(notebook)
        assert "identity.ipynb v1" in cell_text(same[1], "stdout"), cell_text(same[1])
    document.cells[3].source = "print(x + 2)"
    nbformat.write(document, str(notebook))
    with NotebookKernel(tmp_path, db_url, notebook=notebook) as kernel:
        edited = kernel.run_file(notebook)
        assert "identity.ipynb v2" in cell_text(edited[1], "stdout"), cell_text(edited[1])
    transforms = _transforms(db_url)
    code_v1 = "x = 1\n\n# %% ----\n\n%load_ext lineage_nb\n\n# %% ----\n\nprint(x + 1)"
    assert transforms == [
        ("identity.ipynb", "1", code_v1),
        ("identity.ipynb", "2", code_v1.replace("x + 1", "x + 2")),
    ]
    assert _run_keys(db_url) == [
        ("identity.ipynb", "1", "completed"),
        ("identity.ipynb", "1", "completed"),
        ("identity.ipynb", "2", "completed"),
    ]


@pytest.mark.kernel
def test_notebook_unnamed_then_found_by_each_mechanism(db_url: str, tmp_path: Path) -> None:
    """No path: one clear message and an unnamed run; then cwd, VS Code and --notebook work."""
    empty = tmp_path / "empty"
    empty.mkdir()
    (tmp_path / "only").mkdir()
    _touch(tmp_path / "only" / "lonely.ipynb")
    vsc = _touch(tmp_path / "vscode.ipynb")
    explicit = _touch(tmp_path / "explicit.ipynb")
    with NotebookKernel(empty, db_url) as kernel:
        load = kernel.run("%load_ext lineage_nb")
        warning = cell_text(load, "stderr")
        assert "could not find this notebook's file" in warning
        assert len(warning.strip().splitlines()) == 1
        assert f"tracking run 1 of {UNNAMED_KEY} v1" in cell_text(load, "stdout")
        again = kernel.run("%lineage track")
        assert cell_text(again, "stderr") == ""  # said once only
        assert f"{UNNAMED_KEY} v1" in cell_text(again, "stdout")
        kernel.run(f"import os\nos.chdir({str(tmp_path / 'only')!r})")
        cwd = kernel.run("%lineage track")
        assert "lonely.ipynb v1 (found via the only notebook in the working directory)" in (
            cell_text(cwd, "stdout")
        ), cell_text(cwd)
        kernel.run(f"__vsc_ipynb_file__ = {str(vsc)!r}")
        code = kernel.run("%lineage track")
        assert "vscode.ipynb v1 (found via VS Code (__vsc_ipynb_file__))" in cell_text(code)
        given = kernel.run(f"%lineage track --notebook {explicit}")
        assert f"{explicit} v1 (found via given with --notebook)" in cell_text(given)
        missing = kernel.run("%lineage track --notebook nowhere.ipynb")
        assert cell_errors(missing) == []
        assert cell_text(missing, "stderr").strip() == (
            "%lineage track: No notebook file at 'nowhere.ipynb'. "
            "Pass the path of an existing .ipynb file to --notebook."
        )
    keys = _run_keys(db_url)
    lonely = tmp_path / "only" / "lonely.ipynb"  # outside the folder the extension loaded in
    assert [k for k, _v, _s in keys] == [
        UNNAMED_KEY,
        UNNAMED_KEY,
        str(lonely),
        str(vsc),
        str(explicit),
    ]
    assert {s for _k, _v, s in keys} == {"completed"}
    assert _transforms(db_url)[0] == (UNNAMED_KEY, "1", None)


def _execute_headless(document: nbformat.NotebookNode, workdir: Path, db_url: str) -> None:
    """Execute ``document`` with nbclient as ``jupyter nbconvert --execute`` does, in ``workdir``."""
    env = {k: v for k, v in os.environ.items() if k != "JPY_SESSION_NAME"}
    env["LINEAGE_NB_DATABASE_URL"] = db_url
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")]))
    NotebookClient(
        document,
        timeout=60,
        kernel_name="python3",
        resources={"metadata": {"path": str(workdir)}},
        extra_arguments=["--IPKernelApp.log_level=ERROR"],
    ).execute(env=env)


@pytest.mark.kernel
def test_notebook_version_is_what_ran_not_the_saved_file(db_url: str, tmp_path: Path) -> None:
    """A notebook whose cells were edited and not saved: the run's version is the code that
    executed (the file on disk is what %load_ext saw); the saved code run later is another."""
    saved = ["x = 1", "%load_ext lineage_nb", "print(x + 1)"]
    unsaved = ["x = 1", "%load_ext lineage_nb", "print(x * 10)"]
    notebook = tmp_path / "edited.ipynb"
    nbformat.write(new_notebook(cells=[new_code_cell(c) for c in saved]), str(notebook))
    in_editor = new_notebook(cells=[new_code_cell(c) for c in unsaved])
    _execute_headless(in_editor, tmp_path, db_url)
    assert "edited.ipynb v1" in cell_text(in_editor.cells[1], "stdout")  # the file, at first
    assert cell_text(in_editor.cells[2], "stdout") == "10\n"
    _execute_headless(nbformat.read(str(notebook), as_version=4), tmp_path, db_url)
    assert _transforms(db_url) == [
        ("edited.ipynb", "1", notebook_code(unsaved)[0]),
        ("edited.ipynb", "2", notebook_code(saved)[0]),
    ]
    assert _run_keys(db_url) == [
        ("edited.ipynb", "1", "completed"),
        ("edited.ipynb", "2", "completed"),
    ]


def _fresh_notebook(path: Path, cells: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(new_notebook(cells=[new_code_cell(c) for c in cells]), str(path))
    return path


def test_notebooks_keyed_by_project_path_and_kept_across_renames(
    db: ln.Database, tmp_path: Path
) -> None:
    """Same file name in two folders of a project: two notebooks. A renamed notebook (its
    metadata id kept) stays the same transform, the run records the new path; new code under
    the new name is the next version of the same notebook."""
    project = tmp_path / "project"
    (project / ".git").mkdir(parents=True)
    load_dir = project / "teamA"  # the extension loaded in a subfolder: the git root still rules
    a = _fresh_notebook(project / "teamA" / "analysis.ipynb", ["x = 1"])
    b = _fresh_notebook(project / "teamB" / "analysis.ipynb", ["x = 1"])
    ident_a = identify(NotebookLocation(a, "test"), load_dir)
    ident_b = identify(NotebookLocation(b, "test"), load_dir)
    assert (ident_a.key, ident_b.key) == ("teamA/analysis.ipynb", "teamB/analysis.ipynb")
    stored_id = nbformat.read(str(a), as_version=4).metadata["lineage_nb"]["id"]
    assert ident_a.notebook_id == stored_id and ident_b.notebook_id not in (None, stored_id)
    run_a = ln.track(ident_a)
    ln.finish()
    run_b = ln.track(ident_b)
    ln.finish()
    assert run_a.transform_id != run_b.transform_id
    renamed = project / "teamA" / "renamed" / "final.ipynb"
    renamed.parent.mkdir()
    a.rename(renamed)
    moved = identify(NotebookLocation(renamed, "test"), load_dir)
    assert (moved.key, moved.notebook_id) == ("teamA/renamed/final.ipynb", stored_id)
    after = ln.track(moved)
    ln.finish()
    assert after.transform_id == run_a.transform_id
    assert ln.Run.get(after.id).source_path == "teamA/renamed/final.ipynb"
    assert ln.Run.get(run_a.id).source_path == "teamA/analysis.ipynb"
    document = nbformat.read(str(renamed), as_version=4)
    document.cells[0].source = "x = 2"
    nbformat.write(document, str(renamed))
    edited = ln.track(identify(NotebookLocation(renamed, "test"), load_dir))
    ln.finish()
    assert (edited.transform.key, edited.transform.version, edited.transform.notebook_id) == (
        "teamA/analysis.ipynb",
        "2",
        stored_id,
    )
    outside = _fresh_notebook(tmp_path / "elsewhere" / "loose.ipynb", ["pass"])
    no_git = identify(NotebookLocation(outside, "test"), tmp_path / "elsewhere")
    assert no_git.key == "loose.ipynb"  # no git work tree: relative to where it loaded


class _Sessions(http.server.BaseHTTPRequestHandler):
    """A Jupyter server's ``GET /api/sessions``: answers only with the right token."""

    sessions: ClassVar[list[dict[str, object]]] = []

    def do_GET(self) -> None:
        if self.path != "/api/sessions" or self.headers.get("Authorization") != "token s3cret":
            self.send_response(403)
            self.end_headers()
            return
        body = json.dumps(self.sessions).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        pass


def test_server_session_lookup_finds_the_current_path(tmp_path: Path) -> None:
    """The path of this kernel's session is asked of each running server listed in the runtime
    directory (with its token); stale server files are skipped; what was tried is said."""
    _Sessions.sessions = [
        {"id": "s1", "path": "other.ipynb", "kernel": {"id": "someone-else"}},
        {"id": "s2", "path": "work/renamed.ipynb", "kernel": {"id": "kid-1"}},
    ]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Sessions)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    with socket.socket() as probe:  # a port nothing listens on: a server that is gone
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    (runtime / "jpserver-1.json").write_text(
        json.dumps({"url": f"http://127.0.0.1:{dead_port}/", "token": "x", "root_dir": "/nowhere"})
    )
    (runtime / "jpserver-2.json").write_text(
        json.dumps(
            {
                "url": f"http://127.0.0.1:{server.server_port}/",
                "token": "s3cret",
                "root_dir": str(tmp_path / "root"),
            }
        )
    )
    (runtime / "jpserver-3.json").write_text("not json")
    try:
        found, how = server_session_path("kid-1", runtime)
        assert found == tmp_path / "root" / "work" / "renamed.ipynb"
        assert how == f"found by http://127.0.0.1:{server.server_port}/api/sessions"
        missing, tried = server_session_path("kid-2", runtime)
        assert missing is None
        assert tried == f"asked 2 running Jupyter server(s) listed in {runtime} for kernel kid-2"
    finally:
        server.shutdown()
        server.server_close()
    target = _touch(tmp_path / "renamed.ipynb")
    old = _touch(tmp_path / "old-name.ipynb")
    location = find_notebook({"__session__": str(old)}, {}, tmp_path, server_session=target)
    assert location is not None
    assert (location.path, location.mechanism) == (target, SERVER_SESSION)


@pytest.mark.kernel
def test_executed_notebooks_in_two_folders_and_renamed(db_url: str, tmp_path: Path) -> None:
    """Real kernels (nbclient, as nbconvert runs them): `analysis.ipynb` in teamA/ and teamB/ of
    one project are two notebooks; teamA's, renamed on disk, runs again as the same notebook
    (its id was written into its metadata by the first run) and the run records the new path."""
    project = tmp_path / "project"
    (project / ".git").mkdir(parents=True)
    cells = ["%load_ext lineage_nb", "x = 1"]
    team_a = _fresh_notebook(project / "teamA" / "analysis.ipynb", cells)
    team_b = _fresh_notebook(project / "teamB" / "analysis.ipynb", cells)
    for notebook in (team_a, team_b):
        _execute_headless(nbformat.read(str(notebook), as_version=4), notebook.parent, db_url)
    renamed = team_a.with_name("renamed.ipynb")
    team_a.rename(renamed)
    assert nbformat.read(str(renamed), as_version=4).metadata["lineage_nb"]["id"]
    _execute_headless(nbformat.read(str(renamed), as_version=4), renamed.parent, db_url)
    assert [key for key, _v, _s in _run_keys(db_url)] == [
        "teamA/analysis.ipynb",
        "teamB/analysis.ipynb",
        "teamA/analysis.ipynb",
    ]
    assert [key for key, _v, _c in _transforms(db_url)] == [
        "teamA/analysis.ipynb",
        "teamB/analysis.ipynb",
    ]
    db = ln.connect(db_url, create=False)
    try:
        with db.session() as session:
            paths = session.execute(select(ln.Run.source_path).order_by(ln.Run.id)).scalars().all()
    finally:
        db.close()
    assert paths == ["teamA/analysis.ipynb", "teamB/analysis.ipynb", "teamA/renamed.ipynb"]

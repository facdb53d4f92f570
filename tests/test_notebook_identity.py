"""Which notebook a kernel runs: every detection mechanism, versions by code-cell hash, unnamed."""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import pytest
from nbkernel import FILES, NotebookKernel, cell_errors, cell_text
from sqlalchemy import select

import lineage_nb as ln
from lineage_nb.ipython.notebook import UNNAMED_KEY, find_notebook


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
        paths["cwd"], "the only notebook in the working directory"
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
                select(ln.Transform.key, ln.Transform.version, ln.Transform.source_code)
                .order_by(ln.Transform.id)
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
    """Outputs, metadata and markdown keep the version; editing code makes a new one."""
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
        same = kernel.run("%lineage track")
        assert "identity.ipynb v1" in cell_text(same, "stdout"), cell_text(same)
        document.cells[3].source = "print(x + 2)"
        nbformat.write(document, str(notebook))
        edited = kernel.run("%lineage track")
        assert "identity.ipynb v2" in cell_text(edited, "stdout"), cell_text(edited)
    with NotebookKernel(tmp_path, db_url, notebook=notebook) as kernel:
        rerun = kernel.run_file(notebook)
        assert "identity.ipynb v2" in cell_text(rerun[1], "stdout")
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
    assert [k for k, _v, _s in keys] == [
        UNNAMED_KEY, UNNAMED_KEY, "lonely.ipynb", str(vsc), str(explicit)
    ]
    assert {s for _k, _v, s in keys} == {"completed"}
    assert _transforms(db_url)[0] == (UNNAMED_KEY, "1", None)

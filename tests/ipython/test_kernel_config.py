"""``install-kernel-config``: idempotent, keeps the user's config, auto-loads in a real kernel."""

from __future__ import annotations

from pathlib import Path

import pytest
from nbkernel import NotebookKernel, cell_errors, cell_text

from lineage_nb.ipython.kernel_config import BEGIN, config_path, install, uninstall

USER_CONFIG = """\
c = get_config()  # noqa
c.InteractiveShellApp.exec_lines = ["USER_MARK = 42"]
c.InteractiveShellApp.extensions = ["autoreload"]
"""


def test_install_is_idempotent_and_uninstall_restores(tmp_path: Path) -> None:
    """Install twice adds one block; uninstall gives back the user's file byte for byte."""
    path = config_path("default", ipython_dir=tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text(USER_CONFIG)
    first = install(ipython_dir=tmp_path)
    second = install(ipython_dir=tmp_path)
    assert (first.action, second.action, first.path) == ("installed", "unchanged", path)
    text = path.read_text()
    assert text.startswith(USER_CONFIG) and text.count(BEGIN) == 1
    compile(text, str(path), "exec")
    removed = uninstall(ipython_dir=tmp_path)
    assert (removed.action, path.read_text()) == ("removed", USER_CONFIG)
    assert uninstall(ipython_dir=tmp_path).action == "not-installed"
    assert str(removed) == f"removed the lineage_nb auto-load block from {path}"


def test_install_creates_and_uninstall_deletes_own_file(tmp_path: Path) -> None:
    """Without a config file, install creates one and uninstall removes it again."""
    change = install("lab", ipython_dir=tmp_path)
    assert change.action == "installed"
    assert change.path == tmp_path / "profile_lab" / "ipython_kernel_config.py"
    assert uninstall("lab", ipython_dir=tmp_path).action == "removed"
    assert not change.path.exists()


def test_install_updates_a_stale_block(tmp_path: Path) -> None:
    """An older managed block is replaced in place; text around it stays."""
    path = config_path(ipython_dir=tmp_path)
    path.parent.mkdir(parents=True)
    stale = f"a = 1\n\n{BEGIN}\nold = True\n# <<< lineage_nb auto-load <<<\nb = 2\n"
    path.write_text(stale)
    assert install(ipython_dir=tmp_path).action == "updated"
    text = path.read_text()
    assert text.startswith("a = 1\n") and text.rstrip().endswith("b = 2")
    assert "old = True" not in text and text.count(BEGIN) == 1
    assert install(ipython_dir=tmp_path).action == "unchanged"


@pytest.mark.kernel
def test_kernel_config_autoloads_in_a_real_kernel(db_url: str, tmp_path: Path) -> None:
    """After install, a kernel tracks without %load_ext and keeps the user's own config."""
    ipython_dir = tmp_path / "ipython"
    path = config_path(ipython_dir=ipython_dir)
    path.parent.mkdir(parents=True)
    path.write_text(USER_CONFIG)
    install(ipython_dir=ipython_dir)
    env = {"IPYTHONDIR": str(ipython_dir)}
    with NotebookKernel(tmp_path, db_url, env=env) as kernel:
        cell = kernel.run(
            "import lineage_nb as ln\n"
            "loaded = get_ipython().extension_manager.loaded\n"
            "print(USER_MARK, sorted({n.split('.')[-1] for n in loaded} - {'storemagic'}), "
            "ln.context.get_run().status)"
        )
        assert cell_errors(cell) == []
        assert cell_text(cell, "stdout").strip() == "42 ['autoreload', 'lineage_nb'] started"
    uninstall(ipython_dir=ipython_dir)
    with NotebookKernel(tmp_path, None, env=env) as kernel:
        cell = kernel.run(
            "print('lineage_nb' in get_ipython().extension_manager.loaded, USER_MARK)"
        )
        assert cell_text(cell, "stdout").strip() == "False 42"

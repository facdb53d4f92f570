"""The README's Python examples run, in order, as a reader would run them (as SQLModel's docs tests).

Every ```python block of README.md runs; the blocks of one ``##`` section share one namespace, on a
fresh SQLite database in an empty working directory (``./lineage.db``, also named by
``$LINEAGE_NB_DATABASE_URL``, as the README says). A section whose blocks use IPython syntax
(``%load_ext``, ``!cmd``) runs as cells of one ``InteractiveShell``, so the extension's cell hooks
run too; the others are executed as plain Python. A block that cannot run here (it needs a
PostgreSQL server with an admin login, say) is marked in the README by a comment on the line
before it, ``<!-- docs-test: skip (the reason) -->``, and is reported as skipped with that reason.

Each section runs in a fresh interpreter: the README defines its own ``Project`` and ``Sample``
models, which would clash with the test models this process registers on ``ln.Model.metadata``,
and ``%load_ext`` keeps process-wide state. Tracebacks point at README.md's own line numbers.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"

_FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.M | re.S)
_SKIP = re.compile(r"<!--\s*docs-test:\s*skip\s*\((.+?)\)\s*-->")
_IPYTHON_LINE = re.compile(r"^[ \t]*[%!]", re.M)


@dataclass(frozen=True)
class Block:
    """One ```python block: where it is, its code, and why it is skipped (None: it runs)."""

    section: str
    line: int  # README line of the block's first code line
    code: str
    skip: str | None

    @property
    def ipython(self) -> bool:
        """True when the block uses IPython syntax (a line starting with ``%`` or ``!``)."""
        return _IPYTHON_LINE.search(self.code) is not None


def python_blocks(markdown: str) -> list[Block]:
    """Every ```python block of ``markdown`` with its ``##`` section and skip reason.

    Examples:
        >>> text = "## A\\n```python\\nx = 1\\n```\\n<!-- docs-test: skip (needs PG) -->\\n"
        >>> text += "```python\\nconnect(admin)\\n```\\n## B\\n```bash\\nls\\n```\\n"
        >>> [(b.section, b.line, b.code, b.skip) for b in python_blocks(text)]
        [('A', 3, 'x = 1\\n', None), ('A', 7, 'connect(admin)\\n', 'needs PG')]
    """
    blocks = []
    for match in _FENCE.finditer(markdown):
        before = markdown[: match.start()]
        headings = re.findall(r"^## +(.+?)[ \t]*$", before, re.M)
        previous = before.rstrip("\n").rsplit("\n", 1)[-1]
        skip = _SKIP.search(previous)
        blocks.append(
            Block(
                section=headings[-1] if headings else "(top)",
                line=before.count("\n") + 2,
                code=match.group(1),
                skip=skip.group(1) if skip else None,
            )
        )
    return blocks


def _cases() -> list[Any]:
    """One case per section with blocks to run, one per skipped block (reported with its reason)."""
    blocks = python_blocks(README.read_text(encoding="utf-8"))
    cases: list[Any] = []
    for section in dict.fromkeys(b.section for b in blocks):
        mine = [b for b in blocks if b.section == section]
        runnable = [b for b in mine if b.skip is None]
        if runnable:
            cases.append(pytest.param(runnable, id=section))
        for block in mine:
            if block.skip is not None:
                cases.append(pytest.param([block], id=f"{section}, line {block.line}"))
    return cases


def test_readme_has_python_examples() -> None:
    """The README has Python examples to run (a renamed fence would silently test nothing)."""
    assert (
        len([b for b in python_blocks(README.read_text(encoding="utf-8")) if b.skip is None]) >= 2
    )


@pytest.mark.parametrize("blocks", _cases())
def test_readme_section_runs(blocks: list[Block], tmp_path: Path) -> None:
    """The section's blocks run in order in one namespace on a fresh SQLite database."""
    if blocks[0].skip is not None:
        pytest.skip(f"README.md line {blocks[0].line}: {blocks[0].skip}")
    payload = tmp_path / "blocks.json"
    payload.write_text(json.dumps([[b.line, b.code, b.ipython] for b in blocks]), encoding="utf-8")
    work = tmp_path / "work"
    work.mkdir()
    env = {
        **os.environ,
        "LINEAGE_NB_DATABASE_URL": f"sqlite:///{work / 'lineage.db'}",
        "LINEAGE_NB_USER": "docs",
    }
    done = subprocess.run(
        [sys.executable, str(Path(__file__)), str(payload)],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    assert (work / "lineage.db").exists()  # the examples used the fresh database


# -- the runner (a fresh interpreter per section) --------------------------------------------
def _run_plain(blocks: list[list[Any]]) -> None:
    namespace: dict[str, Any] = {"__name__": "__main__"}
    for line, code, _ipython in blocks:
        source = "\n" * (line - 1) + code  # tracebacks show README.md's line numbers
        exec(compile(source, str(README), "exec"), namespace)


def _run_cells(blocks: list[list[Any]]) -> None:
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance(colors="NoColor")
    for line, code, _ipython in blocks:
        result = shell.run_cell(code, store_history=True)
        if not result.success:
            error = result.error_before_exec or result.error_in_exec
            raise SystemExit(f"README.md: the cell at line {line} failed: {error!r}")
    if "lineage_nb" in shell.extension_manager.loaded:
        shell.run_line_magic("unload_ext", "lineage_nb")  # finishes the run, as at kernel shutdown


if __name__ == "__main__":
    section = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    if any(ipython for _line, _code, ipython in section):
        _run_cells(section)
    else:
        _run_plain(section)

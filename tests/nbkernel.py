"""Run notebook cells on a real ipykernel through nbclient, one cell at a time.

``NotebookKernel`` starts a kernel in ``workdir`` whose environment carries the database URL
(``LINEAGE_NB_DATABASE_URL``), ``tests/`` on ``PYTHONPATH`` (for ``models``) and, when a
notebook path is given, ``JPY_SESSION_NAME`` (how Jupyter tells a kernel its notebook).
Cells run with ``run(source)``, which returns the executed cell; ``shutdown()`` is graceful
(the kernel exits normally, so ``atexit`` runs), ``kill()`` is SIGKILL.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import nbformat
from jupyter_core.utils import run_sync
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_notebook

TESTS = Path(__file__).resolve().parent
FILES = TESTS / "files"


def cell_text(cell: Any, name: str | None = None) -> str:
    """The stream text of an executed cell (``stdout``, ``stderr`` or both)."""
    return "".join(
        o.get("text", "")
        for o in cell.outputs
        if o.output_type == "stream" and (name is None or o.name == name)
    )


def cell_errors(cell: Any) -> list[str]:
    """``ename: evalue`` of every error output of an executed cell."""
    return [f"{o.ename}: {o.evalue}" for o in cell.outputs if o.output_type == "error"]


def cell_data(cell: Any, mime: str = "text/plain") -> list[str]:
    """The ``mime`` representations of a cell's display and result outputs."""
    return [
        o.data[mime]
        for o in cell.outputs
        if o.output_type in ("execute_result", "display_data") and mime in o.data
    ]


class NotebookKernel:
    """A live kernel executing cells of an in-memory notebook (``with`` shuts it down)."""

    def __init__(
        self,
        workdir: Path,
        db_url: str | None,
        *,
        notebook: Path | None = None,
        env: dict[str, str] | None = None,
        timeout: int = 60,
    ) -> None:
        base = {k: v for k, v in os.environ.items() if k not in ("JPY_SESSION_NAME",)}
        base["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(TESTS), os.environ.get("PYTHONPATH")])
        )
        base["PYDEVD_DISABLE_FILE_VALIDATION"] = "1"
        if db_url is not None:
            base["LINEAGE_NB_DATABASE_URL"] = db_url
        if notebook is not None:
            base["JPY_SESSION_NAME"] = str(notebook)
        base.update(env or {})
        self.env = base
        self.notebook = new_notebook()
        self.client = NotebookClient(
            self.notebook,
            timeout=timeout,
            kernel_name="python3",
            allow_errors=True,
            resources={"metadata": {"path": str(workdir)}},
            extra_arguments=["--IPKernelApp.log_level=ERROR"],
        )

    def start(self) -> NotebookKernel:
        """Start the kernel and its client."""
        self.client.km = self.client.create_kernel_manager()
        self.client.start_new_kernel(env=self.env)
        self.client.start_new_kernel_client()
        return self

    def __enter__(self) -> NotebookKernel:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    def run(self, source: str, **metadata: Any) -> Any:
        """Execute one cell; returns the executed ``NotebookNode`` (outputs, execution_count)."""
        cell = new_code_cell(source, metadata=metadata)
        self.notebook.cells.append(cell)
        self.client.execute_cell(cell, len(self.notebook.cells) - 1)
        return cell

    def run_file(self, path: Path) -> list[Any]:
        """Execute every code cell of the notebook file ``path`` in order."""
        document = nbformat.read(str(path), as_version=4)
        return [self.run(c.source) for c in document.cells if c.cell_type == "code"]

    def send_comm_click(self, model_id: str) -> None:
        """Click an ipywidgets ``Button`` the way a browser does: a ``comm_msg`` on shell."""
        kc = self.client.kc
        assert kc is not None
        content = {"comm_id": model_id, "data": {"method": "custom", "content": {"event": "click"}}}
        kc.shell_channel.send(kc.session.msg("comm_msg", content))

    @property
    def pid(self) -> int:
        """The kernel process id."""
        km = self.client.km
        assert km is not None and km.provisioner is not None
        return int(km.provisioner.pid)  # type: ignore[attr-defined]

    def restart(self) -> None:
        """Restart the kernel like Jupyter's "Restart" (graceful shutdown, new process)."""
        assert self.client.km is not None
        run_sync(self.client.km.restart_kernel)(now=False, env=self.env)

    def kill(self) -> None:
        """SIGKILL the kernel process (nothing in it runs) and reap it."""
        km = self.client.km
        assert km is not None and km.provisioner is not None
        os.kill(self.pid, signal.SIGKILL)
        km.provisioner.process.wait(timeout=10)  # type: ignore[attr-defined]
        self.shutdown()

    def shutdown(self) -> None:
        """Shut the kernel down gracefully (its ``atexit`` handlers run); idempotent."""
        km = self.client.km
        if km is None:
            return
        try:
            if self.client.kc is not None:
                self.client.kc.stop_channels()
            if km.has_kernel:
                run_sync(km.shutdown_kernel)(now=False)
        finally:
            self.client.km = None
            self.client.kc = None

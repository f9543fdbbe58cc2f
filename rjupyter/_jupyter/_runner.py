"""Running a whole notebook on a remote kernel, cell by cell, papermill-style parameters included.

nbformat reads, validates and writes the notebook; the cells go to a :class:`~rjupyter.Kernel`
(the tunnel's authenticated WebSocket), so no local Jupyter kernel machinery is involved.
"""

from __future__ import annotations

import ast
import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
from nbformat import NotebookNode

from .._errors import CellExecutionError, ExecutionTimeout, RemoteExecutionError
from .._lifecycle import add_note
from ._kernel import Kernel

__all__ = [
    "CellProgress",
    "ProgressCallback",
    "execute_notebook",
    "inject_parameters",
    "parse_parameter_value",
    "read_notebook",
    "record_kernel",
    "write_notebook",
]

logger = logging.getLogger(__name__)

PARAMETERS_TAG = "parameters"
INJECTED_TAG = "injected-parameters"
#: Cells with this tag may fail without stopping the run (nbclient's convention).
RAISES_TAG = "raises-exception"


@dataclass(frozen=True)
class CellProgress:
    """What a ``progress`` callback of :func:`execute_notebook` is told, before and after a cell.

    Attributes:
        index: The cell's index in the notebook's ``cells``.
        number: Which code cell this is (1-based), out of ``total``.
        total: How many code cells will run.
        state: ``"running"``, then ``"ok"``, ``"error"`` (recorded, run goes on), ``"failed"``
            (the run stops) or ``"timeout"``.
        seconds: How long the cell took (0.0 while ``"running"``).
    """

    index: int
    number: int
    total: int
    state: str
    seconds: float = 0.0


ProgressCallback = Callable[[CellProgress], None]


def read_notebook(path: str | os.PathLike[str]) -> NotebookNode:
    """Read a notebook as nbformat v4.5 (cell ids added where missing, without warnings).

    Raises:
        FileNotFoundError: No such file.
        ValueError: The file is not a notebook.
    """
    text = Path(path).read_text(encoding="utf-8")
    try:
        raw = json.loads(text)
    except ValueError as error:
        raise ValueError(f"{path} is not a notebook (not JSON: {error})") from error
    if not isinstance(raw, dict) or "cells" not in raw:
        raise ValueError(f"{path} is not a notebook (no cells)")
    if raw.get("nbformat") == 4 and raw.get("nbformat_minor", 0) >= 5:
        for cell in raw["cells"]:
            cell.setdefault("id", nbformat.v4.new_code_cell().id)  # as nbformat makes them
    notebook = nbformat.reads(json.dumps(raw), as_version=4)
    if notebook.nbformat_minor < 5:
        notebook = nbformat.v4.upgrade(notebook, from_version=4, from_minor=notebook.nbformat_minor)
    assert isinstance(notebook, NotebookNode)
    return notebook


def write_notebook(notebook: NotebookNode, path: str | os.PathLike[str]) -> None:
    """Validate and write ``notebook`` (parents created).

    Raises:
        nbformat.ValidationError: The notebook is not valid nbformat.
    """
    nbformat.validate(notebook)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, os.fspath(path))


def record_kernel(notebook: NotebookNode, kernel: Kernel) -> None:
    """Record the kernel that runs the notebook in its metadata, as Jupyter does."""
    spec = notebook.metadata.get("kernelspec", {})
    if spec.get("name") != kernel.name:
        spec = {"name": kernel.name, "display_name": kernel.name}
    if kernel.language:
        spec = {**spec, "language": spec.get("language", kernel.language)}
        notebook.metadata["language_info"] = nbformat.from_dict(kernel.language_info)
    notebook.metadata["kernelspec"] = nbformat.from_dict(spec)


def parse_parameter_value(text: str) -> Any:
    """Read a command-line parameter value as papermill's ``-p`` does.

    ``"3"`` is an int, ``"0.5"`` a float, ``"True"``/``"False"`` bools, ``"None"`` None, and a
    Python literal (``"[1, 2]"``, ``"'x'"``) itself; anything else stays a string.
    """
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return text


def inject_parameters(notebook: NotebookNode, parameters: Mapping[str, Any]) -> None:
    """Add a cell tagged ``injected-parameters`` assigning ``parameters``, as papermill does.

    It goes right after the cell tagged ``parameters``, or first when there is none; an injected
    cell from an earlier run is replaced. Values must be Python literals (numbers, strings,
    booleans, None, and lists, tuples, dicts and sets of them).

    Raises:
        ValueError: A name is not an identifier or a value is not a literal.
    """
    lines = ["# Parameters"]
    for name, value in parameters.items():
        if not name.isidentifier():
            raise ValueError(f"parameter name {name!r} is not a Python identifier")
        literal = repr(value)
        try:
            ast.literal_eval(literal)
        except (ValueError, SyntaxError) as error:
            raise ValueError(
                f"parameter {name}={literal} is not a Python literal (numbers, strings, "
                "booleans, None, and lists, tuples, dicts of them)"
            ) from error
        lines.append(f"{name} = {literal}")
    cell = nbformat.v4.new_code_cell("\n".join(lines) + "\n")
    cell.metadata["tags"] = [INJECTED_TAG]
    cells = [c for c in notebook.cells if INJECTED_TAG not in c.metadata.get("tags", [])]
    tagged = [i for i, c in enumerate(cells) if PARAMETERS_TAG in c.metadata.get("tags", [])]
    cells.insert(tagged[0] + 1 if tagged else 0, cell)
    notebook.cells = cells


def execute_notebook(
    kernel: Kernel,
    notebook: NotebookNode,
    *,
    timeout_per_cell: float | None = None,
    allow_errors: bool = False,
    progress: ProgressCallback | None = None,
) -> NotebookNode:
    """Run each code cell of ``notebook`` in ``kernel``, in order, recording outputs in place.

    Earlier outputs are cleared first. Empty cells are skipped. A cell that raises stops the run
    unless ``allow_errors`` is true or the cell is tagged ``raises-exception``; its error output
    is recorded either way.

    Args:
        kernel: A started kernel (its state is the notebook's state).
        notebook: The notebook; changed in place and returned.
        timeout_per_cell: Seconds each cell may take; None for no limit.
        allow_errors: Record failing cells' errors and go on.
        progress: Called with a :class:`CellProgress` before and after each code cell.

    Returns:
        ``notebook``, executed.

    Raises:
        CellExecutionError: A cell raised (carries ``cell_index`` and the partial ``notebook``).
        ExecutionTimeout: A cell ran past ``timeout_per_cell`` (the kernel was interrupted).
    """
    code_cells = [i for i, c in enumerate(notebook.cells) if c.cell_type == "code"]
    for index in code_cells:
        notebook.cells[index].outputs = []
        notebook.cells[index].execution_count = None
    runnable = [i for i in code_cells if notebook.cells[i].source.strip()]
    for number, index in enumerate(runnable, 1):
        report = _reporter(progress, index, number, len(runnable))
        report("running")
        _run_cell(
            kernel,
            notebook,
            index,
            timeout=timeout_per_cell,
            allow_errors=allow_errors,
            report=report,
        )
    return notebook


def _reporter(
    progress: ProgressCallback | None, index: int, number: int, total: int
) -> Callable[[str], None]:
    started = time.monotonic()

    def report(state: str) -> None:
        seconds = 0.0 if state == "running" else time.monotonic() - started
        if progress is not None:
            progress(CellProgress(index, number, total, state, seconds))
        if state != "running":
            logger.debug("cell %d (%d/%d): %s in %.2f s", index, number, total, state, seconds)

    return report


def _run_cell(
    kernel: Kernel,
    notebook: NotebookNode,
    index: int,
    *,
    timeout: float | None,
    allow_errors: bool,
    report: Callable[[str], None],
) -> None:
    cell = notebook.cells[index]
    try:
        result = kernel.execute(cell.source, timeout=timeout)
    except ExecutionTimeout as error:
        if error.result is not None:
            _record(cell, error.result.outputs, error.result.execution_count)
        report("timeout")
        add_note(error, f"in cell {index} of the notebook")
        raise
    except RemoteExecutionError as error:
        if error.result is not None:
            _record(cell, error.result.outputs, error.result.execution_count)
        if allow_errors or RAISES_TAG in cell.metadata.get("tags", []):
            report("error")
            return
        report("failed")
        raise _cell_error(error, index, cell, notebook) from error
    _record(cell, result.outputs, result.execution_count)
    report("ok")


def _record(cell: NotebookNode, outputs: list[dict[str, Any]], count: int | None) -> None:
    cell.outputs = [nbformat.from_dict(output) for output in outputs]
    cell.execution_count = count


def _cell_error(
    error: RemoteExecutionError, index: int, cell: NotebookNode, notebook: NotebookNode
) -> CellExecutionError:
    first_lines = "\n".join(cell.source.splitlines()[:3])
    return CellExecutionError(
        f"cell {index} (In [{cell.execution_count}]) raised {error.ename}: {error.evalue}\n"
        f"--- cell source ---\n{first_lines}\n--- remote traceback ---\n{error.traceback_text}",
        cell_index=index,
        execution_count=cell.execution_count,
        ename=error.ename,
        evalue=error.evalue,
        traceback=error.traceback,
        notebook=notebook,
        result=error.result,
    )

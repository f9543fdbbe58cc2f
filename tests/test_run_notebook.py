"""run_notebook against the lab's real Jupyter: a notebook with parameters, a plot, a print and an
error cell runs to the expected output notebook; plus the pure parts (parameters, reading)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from helpers import PNG_BASE64
from nbformat import NotebookNode

from rjupyter import (
    CellExecutionError,
    CellProgress,
    ExecutionTimeout,
    RemoteExecutionError,
    RemoteNotebook,
    parse_parameter_value,
)
from rjupyter._jupyter._runner import inject_parameters, read_notebook
from rjupyter.testing import Lab, LabHost

PLOT = (
    "import base64\n"
    "from IPython.display import Image, display\n"
    f"display(Image(data=base64.b64decode('{PNG_BASE64}')))"
)


def tagged(source: str, *tags: str) -> NotebookNode:
    cell: NotebookNode = nbformat.v4.new_code_cell(source)
    cell.metadata["tags"] = list(tags)
    return cell


def write_test_notebook(path: Path) -> Path:
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    notebook.cells = [
        nbformat.v4.new_markdown_cell("# A report"),
        tagged("n = 1\nlabel = 'default'", "parameters"),
        nbformat.v4.new_code_cell("print(f'{label}: {n * 2}')"),
        nbformat.v4.new_code_cell(PLOT),
        nbformat.v4.new_code_cell(""),
        nbformat.v4.new_code_cell("n + 1"),
        nbformat.v4.new_code_cell("1 / 0"),
        nbformat.v4.new_code_cell("import os\nprint(os.getcwd())"),
    ]
    nbformat.write(notebook, path)
    return path


def summary(notebook: NotebookNode) -> list[tuple[Any, ...]]:
    """Each cell as (type, tags, execution_count, outputs) with the outputs reduced to what
    must be the same on every run."""
    rows: list[tuple[Any, ...]] = []
    for cell in notebook.cells:
        if cell.cell_type != "code":
            rows.append((cell.cell_type,))
            continue
        outputs: list[tuple[Any, ...]] = []
        for output in cell.outputs:
            kind = output.output_type
            if kind == "stream":
                outputs.append((kind, output.name, output.text))
            elif kind in ("display_data", "execute_result"):
                outputs.append((kind, sorted(output.data)))
            else:
                outputs.append((kind, output.ename, output.evalue))
        tags = cell.metadata.get("tags", [])
        rows.append(("code", tags, cell.execution_count, outputs))
    return rows


@pytest.fixture(scope="module")
def nb(lab: Lab, remote: LabHost) -> Iterator[RemoteNotebook]:
    options: dict[str, Any] = {"ssh_config": lab.ssh_config, "venv": lab.jupyter_venv}
    with RemoteNotebook(remote.name, timeout=60.0, **options) as notebook:
        yield notebook


def test_notebook_runs_to_the_expected_output(
    nb: RemoteNotebook, lab: Lab, remote: LabHost, tmp_path: Path
) -> None:
    source = write_test_notebook(tmp_path / "report.ipynb")
    output = tmp_path / "out" / "report.out.ipynb"
    remote.run(["mkdir", "-p", f"{lab.home}/runs"], check=True)
    seen: list[CellProgress] = []
    returned = nb.run_notebook(
        source,
        output,
        parameters={"n": 21, "label": "answer"},
        cwd="~/runs",
        allow_errors=True,
        progress=seen.append,
    )
    written = nbformat.read(output, as_version=4)
    nbformat.validate(written)
    assert summary(written) == summary(returned)
    png = ["image/png", "text/plain"]
    assert summary(written) == [
        ("markdown",),
        ("code", ["parameters"], 1, []),
        ("code", ["injected-parameters"], 2, []),
        ("code", [], 3, [("stream", "stdout", "answer: 42\n")]),
        ("code", [], 4, [("display_data", png)]),
        ("code", [], None, []),
        ("code", [], 5, [("execute_result", ["text/plain"])]),
        ("code", [], 6, [("error", "ZeroDivisionError", "division by zero")]),
        ("code", [], 7, [("stream", "stdout", f"{lab.home}/runs\n")]),
    ]
    assert written.cells[2].source == "# Parameters\nn = 21\nlabel = 'answer'\n"
    assert written.cells[4].outputs[0].data["image/png"].strip() == PNG_BASE64
    assert written.cells[6].outputs[0].data["text/plain"] == "22"
    assert written.metadata.kernelspec.name == "python3"
    assert written.metadata.language_info.name == "python"
    assert [(p.index, p.state) for p in seen if p.state != "running"] == [
        (1, "ok"), (2, "ok"), (3, "ok"), (4, "ok"), (6, "ok"), (7, "error"), (8, "ok"),
    ]  # fmt: skip
    assert {p.total for p in seen} == {7}


def test_a_failing_cell_raises_and_the_partial_notebook_is_written(
    nb: RemoteNotebook, tmp_path: Path
) -> None:
    source = write_test_notebook(tmp_path / "report.ipynb")
    output = tmp_path / "partial.ipynb"
    with pytest.raises(CellExecutionError) as caught:
        nb.run_notebook(source, output)
    error = caught.value
    assert isinstance(error, RemoteExecutionError)
    assert error.cell_index == 6
    assert error.ename == "ZeroDivisionError"
    assert "1 / 0" in error.traceback_text
    assert "cell 6" in str(error)
    written = nbformat.read(output, as_version=4)
    nbformat.validate(written)
    assert written.cells[2].outputs[0].text == "default: 2\n"  # no parameters: the defaults
    assert written.cells[6].outputs[0].output_type == "error"
    assert written.cells[7].outputs == []
    assert written.cells[7].execution_count is None
    assert error.notebook is not None
    assert error.notebook.cells[6].outputs[0].ename == "ZeroDivisionError"


def test_a_cell_past_its_timeout_raises_and_is_recorded(nb: RemoteNotebook, tmp_path: Path) -> None:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_code_cell("print('start', flush=True)\nwhile True: pass"),
        nbformat.v4.new_code_cell("print('never')"),
    ]
    source = tmp_path / "spin.ipynb"
    nbformat.write(notebook, source)
    with pytest.raises(ExecutionTimeout):
        nb.run_notebook(source, tmp_path / "spin.out.ipynb", timeout_per_cell=1.0)
    written = nbformat.read(tmp_path / "spin.out.ipynb", as_version=4)
    assert written.cells[0].outputs[0].text == "start\n"
    assert written.cells[1].outputs == []


# -- the pure parts --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [("3", 3), ("0.5", 0.5), ("True", True), ("None", None), ("[1, 2]", [1, 2]), ("abc", "abc")],
)
def test_parameter_values_are_read_like_papermill(text: str, value: object) -> None:
    assert parse_parameter_value(text) == value


def test_parameters_go_after_the_tagged_cell_and_replace_an_earlier_injection() -> None:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell("a = 1"), tagged("x = 0", "parameters")]
    inject_parameters(notebook, {"x": 5})
    inject_parameters(notebook, {"x": 6, "s": "it's"})
    sources = [cell.source for cell in notebook.cells]
    assert sources == ["a = 1", "x = 0", '# Parameters\nx = 6\ns = "it\'s"\n']
    nbformat.validate(notebook)


def test_parameters_without_a_tagged_cell_go_first() -> None:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell("a = 1")]
    inject_parameters(notebook, {"x": 1})
    assert notebook.cells[0].metadata["tags"] == ["injected-parameters"]


@pytest.mark.parametrize("bad", [{"not a name": 1}, {"x": object()}])
def test_bad_parameters_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="parameter"):
        inject_parameters(nbformat.v4.new_notebook(), bad)


def test_old_notebooks_are_read_as_4_5_without_warnings(tmp_path: Path) -> None:
    cell = {"cell_type": "code", "source": "1", "metadata": {}, "outputs": []}
    for minor in (4, 5):
        raw = {"cells": [{**cell, "execution_count": None}], "metadata": {}}
        path = tmp_path / f"v{minor}.ipynb"
        path.write_text(json.dumps({**raw, "nbformat": 4, "nbformat_minor": minor}))
        notebook = read_notebook(path)  # warnings are errors in this suite
        assert notebook.nbformat_minor == 5
        assert notebook.cells[0].id
        nbformat.validate(notebook)


def test_not_a_notebook(tmp_path: Path) -> None:
    path = tmp_path / "x.ipynb"
    path.write_text("no")
    with pytest.raises(ValueError, match="not a notebook"):
        read_notebook(path)

"""``rjupyter run`` and ``rjupyter exec``: notebooks and code on the remote kernel."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import click

from .._errors import CellExecutionError, RemoteExecutionError, RJupyterError
from .._jupyter._runner import CellProgress, parse_parameter_value
from ._common import (
    cli,
    connection_options,
    console,
    environment_options,
    merge,
    notebook_for,
    said,
)
from ._ui import Progress

__all__ = ["exec_command", "run"]


RUN_EXAMPLES = """\b
Examples:
  rjupyter run gpu-box train.ipynb -p epochs 10 -p lr 0.001 -o train.out.ipynb
  rjupyter run gpu-box report.ipynb --venv ~/proj/.venv --cwd ~/proj --allow-errors
"""


@cli.command(epilog=RUN_EXAMPLES)
@click.argument("host")
@click.argument("notebook_path", metavar="NOTEBOOK", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "-p",
    "--parameter",
    "parameters",
    nargs=2,
    multiple=True,
    metavar="NAME VALUE",
    help="Inject a parameter (papermill-style; VALUE read as a Python literal if it is one).",
)
@click.option("-o", "--output", help="Executed notebook (default: NOTEBOOK.out.ipynb).")
@click.option("--cwd", help="Remote working directory of the kernel.")
@click.option("--kernel", "kernel_name", help="Kernel name (default: the server's default).")
@click.option("--timeout-per-cell", type=float, help="Seconds each cell may take.")
@click.option("--allow-errors", is_flag=True, help="Record failing cells and go on.")
@environment_options
@connection_options
@click.pass_context
def run(ctx: click.Context, /, host: str, notebook_path: str, **flags: Any) -> None:
    """Run a local NOTEBOOK on HOST's kernel, cell by cell; write the executed copy locally."""
    options = merge(host, {"dir": flags.pop("dir_"), **flags})
    output = options.get("output") or str(Path(notebook_path).with_suffix(".out.ipynb"))
    parameters = {name: parse_parameter_value(value) for name, value in flags["parameters"]}
    quiet = bool(ctx.obj["quiet"])
    with Progress(console, quiet=quiet) as progress:
        notebook = notebook_for(host, options, progress, app="server")
        notebook.start()
    with contextlib.closing(notebook):
        try:
            executed = notebook.run_notebook(
                notebook_path,
                output,
                parameters=parameters,
                kernel_name=flags["kernel_name"],
                cwd=flags["cwd"],
                timeout_per_cell=flags["timeout_per_cell"],
                allow_errors=flags["allow_errors"],
                progress=None if quiet else _cell_progress,
            )
        except CellExecutionError as error:
            raise RJupyterError(
                f"cell {error.cell_index} failed: {error.ename}: {error.evalue}; "
                f"the notebook as far as it ran is in {output}"
            ) from error
    cells = sum(1 for cell in executed.cells if cell.cell_type == "code")
    said(ctx, f"executed {cells} code cells; wrote {output}")


def _cell_progress(step: CellProgress) -> None:
    if step.state != "running":
        mark = "[green]✓[/]" if step.state == "ok" else "[red]✗[/]"
        console.print(
            f"{mark} [{step.number}/{step.total}] cell {step.index} {step.state} "
            f"[dim]{step.seconds:.2f} s[/]"
        )


EXEC_EXAMPLES = """\b
Examples:
  rjupyter exec gpu-box -c 'import torch; print(torch.cuda.is_available())'
  rjupyter exec gpu-box -f script.py --venv ~/proj/.venv
"""


@cli.command("exec", epilog=EXEC_EXAMPLES)
@click.argument("host")
@click.option("-c", "--code", help="Python code to run.")
@click.option("-f", "--file", "code_file", type=click.File(), help="A file of code to run.")
@click.option("--kernel", "kernel_name", help="Kernel name (default: the server's default).")
@click.option("--exec-timeout", type=float, help="Seconds the code may run (then interrupted).")
@environment_options
@connection_options
@click.pass_context
def exec_command(ctx: click.Context, /, host: str, **flags: Any) -> None:
    """Run code on HOST's kernel; stream what it prints; print its value."""
    if (flags["code"] is None) == (flags["code_file"] is None):
        raise click.UsageError("give the code with exactly one of -c CODE or -f FILE")
    code = flags["code"] if flags["code"] is not None else flags["code_file"].read()
    options = merge(host, {"dir": flags.pop("dir_"), **flags})
    with Progress(console, quiet=bool(ctx.obj["quiet"])) as progress:
        notebook = notebook_for(host, options, progress, app="server")
        notebook.start()
    with contextlib.closing(notebook), notebook.kernel(flags["kernel_name"]) as kernel:
        try:
            result = kernel.execute(code, timeout=flags["exec_timeout"], on_output=_stream)
        except RemoteExecutionError as error:
            click.echo(error.traceback_text, err=True)
            raise RJupyterError(f"remote {error.ename}: {error.evalue}") from error
    if result.execute_result is not None:
        click.echo(result.text)


def _stream(output: dict[str, Any]) -> None:
    if output.get("output_type") == "stream":
        click.echo(output["text"], nl=False, err=output.get("name") == "stderr")
    elif output.get("output_type") == "display_data":
        click.echo(f"[display: {', '.join(sorted(output.get('data', {})))}]")

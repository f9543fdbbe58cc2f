"""``rjupyter run`` and ``rjupyter exec``: notebooks and code on the remote kernel.

Both start a plain ``jupyter server`` for the job and stop it afterwards, or, with
``--attach PID``, use a server already running there and leave it running (their kernel is
shut down either way).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from .._errors import CellExecutionError, RemoteExecutionError, RJupyterError
from .._jupyter._runner import CellProgress, parse_parameter_value
from .._notebook import RemoteNotebook
from ._common import (
    alias,
    apply,
    cli,
    connect_kwargs,
    connection_options,
    console,
    environment_options,
    host_argument,
    merge,
    notebook_for,
    said,
    timeout_of,
)
from ._profiles import SECONDS
from ._ui import Progress

__all__ = ["exec_command", "run"]

#: With --attach the server's environment is already set: these options cannot apply.
_ENVIRONMENT = ("venv", "conda_env", "setup", "jupyter", "login_shell", "slurm")
_EXCLUSIVE = [*[("attach", option) for option in _ENVIRONMENT], ("venv", "conda_env")]


def kernel_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """The kernel to use, how long its code may run, and which server runs it."""
    return apply(
        func,
        [
            click.option(
                "--kernel-name", help="Kernel name (default: the server's default kernel)."
            ),
            alias("--kernel", "kernel_name"),
            click.option(
                "--timeout-per-cell",
                type=SECONDS,
                help="Seconds each cell may run (then it is interrupted; default: no limit).",
            ),
            click.option(
                "--attach",
                type=click.IntRange(min=1),
                metavar="PID",
                help="Use the Jupyter server with this PID on HOST (see `rjupyter list`) and "
                "leave it running, instead of starting one.",
            ),
        ],
    )


def _notebook(ctx: click.Context, host: str, options: dict[str, Any]) -> RemoteNotebook:
    """A started notebook: a fresh plain server, or the running one named by --attach."""
    with Progress(console, quiet=bool(ctx.obj["quiet"])) as progress:
        if options.get("attach") is None:
            notebook = notebook_for(host, options, progress, app="server")
        else:
            notebook = RemoteNotebook.attach(
                host,
                pid=options["attach"],
                local_port=options.get("local_port"),
                timeout=timeout_of(options, 60.0),
                progress=progress.step,
                **connect_kwargs(options, progress),
            )
        return notebook.start()


def _kernel_cwd(options: dict[str, Any]) -> str | None:
    """--workdir: the new server's directory (its kernels start there), or the kernel's own."""
    return options.get("workdir") if options.get("attach") is not None else None


RUN_EXAMPLES = """\b
Examples:
  rjupyter run gpu-box train.ipynb -p epochs 10 -p lr 0.001 -o train.out.ipynb
  rjupyter run gpu-box report.ipynb --venv ~/proj/.venv --workdir ~/proj --allow-errors
  rjupyter run gpu-box report.ipynb --attach 41234    # on a running server
"""


@cli.command(epilog=RUN_EXAMPLES, exclusive=_EXCLUSIVE)
@host_argument
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
@alias("--cwd", "workdir")
@click.option("--allow-errors", is_flag=True, help="Record failing cells and go on.")
@kernel_options
@environment_options
@connection_options
@click.pass_context
def run(ctx: click.Context, /, host: str, notebook_path: str, **flags: Any) -> None:
    """Run a local NOTEBOOK on HOST's kernel, cell by cell; write the executed copy locally."""
    options = merge(host, flags)
    output = options.get("output") or str(Path(notebook_path).with_suffix(".out.ipynb"))
    parameters = {name: parse_parameter_value(value) for name, value in flags["parameters"]}
    quiet = bool(ctx.obj["quiet"])
    notebook = _notebook(ctx, host, options)
    with contextlib.closing(notebook):
        try:
            executed = notebook.run_notebook(
                notebook_path,
                output,
                parameters=parameters,
                kernel_name=flags["kernel_name"],
                cwd=_kernel_cwd(options),
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
  rjupyter exec gpu-box --attach 41234 -c 'import os; os.getcwd()'
"""


@cli.command("exec", epilog=EXEC_EXAMPLES, exclusive=[*_EXCLUSIVE, ("code", "code_file")])
@host_argument
@click.option("-c", "--code", help="Python code to run.")
@click.option("-f", "--file", "code_file", type=click.File(), help="A file of code to run.")
@kernel_options
@alias("--exec-timeout", "timeout_per_cell", type=SECONDS)
@environment_options
@connection_options
@click.pass_context
def exec_command(ctx: click.Context, /, host: str, **flags: Any) -> None:
    """Run code on HOST's kernel (as one cell); stream what it prints; print its value."""
    if flags["code"] is None and flags["code_file"] is None:
        raise click.UsageError("give the code with exactly one of -c CODE or -f FILE", ctx)
    code = flags["code"] if flags["code"] is not None else flags["code_file"].read()
    options = merge(host, flags)
    notebook = _notebook(ctx, host, options)
    with (
        contextlib.closing(notebook),
        notebook.kernel(flags["kernel_name"], cwd=_kernel_cwd(options)) as kernel,
    ):
        try:
            result = kernel.execute(code, timeout=flags["timeout_per_cell"], on_output=_stream)
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

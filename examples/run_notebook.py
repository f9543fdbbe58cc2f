"""Run a local notebook on a remote host's Jupyter kernel and write the executed copy locally.

    python examples/run_notebook.py HOST NOTEBOOK [-o OUT] [-p NAME VALUE]... [--allow-errors]
                                    [--venv PATH] [-F SSH_CONFIG] [--cwd REMOTE_DIR]

Parameters go into the notebook papermill-style (after the cell tagged `parameters`); values
are read as Python literals when they are one (`-p n 3` is the int 3), else as strings.
Progress is shown per cell. A failing cell prints its error, still writes OUT, and exits 1.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rjupyter import (
    CellExecutionError,
    CellProgress,
    RemoteNotebook,
    RJupyterError,
    parse_parameter_value,
)


def show_progress(step: CellProgress) -> None:
    if step.state == "running":
        print(f"[{step.number}/{step.total}] cell {step.index} ...", end=" ", flush=True)
    else:
        print(f"{step.state} ({step.seconds:.2f} s)", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("host")
    parser.add_argument("notebook", type=Path)
    parser.add_argument("-o", "--output", type=Path, help="default: NOTEBOOK.out.ipynb")
    parser.add_argument("-p", "--parameter", nargs=2, action="append", metavar=("NAME", "VALUE"))
    parser.add_argument("--allow-errors", action="store_true", help="record errors, go on")
    parser.add_argument("--cwd", help="remote working directory of the kernel")
    parser.add_argument("--venv", help="remote virtual environment to enter")
    parser.add_argument("-F", "--ssh-config", help="SSH config file (default ~/.ssh/config)")
    args = parser.parse_args(argv)
    output = args.output or args.notebook.with_suffix(".out.ipynb")
    parameters = {name: parse_parameter_value(value) for name, value in args.parameter or []}
    try:
        with RemoteNotebook(args.host, venv=args.venv, ssh_config=args.ssh_config) as nb:
            executed = nb.run_notebook(
                args.notebook,
                output,
                parameters=parameters,
                cwd=args.cwd,
                allow_errors=args.allow_errors,
                progress=show_progress,
            )
    except CellExecutionError as error:
        print(f"\ncell {error.cell_index} failed: {error.ename}: {error.evalue}", file=sys.stderr)
        print(f"the notebook as far as it ran is in {output}", file=sys.stderr)
        return 1
    except (RJupyterError, OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    cells = sum(1 for cell in executed.cells if cell.cell_type == "code")
    print(f"executed {cells} code cells; wrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

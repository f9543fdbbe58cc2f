"""Run Python code on a remote host's Jupyter kernel and stream what it prints.

    python examples/execute.py HOST [-c CODE] [--venv PATH] [-F SSH_CONFIG] [--timeout SECONDS]

HOST is anything `ssh` accepts. Without -c it runs a small demo: where it runs, a value, and a
variable kept between two executes. A remote exception prints its remote traceback and exits 1.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from rjupyter import RemoteExecutionError, RemoteNotebook, RJupyterError

DEMO = [
    "import platform, sys\nprint('running on', platform.node(), 'Python', sys.version.split()[0])",
    "total = sum(range(10))\ntotal",
    "total * 2",
]


def show(output: dict[str, Any]) -> None:
    """Print each output as it arrives: streams as text, rich outputs by MIME type."""
    if output["output_type"] == "stream":
        stream = sys.stderr if output["name"] == "stderr" else sys.stdout
        print(output["text"], end="", file=stream, flush=True)
    elif output["output_type"] == "display_data":
        print(f"[display: {', '.join(sorted(output['data']))}]", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("host")
    parser.add_argument("-c", "--code", action="append", help="code to run (repeatable)")
    parser.add_argument("--venv", help="remote virtual environment to enter")
    parser.add_argument("-F", "--ssh-config", help="SSH config file (default ~/.ssh/config)")
    parser.add_argument("--timeout", type=float, help="seconds each piece of code may take")
    args = parser.parse_args(argv)
    try:
        with RemoteNotebook(args.host, venv=args.venv, ssh_config=args.ssh_config) as nb:
            for code in args.code or DEMO:
                result = nb.execute(code, timeout=args.timeout, on_output=show)
                if result.text is not None:
                    print(f"Out[{result.execution_count}]: {result.text}")
    except RemoteExecutionError as error:
        print(f"remote {error.ename}: {error.evalue}\n{error.traceback_text}", file=sys.stderr)
        return 1
    except RJupyterError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

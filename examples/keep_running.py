"""Start a notebook that outlives this script, and print how to come back to it.

    python examples/keep_running.py HOST [--venv PATH] [-F SSH_CONFIG]

The server keeps running after the script ends (its kernels too); come back with
examples/attach.py, `rjupyter attach HOST --pid PID`, or stop it with `rjupyter stop`.
"""

from __future__ import annotations

import argparse
import sys

from rjupyter import RemoteNotebook, RJupyterError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("host")
    parser.add_argument("--venv", help="remote virtual environment to enter")
    parser.add_argument("-F", "--ssh-config", help="SSH config file (default ~/.ssh/config)")
    args = parser.parse_args(argv)
    try:
        with RemoteNotebook(
            args.host, venv=args.venv, ssh_config=args.ssh_config, keep_running=True
        ) as nb:
            print(f"notebook ready: {nb.url}")
        print(nb.server)  # host, PID and port: what it takes to come back
        print(f"PID={nb.server.pid}")
    except RJupyterError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

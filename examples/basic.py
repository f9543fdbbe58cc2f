"""Start a Jupyter server on a remote host, print its URL, check that it answers, stop it.

    python examples/basic.py HOST [--venv PATH] [--workdir DIR] [--app lab] [-F SSH_CONFIG] [--hold]

HOST is anything `ssh` accepts: an alias from ~/.ssh/config, `host`, `user@host` or
`user@host:port`. With --hold the notebook stays up until you press Enter or Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import urllib.request

from rjupyter import RemoteNotebook, RJupyterError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("host")
    parser.add_argument("--venv", help="remote virtual environment to enter")
    parser.add_argument("--workdir", help="remote directory to serve")
    parser.add_argument("--app", default="notebook", choices=["notebook", "lab", "server"])
    parser.add_argument("-F", "--ssh-config", help="SSH config file (default ~/.ssh/config)")
    parser.add_argument("--hold", action="store_true", help="keep it running until Enter")
    args = parser.parse_args(argv)
    try:
        with RemoteNotebook(
            args.host,
            app=args.app,
            venv=args.venv,
            workdir=args.workdir,
            ssh_config=args.ssh_config,
        ) as nb:
            print(f"notebook ready: {nb.url}")
            request = urllib.request.Request(
                f"{nb.base_url}api/status", headers={"Authorization": f"token {nb.token}"}
            )
            with urllib.request.urlopen(request, timeout=30) as reply:
                status = json.load(reply)
            print(f"it answers: {status['kernels']} kernels, started {status['started']}")
            if args.hold:
                print("press Enter (or Ctrl-C) to stop it")
                with contextlib.suppress(EOFError, KeyboardInterrupt):
                    input()
        print("stopped: the remote server, the tunnel and the SSH connection are closed")
    except RJupyterError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

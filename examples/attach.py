"""Come back to a Jupyter server that is already running, started by rjupyter or by hand.

    python examples/attach.py HOST [--pid PID | --port PORT] [-F SSH_CONFIG] [--stop]

Lists your servers on HOST, tunnels to the one named (or the only one), proves it answers, and
leaves it running - or stops it, and its kernels, with --stop.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.request

from rjupyter import RemoteNotebook, RJupyterError, list_servers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("host")
    parser.add_argument("--pid", type=int)
    parser.add_argument("--port", type=int)
    parser.add_argument("-F", "--ssh-config", help="SSH config file (default ~/.ssh/config)")
    parser.add_argument("--stop", action="store_true", help="stop the server when done")
    args = parser.parse_args(argv)
    try:
        for record in list_servers(args.host, ssh_config=args.ssh_config):
            state = "stale" if record.stale else "running"
            where = f"socket {record.socket}" if record.socket else f"port {record.port}"
            print(f"pid {record.pid} {where} {record.app} {state} {record.root_dir}")
        with RemoteNotebook.attach(
            args.host,
            pid=args.pid,
            port=args.port,
            ssh_config=args.ssh_config,
            stop_on_close=args.stop,
        ) as nb:
            request = urllib.request.Request(
                f"{nb.base_url}api/kernels", headers={"Authorization": f"token {nb.token}"}
            )
            with urllib.request.urlopen(request, timeout=30) as reply:
                kernels = len(json.load(reply))
            print(f"attached to pid {nb.remote_pid}: {kernels} kernels")
            print(f"open {nb.url}")
        print("stopped it" if args.stop else "left it running")
    except RJupyterError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

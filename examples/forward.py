"""A notebook and another web service of the same host (TensorBoard, say) over one SSH login.

    python examples/forward.py HOST REMOTE_PORT [--venv PATH] [-F SSH_CONFIG] [--probe]

Starts Jupyter on HOST (on a private Unix socket where HOST allows it), forwards a local port to
REMOTE_PORT on HOST's loopback beside it, prints both addresses, then waits for Enter or Ctrl-C.
With --probe it instead fetches the forwarded service's root once, prints the HTTP status, and
exits. Both forwards follow the notebook through reconnects and close with it.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import urllib.request

from rjupyter import RemoteNotebook, RJupyterError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("host")
    parser.add_argument("remote_port", type=int, help="e.g. 6006 for TensorBoard")
    parser.add_argument("--venv", help="the remote environment with Jupyter")
    parser.add_argument("-F", "--ssh-config", help="SSH config file (default ~/.ssh/config)")
    parser.add_argument("--probe", action="store_true", help="fetch the service once and exit")
    args = parser.parse_args(argv)
    try:
        with RemoteNotebook(args.host, venv=args.venv, ssh_config=args.ssh_config) as nb:
            where = nb.remote_socket or f"port {nb.remote_port}"
            print(f"notebook: {nb.base_url} (Jupyter on {where} of {args.host})")
            service = nb.forward(args.remote_port)  # same login, no second prompt
            print(f"port {args.remote_port} of {args.host}: {service.url}")
            if args.probe:
                direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
                with direct.open(service.url, timeout=30) as reply:  # our own 127.0.0.1 URL
                    print(f"it answers: HTTP {reply.status}")
                return 0
            with contextlib.suppress(KeyboardInterrupt, EOFError):
                input("press Enter to stop\n")
    except RJupyterError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

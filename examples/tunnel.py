"""Forward a local port to any port on (or reachable from) a remote host, like `ssh -N -L`.

    python examples/tunnel.py HOST REMOTE_PORT [--remote-host ADDR] [--local-port N]
                              [-F SSH_CONFIG] [--spare-channels N] [--probe]

Prints the local address, then forwards until Enter or Ctrl-C. With --probe it instead connects
once, prints the first line the remote side sends (an SSH or SMTP banner, say) and exits.
--spare-channels keeps N channels open ahead of new connections (for a web app a browser loads:
each new connection saves a round trip; the remote side sees connections before any client).
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import sys

from rjupyter import RJupyterError, Tunnel


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("host")
    parser.add_argument("remote_port", type=int)
    parser.add_argument("--remote-host", default="127.0.0.1", help="as seen from HOST")
    parser.add_argument("--local-port", type=int, help="default: any free port")
    parser.add_argument("-F", "--ssh-config", help="SSH config file (default ~/.ssh/config)")
    parser.add_argument("--spare-channels", type=int, default=0, help="for HTTP servers")
    parser.add_argument("--probe", action="store_true", help="print the first line and exit")
    args = parser.parse_args(argv)
    try:
        with Tunnel(
            args.host,
            args.remote_port,
            remote_host=args.remote_host,
            local_port=args.local_port,
            ssh_config=args.ssh_config,
            spare_channels=args.spare_channels,
        ) as tunnel:
            print(
                f"forwarding 127.0.0.1:{tunnel.local_port} -> {args.remote_host}:{args.remote_port}"
            )
            if args.probe:
                with socket.create_connection(("127.0.0.1", tunnel.local_port), timeout=30) as conn:
                    print(conn.makefile("rb").readline().decode(errors="replace").strip())
                return 0
            with contextlib.suppress(KeyboardInterrupt, EOFError):
                input("press Enter to stop\n")
    except RJupyterError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

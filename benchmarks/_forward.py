"""One forwarder in its own process, so that each tool is measured the same way (its own CPU,
its own RSS, no shared GIL with the client): ``python -m benchmarks._forward TOOL ...``.

Prints the local port once it listens, then forwards until its stdin closes.
"""

from __future__ import annotations

import argparse
import base64
import logging
import sys

import paramiko
import sshtunnel

from rjupyter import Tunnel


def _serve_until_stdin_closes(port: int) -> None:
    sys.stdout.write(f"{port}\n")
    sys.stdout.flush()
    sys.stdin.read()


def main() -> None:
    """Run the forwarder the command line names."""
    parser = argparse.ArgumentParser()
    parser.add_argument("tool", choices=["rjupyter", "sshtunnel"])
    parser.add_argument("--ssh-config", required=True)
    parser.add_argument("--alias", required=True)
    parser.add_argument("--address", required=True, help="sshd address (sshtunnel logs in)")
    parser.add_argument("--port", type=int, required=True, help="sshd port")
    parser.add_argument("--user", required=True)
    parser.add_argument("--identity", required=True)
    parser.add_argument("--host-key", required=True, help="sshd's public host key file")
    parser.add_argument("--remote-port", required=True, help="a port, or a socket's path")
    parser.add_argument("--spare-channels", type=int, default=0, help="rjupyter's option")
    args = parser.parse_args()
    if args.tool == "rjupyter":
        remote = args.remote_port if args.remote_port.startswith("/") else int(args.remote_port)
        with Tunnel(
            args.alias, remote, ssh_config=args.ssh_config, spare_channels=args.spare_channels
        ) as tunnel:
            _serve_until_stdin_closes(tunnel.local_port)
        return
    # Stock sshtunnel, defaults except: our logger (its own adds handlers), loopback, its own
    # login with the lab's key. ssh_host_key is accepted but unused by sshtunnel 0.5.1.
    with open(args.host_key) as key_file:
        kind, data = key_file.read().split()[:2]
    forwarder = sshtunnel.SSHTunnelForwarder(
        (args.address, args.port),
        ssh_username=args.user,
        ssh_pkey=args.identity,
        ssh_host_key=paramiko.PKey.from_type_string(kind, base64.b64decode(data)),
        ssh_config_file=None,
        allow_agent=False,
        host_pkey_directories=[],
        local_bind_address=("127.0.0.1", 0),
        remote_bind_address=("127.0.0.1", int(args.remote_port)),
        logger=logging.getLogger("benchmarks.sshtunnel"),
    )
    forwarder.start()
    try:
        _serve_until_stdin_closes(forwarder.local_bind_port)
    finally:
        forwarder.stop(force=True)


if __name__ == "__main__":
    main()

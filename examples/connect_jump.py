"""Start a Jupyter server on a host behind jump hosts, check that it answers, stop it.

    python examples/connect_jump.py HOST [--jump BASTION[,BASTION2]] [-F SSH_CONFIG] [--venv PATH]

Without --jump the chain comes from ProxyJump in the SSH config, as for `ssh HOST`. Every hop
is checked against known_hosts and logs in with its own user and keys; a hop that asks for a
one-time code is answered on the terminal.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
import time
import urllib.request

from rjupyter import RemoteNotebook, RJupyterError


def ask(title: str, instructions: str, prompts: list[tuple[str, bool]]) -> list[str]:
    """Answer keyboard-interactive prompts on the terminal (echo only where the server says)."""
    if title or instructions:
        print(title or instructions, file=sys.stderr)
    return [input(prompt) if echo else getpass.getpass(prompt) for prompt, echo in prompts]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("host")
    parser.add_argument("--jump", help="jump hosts, like ssh -J (default: ProxyJump)")
    parser.add_argument("-F", "--ssh-config", help="SSH config file (default ~/.ssh/config)")
    parser.add_argument("--venv", help="remote virtual environment to enter")
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        with RemoteNotebook(
            args.host, jump=args.jump, ssh_config=args.ssh_config, venv=args.venv, auth_handler=ask
        ) as nb:
            print(f"notebook ready after {time.monotonic() - started:.1f} s: {nb.url}")
            request = urllib.request.Request(
                f"{nb.base_url}api/status", headers={"Authorization": f"token {nb.token}"}
            )
            with urllib.request.urlopen(request, timeout=30) as reply:
                status = json.load(reply)
            print(f"it answers through the jump hosts: started {status['started']}")
        print("stopped: the remote server, the tunnel and every hop are closed")
    except RJupyterError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A notebook held the way a REPL or a script holds it: started, used, never closed.

    python examples/repl_style.py HOST [--venv PATH] [-F SSH_CONFIG] [--watch]

No `with`, no close(): when this program ends (normally, by sys.exit, an exception, SIGTERM or
a closed terminal), rjupyter stops the remote server, its kernels and the tunnel by itself.
With --watch it prints the connection's state changes and waits until the server ends, is
stopped by hand (`rjupyter stop HOST --pid PID`), or the program is interrupted.
"""

from __future__ import annotations

import argparse
import sys
import threading

from rjupyter import RemoteNotebook, RJupyterError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("host")
    parser.add_argument("--venv", help="remote virtual environment to enter")
    parser.add_argument("-F", "--ssh-config", help="SSH config file (default ~/.ssh/config)")
    parser.add_argument("--watch", action="store_true", help="wait until the server ends")
    args = parser.parse_args(argv)
    changed = threading.Event()

    def on_change(connected: bool) -> None:
        print(f"connected: {connected}", flush=True)
        changed.set()

    try:
        nb = RemoteNotebook(
            args.host, venv=args.venv, ssh_config=args.ssh_config, on_connection_change=on_change
        ).start()
        print(f"notebook ready: {nb.url.split('?')[0]} (pid {nb.remote_pid})", flush=True)
        print(nb.execute("6 * 7").text, flush=True)
        while args.watch and nb.connected:
            changed.wait()
            changed.clear()
        if args.watch:
            print(f"still connected: {nb.connected}", flush=True)
            _ = nb.url  # raises: the server is gone (its exit status and last output)
    except RJupyterError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0  # nb was never closed: rjupyter closes it as the program ends


if __name__ == "__main__":
    sys.exit(main())

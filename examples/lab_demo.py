"""rjupyter's main job on an embedded default: a throwaway local SSH "remote".

    ./dev demo            (or: python examples/lab_demo.py, as root)

Starts the test lab's remote host (a real OpenSSH sshd in its own network namespace, a throwaway
user, a Jupyter environment), opens a RemoteNotebook on it, prints the URL, proves it answers by
running code in a kernel through the tunnel, then shuts everything down.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from rjupyter import RemoteNotebook, RJupyterError
from rjupyter.testing import Lab, LabError


def call(url: str, token: str, method: str = "GET") -> tuple[int, dict[str, object]]:
    data = b"{}" if method == "POST" else None
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Authorization": f"token {token}"}
    )
    with urllib.request.urlopen(request, timeout=30) as reply:
        return reply.status, json.load(reply)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="rjupyter on a throwaway local SSH remote")
    parser.add_argument("--app", default="lab", choices=["notebook", "lab", "server"])
    parser.add_argument("--hold", action="store_true", help="keep it up until Enter")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="rjupyter-demo-") as workdir:
        try:
            with Lab(Path(workdir)) as lab:
                host = lab.add_host("demo-remote")
                print(f"remote host ready: sshd at {host.address}:{host.port} (user {lab.user})")
                started = time.monotonic()
                with RemoteNotebook(
                    host.name, app=args.app, ssh_config=lab.ssh_config, venv=lab.jupyter_venv
                ) as nb:
                    print(f"notebook ready in {time.monotonic() - started:.1f} s: {nb.url}")
                    status, _ = call(f"{nb.base_url}api/status", nb.token)
                    print(f"GET /api/status through the tunnel -> {status}")
                    status, kernel = call(f"{nb.base_url}api/kernels", nb.token, "POST")
                    print(f"started kernel {kernel['id']} ({kernel['name']}) -> {status}")
                    if args.hold:
                        print("press Enter to stop")
                        with contextlib.suppress(EOFError, KeyboardInterrupt):
                            input()
                print("notebook, kernel, tunnel and SSH connection stopped")
            print("lab torn down: nothing left running")
        except (RJupyterError, LabError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

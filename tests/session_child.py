"""A separate Python process that holds a RemoteNotebook, for the session tests.

    python session_child.py HOST SSH_CONFIG VENV MODE [ABANDON]

MODE "hold": print one JSON line (pid, local_port, run_dir) and sleep until killed.
MODE "keep": with keep_running=True, start a kernel, set x = 4242 in it, print the JSON and exit.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.request

from helpers import run_in_kernel

from rjupyter import RemoteNotebook


def main() -> None:
    host, ssh_config, venv, mode = sys.argv[1:5]
    abandon = float(sys.argv[5]) if len(sys.argv) > 5 else 1800.0
    nb = RemoteNotebook(
        host,
        ssh_config=ssh_config,
        venv=venv,
        keep_running=mode == "keep",
        abandon_timeout=abandon,
        app="server",
    )
    with nb:
        facts = {"pid": nb.remote_pid, "local_port": nb.local_port, "port": nb.remote_port}
        if mode == "keep":
            request = urllib.request.Request(
                f"{nb.base_url}api/kernels",
                data=b"{}",
                method="POST",
                headers={"Authorization": f"token {nb.token}"},
            )
            with urllib.request.urlopen(request) as reply:
                kernel_id = json.load(reply)["id"]
            run_in_kernel(nb.base_url, nb.token, kernel_id, "x = 4242")
            facts["kernel"] = kernel_id
            print(json.dumps(facts), flush=True)
            return
        print(json.dumps(facts), flush=True)
        time.sleep(3600)


if __name__ == "__main__":
    main()

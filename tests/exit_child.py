"""A program that holds a notebook and ends in one way, for tests/test_exits.py.

    python exit_child.py HOST SSH_CONFIG VENV MODE

Starts a notebook with ``nb.start()`` (never closed; abandon timeout 30 minutes, so the watchdog
cannot be what cleans up), prints one JSON line of facts, then, by MODE:
  end           the script simply ends             exit3     sys.exit(3)
  raise         an unhandled exception             wait      sleeps until a signal ends it
  with          inside a `with` block, sleeps until a signal ends it
  other-closed  a second notebook, never started, is closed; then sleeps until a signal
  keep          keep_running=True; the script ends
  tunnel        a Tunnel to the notebook's port, started and never closed; sleeps
"""

from __future__ import annotations

import json
import sys
import time

from rjupyter import RemoteNotebook, Tunnel


def main() -> None:
    host, ssh_config, venv, mode = sys.argv[1:5]

    def notebook(keep_running: bool = False) -> RemoteNotebook:
        return RemoteNotebook(
            host,
            ssh_config=ssh_config,
            venv=venv,
            app="server",
            abandon_timeout=1800.0,
            keep_running=keep_running,
        )

    if mode == "with":
        with notebook() as nb:
            print(json.dumps({"pid": nb.remote_pid, "local_port": nb.local_port}), flush=True)
            time.sleep(3600)
    nb = notebook(keep_running=mode == "keep").start()
    facts = {"pid": nb.remote_pid, "local_port": nb.local_port}
    if mode == "tunnel":
        tunnel = Tunnel(host, str(nb.remote_socket), ssh_config=ssh_config).start()
        facts["tunnel_port"] = tunnel.local_port
    if mode == "other-closed":
        notebook().close()
    print(json.dumps(facts), flush=True)
    if mode == "exit3":
        sys.exit(3)
    if mode == "raise":
        raise RuntimeError("the program failed")
    if mode in ("wait", "other-closed", "tunnel"):
        time.sleep(3600)


if __name__ == "__main__":
    main()

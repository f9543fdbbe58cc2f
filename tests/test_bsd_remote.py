"""The remote scripts on a macOS or BSD host: no /proc, no GNU-only flags (no lab).

A BSD-like host is made of this machine: every ``/proc/`` path in the scripts points nowhere, and
``ps``, ``stat`` and ``tail`` on the PATH refuse the GNU-only spellings (``--ppid``, ``--pid``,
``stat -c``) and answer the BSD ones (``stat -f %m``) as BSD does. A fake Jupyter is launched by
the real launch script under dash and bash; the inventory lists it as running, the alive and
watch scripts follow it, and the stop script stops exactly it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import cast

import pytest
from helpers import SHELLS
from test_launch_script import make_venv, script

from rjupyter._server._inventory import find_server, parse_inventory
from rjupyter._server._remote import RemoteServer
from rjupyter._server._scripts import INVENTORY_SCRIPT, WATCH_SCRIPT, whole
from rjupyter._server._startup import ServerInfo
from rjupyter._ssh._connection import ConnectionSlot, SSHConnection

PS = """#!/bin/sh
for arg in "$@"; do
  case "$arg" in --*|-C|-e) echo "ps: illegal option -- ${arg#-}" >&2; exit 1;; esac
done
exec /usr/bin/ps "$@"
"""
STAT = f"""#!/bin/sh
case "$1" in
  -c) echo "stat: illegal option -- c" >&2; exit 1;;
  -f) exec {sys.executable} -c 'import os, sys; print(int(os.stat(sys.argv[1]).st_mtime))' "$3";;
esac
exec /usr/bin/stat "$@"
"""
TAIL = """#!/bin/sh
for arg in "$@"; do
  case "$arg" in --*) echo "tail: illegal option -- ${arg#-}" >&2; exit 1;; esac
done
exec /usr/bin/tail "$@"
"""
FAKE_JUPYTER = """#!/bin/sh
runtime="$HOME/.local/share/jupyter/runtime"
mkdir -p "$runtime"
printf '{"pid": %s, "port": 20001, "url": "http://127.0.0.1:20001/", "token": "t"}' "$$" \\
  > "$runtime/jpserver-$$.json"
echo "[I ServerApp] Jupyter Server is running at: file://$runtime/jpserver-$$-open.html"
exec sleep 120
"""


def bsd(text: str) -> str:
    """The script as a host without /proc runs it."""
    return text.replace("/proc/", "/nonexistent/proc/")


class BSDHost:
    """``SSHConnection.run``/``stream`` on a BSD-like view of this machine."""

    def __init__(self, shell: str, home: Path) -> None:
        self.shell, self.home = shell, home
        tools = home / "bsd-bin"
        tools.mkdir(exist_ok=True)
        for name, text in (("ps", PS), ("stat", STAT), ("tail", TAIL)):
            (tools / name).write_text(text)
            (tools / name).chmod(0o755)
        self.env = {"HOME": str(home), "PATH": f"{tools}:/usr/bin:/bin"}

    def popen(self, text: str, args: Sequence[str] = ()) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [self.shell, "-s", "--", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=self.env,
            cwd=self.home,
        )
        assert process.stdin is not None
        process.stdin.write(bsd(text))
        process.stdin.flush()
        return process

    def run(self, text: str, args: Sequence[str] = (), *, timeout: float = 30.0) -> tuple[int, str]:
        process = self.popen(text, args)
        output, _ = process.communicate(timeout=timeout)
        return process.returncode, output


def wait_for_file(path: Path, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists() or not path.read_text().strip():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


@pytest.mark.parametrize("shell", SHELLS)
def test_a_server_on_a_host_without_proc_is_listed_followed_and_stopped(
    shell: str, tmp_path: Path
) -> None:
    host = BSDHost(shell, tmp_path)
    venv = make_venv(tmp_path)
    (venv / "bin" / "jupyter").write_text(FAKE_JUPYTER)
    launch = host.popen(script(venv=str(venv), run_id="bsd1", abandon=60))
    run = tmp_path / ".local/state/rjupyter/bsd1"
    try:
        wait_for_file(run / "pid")
        pid = int((run / "pid").read_text())
        wait_for_file(tmp_path / f".local/share/jupyter/runtime/jpserver-{pid}.json")
        assert " " in (run / "pid.start").read_text().strip(), "ps -o lstart, not /proc"
        status, output = host.run(INVENTORY_SCRIPT)
        assert status == 0, output
        records = parse_inventory(output)
        record = find_server(records, host="bsd", pid=pid, port=None)
        assert not record.stale, "a running server is listed as running, not stale"
        assert record.managed
        connection = cast(SSHConnection, host)
        info = ServerInfo(port=20001, path="/", token="t", pid=pid, run_dir=str(run))
        server = RemoteServer(ConnectionSlot(connection), host="bsd", info=info)
        assert server.alive()
        watch = host.popen(whole([WATCH_SCRIPT]), [str(run), str(pid)])
        server.stop(grace=2)
        assert watch.stdout is not None
        assert watch.stdout.readline().startswith("RJUPYTER-EXIT"), "the watch saw the end"
        watch.communicate(timeout=10)
        assert not server.alive()
        assert not run.exists()
        launch.communicate(timeout=10)
    finally:
        if launch.poll() is None:
            launch.kill()
            launch.communicate()


def test_the_wrappers_refuse_gnu_spellings(tmp_path: Path) -> None:
    host = BSDHost("dash", tmp_path)
    for command in ("ps -o pid= --ppid 1", "stat -c %Y /", "tail --pid=1 -f /dev/null"):
        status, output = host.run(f"{command}\n")
        assert status != 0, command
        assert "illegal option" in output
    status, output = host.run("stat -f %m /\n")
    assert status == 0
    assert output.strip().isdigit()
    assert os.path.exists("/usr/bin/ps")

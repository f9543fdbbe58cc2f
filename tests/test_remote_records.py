"""Findings 4 and 5 of issue 15: a PID is signalled only while it is still the recorded process,
and one host never acts on another's records in a home directory they share.

The remote scripts run here under real dash and bash against real processes; a "remote" is this
machine (``LocalConnection`` runs each script with ``sh -s`` as ``SSHConnection.run`` does). A
"reused PID" is a live process of ours whose start time differs from the recorded one; "another
host" is a run dir whose recorded host name is not this machine's.
"""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import cast

import pytest
from helpers import SHELLS, run_shell
from test_launch_script import make_venv, script

from rjupyter import RJupyterError
from rjupyter._server._inventory import find_server, parse_inventory
from rjupyter._server._remote import RemoteServer
from rjupyter._server._scripts import INVENTORY_SCRIPT, STOP_SCRIPT
from rjupyter._server._startup import ServerInfo
from rjupyter._ssh._connection import ConnectionSlot, SSHConnection

ELSEWHERE = "login1-elsewhere"


def spawn(argv0: str) -> subprocess.Popen[bytes]:
    """A live process of ours whose command line starts with ``argv0``."""
    return subprocess.Popen(["bash", "-c", f"exec -a {shlex.quote(argv0)} sleep 120"])


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        process.kill()
        process.wait()


def live_group_members(group: int) -> list[int]:
    """The processes of a process group that are not zombies."""
    members = []
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat_file.read_text().rpartition(") ")[2].split()
        except OSError:
            continue
        if fields[2] == str(group) and fields[0] != "Z":
            members.append(int(stat_file.parent.name))
    return members


def alive(process: subprocess.Popen[bytes]) -> bool:
    return process.poll() is None


def boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def start_time(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rpartition(") ")[2].split()[19]


def fake_run_dir(
    home: Path, pid: int, sup: int, *, host: str | None = None, start: str = "1"
) -> Path:
    """A run dir as the launch writes it; by default for a server that ended long ago (the
    recorded start time is not the PID's: the PIDs were reused)."""
    run = home / f".local/state/rjupyter/run{pid}"
    run.mkdir(parents=True, mode=0o700)
    files: dict[str, object] = {"pid": pid, "pid.start": start, "sup": sup, "sup.start": 1}
    files["uid"] = os.getuid()
    files |= {"host": host or socket.gethostname(), "boot": boot_id(), "log": ""}
    for name, value in files.items():
        (run / name).write_text(f"{value}\n")
    return run


@pytest.mark.parametrize("shell", SHELLS)
def test_a_reused_pid_is_not_signalled(
    shell: str, tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    server = spawn("/venv/bin/python /venv/bin/jupyter-lab --no-browser")
    supervisor = spawn("/bin/sh -c rjupyter-supervisor")
    processes += [server, supervisor]
    run = fake_run_dir(tmp_path, server.pid, supervisor.pid)
    result = run_shell(shell, STOP_SCRIPT, tmp_path, ["", str(run), "", "1", ""])
    assert "RJUPYTER-STOPPED" in result.stdout, result.stdout + result.stderr
    assert alive(server), "the stop script killed a process that only has the recorded PID"
    assert alive(supervisor), "the stop script killed the process group of a reused PID"
    assert not run.exists(), "the run dir of a server that is gone is cleaned up"


class LocalConnection:
    """``SSHConnection.run`` on this machine: the script on ``sh -s`` stdin, args quoted."""

    def __init__(self, shell: str, home: Path) -> None:
        self.shell, self.home = shell, home

    def run(self, text: str, args: Sequence[str] = (), *, timeout: float = 30.0) -> tuple[int, str]:
        result = run_shell(self.shell, text, self.home, list(args), timeout=timeout)
        return result.returncode, result.stdout + result.stderr


def local_server(shell: str, home: Path, info: ServerInfo) -> RemoteServer:
    connection = cast(SSHConnection, LocalConnection(shell, home))
    return RemoteServer(ConnectionSlot(connection), host="login2", info=info)


@pytest.mark.parametrize("shell", SHELLS)
def test_stopping_another_hosts_server_says_where_it_runs(
    shell: str, tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    server = spawn("jupyter-lab")
    processes.append(server)
    run = fake_run_dir(tmp_path, server.pid, server.pid, host=ELSEWHERE)
    info = ServerInfo(port=1, path="/", token="t", pid=server.pid, run_dir=str(run))
    result = run_shell(shell, STOP_SCRIPT, tmp_path, ["", str(run), "", "1", ""])
    assert result.returncode == 3
    assert f"RJUPYTER-ELSEWHERE {ELSEWHERE}" in result.stdout
    with pytest.raises(RJupyterError, match=f"started on {ELSEWHERE}, not on login2"):
        local_server(shell, tmp_path, info).stop(grace=1)
    assert alive(server)
    assert run.exists(), "another host's run dir (its watchdog) is left in place"
    assert not local_server(shell, tmp_path, info).alive(), "another host's server is not ours"


def write_runtime_file(home: Path, pid: int, port: int) -> None:
    runtime = home / ".local/share/jupyter/runtime"
    runtime.mkdir(parents=True, exist_ok=True)
    content = f'{{"pid": {pid}, "port": {port}, "url": "http://localhost:{port}/", "token": "t"}}'
    (runtime / f"jpserver-{pid}.json").write_text(content)


@pytest.mark.parametrize("shell", SHELLS)
def test_the_inventory_reports_other_hosts_and_never_counts_a_kernel(
    shell: str, tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    other = spawn("/venv/bin/jupyter-lab")  # login2's process under login1's recorded PID
    kernel = spawn("/venv/bin/python -m ipykernel_launcher -f /h/jupyter/runtime/kernel-1.json")
    mine = spawn("/venv/bin/jupyter-lab --no-browser")
    processes += [other, kernel, mine]
    fake_run_dir(tmp_path, other.pid, other.pid, host=ELSEWHERE)
    fake_run_dir(tmp_path, mine.pid, mine.pid, start=start_time(mine.pid))
    for port, process in enumerate((other, kernel, mine), 20001):
        write_runtime_file(tmp_path, process.pid, port)
    status, output = LocalConnection(shell, tmp_path).run(INVENTORY_SCRIPT)
    assert status == 0, output
    records = {record.pid: record for record in parse_inventory(output)}
    assert records[other.pid].other_host == ELSEWHERE
    assert records[other.pid].stale
    assert records[kernel.pid].stale, "a kernel's command line mentions jupyter; it is no server"
    assert not records[mine.pid].stale, "a server of this host that runs is listed as running"
    assert records[mine.pid].managed
    assert records[mine.pid].app == "lab"
    with pytest.raises(RJupyterError, match=f"started on {ELSEWHERE}"):
        find_server(list(records.values()), host="login2", pid=other.pid, port=None)
    assert find_server(list(records.values()), host="login2", pid=None, port=None).pid == mine.pid


@pytest.mark.parametrize("shell", SHELLS)
def test_a_launched_server_is_recorded_and_stopped_exactly(shell: str, tmp_path: Path) -> None:
    venv = make_venv(tmp_path)
    (venv / "bin" / "jupyter").write_text("#!/bin/sh\necho started\nexec sleep 120\n")
    launch = subprocess.Popen(
        [shell, "-s"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
        cwd=tmp_path,
    )
    assert launch.stdin is not None
    launch.stdin.write(script(venv=str(venv), run_id="abc123", abandon=60).encode())
    launch.stdin.close()
    run = tmp_path / ".local/state/rjupyter/abc123"
    try:
        deadline = time.monotonic() + 10
        while not (run / "pid").exists():
            assert time.monotonic() < deadline, "the supervisor never wrote the server's PID"
            time.sleep(0.05)
        pid = int((run / "pid").read_text())
        assert (run / "host").read_text().strip() == socket.gethostname()
        assert (run / "uid").read_text().strip() == str(os.getuid())
        assert (run / "boot").read_text().strip() == boot_id()
        assert (run / "pid.start").read_text().strip().isdigit()
        assert (run / "sup.start").read_text().strip().isdigit()
        info = ServerInfo(port=1, path="/", token="t", pid=pid, run_dir=str(run))
        assert local_server(shell, tmp_path, info).alive()
        supervisor = int((run / "sup").read_text())
        local_server(shell, tmp_path, info).stop(grace=2)
        assert live_group_members(supervisor) == [], "the watchdog outlived the stop"
        assert pid not in live_group_members(supervisor)
        assert not run.exists()
        launch.wait(10)
    finally:
        if launch.poll() is None:
            os.kill(launch.pid, signal.SIGKILL)
            launch.wait()

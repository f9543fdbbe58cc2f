"""Nothing left behind however the program ends, and a dead server never goes unnoticed.

Each exit path runs a real program (tests/exit_child.py) that starts a notebook with
``nb.start()`` and never closes it, against the lab's real sshd and Jupyter; the abandon timeout
is 30 minutes, so the server's own watchdog cannot be what cleans up. The measured time from
the program's end to a clean remote host is printed (``pytest -s`` shows it).
"""

from __future__ import annotations

import _thread
import contextlib
import gc
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import http, port_is_closed, wait_for

from rjupyter import LaunchError, RemoteNotebook, Tunnel, stop_server
from rjupyter._server import _remote
from rjupyter._signals import holders
from rjupyter.testing import Lab, LabHost

CHILD = Path(__file__).with_name("exit_child.py")
RJUPYTER = str(Path(sys.executable).with_name("rjupyter"))


def connected(nb: RemoteNotebook) -> bool:
    return nb.connected


def run_dirs(lab: Lab) -> list[Path]:
    return [path for path in (lab.home / ".local/state/rjupyter").glob("*") if path.is_dir()]


def clean(lab: Lab, remote: LabHost) -> bool:
    return remote.user_processes() == [] and run_dirs(lab) == []


def seconds_to_clean(lab: Lab, remote: LabHost, limit: float = 5.0) -> float:
    """Seconds until the remote host is clean; fails after ``limit``."""
    started = time.monotonic()
    assert wait_for(lambda: clean(lab, remote), limit), (remote.user_processes(), run_dirs(lab))
    return time.monotonic() - started


def spawn(argv: list[str]) -> subprocess.Popen[str]:
    env = {key: value for key, value in os.environ.items() if key != "SSH_AUTH_SOCK"}
    env["PYTHONPATH"] = os.pathsep.join([str(CHILD.parent), env.get("PYTHONPATH", "")])
    return subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        stdin=subprocess.DEVNULL,
    )


def child(lab: Lab, remote: LabHost, mode: str) -> subprocess.Popen[str]:
    return spawn(
        [sys.executable, str(CHILD), remote.name, str(lab.ssh_config), lab.jupyter_venv, mode]
    )


def finish(process: subprocess.Popen[str]) -> tuple[int, str]:
    """Wait for the program's end: its exit status and what it wrote to stderr."""
    _, err = process.communicate(timeout=60)
    return process.returncode, err


def facts_of(process: subprocess.Popen[str]) -> dict[str, Any]:
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line, f"exited early with {process.wait(5)}: {process.communicate()[1]}"
    facts: dict[str, Any] = json.loads(line)
    return facts


EXITS = {
    # mode, signal sent once it printed its facts, expected exit status
    "the script simply ends": ("end", None, 0),
    "sys.exit(3)": ("exit3", None, 3),
    "an unhandled exception": ("raise", None, 1),
    "SIGTERM": ("wait", signal.SIGTERM, 143),
    "SIGHUP (terminal closed)": ("wait", signal.SIGHUP, 129),
    "SIGHUP inside a with block": ("with", signal.SIGHUP, 129),
    "SIGTERM after another notebook was closed unstarted": ("other-closed", signal.SIGTERM, 143),
    "SIGTERM with a Tunnel open too": ("tunnel", signal.SIGTERM, 143),
}


@pytest.mark.parametrize("how", list(EXITS))
def test_nothing_is_left_however_the_program_ends(lab: Lab, remote: LabHost, how: str) -> None:
    mode, signum, status = EXITS[how]
    process = child(lab, remote, mode)
    facts = facts_of(process)
    assert facts["pid"] in [pid for pid, _ in remote.user_processes()]
    if signum is not None:
        process.send_signal(signum)
    code, err = finish(process)
    assert code == status, err
    took = seconds_to_clean(lab, remote)
    print(f"{how}: exit {status}, remote clean {took:.2f} s after the program ended")
    assert port_is_closed(facts["local_port"])


def test_keep_running_survives_its_program_on_purpose(lab: Lab, remote: LabHost) -> None:
    process = child(lab, remote, "keep")
    facts = facts_of(process)
    assert finish(process)[0] == 0
    assert facts["pid"] in [pid for pid, _ in remote.user_processes()]
    stop_server(remote.name, pid=facts["pid"], ssh_config=lab.ssh_config)
    seconds_to_clean(lab, remote, 10)


def test_rjupyter_start_and_a_closed_terminal(lab: Lab, remote: LabHost, tmp_path: Path) -> None:
    os.environ["RJUPYTER_CONFIG"] = str(tmp_path / "no-profile.toml")
    process = spawn(
        [
            RJUPYTER,
            "start",
            remote.name,
            "-F",
            str(lab.ssh_config),
            "--venv",
            lab.jupyter_venv,
            "--json",
        ]
    )
    del os.environ["RJUPYTER_CONFIG"]
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line, process.communicate()[1]
    assert http(json.loads(line)["url"])[0] == 200
    process.send_signal(signal.SIGHUP)
    assert finish(process)[0] == 129
    took = seconds_to_clean(lab, remote)
    print(f"rjupyter start + SIGHUP: exit 129, remote clean {took:.2f} s after")


def test_an_unreferenced_notebook_is_closed_and_says_so(
    lab: Lab, remote: LabHost, nb_options: dict[str, Any]
) -> None:
    notebook = RemoteNotebook(remote.name, abandon_timeout=1800, **nb_options).start()
    alive = weakref.ref(notebook)
    assert remote.user_processes()
    with pytest.warns(ResourceWarning, match=f"unclosed RemoteNotebook on {remote.name}"):  # noqa: PT031
        del notebook
        gc.collect()
    assert alive() is None, "no thread keeps a started notebook reachable"
    took = seconds_to_clean(lab, remote, 15)
    print(f"collected unclosed: remote clean {took:.2f} s after")
    assert wait_for(lambda: holders() == 0, 5)


def test_an_unreferenced_tunnel_is_closed_and_says_so(
    lab: Lab, remote: LabHost, nb_options: dict[str, Any]
) -> None:
    with RemoteNotebook(remote.name, **nb_options) as nb:
        tunnel = Tunnel(remote.name, str(nb.remote_socket), ssh_config=lab.ssh_config).start()
        port = tunnel.local_port
        # The last reference goes inside the block: CPython collects it at once.
        with pytest.warns(ResourceWarning, match=f"unclosed Tunnel to {remote.name}"):  # noqa: PT031
            del tunnel
            gc.collect()
        assert wait_for(lambda: port_is_closed(port), 10)


# -- interrupted at each stage of the start ---------------------------------------------------

STAGES = ["connect", "authenticate", "launch", "sent", "setup", "tunnel", "ready"]


def interrupt_at(stage: str, monkeypatch: pytest.MonkeyPatch) -> Callable[[str, str], None]:
    """A progress callback (and, for stages it cannot see, a patch) raising Ctrl-C at ``stage``."""
    if stage == "sent":  # the script has gone out; nothing has come back yet

        def follow(self: _remote.RemoteServer, channel: Any) -> None:
            raise KeyboardInterrupt

        monkeypatch.setattr(_remote.RemoteServer, "_follow", follow)

    def progress(step: str, detail: str) -> None:
        if step == stage:
            raise KeyboardInterrupt
        if stage == "setup" and step == "launch":  # then a slow setup line runs: Ctrl-C
            threading.Timer(2.0, _thread.interrupt_main).start()

    return progress


@pytest.mark.parametrize("keep_running", [False, True])
@pytest.mark.parametrize("stage", STAGES)
def test_interrupted_at_each_stage_nothing_is_left(
    lab: Lab,
    remote: LabHost,
    nb_options: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    stage: str,
    keep_running: bool,
) -> None:
    if keep_running and stage in ("connect", "authenticate"):
        pytest.skip("nothing runs remotely yet: the same as without keep_running")
    setup = ["sleep 30"] if stage == "setup" else []
    notebook = RemoteNotebook(
        remote.name,
        progress=interrupt_at(stage, monkeypatch),
        setup=setup,
        keep_running=keep_running,
        **nb_options,
    )
    with pytest.raises(KeyboardInterrupt):
        notebook.start()
    took = seconds_to_clean(lab, remote)
    print(f"Ctrl-C at {stage} (keep_running={keep_running}): clean {took:.2f} s after")


# -- a server that dies under an open notebook --------------------------------------------------

SQUATTER = """\
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(8); s.settimeout(0.2)
print("listening", flush=True, file=sys.stderr)
end = time.monotonic() + 30
while time.monotonic() < end:
    try:
        conn, _ = s.accept()
    except TimeoutError:
        continue
    print("GOT", conn.recv(4096)[:40], flush=True, file=sys.stderr)
"""


@pytest.fixture
def squatter(remote: LabHost) -> Iterator[Callable[[int], subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []

    def start(port: int) -> subprocess.Popen[bytes]:
        process = remote.popen(["/usr/bin/python3", "-c", SQUATTER, str(port)])
        started.append(process)
        assert process.stderr is not None
        assert process.stderr.readline().strip() == b"listening"
        return process

    yield start
    for process in started:
        process.kill()
        process.wait()


def test_a_killed_server_is_noticed_and_its_port_never_reached(
    lab: Lab,
    remote: LabHost,
    nb_options: dict[str, Any],
    squatter: Callable[[int], subprocess.Popen[bytes]],
) -> None:
    events: list[bool] = []
    # On a TCP port: what a Unix socket in a private directory rules out (test_unix_socket.py).
    nb = RemoteNotebook(
        remote.name, unix_socket=False, on_connection_change=events.append, **nb_options
    ).start()
    try:
        port, token = nb.remote_port, nb.token
        assert port is not None
        os.kill(nb.remote_pid, signal.SIGKILL)
        killed = time.monotonic()
        assert wait_for(lambda: not connected(nb), 5)
        print(f"server SIGKILLed: noticed after {time.monotonic() - killed:.2f} s")
        assert events[-1:] == [False]
        with pytest.raises(LaunchError, match="exited") as raised:
            _ = nb.url
        assert raised.value.exit_status == 137
        # Another user binds the freed port: nothing reaches it through our local port.
        other = squatter(port)
        local = nb._session.forwarder.local_port  # type: ignore[union-attr]
        with socket.create_connection(("127.0.0.1", local), timeout=5) as sock:
            sock.sendall(
                f"GET /api/status HTTP/1.1\r\nAuthorization: token {token}\r\n\r\n".encode()
            )
            sock.settimeout(5)
            with contextlib.suppress(ConnectionResetError):
                assert sock.recv(100) == b"", "closed at once, not forwarded"
        time.sleep(1.0)  # give a forwarded connection time to show up in the squatter
        other.kill()
        _, err = other.communicate()
        assert b"GOT" not in err
    finally:
        with pytest.raises(LaunchError):
            nb.close()
    seconds_to_clean(lab, remote, 10)


def test_heartbeat_failures_are_reported_and_retried(
    lab: Lab, remote: LabHost, nb_options: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="rjupyter")
    events: list[bool] = []
    nb = RemoteNotebook(
        remote.name, abandon_timeout=12, on_connection_change=events.append, **nb_options
    ).start()
    (run_dir,) = run_dirs(lab)
    try:
        # The heartbeat cannot be written (a directory in the way, as root's: like a full disk,
        # it fails while the server and the link are fine).
        blocker = run_dir / "heartbeat"
        blocker.unlink(missing_ok=True)
        blocker.mkdir()
        assert wait_for(lambda: events[-1:] == [False], 10), events
        assert not connected(nb)
        assert nb.url  # the server still answers: only its watchdog is not fed
        warnings = [r for r in caplog.records if "cannot write the heartbeat" in r.getMessage()]
        assert len(warnings) == 1
        time.sleep(2.5)  # failing heartbeats are retried (each period), warned about once
        assert (
            len([r for r in caplog.records if "cannot write the heartbeat" in r.getMessage()]) == 1
        )
        blocker.rmdir()
        assert wait_for(lambda: events[-1:] == [True], 10), events
        assert connected(nb)
        assert http(f"{nb.base_url}api/status", token=nb.token)[0] == 200
        # When it persists (here: the run dir was removed), the watchdog stops the server after
        # the abandon timeout, and the notebook says so: the documented behaviour.
        shutil.rmtree(run_dir)
        assert wait_for(lambda: events[-1:] == [False], 10)
        with pytest.raises(LaunchError, match="exited"):
            assert wait_for(lambda: not bool(nb.url), 30)
    finally:
        with contextlib.suppress(OSError):
            (run_dir / "heartbeat").rmdir()
        with contextlib.suppress(LaunchError):
            nb.close()
    seconds_to_clean(lab, remote, 10)

"""Sessions that outlive the network: reconnect after real faults, abandon, keep_running and
attach, list and stop by PID, and no growth over many cycles. Against the lab's real sshd."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import websocket
from faults import DelayProxy, dropping
from helpers import http, port_is_closed, run_in_kernel, wait_for

from rjupyter import (
    RemoteNotebook,
    RJupyterError,
    SSHConnectError,
    list_servers,
    stop_server,
)
from rjupyter.testing import Lab, LabHost, ssh_config_through

CHILD = Path(__file__).with_name("session_child.py")


@pytest.fixture(autouse=True)
def no_agent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)


def start_kernel_with_state(nb: RemoteNotebook) -> str:
    status, body = http(f"{nb.base_url}api/kernels", token=nb.token, method="POST")
    assert status == 201
    kernel_id: str = json.loads(body)["id"]
    run_in_kernel(nb.base_url, nb.token, kernel_id, "x = 42")
    return kernel_id


def state_survived(nb: RemoteNotebook, kernel_id: str) -> bool:
    try:
        return run_in_kernel(nb.base_url, nb.token, kernel_id, "print(x)").strip() == "42"
    except (OSError, AssertionError, websocket.WebSocketException) as exc:
        print("not yet:", exc)
        return False


class Events:
    def __init__(self) -> None:
        self.seen: list[bool] = []

    def __call__(self, connected: bool) -> None:
        self.seen.append(connected)


@pytest.fixture
def watched(remote: LabHost, nb_options: dict[str, Any]) -> Iterator[tuple[RemoteNotebook, Events]]:
    events = Events()
    with RemoteNotebook(remote.name, on_connection_change=events, **nb_options) as nb:
        yield nb, events
    assert wait_for(lambda: remote.user_processes() == [], 15)


def assert_recovers(nb: RemoteNotebook, events: Events, kernel_id: str, port: int) -> None:
    assert wait_for(lambda: events.seen[-2:] == [False, True], 60), events.seen
    assert nb.connected
    assert nb.local_port == port
    assert wait_for(lambda: state_survived(nb, kernel_id), 30)


def test_reconnects_after_the_connection_is_killed(
    watched: tuple[RemoteNotebook, Events], remote: LabHost
) -> None:
    nb, events = watched
    kernel_id, port = start_kernel_with_state(nb), nb.local_port
    for pid in remote.session_sshd_pids():
        with contextlib.suppress(ProcessLookupError):  # a session that just ended
            os.kill(pid, signal.SIGTERM)
    assert_recovers(nb, events, kernel_id, port)


def test_reconnects_after_sshd_restarts(
    watched: tuple[RemoteNotebook, Events], remote: LabHost
) -> None:
    nb, events = watched
    kernel_id, port = start_kernel_with_state(nb), nb.local_port
    remote.restart_sshd()
    assert_recovers(nb, events, kernel_id, port)


def test_survives_a_30_second_partition(
    watched: tuple[RemoteNotebook, Events], remote: LabHost
) -> None:
    nb, _ = watched
    kernel_id, port = start_kernel_with_state(nb), nb.local_port
    with dropping(remote.address):
        time.sleep(30)  # the fault: the link is silent for 30 s
    assert wait_for(lambda: state_survived(nb, kernel_id), 90)
    assert nb.local_port == port
    assert wait_for(lambda: nb.connected, 60)


def test_works_through_loss_and_delay(
    tmp_path: Path, lab: Lab, remote: LabHost, nb_options: dict[str, Any]
) -> None:
    proxy = DelayProxy((remote.address, remote.port))
    config = ssh_config_through(lab, remote, proxy.port, tmp_path)
    options = {**nb_options, "ssh_config": config}
    try:
        with RemoteNotebook("slow", **options) as nb:
            kernel_id, port = start_kernel_with_state(nb), nb.local_port
            proxy.delay = 0.05  # +100 ms round trip from now on
            with dropping(remote.address, percent=5):
                for _ in range(5):
                    assert http(f"{nb.base_url}api/status", token=nb.token)[0] == 200
                assert state_survived(nb, kernel_id)
            assert nb.local_port == port
    finally:
        proxy.close()
    assert wait_for(lambda: remote.user_processes() == [], 15), remote.user_processes()


def child(lab: Lab, host: LabHost, mode: str, abandon: float = 1800.0) -> subprocess.Popen[str]:
    env = {key: value for key, value in os.environ.items() if key != "SSH_AUTH_SOCK"}
    env["PYTHONPATH"] = str(CHILD.parent)
    return subprocess.Popen(
        [
            sys.executable,
            str(CHILD),
            host.name,
            str(lab.ssh_config),
            lab.jupyter_venv,
            mode,
            str(abandon),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )


def read_facts(process: subprocess.Popen[str]) -> dict[str, Any]:
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line, f"the child exited early with {process.wait()}"
    process.stdout.close()
    facts: dict[str, Any] = json.loads(line)
    return facts


def test_sigkilled_client_leaves_no_server_behind(lab: Lab, remote: LabHost) -> None:
    process = child(lab, remote, "hold", abandon=6)
    facts = read_facts(process)
    assert facts["pid"] in [pid for pid, _ in remote.user_processes()]
    process.kill()
    process.wait()
    killed = time.monotonic()
    assert wait_for(lambda: remote.user_processes() == [], 6 + 10)
    print(f"server gone {time.monotonic() - killed:.1f} s after SIGKILL (abandon timeout 6 s)")
    assert not list((lab.home / ".local/state/rjupyter").glob("*"))


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_and_sigint_stop_the_server_cleanly(
    lab: Lab, remote: LabHost, signum: signal.Signals
) -> None:
    process = child(lab, remote, "hold")
    facts = read_facts(process)
    process.send_signal(signum)
    status = process.wait(30)
    assert status in (128 + signum, -signum, 1), status
    assert wait_for(lambda: remote.user_processes() == [], 5)
    assert port_is_closed(facts["local_port"])


def test_keep_running_then_attach_from_another_process(
    lab: Lab, remote: LabHost, nb_options: dict[str, Any]
) -> None:
    process = child(lab, remote, "keep")
    facts = read_facts(process)
    assert process.wait(30) == 0
    assert facts["pid"] in [pid for pid, _ in remote.user_processes()]
    with RemoteNotebook.attach(remote.name, pid=facts["pid"], ssh_config=lab.ssh_config) as nb:
        assert nb.remote_port == facts["port"]
        assert run_in_kernel(nb.base_url, nb.token, facts["kernel"], "print(x)").strip() == "4242"
        handle = nb.server
    assert facts["pid"] in [pid for pid, _ in remote.user_processes()], "attach leaves it running"
    assert str(facts["pid"]) in str(handle)
    with handle.attach(stop_on_close=True) as again:
        assert again.remote_pid == facts["pid"]
    assert wait_for(lambda: remote.user_processes() == [], 10)
    assert not list((lab.home / ".local/state/rjupyter").glob("*"))


def start_by_hand(lab: Lab, remote: LabHost, port: int) -> None:
    command = (
        f"cd ~ && setsid {lab.jupyter_venv}/bin/jupyter server --no-browser --ip=127.0.0.1 "
        f"--port={port} </dev/null >/dev/null 2>&1 &"
    )
    remote.run(["/bin/sh", "-c", command], check=True)


def test_list_and_stop_servers(lab: Lab, remote: LabHost, nb_options: dict[str, Any]) -> None:
    runtime = lab.home / ".local/share/jupyter/runtime"
    start_by_hand(lab, remote, 28765)
    stale = runtime / "jpserver-999999.json"
    with RemoteNotebook(remote.name, app="lab", keep_running=True, **nb_options) as ours:
        ours_pid = ours.remote_pid
        assert wait_for(lambda: len(list(runtime.glob("jpserver-*.json"))) >= 2, 30)
        remote.run(["sh", "-c", f'echo \'{{"pid": 999999, "port": 1, "url": "x"}}\' > {stale}'])
        servers = {record.pid: record for record in list_servers(remote.name, **_connect(lab))}
    assert servers[ours_pid].managed
    assert servers[ours_pid].app == "lab"
    assert servers[ours_pid].keep_running
    assert not servers[ours_pid].stale
    by_hand = next(record for record in servers.values() if record.port == 28765)
    assert not by_hand.managed
    assert by_hand.app == "server"
    assert not by_hand.stale
    assert servers[999999].stale
    assert "token" not in repr(by_hand)
    assert "?" not in by_hand.url
    assert stale.exists(), "list_servers deletes nothing"

    stopped = stop_server(remote.name, port=28765, **_connect(lab))
    assert stopped.pid == by_hand.pid
    live = [pid for pid, _ in remote.user_processes()]
    assert by_hand.pid not in live
    assert ours_pid in live, "stop_server touches nothing else"
    with pytest.raises(RJupyterError, match="stale"):
        stop_server(remote.name, pid=999999, **_connect(lab))
    stop_server(remote.name, pid=ours_pid, **_connect(lab))
    assert wait_for(lambda: remote.user_processes() == [], 10)
    assert stale.exists()
    stale.unlink()


def _connect(lab: Lab) -> dict[str, Any]:
    return {"ssh_config": lab.ssh_config}


def test_gives_up_after_reconnect_timeout(
    tmp_path: Path, lab: Lab, remote: LabHost, nb_options: dict[str, Any]
) -> None:
    # Keepalives every second, three unanswered ones mean dead (ServerAliveInterval/CountMax).
    config = tmp_path / "ssh_config"
    config.write_text(
        f"Host {remote.name}\n  ServerAliveInterval 1\n  ServerAliveCountMax 3\n"
        f"Include {lab.ssh_config}\n"
    )
    options = {**nb_options, "ssh_config": config}
    nb = RemoteNotebook(remote.name, reconnect_timeout=3, **options).start()
    pid = nb.remote_pid
    try:
        with dropping(remote.address):
            assert wait_for(lambda: not nb.connected, 30)
            with pytest.raises(SSHConnectError, match="could not reconnect within 3 s"):
                assert wait_for(lambda: bool(nb.url) and False, 30)
            with pytest.raises(SSHConnectError):
                nb.close()
    finally:
        nb.close()
    assert pid in [p for p, _ in remote.user_processes()], "still there until abandon timeout"
    stop_server(remote.name, pid=pid, ssh_config=lab.ssh_config)
    assert wait_for(lambda: remote.user_processes() == [], 10)

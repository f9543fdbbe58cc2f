"""Dead-peer detection against the lab: a host whose link goes silent is reported lost."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import paramiko
import pytest

from rjupyter import SSHConnectError
from rjupyter._deadline import Deadline
from rjupyter._ssh._connection import open_connection
from rjupyter._ssh._liveness import probe, round_trip
from rjupyter._ssh._options import ConnectOptions
from rjupyter.testing import Lab, LabHost


def alive_config(tmp_path: Path, lab: Lab, remote: LabHost) -> Path:
    config = tmp_path / "ssh_config"
    config.write_text(
        f"Host alive\n  ServerAliveInterval 1\n  ServerAliveCountMax 3\n"
        f"  HostName {remote.address}\n  Port {remote.port}\n  User {lab.user}\n"
        f"  IdentityFile {lab.identity_file}\n  IdentitiesOnly yes\n"
        f"  UserKnownHostsFile {lab.known_hosts}\n  StrictHostKeyChecking yes\n"
    )
    return config


def test_silent_peer_is_detected_within_interval_times_count(
    tmp_path: Path, lab: Lab, remote: LabHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    interface = remote.link_interface
    if interface is None:
        pytest.skip("needs the lab's network namespaces (root)")
    config = alive_config(tmp_path, lab, remote)
    connection = open_connection("alive", ConnectOptions(ssh_config=config), Deadline(20))
    reported: list[SSHConnectError] = []
    seen = threading.Event()

    def on_lost(error: SSHConnectError) -> None:
        reported.append(error)
        seen.set()

    connection.add_lost_callback(on_lost)
    try:
        assert connection.host.alive_interval == 1.0
        time.sleep(2.5)  # not readiness: proves that answered keepalives keep it alive
        connection.check()  # raises if lost
        assert connection.transport.is_active()
        subprocess.run(["ip", "link", "set", interface, "down"], check=True)
        cut = time.monotonic()
        try:
            assert seen.wait(1 * 3 + 5), "the silent peer was not detected"
            detected = time.monotonic() - cut
        finally:
            subprocess.run(["ip", "link", "set", interface, "up"], check=True)
        assert detected <= 1 * 3 + 1 + 3, detected  # interval x count (+1 probe phase) + slack
        assert reported == [connection.lost]
        assert "stopped answering" in str(connection.lost)
        with pytest.raises(SSHConnectError, match="stopped answering"):
            connection.check()
        assert not connection.is_active
        late: list[SSHConnectError] = []
        connection.add_lost_callback(late.append)
        assert late == [connection.lost], "a callback added after the loss runs at once"
    finally:
        connection.close()
        connection.close()
    keepalive_threads = [t for t in threading.enumerate() if "keepalive" in t.name]
    assert keepalive_threads == []
    print(f"detected after {detected:.2f} s")


def test_healthy_connection_checks_clean(lab: Lab, remote: LabHost) -> None:
    connection = open_connection(
        remote.name, ConnectOptions(ssh_config=lab.ssh_config), Deadline(20)
    )
    try:
        connection.check()
        assert connection.lost is None
        assert connection.host.alive_interval == 15.0  # rjupyter's default when unset
    finally:
        connection.close()


def test_a_probe_racing_a_close_reports_the_close() -> None:
    # The transport is still marked active but its socket is gone (a close racing the probe):
    # paramiko raises EOFError from the send; the probes say "closed" instead of raising in
    # their threads.
    left, right = socket.socketpair()
    transport: Any = paramiko.Transport(left)
    transport.active = True
    transport.clear_to_send.set()
    right.close()
    left.close()
    assert round_trip(transport) is None
    assert probe(transport) is False

"""rjupyter.Tunnel against the lab: the `ssh -N -L` case as an object."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
from typing import Any

import pytest
from helpers import http, port_is_closed, wait_for

from rjupyter import RemoteNotebook, Tunnel, TunnelError
from rjupyter.testing import Lab, LabHost


@pytest.fixture(autouse=True)
def no_agent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)


def banner(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        return conn.recv(64)


def test_tunnel_to_any_remote_address(lab: Lab, remote: LabHost) -> None:
    # The remote's own sshd, seen from the remote: its banner comes through the tunnel.
    with Tunnel(
        remote.name, remote.port, remote_host=remote.address, ssh_config=lab.ssh_config
    ) as tunnel:
        assert banner(tunnel.local_port).startswith(b"SSH-2.0-")
        port = tunnel.local_port
        assert "127.0.0.1" in repr(tunnel)
    assert port_is_closed(port)


def test_tunnel_to_a_running_notebook(
    lab: Lab, remote: LabHost, nb_options: dict[str, Any]
) -> None:
    with (
        RemoteNotebook(remote.name, **nb_options) as nb,
        Tunnel(remote.name, str(nb.remote_socket), ssh_config=lab.ssh_config) as tunnel,
    ):
        url = f"http://127.0.0.1:{tunnel.local_port}/api/status"
        assert http(url, token=nb.token)[0] == 200
        assert http(url)[0] == 403


def test_busy_local_port(lab: Lab, remote: LabHost) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        busy = holder.getsockname()[1]
        with pytest.raises(TunnelError, match=str(busy)):
            Tunnel(remote.name, 22, local_port=busy, ssh_config=lab.ssh_config).start()


def test_tunnel_reconnects_on_the_same_port(lab: Lab, remote: LabHost) -> None:
    events: list[bool] = []
    with Tunnel(
        remote.name,
        remote.port,
        remote_host=remote.address,
        ssh_config=lab.ssh_config,
        on_connection_change=events.append,
    ) as tunnel:
        port = tunnel.local_port
        for pid in remote.session_sshd_pids():
            with contextlib.suppress(ProcessLookupError):  # a session that just ended
                os.kill(pid, signal.SIGTERM)
        assert wait_for(lambda: events[-2:] == [False, True], 30), events
        assert tunnel.local_port == port
        assert banner(port).startswith(b"SSH-2.0-")

"""Spare channels: a forward's channels opened ahead of the clients that will use them.

Counted on the remote host, where each spare is a TCP connection from sshd to the target that
no client made yet (``ss`` in the remote's namespace).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from helpers import wait_for

from rjupyter import RemoteNotebook, Tunnel
from rjupyter._forward._spares import SPARE_IDLE
from rjupyter.testing import Lab, LabHost, TrafficServer
from rjupyter.testing._traffic import echo

SPARES = 3
_RECEIVED = re.compile(r"bytes_received:(\d+)")


@pytest.fixture(autouse=True)
def no_agent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)


@pytest.fixture(scope="module")
def traffic(remote: LabHost) -> Iterator[TrafficServer]:
    with TrafficServer(remote) as server:
        yield server


def accepted(remote: LabHost, port: int) -> dict[int, int]:
    """The connections the server on ``port`` holds: sshd's port -> bytes received."""
    result = remote.run(
        ["ss", "-Htni", "state", "established", f"( sport = :{port} )"], as_user=False, check=True
    )
    lines = result.stdout.splitlines()
    connections: dict[int, int] = {}
    for header, details in zip(lines[::2], lines[1::2], strict=True):
        peer = int(header.split()[-1].rsplit(":", 1)[1])
        match = _RECEIVED.search(details)
        connections[peer] = int(match.group(1)) if match else 0
    return connections


def connected_echo(port: int) -> socket.socket:
    """A client connection that has had one echo answered (the caller closes it)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(b"ECHO\nhello")
    answer = b""
    while len(answer) < 5:
        data = sock.recv(5 - len(answer))
        assert data, "the connection ended before the echo"
        answer += data
    assert answer == b"hello"
    return sock


def test_spares_open_before_any_client_are_used_and_replaced(
    lab: Lab, remote: LabHost, traffic: TrafficServer
) -> None:
    with Tunnel(
        remote.name, traffic.port, ssh_config=lab.ssh_config, spare_channels=SPARES
    ) as tunnel:
        assert wait_for(lambda: len(accepted(remote, traffic.port)) == SPARES, 30)
        spares = set(accepted(remote, traffic.port))
        with connected_echo(tunnel.local_port):
            # The client's bytes went over one of the connections opened before it came...
            now = accepted(remote, traffic.port)
            used = [peer for peer, received in now.items() if received]
            assert len(used) == 1
            assert used[0] in spares
            # ...and a new spare took its place.
            assert wait_for(lambda: len(accepted(remote, traffic.port)) == SPARES + 1, 30)
        echo(tunnel.local_port, b"x" * 100_000, rounds=3)  # many at once, each answered
    assert wait_for(lambda: not accepted(remote, traffic.port), 30)


def test_no_spares_by_default(lab: Lab, remote: LabHost, traffic: TrafficServer) -> None:
    tunnel = Tunnel(remote.name, traffic.port, ssh_config=lab.ssh_config)
    with tunnel, connected_echo(tunnel.local_port):
        assert len(accepted(remote, traffic.port)) == 1
    assert wait_for(lambda: not accepted(remote, traffic.port), 30)


def test_a_spare_the_server_ended_is_dropped_and_the_client_answered(
    lab: Lab, remote: LabHost, traffic: TrafficServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="rjupyter._forward._spares")

    def dropped() -> int:
        return sum("ended a spare" in record.getMessage() for record in caplog.records)

    with Tunnel(
        remote.name, traffic.port, ssh_config=lab.ssh_config, spare_channels=SPARES
    ) as tunnel:
        assert wait_for(lambda: len(accepted(remote, traffic.port)) == SPARES, 30)
        # The server's side of every spare is reset, as a server's idle timeout would end it.
        remote.run(
            ["ss", "-K", "-tn", "state", "established", f"( sport = :{traffic.port} )"],
            as_user=False,
            check=True,
        )
        assert wait_for(lambda: not accepted(remote, traffic.port), 30)
        # (A client that came before the server's close reached the tunnel would get a closed
        # connection, as from a server that closes it at once; docs/api.md says so.)
        assert wait_for(lambda: dropped() == SPARES, 30)
        with connected_echo(tunnel.local_port):
            # Spares come back once a client came (not in a loop against such a server).
            assert wait_for(lambda: len(accepted(remote, traffic.port)) == SPARES + 1, 30)
    assert wait_for(lambda: not accepted(remote, traffic.port), 30)


def test_what_the_server_sends_a_spare_first_reaches_its_client(lab: Lab, remote: LabHost) -> None:
    # sshd speaks first (its banner), before any client: kept for the client that comes.
    with Tunnel(
        remote.name,
        remote.port,
        remote_host=remote.address,
        ssh_config=lab.ssh_config,
        spare_channels=2,
    ) as tunnel:
        # The tunnel's own login, and the two spares.
        assert wait_for(lambda: len(accepted(remote, remote.port)) == 3, 30)
        with socket.create_connection(("127.0.0.1", tunnel.local_port), timeout=30) as conn:
            assert conn.makefile("rb").readline().startswith(b"SSH-2.0-OpenSSH")


def test_spares_nobody_takes_are_closed_until_a_client_comes(
    lab: Lab, remote: LabHost, traffic: TrafficServer
) -> None:
    with Tunnel(remote.name, traffic.port, ssh_config=lab.ssh_config, spare_channels=2) as tunnel:
        assert wait_for(lambda: len(accepted(remote, traffic.port)) == 2, 30)
        # SPARE_IDLE (10 s) later they are closed, and not replaced...
        assert wait_for(lambda: not accepted(remote, traffic.port), SPARE_IDLE + 20)
        # ...until a client comes (it opens its own channel, and the spares come back).
        with connected_echo(tunnel.local_port):
            assert wait_for(lambda: len(accepted(remote, traffic.port)) == 3, 30)


def test_spares_follow_a_reconnect(lab: Lab, remote: LabHost, traffic: TrafficServer) -> None:
    events: list[bool] = []
    with Tunnel(
        remote.name,
        traffic.port,
        ssh_config=lab.ssh_config,
        spare_channels=SPARES,
        on_connection_change=events.append,
    ) as tunnel:
        assert wait_for(lambda: len(accepted(remote, traffic.port)) == SPARES, 30)
        for pid in remote.session_sshd_pids():
            with contextlib.suppress(ProcessLookupError):  # a session that just ended
                os.kill(pid, signal.SIGTERM)
        assert wait_for(lambda: events[-2:] == [False, True], 30), events
        # The old spares went with the old connection; new ones over the new one.
        assert wait_for(lambda: len(accepted(remote, traffic.port)) == SPARES, 30)
        with connected_echo(tunnel.local_port):
            pass
    assert wait_for(lambda: not accepted(remote, traffic.port), 30)


def test_the_notebook_forward_keeps_spares(lab: Lab, remote: LabHost, nb_options: Any) -> None:
    with RemoteNotebook(remote.name, unix_socket=False, **nb_options) as nb:
        port = nb.remote_port
        assert port is not None
        assert wait_for(lambda: len(accepted(remote, port)) >= 6, 30)
    assert not accepted(remote, port)


def test_spare_channels_is_checked() -> None:
    with pytest.raises(ValueError, match="spare_channels"):
        Tunnel("host", 80, spare_channels=-1)

"""Jupyter on a Unix socket (the default) and more ports over the same login, against the lab.

The threat the socket removes: on a shared host every local user can connect to a TCP port on
its loopback (the token is then the only barrier). A socket in a 0700 directory is reachable by
its owner only; a second real user of the lab host shows the contrast.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import stat
from pathlib import Path
from typing import Any

import pytest
from helpers import http, http_server, port_is_closed, wait_for

from rjupyter import Forward, LaunchError, RemoteNotebook, TunnelError
from rjupyter.testing import Lab, LabHost
from rjupyter.testing._account import Account

#: Run as the second user on the remote: connect to a Unix socket (argv[1]) or to a TCP port
#: of the loopback (argv[1] a number) and ask for /api/status without a token.
PROBE = """
import socket, sys
target = sys.argv[1]
try:
    if target.isdigit():
        sock = socket.create_connection(("127.0.0.1", int(target)), timeout=5)
    else:
        sock = socket.socket(socket.AF_UNIX)
        sock.settimeout(5)
        sock.connect(target)
    sock.sendall(b"GET /api/status HTTP/1.0\\r\\n\\r\\n")
    print(sock.recv(64).split(b"\\r\\n")[0].decode())
except OSError as error:
    print(type(error).__name__)
"""


@pytest.fixture(autouse=True)
def no_agent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)


@pytest.fixture(scope="module")
def other_user(lab: Lab) -> Account:
    """A second real user of the lab's hosts (not root, no SSH login)."""
    if not lab.isolated:
        pytest.skip("a second user needs root")
    return lab.add_user()


@pytest.fixture(scope="module")
def no_streamlocal(lab: Lab) -> LabHost:
    """A host whose sshd forbids forwarding to Unix sockets."""
    return lab.add_host("nostream", sshd_options={"AllowStreamLocalForwarding": "no"})


def probe_as(host: LabHost, account: Account, target: str) -> str:
    return host.run(["/usr/bin/python3", "-c", PROBE, target], as_account=account).stdout.strip()


def run_dirs(lab: Lab) -> list[Path]:
    return sorted((lab.home / ".local/state/rjupyter").glob("*"))


def test_the_default_is_a_private_socket_only_its_owner_reaches(
    lab: Lab, remote: LabHost, other_user: Account, nb_options: dict[str, Any]
) -> None:
    with RemoteNotebook(remote.name, **nb_options) as nb:
        sock = nb.remote_socket
        assert sock is not None
        assert nb.remote_port is None
        # No TCP listener of the user's Jupyter on the remote: sshd's is the only one.
        assert remote.listeners() == [(remote.address, remote.port)]
        socket_stat, directory_stat = os.stat(sock), os.stat(os.path.dirname(sock))
        assert stat.S_ISSOCK(socket_stat.st_mode)
        assert stat.S_IMODE(socket_stat.st_mode) == 0o600
        assert stat.S_IMODE(directory_stat.st_mode) == 0o700
        assert socket_stat.st_uid == directory_stat.st_uid == lab.uid
        # The owner's own processes reach it (the lab user, on the remote, without SSH) ...
        assert probe_as(remote, _lab_account(lab), sock).startswith("HTTP/1.1 403")
        # ... the other user does not.
        assert probe_as(remote, other_user, sock) == "PermissionError"
        with nb.kernel() as kernel:  # the API and a kernel's WebSocket through the socket
            assert kernel.execute("print(6 * 7)").stdout.strip() == "42"
        assert http(f"{nb.base_url}api/status", token=nb.token)[0] == 200
    assert not os.path.exists(sock)
    assert not os.path.exists(os.path.dirname(sock))
    assert wait_for(lambda: remote.user_processes() == [], 10)


def test_on_a_tcp_port_the_other_user_reaches_the_server(
    lab: Lab, remote: LabHost, other_user: Account, nb_options: dict[str, Any]
) -> None:
    """The contrast: the token is then the only barrier (here the server answers 403)."""
    with RemoteNotebook(remote.name, unix_socket=False, **nb_options) as nb:
        assert nb.remote_socket is None
        assert nb.remote_port is not None
        assert ("127.0.0.1", nb.remote_port) in remote.listeners()
        assert probe_as(remote, other_user, str(nb.remote_port)).startswith("HTTP/1.1 403")


def _lab_account(lab: Lab) -> Account:
    account = lab._account
    assert account is not None
    return account


def test_sshd_forbidding_streamlocal_falls_back_to_tcp(
    lab: Lab,
    no_streamlocal: LabHost,
    nb_options: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="rjupyter")
    with RemoteNotebook(no_streamlocal.name, **nb_options) as nb:
        assert nb.remote_socket is None
        assert nb.remote_port is not None
        assert http(f"{nb.base_url}api/status", token=nb.token)[0] == 200
        assert len(run_dirs(lab)) == 1, "the server on the socket is gone, with its run dir"
    lines = [r.getMessage() for r in caplog.records if "AllowStreamLocalForwarding" in r.message]
    assert len(lines) == 1
    assert [r.levelname for r in caplog.records if r.getMessage() == lines[0]] == ["INFO"]
    assert wait_for(lambda: no_streamlocal.user_processes() == [], 10)
    assert run_dirs(lab) == []


def test_a_required_socket_sshd_forbids_is_a_clear_error(
    lab: Lab, no_streamlocal: LabHost, nb_options: dict[str, Any]
) -> None:
    with (
        pytest.raises(LaunchError, match="AllowStreamLocalForwarding no") as raised,
        RemoteNotebook(no_streamlocal.name, unix_socket=True, **nb_options),
    ):
        pass
    assert "unix_socket=False" in str(raised.value)
    assert wait_for(lambda: no_streamlocal.user_processes() == [], 10)
    assert run_dirs(lab) == []
    assert no_streamlocal.listeners() == [(no_streamlocal.address, no_streamlocal.port)]


def test_unix_socket_true_with_a_remote_port_is_refused() -> None:
    with pytest.raises(ValueError, match="remote_port"):
        RemoteNotebook("anywhere", unix_socket=True, remote_port=8888)


def get(url: str) -> tuple[int, str]:
    status, body = http(url)
    return status, body.decode()


def test_forwards_share_the_login_and_follow_reconnects(
    lab: Lab, remote: LabHost, nb_options: dict[str, Any]
) -> None:
    before = remote.sshd_log().count("Accepted publickey")
    with http_server(remote) as port, RemoteNotebook(remote.name, **nb_options) as nb:
        web = nb.forward(port)
        assert isinstance(web, Forward)
        assert web.remote == port
        api = nb.forward(str(nb.remote_socket))  # a second forward, to a socket path
        assert get(f"{web.url}hello.txt") == (200, "hello from the remote\n")
        assert http(f"{api.url}api/status", token=nb.token)[0] == 200
        assert remote.sshd_log().count("Accepted publickey") == before + 1, "one login"
        ports = (web.local_port, api.local_port)
        for pid in remote.session_sshd_pids():  # the SSH session dies
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        assert wait_for(lambda: not nb.connected, 10)
        assert wait_for(lambda: nb.connected, 60)
        assert (web.local_port, api.local_port) == ports
        assert wait_for(lambda: get(f"{web.url}hello.txt")[0] == 200, 10)
        assert http(f"{api.url}api/status", token=nb.token)[0] == 200
        with nb.forward(port, local_port=0) as third:
            assert get(f"{third.url}hello.txt")[0] == 200
            third_port = third.local_port
        assert third.closed
        assert port_is_closed(third_port)
    for each in ports:
        assert port_is_closed(each), "forwards close with the notebook"
    assert web.closed
    with pytest.raises(Exception, match="closed"):
        _ = web.local_port


def test_forward_arguments_are_checked(remote: LabHost, nb_options: dict[str, Any]) -> None:
    with RemoteNotebook(remote.name, **nb_options) as nb:
        for bad in (0, 70000, "relative/path"):
            with pytest.raises(ValueError, match="remote"):
                nb.forward(bad)
        with pytest.raises(TypeError):
            nb.forward(True)
        taken = nb.local_port
        with pytest.raises(TunnelError, match=str(taken)):
            nb.forward(22, local_port=taken)


def test_a_socket_path_too_long_means_a_tcp_port(
    lab: Lab, nb_options: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    """A run dir too deep for a socket's path (sun_path holds ~100 bytes): a TCP port, with the
    INFO line; required, an error and nothing left."""
    state = lab.home / ("s" * 90)
    host = lab.add_host("deeprundir", environment={"XDG_STATE_HOME": str(state)})
    caplog.set_level(logging.INFO, logger="rjupyter")
    with RemoteNotebook(host.name, **nb_options) as nb:
        assert nb.remote_socket is None
        assert nb.remote_port is not None
        assert http(f"{nb.base_url}api/status", token=nb.token)[0] == 200
    assert [r.levelname for r in caplog.records if "listens on a TCP port" in r.message] == ["INFO"]
    with (
        pytest.raises(LaunchError, match="short enough"),
        RemoteNotebook(host.name, unix_socket=True, **nb_options),
    ):
        pass
    assert wait_for(lambda: host.user_processes() == [], 10)
    assert list((state / "rjupyter").glob("*")) == []

"""RemoteNotebook against the lab: a real OpenSSH sshd in its own network namespace and a real
Jupyter. These are the acceptance points of the RemoteNotebook issue, each checked from outside."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from helpers import (
    host_block,
    http,
    local_listeners,
    non_daemon_threads,
    port_is_closed,
    wait_for,
)

from rjupyter import (
    AuthenticationError,
    HostKeyError,
    LaunchError,
    LaunchTimeout,
    NotebookClosedError,
    RemoteNotebook,
    SSHConnectError,
    TunnelError,
)
from rjupyter.testing import Lab, LabHost


@pytest.fixture(autouse=True)
def no_agent(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the keys a test names may log in: no ssh-agent of the person running the tests."""
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)


def logins(lab: Lab, host: LabHost) -> int:
    return host.sshd_log().count(f"Accepted publickey for {lab.user} ")


def server_processes(host: LabHost) -> list[tuple[int, list[str]]]:
    """The lab user's processes other than sshd's own per-connection ones."""
    return [(pid, argv) for pid, argv in host.user_processes() if not argv[0].startswith("sshd")]


def all_command_lines() -> list[str]:
    lines = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                lines.append((entry / "cmdline").read_bytes().decode(errors="replace"))
            except OSError:
                continue
    return lines


def assert_nothing_left(host: LabHost, local_port: int, remote_port: int | None) -> None:
    assert server_processes(host) == [], "a server or kernel process outlived close()"
    assert wait_for(lambda: host.user_processes() == []), host.user_processes()
    if remote_port is not None:
        assert all(port != remote_port for _, port in host.listeners())
    assert port_is_closed(local_port)
    assert non_daemon_threads() == []


def test_notebook_through_the_tunnel(
    lab: Lab, remote: LabHost, nb_options: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(1)  # everything, below DEBUG too
    before = logins(lab, remote)
    with RemoteNotebook(remote.name, **nb_options) as nb:
        token = nb.token
        assert nb.url == f"http://127.0.0.1:{nb.local_port}/tree?token={token}"
        assert http(nb.url)[0] == 200
        assert http(f"{nb.base_url}api/status", token=token)[0] == 200
        assert http(f"{nb.base_url}api/status")[0] == 403, "the API must refuse a missing token"

        with nb.kernel() as kernel:  # REST and the kernel WebSocket, token in the header
            printed = kernel.execute("import os; print(os.getuid())").stdout
        assert printed.strip() == str(lab.uid)

        # On a Unix socket (test_unix_socket.py): no TCP listener but sshd's on the remote.
        assert nb.remote_port is None
        assert nb.remote_socket is not None
        assert remote.listeners() == [(remote.address, remote.port)]
        local_side = [addr for addr, port in local_listeners() if port == nb.local_port]
        assert local_side == ["127.0.0.1"]

        assert nb.remote_pid in [pid for pid, _ in remote.user_processes()]
        assert not any(token in line for line in all_command_lines())
        assert token not in repr(nb)
        assert nb.remote_socket in repr(nb)
        local_port, remote_port = nb.local_port, nb.remote_port
    assert logins(lab, remote) - before == 1, "one SSH login per RemoteNotebook"
    assert token not in caplog.text
    assert "[remote]" in caplog.text, "remote output is logged at DEBUG (redacted)"
    assert_nothing_left(remote, local_port, remote_port)
    with pytest.raises(NotebookClosedError):
        _ = nb.url
    nb.close()


class Boom(Exception):
    pass


def use_then_fail(name: str, options: dict[str, Any], how: str) -> tuple[int, int | None]:
    """Open a notebook, start a kernel, then leave the block by an exception or a real SIGINT."""
    ports: tuple[int, int | None] = (0, 0)
    try:
        with RemoteNotebook(name, **options) as nb:
            status, _ = http(f"{nb.base_url}api/kernels", token=nb.token, method="POST")
            assert status == 201
            ports = (nb.local_port, nb.remote_port)
            if how == "exception":
                raise Boom
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(30)  # the signal interrupts this at once
    except Boom:
        if how == "exception":
            return ports
        raise
    except KeyboardInterrupt:
        if how == "sigint":
            return ports
        raise
    raise AssertionError("the block did not fail")


@pytest.mark.parametrize("how", ["exception", "sigint"])
def test_cleanup_when_the_block_fails(
    remote: LabHost, nb_options: dict[str, Any], how: str
) -> None:
    local_port, remote_port = use_then_fail(remote.name, nb_options, how)
    assert_nothing_left(remote, local_port, remote_port)


@pytest.mark.parametrize(("app", "path"), [("lab", "/lab"), ("notebook", "/tree"), ("server", "/")])
def test_each_app(remote: LabHost, nb_options: dict[str, Any], app: str, path: str) -> None:
    with RemoteNotebook(remote.name, app=app, **nb_options) as nb:
        assert nb.url.startswith(f"http://127.0.0.1:{nb.local_port}{path}?token=")
        status, body = http(nb.url)
        assert status == 200
        assert b"<html" in body.lower()


def test_occupied_remote_port_moves_to_the_next(
    remote: LabHost, nb_options: dict[str, Any]
) -> None:
    asked = 30000 + int.from_bytes(os.urandom(2), "big") % 9000
    with RemoteNotebook(remote.name, remote_port=asked, **nb_options) as first:
        taken = first.remote_port
        assert taken is not None, "remote_port= means a TCP port"
        with RemoteNotebook(remote.name, remote_port=taken, **nb_options) as second:
            assert second.remote_port is not None
            assert second.remote_port != taken
            assert second.remote_port > taken
            assert http(second.url)[0] == 200
            assert ("127.0.0.1", second.remote_port) in remote.listeners()


def test_local_port_given(remote: LabHost, nb_options: dict[str, Any]) -> None:
    with socket.socket() as probe:  # a port free right now (fine for a test)
        probe.bind(("127.0.0.1", 0))
        wanted = probe.getsockname()[1]
    with RemoteNotebook(remote.name, local_port=wanted, **nb_options) as nb:
        assert nb.local_port == wanted
        assert http(nb.url)[0] == 200


def test_busy_local_port_is_a_tunnel_error(remote: LabHost, nb_options: dict[str, Any]) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        busy = holder.getsockname()[1]
        with pytest.raises(TunnelError, match=str(busy)) as caught:
            RemoteNotebook(remote.name, local_port=busy, **nb_options).start()
    assert caught.value.local_port == busy
    assert wait_for(lambda: remote.user_processes() == [])


# -- failures: each raises its error with a message that says what to do, and leaves nothing ---


def write_config(tmp_path: Path, lab: Lab, remote: LabHost, **overrides: str) -> Path:
    config = tmp_path / "ssh_config"
    config.write_text(host_block(lab, remote, GlobalKnownHostsFile="", **overrides))
    return config


def start_target(config: Path, **options: Any) -> None:
    RemoteNotebook("target", ssh_config=config, timeout=20, **options).start()


def test_unreachable_host(tmp_path: Path, lab: Lab, remote: LabHost) -> None:
    config = write_config(tmp_path, lab, remote, HostName="10.254.255.254")
    started = time.monotonic()
    with pytest.raises(SSHConnectError, match=re.escape("10.254.255.254")):
        start_target(config)
    assert time.monotonic() - started < 20


def test_refused_port(tmp_path: Path, lab: Lab, remote: LabHost) -> None:
    config = write_config(tmp_path, lab, remote, Port="2")
    with pytest.raises(SSHConnectError, match="refused"):
        start_target(config)


def test_wrong_key(tmp_path: Path, lab: Lab, remote: LabHost) -> None:
    key = tmp_path / "wrong_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key], check=True)
    config = write_config(tmp_path, lab, remote, IdentityFile=str(key))
    with pytest.raises(AuthenticationError, match="authorized_keys") as caught:
        start_target(config)
    assert "publickey" in caught.value.methods_allowed
    assert any(str(key) in tried for tried in caught.value.methods_tried)


@pytest.mark.parametrize("changed", [False, True])
def test_host_key_unknown_or_changed(
    tmp_path: Path, lab: Lab, remote: LabHost, changed: bool
) -> None:
    known = tmp_path / "known_hosts"
    if changed:
        other = tmp_path / "other"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", other], check=True)
        name = remote.address if remote.port == 22 else f"[{remote.address}]:{remote.port}"
        known.write_text(f"{name} {Path(f'{other}.pub').read_text()}")
    else:
        known.write_text("")
    config = write_config(tmp_path, lab, remote, UserKnownHostsFile=str(known))
    with pytest.raises(HostKeyError, match="SHA256:") as caught:
        start_target(config)
    assert caught.value.changed is changed
    assert ("MISMATCH" in str(caught.value)) is changed
    assert server_processes(remote) == []


def test_missing_jupyter(remote: LabHost, nb_options: dict[str, Any]) -> None:
    nb_options.pop("venv")
    with pytest.raises(LaunchError, match="was not found") as caught:
        RemoteNotebook(remote.name, jupyter="/nonexistent/jupyter", **nb_options).start()
    assert caught.value.exit_status == 97
    assert wait_for(lambda: remote.user_processes() == [])


def test_missing_venv(remote: LabHost, nb_options: dict[str, Any]) -> None:
    nb_options["venv"] = "~/no-such-venv"
    with pytest.raises(LaunchError, match="no virtual environment at '~/no-such-venv'"):
        RemoteNotebook(remote.name, **nb_options).start()
    assert wait_for(lambda: remote.user_processes() == [])


def test_jupyter_exiting_early(lab: Lab, remote: LabHost, nb_options: dict[str, Any]) -> None:
    # A real Jupyter that cannot start: its runtime directory cannot be created.
    setup = ["export JUPYTER_RUNTIME_DIR=/proc/rjupyter-cannot-write-here"]
    with pytest.raises(LaunchError) as caught:
        RemoteNotebook(remote.name, setup=setup, **nb_options).start()
    assert caught.value.exit_status not in (None, 0)
    assert "rjupyter-cannot-write-here" in caught.value.output_tail
    assert "exited before it was ready" in str(caught.value)
    assert wait_for(lambda: remote.user_processes() == [])


def test_never_ready_is_a_timeout_and_stops_everything(
    remote: LabHost, nb_options: dict[str, Any]
) -> None:
    nb_options["timeout"] = 3.0
    started = time.monotonic()
    with pytest.raises(LaunchTimeout, match="within 3 s"):
        RemoteNotebook(remote.name, setup=["sleep 300"], **nb_options).start()
    assert time.monotonic() - started < 3.0 + 12.0
    assert server_processes(remote) == []
    assert wait_for(lambda: remote.user_processes() == [])


HOSTILE = ["quo'te", 'dq"; touch PWNED; "', "$(touch PWNED)", "`touch PWNED`", "nl\ntouch PWNED"]


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_paths_are_paths(
    lab: Lab, remote: LabHost, nb_options: dict[str, Any], name: str
) -> None:
    with pytest.raises(LaunchError, match="working directory"):
        RemoteNotebook(remote.name, workdir=f"~/{name}", **nb_options).start()
    with pytest.raises(LaunchError, match="no virtual environment"):
        RemoteNotebook(remote.name, **{**nb_options, "venv": f"~/{name}"}).start()
    assert not (lab.home / "PWNED").exists()
    # And such a directory, when it exists, is served as it is.
    remote.run(["mkdir", "-p", "--", f"{lab.home}/{name}"])
    remote.run(["touch", "--", f"{lab.home}/{name}/marker.txt"])
    try:
        with RemoteNotebook(remote.name, workdir=f"~/{name}", **nb_options) as nb:
            status, body = http(f"{nb.base_url}api/contents", token=nb.token)
            assert status == 200
            assert [item["name"] for item in json.loads(body)["content"]] == ["marker.txt"]
    finally:
        remote.run(["rm", "-rf", "--", f"{lab.home}/{name}"])
    assert not (lab.home / "PWNED").exists()


def test_an_http_proxy_setting_is_not_used_for_our_tunnel(
    remote: LabHost, nb_options: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A proxy that does not exist: any request sent to it would fail.
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    monkeypatch.setenv("no_proxy", "")
    with RemoteNotebook(remote.name, **nb_options) as nb:
        assert nb.remote_pid > 0

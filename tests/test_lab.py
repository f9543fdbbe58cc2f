"""The test lab itself: its hosts are real, isolated, verifiable, and leave nothing behind."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from rjupyter import testing
from rjupyter.testing import Lab, LabError, LabHost, cleanup_stale_labs
from rjupyter.testing import _build as build_module
from rjupyter.testing._host import parse_listeners
from rjupyter.testing._procs import is_gone, list_processes, stop_pids, wait_until
from rjupyter.testing._sshd import known_hosts_lines

try:
    import pwd
except ImportError:  # not on Windows; the lab needs Linux (Lab says so)
    pwd = None  # type: ignore[assignment]

_Test = TypeVar("_Test", bound=Callable[..., object])


def needs_lab(test: _Test) -> _Test:
    """Mark a test as a lab test: skipped where the lab cannot run, failed so in CI."""
    marked: _Test = pytest.mark.lab(pytest.mark.usefixtures("lab_required")(test))
    return marked


needs_ssh_client = pytest.mark.skipif(shutil.which("ssh") is None, reason="no OpenSSH client")


def _ssh(lab: Lab, *command: str, options: tuple[str, ...] = ()) -> list[str]:
    return ["ssh", "-F", str(lab.ssh_config), "-o", "BatchMode=yes", *options, "remote", *command]


def _netns_names() -> list[str]:
    output = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    return [line.split()[0] for line in output.stdout.splitlines() if line.strip()]


# -- pure pieces -----------------------------------------------------------------------------


def test_public_names_are_sorted_and_exported() -> None:
    assert testing.__all__ == sorted(testing.__all__)
    public = {name for name in vars(testing) if not name.startswith("_")}
    assert public == set(testing.__all__)


def test_parse_listeners() -> None:
    output = (
        "LISTEN 0 128 10.254.0.2:22 0.0.0.0:*\n"
        "LISTEN 0 128 127.0.0.53%lo:53 0.0.0.0:*\n"
        "LISTEN 0 128 [::1]:8888 [::]:*\n"
        "LISTEN 0 128 *:9000 *:*\n"
    )
    assert parse_listeners(output) == [
        ("10.254.0.2", 22),
        ("127.0.0.53", 53),
        ("::1", 8888),
        ("*", 9000),
    ]


def test_known_hosts_lines_bracket_non_default_ports(tmp_path: Path) -> None:
    key = tmp_path / "ssh_host_ed25519_key"
    key.with_name(key.name + ".pub").write_text("ssh-ed25519 AAAAkey comment\n")
    assert known_hosts_lines(["10.0.0.2", "remote"], 22, [key]) == [
        "10.0.0.2,remote ssh-ed25519 AAAAkey"
    ]
    assert known_hosts_lines(["127.0.0.1", "remote"], 2222, [key]) == [
        "[127.0.0.1]:2222,[remote]:2222 ssh-ed25519 AAAAkey"
    ]


def test_workdir_paths_that_ssh_config_cannot_carry_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="whitespace"):
        Lab(tmp_path / "a b")


# -- the shared session lab (tests/conftest.py) ----------------------------------------------


@needs_lab
@needs_ssh_client
def test_openssh_logs_in_with_verified_host_key_and_a_silent_shell(
    lab: Lab, remote: LabHost
) -> None:
    result = subprocess.run(
        _ssh(lab, "true"), capture_output=True, text=True, timeout=30, check=False
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert f"Accepted publickey for {lab.user} from" in remote.sshd_log()


@needs_lab
@needs_ssh_client
def test_an_unknown_host_key_is_refused(lab: Lab) -> None:
    options = ("-o", "UserKnownHostsFile=/dev/null")
    result = subprocess.run(
        _ssh(lab, "true", options=options), capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 255
    assert "Host key verification failed" in result.stderr


@needs_lab
def test_client_files_are_private_where_they_must_be(lab: Lab) -> None:
    assert lab.identity_file.stat().st_mode & 0o777 == 0o600
    assert lab.identity_file.read_text().startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    assert lab.home.stat().st_uid == pwd.getpwnam(lab.user).pw_uid
    dotfiles = [".bashrc", ".profile", ".bash_profile", ".bash_login"]
    assert not [name for name in dotfiles if (lab.home / name).exists()]


@needs_lab
def test_remote_loopback_is_not_the_callers(remote: LabHost) -> None:
    assert remote.netns is not None
    links = remote.run(["ip", "-o", "link"], as_user=False, check=True).stdout
    assert sorted(line.split(":")[1].strip().split("@")[0] for line in links.splitlines()) == [
        "eth0",
        "lo",
    ]
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        probe = f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=5)"
        result = remote.run(["python3", "-c", probe])
    assert result.returncode != 0
    assert "ConnectionRefusedError" in result.stderr


@needs_lab
def test_run_is_the_lab_user_in_its_home(lab: Lab, remote: LabHost) -> None:
    result = remote.run(["sh", "-c", "id -un; pwd; echo $HOME"], check=True)
    assert result.stdout.split() == [lab.user, str(lab.home), str(lab.home)]
    assert remote.run(["id", "-u"], as_user=False, check=True).stdout.strip() == "0"
    assert (remote.address, 22) in remote.listeners()


@needs_lab
@needs_ssh_client
def test_session_processes_are_visible_and_killing_one_breaks_its_connection(
    lab: Lab, remote: LabHost
) -> None:
    marker = "rjl-test-marker"
    before = set(remote.session_sshd_pids())
    command = _ssh(lab, "exec", "-a", marker, "sleep", "60")
    with subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) as client:
        try:
            assert wait_until(
                lambda: any(argv[:1] == [marker] for _, argv in remote.user_processes()), 10
            )
            (session,) = set(remote.session_sshd_pids()) - before
            os.kill(session, signal.SIGTERM)  # SIGKILL would not drop the connection
            assert client.wait(10) == 255
        finally:
            if client.poll() is None:
                client.kill()
                client.wait()
    # Without a pty nobody sends the command SIGHUP: it outlives its connection. Clean up by PID.
    orphans = [pid for pid, argv in remote.user_processes() if argv[:1] == [marker]]
    assert len(orphans) == 1
    assert stop_pids(orphans) == []


@needs_lab
def test_jupyter_venv_runs_as_the_lab_user(lab: Lab, remote: LabHost) -> None:
    jupyter = f"{lab.jupyter_venv}/bin/jupyter"
    assert remote.run([jupyter, "--version"], timeout=120, check=True).returncode == 0
    runtime_dir = remote.run([jupyter, "--runtime-dir"], timeout=60, check=True).stdout.strip()
    assert Path(runtime_dir).is_relative_to(lab.home)


# -- labs of their own: teardown ---------------------------------------------------------------


@pytest.fixture
def own_lab(tmp_path: Path, lab_required: None) -> Iterator[Lab]:
    with Lab(tmp_path / "lab") as built:
        yield built


@needs_lab
@needs_ssh_client
def test_teardown_leaves_no_process_namespace_user_or_file(tmp_path: Path) -> None:
    workdir = tmp_path / "lab"
    detached = "nohup setsid sleep 300 >/dev/null 2>&1 </dev/null & echo $!"
    with Lab(workdir) as lab:
        host = lab.add_host("remote")
        uid, netns, user = lab.uid, host.netns, lab.user
        by_user = subprocess.run(_ssh(lab, detached), capture_output=True, text=True, check=True)
        by_root = host.run(["sh", "-c", detached], as_user=False, check=True)
        strays = [int(by_user.stdout), int(by_root.stdout)]
        held = subprocess.Popen(_ssh(lab, "sleep", "300"), stdout=subprocess.DEVNULL)
        try:
            assert wait_until(lambda: len(host.user_processes()) >= 2, 10)
        finally:
            lab.close()
            held_status = held.wait(10)
    assert held_status == 255, "the open SSH session survived teardown"
    assert all(is_gone(pid) for pid in strays)
    assert not [
        info.pid
        for info in list_processes()
        if uid in (info.real_uid, info.effective_uid) and info.state != "Z"
    ]
    assert netns not in _netns_names()
    with pytest.raises(KeyError):
        pwd.getpwnam(user)
    assert not workdir.exists()


@needs_lab
def test_close_is_idempotent_and_a_closed_lab_stays_closed(own_lab: Lab) -> None:
    host = own_lab.add_host("remote")
    host.stop()
    host.stop()
    assert host.netns not in _netns_names()
    assert host.session_sshd_pids() == []
    own_lab.close()
    own_lab.close()
    with pytest.raises(LabError, match="not open"):
        own_lab.add_host("again")
    with pytest.raises(LabError, match="cannot be entered again"), own_lab:
        pass


@needs_lab
def test_a_failed_add_host_removes_what_it_made(
    own_lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_sshd(*args: object, **kwargs: object) -> subprocess.Popen[bytes]:
        raise LabError("sshd refused to start (injected)")

    with monkeypatch.context() as patch:
        patch.setattr(build_module, "start_sshd", broken_sshd)
        with pytest.raises(LabError, match="injected"):
            own_lab.add_host("broken")
    assert not [name for name in _netns_names() if name.startswith(f"rjl-{own_lab.lab_id}-")]
    assert own_lab.hosts == {}
    host = own_lab.add_host("remote")
    assert host.netns == f"rjl-{own_lab.lab_id}-1"


_CRASHING_OWNER = """
import sys
from rjupyter.testing import Lab
lab = Lab(sys.argv[1]).__enter__()
lab.add_host("remote")
print(lab.lab_id, flush=True)
sys.stdin.read()
"""


@needs_lab
def test_cleanup_removes_labs_whose_owner_died(tmp_path: Path) -> None:
    owner = subprocess.Popen(
        [sys.executable, "-c", _CRASHING_OWNER, str(tmp_path / "lab")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert owner.stdout is not None
        lab_id = owner.stdout.readline().strip()
        assert lab_id
        assert lab_id not in cleanup_stale_labs(), "a live owner's lab was cleaned up"
    finally:
        owner.kill()  # no teardown: the lab is left behind
        owner.communicate()
    assert lab_id in cleanup_stale_labs()
    assert not [name for name in _netns_names() if name.startswith(f"rjl-{lab_id}-")]
    with pytest.raises(KeyError):
        pwd.getpwnam(f"rjl{lab_id}")


def test_a_capped_delay_proxy_takes_no_more_than_its_rate() -> None:
    # The bandwidth cap is what makes a sender pile data up (tests/test_forwarding_jump.py):
    # a proxy at 4 MiB/s cannot pass 2 MiB in less than the time its link is busy with them.
    with pytest.raises(ValueError, match="rate must be positive"):
        testing.DelayProxy(("127.0.0.1", 9), rate=0)
    size, rate = 2 << 20, 4 << 20
    with socket.create_server(("127.0.0.1", 0)) as server:
        proxy = testing.DelayProxy(server.getsockname(), rate=rate)
        try:
            with socket.create_connection(("127.0.0.1", proxy.port), timeout=30) as sender:
                started = time.monotonic()
                sender.sendall(bytes(size))
                sender.shutdown(socket.SHUT_WR)
                receiver, _ = server.accept()
                with receiver:
                    receiver.settimeout(30)
                    got = 0
                    while chunk := receiver.recv(1 << 16):
                        got += len(chunk)
                elapsed = time.monotonic() - started
        finally:
            proxy.close()
    assert got == size
    assert elapsed >= (size - (16 << 10)) / rate  # all but the last read waited for the link

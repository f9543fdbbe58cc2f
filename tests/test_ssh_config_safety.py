"""Finding 8 and the library side of finding 11 of issue 15: host names with shell
metacharacters are refused before any ``Match exec`` or ``ProxyCommand`` could expand them (also
with no ``ssh`` installed, where rjupyter's own parser resolves the host), and an ssh_config
file others could write is refused, as OpenSSH refuses ``~/.ssh/config``."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from rjupyter import SSHConnectError
from rjupyter._ssh._hostconfig import resolve_host

#: Owners and modes of config files are a Unix matter (the no-POSIX run skips this module).
pwd = pytest.importorskip("pwd", reason="needs the Unix account database")

#: By its path: the tests empty PATH to hide ssh.
TOUCH = shutil.which("touch") or "/usr/bin/touch"
HOSTILE_HOSTS = [
    "x;{touch} {marker}",
    "$({touch} {marker})",
    "`{touch} {marker}`",
    "x&&{touch} {marker}",
    "x|{touch} {marker}",
    "-oProxyCommand={touch} {marker}",
    "x\n{touch} {marker}",
]


@pytest.fixture
def no_ssh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No ``ssh`` on PATH: rjupyter's own ssh_config parser resolves hosts."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))


def config_running(tmp_path: Path, marker: Path) -> Path:
    config = tmp_path / "config"
    config.write_text(f'Match exec "{TOUCH} {marker}.%h"\n    User nobody\nHost *\n    Port 22\n')
    config.chmod(0o600)
    return config


@pytest.mark.usefixtures("no_ssh")
@pytest.mark.parametrize("template", HOSTILE_HOSTS)
def test_a_host_name_with_shell_metacharacters_runs_nothing(template: str, tmp_path: Path) -> None:
    marker = tmp_path / "PWNED"
    config = config_running(tmp_path, marker)
    with pytest.raises(SSHConnectError, match="holds characters no host name has"):
        resolve_host(template.format(touch=TOUCH, marker=marker), ssh_config=config)
    assert not marker.exists()
    assert list(tmp_path.glob("PWNED*")) == []


@pytest.mark.usefixtures("no_ssh")
def test_a_plain_host_still_resolves_through_match_exec(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    host = resolve_host("gpu-box.example.org", ssh_config=config_running(tmp_path, marker))
    assert host.user == "nobody"
    assert Path(f"{marker}.gpu-box.example.org").exists(), "Match exec ran, with %h expanded"


@pytest.mark.usefixtures("no_ssh")
@pytest.mark.parametrize("user", ["a;b", "-oX", "a`b`", "a\\"])
def test_a_user_name_with_shell_metacharacters_is_refused(user: str, tmp_path: Path) -> None:
    config = config_running(tmp_path, tmp_path / "PWNED")
    with pytest.raises(SSHConnectError, match="user name"):
        resolve_host(f"{user}@gpu-box", ssh_config=config)


@pytest.mark.parametrize("mode", [0o620, 0o602, 0o666])
def test_a_config_file_others_may_write_is_refused(mode: int, tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.write_text("Host gpu-box\n    ProxyCommand nc %h %p\n")
    config.chmod(mode)
    with pytest.raises(SSHConnectError, match="Bad owner or permissions"):
        resolve_host("gpu-box", ssh_config=config)


@pytest.mark.skipif(os.getuid() != 0, reason="giving a file away needs root")
def test_a_config_file_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.write_text("Host gpu-box\n    User x\n")
    config.chmod(0o644)
    os.chown(config, pwd.getpwnam("nobody").pw_uid, -1)
    with pytest.raises(SSHConnectError, match="Bad owner or permissions"):
        resolve_host("gpu-box", ssh_config=config)


@pytest.mark.usefixtures("no_ssh")
def test_the_parser_checks_the_users_own_config_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "config").write_text("Host *\n    User x\n")
    (home / ".ssh" / "config").chmod(0o666)
    monkeypatch.setattr(pwd, "getpwuid", lambda uid: type("P", (), {"pw_dir": str(home)})())
    monkeypatch.setenv("HOME", str(home))
    with pytest.raises(SSHConnectError, match="Bad owner or permissions"):
        resolve_host("gpu-box")

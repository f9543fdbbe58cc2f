"""Resolving hosts through an SSH config file (no server needed)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import paramiko
import pytest

from rjupyter import SSHConnectError
from rjupyter._errors import HostKeyError
from rjupyter._ssh._hostconfig import resolve_host
from rjupyter._ssh._knownhosts import HostIdentity, KnownHost, check_host_key, fingerprint

CONFIG = """
Host gpu-box
  HostName 10.254.9.2
  User alice
  Port 2222
  IdentityFile ~/keys/gpu
  UserKnownHostsFile ~/kh/one ~/kh/two
  StrictHostKeyChecking accept-new
  ConnectTimeout 7

Host strict
  HostName strict.example
  StrictHostKeyChecking yes
  IdentitiesOnly yes
  IdentityFile /k/only

Host open
  StrictHostKeyChecking no
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "config"
    path.write_text(CONFIG)
    return path


def test_alias_resolves_every_honoured_field(config: Path) -> None:
    host = resolve_host("gpu-box", ssh_config=config)
    home = str(Path("~").expanduser())
    assert host.hostname == "10.254.9.2"
    assert host.user == "alice"
    assert host.port == 2222
    assert host.identity_files[0] == f"{home}/keys/gpu"
    assert host.known_hosts_files[:2] == (f"{home}/kh/one", f"{home}/kh/two")
    assert host.host_key_policy == "accept-new"
    assert host.connect_timeout == 7.0
    assert host.known_hosts_name == "[10.254.9.2]:2222"


def test_spec_values_win_over_the_config(config: Path) -> None:
    host = resolve_host("bob@gpu-box:2200", ssh_config=config, identity_file="/explicit")
    assert (host.user, host.port) == ("bob", 2200)
    assert host.identity_files[:2] == ("/explicit", str(Path("~/keys/gpu").expanduser()))


def test_policies_and_identities_only(config: Path) -> None:
    strict = resolve_host("strict", ssh_config=config)
    assert strict.host_key_policy == "reject"
    assert strict.identity_files == ("/k/only",)
    assert strict.known_hosts_name == "strict.example"
    assert resolve_host("open", ssh_config=config).host_key_policy == "no"
    assert resolve_host("unlisted", ssh_config=config).host_key_policy == "reject"


def test_missing_explicit_config_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SSHConnectError, match="does not exist"):
        resolve_host("x", ssh_config=tmp_path / "nope")


def test_fingerprint_matches_ssh_keygen(tmp_path: Path) -> None:
    key_file = tmp_path / "k"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key_file)], check=True)
    printed = subprocess.run(
        ["ssh-keygen", "-l", "-f", f"{key_file}.pub"], check=True, capture_output=True, text=True
    ).stdout.split()[1]
    assert fingerprint(paramiko.PKey.from_path(str(key_file)).asbytes()) == printed


def _identity(tmp_path: Path, policy: str) -> HostIdentity:
    return HostIdentity(
        label="h", lookup_name="h.example", principal="h.example",
        files=(str(tmp_path / "kh"),), policy=policy,
    )  # fmt: skip


def _known(key: paramiko.PKey) -> list[KnownHost]:
    return [KnownHost("", "h.example", key.get_name(), key.asbytes(), "kh:1")]


def test_host_key_policies(tmp_path: Path) -> None:
    offered = paramiko.ECDSAKey.generate()
    other = paramiko.ECDSAKey.generate()
    with pytest.raises(HostKeyError, match="not known") as unknown:
        check_host_key(_identity(tmp_path, "reject"), offered, [])
    assert unknown.value.fingerprint == fingerprint(offered.asbytes())
    assert not unknown.value.changed
    for policy in ("reject", "accept-new", "no"):
        with pytest.raises(HostKeyError, match="MISMATCH") as changed:
            check_host_key(_identity(tmp_path, policy), offered, _known(other))
        assert changed.value.changed
    check_host_key(_identity(tmp_path, "accept-new"), offered, [])
    line = (tmp_path / "kh").read_text()
    assert line == f"h.example {offered.get_name()} {offered.get_base64()}\n"
    check_host_key(_identity(tmp_path, "no"), offered, [])

"""Finding 7 of issue 15: ``host_key_policy`` applies to the target only; each jump host (and a
batch system's login node) follows its own ``StrictHostKeyChecking``; ``accept-new`` honours
``HashKnownHosts``. No lab: the connection steps are recorded, not made."""

from __future__ import annotations

import base64
import dataclasses
import subprocess
from pathlib import Path
from typing import Any

import paramiko
import pytest

from rjupyter._deadline import Deadline
from rjupyter._launch import _base
from rjupyter._launch._base import Environment, LaunchSpec
from rjupyter._ssh import _connection
from rjupyter._ssh._hostconfig import HostConfig
from rjupyter._ssh._knownhosts import HostIdentity, check_host_key, load_known_hosts
from rjupyter._ssh._options import ConnectOptions, connect_options


class Reached(Exception):
    """The target's step was reached: stop there."""


def host(name: str, jump: tuple[str, ...] = ()) -> HostConfig:
    return HostConfig(
        name=name,
        hostname=name,
        port=22,
        user="u",
        identity_files=(),
        known_hosts_files=(),
        host_key_policy="reject",  # what every host's ssh_config says here
        proxy_jump=jump,
    )


def test_accept_new_reaches_the_target_only(monkeypatch: pytest.MonkeyPatch) -> None:
    configs = {"target": host("target", ("bastion",)), "bastion": host("bastion", ("outer",))}
    configs["outer"] = host("outer")
    policies: list[tuple[str, str]] = []

    def connect(reached: HostConfig, *args: Any, **kwargs: Any) -> Any:
        policies.append((reached.name, reached.host_key_policy))
        if reached.name == "target":
            raise Reached
        return paramiko.Transport.__new__(paramiko.Transport)

    monkeypatch.setattr(_connection, "resolve_host", lambda spec, **_: configs[spec])
    monkeypatch.setattr(_connection, "connect", connect)
    monkeypatch.setattr(paramiko.Transport, "close", lambda self: None)
    options = connect_options(host_key_policy="accept-new")
    with pytest.raises(Reached):
        _connection.open_connection("target", options, Deadline(5))
    assert policies == [("outer", "reject"), ("bastion", "reject"), ("target", "accept-new")]


def test_a_batch_login_node_follows_its_own_config(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[str, str | None]] = []

    def open_connection(spec: str, options: ConnectOptions, deadline: Deadline) -> Any:
        seen.append((spec, options.host_key_policy))

    monkeypatch.setattr(_base, "open_connection", open_connection)
    spec = LaunchSpec(
        host="login",
        app="lab",
        environment=Environment(None, None, None, (), "jupyter"),
        options=connect_options(host_key_policy="accept-new"),
    )
    spec.connect(Deadline(5), hop=True)
    spec.connect(Deadline(5))
    assert seen == [("login", None), ("login", "accept-new")]


def test_accept_new_hashes_the_name_when_hash_known_hosts(tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    path = tmp_path / "key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    key = paramiko.Ed25519Key.from_private_key_file(str(path))
    identity = HostIdentity(
        label="node7",
        lookup_name="[node7]:2222",
        principal="node7",
        files=(str(known),),
        policy="accept-new",
        hash_names=True,
    )
    check_host_key(identity, key, [])
    line = known.read_text()
    assert line.startswith("|1|")
    assert "node7" not in line
    salt, digest = line.split()[0].split("|")[2:4]
    assert len(base64.b64decode(salt)) == 20
    assert len(base64.b64decode(digest)) == 20
    entries = load_known_hosts([str(known)])
    check_host_key(dataclasses.replace(identity, policy="reject"), key, entries)  # now known

"""The node-access rules as pure functions (no lab): which settings a node inherits from the
login, how the cluster's known hosts are read, the login-node hop's command, the node-only
host-key option and where the CLI puts it."""

from __future__ import annotations

import dataclasses
import shlex
import subprocess
from pathlib import Path

import paramiko
import pytest
from helpers import keygen
from rich.console import Console

from rjupyter import HostKeyError, Slurm
from rjupyter._cli._common import notebook_for
from rjupyter._cli._ui import Progress
from rjupyter._ssh._hostconfig import HostConfig, resolve_host
from rjupyter._ssh._knownhosts import (
    HostIdentity,
    OtherKnownHosts,
    check_host_key,
    load_known_hosts,
    parse_known_hosts,
)
from rjupyter._ssh._node import inherit_login
from rjupyter._ssh._nodehop import NODE_SCRIPT, login_ssh_command


def write_config(tmp_path: Path, text: str) -> Path:
    config = tmp_path / "ssh_config"
    config.write_text(text)
    config.chmod(0o600)
    return config


LOGIN_BLOCK = """\
Host login
  HostName 192.0.2.1
  User alice
  IdentityFile /keys/alice
  CertificateFile /keys/alice-cert.pub
  IdentitiesOnly yes
  IdentityAgent /agents/alice
"""


def test_a_node_no_config_line_names_inherits_the_logins_credentials(tmp_path: Path) -> None:
    config = write_config(tmp_path, LOGIN_BLOCK)
    login = resolve_host("login", ssh_config=config)
    node = inherit_login(resolve_host("node7", ssh_config=config), login)
    assert (node.user, node.identity_files) == ("alice", ("/keys/alice",))
    assert node.certificate_files == ("/keys/alice-cert.pub",)
    assert (node.identities_only, node.agent_socket) == (True, "/agents/alice")
    assert node.hostname == "node7"  # the address is the node's own


def test_what_the_config_sets_for_the_node_wins_field_by_field(tmp_path: Path) -> None:
    config = write_config(
        tmp_path, "Host node*\n  User bob\n  IdentityFile /keys/bob\n\n" + LOGIN_BLOCK
    )
    login = resolve_host("login", ssh_config=config)
    node = inherit_login(resolve_host("node7", ssh_config=config), login)
    assert (node.user, node.identity_files) == ("bob", ("/keys/bob",))
    assert node.certificate_files == ("/keys/alice-cert.pub",)  # not set for the node
    given = inherit_login(resolve_host("carol@node7", ssh_config=config), login)
    assert given.user == "carol"  # user@node is the user's own word


def test_the_clusters_known_hosts_are_parsed_hashed_lines_too(tmp_path: Path) -> None:
    keygen(tmp_path / "node_key")
    public = " ".join((tmp_path / "node_key.pub").read_text().split()[:2])
    # `ssh-keygen -H` hashes names the way HashKnownHosts does.
    plain = tmp_path / "known"
    plain.write_text(f"node7 {public}\n")
    hashed = tmp_path / "hashed"
    hashed.write_text(plain.read_text())
    subprocess.run(["ssh-keygen", "-H", "-f", str(hashed)], check=True, capture_output=True)
    assert hashed.read_text().startswith("|1|")
    entries = parse_known_hosts(hashed.read_text(), "login:/home/a/.ssh/known_hosts")
    assert entries[0].matches("node7")
    assert not entries[0].matches("node8")
    assert entries[0].where == "login:/home/a/.ssh/known_hosts:1"


def test_local_first_then_the_cluster_and_a_clear_error_naming_both(tmp_path: Path) -> None:
    keygen(tmp_path / "right")
    keygen(tmp_path / "other")
    key = paramiko.PKey.from_path(tmp_path / "right")
    right = (tmp_path / "right.pub").read_text().split()
    other = (tmp_path / "other.pub").read_text().split()
    identity = HostIdentity("node7", "node7", "node7", (str(tmp_path / "mine"),), "reject")
    asked: list[str] = []

    def cluster(line: list[str]) -> OtherKnownHosts:
        def load() -> list:  # type: ignore[type-arg]
            asked.append("asked")
            return parse_known_hosts(f"node7 {line[0]} {line[1]}\n", "login:/etc/ssh/x")

        return OtherKnownHosts("the known hosts of login", load)

    check_host_key(identity, key, [], other=cluster(right))  # known to the cluster
    with pytest.raises(HostKeyError, match="differs from the key the known hosts of login"):
        check_host_key(identity, key, [], other=cluster(other))
    (tmp_path / "mine").write_text(f"node7 {other[0]} {other[1]}\n")
    asked.clear()
    with pytest.raises(HostKeyError, match="known_hosts holds") as caught:
        check_host_key(
            identity, key, load_known_hosts([str(tmp_path / "mine")]), other=cluster(right)
        )
    assert caught.value.changed
    assert asked == []  # a local mismatch is final: the cluster is not asked
    with pytest.raises(HostKeyError, match="nor in the known hosts of login"):
        check_host_key(identity, key, [], other=OtherKnownHosts("the known hosts of login", list))


def test_the_login_node_hop_command_quotes_everything_and_is_one_line() -> None:
    node = HostConfig(
        name="n",
        hostname="node-1;x",
        port=2222,
        user="u",
        identity_files=(),
        known_hosts_files=(),
        host_key_policy="reject",
        defaulted=frozenset({"user"}),
    )
    argv = shlex.split(login_ssh_command(node, 12.5))
    assert argv[:2] == ["exec", "ssh"]
    assert argv[argv.index("--") + 1] == "node-1;x"
    assert "-l" not in argv  # the user was not set for the node: the login node's ssh picks
    assert argv[argv.index("-p") + 1] == "2222"
    assert "BatchMode=yes" in argv
    assert shlex.split(argv[-1]) == ["/bin/sh", "-c", NODE_SCRIPT]
    named = dataclasses.replace(node, defaulted=frozenset())
    named_argv = shlex.split(login_ssh_command(named, 5))
    assert named_argv[named_argv.index("-l") + 1] == "u"  # set for the node: it wins
    # Any login shell (tcsh too) passes one line with no history expansion through intact.
    assert "\n" not in NODE_SCRIPT
    assert "!" not in NODE_SCRIPT


def test_node_host_key_policy_is_checked_and_reaches_the_scheduler() -> None:
    with pytest.raises(ValueError, match="node_host_key_policy"):
        Slurm(node_host_key_policy="no")
    progress = Progress(Console(), quiet=True)
    options = {"slurm": Slurm(time="5"), "node_host_key_policy": "accept-new"}
    notebook = notebook_for("login", options, progress)
    scheduler = notebook._scheduler
    assert isinstance(scheduler, Slurm)
    assert (scheduler.node_host_key_policy, scheduler.time) == ("accept-new", "5")
    # Without a scheduler there is no node: the login's own policy is untouched.
    plain = notebook_for("login", {"node_host_key_policy": "accept-new"}, progress)
    assert plain._scheduler is None

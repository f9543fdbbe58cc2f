"""Compute nodes reached as a cluster user reaches them, against real sshds in the lab.

A login host ``gate`` asks for a key *and* a password + TOTP code (2FA); the client's ssh_config
names only ``gate``. Behind it, nodes the client's config does not name: ``cn1`` accepts the
client's key; ``cn2`` accepts only a key that exists in the user's home on the login host (a
cluster-internal key); ``cn3``'s host key is known nowhere. Each node's key is in the user's
``~/.ssh/known_hosts`` on the login host (but ``cn3``'s), never in the client's.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import Answers, keygen, wait_for

from rjupyter import AuthenticationError, HostKeyError
from rjupyter._deadline import Deadline
from rjupyter._ssh._connection import SSHConnection, open_connection
from rjupyter._ssh._node import open_node_connection
from rjupyter._ssh._options import ConnectOptions
from rjupyter.testing import Lab, LabHost

NODE_LOGGER = "rjupyter._ssh._node"


@pytest.fixture(autouse=True)
def no_agent(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """No ssh-agent of the person running the tests; the node's log lines captured."""
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    caplog.set_level(logging.DEBUG, logger=NODE_LOGGER)
    caplog.set_level(logging.DEBUG, logger="rjupyter._ssh._knownhosts")


@pytest.fixture(scope="module")
def site(lab: Lab) -> Iterator[dict[str, LabHost]]:
    if not lab.isolated:
        pytest.skip("nodes behind a login host need root (network namespaces)")
    cluster_key = lab.user_key
    only_cluster_key = lab.workdir / "cn2_authorized_keys"  # readable by the lab user
    only_cluster_key.write_text(cluster_key.with_name("id_ed25519.pub").read_text())
    only_cluster_key.chmod(0o644)
    built = {"gate": lab.add_host("gate", auth_methods="publickey,keyboard-interactive")}
    built["cn1"] = lab.add_host("cn1", behind="gate", listed=False)
    built["cn2"] = lab.add_host(
        "cn2", behind="gate", listed=False, authorized_keys=only_cluster_key
    )
    built["cn3"] = lab.add_host("cn3", behind="gate", listed=False)
    known = lab.home / ".ssh" / "known_hosts"
    cn3 = built["cn3"]
    kept = [line for line in known.read_text().splitlines() if cn3.address not in line]
    known.write_text("".join(line + "\n" for line in kept))  # cn3: known nowhere
    yield built
    for host in reversed(built.values()):
        host.stop()


def login(lab: Lab, site: dict[str, LabHost], config: Path, answers: Answers) -> SSHConnection:
    options = ConnectOptions(ssh_config=config, auth_handler=answers)
    return open_connection("gate", options, Deadline(30))


def node(
    name: str, config: Path, gate: SSHConnection, answers: Answers, **kwargs: Any
) -> SSHConnection:
    options = ConnectOptions(ssh_config=config, auth_handler=answers)
    return open_node_connection(name, options, Deadline(30), login=gate, **kwargs)


def paths(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage().rpartition(": ")[2]
        for record in caplog.records
        if record.name == NODE_LOGGER and "node access path" in record.getMessage()
    ]


def config_with(tmp_path: Path, lab: Lab, text: str) -> Path:
    """The lab's ssh_config (which names the login host only) after ``text``."""
    config = tmp_path / "ssh_config"
    config.write_text(text + "\n" + lab.ssh_config.read_text())
    return config


@pytest.fixture
def answers(lab: Lab, site: dict[str, LabHost]) -> Answers:
    return Answers(lab, site["gate"])


@pytest.fixture
def gate(lab: Lab, site: dict[str, LabHost], answers: Answers) -> Iterator[SSHConnection]:
    connection = login(lab, site, lab.ssh_config, answers)
    yield connection
    connection.close()


def test_the_node_inherits_the_login_and_its_key_is_the_clusters(
    lab: Lab,
    site: dict[str, LabHost],
    gate: SSHConnection,
    answers: Answers,
    caplog: pytest.LogCaptureFixture,
) -> None:
    prompts = len(answers.calls)
    assert prompts >= 1  # the login's 2FA
    local = lab.known_hosts.read_text()
    connection = node("cn1", lab.ssh_config, gate, answers)
    try:
        status, output = connection.run("id -un; hostname -I\n")
        assert status == 0
        assert output.split()[:2] == [lab.user, site["cn1"].address]
    finally:
        connection.close()
    assert gate.is_active
    assert len(answers.calls) == prompts  # the node asked nothing: one 2FA in all
    assert paths(caplog) == ["direct hop through gate"]
    assert "found in the known hosts of gate" in caplog.text
    assert "inherits agent_socket, certificate_files, identities_only, identity_files, user" in (
        caplog.text
    )
    # Nothing recorded locally. (Not "cn1 is not in the file": three letters turn up in its
    # base64 keys by chance, and the lab reuses a stopped host's address, line and all.)
    assert lab.known_hosts.read_text() == local


def test_what_the_ssh_config_sets_for_the_node_wins(
    tmp_path: Path, lab: Lab, site: dict[str, LabHost], gate: SSHConnection, answers: Answers
) -> None:
    nobody = config_with(tmp_path, lab, "Host cn1\n  User nosuchuser\n")
    with pytest.raises(AuthenticationError, match="nosuchuser") as caught:
        node("cn1", nobody, gate, answers)
    assert "nosuchuser@cn1 refused" in str(caught.value)  # the client's hop, then the login
    assert "could not log in either: nosuchuser@cn1: Permission denied" in str(caught.value)
    # A key named for the node is the one offered (the client's own is not): cn2 takes it.
    cluster_key = lab.home / ".ssh" / "id_ed25519"
    keyed = tmp_path / "keyed"
    keyed.mkdir()
    config = config_with(keyed, lab, f"Host cn2\n  IdentityFile {cluster_key}\n")
    connection = node("cn2", config, gate, answers)
    try:
        assert connection.run("id -un\n") == (0, f"{lab.user}\n")
    finally:
        connection.close()
    assert f"Accepted publickey for {lab.user}" in site["cn2"].sshd_log()


def test_a_node_refusing_the_client_is_reached_by_the_login_nodes_ssh(
    lab: Lab,
    site: dict[str, LabHost],
    gate: SSHConnection,
    answers: Answers,
    caplog: pytest.LogCaptureFixture,
) -> None:
    prompts = len(answers.calls)
    cn2 = site["cn2"]
    connection = node("cn2", lab.ssh_config, gate, answers)
    try:
        status, output = connection.run('id -un; hostname -I; printf "%s\\n" "$1"\n', ["a b"])
        assert status == 0
        assert output.split("\n")[:3] == [lab.user, f"{cn2.address} ", "a b"]
        with connection.open_sftp() as sftp:
            assert ".ssh" in sftp.listdir(str(lab.home))
        # Forwarding works as on a direct hop: the node's own sshd answers the node.
        channel = connection.transport.open_channel(
            "direct-tcpip", (cn2.address, cn2.port), ("127.0.0.1", 0), timeout=10
        )
        try:
            channel.settimeout(10)
            assert channel.recv(64).startswith(b"SSH-2.0-")
        finally:
            channel.close()
        running = [" ".join(argv) for _, argv in cn2.user_processes()]
        assert any("rjupyter-hop" in line for line in running), running  # the private sshd -i
    finally:
        connection.close()
    assert len(answers.calls) == prompts  # exactly the one 2FA login, nothing for the node
    assert [prompt for call in answers.calls for prompt, _ in call] == [
        "Password: ",
        "Verification code: ",
    ]
    assert paths(caplog) == ["login-node ssh on gate"]
    log = cn2.sshd_log()
    assert "Accepted publickey" in log  # the cluster key, offered by the login host's ssh
    assert gate.is_active
    # The private sshd and its directory go with the session.
    assert wait_for(lambda: not cn2.user_processes()), cn2.user_processes()
    assert wait_for(lambda: not list(Path("/tmp").glob("rjupyter-hop.*")))


def test_a_node_known_nowhere_is_refused_unless_accept_new_for_the_node(
    tmp_path: Path, lab: Lab, site: dict[str, LabHost], gate: SSHConnection, answers: Answers
) -> None:
    local = tmp_path / "known_hosts"
    config = config_with(tmp_path, lab, f"Host cn3\n  UserKnownHostsFile {local}\n")
    with pytest.raises(HostKeyError, match="is not known") as caught:
        node("cn3", config, gate, answers)
    message = str(caught.value)
    assert str(local) in message
    assert "the known hosts of gate" in message
    assert "/etc/ssh/ssh_known_hosts" in message
    assert "~/.ssh/known_hosts" in message
    assert not caught.value.changed
    connection = node("cn3", config, gate, answers, host_key_policy="accept-new")
    try:
        assert connection.run("hostname -I\n")[1].split() == [site["cn3"].address]
    finally:
        connection.close()
    assert local.read_text().startswith("cn3 ")  # recorded locally, as ssh's accept-new does
    node("cn3", config, gate, answers).close()  # known now


def test_a_local_mismatch_is_fatal_though_the_cluster_knows_the_right_key(
    tmp_path: Path, lab: Lab, site: dict[str, LabHost], gate: SSHConnection, answers: Answers
) -> None:
    impostor = keygen(tmp_path / "impostor")
    local = tmp_path / "known_hosts"
    local.write_text("cn1 " + " ".join(impostor.with_name("impostor.pub").read_text().split()[:2]))
    config = config_with(tmp_path, lab, f"Host cn1\n  UserKnownHostsFile {local}\n")
    for policy in (None, "accept-new"):
        with pytest.raises(HostKeyError, match="HOST KEY MISMATCH") as caught:
            node("cn1", config, gate, answers, host_key_policy=policy)
        assert caught.value.changed
        assert str(local) in str(caught.value)


def test_a_node_the_cluster_knows_by_one_key_type_only_is_asked_for_that_type(
    lab: Lab, site: dict[str, LabHost], gate: SSHConnection, answers: Answers
) -> None:
    # As ssh does: the key type asked for first is one the checking file holds, so the node's
    # other keys (ed25519 first by default) are not taken for a changed key.
    known = lab.home / ".ssh" / "known_hosts"
    before = known.read_text()
    cn1 = site["cn1"]
    rsa_only = [
        line for line in before.splitlines() if cn1.address not in line or " ssh-rsa " in line
    ]
    try:
        known.write_text("".join(line + "\n" for line in rsa_only))
        connection = node("cn1", lab.ssh_config, gate, answers)
        try:
            assert connection.transport.get_remote_server_key().get_name() == "ssh-rsa"
        finally:
            connection.close()
    finally:
        known.write_text(before)

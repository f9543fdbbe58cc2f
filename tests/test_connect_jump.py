"""Jump hosts: a target two hops away, reachable only through the chain (namespaces as root)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import host_block, run_example

from rjupyter import SSHConnectError
from rjupyter._deadline import Deadline
from rjupyter._ssh._connection import SSHConnection, open_connection
from rjupyter._ssh._options import ConnectOptions
from rjupyter.testing import Lab, LabHost


@pytest.fixture(autouse=True)
def no_agent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)


@pytest.fixture(scope="module")
def chain(lab: Lab) -> Iterator[list[LabHost]]:
    """bastion (reachable) -> inner (only from bastion) -> deep (only from inner)."""
    if not lab.isolated:
        pytest.skip("needs the lab's network namespaces (root)")
    hosts = [lab.add_host("bastion")]
    hosts.append(lab.add_host("inner", reachable_from="bastion"))
    hosts.append(lab.add_host("deep", reachable_from="inner"))
    yield hosts
    for host in reversed(hosts):
        host.stop()


def remote_address(connection: SSHConnection) -> str:
    """The first address of the host the connection reached (asked over SSH)."""
    channel = connection.transport.open_session(timeout=10)
    try:
        channel.exec_command("hostname -I")
        with channel.makefile("rb") as output:
            data: bytes = output.read()
        return data.decode().split()[0]
    finally:
        channel.close()


def timed_connect(spec: str, options: ConnectOptions) -> tuple[SSHConnection, float]:
    started = time.monotonic()
    connection = open_connection(spec, options, Deadline(20))
    return connection, time.monotonic() - started


def test_target_is_unreachable_directly(lab: Lab, chain: list[LabHost]) -> None:
    deep = chain[-1]
    started = time.monotonic()
    with pytest.raises(SSHConnectError, match=deep.address):
        open_connection("deep", ConnectOptions(ssh_config=lab.ssh_config, jump="none"), Deadline(5))
    assert time.monotonic() - started < 5


def test_proxyjump_chain_from_config(lab: Lab, chain: list[LabHost]) -> None:
    """deep's ProxyJump is inner, whose ProxyJump is bastion: followed as ssh follows it."""
    options = ConnectOptions(ssh_config=lab.ssh_config)
    direct, direct_seconds = timed_connect("bastion", options)
    direct.close()
    connection, chain_seconds = timed_connect("deep", options)
    try:
        assert remote_address(connection) == chain[-1].address
    finally:
        connection.close()
    print(f"connect: direct {direct_seconds:.3f} s, through 2 jump hosts {chain_seconds:.3f} s")
    for host in chain:
        assert f"Accepted publickey for {lab.user}" in host.sshd_log()


def test_jump_argument(tmp_path: Path, lab: Lab, chain: list[LabHost]) -> None:
    bastion, inner, deep = chain
    config = tmp_path / "ssh_config"  # no ProxyJump anywhere: the argument gives the chain
    config.write_text(
        host_block(lab, bastion, "bastion")
        + host_block(lab, inner, "inner")
        + host_block(lab, deep, "target")
    )
    connection = open_connection(
        "target", ConnectOptions(ssh_config=config, jump="bastion,inner"), Deadline(20)
    )
    try:
        assert remote_address(connection) == deep.address
    finally:
        connection.close()


def test_proxycommand(tmp_path: Path, lab: Lab, chain: list[LabHost]) -> None:
    inner = chain[1]
    proxy = f"ssh -F {lab.ssh_config} -o BatchMode=yes -W %h:%p bastion"
    config = tmp_path / "ssh_config"
    config.write_text(host_block(lab, inner, ProxyCommand=proxy))
    connection = open_connection("target", ConnectOptions(ssh_config=config), Deadline(20))
    try:
        assert remote_address(connection) == inner.address
    finally:
        connection.close()


def test_connect_jump_example_reaches_a_notebook(lab: Lab, chain: list[LabHost]) -> None:
    result = run_example(
        "connect_jump.py", "deep", "-F", str(lab.ssh_config), "--venv", lab.jupyter_venv
    )
    assert result.returncode == 0, result.stderr
    assert "it answers through the jump hosts" in result.stdout
    print(result.stdout)
    deep = chain[-1]
    assert "Starting session" in deep.sshd_log(), "the notebook ran on the far host"
    assert [argv for _, argv in deep.user_processes() if not argv[0].startswith("sshd")] == []


def test_proxyjump_loop_is_an_error(tmp_path: Path) -> None:
    config = tmp_path / "ssh_config"
    config.write_text("Host loop-a\n  ProxyJump loop-b\nHost loop-b\n  ProxyJump loop-a\n")
    with pytest.raises(SSHConnectError, match="ProxyJump a loop"):
        open_connection("loop-a", ConnectOptions(ssh_config=config), Deadline(5))

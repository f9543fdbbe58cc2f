"""Host keys and timeouts against a real sshd: policies, accept-new, host certificates, aliases."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from faults import dropping
from helpers import host_block, keygen

from rjupyter import HostKeyError, SSHConnectError
from rjupyter._deadline import Deadline
from rjupyter._ssh._connection import open_connection
from rjupyter._ssh._options import ConnectOptions
from rjupyter.testing import Lab, LabHost


@pytest.fixture(autouse=True)
def no_agent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)


@pytest.fixture(scope="module")
def certified(lab: Lab) -> Iterator[LabHost]:
    """A host presenting an ed25519 host certificate signed by the lab's host CA."""
    host = lab.add_host("certified", host_certificate=True)
    yield host
    host.stop()


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def logs_in(config: Path, **options: Any) -> None:
    open_connection("target", ConnectOptions(ssh_config=config, **options), Deadline(20)).close()


def known_name(host: LabHost) -> str:
    return host.address if host.port == 22 else f"[{host.address}]:{host.port}"


@pytest.mark.parametrize("policy", ["reject", "accept-new", "no"])
def test_changed_host_key_refused_under_every_policy(
    tmp_path: Path, lab: Lab, remote: LabHost, policy: str
) -> None:
    other = keygen(tmp_path / "other")
    known = write(
        tmp_path / "known_hosts", f"{known_name(remote)} {Path(f'{other}.pub').read_text()}"
    )
    before = known.read_text()
    config = write(tmp_path / "ssh_config", host_block(lab, remote, UserKnownHostsFile=str(known)))
    with pytest.raises(HostKeyError, match="MISMATCH") as caught:
        logs_in(config, host_key_policy=policy)
    assert caught.value.changed
    assert known.read_text() == before, "a changed key is never recorded"


def test_accept_new_writes_a_line_openssh_accepts(
    tmp_path: Path, lab: Lab, remote: LabHost
) -> None:
    known = tmp_path / "known_hosts"
    config = write(tmp_path / "ssh_config", host_block(lab, remote, UserKnownHostsFile=str(known)))
    with pytest.raises(HostKeyError, match="not known"):
        logs_in(config)  # StrictHostKeyChecking yes in the config
    logs_in(config, host_key_policy="accept-new")
    assert known.read_text().count("\n") == 1
    logs_in(config)  # now known
    ssh = ["ssh", "-F", str(config), "-o", "BatchMode=yes", "target", "true"]
    result = subprocess.run(ssh, capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, result.stderr  # OpenSSH itself, StrictHostKeyChecking yes


def test_cert_authority_host_certificate(tmp_path: Path, lab: Lab, certified: LabHost) -> None:
    ca_line = f"@cert-authority * {Path(f'{lab.host_ca}.pub').read_text()}"
    known = write(tmp_path / "known_hosts", ca_line)
    config = write(
        tmp_path / "ssh_config", host_block(lab, certified, UserKnownHostsFile=str(known))
    )
    logs_in(config)
    ssh = ["ssh", "-F", str(config), "-o", "BatchMode=yes", "target", "true"]
    result = subprocess.run(ssh, capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, result.stderr  # OpenSSH agrees
    other_ca = keygen(tmp_path / "other_ca")
    write(known, f"@cert-authority * {Path(f'{other_ca}.pub').read_text()}")
    with pytest.raises(HostKeyError):
        logs_in(config)
    aliased = write(
        tmp_path / "aliased",
        host_block(lab, certified, UserKnownHostsFile=str(known), HostKeyAlias="not-named"),
    )
    write(known, ca_line)
    with pytest.raises(HostKeyError, match="not-named"):
        logs_in(aliased)  # the certificate names the address and "certified" only


def test_host_key_alias(tmp_path: Path, lab: Lab, remote: LabHost) -> None:
    keys = "".join(
        f"gpu-alias {Path(f'{key}.pub').read_text().split(' ', 2)[0]} "
        f"{Path(f'{key}.pub').read_text().split()[1]}\n"
        for key in remote.host_key_files
    )
    known = write(tmp_path / "known_hosts", keys)
    block = host_block(lab, remote, UserKnownHostsFile=str(known), HostKeyAlias="gpu-alias")
    logs_in(write(tmp_path / "ssh_config", block))
    plain = host_block(lab, remote, UserKnownHostsFile=str(known))
    with pytest.raises(HostKeyError, match="not known"):
        logs_in(write(tmp_path / "plain", plain))  # listed under the alias only


def test_connect_timeout_on_dropped_packets(tmp_path: Path, lab: Lab, certified: LabHost) -> None:
    if not lab.isolated:
        pytest.skip("needs the lab's network namespaces (root)")
    config = write(tmp_path / "ssh_config", host_block(lab, certified, ConnectTimeout="2"))
    with dropping(certified.address):
        started = time.monotonic()
        with pytest.raises(SSHConnectError, match="within 2 s"):
            open_connection("target", ConnectOptions(ssh_config=config), Deadline(30))
        elapsed = time.monotonic() - started
    print(f"ConnectTimeout 2: failed after {elapsed:.2f} s")
    assert 1.9 <= elapsed <= 2 + 1.5

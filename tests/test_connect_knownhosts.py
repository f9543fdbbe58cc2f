"""known_hosts as OpenSSH writes and reads it: hashed names, [host]:port, @revoked, aliases."""

from __future__ import annotations

import subprocess
from pathlib import Path

import paramiko
import pytest

from rjupyter import HostKeyError
from rjupyter._ssh._knownhosts import HostIdentity, check_host_key, load_known_hosts


def identity(path: Path, name: str, policy: str = "reject") -> HostIdentity:
    return HostIdentity(
        label=name, lookup_name=name, principal=name, files=(str(path),), policy=policy
    )


def line(name: str, key: paramiko.PKey, marker: str = "") -> str:
    return f"{marker} {name} {key.get_name()} {key.get_base64()}\n".lstrip()


def test_hashed_and_port_entries_written_by_ssh_keygen(tmp_path: Path) -> None:
    key = paramiko.Ed25519Key.from_private_key_file(_keygen(tmp_path / "k"))
    known = tmp_path / "known_hosts"
    known.write_text(line("[gpu.test]:2222", key) + line("plain.test", key))
    subprocess.run(["ssh-keygen", "-q", "-H", "-f", str(known)], check=True, capture_output=True)
    assert "gpu.test" not in known.read_text(), "ssh-keygen -H hashed the names"
    entries = load_known_hosts([str(known)])
    check_host_key(identity(known, "[gpu.test]:2222"), key, entries)
    check_host_key(identity(known, "plain.test"), key, entries)
    with pytest.raises(HostKeyError, match="not known"):
        check_host_key(identity(known, "gpu.test"), key, entries)  # port 22 is another entry


def test_revoked_key_is_refused_under_every_policy(tmp_path: Path) -> None:
    key = paramiko.ECDSAKey.generate()
    known = tmp_path / "known_hosts"
    known.write_text(line("*", key, "@revoked") + line("h.test", key))
    for policy in ("reject", "accept-new", "no"):
        with pytest.raises(HostKeyError, match="REVOKED"):
            check_host_key(identity(known, "h.test", policy), key, load_known_hosts([str(known)]))


def test_patterns_and_negation(tmp_path: Path) -> None:
    key = paramiko.ECDSAKey.generate()
    known = tmp_path / "known_hosts"
    known.write_text(line("*.cluster.test,!evil.cluster.test", key))
    entries = load_known_hosts([str(known)])
    check_host_key(identity(known, "node1.cluster.test"), key, entries)
    with pytest.raises(HostKeyError, match="not known"):
        check_host_key(identity(known, "evil.cluster.test"), key, entries)


def test_accept_new_writes_a_line_ssh_keygen_finds(tmp_path: Path) -> None:
    key = paramiko.ECDSAKey.generate()
    known = tmp_path / "sub" / "known_hosts"
    check_host_key(identity(known, "[new.test]:2200", "accept-new"), key, [])
    found = subprocess.run(
        ["ssh-keygen", "-F", "[new.test]:2200", "-f", str(known)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert key.get_base64() in found
    assert known.stat().st_mode & 0o077 == 0


def _keygen(path: Path) -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return str(path)

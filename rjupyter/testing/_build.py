"""Building one lab host: its namespace, keys, PAM service, certificates and sshd."""

from __future__ import annotations

import dataclasses
import logging
import socket
import subprocess
from pathlib import Path

from ._account import Account
from ._errors import LabError
from ._host import LabHost
from ._hostopts import HostOptions, remove_pam_service, sign_host_key, write_pam_service
from ._network import NetnsLink, create_netns_link, delete_netns_link, link_names
from ._sshd import (
    SshdSettings,
    config_path,
    generate_host_keys,
    known_hosts_lines,
    start_sshd,
    write_sshd_config,
)
from ._undo import UndoStack

__all__ = ["ClientFiles", "HostPlan", "build_host", "client_files"]

logger = logging.getLogger(__name__)

_PORT_ATTEMPTS = 5


@dataclasses.dataclass(frozen=True)
class HostPlan:
    """Everything `build_host` needs to know about one host.

    Attributes:
        name: The host's alias.
        lab_id: The lab's id (names of namespaces and PAM services).
        index: The host's number in the lab.
        directory: The host's directory (created by `build_host`).
        account: The login user.
        authorized_keys: sshd's AuthorizedKeysFile.
        options: What the host requires beyond keys.
        isolated: Whether the host gets a namespace (root).
        outer: The host this one is reachable from (`options.reachable_from`), if any.
        host_ca: The lab's host CA private key, for `options.host_certificate`.
        environment: `NAME=value` pairs sshd sets in every session (`SetEnv`).
        sshd_options: sshd_config `(keyword, value)` pairs over the lab's defaults.
    """

    name: str
    lab_id: str
    index: int
    directory: Path
    account: Account
    authorized_keys: Path
    options: HostOptions
    isolated: bool
    outer: LabHost | None = None
    host_ca: Path | None = None
    environment: tuple[str, ...] = ()
    sshd_options: tuple[tuple[str, str], ...] = ()


def _unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def build_host(plan: HostPlan, undo: UndoStack) -> LabHost:
    """Create and start one host; each step pushes its own undo onto `undo`.

    Raises:
        LabError: A step failed (the caller runs `undo`).
    """
    plan.directory.mkdir(mode=0o700)
    host_keys = generate_host_keys(plan.directory)
    link = None
    netns, interface = link_names(plan.lab_id, plan.index)
    if plan.isolated:
        outer_netns = None if plan.outer is None else plan.outer.netns
        link = create_netns_link(netns, interface, outer_netns)
        undo.push(f"delete namespace {netns}", lambda: delete_netns_link(link))
    totp_secret = pam_service = None
    if plan.options.needs_pam:
        pam_file, totp_secret = write_pam_service(netns, plan.directory / "totp_secret")
        undo.push(f"remove {pam_file}", lambda: remove_pam_service(pam_file))
        pam_service = pam_file.name
    certificate = None
    if plan.options.host_certificate:
        if plan.host_ca is None:
            raise LabError("host_certificate=True needs the lab's host CA")
        public = host_keys[0].with_name(host_keys[0].name + ".pub")  # ed25519
        address = plan.name if link is None else link.address
        certificate = sign_host_key(plan.host_ca, public, plan.name, [address, plan.name])
    settings = SshdSettings(
        directory=plan.directory,
        address="127.0.0.1" if link is None else link.address,
        port=22,
        user=plan.account.name,
        authorized_keys=plan.authorized_keys,
        host_keys=host_keys,
        auth_methods=plan.options.auth_methods,
        pam_service=pam_service,
        trusted_user_ca=plan.options.trusted_user_ca,
        host_certificate=certificate,
        probe_netns=None if link is None else link.outer_netns,
        environment=plan.environment,
        options=plan.sshd_options,
    )
    sshd, settings = _start_sshd(settings, link)
    return LabHost(
        name=plan.name,
        account=plan.account,
        settings=settings,
        sshd=sshd,
        link=link,
        totp_secret=totp_secret,
    )


def _start_sshd(
    settings: SshdSettings, link: NetnsLink | None
) -> tuple[subprocess.Popen[bytes], SshdSettings]:
    attempt = 1
    while True:
        if link is None:
            settings = dataclasses.replace(settings, port=_unused_port())
        write_sshd_config(settings)
        prefix = [] if link is None else ["ip", "netns", "exec", link.netns]
        try:
            return start_sshd(settings, prefix), settings
        except LabError as exc:
            # Without a namespace the port is probed, then bound by sshd: a race we retry.
            port_taken = link is None and "Address already in use" in str(exc)
            if not port_taken or attempt == _PORT_ATTEMPTS:
                raise
            attempt += 1


@dataclasses.dataclass(frozen=True)
class ClientFiles:
    """What the lab's client files hold.

    Attributes:
        known_hosts: known_hosts lines (every host's keys under its address and alias).
        ssh_config: ssh_config text: a `Host` block per host, then `Host *` defaults.
    """

    known_hosts: list[str]
    ssh_config: str


def client_files(
    hosts: list[LabHost],
    jumps: dict[str, str],
    *,
    user: str,
    identity_file: Path,
    known_hosts: Path,
) -> ClientFiles:
    """The known_hosts lines and ssh_config blocks for `hosts` (`jumps`: host -> ProxyJump)."""
    lines: list[str] = []
    blocks: list[str] = []
    for host in hosts:
        lines += known_hosts_lines([host.address, host.name], host.port, host.host_key_files)
        block = [
            f"Host {host.name}",
            f"    HostName {host.address}",
            f"    Port {host.port}",
            f"    User {user}",
            f"    IdentityFile {config_path(identity_file)}",
            "    IdentitiesOnly yes",
            f"    UserKnownHostsFile {config_path(known_hosts)}",
            "    GlobalKnownHostsFile /dev/null",
            "    StrictHostKeyChecking yes",
        ]
        if host.name in jumps:
            block.append(f"    ProxyJump {jumps[host.name]}")
        blocks.append("\n" + "\n".join(block) + "\n")
    # Defaults for every other host (a node the login node names): the lab's own known_hosts,
    # never the caller's ~/.ssh files; no user, key or address, which a node inherits.
    defaults = [
        "Host *",
        f"    UserKnownHostsFile {config_path(known_hosts)}",
        "    GlobalKnownHostsFile /dev/null",
        "    StrictHostKeyChecking yes",
    ]
    blocks.append("\n" + "\n".join(defaults) + "\n")
    return ClientFiles(lines, "".join(blocks))

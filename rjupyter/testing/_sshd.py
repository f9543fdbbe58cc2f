"""OpenSSH pieces: key generation, sshd_config, starting sshd and waiting for its banner."""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from ._errors import LabError
from ._procs import run_command, stop_popen, tail

__all__ = [
    "SSHD",
    "SshdSettings",
    "config_path",
    "generate_host_keys",
    "generate_key",
    "known_hosts_lines",
    "start_sshd",
    "write_sshd_config",
]

logger = logging.getLogger(__name__)

SSHD = "/usr/sbin/sshd"
HOST_KEY_TYPES = ("ed25519", "ecdsa", "rsa")
READY_TIMEOUT = 10.0


@dataclasses.dataclass(frozen=True)
class SshdSettings:
    """What goes into one host's sshd_config.

    Attributes:
        directory: Where the config, host keys, PID file and log live.
        address: ListenAddress.
        port: Port.
        user: The only user allowed to log in.
        authorized_keys: AuthorizedKeysFile (read by sshd as `user`).
        host_keys: Private host key files.
        environment: `NAME=value` pairs sshd sets for every session (`SetEnv`).
        auth_methods: `AuthenticationMethods` (each method named is switched on).
        pam_service: Run sshd under this name with `UsePAM yes`: PAM reads
            `/etc/pam.d/<pam_service>`. None for `UsePAM no`.
        trusted_user_ca: `TrustedUserCAKeys`.
        host_certificate: `HostCertificate`.
        probe_netns: The namespace from which `address` is reachable (None: this one).
        options: `(keyword, value)` pairs that replace the default of that keyword (or are
            added), e.g. `("AllowStreamLocalForwarding", "no")`.
    """

    directory: Path
    address: str
    port: int
    user: str
    authorized_keys: Path
    host_keys: tuple[Path, ...]
    environment: tuple[str, ...] = ()
    auth_methods: str = "publickey"
    pam_service: str | None = None
    trusted_user_ca: Path | None = None
    host_certificate: Path | None = None
    options: tuple[tuple[str, str], ...] = ()
    probe_netns: str | None = None

    @property
    def config_file(self) -> Path:
        """The sshd_config file."""
        return self.directory / "sshd_config"

    @property
    def log_file(self) -> Path:
        """sshd's stderr (it logs there with `-e`)."""
        return self.directory / "sshd.log"

    @property
    def pid_file(self) -> Path:
        """PidFile."""
        return self.directory / "sshd.pid"

    @property
    def program(self) -> Path:
        """The sshd to run: a symlink named after `pam_service` when PAM is on."""
        return Path(SSHD) if self.pam_service is None else self.directory / self.pam_service


def generate_key(
    path: Path, key_type: str = "ed25519", comment: str = ""
) -> subprocess.Popen[bytes]:
    """Start `ssh-keygen` writing an unencrypted key pair at `path` (and `path`.pub).

    Returns:
        The running ssh-keygen; the caller waits for it (so several keys can be made at once).
    """
    argv = ["ssh-keygen", "-q", "-t", key_type, "-N", "", "-C", comment, "-f", str(path)]
    logger.debug("running %s", argv)
    try:
        return subprocess.Popen(  # noqa: S603 - an argv list, no shell
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
    except OSError as exc:
        raise LabError(f"cannot run ssh-keygen ({exc}): install openssh-client") from exc


def wait_for_keygens(processes: Sequence[subprocess.Popen[bytes]]) -> None:
    """Wait for every ssh-keygen started by `generate_key`; raise if one failed.

    Raises:
        LabError: An ssh-keygen exited non-zero.
    """
    failures = []
    for process in processes:
        output, _ = process.communicate(timeout=120)
        if process.returncode != 0:
            failures.append(f"{process.args!r}: {output.decode(errors='replace').strip()}")
    if failures:
        raise LabError("ssh-keygen failed: " + "; ".join(failures))


def generate_host_keys(directory: Path) -> tuple[Path, ...]:
    """Generate one host key of each type in `HOST_KEY_TYPES` into `directory`, in parallel.

    Returns:
        The private key files.

    Raises:
        LabError: ssh-keygen is missing or failed.
    """
    keys = tuple(directory / f"ssh_host_{key_type}_key" for key_type in HOST_KEY_TYPES)
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for key_type, key in zip(HOST_KEY_TYPES, keys, strict=True):
            processes.append(generate_key(key, key_type))
    finally:
        wait_for_keygens(processes)
    return keys


def known_hosts_lines(names: Sequence[str], port: int, host_keys: Sequence[Path]) -> list[str]:
    """Return known_hosts lines binding `names` (addresses or aliases) at `port` to the keys."""
    patterns = ",".join(name if port == 22 else f"[{name}]:{port}" for name in names)
    lines = []
    for key in host_keys:
        key_type, key_data = key.with_name(key.name + ".pub").read_text().split()[:2]
        lines.append(f"{patterns} {key_type} {key_data}")
    return lines


def config_path(path: Path) -> str:
    """Return `path` as written in ssh_config/sshd_config: unquoted, for every parser's sake.

    Raises:
        ValueError: The path is relative or holds whitespace, quotes, `\\` or `%` (which those
            files would split, unquote or expand).
    """
    text = str(path)
    if not path.is_absolute() or re.search(r"[\s\"'\\%]", text):
        raise ValueError(
            f"unsupported path {text!r} for ssh config files: use an absolute path without "
            "whitespace, quotes, backslashes or %"
        )
    return text


def write_sshd_config(settings: SshdSettings) -> None:
    """Write the sshd_config for `settings`: only the methods in `auth_methods` are on."""
    methods = settings.auth_methods.split(",")

    def switch(method: str) -> str:
        return "yes" if method in methods else "no"

    lines = [f"HostKey {config_path(key)}" for key in settings.host_keys]
    if settings.host_certificate is not None:
        lines.append(f"HostCertificate {config_path(settings.host_certificate)}")
    if settings.trusted_user_ca is not None:
        lines.append(f"TrustedUserCAKeys {config_path(settings.trusted_user_ca)}")
    lines += [
        f"ListenAddress {settings.address}",
        f"Port {settings.port}",
        f"PidFile {config_path(settings.pid_file)}",
        f"AuthorizedKeysFile {config_path(settings.authorized_keys)}",
        f"AllowUsers {settings.user}",
        "StrictModes no",
        f"UsePAM {'no' if settings.pam_service is None else 'yes'}",
        f"AuthenticationMethods {settings.auth_methods}",
        f"PubkeyAuthentication {switch('publickey')}",
        f"PasswordAuthentication {switch('password')}",
        f"KbdInteractiveAuthentication {switch('keyboard-interactive')}",
        "PermitRootLogin no",
        "LogLevel VERBOSE",
        "AllowTcpForwarding yes",
        "AllowStreamLocalForwarding yes",
        "X11Forwarding no",
        "PrintMotd no",
        "PrintLastLog no",
        "MaxStartups 100",
        "MaxSessions 100",
        "Subsystem sftp internal-sftp",
    ]
    if settings.environment:
        lines.append("SetEnv " + " ".join(settings.environment))
    replaced = {keyword.lower() for keyword, _ in settings.options}
    lines = [line for line in lines if line.split(" ", 1)[0].lower() not in replaced]
    lines += [f"{keyword} {value}" for keyword, value in settings.options]
    settings.config_file.write_text("\n".join(lines) + "\n")


_PROBE = """
import socket, sys
with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1.0) as connection:
    connection.settimeout(1.0)
    sys.exit(0 if connection.recv(64).startswith(b"SSH-2.0-") else 1)
"""


def _banner_received(address: str, port: int, netns: str | None = None) -> bool:
    if netns is not None:  # probe from the one namespace that reaches the host
        argv = ["ip", "netns", "exec", netns, "/usr/bin/python3", "-c", _PROBE, address, str(port)]
        try:
            probe = subprocess.run(argv, capture_output=True, timeout=5, check=False)  # noqa: S603
        except subprocess.TimeoutExpired:
            return False
        return probe.returncode == 0
    try:
        with socket.create_connection((address, port), timeout=1.0) as connection:
            connection.settimeout(1.0)
            return connection.recv(64).startswith(b"SSH-2.0-")
    except OSError:
        return False


def start_sshd(settings: SshdSettings, prefix: Sequence[str] = ()) -> subprocess.Popen[bytes]:
    """Start sshd in the foreground and return once it answers with an SSH banner.

    Args:
        settings: The host's settings; its config file must have been written.
        prefix: Command prefix, e.g. `ip netns exec NS`; it must exec sshd, not fork it.

    Returns:
        The sshd process (its PID is sshd's own).

    Raises:
        LabError: sshd is missing, exited, or gave no banner within `READY_TIMEOUT` seconds; the
            message carries the tail of its log. sshd is stopped again before the error.
    """
    if not Path(SSHD).exists():
        raise LabError(f"{SSHD} not found: install openssh-server")
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege separation directory
    if settings.pam_service is not None and not settings.program.is_symlink():
        settings.program.symlink_to(SSHD)  # sshd names its PAM service after argv[0]
    run_command([SSHD, "-t", "-f", str(settings.config_file)], what="check the sshd config")
    argv = [*prefix, str(settings.program), "-D", "-e", "-f", str(settings.config_file)]
    logger.debug("starting %s", argv)
    with settings.log_file.open("ab") as log:
        process = subprocess.Popen(  # noqa: S603 - an argv list, no shell
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
        )
    deadline = time.monotonic() + READY_TIMEOUT
    while not _banner_received(settings.address, settings.port, settings.probe_netns):
        exit_status = process.poll()
        if exit_status is not None or time.monotonic() >= deadline:
            stop_popen(process)
            problem = (
                f"exited with status {exit_status}"
                if exit_status is not None
                else f"gave no SSH banner on {settings.address}:{settings.port} "
                f"within {READY_TIMEOUT:.0f} s"
            )
            log_tail = tail(settings.log_file.read_text(errors="replace"))
            raise LabError(f"sshd {problem}; log {settings.log_file} ends:\n{log_tail}")
        time.sleep(0.05)
    logger.debug("sshd %d ready on %s:%d", process.pid, settings.address, settings.port)
    return process
